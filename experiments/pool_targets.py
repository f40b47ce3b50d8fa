"""The fixed-budget targets of a benchmark, read from its studies: medians at 16/32/64 trials,
bo against the best baseline, bo against sobol (paired over seeds), and optional anchor values.

    python experiments/pool_targets.py runs/pool-mean-50 --anchor random=4.8415,4.8023 \
        --anchor ridge=4.8388,4.8023 --anchor gp_ei=4.7894,4.7823

For each method: the median over seeds of the best value observed within the first 16, 32 and 64
trials (fixed mixtures: their one trial), how many seeds found the pool's best run, and the paired
differences at the full budget. The checks printed at the end:
  1. bo's median at half the budget <= the best median any baseline reaches at the full budget;
  2. bo beats sobol at the full budget, paired over seeds (two-sided Wilcoxon p < 0.05);
  3. bo's medians beat every --anchor (values at half and full budget).
Reads the studies' journals only (no model is refitted), so it takes seconds.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

import bomix
from bomix.trial import TrialState

BO_LABELS = ("bo", "bo_nocenter", "ax_default")


def best_so_far(study) -> list[float]:
    """Running minimum of the objective over the study's finished trials (abandoned ones do not
    count), in creation order; replicates made after the budget are counted by the caller's cut."""
    out, best = [], math.inf
    for t in study.trials:
        if t.state is TrialState.COMPLETED and t.value is not None:
            best = min(best, t.value)
        if t.state in (TrialState.COMPLETED, TrialState.FAILED):
            out.append(best)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("benchmark", type=Path)
    p.add_argument("--anchor", action="append", default=[], metavar="NAME=HALF,FULL",
                   help="reference medians at half and full budget, e.g. random=4.8415,4.8023")
    p.add_argument("--bo", default="bo", help="the label of the method under test (default bo)")
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = p.parse_args()

    config = json.loads((args.benchmark / "benchmark.json").read_text())
    budget = config["budget"]
    budgets = sorted({max(1, budget // 4), max(1, budget // 2), budget})
    curves: dict[str, dict[int, list[float]]] = {}
    for label in config["methods"]:
        for d in sorted((args.benchmark / "studies" / label).glob("seed-*")):
            curve = best_so_far(bomix.load_study(d))
            if curve:
                curves.setdefault(label, {})[int(d.name.split("-")[1])] = curve

    def at(label, b):  # {seed: best within the first b trials}
        return {s: c[min(b, len(c)) - 1] for s, c in curves[label].items()}

    pool_best = min(min(c) for cs in curves.values() for c in cs.values())
    print(f"{args.benchmark}: budget {budget}, objective {config['objective']}; lowest value seen by any "
          f"method {pool_best:.4f}")
    header = "".join(f"{f'median@{b}':>11}" for b in budgets)
    print(f"{'method':<13}{'seeds':>6}{header}{'mean@' + str(budget):>11}{'found best':>11}")
    table = {}
    for label in curves:
        final = at(label, budget)
        row = {b: float(np.median(list(at(label, b).values()))) for b in budgets}
        table[label] = {"seeds": len(final), "median": row, "mean_full": float(np.mean(list(final.values()))),
                        "found_best": int(sum(v <= pool_best + 1e-9 for v in final.values()))}
        print(f"{label:<13}{len(final):>6}" + "".join(f"{row[b]:>11.4f}" for b in budgets)
              + f"{table[label]['mean_full']:>11.4f}{table[label]['found_best']:>8}/{len(final)}")

    bo, half = args.bo, budgets[-2] if len(budgets) > 1 else budget
    baselines = [lb for lb in curves if lb not in BO_LABELS]
    best_base = min(baselines, key=lambda lb: table[lb]["median"][budget])
    checks = {}
    target = table[best_base]["median"][budget]
    checks["bo_half_vs_best_baseline_full"] = ok1 = table[bo]["median"][half] <= target + 1e-12
    print(f"\n1. {bo} median after {half} trials {table[bo]['median'][half]:.4f} vs the best baseline's "
          f"({best_base}) after {budget}: {target:.4f} -> {'met' if ok1 else 'NOT met'}")
    for ref in [lb for lb in dict.fromkeys(("sobol", best_base)) if lb in curves and lb != bo]:
        a, r = at(bo, budget), at(ref, budget)
        seeds = sorted(set(a) & set(r))
        diff = np.array([a[s] - r[s] for s in seeds])
        pval = float(wilcoxon(diff).pvalue) if np.any(diff != 0) else 1.0
        checks[f"vs_{ref}"] = {"n": len(seeds), "mean_diff": float(diff.mean()), "wins": int((diff < 0).sum()),
                               "ties": int((diff == 0).sum()), "losses": int((diff > 0).sum()), "wilcoxon_p": pval}
        print(f"2. {bo} - {ref} after {budget} trials, paired over {len(seeds)} seeds: mean {diff.mean():+.4f}, "
              f"won {checks[f'vs_{ref}']['wins']}, tied {checks[f'vs_{ref}']['ties']}, lost "
              f"{checks[f'vs_{ref}']['losses']}; Wilcoxon p = {pval:.2g}")
    for anchor in args.anchor:
        name, values = anchor.split("=")
        h, f = map(float, values.split(","))
        ok = table[bo]["median"][half] < h and table[bo]["median"][budget] < f
        checks[f"anchor_{name}"] = ok
        print(f"3. anchor {name}: {h:.4f} @ {half}, {f:.4f} @ {budget}; {bo}: {table[bo]['median'][half]:.4f}, "
              f"{table[bo]['median'][budget]:.4f} -> {'better' if ok else 'NOT better'}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"benchmark": str(args.benchmark), "budget": budget,
                                        "objective": config["objective"], "lowest_seen": pool_best,
                                        "table": table, "checks": checks}, indent=2))


if __name__ == "__main__":
    main()
