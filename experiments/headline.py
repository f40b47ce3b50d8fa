"""One compact table per benchmark, from the CSVs `bomix report` wrote.

Per method: the deployed value (the noise-free value of its recommended mixture, mean over seeds
with a 95% t-interval), the best observed value (mean), the median best observed after 16, 32 and
64 trials (noise-free where the evaluator knows it), and bo minus the method on the deployed
value, paired by seed (mean difference, won/tied/lost for bo, Wilcoxon p).

    bomix report runs/bench_regmix_pool_pilecc -o runs/bench_regmix_pool_pilecc/report
    python experiments/headline.py runs/bench_regmix_pool_pilecc/report [--against bo]
    python experiments/headline.py runs/bench_law_protocols/report --against bimix \
        --pair bimix bimix_refit --pair bimix bimix_oneshot      # and any other pairs, by label

Run from the repository root.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("report", type=Path, help="a folder `bomix report` wrote")
    p.add_argument("--against", default="bo", help="the method compared with every other (default bo)")
    p.add_argument("--pair", nargs=2, action="append", default=[], metavar=("A", "B"),
                   help="also print A - B on the deployed value, paired by seed")
    args = p.parse_args()
    finals = pd.read_csv(args.report / "final_summary.csv")
    budgets = pd.read_csv(args.report / "at_budgets.csv")
    tests = pd.read_csv(args.report / "paired_tests.csv")
    metric = "true_of_best_so_far" if (budgets["metric"] == "true_of_best_so_far").any() else "best_so_far"
    budgets = budgets[budgets["metric"] == metric]
    steps = sorted(budgets["budget"].unique())
    head = (f"{'method':<20} {'seeds':>5} {'deployed [95% CI]':>27} {'best obs':>9} "
            + " ".join(f"{'med@' + str(b):>9}" for b in steps) + f"   {args.against} - method (won/tied/lost, p)")
    print(head)
    for label in dict.fromkeys(finals["label"]):
        rows = finals[finals["label"] == label].set_index("metric")
        dep, best = rows.loc["deployed"], rows.loc["best_observed"]
        meds = budgets[budgets["label"] == label].set_index("budget")["median"]
        line = (f"{label:<20} {int(dep['n']):>5} {dep['mean']:>9.4f} [{dep['ci_low']:.4f}, {dep['ci_high']:.4f}] "
                f"{best['mean']:>9.4f} " + " ".join(f"{meds.get(b, float('nan')):>9.4f}" for b in steps))
        t = tests[(tests["label"] == args.against) & (tests["reference"] == label) & (tests["metric"] == "deployed")]
        if label != args.against and len(t):
            t = t.iloc[0]
            line += (f"   {t['mean_diff']:+.4f} ({int(t['wins'])}/{int(t['ties'])}/{int(t['losses'])}, "
                     f"p={t['wilcoxon_p']:.2g})")
        print(line)
    for a, b in args.pair:
        t = tests[(tests["label"] == a) & (tests["reference"] == b) & (tests["metric"] == "deployed")]
        if not len(t):
            raise SystemExit(f"no paired test of {a} against {b} in {args.report / 'paired_tests.csv'}")
        t = t.iloc[0]
        print(f"{a} - {b}: {t['mean_diff']:+.4f} [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}], won/tied/lost "
              f"{int(t['wins'])}/{int(t['ties'])}/{int(t['losses'])}, Wilcoxon p = {t['wilcoxon_p']:.2g}")
    print(f"deployed: {rows.loc['deployed', 'kind'] or 'observed'} value of the recommended mixture; medians of "
          f"{'the noise-free value of ' if metric.startswith('true') else ''}the best observed mixture so far")


if __name__ == "__main__":
    main()
