"""Train one proxy on one mixture from the shell; `bomix train` is the same command.

    python -m bomix.train DATA_DIR --mixture MIXTURE.json --metrics OUT.json [--seed 0] [--preset tiny]
        [--tokens N] [--device auto] [--eval-every N] [--compile | --no-compile] [--batch-size B] ...

Several --mixture/--metrics pairs train that many proxies at once, their parameters stacked on a model
axis in one process (bomix.train.stacked: for presets under about 5M parameters, a GPU trains 4-8 at
about the cost of one); each model gets its mixture file's seed, and writes its own OUT.json.

MIXTURE.json is {"weights": {domain: w}, "seed": int, "trial": int} (seed and trial optional) or a
flat {domain: w}; --seed overrides its seed. OUT.json, written atomically when training ends:

    {"losses": {domain: loss}, "curves": {domain: [[step, loss], ...]},
     "cost": {"seconds", "tokens", "params", "tokens_per_s", ...}, "extra": {...}}

losses are nats/token on each validation domain's fixed validation windows. Exit status 0 on
success, 2 on bad input (one line on stderr), 1 with a traceback on anything else. With several
mixtures, a model that fails (an invalid mixture, a diverged loss) writes no OUT.json and its reason
goes to stderr; the others' files are written; the status is then 2 if every failure was bad input,
else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _count(text: str) -> int:
    """An integer that may be written 5e6 or 5_000_000."""
    value = float(text.replace("_", ""))
    if value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments, shared by `python -m bomix.train` and `bomix train`."""
    parser.add_argument("data", type=Path, help="dataset directory (bomix data build writes one)")
    parser.add_argument("--mixture", type=Path, required=True, action="append",
                        help="JSON: {domain: weight} or {\"weights\": {...}}; repeat to train several, stacked")
    parser.add_argument("--metrics", type=Path, required=True, action="append",
                        help="where to write the metrics JSON; one per --mixture, in the same order")
    parser.add_argument("--seed", type=int, default=None, help="overrides the mixture files' seeds (default 0)")
    parser.add_argument("--preset", default="tiny",  # no choices=: listing PRESETS would import torch
                        help="model size: tiny, small, 1.5m, 5m or seed25m (bomix.train.model.PRESETS; default tiny)")
    parser.add_argument("--tokens", type=_count, default=None, help="training tokens (default 20 x parameters)")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per step (default 16)")
    parser.add_argument("--block-size", type=int, default=None, help="sequence length (default: the preset's)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the preset's, "
                        "bomix.train.trainer.PRESET_LR)")
    parser.add_argument("--eval-every", type=int, default=None, help="evaluate every N steps (default: 5 evaluations)")
    parser.add_argument("--eval-tokens", type=_count, default=65536,
                        help="validation tokens per domain (default 65536)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile (default: on for cuda, off for cpu)")
    parser.add_argument("--fused-ce", action=argparse.BooleanOptionalAction, default=None,
                        help="chunked head + cross-entropy, no whole logits (default: on for vocabularies of "
                             ">= 16384 ids)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def read_mixture(path: Path) -> tuple[dict[str, float], int | None, int | None]:
    """(weights, seed or None, trial or None) from a mixture file."""
    try:
        spec = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"--mixture must be a readable JSON file, got {str(path)!r}: {e}") from None
    if isinstance(spec, dict) and isinstance(spec.get("weights"), dict):
        return spec["weights"], spec.get("seed"), spec.get("trial")
    if isinstance(spec, dict) and all(isinstance(v, (int, float)) for v in spec.values()):
        return spec, None, None
    raise ValueError(f"--mixture must hold {{domain: weight}} or {{\"weights\": {{domain: weight}}, ...}}, "
                     f"got {spec!r:.200}")


def write_json_atomic(path: Path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def config_from_args(args: argparse.Namespace, seed: int = 0):
    """The TrainConfig the parsed arguments describe (the seed comes from the mixture file or --seed)."""
    from bomix.train.trainer import TrainConfig

    return TrainConfig(preset=args.preset, tokens=args.tokens, batch_size=args.batch_size,
                       block_size=args.block_size, lr=args.lr, eval_every=args.eval_every,
                       eval_tokens=args.eval_tokens, device=args.device, compile=args.compile,
                       fused_ce=args.fused_ce, threads=args.threads, seed=seed)


def run(args: argparse.Namespace) -> int:
    """Train as `args` say and write the metrics; returns the exit status."""
    from bomix.train.trainer import train

    try:
        if len(args.mixture) != len(args.metrics):
            raise ValueError(f"--mixture and --metrics must come in pairs, got {len(args.mixture)} --mixture and "
                             f"{len(args.metrics)} --metrics")
        specs = [read_mixture(path) for path in args.mixture]
        seeds = [args.seed if args.seed is not None else (seed if seed is not None else 0) for _, seed, _ in specs]
        config = config_from_args(args, seeds[0])
        if len(specs) == 1:
            results = [train(args.data, specs[0][0], config, log=lambda line: print(line, flush=True))]
        else:
            from bomix.train.stacked import train_many

            results = train_many(args.data, [weights for weights, _, _ in specs], config, seeds=seeds,
                                 log=lambda i, line: print(f"[{args.metrics[i].name}] {line}", flush=True))
    except ValueError as e:
        print(f"bomix.train: error: {e}", file=sys.stderr)
        return 2
    failures = []
    for (_, _, trial), path, result in zip(specs, args.metrics, results):
        if isinstance(result, Exception):
            print(f"bomix.train: error: {path} not written: {type(result).__name__}: {result}", file=sys.stderr)
            failures.append(result)
            continue
        metrics = result.to_dict()
        metrics["extra"]["trial"] = trial
        write_json_atomic(path, metrics)
        mean = sum(result.losses.values()) / len(result.losses)
        print(f"wrote {path}: mean loss {mean:.4f} over {len(result.losses)} domains, "
              f"{result.cost['tokens']:,} tokens in {result.cost['seconds']:.1f} s", flush=True)
    if failures:
        return 2 if all(isinstance(e, ValueError) for e in failures) else 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bomix.train", description="Train the proxy GPT on one mixture.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
