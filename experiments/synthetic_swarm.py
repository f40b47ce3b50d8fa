"""A synthetic many-domain swarm: logged runs of a landscape, written as olmix-shaped CSVs.

The real swarms shipped in ../shared/data have 17 to 24 domains. To rehearse a 64-domain search
(the size olmix's users run) this writes a pool of `--runs` mixtures drawn by olmix's own swarm
sampler (a Dirichlet around a prior at olmix's strengths, weights under 2e-3 dropped; very
sparse), each with the noise-free losses of an analytic landscape (bomix.evaluators.landscapes),
plus a benchmark config that replays them as a pool. It is a test function, not data: say
"synthetic" wherever its numbers are quoted.

    python experiments/synthetic_swarm.py --landscape interaction --k 64 -o runs/swarm64
    bomix benchmark runs/swarm64/bench.toml -o runs/swarm64/bench
    bomix report runs/swarm64/bench -o runs/swarm64/report && python experiments/headline.py runs/swarm64/report

The prior (the domains' "natural shares") is a Dirichlet(1) draw from --seed; the landscape's
parameters come from --seed too. Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METHODS = {  # the benchmark's methods: bo, the searches and every law baseline
    "bo": {"name": "bo"},
    "sobol": {"name": "sobol"},
    "random": {"name": "random"},
    "uniform": {"name": "uniform"},
    "bimix": {"name": "bimix"},
    # the authors' law fitted to the objective itself: the explicit variant fits one law of k + 2
    # parameters per loss (64 of them here) at every step
    "mixing_laws": {"name": "mixing_laws", "params": {"variant": "implicit"}},
    "regmix": {"name": "regmix"},
    "olmix": {"name": "olmix"},  # about 5 minutes per 64-trial study at k = 64 on a 2-core machine
}


def build(landscape: str, k: int, metrics: int | None, runs: int, seed: int):
    """(domains, prior, X (runs, k), loss names, L (runs, m)) of the swarm."""
    import bomix
    from baselines.olmix import OlMix
    from bomix.evaluators.landscapes import landscape as make

    params = {"k": k, "seed": seed, **({"metrics": metrics} if metrics is not None else {})}
    land = make(landscape, **params)
    prior = np.random.default_rng([seed, 64]).dirichlet(np.ones(k))
    space = bomix.MixtureSpace(land.domains, prior=prior)
    X = OlMix(seed=seed).design(space, runs)
    return land.domains, prior, X, land.loss_names, land.true_loss_matrix(X)


def write(out: Path, landscape: str, k: int, metrics: int | None, runs: int, seed: int, budget: int,
          seeds: int) -> None:
    import pandas as pd

    from bomix.integrations.space_config import toml_value

    domains, prior, X, names, L = build(landscape, k, metrics, runs, seed)
    out.mkdir(parents=True, exist_ok=True)
    keys = pd.DataFrame({"run": [f"swarm-{i:04d}" for i in range(runs)], "name": "swarm", "index": range(runs)})
    pd.concat([keys, pd.DataFrame(X, columns=domains)], axis=1).to_csv(out / "ratios.csv", index=False)
    pd.concat([keys, pd.DataFrame(L, columns=names)], axis=1).to_csv(out / "metrics.csv", index=False)
    lines = [f"# synthetic swarm: {runs} runs of the {landscape!r} landscape, k = {k}, seed {seed}, written by",
             f"#   python experiments/synthetic_swarm.py --landscape {landscape} --k {k}"
             + (f" --metrics {metrics}" if metrics is not None else "") + f" --runs {runs} --seed {seed} -o {out}",
             "", "[benchmark]", f"seeds = {seeds}", f"budget = {budget}", "n_workers = 1", "",
             "[benchmark.methods]", *[f"{label} = {toml_value(m)}" for label, m in METHODS.items()], "",
             "[study]", 'objective = "mean"', "", "[space]", "domains = []",
             f"prior = {toml_value(dict(zip(domains, map(float, prior))))}", "",
             "[evaluator]", 'name = "replay"', "", "[evaluator.params]",
             f"ratios = {json.dumps(str((out / 'ratios.csv').resolve()))}",
             f"metrics = {json.dumps(str((out / 'metrics.csv').resolve()))}", 'mode = "pool"', ""]
    (out / "bench.toml").write_text("\n".join(lines))
    nonzero = (X > 0).sum(axis=1)
    mean = L.mean(axis=1)
    print(f"wrote {out}/ratios.csv, metrics.csv, bench.toml: {runs} runs, {k} domains, {L.shape[1]} losses; "
          f"nonzero weights per run: median {int(np.median(nonzero))}, max {int(nonzero.max())}; "
          f"mean loss: best {mean.min():.4f}, median {np.median(mean):.4f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--landscape", default="interaction", help="a landscape family (bomix.evaluators.landscapes)")
    ap.add_argument("--k", type=int, default=64, help="number of domains")
    ap.add_argument("--metrics", type=int, default=None, help="metrics (mixing_law only; default one per domain)")
    ap.add_argument("--runs", type=int, default=512, help="logged runs in the pool")
    ap.add_argument("--seed", type=int, default=0, help="the landscape's, the prior's and the swarm's seed")
    ap.add_argument("--budget", type=int, default=64, help="the benchmark config's trial budget")
    ap.add_argument("--seeds", type=int, default=10, help="the benchmark config's number of seeds")
    ap.add_argument("-o", "--out", required=True, help="output directory")
    args = ap.parse_args(argv)
    for name in ("k", "runs", "budget", "seeds"):
        if getattr(args, name) < (2 if name == "k" else 1):
            raise SystemExit(f"--{name} must be >= {2 if name == 'k' else 1}, got {getattr(args, name)}")
    write(Path(args.out), args.landscape, args.k, args.metrics, args.runs, args.seed, args.budget, args.seeds)


if __name__ == "__main__":
    main()
