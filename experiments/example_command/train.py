"""A template training script for bomix's `command` evaluator. IT TRAINS NOTHING.

It shows the protocol a real training script follows, with a toy loss function standing in for
the training run. Copy it, keep the reading and writing parts, and put your training where it says
"YOUR TRAINING GOES HERE".

The protocol (bomix/evaluators/command.py has the full version):
  in:  the mixture file, {"weights": {domain: weight}, "seed": int, "trial": int}, at --mixture or
       $BOMIX_MIXTURE (each weight is also in $BOMIX_WEIGHT_<DOMAIN>)
  out: a metrics file at --metrics or $BOMIX_METRICS, written at the end, then exit status 0:
       {"losses": {validation set: loss in nats/token}, "curves": {name: [[step, loss], ...]},
        "cost": {name: number}, "extra": {...}}       (only "losses" is required)
  A non-zero exit status (any uncaught exception) tells bomix the trial failed; what the script
  prints to stderr is quoted in the failed trial's error.

The toy loss (a data-mixing-law shape, Ye et al. 2024): for validation domain i,
    L_i(r) = c_i + a_i * exp(-(3 r_i + 0.5 sum_{j != i} r_j))
so a domain's loss falls as its own weight r_i grows and a little as the others grow; c_i in
[2.5, 4.0) and a_i in [1.0, 2.0) are fixed per domain name (CRC32 of the name, so every run agrees).
Seeded Gaussian noise (sd 0.01) plays the part of seed-to-seed variation, and the "curve" decays as
L_i(r) + 1.5 (sqrt(steps / step) - 1), reaching L_i(r) at the last step. None of this is a claim
about real data; it only gives the optimizer something with an interior optimum to find.

Run by hand:  python experiments/example_command/train.py --mixture m.json --metrics out.json
where m.json is {"weights": {"books": 0.5, "cc": 0.5}, "seed": 0, "trial": 0}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np


def toy_losses(weights: dict[str, float], seed: int, noise_sd: float = 0.01) -> dict[str, float]:
    """Per-domain toy losses (nats/token, in name) of a mixture; see the module docstring."""
    rng = np.random.default_rng(seed)
    r = np.array(list(weights.values()), dtype=float)
    losses = {}
    for i, name in enumerate(weights):
        u = zlib.crc32(name.encode()) / 2**32  # a fixed number in [0, 1) per domain name
        c, a = 2.5 + 1.5 * u, 1.0 + (u * 7.0) % 1.0
        transfer = 3.0 * r[i] + 0.5 * (r.sum() - r[i])
        losses[name] = float(c + a * np.exp(-transfer) + noise_sd * rng.standard_normal())
    return losses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mixture", default=os.environ.get("BOMIX_MIXTURE"),
                        help="mixture JSON to read (default $BOMIX_MIXTURE)")
    parser.add_argument("--metrics", default=os.environ.get("BOMIX_METRICS"),
                        help="metrics JSON to write (default $BOMIX_METRICS)")
    parser.add_argument("--steps", type=int, default=1000, help="training steps (here: only the curve's length)")
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds to sleep, to mimic a training run")
    args = parser.parse_args()
    if not args.mixture or not args.metrics:
        parser.error("give --mixture and --metrics, or run under bomix (which sets BOMIX_MIXTURE and BOMIX_METRICS)")

    mixture = json.loads(Path(args.mixture).read_text())
    weights, seed = mixture["weights"], int(mixture["seed"])
    print(f"trial {mixture.get('trial')}: seed {seed}, weights " +
          ", ".join(f"{d}={w:.3f}" for d, w in weights.items()), flush=True)

    # ---- YOUR TRAINING GOES HERE: sample each sequence's domain with probability weights[domain],
    # train with `seed`, evaluate every validation set, and keep (step, loss) points for the curves.
    start = time.time()
    time.sleep(args.sleep)
    losses = toy_losses(weights, seed)
    eval_steps = [args.steps // 4, args.steps // 2, 3 * args.steps // 4, args.steps]
    curves = {name: [[s, loss + 1.5 * (np.sqrt(args.steps / s) - 1.0)] for s in eval_steps if s > 0]
              for name, loss in losses.items()}
    # ---- end of the stand-in

    metrics = {"losses": losses, "curves": curves, "cost": {"steps": args.steps, "seconds": time.time() - start},
               "extra": {"note": "toy loss from experiments/example_command/train.py, no training"}}
    tmp = Path(args.metrics + ".tmp")
    tmp.write_text(json.dumps(metrics, indent=2))
    tmp.replace(args.metrics)  # written whole or not at all
    print("mean loss " + f"{np.mean(list(losses.values())):.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
