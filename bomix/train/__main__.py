"""Train one proxy on one mixture from the shell; `bomix train` is the same command.

    python -m bomix.train DATA_DIR --mixture MIXTURE.json --metrics OUT.json [--seed 0] [--preset tiny]
        [--tokens N] [--device auto] [--eval-every N] [--compile | --no-compile] [--batch-size B] ...

MIXTURE.json is {"weights": {domain: w}, "seed": int, "trial": int} (seed and trial optional) or a
flat {domain: w}; --seed overrides its seed. OUT.json, written atomically when training ends:

    {"losses": {domain: loss}, "curves": {domain: [[step, loss], ...]},
     "cost": {"seconds", "tokens", "params", "tokens_per_s", ...}, "extra": {...}}

losses are nats/token on each validation domain's fixed validation windows. Exit status 0 on
success, 2 on bad input (one line on stderr), 1 with a traceback on anything else.
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
    parser.add_argument("--mixture", type=Path, required=True, help="JSON: {domain: weight} or {\"weights\": {...}}")
    parser.add_argument("--metrics", type=Path, required=True, help="where to write the metrics JSON")
    parser.add_argument("--seed", type=int, default=None, help="overrides the mixture file's seed (default 0)")
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


def run(args: argparse.Namespace) -> int:
    """Train as `args` say and write the metrics; returns the exit status."""
    from bomix.train.trainer import TrainConfig, train

    try:
        weights, seed, trial = read_mixture(args.mixture)
        seed = args.seed if args.seed is not None else (seed if seed is not None else 0)
        config = TrainConfig(preset=args.preset, tokens=args.tokens, batch_size=args.batch_size,
                             block_size=args.block_size, lr=args.lr, eval_every=args.eval_every,
                             eval_tokens=args.eval_tokens, device=args.device, compile=args.compile,
                             threads=args.threads, seed=seed)
        result = train(args.data, weights, config, log=lambda line: print(line, flush=True))
    except ValueError as e:
        print(f"bomix.train: error: {e}", file=sys.stderr)
        return 2
    metrics = result.to_dict()
    metrics["extra"]["trial"] = trial
    write_json_atomic(args.metrics, metrics)
    mean = sum(result.losses.values()) / len(result.losses)
    print(f"wrote {args.metrics}: mean loss {mean:.4f} over {len(result.losses)} domains, "
          f"{result.cost['tokens']:,} tokens in {result.cost['seconds']:.1f} s", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bomix.train", description="Train the proxy GPT on one mixture.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
