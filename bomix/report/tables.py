"""The report's tables, computed from `ReportData` before anything is plotted.

Every value is an objective value in nats/token, lower is better. "best observed" is the lowest
noisy value a study saw within the budget; "recommended" is the mixture its optimizer recommends
(model-based where it has a model), valued by the truth when the evaluator knows it. The two are
kept apart (Ax's benchmarks call them the oracle and the inference trace).
"""

from __future__ import annotations

import math

import numpy as np

METRICS = {  # column of finals_by_seed -> what it is
    "best_observed": "best observed value within the budget",
    "true_of_best_observed": "true (noise-free) value of the best observed mixture",
    "true_of_recommended": "true (noise-free) value of the recommended mixture",
    "replicated": "mean of the replicated evaluations of the recommended (else best) mixture",
}
QUANTILES = (0.75, 0.5, 0.25, 0.1)  # targets: these quantiles of all final best observed values


def t_ci(values, level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, lower, upper, n) of the finite `values`: a Student-t interval; NaN bounds when n < 2."""
    from scipy.stats import t

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if n < 2:
        return mean, math.nan, math.nan, 1
    half = float(t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def within_budget(data):
    """Trials that count for the final value: non-replicate finished trials up to the budget."""
    df = data.trials
    return df[df["trial_index"].notna() & (df["trial_index"] <= max(data.budget, 1))]


def finals_by_seed(data):
    """One row per (label, seed): the METRICS columns plus n_trials and best_number."""
    import pandas as pd

    rows = []
    recs = data.recommendations.set_index(["label", "seed"]) if len(data.recommendations) else None
    reps = data.replicates
    for (label, seed), g in within_budget(data).groupby(["label", "seed"], sort=False):
        done = g[g["value"].notna()]
        row = {"label": label, "seed": seed, "n_trials": int(g["trial_index"].max()),
               "best_observed": math.nan, "true_of_best_observed": math.nan, "best_number": None,
               "true_of_recommended": math.nan, "recommended_predicted": math.nan, "replicated": math.nan}
        if len(done):
            last = g.iloc[-1]
            row.update(best_observed=last["best_so_far"], true_of_best_observed=last["true_of_best_so_far"],
                       best_number=int(done.loc[done["value"].idxmin(), "number"]))
        rec = None
        if recs is not None and (label, seed) in recs.index:
            rec = recs.loc[(label, seed)]
            row.update(true_of_recommended=rec.get("true_value", math.nan), recommended_predicted=rec["predicted"])
        if len(reps):
            mine = reps[(reps["label"] == label) & (reps["seed"] == seed)]
            for number in (None if rec is None else rec["trial"], row["best_number"]):
                if number is not None and not pd.isna(number) and (mine["number"] == number).any():
                    row["replicated"] = float(mine.loc[mine["number"] == number, "mean"].iloc[0])
                    break
        rows.append(row)
    return pd.DataFrame(rows)


def final_summary(finals):
    """Long table: label, metric, n, mean, ci_low, ci_high (95% t-interval over seeds)."""
    import pandas as pd

    rows = []
    for label, g in finals.groupby("label", sort=False):
        for metric in METRICS:
            mean, lo, hi, n = t_ci(g[metric])
            if n:
                rows.append({"label": label, "metric": metric, "n": n, "mean": mean, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["label", "metric", "n", "mean", "ci_low", "ci_high"])


def paired_tests(finals, data, *, reference: str = "sobol"):
    """Each method against `reference` and against the best baseline, paired over seeds.

    The best baseline of a method: the other label, not a BO method (bo, ax_default), with the
    lowest mean final value. diff = method - reference (negative: the method is better); Wilcoxon
    signed-rank p (two-sided), mean difference with its 95% t-interval, and seeds won/lost.
    """
    import pandas as pd
    from scipy.stats import wilcoxon

    names = {label: getattr(s.optimizer, "name", "") for (label, _), s in data.studies.items()}
    metrics = [m for m in ("best_observed", "true_of_recommended") if finals[m].notna().any()]
    rows = []
    for metric in metrics:
        wide = finals.pivot_table(index="seed", columns="label", values=metric, aggfunc="first")
        means = wide.mean()
        baselines = [c for c in wide.columns if names.get(c) not in ("bo", "ax_default")]
        for label in wide.columns:
            refs = []
            if reference in wide.columns and label != reference:
                refs.append((reference, reference))
            others = [b for b in baselines if b != label and np.isfinite(means[b])]
            if others:
                best = min(others, key=lambda b: means[b])
                if refs and refs[0][0] == best:
                    refs[0] = (best, f"{reference} = best baseline")
                else:
                    refs.append((best, "best baseline"))
            for ref, role in refs:
                pair = wide[[label, ref]].dropna()
                diff = (pair[label] - pair[ref]).to_numpy()
                mean, lo, hi, n = t_ci(diff)
                p = math.nan
                if n >= 2 and np.any(diff != 0):
                    try:
                        p = float(wilcoxon(diff).pvalue)
                    except ValueError:
                        pass
                elif n >= 2:
                    p = 1.0
                rows.append({"label": label, "reference": ref, "role": role, "metric": metric, "n_pairs": n,
                             "mean_diff": mean, "ci_low": lo, "ci_high": hi, "wilcoxon_p": p,
                             "wins": int((diff < 0).sum()), "losses": int((diff > 0).sum())})
    return pd.DataFrame(rows, columns=["label", "reference", "role", "metric", "n_pairs", "mean_diff", "ci_low",
                                       "ci_high", "wilcoxon_p", "wins", "losses"])


def at_budgets(data, fractions=(0.25, 0.5, 1.0)):
    """label, budget, n, median, mean, ci_low, ci_high of the best observed value after `budget`
    trials (fractions of the benchmark's budget: 16, 32, 64 for 64), over seeds. A fixed mixture
    (one trial) shows its value at every budget."""
    import pandas as pd

    df = within_budget(data)
    budgets = sorted({max(1, round(f * max(data.budget, 1))) for f in fractions})
    rows = []
    for label, g in df.groupby("label", sort=False):
        for b in budgets:
            best = g[g["trial_index"] <= b].groupby("seed")["best_so_far"].last()
            mean, lo, hi, n = t_ci(best)
            if n:
                rows.append({"label": label, "budget": b, "n": n, "median": float(np.nanmedian(best)),
                             "mean": mean, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["label", "budget", "n", "median", "mean", "ci_low", "ci_high"])


def trials_to_reach(finals, data, quantiles=QUANTILES):
    """label, quantile, target, median_trials (median over seeds of the first trial whose best so
    far is <= target; NaN when half the seeds or more never reach it), n_reached, n_seeds."""
    import pandas as pd

    pool = finals.loc[~finals["label"].isin(data.fixed), "best_observed"].dropna()
    if pool.empty:
        return pd.DataFrame(columns=["label", "quantile", "target", "median_trials", "n_reached", "n_seeds"])
    df = within_budget(data)
    rows = []
    for q in quantiles:
        target = float(pool.quantile(q))
        for label, g in df.groupby("label", sort=False):
            firsts = []
            for _, s in g.groupby("seed"):
                hit = s.loc[s["best_so_far"] <= target + 1e-12, "trial_index"]
                firsts.append(float(hit.iloc[0]) if len(hit) else math.inf)
            med = float(np.median(firsts))
            rows.append({"label": label, "quantile": q, "target": target,
                         "median_trials": med if math.isfinite(med) else math.nan,
                         "n_reached": int(np.isfinite(firsts).sum()), "n_seeds": len(firsts)})
    return pd.DataFrame(rows)


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


def compute(data) -> dict:
    """Every table of the report, by file stem (written as <stem>.csv)."""
    finals = finals_by_seed(data)
    return {"trials": data.trials, "recommendations": data.recommendations, "replicates": data.replicates,
            "finals_by_seed": finals, "final_summary": final_summary(finals),
            "paired_tests": paired_tests(finals, data), "at_budgets": at_budgets(data), "trials_to_reach": trials_to_reach(finals, data),
            "recommended_mixtures": recommended_mixtures(data), "domain_losses": domain_losses(data)}
