"""What each speed lever of a `bo` suggestion costs in time, and how far it moves the proposal.

On `seedlike` (k = 5, noise sd 0.017) histories of random mixtures (5 seeds x 12, 24, 48 and 64
trials), each lever's suggestion is timed (a new optimizer per call, so each fits its GP; one
torch thread) and compared with the default's proposal for the same history: how many of the
histories moved it by more than 0.01 (largest weight change) and the largest move. A lever that
moves nothing is free; one that moves proposals needs a paired benchmark before it becomes a
default (experiments/README.md, "Time per suggestion").

    levers       restarts=N: SLSQP restarts of the acquisition; mc=N: its MC samples;
                 fit_iter=N: L-BFGS iterations of the GP fit; fit_ftol=X: the fit's relative
                 stopping tolerance (scipy's default 2.2e-9)

    python experiments/suggest_levers.py                              # every lever below
    python experiments/suggest_levers.py --levers restarts=2 fit_ftol=1e-7

Run from the repository root with nothing else running.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

LEVERS = ["restarts=4", "restarts=2", "mc=32", "fit_iter=100", "fit_iter=50", "fit_ftol=1e-6", "fit_ftol=1e-7"]
SIZES = (12, 24, 48, 64)
SEEDS = 5


def history(seed: int, n: int):
    from bench_suggest_time import random_history  # experiments/, beside this script

    return random_history({"name": "seedlike"}, n, seed=100 + seed)


def suggest_with(lever: str | None, h, seed: int) -> tuple[np.ndarray, float, float]:
    """(proposal, seconds of the whole suggestion, seconds of its fit) under one lever."""
    import botorch.fit

    import bomix.optimizers.bo as bo_module

    name, _, value = (lever or "").partition("=")
    params, fit_options = {}, {}
    if name == "restarts":
        params["num_restarts"] = int(value)
    elif name == "mc":
        params["mc_samples"] = int(value)
    elif name == "fit_iter":
        params["fit_maxiter"] = int(value)
    elif name == "fit_ftol":
        fit_options["factr"] = float(value) / np.finfo(float).eps  # scipy's L-BFGS-B: ftol = factr * eps
    elif name:
        raise SystemExit(f"unknown lever {lever!r}: one of restarts=N, mc=N, fit_iter=N, fit_ftol=X")
    real = botorch.fit.fit_gpytorch_mll

    def fit(mll, **kw):
        kw["optimizer_kwargs"]["options"].update(fit_options)
        return real(mll, **kw)

    botorch.fit.fit_gpytorch_mll = fit  # bo imports it at each fit
    try:
        opt = bo_module.BayesOpt(seed=seed, **params)
        start = time.perf_counter()
        opt._fit(h)
        fitted = time.perf_counter()
        x = opt.suggest(h, 1)[0].weights  # reuses the fit: same history
        return x, time.perf_counter() - start, fitted - start
    finally:
        botorch.fit.fit_gpytorch_mll = real


def main() -> None:
    import warnings

    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levers", nargs="*", default=LEVERS)
    args = parser.parse_args()
    suggest_with(None, history(0, 12), 0)  # warm-up: imports and first-call costs
    rows = {lever: [] for lever in args.levers}
    for seed in range(SEEDS):
        for n in SIZES:
            h = history(seed, n)
            base, _, _ = suggest_with(None, h, seed)
            for lever in args.levers:
                x, total, fit = suggest_with(lever, h, seed)
                rows[lever].append((total, fit, float(np.abs(x - base).max())))
    print(f"seedlike (k = 5), {SEEDS} seeds x {list(SIZES)} trials; moves against the default's proposal")
    for lever, r in rows.items():
        a = np.array(r)
        print(f"{lever:<14} suggest median {np.median(a[:, 0]):.3f} s  fit median {np.median(a[:, 1]):.3f} s  "
              f"moved > 0.01 in {int((a[:, 2] > 0.01).sum())} of {len(a)}  largest move {a[:, 2].max():.3f}")


if __name__ == "__main__":
    main()
