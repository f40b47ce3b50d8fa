"""The report's tables, computed from `ReportData` before anything is plotted.

Every value is an objective value in ReportData.unit, lower is better. "best observed" is the lowest
noisy value a study saw within the budget; "recommended" is the mixture its optimizer recommends
(model-based where it has a model). The headline is "deployed": the recommended mixture valued by
the truth when the evaluator knows it (landscapes, replay pools, surrogates), else by its
replicated or observed value, labelled so. Best observed is kept beside it, never in its place
(Ax's benchmarks call the two the oracle and the inference trace).
"""

from __future__ import annotations

import math

import numpy as np

from bomix.report.stats import paired, t_ci

METRICS = {  # column of finals_by_seed -> what it is; `deployed` is the headline
    "deployed": "value of the mixture the method would deploy (its recommendation): noise-free where the "
                "evaluator knows it, else replicated, else observed (deployed_kind says which)",
    "best_observed": "best observed (noisy) value within the budget",
    "true_of_best_observed": "true (noise-free) value of the best observed mixture",
    "replicated": "mean of the replicated evaluations of the recommended (else best) mixture",
}
KINDS = {  # deployed_kind -> how the deployed value was measured
    "true": "noise-free value of the recommended mixture",
    "replicated": "mean of the recommended trial's replicated evaluations (no noise-free value known)",
    "observed": "observed (noisy) value of the recommended trial (no noise-free value known)",
}
QUANTILES = (0.75, 0.5, 0.25, 0.1)  # targets: these quantiles of the searching methods' final values
BO_METHODS = ("bo", "ax_default")  # optimizer names that are not baselines
DESIGN_SOURCES = ("/design", "/init", "/explore")  # proposed_by endings of points chosen without a model


def within_budget(data):
    """Trials that count for the final value: non-replicate finished trials up to the budget."""
    df = data.trials
    return df[df["trial_index"].notna() & (df["trial_index"] <= max(data.budget, 1))]


def references(data) -> list[str]:
    """Labels that are trivial references: the benchmark's fixed labels and every method whose
    optimizer proposes one fixed mixture (Optimizer.proposes_distinct is False: uniform, llama)."""
    fixed = {label for (label, _), s in data.studies.items() if not s.optimizer.proposes_distinct}
    labels = dict.fromkeys(label for label, _ in data.studies)
    return [label for label in labels if label in data.fixed or label in fixed]


def finals_by_seed(data):
    """One row per (label, seed): n_trials, best_number, best_observed, true_of_best_observed,
    recommended_trial, recommended_predicted, true_of_recommended, observed_of_recommended,
    replicated, replicated_of_recommended, deployed and deployed_kind (a key of KINDS).
    Values in objective units."""
    import pandas as pd

    rows = []
    recs = data.recommendations.set_index(["label", "seed"]) if len(data.recommendations) else None
    reps = data.replicates
    for (label, seed), g in within_budget(data).groupby(["label", "seed"], sort=False):
        done = g[g["value"].notna()]
        if "fidelity" in g and g["fidelity"].notna().any():  # multi-fidelity: the best is at the target
            done = done[done["fidelity"] == data.studies[(label, seed)].target_fidelity]
        row = {"label": label, "seed": seed, "n_trials": int(g["trial_index"].max()), "best_number": None,
               "best_observed": math.nan, "true_of_best_observed": math.nan, "recommended_trial": None,
               "recommended_predicted": math.nan, "true_of_recommended": math.nan,
               "observed_of_recommended": math.nan, "replicated": math.nan, "replicated_of_recommended": math.nan}
        if len(done):
            last = g.iloc[-1]
            row.update(best_observed=last["best_so_far"], true_of_best_observed=last["true_of_best_so_far"],
                       best_number=int(done.loc[done["value"].idxmin(), "number"]))
        if recs is not None and (label, seed) in recs.index:
            rec = recs.loc[(label, seed)]
            row.update(true_of_recommended=rec.get("true_value", math.nan), recommended_predicted=rec["predicted"],
                       observed_of_recommended=rec.get("observed", math.nan),
                       recommended_trial=None if pd.isna(rec["trial"]) else int(rec["trial"]))
        if len(reps):
            mine = reps[(reps["label"] == label) & (reps["seed"] == seed)]
            for number in (row["recommended_trial"], row["best_number"]):
                if number is not None and (mine["number"] == number).any():
                    row["replicated"] = float(mine.loc[mine["number"] == number, "mean"].iloc[0])
                    if number == row["recommended_trial"]:
                        row["replicated_of_recommended"] = row["replicated"]
                    break
        row["deployed"], row["deployed_kind"] = math.nan, None
        for kind, column in (("true", "true_of_recommended"), ("replicated", "replicated_of_recommended"),
                             ("observed", "observed_of_recommended")):
            if np.isfinite(row[column]):
                row["deployed"], row["deployed_kind"] = float(row[column]), kind
                break
        rows.append(row)
    return pd.DataFrame(rows)


def final_summary(finals):
    """Long table: label, metric (a key of METRICS), kind (the deployed_kind values, "/"-joined, on
    the deployed rows), n, mean, ci_low, ci_high (95% t-interval over seeds)."""
    import pandas as pd

    rows = []
    for label, g in finals.groupby("label", sort=False):
        for metric in METRICS:
            mean, lo, hi, n = t_ci(g[metric])
            kind = "/".join(sorted(set(g["deployed_kind"].dropna()))) if metric == "deployed" else ""
            if n:
                rows.append({"label": label, "metric": metric, "kind": kind, "n": n, "mean": mean,
                             "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["label", "metric", "kind", "n", "mean", "ci_low", "ci_high"])


PAIRED_COLUMNS = ["label", "reference", "role", "metric", "n_pairs", "mean_diff", "ci_low", "ci_high", "wins",
                  "ties", "losses", "wilcoxon_p"]


def paired_tests(finals, data, *, metrics=("deployed", "best_observed")):
    """Every method against every other method, paired over the seeds both ran.

    One row per (label, reference, metric): diff = label - reference per seed (negative: label
    better), mean diff with its 95% t-interval, seeds won/tied/lost, two-sided Wilcoxon signed-rank
    p (all ties: p = 1); see stats.paired. role says what the reference is to the label,
    "; "-joined: "sobol", "random", "best baseline" (the other non-BO label with the lowest mean),
    "best reference" (the trivial reference with the lowest mean, see `references`), or "".
    """
    import pandas as pd

    names = {label: s.optimizer.name for (label, _), s in data.studies.items()}
    refs = references(data)
    rows = []
    for metric in metrics:
        if metric not in finals or not finals[metric].notna().any():
            continue
        wide = finals.pivot_table(index="seed", columns="label", values=metric, aggfunc="first", sort=False)
        means = wide.mean()
        finite = [c for c in wide.columns if np.isfinite(means[c])]
        for label in wide.columns:
            others = [c for c in finite if c != label]
            baselines = [c for c in others if names.get(c) not in BO_METHODS]
            best_baseline = min(baselines, key=lambda c: means[c]) if baselines else None
            best_ref = min((c for c in others if c in refs), key=lambda c: means[c], default=None)
            for ref in wide.columns:
                if ref == label:
                    continue
                role = [r for r in ("sobol", "random") if ref == r]
                role += ["best baseline"] * (ref == best_baseline) + ["best reference"] * (ref == best_ref)
                rows.append({"label": label, "reference": ref, "role": "; ".join(role), "metric": metric,
                             **paired(wide[label].to_numpy(), wide[ref].to_numpy())})
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def progress_metric(data) -> str:
    """The trials column the progress tables read: "true_of_best_so_far" (true value of the best
    observed mixture so far) where every study knows its truth, else "best_so_far"."""
    df = within_budget(data)
    return "true_of_best_so_far" if len(df) and df["true_of_best_so_far"].notna().all() else "best_so_far"


def at_budgets(data, fractions=(0.25, 0.5, 1.0)):
    """label, metric, budget, n, median, mean, ci_low, ci_high over seeds of the value after `budget`
    trials (fractions of the benchmark's budget: 16, 32, 64 for 64). metric "best_so_far" (best
    observed) and, where the truth is known, "true_of_best_so_far" (true value of the best observed
    mixture). A fixed mixture (one trial) shows its value at every budget."""
    import pandas as pd

    df = within_budget(data)
    budgets = sorted({max(1, round(f * max(data.budget, 1))) for f in fractions})
    metrics = ["best_so_far"] + (["true_of_best_so_far"] if df["true_of_best_so_far"].notna().any() else [])
    rows = []
    for metric in metrics:
        for label, g in df.groupby("label", sort=False):
            for b in budgets:
                best = g[g["trial_index"] <= b].groupby("seed")[metric].last()
                mean, lo, hi, n = t_ci(best)
                if n:
                    rows.append({"label": label, "metric": metric, "budget": b, "n": n,
                                 "median": float(np.nanmedian(best)), "mean": mean, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["label", "metric", "budget", "n", "median", "mean", "ci_low", "ci_high"])


def trials_to_reach(finals, data, quantiles=QUANTILES):
    """label, metric, quantile, target, median_trials (median over seeds of the first trial whose
    value so far is <= target; NaN when half the seeds or more never reach it), n_reached, n_seeds.

    metric: `progress_metric(data)`. Targets: quantiles of the searching (non-fixed) methods' final
    values of that metric."""
    import pandas as pd

    columns = ["label", "metric", "quantile", "target", "median_trials", "n_reached", "n_seeds"]
    metric = progress_metric(data)
    final = {"best_so_far": "best_observed", "true_of_best_so_far": "true_of_best_observed"}[metric]
    pool = finals.loc[~finals["label"].isin(data.fixed), final].dropna() if len(finals) else []
    if len(pool) == 0:
        return pd.DataFrame(columns=columns)
    df = within_budget(data)
    rows = []
    for q in quantiles:
        target = float(pool.quantile(q))
        for label, g in df.groupby("label", sort=False):
            firsts = []
            for _, s in g.groupby("seed"):
                hit = s.loc[s[metric] <= target + 1e-12, "trial_index"]
                firsts.append(float(hit.iloc[0]) if len(hit) else math.inf)
            med = float(np.median(firsts))
            rows.append({"label": label, "metric": metric, "quantile": q, "target": target,
                         "median_trials": med if math.isfinite(med) else math.nan,
                         "n_reached": int(np.isfinite(firsts).sum()), "n_seeds": len(firsts)})
    return pd.DataFrame(rows, columns=columns)


def recommended_mixtures(data):
    """label, domain, weight (mean over seeds), sd, n: the recommended mixtures."""
    import pandas as pd

    rec = data.recommendations
    cols = [f"w_{d}" for d in data.domains if f"w_{d}" in rec.columns]
    if rec.empty or not cols:
        return pd.DataFrame(columns=["label", "domain", "weight", "sd", "n"])
    long = rec.melt(id_vars=["label", "seed"], value_vars=cols, var_name="domain", value_name="weight")
    long["domain"] = long["domain"].str.removeprefix("w_")
    out = long.groupby(["label", "domain"], sort=False)["weight"].agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"mean": "weight", "std": "sd", "count": "n"})


def domain_losses(data):
    """label, domain, loss (mean over seeds), sd, n, kind: per-domain losses of the recommended
    mixtures; kind "true" (noise-free, from the evaluator) or "observed" (the recommended trial's)."""
    import pandas as pd

    rec = data.recommendations
    cols = [c for c in rec.columns if c.startswith("loss_") and c != "loss_kind"]
    if rec.empty or not cols:
        return pd.DataFrame(columns=["label", "domain", "loss", "sd", "n", "kind"])
    long = rec.melt(id_vars=["label", "seed", "loss_kind"], value_vars=cols, var_name="domain", value_name="loss")
    long = long.dropna(subset=["loss"])
    long["domain"] = long["domain"].str.removeprefix("loss_")
    out = (long.groupby(["label", "domain"], sort=False)
           .agg(loss=("loss", "mean"), sd=("loss", "std"), n=("loss", "count"),
                kind=("loss_kind", lambda k: "/".join(sorted(set(map(str, k))))))
           .reset_index())
    return out


WINS_COLUMNS = ["label", "seed", "rank", "trial", "observed", "predicted", "sd", "p_best", "expected_regret", "basis"]


def which_wins(data, top: int = 5):
    """For each single-study input (a user's campaign, not a benchmark's studies): its `top` best
    evaluated mixtures with the model's probability that each is the best (bomix.confidence),
    computed once per journal and cached in the study's summary.json."""
    import pandas as pd

    from bomix.confidence import which_wins as table_of
    from bomix.report.cache import cached

    frames = []
    for (label, seed), study in data.studies.items():
        if data.sources[data.source_of[(label, seed)]].get("kind") != "study":
            continue
        records = cached(study, "which_wins", f"top{top}", lambda: table_of(study, top).to_dict("records"))
        if records:
            frames.append(pd.DataFrame(records).assign(label=label, seed=seed))
    if not frames:
        return pd.DataFrame(columns=WINS_COLUMNS)
    df = pd.concat(frames, ignore_index=True)
    return df[WINS_COLUMNS + [c for c in df.columns if c not in WINS_COLUMNS]]


def design_use(data):
    """How each method with a design spent its budget: one row per label whose trials include design
    points (proposed_by ending in DESIGN_SOURCES: a law's design, bo's initial design, exploration
    before a model can be fitted). Columns: label, studies, design_trials and model_trials (mean
    per study, within the budget), design_only (studies in which every trial was a design point:
    the method's model never fitted, or never chose a trial). Methods without a design phase
    (sobol, random, fixed mixtures) have no row."""
    import pandas as pd

    columns = ["label", "studies", "design_trials", "model_trials", "design_only"]
    df = within_budget(data)
    if df.empty:
        return pd.DataFrame(columns=columns)
    df = df.assign(design=df["proposed_by"].astype(str).str.endswith(DESIGN_SOURCES))
    rows = []
    for label, g in df.groupby("label", sort=False):
        if not g["design"].any():
            continue
        per = g.groupby("seed")["design"].agg(["sum", "count"])
        rows.append({"label": label, "studies": len(per), "design_trials": float(per["sum"].mean()),
                     "model_trials": float((per["count"] - per["sum"]).mean()),
                     "design_only": int((per["sum"] == per["count"]).sum())})
    return pd.DataFrame(rows, columns=columns)


def compute(data) -> dict:
    """Every table of the report, by file stem (written as <stem>.csv)."""
    from bomix.report import verdict

    finals = finals_by_seed(data)
    tests = paired_tests(finals, data)
    return {"trials": data.trials, "recommendations": data.recommendations, "replicates": data.replicates,
            "finals_by_seed": finals, "final_summary": final_summary(finals), "paired_tests": tests,
            "verdict": verdict.compute(finals, tests, references(data)),
            "at_budgets": at_budgets(data), "trials_to_reach": trials_to_reach(finals, data),
            "recommended_mixtures": recommended_mixtures(data), "domain_losses": domain_losses(data),
            "which_wins": which_wins(data), "design_use": design_use(data)}
