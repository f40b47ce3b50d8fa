"""bomix's proxy trainer on one GPU: throughput and MFU beside a plain nanoGPT loop, then a logged swarm.

Why: the trainer's CUDA path (bf16 autocast, torch.compile, fused AdamW, the chunked loss of
bomix/train/fused_ce.py, K models stacked by bomix/train/stacked.py) had never been measured. One
script, one machine, so every figure is also a ratio to a baseline measured minutes apart.

Phase 1, throughput. For presets 1.5m, seed25m and 5m (K = 1; K = 4 and 8 stacked for the small
ones), bomix's own train()/train_many() on random tokens at the preset's vocabulary, 16 sequences
per step per model; cost["steady_tokens_per_s"] leaves out the first 10 steps (compilation). Beside
each preset at K = 1, a plain compiled nanoGPT-style loop of the same shape (defined below: same
blocks, plain F.cross_entropy on whole logits, one fixed batch already on the device, so no data
loading at all). Last, if time is left, seed25m again with whole logits instead of the chunked loss
(--no-fused-ce's effect). MFU = tokens/s x FLOPs per token / peak, where per token and per model
    FLOPs = 6 * (12 * n_layer * d**2 + vocab * d) + 12 * n_layer * block_size * d
(6 x the matmul parameters, the head included, the token embedding lookup not; plus attention's
score and value matmuls over the full T x T square, PaLM's convention, causal masking not discounted)
and the peak is the dense bf16 figure of PEAK_BF16_TFLOPS for the device name (H100/H200 SXM 989.4
TFLOPS), or --peak-tflops.

Phase 2, a real logged swarm on the 7-domain corpus of experiments/build_corpus.py (Debian packages
only, no download): 4 mixtures (the token shares, uniform, two Dirichlet draws) x 4 seeds for the
noise, then --swarm-runs (128) mixtures drawn from Dirichlet(--concentration x token shares), at
preset 1.5m, K stacked per batch through ProxyEvaluator(stack=K).evaluate_many, per-domain
validation losses. Tokens per run: 20 x parameters, or fewer so the swarm fits its time (the run's
value is in the JSON). Written as olmix's ratios.csv + metrics.csv (run, name, index, then domains /
losses; bomix/export.py) in OUT/noise/ and OUT/swarm/, each trial's files in OUT/trials/<n>/.

Time: each measurement and each swarm batch starts only if its phase has time left for it (by a
guessed or an already measured duration), a phase still running HARD_GRACE_S past its end is
interrupted (SIGALRM), and OUT/gpu_bench.json (every figure and timing) is rewritten after each
measurement and batch, so a run cut short keeps what it measured. Default budget 540 s in all.

On a GPU machine (a CUDA build of torch). The Debian packages may be missing there, so build the
dataset on a CPU machine first (about 2 minutes) and carry data/gpu-bench-bpe8k (~35 MB) along:

    python experiments/build_corpus.py --install      # data/corpus/text (needs the Debian packages)
    python experiments/gpu_bench.py --prepare         # -> data/gpu-bench-bpe8k (BPE, 8192 ids)
    python experiments/gpu_bench.py --out $OUT/gpu_bench                # on the GPU: < 10 minutes

Rehearsal of the whole pipeline at toy size on CPU (tiny preset, 512-id BPE of data/corpus/small):

    python experiments/gpu_bench.py --toy --device cpu --out runs/gpu_bench_toy
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing bomix

from bomix.evaluators.base import TrialContext  # noqa: E402
from bomix.evaluators.proxy import ProxyEvaluator  # noqa: E402
from bomix.export import KEYS, read_runs  # noqa: E402
from bomix.train.data import DomainData, build_dataset  # noqa: E402
from bomix.train.model import GPTConfig, count_params, get_preset  # noqa: E402
from bomix.train.stacked import train_many  # noqa: E402
from bomix.train.trainer import TrainConfig, resolve_model, synchronize, train  # noqa: E402

# Dense bf16 tensor-core peaks from the vendors' data sheets, by a substring of the device name,
# most specific first (GH200 before H200, H100 PCIe before H100).
PEAK_BF16_TFLOPS = [("GH200", 989.4), ("H200", 989.4), ("H100 PCIe", 756.0), ("H100 NVL", 835.0),
                    ("H100", 989.4), ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.1), ("A10", 125.0)]
# (preset, K stacked, fused_ce: None = the trainer's rule), by priority; the last compares the chunked
# loss with whole logits at seed25m's 50,304 ids
PLAN = [("1.5m", 1, None), ("1.5m", 8, None), ("seed25m", 1, None), ("1.5m", 4, None), ("5m", 1, None),
        ("5m", 8, None), ("5m", 4, None), ("seed25m", 1, False)]
TOY_PLAN = [("tiny", 1, None), ("tiny", 4, None), ("tiny", 1, True)]
# Guessed wall time of one K = 1 measurement and its baseline, compiling included (torch.compile of a
# 12-layer GPT takes ~40 s on an H100); a stacked one needs about 60% of it (no baseline).
EST_S = {"seed25m": 120.0, "5m": 50.0, "1.5m": 35.0, "tiny": 4.0}
SWARM_PRESET, TOY_PRESET = "1.5m", "tiny"
HARD_GRACE_S = 20.0  # a phase still running this long after its deadline is interrupted
DATASET, CORPUS = ROOT / "data" / "gpu-bench-bpe8k", ROOT / "data" / "corpus" / "text"
TOY_DATASET, TOY_CORPUS = ROOT / "data" / "gpu-bench-toy", ROOT / "data" / "corpus" / "small"


def flops_per_token(cfg: GPTConfig) -> float:
    """Training FLOPs per token of one model (see the module docstring)."""
    d, L = cfg.n_embd, cfg.n_layer
    return 6.0 * (12 * L * d * d + cfg.vocab_size * d) + 12.0 * L * cfg.block_size * d


def peak_flops(device: str, override_tflops: float | None) -> tuple[float | None, str]:
    if override_tflops:
        return override_tflops * 1e12, "--peak-tflops"
    if device != "cuda":
        return None, "no peak known for a CPU (pass --peak-tflops)"
    name = torch.cuda.get_device_name()
    for key, tflops in PEAK_BF16_TFLOPS:
        if key in name:
            return tflops * 1e12, f"{name}: dense bf16 {tflops} TFLOPS ({key})"
    return None, f"{name}: not in PEAK_BF16_TFLOPS (pass --peak-tflops)"


def _interrupt(signum, frame):
    raise TimeoutError(f"interrupted {HARD_GRACE_S:g} s past the phase's deadline (time guard)")


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


# -- phase 1: throughput -----------------------------------------------------------------------------

def synthetic_dataset(root: Path, vocab: int, block: int, tokens: int = 2_000_000) -> DomainData:
    """Two domains of random token ids in build_dataset's layout: throughput does not depend on text."""
    path = root / f"random-{vocab}"
    dtype = np.uint16 if vocab <= 2 ** 16 else np.uint32
    rng = np.random.default_rng(0)
    domains = {}
    for d in ("a", "b"):
        (path / d).mkdir(parents=True, exist_ok=True)
        rng.integers(0, vocab, tokens, dtype=dtype).tofile(path / d / "train.bin")
        rng.integers(0, vocab, 4 * block + 1, dtype=dtype).tofile(path / d / "val.bin")
        domains[d] = {"train_tokens": tokens, "val_tokens": 4 * block + 1}
    write_json(path / "manifest.json", {"format": "bomix-dataset/1", "vocab_size": vocab,
                                        "dtype": np.dtype(dtype).name, "domains": domains})
    return DomainData(path)


class PlainBlock(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(c.n_embd, bias=False), nn.LayerNorm(c.n_embd, bias=False)
        self.qkv, self.proj = nn.Linear(c.n_embd, 3 * c.n_embd, bias=False), nn.Linear(c.n_embd, c.n_embd, bias=False)
        self.fc, self.out = nn.Linear(c.n_embd, 4 * c.n_embd, bias=False), nn.Linear(4 * c.n_embd, c.n_embd, bias=False)
        self.n_head = c.n_head

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in self.qkv(self.ln_1(x)).split(C, dim=2))
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C))
        return x + self.out(F.gelu(self.fc(self.ln_2(x))))


class PlainGPT(nn.Module):
    """The minimal nanoGPT-style baseline: bomix's shape, nothing else."""

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(c.vocab_size, c.n_embd), nn.Embedding(c.block_size, c.n_embd)
        self.blocks = nn.Sequential(*[PlainBlock(c) for _ in range(c.n_layer)])
        self.ln_f, self.head = nn.LayerNorm(c.n_embd, bias=False), nn.Linear(c.n_embd, c.vocab_size, bias=False)
        if c.tie_embeddings:
            self.head.weight = self.wte.weight
        for module in self.modules():  # GPT-2's N(0, 0.02), so the loss starts near log(vocab)
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    def forward(self, idx, targets):
        x = self.blocks(self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device)))
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1))


def baseline(cfg: GPTConfig, batch: int, steps: int, device: str, use_compile: bool) -> dict:
    """tokens/s of the plain loop: compiled, bf16 autocast on cuda, fused AdamW, one batch on the device."""
    torch.manual_seed(0)
    model = PlainGPT(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device == "cuda")
    forward = torch.compile(model) if use_compile else model
    x, y = torch.randint(0, cfg.vocab_size, (2, batch, cfg.block_size), device=device)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")
    t_start, warm = time.perf_counter(), min(10, steps // 2)
    for step in range(steps):
        if step == warm:
            synchronize(device)
            t0 = time.perf_counter()
        with autocast:
            loss = forward(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    synchronize(device)
    seconds = time.perf_counter() - t0
    return {"tokens_per_s": (steps - warm) * batch * cfg.block_size / seconds, "seconds": time.perf_counter() - t_start,
            "loss": loss.item()}


def bomix_run(data: DomainData, preset: str, K: int, fused_ce: bool | None, args, device: str) -> dict:
    """Steady tokens/s of bomix's train() (K = 1) or train_many() (K stacked), all models together."""
    config = TrainConfig(preset=preset, tokens=args.steps * args.batch_size * get_preset(preset).block_size,
                         batch_size=args.batch_size, eval_steps=(), eval_tokens=get_preset(preset).block_size,
                         device=device, compile=args.compile, threads=args.threads, fused_ce=fused_ce)
    mix = {"a": 0.5, "b": 0.5}
    t0 = time.perf_counter()
    results = [train(data, mix, config)] if K == 1 else train_many(data, [mix] * K, config, seeds=list(range(K)))
    bad = [r for r in results if isinstance(r, Exception)]
    if bad:
        raise bad[0]
    cost, extra = results[0].cost, results[0].extra
    return {"tokens_per_s": K * cost["steady_tokens_per_s"], "seconds": time.perf_counter() - t0,
            "fused_ce": extra["fused_ce"], "compile": extra["compile"], "train_loss": extra["train_loss"]}


def throughput(report: dict, args, device: str, deadline: float, save) -> None:
    peak, _ = peak_flops(device, args.peak_tflops)
    rows, scratch = report["throughput"], Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    for preset, K, fused_ce in (TOY_PLAN if args.toy else PLAN):
        cfg = get_preset(preset)
        row = {"preset": preset, "K": K, "fused_ce_asked": fused_ce, "batch_size": args.batch_size,
               "block_size": cfg.block_size, "vocab_size": cfg.vocab_size, "n_embd": cfg.n_embd,
               "n_layer": cfg.n_layer, "params": count_params(cfg), "flops_per_token": flops_per_token(cfg)}
        rows.append(row)
        before = [r["bomix"]["seconds"] for r in rows if r["preset"] == preset and "seconds" in r.get("bomix", {})]
        est = max([EST_S[preset] * (1.0 if K == 1 and fused_ce is None else 0.6)] + [1.2 * t for t in before])
        if time.monotonic() + est > deadline:
            row["skipped"] = f"time guard: {deadline - time.monotonic():.0f} s left, needs ~{est:.0f} s"
            save()
            continue
        data = synthetic_dataset(scratch, cfg.vocab_size, cfg.block_size)
        use_compile = args.compile if args.compile is not None else device == "cuda"
        measures = {"bomix": lambda: bomix_run(data, preset, K, fused_ce, args, device)}
        if K == 1 and fused_ce is None:
            measures["baseline"] = lambda: baseline(cfg, args.batch_size, args.steps, device, use_compile)
        for what, measure in measures.items():
            if time.monotonic() > deadline:  # the bomix run overran: its baseline waits for another run
                row[what] = {"error": "skipped: time guard"}
                continue
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            try:
                row[what] = measure()
            except Exception as e:  # noqa: BLE001 - one failed measurement must not end the run
                row[what] = {"error": f"{type(e).__name__}: {e}"[:2000]}
            if device == "cuda":
                row[what]["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 1e9
                torch.cuda.empty_cache()
            if "tokens_per_s" in row[what]:
                row[what]["mfu"] = row[what]["tokens_per_s"] * row["flops_per_token"] / peak if peak else None
            figure = (f"{row[what]['tokens_per_s'] / 1e6:.3f}M tokens/s, {row[what]['seconds']:.1f} s"
                      if "tokens_per_s" in row[what] else row[what]["error"])
            print(f"{preset:>8} K={K} fused_ce={fused_ce} {what:>8}: {figure}", flush=True)
            save()
        base = next((r["baseline"].get("tokens_per_s") for r in rows if r["preset"] == preset and "baseline" in r
                     and "tokens_per_s" in r["baseline"]), None)
        if base and "tokens_per_s" in row.get("bomix", {}):
            row["bomix_over_baseline_k1"] = row["bomix"]["tokens_per_s"] / base
        save()


# -- phase 2: the swarm ------------------------------------------------------------------------------

def prepare(toy: bool) -> Path:
    """The swarm's dataset: built from the corpus (built first from Debian packages if missing)."""
    dataset, corpus = (TOY_DATASET, TOY_CORPUS) if toy else (DATASET, CORPUS)
    if (dataset / "manifest.json").exists():
        return dataset
    if not corpus.exists():
        subprocess.run([sys.executable, str(ROOT / "experiments" / "build_corpus.py"), "-o", str(corpus)]
                       + (["--small"] if toy else []), check=True)
    build_dataset(corpus, dataset, tokenizer="bpe", vocab_size=512 if toy else 8192,
                  sample_bytes=200_000 if toy else 4_000_000, val_tokens=16_384 if toy else 131_072,
                  log=lambda line: print(line, flush=True))
    return dataset


def write_olmix(directory: Path, rows: list[dict], domains: list[str]) -> None:
    """ratios.csv and metrics.csv in olmix's convention, replaced atomically."""
    import pandas as pd

    directory.mkdir(parents=True, exist_ok=True)
    keys = [{k: r[k] for k in KEYS} for r in rows]
    losses = list(dict.fromkeys(n for r in rows for n in r["losses"]))
    for name, table, columns in (("ratios", [{**k, **r["weights"]} for k, r in zip(keys, rows)], domains),
                                 ("metrics", [{**k, **r["losses"]} for k, r in zip(keys, rows)], losses)):
        pd.DataFrame(table, columns=[*KEYS, *columns]).to_csv(directory / f"{name}.csv.tmp", index=False)
        os.replace(directory / f"{name}.csv.tmp", directory / f"{name}.csv")


def swarm(report: dict, args, device: str, deadline: float, save) -> None:
    data = DomainData(args.data or prepare(args.toy))
    preset = TOY_PRESET if args.toy else SWARM_PRESET
    domains, model = data.domains, resolve_model(TrainConfig(preset=preset), data.vocab_size)
    shares = np.array([data.train_tokens[d] for d in domains], dtype=float)
    shares /= shares.sum()
    rng = np.random.default_rng(args.seed)
    draws = rng.dirichlet(args.concentration * shares, size=args.swarm_runs + 2)
    noise = [shares, np.full(len(domains), 1 / len(domains)), draws[-2], draws[-1]]
    runs = [("noise", f"noise-m{j}-s{s}", noise[j], s) for j in range(4) for s in range(args.noise_seeds)]
    runs += [("swarm", f"swarm-{i:04d}", draws[i], 1000 + i) for i in range(args.swarm_runs)]
    rate = next((r["bomix"].get("tokens_per_s") for r in report["throughput"] if r["preset"] == preset
                 and r["K"] == args.stack and r["fused_ce_asked"] is None and "bomix" in r), None) or (
        2e4 if device == "cpu" else 5e6)
    tokens = args.swarm_tokens or int(min(20 * count_params(model),
                                          0.6 * rate * max(0.0, deadline - time.monotonic() - 30) / len(runs)))
    tokens = max(tokens, args.batch_size * model.block_size)
    extra = f"--batch-size {args.batch_size} --eval-tokens {args.eval_tokens}" + (
        f" --threads {args.threads}" if args.threads else "")
    ev = ProxyEvaluator(data=str(data.path), preset=preset, tokens=tokens, device=device, compile=args.compile,
                        stack=args.stack, extra_args=extra)
    info = report["swarm"] = {"dataset": str(data.path), "domains": domains, "token_shares": shares.tolist(),
                              "preset": preset, "params": count_params(model), "tokens_per_run": tokens,
                              "tokens_per_param": tokens / count_params(model), "stack": args.stack,
                              "concentration": args.concentration, "planned_runs": len(runs), "batches": [],
                              "failed": {}, "skipped": 0}
    done = {"noise": [], "swarm": []}
    for start in range(0, len(runs), args.stack):
        batch = runs[start:start + args.stack]
        last = info["batches"][-1]["seconds"] if info["batches"] else EST_S[preset]
        if time.monotonic() + last > deadline:
            info["skipped"] = len(runs) - start
            info["stopped"] = f"time guard: {deadline - time.monotonic():.0f} s left, a batch took {last:.0f} s"
            break
        contexts = [TrialContext(number=start + j, seed=seed, directory=Path(args.out) / "trials" / f"{start + j:04d}")
                    for j, (_, _, _, seed) in enumerate(batch)]
        t0 = time.perf_counter()
        results = ev.evaluate_many([dict(zip(domains, map(float, w))) for _, _, w, _ in batch], contexts)
        seconds = time.perf_counter() - t0
        info["batches"].append({"first_trial": start, "size": len(batch), "seconds": seconds,
                                "tokens_per_s": len(batch) * tokens / seconds})
        for (kind, run, w, seed), context, result in zip(batch, contexts, results):
            if isinstance(result, Exception):
                info["failed"][run] = f"{type(result).__name__}: {result}"[:500]
                continue
            done[kind].append({"run": run, "name": kind, "index": context.number, "seed": seed,
                               "weights": dict(zip(domains, map(float, w))), "losses": result.losses})
        for kind, rows in done.items():
            if rows:
                write_olmix(Path(args.out) / kind, rows, domains)
        info["completed"] = {k: len(v) for k, v in done.items()}
        print(f"swarm: trials {start}-{start + len(batch) - 1} in {seconds:.1f} s "
              f"({len(batch) * tokens / seconds / 1e6:.2f}M tokens/s)", flush=True)
        save()
    for kind in done:  # read the files back as bomix reads olmix's: one row per run, rows on the simplex
        if done[kind]:
            _, ratios, metrics, cols, losses = read_runs(Path(args.out) / kind / "ratios.csv",
                                                         Path(args.out) / kind / "metrics.csv")
            sums = ratios[cols].sum(axis=1)
            info[f"{kind}_readback"] = {"rows": len(ratios), "domains": cols, "losses": losses,
                                        "max_sum_error": float((sums - 1).abs().max()),
                                        "finite": bool(np.isfinite(metrics[losses].to_numpy()).all())}
    save()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu_bench")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--toy", action="store_true", help="everything at toy size (a CPU rehearsal)")
    p.add_argument("--prepare", action="store_true", help="only build the swarm's dataset, then stop")
    p.add_argument("--data", type=Path, default=None, help="the swarm's dataset (default: built or found here)")
    p.add_argument("--budget-s", type=float, default=540.0, help="whole run, seconds (default 540)")
    p.add_argument("--throughput-s", type=float, default=None, help="phase 1's share (default: half the budget)")
    p.add_argument("--steps", type=int, default=None, help="steps per throughput measurement (default 200; toy 12)")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per step per model (default 16)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="default: on for cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, overriding the table")
    p.add_argument("--stack", type=int, default=None, help="models per swarm batch (default 8; toy 4)")
    p.add_argument("--swarm-runs", type=int, default=None, help="Dirichlet mixtures (default 128; toy 8)")
    p.add_argument("--noise-seeds", type=int, default=None, help="seeds for each of 4 noise mixtures (4; toy 2)")
    p.add_argument("--swarm-tokens", type=int, default=None, help="tokens per run (default: fit the time left)")
    p.add_argument("--eval-tokens", type=int, default=None, help="validation tokens per domain (65536; toy 4096)")
    p.add_argument("--concentration", type=float, default=20.0, help="Dirichlet alpha = this x token shares")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    toy = {"steps": 12, "stack": 4, "swarm_runs": 8, "noise_seeds": 2, "eval_tokens": 4096, "swarm_tokens": 16_384}
    full = {"steps": 200, "stack": 8, "swarm_runs": 128, "noise_seeds": 4, "eval_tokens": 65536, "swarm_tokens": None}
    for key, value in (toy if args.toy else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.prepare:
        print(f"dataset: {prepare(args.toy)}")
        return
    start = time.monotonic()
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device.replace("auto", "cpu")
    torch._dynamo.config.cache_size_limit = 64  # many shapes in one process: never fall back to eager silently
    args.out.mkdir(parents=True, exist_ok=True)
    peak, source = peak_flops(device, args.peak_tflops)
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor()
    report = {"meta": {"device": device, "name": name,
                       "peak_flops": peak, "peak_source": source, "torch": torch.__version__,
                       "args": vars(args), "started": time.strftime("%Y-%m-%d %H:%M:%S")},
              "flops_per_token": "6 * (12 * n_layer * d**2 + vocab * d) + 12 * n_layer * block_size * d",
              "throughput": [], "phases": {}}
    path = args.out / "gpu_bench.json"

    def save():
        report["total_seconds"] = time.monotonic() - start
        write_json(path, report)

    end = start + args.budget_s
    for name, phase, deadline in (("throughput", throughput, start + (args.throughput_s or 0.5 * args.budget_s)),
                                  ("swarm", swarm, end - 10)):
        t0 = time.monotonic()
        signal.signal(signal.SIGALRM, _interrupt)
        signal.setitimer(signal.ITIMER_REAL, max(1.0, deadline + HARD_GRACE_S - t0))
        try:
            phase(report, args, device, deadline, save)
            status = "done"
        except Exception as e:  # noqa: BLE001 - the other phase and the JSON still matter
            status = f"error: {type(e).__name__}: {e}"[:2000]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        report["phases"][name] = {"seconds": time.monotonic() - t0, "budget_s": deadline - t0, "status": status}
        save()
        print(f"phase {name}: {status} in {time.monotonic() - t0:.1f} s", flush=True)
    print(f"wrote {path} in {time.monotonic() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
