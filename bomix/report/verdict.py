"""The verdict that opens the report: which method's deployed mixture is best, by how much, how sure,
and whether a trivial rule does as well. Numbers first (`compute`, a tidy table), words second
(`sentences`, generated from that table alone: no claim is written by hand).

The value compared is `deployed` (tables.METRICS): the noise-free value of each method's
recommended mixture where the evaluator knows it, else its replicated or observed value. The
comparisons are the paired tests of tables.paired_tests; "beyond the noise" means the 95%
t-interval of the paired difference excludes 0 and the Wilcoxon p is under 0.05, "within the noise"
that neither test finds a difference, and "not settled" that the two disagree (stats.separation).
"""

from __future__ import annotations

import math

import numpy as np

from bomix.evaluators.base import DEFAULT_UNIT
from bomix.report.stats import separation, t_ci

COLUMNS = ["role", "label", "is_reference", "metric", "kind", "n_seeds", "mean", "ci_low", "ci_high",
           "best_observed", "versus", "n_pairs",
           "advantage", "adv_ci_low", "adv_ci_high", "wins", "ties", "losses", "wilcoxon_p", "separation"]
KIND_WORDS = {
    "true": "the noise-free value of its recommended mixture",
    "replicated": "the replicated mean of its recommended trial; no noise-free value is known here",
    "observed": "the observed (noisy) value of its recommended trial; no noise-free value is known here",
    "best_observed": "its best observed (noisy) value; no recommendation could be valued",
}


def compute(finals, tests, references):
    """The verdict table, one row per role (objective values, lower is better).

    finals: tables.finals_by_seed; tests: tables.paired_tests; references: labels of trivial
    references (fixed mixtures). Rows: "winner" (lowest mean deployed value), "runner-up" (second
    lowest), "best reference" (lowest-mean reference other than the winner), and "best observed
    leader" (lowest mean best observed value, when it is another method). Columns: COLUMNS, where
    is_reference says whether the row's label is a reference; best_observed is its mean best
    observed value; advantage = mean over paired seeds of (row's value - winner's value), positive
    when the winner is better, with its 95% t-interval (adv_ci_low, adv_ci_high); wins/ties/losses
    count seeds from the winner's side; separation: stats.separation of that comparison ("beyond",
    "within" or "unsettled" the noise).
    """
    import pandas as pd

    if finals is None or finals.empty:
        return pd.DataFrame(columns=COLUMNS)
    metric = "deployed" if finals["deployed"].notna().any() else "best_observed"
    ranked = _ranking(finals, metric)
    if not ranked:
        return pd.DataFrame(columns=COLUMNS)
    winner = ranked[0][0]
    rows = [_row("winner", ranked[0], metric, finals)]
    if len(ranked) > 1:
        rows.append(_row("runner-up", ranked[1], metric, finals, winner, tests))
    refs = [r for r in ranked[1:] if r[0] in references]
    if refs:
        rows.append(_row("best reference", refs[0], metric, finals, winner, tests))
    if metric == "deployed":
        leader = _ranking(finals, "best_observed")
        if leader and leader[0][0] != winner:
            rows.append(_row("best observed leader", leader[0], "best_observed", finals, winner, tests))
    for row in rows:
        row["is_reference"] = row["label"] in references
        row["best_observed"] = float(finals.loc[finals["label"] == row["label"], "best_observed"].mean())
    return pd.DataFrame(rows, columns=COLUMNS)


def _ranking(finals, metric) -> list[tuple[str, float, float, float, int]]:
    """[(label, mean, ci_low, ci_high, n)] by increasing mean of `metric` over seeds."""
    out = []
    for label, g in finals.groupby("label", sort=False):
        mean, lo, hi, n = t_ci(g[metric])
        if n:
            out.append((label, mean, lo, hi, n))
    return sorted(out, key=lambda r: r[1])


def _row(role, ranked, metric, finals, winner=None, tests=None) -> dict:
    label, mean, lo, hi, n = ranked
    kinds = finals.loc[finals["label"] == label, "deployed_kind"].dropna() if metric == "deployed" else []
    row = {"role": role, "label": label, "metric": metric, "n_seeds": n, "mean": mean, "ci_low": lo, "ci_high": hi,
           "kind": "/".join(sorted(set(kinds))) if len(kinds) else metric, "versus": None}
    if winner is None or tests is None or tests.empty:
        return row
    hit = tests[(tests["label"] == winner) & (tests["reference"] == label) & (tests["metric"] == metric)]
    if hit.empty:
        return row
    t = hit.iloc[0]
    row.update(versus=winner, n_pairs=int(t["n_pairs"]), advantage=-t["mean_diff"], adv_ci_low=-t["ci_high"],
               adv_ci_high=-t["ci_low"], wins=int(t["wins"]), ties=int(t["ties"]), losses=int(t["losses"]),
               wilcoxon_p=t["wilcoxon_p"], separation=separation(t))
    return row


def _num(v, digits: int = 4) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def _p(p) -> str:
    return "n/a" if p is None or not np.isfinite(p) else (f"{p:.2g}" if p < 0.01 else f"{p:.2f}")


def _kind(kind: str) -> str:
    """Words for a "/"-joined set of deployed kinds (tables.KINDS keys)."""
    kinds = [k for k in str(kind).split("/") if k]
    if len(kinds) == 1:
        return KIND_WORDS.get(kinds[0], kinds[0])
    others = [KIND_WORDS.get(k, k).split(";")[0] for k in kinds if k != "true"]
    return "the noise-free value of its recommended mixture where known, else " + " or ".join(others)


def _comparison(winner: str, r, unit: str) -> str:
    """One sentence: the winner against row r, from r's numbers."""
    n = int(r["n_pairs"]) if np.isfinite(r.get("n_pairs", math.nan)) else 0
    if n == 0:
        return f"{winner} and {r['label']} share no seed, so they cannot be compared pair by pair."
    if int(r["ties"]) == n:  # the same value in every seed (often the same mixture): no direction to state
        return (f"Against {r['label']} ({_num(r['mean'])}): {winner} ties in all {n} paired seeds (the same value in "
                f"each); Wilcoxon signed-rank p = {_p(r['wilcoxon_p'])}.")
    ci = (f" (95% CI of the paired difference [{_num(r['adv_ci_low'])}, {_num(r['adv_ci_high'])}])"
          if np.isfinite(r["adv_ci_low"]) else "")
    better = "better" if r["advantage"] >= 0 else "worse"
    return (f"Against {r['label']} ({_num(r['mean'])}): {winner} is {better} by {_num(abs(r['advantage']))} "
            f"{unit} on average{ci}, better on {int(r['wins'])} of {n} paired seeds, tied on {int(r['ties'])}, worse on "
            f"{int(r['losses'])}; Wilcoxon signed-rank p = {_p(r['wilcoxon_p'])}.")


def sentences(v, unit: str = DEFAULT_UNIT) -> list[str]:
    """The verdict in plain sentences, each built from the numbers of `compute`'s table `v`, whose
    values are in `unit`."""
    if v is None or v.empty:
        return ["No study has a completed trial, so there is no verdict."]
    rows = {r["role"]: r for _, r in v.iterrows()}
    w = rows["winner"]
    winner = w["label"]
    ci = f" [95% CI {_num(w['ci_low'])}, {_num(w['ci_high'])}]" if np.isfinite(w["ci_low"]) else ""
    out = [f"{winner} deploys the best mixture: {_num(w['mean'])} {unit}{ci}, the mean over {int(w['n_seeds'])} "
           f"seed{'s' * (w['n_seeds'] != 1)} of {_kind(w['kind'])} (lower is better)."]
    ru, ref = rows.get("runner-up"), rows.get("best reference")
    if ru is not None:
        out.append("Runner-up. " + _comparison(winner, ru, unit))
    if ref is not None and (ru is None or ref["label"] != ru["label"]):
        out.append("Best trivial reference. " + _comparison(winner, ref, unit))
    elif ref is not None:
        out.append(f"The runner-up, {ref['label']}, is also the best trivial reference (a fixed mixture).")
    out.append(_conclusion(w, ru, ref))
    few = min([int(r["n_pairs"]) for r in (ru, ref) if r is not None and np.isfinite(r.get("n_pairs", math.nan))],
              default=None)
    if few is not None and 0 < few and 2 / 2 ** few >= 0.05:
        out.append(f"With {few} paired seed{'s' * (few != 1)} no two-sided Wilcoxon test can reach p < 0.05 (its "
                   f"smallest possible p is 2/2^{few} = {2 / 2 ** few:.3g}): run more seeds to separate methods.")
    lead = rows.get("best observed leader")
    if lead is not None:
        out.append(f"By best observed (noisy) value {lead['label']} would look best ({_num(lead['mean'])} against "
                   f"{winner}'s {_num(w['best_observed'])}): a best observed value is the minimum of noisy draws, "
                   "biased low; the deployed mixture is what counts.")
    return out


def design_sentences(design_use) -> list[str]:
    """One sentence per method that never got past its design in some study (tables.design_use):
    its value there measures its design, not its method (a law never fitted, a GP never used)."""
    if design_use is None or design_use.empty:
        return []
    out = []
    for _, r in design_use[design_use["design_only"] > 0].iterrows():
        n, d = int(r["studies"]), int(r["design_only"])
        where = ("its only study" if n == 1 else f"all {n} studies") if d == n else f"{d} of {n} studies"
        out.append(f"{r['label']} never got past its design in {where}: every trial was a design point (its model was never fitted, or "
                   "never chose a trial), so its values there measure its design, not its method "
                   "(design_use.csv).")
    return out


def _conclusion(w, ru, ref) -> str:
    winner = w["label"]
    if ru is None:
        return "Only one method ran, so there is nothing to compare."
    if w["is_reference"]:
        return (f"The winner is a trivial reference: no search method deployed a better mixture than the fixed "
                f"mixture {winner}. This benchmark is easy.")
    if ref is None:
        return ("No trivial reference (a fixed mixture such as uniform) ran, so this benchmark cannot say whether a "
                "trivial rule does as well.")
    state = _state(ref)
    if state == "within":
        return (f"{ref['label']} is within the noise of the winner: this benchmark is easy (a fixed mixture does as "
                f"well as {winner} here, by the paired tests over {_n(ref)} seeds).")
    if state == "unsettled":
        return (f"Whether {winner} beats {ref['label']} is not settled: {_disagreement(ref)} over {_n(ref)} paired "
                "seeds. Run more seeds before calling this benchmark easy or hard.")
    if ru["label"] != ref["label"] and _state(ru) == "within":
        return (f"{winner} beats {ref['label']} beyond the noise, but not {ru['label']}: those two are within the "
                "noise of each other.")
    if ru["label"] != ref["label"] and _state(ru) == "unsettled":
        return (f"{winner} beats {ref['label']} beyond the noise; its lead over {ru['label']} is not settled "
                f"({_disagreement(ru)}).")
    return f"{winner} beats every other method beyond the noise, {ref['label']} included."


def _state(r) -> str:
    """The row's separation; "unsettled" when the comparison is missing."""
    s = r.get("separation")
    return s if s in ("beyond", "within", "unsettled") else "unsettled"


def _n(r) -> int:
    return int(r["n_pairs"]) if np.isfinite(r.get("n_pairs", math.nan)) else 0


def _disagreement(r) -> str:
    """Why a comparison is unsettled, in words, from its numbers."""
    if not np.isfinite(r.get("adv_ci_low", math.nan)) or not np.isfinite(r.get("wilcoxon_p", math.nan)):
        return "too few paired seeds for a t-interval or a Wilcoxon test"
    if r["adv_ci_low"] > 0 or r["adv_ci_high"] < 0:
        return (f"the 95% CI of the difference excludes 0 but the Wilcoxon p is {_p(r['wilcoxon_p'])}")
    return f"the Wilcoxon p is {_p(r['wilcoxon_p'])} but the 95% CI of the difference includes 0"
