"""The report's scale-transfer section, for multi-fidelity studies: does the cheap scale's ranking
of mixtures hold at the target scale?

A multi-fidelity study (study.fidelities set) runs some mixtures at a cheap scale and some at the
target; a mixture run at both (same weights) is a *pair*. From the pairs of each study and each
cheap scale, with bomix.report.transfer's functions:

    transfer_pairs        one row per pair: the two trials and their objective values
    transfer_ranks        Spearman and Kendall over the pairs, per loss and for the objective
                          (rank_transfer); studies with fewer than MIN_PAIRS pairs get no row
    transfer_best         the objective's Spearman and whether the ranking holds (>= WEAK); the cheap
                          scale's best paired mixture at the target: its rank there and its regret
                          against the target's best paired mixture (best_transfer)
    transfer_predictions  every target trial against the study's model's prediction of it, made
                          from the completed trials created before it (one-step ahead: what the
                          model knew when the trial was chosen); none before MIN_BEFORE trials
    transfer_prediction_scores  per study, predicted_vs_actual over those (MIN_PAIRS or more)

Tables first; the figure `scale_transfer` plots cheap vs target objective per study (both bests
marked, Spearman in the title, in red with "does not hold" below WEAK). A report on single-fidelity
studies computes none of this: its tables, figures and page are unchanged. Values in ReportData.unit.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from bomix.errors import ConfigError
from bomix.report.transfer import best_transfer, predicted_vs_actual, rank_transfer
from bomix.trial import TrialState

MIN_PAIRS = 3     # rank correlations need at least this many mixtures at both scales
MIN_BEFORE = 2    # a prediction needs at least this many completed trials before the predicted one
WEAK = 0.5        # a Spearman below this is drawn as a ranking that does not hold
MAX_PANELS = 6    # studies drawn in the figure (the first, in report order)
TABLES = ("transfer_pairs", "transfer_ranks", "transfer_best", "transfer_predictions", "transfer_prediction_scores")


def multi_fidelity(data) -> bool:
    """True when any study of the report runs trials at several scales."""
    return any(s.fidelities is not None for s in data.studies.values())


def _done(study):
    return [t for t in study.trials if t.state is TrialState.COMPLETED and t.value is not None
            and "replicate_of" not in t.extra]


def pairs(study) -> dict[str, list[tuple]]:
    """{cheap fidelity: [(cheap trial, target trial), ...]} of the mixtures run at both, in the
    order of their first cheap trial; the first completed trial of a mixture at each scale."""
    first: dict[str, dict[tuple, object]] = {f: {} for f in study.fidelities}
    for t in _done(study):
        first[study.fidelity_of(t)].setdefault(tuple(np.round(t.x, 12)), t)
    at_target = first[study.target_fidelity]
    return {f: [(t, at_target[mix]) for mix, t in by_mix.items() if mix in at_target]
            for f, by_mix in first.items() if f != study.target_fidelity}


def _history_before(study, trial):
    """The history the optimizer had when `trial` was created: completed trials before it (only
    the target's for an optimizer that does not model fidelities, as the study shows it)."""
    from bomix.optimizers.pool_mf import FidelityScorer

    h = study.history()
    keep = [t for t in h.completed if t.number < trial.number and "replicate_of" not in t.extra]
    if not isinstance(study.optimizer, FidelityScorer):
        keep = [t for t in keep if study.at_target(t)]
    return dataclasses.replace(h, trials=tuple(keep))


def _predictions(study) -> list[dict]:
    """[{trial, predicted, sd}] one-step-ahead predictions of the study's target trials (see the
    module docstring), cached in the study's summary.json."""
    from bomix.report.cache import cached

    targets = [t for t in _done(study) if study.at_target(t)]

    def compute():
        out = []
        for t in targets:
            history = _history_before(study, t)
            if len(history.completed) < MIN_BEFORE:
                continue
            try:
                pred = study.optimizer.predict(history, t.x[None])
            except Exception:  # a model that cannot be fitted here predicts nothing
                pred = None
            if pred is not None:
                mean, sd = pred
                out.append({"trial": t.number, "predicted": float(np.asarray(mean)[0]),
                            "sd": None if sd is None else float(np.asarray(sd)[0])})
        return out

    return cached(study, "transfer_predictions", ",".join(str(t.number) for t in targets), compute)


def tables(data) -> dict:
    """{stem: DataFrame} of the TABLES above, for every multi-fidelity study of `data`."""
    import pandas as pd

    rows = {stem: [] for stem in TABLES}
    for (label, seed), study in data.studies.items():
        if study.fidelities is None:
            continue
        key = {"label": label, "seed": seed}
        for fidelity, found in pairs(study).items():
            where = {**key, "fidelity": fidelity, "target": study.target_fidelity}
            rows["transfer_pairs"] += [{**where, "small_trial": a.number, "target_trial": b.number,
                                        "small_value": a.value, "target_value": b.value} for a, b in found]
            if len(found) < MIN_PAIRS:
                continue
            names = sorted(set.intersection(*(set(a.losses) & set(b.losses) for a, b in found)))
            small = np.array([[a.losses[n] for n in names] for a, _ in found])
            big = np.array([[b.losses[n] for n in names] for _, b in found])
            va, vb = np.array([a.value for a, _ in found]), np.array([b.value for _, b in found])
            ranks = rank_transfer(small, big, names, va, vb, objective_name=f"objective ({study.objective.kind})")
            rows["transfer_ranks"] += [{**where, **r} for r in ranks.to_dict("records")]
            best = best_transfer(va, vb)
            rho = float(ranks["spearman"].iloc[-1])  # the objective's row is last
            rows["transfer_best"].append({
                **where, "n": best["n"], "spearman": rho, "holds": bool(math.isfinite(rho) and rho >= WEAK),
                "small_best_trial": found[best["small_best"]][0].number,
                "small_best_value": float(va[best["small_best"]]),
                "small_best_rank_at_target": best["small_best_rank_at_big"],
                "small_best_at_target": best["small_best_at_big"],
                "target_best_trial": found[best["big_best"]][1].number, "target_best_value": best["big_best_value"],
                "regret": best["regret"]})
        preds = _predictions(study)
        actual = {t.number: t.value for t in study.trials}
        rows["transfer_predictions"] += [{**key, "target": study.target_fidelity, **p, "actual": actual[p["trial"]]}
                                         for p in preds]
        if len(preds) >= MIN_PAIRS:
            sds = None if any(p["sd"] is None for p in preds) else [p["sd"] for p in preds]
            try:
                score = predicted_vs_actual([p["predicted"] for p in preds], [actual[p["trial"]] for p in preds], sds)
            except ConfigError:  # a non-finite prediction: no score
                continue
            rows["transfer_prediction_scores"].append({**key, "target": study.target_fidelity, **score})
    return {stem: pd.DataFrame(r) for stem, r in rows.items()}


def figure(data, tables, path):
    """Cheap-scale vs target-scale objective of each study's paired mixtures, one panel per
    (study, cheap scale) with MIN_PAIRS or more pairs; returns the caption."""
    from bomix.report.figures import Skip, _plt, _save

    plt = _plt()
    pairs_df, best = tables["transfer_pairs"], tables["transfer_best"]
    if best.empty:
        raise Skip(f"no multi-fidelity study has {MIN_PAIRS} or more mixtures run at both a cheap scale and the "
                   f"target (pairs per study: {_pair_counts(pairs_df, data)}); bo_mf runs n_target_init of its cheap "
                   "design mixtures at the target, and study.enqueue(weights, fidelity=...) adds more")
    panels = best.head(MAX_PANELS)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.3), squeeze=False)
    for ax, b in zip(axes[0], panels.itertuples(index=False)):
        sel = (pairs_df["label"] == b.label) & (pairs_df["seed"] == b.seed) & (pairs_df["fidelity"] == b.fidelity)
        p = pairs_df[sel]
        ax.scatter(p["small_value"], p["target_value"], s=18, color="0.45", alpha=0.7, label="mixture run at both")
        small = p[p["small_trial"] == b.small_best_trial]
        ax.scatter(small["small_value"], small["target_value"], s=90, marker="s", facecolors="none", lw=2,
                   color="tab:orange", label=f"{b.fidelity} best (rank {b.small_best_rank_at_target} at {b.target})")
        big = p[p["target_trial"] == b.target_best_trial]
        ax.scatter(big["small_value"], big["target_value"], s=140, marker="*", color="tab:blue",
                   label=f"{b.target} best")
        ax.set_title(f"{b.label} seed {b.seed}: Spearman {b.spearman:.2f}" + ("" if b.holds else " (does not hold)")
                     + f"\nn = {b.n}; picking by {b.fidelity} costs {b.regret:.4f} {data.unit} at {b.target}",
                     color="black" if b.holds else "tab:red", fontsize=9)
        ax.set(xlabel=f"objective at {b.fidelity} ({data.unit})", ylabel=f"objective at {b.target} ({data.unit})")
        ax.margins(0.12)
        ax.legend(loc="best", fontsize=7, framealpha=0.6)
    _save(fig, path)
    shown = f"the first {MAX_PANELS} of {len(best)}" if len(best) > MAX_PANELS else "each"
    return (f"Does the cheap scale's ranking hold at the target? {shown.capitalize()} (study, cheap scale) with "
            f"{MIN_PAIRS}+ mixtures run at both: objective at the cheap scale (x) against the target (y). A ranking "
            "that holds rises left to right; the square is the cheap scale's best, the star the target's. Titles in "
            f"red: Spearman below {WEAK}.")


def _pair_counts(pairs_df, data) -> str:
    keys = [(label, seed) for (label, seed), s in data.studies.items() if s.fidelities is not None]
    counts = pairs_df.groupby(["label", "seed"]).size() if len(pairs_df) else {}
    return ", ".join(f"{label} seed {seed}: {int(counts.get((label, seed), 0))}" for label, seed in keys)


def blocks(tables, result) -> list[tuple]:
    """The report's "Scale transfer" section (document.sections blocks); result: (caption, skip)."""
    caption, skip = result
    scores = tables["transfer_prediction_scores"]
    return [("h2", "Scale transfer"),
            ("p", "Multi-fidelity studies run mixtures at a cheap scale and at the target. On the mixtures run at "
                  "both (same weights): rank correlation of each loss and of the objective, then where the cheap "
                  "scale's best of them ranks at the target and what picking it costs there (regret against the "
                  "target's best of them). Few pairs give wide uncertainty: n is in every row."),
            ("figure", "scale_transfer", caption, skip),
            ("h3", "Rank correlation, cheap scale vs target"), ("table", tables["transfer_ranks"]),
            ("h3", "The cheap scale's best at the target"), ("table", tables["transfer_best"]),
            ("h3", "Predicted vs actual at the target"),
            ("p", f"Each target trial against the model's prediction of it from the {MIN_BEFORE}+ completed trials "
                  "created before it (what the optimizer knew when it chose it); actual = the observed value. "
                  "Optimizers without a model predict nothing."),
            ("table", tables["transfer_predictions"])] + \
        ([("table", scores)] if not scores.empty else [])
