"""Fixed-budget quality of `bo` against `sobol` and `ax_default`, and the cost of one `suggest`.

Quality (default): every method runs 64 trials through a real bomix Study on a noisy landscape,
for seeds 0..S-1 (same landscape, same budget, same feasible set for every method; the seed
changes the method's randomness and the evaluation noise). For each run it records, after 32 and
64 trials, the best true (noise-free) value among the evaluated mixtures ("oracle", what the
issue's targets use) and the true value of the best *observed* mixture (what a user would pick by
the noisy values). Prints medians over seeds and the targets' verdicts. Runs are cached as JSON
lines in --out, so an interrupted benchmark resumes where it stopped.

Timing (--timing): median wall time of `suggest` for 1 new mixture given 64 completed trials at
k=5 (seedlike) and 128 at k=17 (a mixing-law landscape), 5 calls each, torch on 1 thread.

    python experiments/bench_bo.py --seeds 10 --workers 2
    python experiments/bench_bo.py --timing
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

LANDSCAPES = {
    "seedlike": dict(name="seedlike", noise_sd=0.017),
    "mixing_law10": dict(name="mixing_law", k=10, noise_sd=0.017),
}
METHODS = {  # label -> (optimizer name, params)
    "sobol": ("sobol", {}),
    "bo_per_domain": ("bo", {"model": "per_domain"}),
    "bo_scalar": ("bo", {"model": "scalar"}),
    "ax_default": ("ax_default", {}),
}
EXTRA = {  # initial-design sizes, on seedlike only
    "bo_init4": ("bo", {"n_init": 4}),
    "bo_init12": ("bo", {"n_init": 12}),
}
BUDGET, CHECKPOINTS = 64, (32, 64)


def run_one(task: tuple[str, str, int]) -> dict:
    """One campaign: (method label, landscape key, seed) -> per-trial true/observed values and times."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    import bomix
    from bomix.evaluators import get_evaluator

    label, land, seed = task
    name, params = {**METHODS, **EXTRA}[label]
    ev = get_evaluator("landscape", seed=0, **LANDSCAPES[land])
    space = bomix.MixtureSpace(ev.domains)
    with tempfile.TemporaryDirectory() as tmp:
        study = bomix.create_study(Path(tmp) / "s", space=space, seed=seed,
                                   optimizer=bomix.get_optimizer(name, seed=seed, **params))
        seconds = []
        for _ in range(BUDGET):
            start = time.perf_counter()
            (trial,) = study.ask(1)
            seconds.append(time.perf_counter() - start)
            study.tell(trial, ev.evaluate(trial.weights, bomix.TrialContext(trial.number, trial.seed)))
        trials = study.trials
        rec = {c: study.optimizer.recommend(bomix.History(space, study.objective, tuple(trials[:c])))
               for c in CHECKPOINTS}
        study.close()
    return {"method": label, "landscape": land, "seed": seed, "optimum": ev.optimal_value,
            "true": [ev.true_value(t.weights) for t in trials], "observed": [t.value for t in trials],
            "recommended_true": {str(c): ev.true_value(r.weights) for c, r in rec.items()},
            "suggest_s": seconds, "sources": [t.proposed_by for t in trials]}


def default_bo_label() -> str:
    """The label of the `bo` configuration that get_optimizer("bo") gives."""
    from bomix.optimizers.bo import BayesOpt

    return f"bo_{BayesOpt().model}"


def summarize(rows: list[dict]) -> None:
    print("medians over seeds, nats/token. oracle@c: best true (noise-free) value among the first c evaluated"
          " mixtures; picked@64: true value of the best observed mixture; recommended@64: true value of the"
          " optimizer's recommendation; suggest s: median wall time of one ask() after trial 16")
    for land in LANDSCAPES:
        sub = [r for r in rows if r["landscape"] == land]
        if not sub:
            continue
        opt = sub[0]["optimum"]
        print(f"\n{land} (optimum {opt:.4f}, {len({r['seed'] for r in sub})} seeds)")
        print(f"{'method':<12} {'n':>3} {'oracle@32':>10} {'oracle@64':>10} {'regret@64':>10} {'picked@64':>10}"
              f" {'recommended@64':>15} {'suggest s':>10}")
        table = {}
        for label in [*METHODS, *EXTRA]:
            runs = [r for r in sub if r["method"] == label]
            if not runs:
                continue
            oracle = {c: np.median([min(r["true"][:c]) for r in runs]) for c in CHECKPOINTS}
            picked = np.median([r["true"][int(np.argmin(r["observed"]))] for r in runs])
            rec = np.median([r["recommended_true"]["64"] for r in runs])
            secs = np.median([np.median(r["suggest_s"][16:]) for r in runs])
            table[label] = oracle
            print(f"{label:<12} {len(runs):>3} {oracle[32]:>10.4f} {oracle[64]:>10.4f} {oracle[64] - opt:>10.4f}"
                  f" {picked:>10.4f} {rec:>15.4f} {secs:>10.2f}")
        if "bo" not in table and default_bo_label() in table:
            table["bo"] = table[default_bo_label()]
            print(f"(bo = {default_bo_label()}, the default)")
        if {"bo", "sobol"} <= set(table):
            bo, sb = table["bo"], table["sobol"]
            print(f"target bo@32 <= sobol@64: {bo[32]:.4f} vs {sb[64]:.4f} -> {'met' if bo[32] <= sb[64] else 'MISSED'}")
            ratio = (bo[64] - opt) / (sb[64] - opt)
            print(f"target bo regret@64 <= 1/3 sobol's: {bo[64] - opt:.4f} vs {sb[64] - opt:.4f} (ratio {ratio:.2f})"
                  f" -> {'met' if ratio <= 1 / 3 else 'MISSED'}")
        if {"bo", "ax_default"} <= set(table):
            bo, ax = table["bo"], table["ax_default"]
            ok = bo[32] < ax[32] and bo[64] < ax[64]
            print(f"target bo ahead of ax_default at 32 and 64: {bo[32]:.4f}/{bo[64]:.4f} vs {ax[32]:.4f}/{ax[64]:.4f}"
                  f" -> {'met' if ok else 'MISSED'}")


def timing() -> None:
    import torch

    torch.set_num_threads(1)
    import bomix
    from bomix.evaluators import get_evaluator
    from bomix.testing import make_history  # noqa: F401  (same construction below, with real losses)

    for land, n in ((dict(name="seedlike"), 64), (dict(name="mixing_law", k=17), 128)):
        ev = get_evaluator("landscape", noise_sd=0.017, seed=0, **land)
        space = bomix.MixtureSpace(ev.domains)
        X = space.sample(n, method="random", seed=1)
        trials = tuple(bomix.Trial(i, space.to_mixture(x), state=bomix.TrialState.COMPLETED, proposed_by="bo/init",
                                   losses=ev.evaluate(x, bomix.TrialContext(i, i)).losses) for i, x in enumerate(X))
        history = bomix.History(space, bomix.Objective("mean"), trials)
        for label in ("bo_per_domain", "bo_scalar"):
            name, params = METHODS[label]
            opt = bomix.get_optimizer(name, seed=0, **params)
            times = []
            for _ in range(5):
                start = time.perf_counter()
                opt.suggest(history, 1)
                times.append(time.perf_counter() - start)
            print(f"{label:<10} k={space.k:<3} {n:>4} completed trials: suggest median {np.median(times):.2f} s "
                  f"(min {min(times):.2f}, max {max(times):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--methods", nargs="*", default=[*METHODS, *EXTRA])
    parser.add_argument("--out", type=Path, default=Path("experiments/results/bench_bo.jsonl"))
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("--summary", action="store_true", help="only print the summary of cached runs")
    args = parser.parse_args()
    if args.timing:
        timing()
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    done = {(r["method"], r["landscape"], r["seed"]) for r in rows}
    tasks = [(m, land, s) for s in range(args.seeds) for land in LANDSCAPES for m in args.methods
             if (m, land, s) not in done and not (m in EXTRA and land != "seedlike")]
    if not args.summary and tasks:
        print(f"running {len(tasks)} campaigns of {BUDGET} trials on {args.workers} workers", flush=True)
        with ProcessPoolExecutor(args.workers) as pool, args.out.open("a") as f:
            for row in pool.map(run_one, tasks):
                f.write(json.dumps(row) + "\n")
                f.flush()
                rows.append(row)
                print(f"  {row['method']:<11} {row['landscape']:<13} seed {row['seed']}: "
                      f"oracle@64 {min(row['true']):.4f}", flush=True)
    summarize([r for r in rows if r["seed"] < args.seeds and r["method"] in args.methods])


if __name__ == "__main__":
    main()
