"""What bo's `model = "auto"` picks at each fit of finished campaigns, and why.

For every study of a method (default `bo`) in each benchmark folder, this replays the fits the
campaign made (its completed trials after 3, 4, ... of them) and asks the rule in
bomix.optimizers.bo_models: with more than AUTO_MAX_OUTPUTS losses, does the low-rank model keep
the objective? It prints, per benchmark, the number of losses, the R^2 of the objective rebuilt
from the low-rank components (min / median over the fits), and how often auto picks each kind.
Nothing is refitted: it reads the journals and does one SVD per fit (seconds).

    python experiments/auto_model_check.py runs/bench_regmix_pool runs/dclm50 runs/mixlaw50

Run from the repository root. A folder whose objective reads at most AUTO_MAX_OUTPUTS losses is
reported as per_domain throughout.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def fits(study_dir: Path):
    """(n losses, [(R^2 of the low-rank objective, auto's kind) per fit]) of one stored study."""
    import torch

    from bomix.optimizers import bo_models
    from bomix.optimizers.bo import _composer
    from bomix.study import load_study

    study = load_study(study_dir)
    try:
        history = study.history()
    finally:
        study.close()
    done = history.completed
    if not done:
        return 0, []
    names = history.objective.required(done[0].losses)
    if len(names) <= bo_models.AUTO_MAX_OUTPUTS:
        return len(names), [(float("nan"), "per_domain")] * max(len(done) - 2, 0)
    compose = _composer(history.objective, names, True)

    def objective_of(outputs):
        return compose(torch.as_tensor(outputs, dtype=torch.double)).numpy()

    Y = np.log(np.array([[t.losses[name] for name in names] for t in done], dtype=float))
    out = []
    for n in range(3, len(done) + 1):
        kind, _ = bo_models.choose_lowrank("auto", Y[:n], objective_of)
        out.append((bo_models.LowRank.fit(Y[:n]).objective_r2(Y[:n], objective_of), kind))
    return len(names), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmarks", nargs="+", type=Path, help="benchmark output folders (bomix benchmark -o)")
    parser.add_argument("--method", default="bo", help="the method whose studies are read (default: bo)")
    args = parser.parse_args()
    print(f"{'benchmark':28s} {'studies':>7s} {'losses':>6s} {'fits':>6s}  low-rank objective R^2 (min / median)  auto picks")
    for bench in args.benchmarks:
        studies = sorted((bench / "studies" / args.method).glob("*/study.json"))
        if not studies:
            raise SystemExit(f"no {args.method} studies under {bench}/studies/{args.method}")
        losses, rows = 0, []
        for spec in studies:
            m, out = fits(spec.parent)
            losses, rows = max(losses, m), rows + out
        r2 = np.array([r for r, _ in rows if np.isfinite(r)])
        kinds = {k: sum(kind == k for _, kind in rows) for k in ("lowrank", "per_domain", "scalar")}
        spread = f"{r2.min():.3f} / {np.median(r2):.3f}" if len(r2) else "n/a (few losses)"
        picks = ", ".join(f"{k} {v}" for k, v in kinds.items() if v)
        print(f"{str(bench):28s} {len(studies):7d} {losses:6d} {len(rows):6d}  {spread:>37s}  {picks}")


if __name__ == "__main__":
    main()
