"""How well bo's model ranks a pool's unseen runs, by what its kernel sees of a mixture (`inputs`).

For each pool benchmark config: draw n logged runs at random (seeded), fit bo's model on them
(its defaults, only `inputs` varied), predict the objective of every other run of the pool, and
print the rank correlation (Spearman) of predicted against logged values, and the regret of the
best logged run among the model's 10 best-predicted unseen runs (how close a pick from the top of
the model's ranking gets). Mean over `--reps` draws; the same draws for every input kind.

    python experiments/inputs_probe.py experiments/configs/bench_regmix_pool.toml runs/swarm64/bench.toml
    python experiments/inputs_probe.py CONFIG --sizes 16,32,64 --reps 6 --inputs raw,sqrt,log

No search runs here: this measures the model, not the campaign (bomix benchmark measures that).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bomix  # noqa: E402
from bomix.benchmark import load_benchmark_config  # noqa: E402
from bomix.evaluators import get_evaluator  # noqa: E402
from bomix.optimizers.bo import BayesOpt  # noqa: E402
from bomix.optimizers import bo_models  # noqa: E402
from bomix.trial import Trial, TrialState  # noqa: E402


def pool_of(config: str):
    """(space, objective, pool mixtures (n, k), loss names, logged losses (n, m), objective values (n,))."""
    cfg = load_benchmark_config(config)
    if cfg.evaluator.name != "replay" or cfg.evaluator.params.get("mode", "pool") != "pool":
        raise SystemExit(f"{config}: a pool benchmark (evaluator replay, mode pool) is needed, got "
                         f"{cfg.evaluator.name!r} {cfg.evaluator.params.get('mode')!r}")
    ev = get_evaluator(cfg.evaluator.name, **cfg.evaluator.params)
    objective = bomix.Objective.parse(cfg.study.objective)
    space = bomix.MixtureSpace(list(ev.domains))
    return space, objective, ev.pool, list(ev.loss_names), ev.logged_losses, ev.logged_values(cfg.study.objective)


def history_of(space, objective, X, names, L) -> bomix.History:
    trials = tuple(Trial(i, space.to_mixture(x), state=TrialState.COMPLETED, proposed_by="bo/init", seed=i,
                         losses=dict(zip(names, row))) for i, (x, row) in enumerate(zip(X, L.tolist())))
    return bomix.History(space, objective, trials)


def spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="+", help="pool benchmark configs (TOML)")
    ap.add_argument("--sizes", default="16,32,64", help="runs the model is fitted on (comma-separated)")
    ap.add_argument("--reps", type=int, default=6, help="random draws per size")
    ap.add_argument("--inputs", default="raw,sqrt,log", help=f"input kinds, of {list(bo_models.INPUTS)}")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.inputs.split(",")
    bad = [k for k in kinds if k not in bo_models.INPUTS]
    if bad or args.reps < 1 or min(sizes) < 2:
        raise SystemExit(f"--inputs must be of {list(bo_models.INPUTS)} (got {bad}), --reps >= 1 (got {args.reps}), "
                         f"--sizes >= 2 (got {sizes})")
    for config in args.configs:
        space, objective, W, names, L, y = pool_of(config)
        print(f"{config}: {len(W)} runs, {space.k} domains, {len(names)} losses; best logged {y.min():.4f}")
        print(f"  {'n':>4} {'inputs':>6}   spearman   regret of the best of the top-10 predicted   seconds per fit")
        for n in sizes:
            if n >= len(W):
                print(f"  {n:>4} skipped: the pool has {len(W)} runs")
                continue
            draws = [np.random.default_rng([rep, n]).choice(len(W), n, replace=False) for rep in range(args.reps)]
            for kind in kinds:
                rho, regret, secs = [], [], []
                for idx in draws:
                    rest = np.setdiff1d(np.arange(len(W)), idx)
                    t0 = time.perf_counter()
                    mean, _ = BayesOpt(seed=0, inputs=kind).predict(history_of(space, objective, W[idx], names, L[idx]),
                                                                    W[rest])
                    secs.append(time.perf_counter() - t0)
                    rho.append(spearman(mean, y[rest]))
                    regret.append(y[rest[np.argsort(mean)[:10]]].min() - y.min())
                print(f"  {n:>4} {kind:>6}   {np.mean(rho):8.3f}   {np.mean(regret):10.4f}"
                      f"{'':>36}{np.median(secs):6.2f}")


if __name__ == "__main__":
    main()
