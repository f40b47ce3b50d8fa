"""Predicted against actual: every model scored on one common set of held-out trials.

The protocol, per input directory (a benchmark, or a single study):

    pool       the completed, non-replicate trials within the budget of every study of the input,
               in the report's order (method label, seed, trial number)
    held out   a seeded draw (numpy default_rng(HOLDOUT_SEED), without replacement) of
               n = min(MAX_HELDOUT, max(1, len(pool) // 5)) trials of the pool: one set, the same for
               every model
    models     every study whose optimizer has a model (Optimizer.predict: bo's GP; the law
               baselines' fitted laws), the first MAX_SEEDS studies of each method label in seed
               order, is refitted on its own pooled trials minus the held-out ones (a held-out trial
               of its own study is never seen) and predicts the objective of every held-out trial
               from its mixture
    scores     per method: RMSE of the predictions against the observed values and, where the
               evaluator knows them, against the noise-free values; Spearman rank correlation with
               the observed values; mean bias (predicted - observed). Pooled over the refitted studies.

So every model answers the same questions, and a model is not flattered by trials it steered
itself into. Each study's predictions are cached in its summary.json under a digest of the held-out
set (bomix.report.cache.cached): a second report refits nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math

import numpy as np

from bomix.optimizers import History
from bomix.trial import TrialState

log = logging.getLogger("bomix")
COLUMNS = ["label", "seed", "model", "heldout_label", "heldout_seed", "number", "actual", "true_value",
           "predicted", "sd"]
SCORE_COLUMNS = ["label", "model", "n_studies", "n_heldout", "rmse", "rmse_true", "spearman", "bias"]
MAX_SEEDS = 5  # studies per method whose model is refitted (a GP or law fit takes about a second)
MAX_HELDOUT = 64  # held-out trials per input at most
HOLDOUT_SEED = 0
PROTOCOL = "common-heldout/1"  # part of the cache key: change it when the protocol changes


def heldout(data, source: int):
    """The held-out rows of data.trials for input `source` (an index of data.sources): a DataFrame
    with label, seed, number, value, true_value and w_<domain> (see the module docstring)."""
    df = data.trials
    keys = [k for k, i in data.source_of.items() if i == source]
    mine = df.set_index(["label", "seed"]).index.isin(keys)
    pool = df[mine & (df["state"] == TrialState.COMPLETED.value) & df["replicate_of"].isna()
              & df["trial_index"].notna() & (df["trial_index"] <= max(data.budget, 1)) & df["value"].notna()]
    n = min(MAX_HELDOUT, max(1, len(pool) // 5))
    if len(pool) == 0:
        return pool
    rows = np.sort(np.random.default_rng(HOLDOUT_SEED).choice(len(pool), size=n, replace=False))
    return pool.iloc[rows]


def predictions(data):
    """A DataFrame with COLUMNS: one row per (refitted study, held-out trial of its input)."""
    import pandas as pd

    rows = []
    for source in range(len(data.sources)):
        test = heldout(data, source)
        if test.empty:
            continue
        X = test[[f"w_{d}" for d in data.domains]].to_numpy(dtype=float)
        per_label: dict[str, int] = {}
        for (label, seed), study in data.studies.items():
            if data.source_of.get((label, seed)) != source or per_label.get(label, 0) >= MAX_SEEDS:
                continue
            own = set(test.loc[(test["label"] == label) & (test["seed"] == seed), "number"].astype(int))
            got = _cached_predictions(study, data.budget, X, own)
            if got is None:
                continue
            per_label[label] = per_label.get(label, 0) + 1
            sd = got["sd"] if got["sd"] is not None else [None] * len(X)
            for (_, t), pred, s in zip(test.iterrows(), got["predicted"], sd):
                rows.append({"label": label, "seed": seed, "model": got["model"], "heldout_label": t["label"],
                             "heldout_seed": t["seed"], "number": int(t["number"]), "actual": t["value"],
                             "true_value": t["true_value"], "predicted": _num(pred), "sd": _num(s)})
    return pd.DataFrame(rows, columns=COLUMNS)


def scores(pred):
    """SCORE_COLUMNS per method label, from `predictions`: n_studies refitted, n_heldout trials,
    rmse (against observed values, objective units), rmse_true (against noise-free values; NaN when
    unknown), spearman (with observed values), bias (mean predicted - observed, objective units)."""
    import pandas as pd
    from scipy.stats import spearmanr

    rows = []
    for (label, model), g in pred.groupby(["label", "model"], sort=False):
        err = g["predicted"] - g["actual"]
        true_err = (g["predicted"] - g["true_value"]).dropna()
        varied = len(g) > 2 and g["predicted"].nunique() > 1
        rho = spearmanr(g["actual"], g["predicted"]).statistic if varied else math.nan
        rows.append({"label": label, "model": model, "n_studies": g["seed"].nunique(),
                     "n_heldout": len(g.drop_duplicates(["heldout_label", "heldout_seed", "number"])),
                     "rmse": math.sqrt(float((err ** 2).mean())),
                     "rmse_true": math.sqrt(float((true_err ** 2).mean())) if len(true_err) else math.nan,
                     "spearman": float(rho), "bias": float(err.mean())})
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def _num(v) -> float:
    return math.nan if v is None else float(v)


def _cached_predictions(study, budget: int, X: np.ndarray, own: set[int]) -> dict | None:
    """{"model", "predicted": [p], "sd": [p] or None} of the study's model refitted without the
    held-out trials, from the study's summary.json when cached; None when it has no model."""
    from bomix.report.cache import cached

    key = hashlib.sha1(json.dumps({"protocol": PROTOCOL, "budget": budget, "X": np.round(X, 12).tolist(),
                                   "own": sorted(own)}).encode()).hexdigest()

    def compute():
        done = [t for t in study.trials if t.state is TrialState.COMPLETED and t.value is not None
                and "replicate_of" not in t.extra]
        train = tuple(t for t in (done[:budget] if budget else done) if t.number not in own)
        if len(train) < 3:
            return {"model": None, "reason": f"{len(train)} training trials"}
        try:
            got = _predict(study.optimizer, History(study.space, study.objective, train), X)
        except Exception as e:  # a model that cannot be fitted here is a note, not a failed report
            log.warning("report: %s: predicted-vs-actual skipped: %s", study.directory, e)
            return {"model": None, "reason": f"{type(e).__name__}: {e}"}
        if got is None:
            return {"model": None, "reason": "no model"}
        mean, sd = got
        return {"model": "GP" if sd is not None else f"{study.optimizer.name} law",
                "predicted": np.asarray(mean, dtype=float).tolist(),
                "sd": None if sd is None else np.asarray(sd, dtype=float).tolist()}

    got = cached(study, "heldout_predictions", key, compute)
    return got if got.get("model") else None


def _predict(optimizer, history: History, X: np.ndarray):
    """((p,) predicted objective, (p,) sd or None) of the optimizer's model of `history` at (p, k)
    mixtures X, or None when it has none: Optimizer.predict, the declared capability."""
    return optimizer.predict(history, X)
