"""How well each surrogate family reproduces logged runs (5-fold cross-validation).

The replay evaluator's surrogate mode answers for any mixture with a model fitted to all 512
logged runs. Before trusting a benchmark on it, read how far its answers are from held-out runs:
per family, the out-of-fold MAE of every loss, of the mean of the 13 losses and of the Pile-CC
loss, and the Spearman rank correlation of the objective (a surrogate that ranks mixtures wrongly
sends every optimizer to the wrong place, however small its MAE).

    python experiments/surrogate_cv.py                      # lightgbm, mixing_law and linear
    python experiments/surrogate_cv.py --families lightgbm --out experiments/results/surrogate_cv.json
    python experiments/surrogate_cv.py --swarm dclm --families lightgbm linear   # olmix's DCLM swarm,
                                                # scored on olmix's task-family objective

Run from the repository root with ../shared beside it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from bomix.evaluators.replay import SURROGATES, ReplayEvaluator
from bomix.objective import Objective

DATA = Path("../shared/data/regmix-1m")
OLMIX = Path("../shared/data/olmix-swarms")


def dclm(family: str) -> ReplayEvaluator:
    return ReplayEvaluator(ratios=OLMIX / "dclm_ratios.csv", metrics=OLMIX / "dclm_metrics.csv", mode="surrogate",
                           surrogate=family)


def family_objective(args) -> None:
    """The DCLM swarm: out-of-fold error of olmix's family objective, per surrogate family."""
    objective = Objective.from_olmix_config(OLMIX / "dclm_fit_config.yaml")
    rows = []
    print(f"{'family':<11} {'objective MAE':>14} {'Spearman':>9} {'metric MAE':>11} {'seconds':>8}")
    for family in args.families:
        start = time.time()
        ev = dclm(family)
        names = list(ev.loss_names)
        pred, true = ev.cv_predictions(args.folds), ev.logged_losses
        f_pred, f_true = objective.of_rows(names, pred), objective.of_rows(names, true)
        row = {"swarm": "dclm", "family": family, "folds": args.folds,
               "objective_mae": float(np.abs(f_pred - f_true).mean()),
               "objective_spearman": float(spearmanr(f_pred, f_true).statistic),
               "metric_mae": float(np.abs(pred - true).mean()), "seconds": time.time() - start}
        rows.append(row)
        print(f"{family:<11} {row['objective_mae']:>14.4f} {row['objective_spearman']:>9.3f} "
              f"{row['metric_mae']:>11.4f} {row['seconds']:>8.1f}")
    print(f"bits per byte, out of fold; the spread of the logged objective: sd {f_true.std():.4f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", nargs="+", default=list(SURROGATES), choices=SURROGATES)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    p.add_argument("--swarm", choices=["regmix", "dclm"], default="regmix")
    args = p.parse_args()
    if args.swarm == "dclm":
        return family_objective(args)

    rows = []
    print(f"{'family':<11} {'mean MAE':>9} {'Spearman':>9} {'pile_cc MAE':>12} {'pile_cc Spearman':>17} "
          f"{'worst-loss MAE':>15} {'seconds':>8}")
    for family in args.families:
        start = time.time()
        ev = ReplayEvaluator(ratios=DATA / "train_mixture_1m.csv", metrics=DATA / "train_pile_loss_1m.csv",
                             preset="regmix", mode="surrogate", surrogate=family)
        pred, true = ev.cv_predictions(args.folds), ev.logged_losses
        per_loss = dict(zip(ev.loss_names, np.abs(pred - true).mean(axis=0).tolist()))
        j = ev.loss_names.index("pile_cc")
        row = {"family": family, "folds": args.folds, "per_loss_mae": per_loss,
               "mean_mae": float(np.abs(pred.mean(axis=1) - true.mean(axis=1)).mean()),
               "mean_spearman": float(spearmanr(pred.mean(axis=1), true.mean(axis=1)).statistic),
               "pile_cc_mae": per_loss["pile_cc"],
               "pile_cc_spearman": float(spearmanr(pred[:, j], true[:, j]).statistic),
               "seconds": time.time() - start}
        worst = max(per_loss, key=per_loss.get)
        rows.append(row)
        print(f"{family:<11} {row['mean_mae']:>9.4f} {row['mean_spearman']:>9.3f} {row['pile_cc_mae']:>12.4f} "
              f"{row['pile_cc_spearman']:>17.3f} {per_loss[worst]:>9.4f} ({worst}) {row['seconds']:>6.1f}")
    print("MAE in nats/token, out of fold; the spread of the logged values: mean-objective sd "
          f"{ev.logged_losses.mean(axis=1).std():.4f}, pile_cc sd {ev.logged_losses[:, ev.loss_names.index('pile_cc')].std():.4f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
