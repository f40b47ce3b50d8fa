"""The baselines, measured three ways (issue 4's figures).

1. recovery   Each law-fitting baseline on a landscape generated from its own functional form with
              small noise (sd 0.002 of the mean loss): the one-shot protocol runs its N-1 design
              trials and proposes its optimum as trial N. Prints the held-out MAE of the fitted law
              (mean loss, 256 random feasible mixtures, noise-free truth) and the regret of the
              proposed optimum. RegMix has no functional form of its own; it is shown on the
              mixing-law landscape for reference.
2. regmix     The real RegMix-1M runs (../shared/data/regmix-1m, 512 runs, 17 training domains,
              13 validation losses): fit on 400 runs, predict the other 112 (5 random splits).
              Prints held-out Spearman correlation and MAE for the average of the 13 losses and for
              Pile-CC loss, for RegMix's regressors, the data mixing law and BiMix.
3. budget     Every baseline and bo/sobol under a 64-trial budget on `seedlike` (noise sd 0.017),
              seeds 0..S-1, each an ordinary bomix Study. Prints, per method, the mean and 95% CI
              over seeds of the noise-free value of (a) the mixture a user deploys, the best
              observed one, and (b) the method's own recommendation (bo's posterior-mean pick, a
              law's optimum); the fixed mixtures cost one trial and have no spread.
              Runs are cached as JSON lines in --out, so an interrupted run resumes.

    python experiments/bench_baselines.py recovery
    python experiments/bench_baselines.py regmix
    python experiments/bench_baselines.py budget --seeds 10 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import tomllib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy loads BLAS: one thread per worker process
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REGMIX = ROOT.parent / "shared" / "data" / "regmix-1m"
LLAMA_CONFIG = ROOT / "experiments" / "configs" / "llama_seed5.toml"


def _quiet_single_thread():
    import torch

    torch.set_num_threads(1)


def _history(space, objective, X, losses, source="design"):
    import bomix

    trials = tuple(bomix.Trial(i, space.to_mixture(x), state=bomix.TrialState.COMPLETED, proposed_by=source,
                               losses=loss) for i, (x, loss) in enumerate(zip(X, losses)))
    return bomix.History(space, bomix.Objective.parse(objective), trials)


# -- 1. recovery ----------------------------------------------------------------------------------
RECOVERY = [  # (label, optimizer, params, landscape, budget N)
    ("mixing_laws explicit", "mixing_laws", {}, dict(name="mixing_law", k=5), 40),
    ("bimix fixed-step", "bimix", {"use_curves": False}, dict(name="bimix_law", k=5), 20),
    ("bimix curves", "bimix", {"use_curves": True}, dict(name="bimix_law", k=5), 20),
    ("regmix lightgbm", "regmix", {"regressor": "lightgbm"}, dict(name="mixing_law", k=5), 64),
    ("regmix linear", "regmix", {"regressor": "linear"}, dict(name="mixing_law", k=5), 64),
]


def recovery(seeds: int) -> None:
    _quiet_single_thread()
    import bomix
    from bomix.evaluators import get_evaluator

    print(f"one-shot protocol, N-1 design trials then the proposed optimum; noise sd 0.002; seeds 0..{seeds - 1}")
    print(f"{'method':<22} {'landscape':<12} {'N':>3} {'held-out MAE':>13} {'regret':>9}   (medians over seeds)")
    for label, name, params, land, budget in RECOVERY:
        maes, regrets = [], []
        for seed in range(seeds):
            ev = get_evaluator("landscape", noise_sd=0.002, seed=seed, **land)
            space = bomix.MixtureSpace(ev.domains)
            opt = bomix.get_optimizer(name, seed=seed, protocol="one_shot", budget=budget, **params)
            with tempfile.TemporaryDirectory() as tmp:
                study = bomix.create_study(Path(tmp) / "s", space=space, optimizer=opt, seed=seed)
                study.optimize(ev, n_trials=budget, show_progress=False)
                trials = study.trials
                study.close()
            history = bomix.History(space, bomix.Objective("mean"), tuple(trials[:-1]))
            law = opt.fit(history)
            test = space.sample(256, method="random", seed=10_000 + seed)
            truth = np.array([ev.true_value(x) for x in test])
            maes.append(float(np.abs(law.predict(test) - truth).mean()))
            regrets.append(ev.true_value(trials[-1].weights) - ev.optimal_value)
        print(f"{label:<22} {land['name']:<12} {budget:>3} {np.median(maes):>13.4f} {np.median(regrets):>9.4f}")


# -- 2. the real RegMix runs ----------------------------------------------------------------------
REGMIX_FITS = [  # (label, optimizer, params)
    ("regmix lightgbm", "regmix", {"regressor": "lightgbm"}),
    ("regmix linear", "regmix", {"regressor": "linear"}),
    ("mixing_laws explicit", "mixing_laws", {"variant": "explicit"}),
    ("mixing_laws implicit", "mixing_laws", {"variant": "implicit"}),
    ("bimix fixed-step", "bimix", {"use_curves": False}),
]


def load_regmix():
    import pandas as pd

    r = pd.read_csv(REGMIX / "train_mixture_1m.csv")
    m = pd.read_csv(REGMIX / "train_pile_loss_1m.csv")
    domains = [c.removeprefix("train_the_pile_") for c in r.columns if c != "index"]
    X = r.drop(columns="index").to_numpy(float)
    X /= X.sum(axis=1, keepdims=True)
    names = [c.removeprefix("metric/the_pile_").removesuffix("_val_loss") for c in m.columns if c != "index"]
    losses = [dict(zip(names, row)) for row in m.drop(columns="index").to_numpy(float)]
    return domains, X, losses


def regmix_data(splits: int) -> None:
    _quiet_single_thread()
    from scipy.stats import spearmanr

    import bomix

    if not REGMIX.exists():
        raise SystemExit(f"{REGMIX} not found: this part needs ../shared/data/regmix-1m beside the checkout")
    domains, X, losses = load_regmix()
    space = bomix.MixtureSpace(domains)
    print(f"RegMix-1M: {len(X)} runs, {len(domains)} training domains, {len(losses[0])} losses; "
          f"fit on 400, predict 112; mean over {splits} random splits (sd in brackets)")
    print(f"{'method':<22} {'objective':<10} {'spearman':>16} {'MAE':>16}")
    for objective, label_obj in (("mean", "avg of 13"), ("target:pile_cc", "pile_cc")):
        for label, name, params in REGMIX_FITS:
            rhos, maes = [], []
            for split in range(splits):
                order = np.random.default_rng(split).permutation(len(X))
                train, test = order[:400], order[400:]
                history = _history(space, objective, X[train], [losses[i] for i in train])
                opt = bomix.get_optimizer(name, seed=split, **params)
                try:
                    law = opt.fit(history)
                except bomix.errors.BomixError as e:
                    print(f"{label:<22} {label_obj:<10} cannot fit: {e}")
                    break
                pred = law.predict(X[test])
                truth = np.array([history.objective(losses[i]) for i in test])
                rhos.append(spearmanr(pred, truth).statistic)
                maes.append(np.abs(pred - truth).mean())
            else:
                print(f"{label:<22} {label_obj:<10} {np.mean(rhos):>8.3f} ({np.std(rhos):.3f})"
                      f" {np.mean(maes):>8.4f} ({np.std(maes):.4f})")


# -- 3. a 64-trial budget on seedlike -------------------------------------------------------------
def llama_params() -> dict:
    return tomllib.loads(LLAMA_CONFIG.read_text())["optimizer"]["params"]


BUDGET_METHODS = {  # label -> (optimizer, params); fixed mixtures run one trial
    "bo": ("bo", {}),
    "sobol": ("sobol", {}),
    "uniform": ("uniform", {}),
    "llama": ("llama", "llama_params"),
    "bimix": ("bimix", {}),
    "bimix_oneshot": ("bimix", {"protocol": "one_shot"}),
    "mixing_laws": ("mixing_laws", {}),
    "mixing_laws_oneshot": ("mixing_laws", {"protocol": "one_shot"}),
    "regmix": ("regmix", {}),
    "regmix_oneshot": ("regmix", {"protocol": "one_shot"}),
}
FIXED = {"uniform", "llama"}
BUDGET = 64


def run_campaign(task: tuple[str, int]) -> dict:
    _quiet_single_thread()
    import bomix
    from bomix.evaluators import get_evaluator

    label, seed = task
    name, params = BUDGET_METHODS[label]
    params = llama_params() if params == "llama_params" else params
    ev = get_evaluator("landscape", name="seedlike", noise_sd=0.017, seed=0)
    space = bomix.MixtureSpace(ev.domains)
    n_trials = 1 if label in FIXED else BUDGET
    with tempfile.TemporaryDirectory() as tmp:
        study = bomix.create_study(Path(tmp) / "s", space=space, seed=seed,
                                   optimizer=bomix.get_optimizer(name, seed=seed, **params))
        study.optimize(ev, n_trials=n_trials, show_progress=False)
        trials = study.trials
        rec = study.recommend()
        study.close()
    return {"method": label, "seed": seed, "optimum": ev.optimal_value,
            "true": [ev.true_value(t.weights) for t in trials], "observed": [t.value for t in trials],
            "recommended_true": ev.true_value(rec.weights), "recommended": rec.weights,
            "sources": [t.proposed_by for t in trials]}


def ci95(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval."""
    from scipy.stats import t

    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


def budget(seeds: int, workers: int, methods: list[str], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    done = {(r["method"], r["seed"]) for r in rows}
    tasks = [(m, s) for s in range(seeds) for m in methods if (m, s) not in done]
    if tasks:
        print(f"running {len(tasks)} campaigns on {workers} workers", flush=True)
        with ProcessPoolExecutor(workers) as pool, out.open("a") as f:
            for row in pool.map(run_campaign, tasks):
                f.write(json.dumps(row) + "\n")
                f.flush()
                rows.append(row)
                print(f"  {row['method']:<20} seed {row['seed']}: picked {row['true'][int(np.argmin(row['observed']))]:.4f}",
                      flush=True)
    rows = [r for r in rows if r["seed"] < seeds and r["method"] in methods]
    opt = rows[0]["optimum"]
    print(f"\nseedlike, noise sd 0.017, budget {BUDGET} trials (uniform/llama: 1), optimum {opt:.4f}; "
          f"noise-free values, mean [95% CI] over seeds")
    print(f"{'method':<20} {'seeds':>5} {'trials':>6} {'deployed (best observed)':>26} {'own recommendation':>24}"
          f" {'best evaluated':>15}")
    for label in methods:
        runs = [r for r in rows if r["method"] == label]
        if not runs:
            continue
        picked = ci95([r["true"][int(np.argmin(r["observed"]))] for r in runs])
        rec = ci95([r["recommended_true"] for r in runs])
        oracle = np.mean([min(r["true"]) for r in runs])
        print(f"{label:<20} {len(runs):>5} {len(runs[0]['true']):>6} {picked[0]:>12.4f} [±{picked[1]:.4f}]"
              f" {rec[0]:>12.4f} [±{rec[1]:.4f}] {oracle:>15.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["recovery", "regmix", "budget"])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--methods", nargs="*", default=list(BUDGET_METHODS))
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "bench_baselines.jsonl")
    args = parser.parse_args()
    if args.part == "recovery":
        recovery(min(args.seeds, 5))
    elif args.part == "regmix":
        regmix_data(args.splits)
    else:
        budget(args.seeds, args.workers, args.methods, args.out)


if __name__ == "__main__":
    main()
