"""Is `study.which_wins`'s p_best honest? Its probabilities against the truth, over many campaigns.

`study.which_wins(top=m)` gives each of a campaign's m best evaluated mixtures the model's
probability that its noise-free objective is the lowest of the m. On a benchmark whose evaluator
knows the truth (a landscape), each campaign's truly best of its m is known, so the probabilities
can be scored: a calibrated model gives its rank-1 mixture p_best = 0.6 in campaigns where that
mixture is truly best 60% of the time.

    python experiments/which_wins_calibration.py runs/seedlike_bo --label bo          # a benchmark's bo studies
    python experiments/which_wins_calibration.py runs/seedlike_bo --trials 16 32 64    # after 16, 32, 64 trials

For every study of `--label` in the benchmark directory it prints, and the summary below compares:

- joint:        p_best from the GP's joint posterior draws (which_wins(basis="joint"));
- independent:  p_best from independent normals with the GP's marginal mean and sd per mixture
                (which_wins's default);
- observed:     all the weight on the best observed of the m (what "pick the best run" believes).

Scores over campaigns: the mean probability given to the truly best mixture, the log score (mean
log of it; higher is better; a probability of 0 to the truth is clipped at 1e-3), the Brier score
(mean squared error of the probability vector against the one-hot truth; lower is better); for
the rank-1 mixture the mean p_best beside how often it is truly best, and its expected regret
(which_wins's expected_regret) beside its true regret against the truly best of the top.
Run from the repository root; the benchmark must have been run (see experiments/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def score(p: np.ndarray, true: np.ndarray, expected_regret: float) -> dict:
    truth = int(np.argmin(true))
    onehot = np.zeros(len(p))
    onehot[truth] = 1.0
    return {"p_truth": float(p[truth]), "log": float(np.log(max(p[truth], 1e-3))),
            "brier": float(((p - onehot) ** 2).sum()), "p_first": float(p[0]), "first_is_best": truth == 0,
            "regret_expected": expected_regret, "regret_true": float(true[0] - true.min())}


def main() -> None:
    import torch

    torch.set_num_threads(1)
    from bomix.evaluators import get_evaluator

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", type=Path, help="a benchmark directory (benchmark.json + studies/)")
    parser.add_argument("--label", default="bo", help="which method's studies (default bo)")
    parser.add_argument("--top", type=int, default=5, help="m, the mixtures compared per campaign (default 5)")
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--trials", type=int, nargs="*", default=[None],
                        help="score each campaign as it stood after its first N trials (default: all of them)")
    args = parser.parse_args()
    spec_path = args.benchmark / "benchmark.json"
    if not spec_path.is_file():
        raise SystemExit(f"{args.benchmark} must be a benchmark directory with benchmark.json")
    spec = json.loads(spec_path.read_text())
    evaluator = get_evaluator(spec["evaluator"]["name"], **spec["evaluator"].get("params", {}))
    if not callable(getattr(evaluator, "true_value", None)):
        raise SystemExit(f"the benchmark's evaluator {spec['evaluator']['name']!r} does not know the truth "
                         f"(true_value), so p_best cannot be scored")
    dirs = sorted((args.benchmark / "studies" / args.label).glob("seed-*"), key=lambda p: int(p.name[5:]))
    if not dirs:
        raise SystemExit(f"no studies of label {args.label!r} under {args.benchmark / 'studies'}")
    for n_trials in args.trials:
        score_campaigns(args, dirs, evaluator, n_trials)


def score_campaigns(args, dirs, evaluator, n_trials) -> None:
    import dataclasses

    import bomix
    from bomix.confidence import which_wins_in

    rows = {"joint": [], "independent": [], "observed": []}
    for d in dirs:
        study = bomix.load_study(d)
        history = study.search_history()
        if n_trials is not None:
            history = dataclasses.replace(history, trials=history.trials[:n_trials])
        table = which_wins_in(study.optimizer, history, args.top, args.samples, seed=study.seed, basis="joint")
        if len(table) < 2 or table["basis"].iloc[0] != "joint posterior":
            print(f"{d.name}: skipped ({len(table)} mixtures, basis {table['basis'].iloc[0] if len(table) else '-'})")
            continue
        weights = [study.trials[int(n)].weights for n in table["trial"]]
        true = np.array([evaluator.true_value(w, study.objective.to_dict()) for w in weights])
        truth = int(np.argmin(true))
        joint = table["p_best"].to_numpy()
        rng = np.random.default_rng(study.seed)
        mean, sd = table["predicted"].to_numpy(), table["sd"].to_numpy()
        draws = mean + sd * rng.standard_normal((args.samples, len(mean)))
        independent = np.bincount(draws.argmin(1), minlength=len(mean)) / args.samples
        independent_regret = float((draws[:, 0] - draws.min(1)).mean())
        observed = np.zeros(len(mean))
        observed[int(np.argmin(table["observed"].to_numpy()))] = 1.0
        for name, p, r in (("joint", joint, float(table["expected_regret"].iloc[0])),
                           ("independent", independent, independent_regret), ("observed", observed, np.nan)):
            rows[name].append(score(p, true, r))
        print(f"{d.name}: truly best is rank {truth + 1}; p_best joint {np.round(joint, 2).tolist()}, "
              f"true gaps to it {np.round(true - true[truth], 4).tolist()}", flush=True)
    n = len(rows["joint"])
    if not n:
        raise SystemExit("no study could be scored")
    after = "all trials" if n_trials is None else f"after {n_trials} trials"
    print(f"\n{args.benchmark}, label {args.label}, top {args.top}, {after}: {n} campaigns")
    print(f"{'p_best from':<12} {'mean p(truth)':>14} {'log score':>10} {'Brier':>8} {'rank-1 p_best':>14} "
          f"{'rank-1 truly best':>18} {'rank-1 regret: expected':>24} {'true':>7}")
    for name, r in rows.items():
        mean = lambda key: float(np.mean([x[key] for x in r]))  # noqa: E731
        print(f"{name:<12} {mean('p_truth'):>14.3f} {mean('log'):>10.3f} {mean('brier'):>8.3f} "
              f"{mean('p_first'):>14.3f} {mean('first_is_best'):>18.3f} {mean('regret_expected'):>24.4f} "
              f"{mean('regret_true'):>7.4f}")
    chance = 1 / args.top
    print(f"{'chance':<12} {chance:>14.3f} {np.log(chance):>10.3f} {1 - chance:>8.3f}")
    print("rank-1: the mixture with the best predicted value; 'truly best' is how often it has the lowest "
          "noise-free objective of the top; a calibrated p_best matches it on average. Regret: the rank-1 mixture's "
          "objective minus the lowest of the top, as the model expects it and in truth. chance: p_best = 1/top.",
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
