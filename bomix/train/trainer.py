"""Train the proxy GPT on one data mixture and measure every validation domain's loss.

    data = DomainData("data/tiny")
    result = train(data, {"code": 0.5, "legal": 0.3, "noise": 0.2}, TrainConfig(preset="tiny", seed=0))
    result.losses   # {domain: final validation loss, nats/token}

One function, read top to bottom: resolve the config, build the model and the optimizer, then a
loop of (lr schedule, batch from the MixtureSampler, forward, backward, clip, step) that stops
at fixed steps to evaluate. The mixture enters in one place only: the sampler.

Validation batches are fixed: the first `eval_tokens` of each domain's val.bin cut into consecutive
windows of block_size, identical for every run of a dataset and block size, whatever the mixture or
seed, so losses of different runs compare.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

from bomix.train.data import DomainData, MixtureSampler
from bomix.train.fused_ce import FUSED_CE_MIN_VOCAB
from bomix.train.model import GPT, GPTConfig, count_params, get_preset

TOKENS_PER_PARAM = 20  # Chinchilla (Hoffmann et al., 2022): compute-optimal training uses about 20
                       # tokens per parameter, embeddings included; 20 x 24.7M is the seed study's 500M.

# Peak learning rate per preset when TrainConfig.lr is None. seed25m: the seed study's 3e-4. tiny:
# 3e-3 beat 1e-3 and 1e-2 in a sweep on the test corpus. The others are interpolated guesses (smaller
# models tolerate larger steps); sweep them before a real campaign.
PRESET_LR = {"seed25m": 3e-4, "5m": 1e-3, "1.5m": 2e-3, "small": 2e-3, "tiny": 3e-3}

STEADY_AFTER = 10  # cost["steady_tokens_per_s"] leaves out the first min(10, steps // 2) steps: torch.compile
                   # and the CUDA allocator's warm-up happen there, and a short run would hide its speed


@dataclass(frozen=True)
class TrainConfig:
    """How to train one proxy. Validated on construction; TrainResult.extra["config"] keeps the
    resolved values (lr, tokens, model) next to every result."""

    preset: str = "tiny"                # a name in model.PRESETS
    model: GPTConfig | None = None      # replaces the preset; its vocab_size is replaced by the data's
    tokens: int | None = None           # training tokens; None = TOKENS_PER_PARAM x parameters
    batch_size: int = 16                # sequences per step
    block_size: int | None = None       # tokens per sequence; None = the model's block_size
    lr: float | None = None             # peak learning rate; None = PRESET_LR[preset]
    min_lr_ratio: float = 0.1           # cosine decays to lr * min_lr_ratio at the last step
    warmup_fraction: float = 0.02       # of the steps, linear warmup from 0
    weight_decay: float = 0.1           # AdamW decay, on 2-D weights only (not LayerNorm scales)
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0              # clip the gradient norm at this value; 0 = no clipping
    eval_every: int | None = None       # evaluate every this many steps, and always at the last one;
    eval_steps: tuple[int, ...] | None = None  # and at these steps. Both None: 5 evenly spaced.
    eval_tokens: int = 65536            # validation tokens per domain per evaluation (at most val.bin)
    device: str = "auto"                # "auto" (cuda when available), "cpu" or "cuda"
    compile: bool | None = None         # torch.compile; None = on for cuda, off for cpu
    fused_ce: bool | None = None        # chunked head + cross-entropy (fused_ce.py); None = on when the
                                        # vocabulary has >= FUSED_CE_MIN_VOCAB (16384) ids
    threads: int | None = None          # torch CPU threads; None = torch's default
    seed: int = 0                       # model init and batch order; same seed on CPU = same losses

    def __post_init__(self):
        positive = {"batch_size": self.batch_size, "eval_tokens": self.eval_tokens,
                    "tokens": 1 if self.tokens is None else self.tokens,
                    "block_size": 1 if self.block_size is None else self.block_size,
                    "eval_every": 1 if self.eval_every is None else self.eval_every,
                    "threads": 1 if self.threads is None else self.threads}
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.model is None:
            get_preset(self.preset)  # raises on an unknown name
        if self.lr is None:
            object.__setattr__(self, "lr", PRESET_LR.get(self.preset, 1e-3))
        if not self.lr > 0 or not 0 <= self.min_lr_ratio <= 1 or not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"need lr > 0, 0 <= min_lr_ratio <= 1 and 0 <= warmup_fraction < 1, got lr={self.lr!r}, "
                             f"min_lr_ratio={self.min_lr_ratio!r}, warmup_fraction={self.warmup_fraction!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.eval_steps is not None:
            object.__setattr__(self, "eval_steps", tuple(self.eval_steps))
        object.__setattr__(self, "betas", tuple(self.betas))


@dataclass
class TrainResult:
    losses: dict[str, float]                      # {validation domain: final loss}, nats/token
    curves: dict[str, list[tuple[int, float]]]    # {validation domain: [(step, loss), ...]}
    cost: dict[str, float]                        # seconds, tokens, params, tokens_per_s, ...
    extra: dict = field(default_factory=dict)     # repetition per domain, resolved config, ...

    def to_dict(self) -> dict:
        """JSON-ready: {"losses", "curves" ([[step, loss], ...]), "cost", "extra"}."""
        return {"losses": self.losses, "curves": {d: [list(p) for p in c] for d, c in self.curves.items()},
                "cost": self.cost, "extra": self.extra}


def resolve_model(config: TrainConfig, vocab_size: int) -> GPTConfig:
    """The model a run trains: the preset (or config.model) with the data's vocabulary and the
    config's block size."""
    model = config.model or get_preset(config.preset)
    return replace(model, vocab_size=vocab_size, block_size=config.block_size or model.block_size)


def use_fused_ce(config: TrainConfig, vocab_size: int) -> bool:
    """config.fused_ce, or when None whether the vocabulary is large enough for the chunked loss to pay."""
    return config.fused_ce if config.fused_ce is not None else vocab_size >= FUSED_CE_MIN_VOCAB


def resolve_device(config: TrainConfig) -> tuple[str, bool, Callable]:
    """(device, whether to torch.compile, an autocast context factory) for a run of `config`."""
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device must be available, got 'cuda' with no CUDA device (use --device auto or cpu)")
    device = "cuda" if config.device == "auto" and torch.cuda.is_available() else config.device
    device = "cpu" if device == "auto" else device
    use_compile = config.compile if config.compile is not None else device == "cuda"
    if device == "cuda":  # bf16 matmuls under autocast; the loss itself is computed in fp32
        torch.backends.cuda.matmul.allow_tf32 = True
        return device, use_compile, lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    # fp32 on CPU: bf16 is slower there, and exact reproducibility is the point
    return device, use_compile, contextlib.nullcontext


def steady_start(max_steps: int) -> int:
    """The step after which the steady-state throughput clock starts (0: the run is too short)."""
    return min(STEADY_AFTER, max_steps // 2)


def synchronize(device: str) -> None:
    """Wait for queued GPU work, so that a clock read next measures it."""
    if device == "cuda":
        torch.cuda.synchronize()


def default_tokens(model: GPTConfig) -> int:
    """TOKENS_PER_PARAM x parameters (embeddings included)."""
    return TOKENS_PER_PARAM * count_params(model)


def lr_at(step: int, max_steps: int, config: TrainConfig) -> float:
    """Linear warmup over warmup_fraction of the steps, then cosine decay to lr * min_lr_ratio."""
    warmup = round(config.warmup_fraction * max_steps)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, max_steps - 1 - warmup)
    min_lr = config.lr * config.min_lr_ratio
    return min_lr + 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) * (config.lr - min_lr)


def eval_schedule(max_steps: int, config: TrainConfig) -> list[int]:
    """Steps (1-based: after that many optimizer steps) at which every validation domain is scored."""
    steps = {max_steps}
    if config.eval_every is None and config.eval_steps is None:
        steps |= {max(1, round(max_steps * i / 5)) for i in range(1, 5)}
    if config.eval_every is not None:
        steps |= set(range(config.eval_every, max_steps + 1, config.eval_every))
    for s in config.eval_steps or ():
        if not isinstance(s, int) or not 1 <= s <= max_steps:
            raise ValueError(f"eval_steps must be integers in [1, {max_steps}] (the run's steps), got {s!r}")
        steps.add(s)
    return sorted(steps)


def validation_batches(data: DomainData, block_size: int, eval_tokens: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{domain: (x, y)}, (n, block_size) int64 arrays: consecutive windows from the start of val.bin,
    n = eval_tokens // block_size, fewer when val.bin is shorter."""
    batches = {}
    for domain in data.val_domains:
        tokens = data.val(domain)
        n = min(max(1, eval_tokens // block_size), (tokens.size - 1) // block_size)
        if n < 1:
            raise ValueError(f"a validation domain needs at least block_size + 1 = {block_size + 1} tokens, "
                             f"got {tokens.size} in {domain!r}")
        windows = np.asarray(tokens[:n * block_size + 1], dtype=np.int64)
        batches[domain] = (windows[:-1].reshape(n, block_size), windows[1:].reshape(n, block_size))
    return batches


@torch.no_grad()
def evaluate(model, batches, batch_size: int, device: str, autocast) -> dict[str, float]:
    """Mean loss (nats/token) of every domain's fixed validation windows."""
    model.eval()
    losses = {}
    for domain, (x, y) in batches.items():
        total = 0.0
        for i in range(0, len(x), batch_size):
            xb, yb = (torch.from_numpy(a[i:i + batch_size]).to(device) for a in (x, y))
            with autocast():
                _, loss = model(xb, yb)
            total += loss.item() * len(xb)
        losses[domain] = total / len(x)
    model.train()
    return losses


def train(data: DomainData | str | Path, weights: Mapping[str, float], config: TrainConfig = TrainConfig(), *,
          log: Callable[[str], None] | None = None) -> TrainResult:
    """Train a fresh proxy on the mixture `weights` ({training domain: weight}, summing to 1) and
    score every validation domain at the eval_schedule steps. `log` gets one line per evaluation."""
    t_start = time.perf_counter()
    log = log or (lambda line: None)
    data = data if isinstance(data, DomainData) else DomainData(data)

    # 1. Where and how: device, precision (bf16 autocast on cuda, fp32 on cpu), threads.
    device, use_compile, autocast = resolve_device(config)
    # Same seed, same losses on CPU: every op here has a deterministic CPU kernel for a fixed thread
    # count (the tests check it). torch.use_deterministic_algorithms is not set: it imports
    # torch._inductor, 1.7 s per trial on a busy 2-core host, and guards nothing more here.
    threads_before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)

    try:
        # 2. Data, steps, model, optimizer. The seed fixes the initial weights; the sampler has its own
        #    generator seeded alike.
        model_config = resolve_model(config, data.vocab_size)
        T, B = model_config.block_size, config.batch_size
        sampler = MixtureSampler(data, weights, B, T, seed=config.seed)
        val_batches = validation_batches(data, T, config.eval_tokens)
        tokens = config.tokens or default_tokens(model_config)
        max_steps = max(1, tokens // (B * T))
        evals = eval_schedule(max_steps, config)
        fused_ce = use_fused_ce(config, model_config.vocab_size)
        steady_from = steady_start(max_steps)
        torch.manual_seed(config.seed)
        model = GPT(model_config, fused_ce=fused_ce).to(device)
        n_params = model.num_params()
        decay = [p for p in model.parameters() if p.dim() >= 2]  # matrices and embeddings
        no_decay = [p for p in model.parameters() if p.dim() < 2]  # LayerNorm scales
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                       {"params": no_decay, "weight_decay": 0.0}],
                                      lr=config.lr, betas=config.betas, fused=device == "cuda")
        forward = torch.compile(model) if use_compile else model

        # 3. The loop.
        curves = {d: [] for d in data.val_domains}
        train_loss, t_train, t_eval, t_steady = float("nan"), 0.0, 0.0, 0.0
        t0 = time.perf_counter()
        for step in range(max_steps):
            lr = lr_at(step, max_steps, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = (torch.from_numpy(a).to(device, non_blocking=True) for a in sampler.next_batch())
            with autocast():
                _, loss = forward(x, y)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step + 1 == steady_from:
                synchronize(device)
                t_steady = t_train + time.perf_counter() - t0

            if step + 1 in evals:
                train_loss = loss.item()
                if not math.isfinite(train_loss):
                    raise FloatingPointError(f"the training loss must stay finite, got {train_loss} at step {step + 1}")
                t1 = time.perf_counter()
                t_train += t1 - t0
                val = evaluate(forward, val_batches, 2 * B, device, autocast)
                for d, v in val.items():
                    curves[d].append((step + 1, v))
                t0 = time.perf_counter()
                t_eval += t0 - t1
                log(f"step {step + 1}/{max_steps} | {(step + 1) * B * T:,} tokens | lr {lr:.2e} "
                    f"| train {train_loss:.4f} | val " + " ".join(f"{d} {v:.4f}" for d, v in val.items())
                    + f" | {t_train + t_eval:.1f} s")
    finally:
        torch.set_num_threads(threads_before)

    # 4. The result: final losses, curves, cost, and where each domain's tokens came from.
    trained = max_steps * B * T
    seconds = time.perf_counter() - t_start
    cost = {"seconds": seconds, "train_seconds": t_train, "eval_seconds": t_eval, "tokens": trained,
            "params": n_params, "non_embedding_params": model.num_params(non_embedding=True),
            "tokens_per_s": trained / t_train if t_train > 0 else 0.0, "flops": 6.0 * n_params * trained,
            "steady_tokens_per_s": (max_steps - steady_from) * B * T / (t_train - t_steady)
            if steady_from and t_train > t_steady else 0.0}
    extra = {**sampler.stats(), "weights": sampler.weights, "steps": max_steps, "tokens_per_step": B * T,
             "train_loss": train_loss, "device": device, "compile": use_compile, "fused_ce": fused_ce,
             "dtype": "bfloat16" if device == "cuda" else "float32", "torch": torch.__version__,
             "config": {**asdict(config), "model": model_config.to_dict(), "tokens": trained},
             "dataset": str(data.path)}
    return TrainResult(losses={d: c[-1][1] for d, c in curves.items()}, curves=curves, cost=cost, extra=extra)
