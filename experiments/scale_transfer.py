"""Does a 1M-parameter ranking of mixtures hold at 60M? RegMix's 256 test mixtures at both scales.

    python experiments/scale_transfer.py [--data ../shared/data/regmix-1m-60m] [--objective mean]
                                         [--figure experiments/results/transfer.png]

Prints, on the 256 mixtures run at both scales: Spearman and Kendall rank correlation of each of
the 13 Pile losses and of the objective; where the 1M-best mixture ranks at 60M and its regret
there against the 60M best. Writes a scatter of the objective at 1M vs 60M with both bests marked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bomix.evaluators.replay_scales import ReplayScales, regmix_scales  # noqa: E402
from bomix.report.transfer import best_transfer, rank_transfer  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "regmix-1m-60m"))
    ap.add_argument("--objective", default="mean", help="what the objective rows use (default: mean of the 13 losses)")
    ap.add_argument("--figure", default=str(ROOT / "experiments" / "results" / "transfer.png"),
                    help="where to write the scatter ('' for none)")
    args = ap.parse_args(argv)

    ev = ReplayScales(scales=regmix_scales(args.data), preset="regmix")
    small, big = ev.loss_matrix("1m"), ev.loss_matrix("60m")
    vs, vb = ev.logged_values(args.objective, "1m"), ev.logged_values(args.objective, "60m")
    table = rank_transfer(small, big, ev.loss_names, vs, vb, objective_name=f"objective ({args.objective})")
    print(f"rank correlation 1M vs 60M over the {len(ev.pool)} mixtures run at both scales")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    best = best_transfer(vs, vb)
    print(f"\nobjective {args.objective}: the 1M-best mixture (index {best['small_best'] + 1}) ranks "
          f"{best['small_best_rank_at_big']} of {best['n']} at 60M with {best['small_best_at_big']:.4f}; "
          f"the 60M best (index {best['big_best'] + 1}) has {best['big_best_value']:.4f}: "
          f"regret {best['regret']:.4f} nats/token")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 4.5))
        ax.scatter(vs, vb, s=10, alpha=0.5, color="0.4", label="mixture")
        i, j = best["small_best"], best["big_best"]
        ax.scatter([vs[i]], [vb[i]], s=60, marker="s", color="tab:orange", label="1M best")
        ax.scatter([vs[j]], [vb[j]], s=80, marker="*", color="tab:blue", label="60M best")
        rho = table.iloc[-1]["spearman"]
        ax.set(xlabel=f"1M {args.objective} loss (nats/token)", ylabel=f"60M {args.objective} loss (nats/token)",
               title=f"RegMix 256 mixtures: 1M vs 60M (Spearman {rho:.2f})")
        ax.legend(loc="upper left")
        fig.tight_layout()
        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.figure, dpi=120)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
