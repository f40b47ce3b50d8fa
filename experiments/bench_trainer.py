"""The built-in proxy trainer on the real offline corpus: how long a CPU trial takes, and whether
the mixture moves the losses it should.

Needs the small corpus (one command, about 10 s, see experiments/corpus/README.md):

    python experiments/build_corpus.py --small          # -> data/corpus/small (7 domains, 1 MB each)
    python experiments/bench_trainer.py                  # builds data/small-bpe1k on first use

1. time   one trial of the smallest preset ("tiny") at its default token budget (20 tokens per
          parameter) on the uniform mixture, with 1 and with 2 torch threads. Prints wall time,
          tokens/s and the mean validation loss.
2. signal for each domain d, the validation loss of d after training with d's weight raised to 0.4
          (the others sharing the rest) and lowered to 0.02, two seeds each, at a reduced budget.
          Prints the drop in d's loss and the largest seed-to-seed difference seen: a real signal
          is a drop well beyond that spread.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "data" / "corpus" / "small"
DATA = ROOT / "data" / "small-bpe1k"


def ensure_dataset() -> None:
    if (DATA / "manifest.json").exists():
        return
    if not SOURCE.exists():
        raise SystemExit(f"{SOURCE} not found: run `python experiments/build_corpus.py --small` first")
    subprocess.run([sys.executable, "-m", "bomix.cli", "data", "build", str(SOURCE), "-o", str(DATA),
                    "--vocab-size", "1024"], check=True)


def shares(domains, focus: str, weight: float) -> dict[str, float]:
    rest = (1.0 - weight) / (len(domains) - 1)
    return {d: weight if d == focus else rest for d in domains}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", nargs="?", choices=["time", "signal", "all"], default="all")
    parser.add_argument("--signal-tokens", type=float, default=2e6)
    parser.add_argument("--domains", nargs="*", help="domains for the signal part (default: all)")
    args = parser.parse_args()
    ensure_dataset()
    from bomix.train import DomainData, TrainConfig, train

    data = DomainData(DATA)
    domains = list(data.domains)
    if args.part in ("time", "all"):
        uniform = {d: 1 / len(domains) for d in domains}
        print(f"one 'tiny' trial on {DATA.name} ({len(domains)} domains, vocabulary {data.vocab_size}), "
              f"default token budget, uniform mixture")
        for threads in (1, 2):
            start = time.perf_counter()
            result = train(data, uniform, TrainConfig(preset="tiny", threads=threads, seed=0))
            wall = time.perf_counter() - start
            print(f"  threads {threads}: {wall:6.1f} s wall, {result.cost['tokens']:,.0f} tokens, "
                  f"{result.cost['tokens_per_s']:,.0f} tokens/s, {result.cost['params']:,.0f} parameters, "
                  f"mean val loss {np.mean(list(result.losses.values())):.4f}")
    if args.part in ("signal", "all"):
        print(f"\nown-domain validation loss, weight 0.4 vs 0.02 (others share the rest), "
              f"{args.signal_tokens:,.0f} tokens, seeds 0 and 1")
        print(f"{'domain':<12} {'loss @0.02':>11} {'loss @0.4':>10} {'drop':>7} {'seed spread':>12}")
        for d in args.domains or domains:
            loss = {w: [train(data, shares(domains, d, w), TrainConfig(preset="tiny", tokens=int(args.signal_tokens),
                                                                       threads=2, seed=s)).losses[d] for s in (0, 1)]
                    for w in (0.02, 0.4)}
            spread = max(abs(v[0] - v[1]) for v in loss.values())
            low, high = np.mean(loss[0.02]), np.mean(loss[0.4])
            print(f"{d:<12} {low:>11.4f} {high:>10.4f} {low - high:>7.4f} {spread:>12.4f}")


if __name__ == "__main__":
    main()
