"""Multi-fidelity search against single-scale search, at equal total compute.

    python experiments/bench_multifidelity.py --problem multiscale --seeds 2 --budget 4
    python experiments/bench_multifidelity.py --problem regmix --seeds 2 --budget 2
    python experiments/bench_multifidelity.py --methods bo_mf --mf-params '{"n_target_init": 3}'
    python experiments/bench_multifidelity.py --summarise runs/mf/ms50.jsonl     # the tables again

Every method gets the same compute budget, `--budget` target-scale runs' worth (cost = a scale's
relative cost, parameters x tokens; a trial is charged its evaluator's cost["compute"]). A method
stops before the trial that would overspend it.

    bo_mf        bo_mf over both scales (bomix.optimizers.bo_mf); its recommendation is for the target
    bo_small     (a) bo at the cheap scale only (budget / cost_small trials); its best observed
                 mixture is transferred to the target
    bo_target    (b) bo at the target only (budget / cost_target trials)
    regmix_small (c) RegMix's recipe: its one-shot protocol (a swarm, one fitted regression,
                 the predicted best) at the cheap scale, its recommendation transferred
    uniform      the trivial reference: the uniform mixture (on a pool, the run nearest it) at the
                 target, one run
    olmix_small  (c) olmix's recipe: its one-shot protocol (a swarm, fitted log-linear laws, the
                 proposer's optimum) at the cheap scale, its recommendation transferred
    nested_law   Data Mixing Laws' nested scaling laws (their Algorithm 1, without the step law):
                 the mixing law's design run at each of --nested-sizes (relative costs below the
                 target's), one size law per (mixture, loss) with a shared exponent extrapolates
                 each to the target, the mixing law is fitted to those predictions and its optimum
                 deployed. Multiscale only: the size law needs three sizes, RegMix logs two.

The single-scale arms run study.optimize(evaluator, n_trials) with the n_trials their compute
buys (floor(budget / cost of their scale)), so each method's design is sized by its budget as in
`bomix benchmark`; bo_mf runs study.optimize(evaluator, n_trials, compute_budget=budget), which
hands bo_mf the compute budget and starts no trial the compute left cannot pay for.

Reported per method and seed: the trials and compute spent, and the target-scale regret of the
recommended mixture (for bo_mf also the regret its own best cheap run would have had if
transferred, and its claimed target value and sd against the truth, summarised
with bomix.report.transfer.predicted_vs_actual over 3 or more seeds) (its noise-free target value minus the target optimum: over the simplex on the
landscape, over the pool on RegMix's 256 runs). Problems: "multiscale" (the landscape, k=5, scales
small=1 and big=--ratio, noise_sd 0.01) and "regmix" (the 1M / 60M runs of
../shared/data/regmix-1m-60m in pool mode, objective --objective).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import bomix  # noqa: E402
from bomix.evaluators.landscapes import landscape  # noqa: E402
from bomix.evaluators.replay import ReplayEvaluator  # noqa: E402
from bomix.evaluators.replay_scales import ReplayScales, regmix_scales  # noqa: E402

METHODS = ("bo_mf", "bo_small", "bo_target", "regmix_small", "olmix_small", "uniform", "nested_law")
NESTED_SIZES = (1.0, 2.0, 4.0)  # nested_law's proxy sizes, relative cost (the target's: --ratio)
FAST_BO = {"raw_samples": 64, "num_restarts": 2}


class Problem:
    """Both scales of one problem: evaluators, the target truth, costs."""

    def __init__(self, name: str, seed: int, ratio: float, objective: str, data: str,
                 nested_sizes=NESTED_SIZES):
        self.objective = objective
        self.nested = None  # nested_law's landscape: the same laws at small and big, and its sizes between
        if name == "multiscale":
            params = dict(k=5, seed=seed, noise_sd=0.01, scales={"small": 1.0, "big": ratio}, objective=objective)
            self.mf = landscape("multiscale", **params)
            if any(not 1.0 <= size < ratio for size in nested_sizes):
                raise SystemExit(f"--nested-sizes must lie in [1, ratio = {ratio:g}), got {list(nested_sizes)}")
            # a scale's law depends only on where its cost sits between the cheapest (1) and the target's,
            # so adding sizes between them leaves the small and big scales' laws as they are
            self.nested_scales = {("small" if size == 1.0 else f"n{size:g}"): size for size in nested_sizes}
            self.nested = landscape("multiscale", **{**params, "scales": {**params["scales"], **self.nested_scales}})
            # the single-scale arms see one scale as an ordinary single-fidelity landscape
            self.small, self.big = (landscape("multiscale", scale=s, fixed=True, **params) for s in ("small", "big"))
            self.space, self.pool = bomix.MixtureSpace(self.mf.domains), None
            self.best = self.mf.optimal_value
            self.truth = lambda w: self.mf.true_value(w)
        else:
            scales = regmix_scales(data)
            self.mf = ReplayScales(scales=scales, preset="regmix")
            self.small, self.big = (ReplayEvaluator(ratios=scales[s]["ratios"], metrics=scales[s]["metrics"],
                                                    preset="regmix") for s in ("1m", "60m"))
            self.space, self.pool = self.mf.space, self.mf.pool
            values = self.mf.logged_values(objective)
            self.best = float(values.min())
            self.truth = lambda w: float(values[self.mf.nearest(w)])
        self.costs = self.mf.fidelities
        self.cheap = min(self.costs, key=self.costs.get)
        self.target = self.mf.target_fidelity


def bench(problem: Problem, method: str, seed: int, budget_runs: float, workdir: Path, mf_params=None) -> dict:
    start = time.perf_counter()
    row = _bench(problem, method, seed, budget_runs, workdir, mf_params)
    return {**row, "seconds": round(time.perf_counter() - start, 1)}


def _bench(problem: Problem, method: str, seed: int, budget_runs: float, workdir: Path, mf_params=None) -> dict:
    budget = budget_runs * problem.costs[problem.target]
    kw = {"space": problem.space, "seed": seed, "objective": problem.objective}
    if method == "uniform":  # no search: its regret is the uniform mixture's (pool: the nearest run's)
        return {"method": method, "seed": seed, "trials": 1, "compute": 1.0,
                "regret": problem.truth(problem.space.to_mixture(problem.space.center)) - problem.best}
    if method == "nested_law":
        return _nested_law(problem, seed, budget)
    if method == "bo_mf":  # the compute budget reaches bo_mf through the study, as in a user's campaign
        opt = bomix.get_optimizer("bo_mf", seed=seed, **{**FAST_BO, **(mf_params or {})})
        study = bomix.create_study(workdir / method, optimizer=opt, pool=problem.pool,
                                   fidelities=problem.costs, target_fidelity=problem.target, **kw)
        study.optimize(problem.mf, n_trials=10**6, compute_budget=budget, show_progress=False)
        n, spent = sum(t.state.value == "completed" for t in study.trials), study.compute_spent()
    else:
        scale = problem.target if method == "bo_target" else problem.cheap
        evaluator = problem.big if scale == problem.target else problem.small
        name = method.removesuffix("_small").removesuffix("_target")
        opt = bomix.get_optimizer(name, seed=seed, **(FAST_BO if name == "bo" else {"protocol": "one_shot"}))
        study = bomix.create_study(workdir / method, optimizer=opt, pool=problem.pool, **kw)
        n = int(budget / problem.costs[scale] + 1e-9)  # the trials this scale's compute buys
        study.optimize(evaluator, n, show_progress=False)
        spent = n * problem.costs[scale]
    rec = study.recommend()
    row = {"method": method, "seed": seed, "trials": n, "compute": spent / problem.costs[problem.target],
           "regret": None if rec is None else problem.truth(rec.weights) - problem.best}
    if method == "bo_mf" and rec is not None:  # its claim about the target against the truth there
        row["trials_at_target"] = sum(t.fidelity == problem.target and t.state.value == "completed"
                                      for t in study.trials)
        row.update({"claimed": rec.value, "claimed_sd": rec.sd, "actual": problem.truth(rec.weights),
                    "claim_source": rec.source})
        if opt.transfer_check:
            row["transfer_failed"] = opt.transfer_check_failed(study.history())
        # what transferring its own best cheap run would have deployed (the (a)/(c) recipe on its data)
        cheap = [t for t in study.trials if t.state.value == "completed" and t.fidelity == problem.cheap]
        if cheap:
            best = min(cheap, key=lambda t: study.objective(t.losses))
            row["own_cheap_best_regret"] = problem.truth(best.weights) - problem.best
    return row


def _nested_law(problem: Problem, seed: int, budget: float) -> dict:
    """Data Mixing Laws' nested recipe at this compute: the mixing law's one-shot design, each
    mixture run at every nested size, size laws to the target, the mixing law on their predictions."""
    from baselines.mixing_laws import MIN_FIT, MixingLaws, fit_size_law

    if problem.nested is None:
        raise SystemExit("nested_law runs on --problem multiscale only: its size law needs three proxy sizes, "
                         "the RegMix pool logs two (1M and 60M)")
    space, ev, names = problem.space, problem.nested, list(problem.nested_scales)
    sizes = np.array(list(problem.nested_scales.values()))
    n = int(budget / sizes.sum() + 1e-9)  # mixtures the compute buys, each run at every size
    if n < MIN_FIT:
        raise SystemExit(f"nested_law: a compute of {budget:g} buys {n} mixture(s) run at every size of "
                         f"{sizes.tolist()}; the mixing law needs at least {MIN_FIT} (smaller --nested-sizes, or more --budget)")
    law = MixingLaws(seed=seed, protocol="one_shot", budget=n + 1)
    X = law.design(space, n)
    losses = np.array([[list(ev.evaluate(space.to_mixture(x), bomix.TrialContext(
        i * len(names) + j, seed * 100_000 + i * len(names) + j, fidelity=name)).losses.values())
        for j, name in enumerate(names)] for i, x in enumerate(X)])  # (n, sizes, losses)
    m = losses.shape[2]
    size_law = fit_size_law(sizes, losses.transpose(0, 2, 1).reshape(n * m, len(sizes)))
    predicted = size_law.predict(problem.costs[problem.target]).reshape(n, m)
    trials = tuple(bomix.Trial(i, space.to_mixture(x), state=bomix.TrialState.COMPLETED, proposed_by="mixing_laws/design",
                               losses=dict(zip(ev.loss_names, predicted[i].tolist()))) for i, x in enumerate(X))
    fitted = law.fit(bomix.History(space, bomix.Objective(problem.objective), trials, budget=n + 1))
    x = space.project(fitted.optimum)
    return {"method": "nested_law", "seed": seed, "trials": n * len(names),
            "compute": n * sizes.sum() / problem.costs[problem.target],
            "regret": problem.truth(space.to_mixture(x)) - problem.best, "size_exponent": size_law.a,
            "nested_sizes": sizes.tolist()}


def _label(row: dict) -> str:
    """A row's method, with its non-default bo_mf arguments (bo_mf[n_final=2]) or nested_law's sizes
    when they are not NESTED_SIZES (nested_law[sizes=1,1.5,2.25])."""
    if row["method"] == "nested_law":
        sizes = tuple(row.get("nested_sizes", NESTED_SIZES))
        return "nested_law" + ("" if sizes == NESTED_SIZES else f"[sizes={','.join(f'{v:g}' for v in sizes)}]")
    params = row.get("mf_params") or {}
    return row["method"] + (f"[{','.join(f'{k}={v}' for k, v in sorted(params.items()))}]" if params else "")


def summarise(rows: list[dict], against: str = "bo_mf") -> None:
    """Per method: mean target regret with its 95% t-interval and the mean trials; then `against`
    minus each other method, paired by seed (mean and t-interval, won/tied/lost, Wilcoxon p)."""
    from bomix.report.stats import paired, t_ci

    regret = {}
    for row in rows:
        regret.setdefault(_label(row), {})[row["seed"]] = row["regret"]
    print(f"  {'method':18s} {'seeds':>5s} {'regret: mean [95% CI]':>28s} {'trials':>7s}")
    for method, by_seed in regret.items():
        mean, lo, hi, n = t_ci(list(by_seed.values()))
        trials = np.mean([row["trials"] for row in rows if _label(row) == method])
        print(f"  {method:18s} {n:5d} {mean:10.4f} [{lo:.4f}, {hi:.4f}] {trials:7.1f}")
    for method in regret:  # bo_mf with transfer_check: in how many seeds the probe said the cheap scale misleads
        checked = [row for row in rows if _label(row) == method and (row.get("mf_params") or {}).get("transfer_check")]
        if checked:
            failed = sum(bool(row.get("transfer_failed")) for row in checked)
            at_target = np.mean([row.get("trials_at_target", 0) for row in checked])
            print(f"  {method}: the transfer check failed in {failed} of {len(checked)} seeds "
                  f"({at_target:.1f} trials at the target on average)")
    for method in regret:  # nested_law: the shared exponent its size laws found
        a = [row["size_exponent"] for row in rows if _label(row) == method and "size_exponent" in row]
        if a:
            from baselines.mixing_laws import SIZE_A_MIN

            print(f"  {method}: size-law exponent median {np.median(a):.3f}, at the lower bound "
                  f"{SIZE_A_MIN:g} in {sum(v <= SIZE_A_MIN + 1e-6 for v in a)} of {len(a)} seeds")
    if against not in regret:
        return
    print(f"  {against} minus each method, paired by seed (negative: {against} is better):")
    for method, by_seed in regret.items():
        seeds = sorted(set(by_seed) & set(regret[against]))
        if method == against or not seeds:
            continue
        r = paired([regret[against][s] for s in seeds], [by_seed[s] for s in seeds])
        print(f"    - {method:18s} {r['mean_diff']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]  "
              f"{r['wins']}/{r['ties']}/{r['losses']} won/tied/lost of {r['n_pairs']}, Wilcoxon p = {r['wilcoxon_p']:.2g}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problem", choices=("multiscale", "regmix"), default="multiscale")
    ap.add_argument("--seeds", type=int, default=2, help="seeds START..START+N-1 (50 for the full benchmark)")
    ap.add_argument("--start", type=int, default=0, help="the first seed (to extend an --out file)")
    ap.add_argument("--budget", type=float, default=4.0, help="compute, in target-scale runs")
    ap.add_argument("--ratio", type=float, default=10.0, help="multiscale: cost of the big scale / the small")
    ap.add_argument("--objective", default="mean")
    ap.add_argument("--methods", default="", help="comma-separated (default: every method the problem allows; "
                    "nested_law needs --problem multiscale)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "regmix-1m-60m"))
    ap.add_argument("--out", default="", help="append one JSON line per (method, seed) here")
    ap.add_argument("--nested-sizes", default=",".join(f"{s:g}" for s in NESTED_SIZES),
                    help="nested_law: its proxy sizes, relative costs in [1, --ratio), comma-separated (3 or more)")
    ap.add_argument("--mf-params", default="{}",
                    help='bo_mf constructor arguments as JSON, e.g. \'{"n_target_init": 3}\'')
    ap.add_argument("--against", default="bo_mf", help="the method the paired tests compare with the others")
    ap.add_argument("--summarise", default="", metavar="JSONL",
                    help="print the summary of the rows an earlier --out wrote, and run nothing")
    args = ap.parse_args(argv)
    if args.summarise:
        if not Path(args.summarise).is_file():
            raise SystemExit(f"--summarise must name a JSONL file an earlier --out wrote, got {args.summarise!r} "
                             f"(not a file)")
        rows = [json.loads(line) for line in Path(args.summarise).read_text().splitlines() if line.strip()]
        print(f"{args.summarise}: {len(rows)} rows")
        summarise(rows, against=args.against)
        return
    methods = [m for m in args.methods.split(",") if m] or [
        m for m in METHODS if args.problem == "multiscale" or m != "nested_law"]
    mf_params = json.loads(args.mf_params)
    if not isinstance(mf_params, dict):
        raise SystemExit(f"--mf-params must be a JSON object of bo_mf arguments, got {args.mf_params!r}")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"--methods must be among {list(METHODS)}, got {unknown}")
    try:
        nested_sizes = tuple(float(size) for size in args.nested_sizes.split(","))
    except ValueError:
        raise SystemExit(f"--nested-sizes must be comma-separated numbers, got {args.nested_sizes!r}") from None
    if len(set(nested_sizes)) < 3:
        raise SystemExit(f"--nested-sizes must name at least 3 distinct sizes (the size law has a shared exponent "
                         f"and two parameters per curve), got {args.nested_sizes!r}")
    rows = []
    for seed in range(args.start, args.start + args.seeds):
        problem = Problem(args.problem, seed, args.ratio, args.objective, args.data, nested_sizes)
        with tempfile.TemporaryDirectory() as tmp:
            for method in methods:
                row = {"problem": args.problem, "budget": args.budget, "mf_params": mf_params,
                       **bench(problem, method, seed, args.budget, Path(tmp), mf_params)}
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(row) + "\n")
    print(f"\n{args.problem}, budget {args.budget:g} target runs, {args.seeds} seeds:")
    summarise(rows, against=args.against)
    claims = [row for row in rows if row["method"] == "bo_mf" and "claimed" in row]
    if len(claims) >= 3:
        from bomix.report.transfer import predicted_vs_actual

        sds = None if any(c["claimed_sd"] is None for c in claims) else [c["claimed_sd"] for c in claims]
        print("  bo_mf's recommended value against the truth at the target:",
              predicted_vs_actual([c["claimed"] for c in claims], [c["actual"] for c in claims], sds))


if __name__ == "__main__":
    main()
