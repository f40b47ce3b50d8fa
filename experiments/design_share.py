"""How each method of a benchmark spent its budget: design trials against model-driven ones.

Reads the studies' journals (proposed_by of every trial) and prints, per method, the mean number
of trials per study that came from a design (".../design", ".../init", Sobol points), from a
fitted model ranking or proposing (".../ranked", ".../optimum", ".../candidate", ".../gp"; random
search's draws count as design), and anything else (fixed mixtures), with the smallest count of model-driven trials over seeds. A law that never gets
past its design shows 0 there.

    bomix benchmark experiments/configs/bench_regmix_pool.toml -o runs/b24 --set benchmark.seeds=3 \\
        --set benchmark.budget=24
    python experiments/design_share.py runs/b24

Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

DESIGN = ("/design", "/init", "/explore")
MODEL = ("/ranked", "/optimum", "/candidate", "/gp")


def kind(source: str, method: str) -> str:
    if method == "random":  # random search ranks runs by seeded noise: draws, not a model
        return "design"
    if source.endswith(MODEL):
        return "model"
    if source.endswith(DESIGN) or source == "sobol":
        return "design"
    return "other"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("benchmark", type=Path)
    args = p.parse_args()
    spec = json.loads((args.benchmark / "benchmark.json").read_text())
    print(f"budget {spec['budget']}; trials per study, mean over seeds")
    print(f"{'method':<22} {'seeds':>5} {'design':>7} {'model':>7} {'other':>7} {'min model':>10}")
    for label, method in spec["methods"].items():
        counts = []
        for journal in sorted((args.benchmark / "studies" / label).glob("seed-*/journal.jsonl")):
            events = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
            counts.append(Counter(kind(e.get("proposed_by", ""), method["name"]) for e in events
                                  if e.get("event") == "create"))
        if not counts:
            continue
        mean = {k: sum(c[k] for c in counts) / len(counts) for k in ("design", "model", "other")}
        print(f"{label:<22} {len(counts):>5} {mean['design']:>7.1f} {mean['model']:>7.1f} {mean['other']:>7.1f} "
              f"{min(c['model'] for c in counts):>10}")


if __name__ == "__main__":
    main()
