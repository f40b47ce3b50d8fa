"""Train several proxies of one shape at once, each on its own mixture and seed, in one process.

    results = train_many(data, [mix_a, mix_b, mix_c, mix_d], TrainConfig(preset="1.5m"), seeds=[0, 1, 2, 3])
    results[1].losses   # what train(data, mix_b, TrainConfig(preset="1.5m", seed=1)) gives (see below)

Why: a proxy under a few million parameters leaves most of a GPU idle; its kernels are too small to
fill it and launch overhead dominates (measured with a plain compiled loop on an H100: a 1.5M shape
ran 5.2M tokens/s alone, 12.2-12.5M tokens/s when 4-8 trained at once with parameters stacked).
StackedGPT holds the K models' parameters with a leading model axis, so every matmul is one batched
matmul over the models, and one optimizer step updates all K.

Each model is still its own run: it is initialised exactly as GPT(config) after
torch.manual_seed(its seed), draws its batches from its own MixtureSampler with its own seed, gets
the gradient of its own loss only (the loss summed over models has d/d(model k) = d loss_k), its
gradient norm clipped on its own, and AdamW's update is elementwise. So on CPU in float32 each model
follows train()'s run to rounding: batched matmuls and per-model reductions add in another order
(tests/test_stacked.py states the tolerance). A model whose loss turns non-finite, or whose mixture
is invalid, fails alone: its NaNs stay in its own slice of every tensor.

Meant for presets under about 5M parameters; the stack multiplies the memory of one run by K.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bomix.train.data import DomainData, MixtureSampler
from bomix.train.fused_ce import linear_cross_entropy
from bomix.train.model import GPT
from bomix.train.trainer import (TrainConfig, TrainResult, default_tokens, eval_schedule, lr_at, resolve_device,
                                 resolve_model, steady_start, synchronize, use_fused_ce, validation_batches)


def _stack(tensors) -> nn.Parameter:
    return nn.Parameter(torch.stack([t.detach() for t in tensors]))


def _linear(x, weight):
    """x (K, ..., in) times each model's weight (K, out, in) transposed -> (K, ..., out): one bmm."""
    K, *lead, n_in = x.shape
    return torch.matmul(x.reshape(K, -1, n_in), weight.transpose(1, 2)).view(K, *lead, weight.shape[1])


def _layer_norm(x, weight):
    """LayerNorm without bias over the last axis, with each model's scale weight (K, C)."""
    return F.layer_norm(x, x.shape[-1:]) * weight.view(weight.shape[0], *[1] * (x.dim() - 2), -1)


class StackedBlock(nn.Module):
    """The same Block of K models (model.Block's math), each parameter stacked on axis 0."""

    def __init__(self, blocks):
        super().__init__()
        self.n_head = blocks[0].attn.n_head
        self.ln_1 = _stack(b.ln_1.weight for b in blocks)       # (K, C)
        self.qkv = _stack(b.attn.qkv.weight for b in blocks)     # (K, 3C, C)
        self.attn_proj = _stack(b.attn.proj.weight for b in blocks)
        self.ln_2 = _stack(b.ln_2.weight for b in blocks)
        self.fc = _stack(b.mlp.fc.weight for b in blocks)        # (K, 4C, C)
        self.mlp_proj = _stack(b.mlp.proj.weight for b in blocks)

    def forward(self, x):  # (K, B, T, C)
        K, B, T, C = x.shape
        q, k, v = _linear(_layer_norm(x, self.ln_1), self.qkv).split(C, dim=-1)
        # (K, B, T, C) -> (K * B, n_head, T, head_dim): the models are more batch rows for attention
        q, k, v = (t.reshape(K * B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + _linear(y.transpose(1, 2).reshape(K, B, T, C), self.attn_proj)
        return x + _linear(F.gelu(_linear(_layer_norm(x, self.ln_2), self.fc)), self.mlp_proj)


class StackedGPT(nn.Module):
    """K GPTs of one config as one module (no dropout: proxies use none).

    forward(idx (K, B, T), targets (K, B, T)) -> (K,) mean cross-entropy per model, nats/token.
    Parameters are the models' own, stacked: wte (K, V, C), wpe (K, block_size, C), and so on; a
    tied head uses wte. fused_ce: the loss by chunks (bomix.train.fused_ce), no whole logits.
    """

    def __init__(self, models: Sequence[GPT], *, fused_ce: bool = False):
        super().__init__()
        config = models[0].config
        if any(m.config != config for m in models):
            raise ValueError(f"stacked models must share one config, got {sorted({str(m.config) for m in models})}")
        if config.dropout:
            raise ValueError(f"stacked models take no dropout, got dropout={config.dropout}")
        self.config, self.n_models, self.fused_ce = config, len(models), fused_ce
        self.wte = _stack(m.wte.weight for m in models)
        self.wpe = _stack(m.wpe.weight for m in models)
        self.blocks = nn.ModuleList(StackedBlock([m.blocks[i] for m in models]) for i in range(config.n_layer))
        self.ln_f = _stack(m.ln_f.weight for m in models)
        self.lm_head = None if config.tie_embeddings else _stack(m.lm_head.weight for m in models)
        # model k's token ids index rows k * V ... k * V + V - 1 of wte viewed as (K * V, C)
        self.register_buffer("offsets", torch.arange(len(models)).view(-1, 1, 1) * config.vocab_size,
                             persistent=False)

    def forward(self, idx, targets):
        K, B, T = idx.shape
        if K != self.n_models or T > self.config.block_size:
            raise ValueError(f"idx must be (n_models={self.n_models}, B, T <= {self.config.block_size}), "
                             f"got {tuple(idx.shape)}")
        C = self.config.n_embd
        x = F.embedding(idx + self.offsets, self.wte.view(-1, C)) + self.wpe[:, :T].unsqueeze(1)
        for block in self.blocks:
            x = block(x)
        x = _layer_norm(x, self.ln_f).view(K, B * T, C)
        head = self.wte if self.lm_head is None else self.lm_head
        if self.fused_ce:
            return linear_cross_entropy(x, head, targets.view(K, B * T))
        logits = torch.matmul(x, head.transpose(1, 2)).float()
        losses = F.cross_entropy(logits.view(K * B * T, -1), targets.reshape(-1), reduction="none")
        return losses.view(K, B * T).mean(dim=1)


def clip_grad_norm_per_model(parameters, max_norm: float) -> torch.Tensor:
    """torch.nn.utils.clip_grad_norm_ for each model of a stack on its own: (K,) gradient norms before
    clipping; model k's gradients are scaled by min(1, max_norm / (norm_k + 1e-6))."""
    grads = [p.grad for p in parameters if p.grad is not None]
    K = grads[0].shape[0]
    norms = torch.stack([torch.linalg.vector_norm(g.reshape(K, -1), dim=1) for g in grads])  # (P, K)
    total = torch.linalg.vector_norm(norms, dim=0)
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(K, *[1] * (g.dim() - 1)).to(g.dtype))
    return total


@torch.no_grad()
def evaluate_stacked(model, batches, batch_size: int, n_models: int, device: str, autocast) -> dict[str, list[float]]:
    """{domain: [loss of each model]}: every model scores the same fixed validation windows."""
    model.eval()
    losses = {}
    for domain, (x, y) in batches.items():
        total = torch.zeros(n_models, dtype=torch.float64, device=device)
        for i in range(0, len(x), batch_size):
            xb, yb = (torch.from_numpy(a[i:i + batch_size]).to(device) for a in (x, y))
            with autocast():
                total += model(xb.expand(n_models, -1, -1), yb.expand(n_models, -1, -1)).double() * len(xb)
        losses[domain] = (total / len(x)).tolist()
    model.train()
    return losses


def train_many(data: DomainData | str | Path, mixtures: Sequence[Mapping[str, float]],
               config: TrainConfig = TrainConfig(), *, seeds: Sequence[int] | None = None,
               log: Callable[[int, str], None] | None = None,
               time_limit_s: float | None = None) -> list[TrainResult | Exception]:
    """Train one proxy per mixture, side by side (see the module docstring), with config's settings.

    seeds: one per mixture (default: config.seed for all). Returns, in mixture order, each model's
    TrainResult, or the exception that failed it alone: ValueError for an invalid mixture,
    FloatingPointError for a non-finite training loss (checked at every evaluation, as train()
    does), TimeoutError past time_limit_s seconds. An error common to all (a bad config, a dataset
    too small) raises. `log(i, line)` gets one line per evaluation of model i. cost["tokens_per_s"]
    is per model; the stack trains cost["stack"] times that.
    """
    t_start = time.perf_counter()
    log = log or (lambda i, line: None)
    data = data if isinstance(data, DomainData) else DomainData(data)
    seeds = [config.seed] * len(mixtures) if seeds is None else list(seeds)
    if len(seeds) != len(mixtures) or any(not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be one integer >= 0 per mixture ({len(mixtures)}), got {seeds!r}")
    device, use_compile, autocast = resolve_device(config)
    threads_before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)

    outcomes: list = [None] * len(mixtures)
    try:
        # 1. Data, steps, one sampler per model (an invalid mixture fails its model only), the stack.
        model_config = resolve_model(config, data.vocab_size)
        T, B = model_config.block_size, config.batch_size
        val_batches = validation_batches(data, T, config.eval_tokens)
        samplers = {}
        for i, weights in enumerate(mixtures):
            try:
                samplers[i] = MixtureSampler(data, weights, B, T, seed=seeds[i])
            except ValueError as e:
                outcomes[i] = e
        live = list(samplers)  # the mixtures in the stack, in stack order
        if not live:
            return outcomes
        K = len(live)
        tokens = config.tokens or default_tokens(model_config)
        max_steps = max(1, tokens // (B * T))
        evals, steady_from = eval_schedule(max_steps, config), steady_start(max_steps)
        fused_ce = use_fused_ce(config, model_config.vocab_size)
        models = []
        for i in live:
            torch.manual_seed(seeds[i])  # as train() does: model i starts where its solo run starts
            models.append(GPT(model_config, fused_ce=fused_ce))
        n_params, n_non_embedding = models[0].num_params(), models[0].num_params(non_embedding=True)
        model = StackedGPT(models, fused_ce=fused_ce).to(device)
        del models
        decay = [p for p in model.parameters() if p.dim() >= 3]  # each model's matrices and embeddings
        no_decay = [p for p in model.parameters() if p.dim() < 3]  # each model's LayerNorm scales
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                       {"params": no_decay, "weight_decay": 0.0}],
                                      lr=config.lr, betas=config.betas, fused=device == "cuda")
        forward = torch.compile(model) if use_compile else model
        # compiled, the per-model norms and scalings are a few fused kernels instead of two per tensor
        clip = torch.compile(clip_grad_norm_per_model) if use_compile else clip_grad_norm_per_model

        # 2. The loop: train()'s, with a model axis.
        curves = {i: {d: [] for d in data.val_domains} for i in live}
        train_losses, t_train, t_eval, t_steady = [math.nan] * K, 0.0, 0.0, 0.0
        t0 = time.perf_counter()
        for step in range(max_steps):
            if time_limit_s is not None and time.perf_counter() - t_start > time_limit_s:
                for i in live:
                    outcomes[i] = outcomes[i] or TimeoutError(
                        f"training must end within time_limit_s={time_limit_s:g} s, got to step {step} of {max_steps}")
                return outcomes
            lr = lr_at(step, max_steps, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batches = [samplers[i].next_batch() for i in live]
            x, y = (torch.from_numpy(np.stack([b[j] for b in batches])).to(device, non_blocking=True) for j in (0, 1))
            with autocast():
                losses = forward(x, y)
            losses.sum().backward()  # d(sum)/d(model k's parameters) = d loss_k / d(them)
            if config.grad_clip > 0:
                clip(list(model.parameters()), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step + 1 == steady_from:
                synchronize(device)
                t_steady = t_train + time.perf_counter() - t0

            if step + 1 in evals:
                train_losses = losses.detach().float().cpu().tolist()
                for slot, i in enumerate(live):
                    if outcomes[i] is None and not math.isfinite(train_losses[slot]):
                        outcomes[i] = FloatingPointError(f"the training loss must stay finite, got "
                                                         f"{train_losses[slot]} at step {step + 1}")
                if all(outcomes[i] is not None for i in live):
                    return outcomes  # every model diverged: nothing left to train
                t1 = time.perf_counter()
                t_train += t1 - t0
                val = evaluate_stacked(forward, val_batches, 2 * B, K, device, autocast)
                for slot, i in enumerate(live):
                    if outcomes[i] is not None:
                        continue
                    for d, v in val.items():
                        curves[i][d].append((step + 1, v[slot]))
                    scores = " ".join(f"{d} {v[slot]:.4f}" for d, v in val.items())
                    log(i, f"step {step + 1}/{max_steps} | {(step + 1) * B * T:,} tokens | lr {lr:.2e} "
                        f"| train {train_losses[slot]:.4f} | val {scores} | {t_train + t_eval:.1f} s "
                        f"| model {slot + 1} of {K}")
                t0 = time.perf_counter()
                t_eval += t0 - t1
    finally:
        torch.set_num_threads(threads_before)

    # 3. One TrainResult per model that trained to the end, as train() writes it.
    trained, seconds = max_steps * B * T, time.perf_counter() - t_start
    for slot, i in enumerate(live):
        if outcomes[i] is not None:
            continue
        cost = {"seconds": seconds, "train_seconds": t_train, "eval_seconds": t_eval, "tokens": trained,
                "params": n_params, "non_embedding_params": n_non_embedding,
                "tokens_per_s": trained / t_train if t_train > 0 else 0.0, "flops": 6.0 * n_params * trained,
                "steady_tokens_per_s": (max_steps - steady_from) * B * T / (t_train - t_steady)
                if steady_from and t_train > t_steady else 0.0, "stack": K}
        sampler = samplers[i]
        extra = {**sampler.stats(), "weights": sampler.weights, "steps": max_steps, "tokens_per_step": B * T,
                 "train_loss": train_losses[slot], "device": device, "compile": use_compile, "fused_ce": fused_ce,
                 "dtype": "bfloat16" if device == "cuda" else "float32", "torch": torch.__version__,
                 "stack": K, "stack_index": slot,
                 "config": {**asdict(config), "seed": seeds[i], "model": model_config.to_dict(), "tokens": trained},
                 "dataset": str(data.path)}
        outcomes[i] = TrainResult(losses={d: c[-1][1] for d, c in curves[i].items()}, curves=curves[i], cost=cost,
                                  extra=extra)
    return outcomes
