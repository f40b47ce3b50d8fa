"""Time per `bo` suggestion at the sizes issue 13 sets targets for, beside a machine-speed line.

Each case builds a history of n completed trials (random mixtures evaluated on a landscape with
noise) and times `suggest(history, 1)` of each bo model, 5 calls, each by a new optimizer (so
every call fits its GP, as in a campaign), torch on one thread. The first
line is the median time of a fixed float64 matrix product (1024 x 1024 @ 1024 x 1024), so figures
from machines of different speed can be compared: divide by it.

    case         landscape                         trials   target
    k5           seedlike (k = 5, 5 losses)          64     <= 0.5 s
    k17          mixing_law k = 17 (17 losses)      128     <= 3 s
    k64_m110     mixing_law k = 64, 110 metrics      64     <= 5 s

    python experiments/bench_suggest_time.py                 # default model, every case
    python experiments/bench_suggest_time.py --models auto per_domain scalar lowrank
    python experiments/bench_suggest_time.py --prior-means constant law
    python experiments/bench_suggest_time.py --params num_restarts=4    # any bo parameter, NAME=VALUE

Each line gives the median of the whole suggestion and of its two parts: the GP fit and the
acquisition (scoring the raw samples, then SLSQP from the best of them).

Run from the repository root, with nothing else running (times on a busy machine mean little).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

CASES = {  # name -> (landscape parameters, completed trials, target seconds)
    "k5": (dict(name="seedlike"), 64, 0.5),
    "k17": (dict(name="mixing_law", k=17), 128, 3.0),
    "k64_m110": (dict(name="mixing_law", k=64, metrics=110), 64, 5.0),
}
CALLS = 5


def matmul_reference() -> float:
    """Median seconds of one 1024 x 1024 float64 matrix product on one thread."""
    import torch

    a = torch.randn(1024, 1024, dtype=torch.double, generator=torch.Generator().manual_seed(0))
    times = []
    for _ in range(7):
        start = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def history_for(case: str):
    land, n, _ = CASES[case]
    return random_history(land, n, seed=1)


def random_history(land: dict, n: int, seed: int):
    """n completed trials: random mixtures (seeded) evaluated on the landscape `land` with noise sd 0.017."""
    import bomix
    from bomix.evaluators import get_evaluator

    ev = get_evaluator("landscape", noise_sd=0.017, seed=0, **land)
    space = bomix.MixtureSpace(ev.domains)
    X = space.sample(n, method="random", seed=seed)
    trials = tuple(bomix.Trial(i, space.to_mixture(x), state=bomix.TrialState.COMPLETED, proposed_by="bo/init",
                               losses=ev.evaluate(x, bomix.TrialContext(i, i)).losses) for i, x in enumerate(X))
    return bomix.History(space, bomix.Objective("mean"), trials, budget=n + 1)


def main() -> None:
    import torch

    torch.set_num_threads(1)
    import bomix

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=[None], help="bo models to time (default: bo's default)")
    parser.add_argument("--prior-means", nargs="*", default=["constant"], choices=["constant", "law"])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--params", nargs="*", default=[], metavar="NAME=VALUE",
                        help="bo parameters for every call, e.g. num_restarts=2 (values read as TOML)")
    args = parser.parse_args()
    params = dict(_param(p) for p in args.params)  # NAME=VALUE, values read as TOML (as --set reads them)
    print(f"reference: 1024x1024 float64 matmul, one thread: {matmul_reference() * 1e3:.1f} ms")
    for case in args.cases:
        history = history_for(case)
        target = CASES[case][2]
        for model, prior_mean in [(m, p) for p in args.prior_means for m in args.models]:
            times, fits = [], []
            for _ in range(CALLS):
                # a new optimizer per call: bo reuses the fit of an unchanged history, which a
                # campaign never has (each suggestion follows a new trial), so that would flatter it
                opt = bomix.get_optimizer("bo", seed=0, prior_mean=prior_mean,
                                          **({} if model is None else {"model": model}), **params)
                start = time.perf_counter()
                opt._fit(history)  # the fit suggest would do first (suggest reuses it: same history)
                fitted = time.perf_counter()
                opt.suggest(history, 1)
                times.append(time.perf_counter() - start)
                fits.append(fitted - start)
            med = float(np.median(times))
            extra = "".join(f" {k}={v}" for k, v in params.items())
            print(f"{case:<9} k={history.space.k:<3} m={len(history.completed[0].losses):<4} "
                  f"n={len(history.completed):<4} bo model={model or 'default':<10} prior_mean={prior_mean:<8}{extra} "
                  f"suggest median {med:6.2f} s (fit {np.median(fits):.2f}, acquisition "
                  f"{np.median(np.subtract(times, fits)):.2f}; min {min(times):.2f}, max {max(times):.2f})  target <= {target} s: "
                  f"{'met' if med <= target else f'MISSED by {med - target:.2f} s'}", flush=True)


def _param(text: str) -> tuple:
    from bomix.config import parse_override
    from bomix.errors import ConfigError

    try:
        keys, value = parse_override(text)
    except ConfigError:
        raise SystemExit(f"--params takes NAME=VALUE (e.g. num_restarts=4), got {text!r}") from None
    return ".".join(keys), value


if __name__ == "__main__":
    main()
