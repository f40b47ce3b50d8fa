"""Predicted vs actual: how well each method's model predicts trials it was not fitted on.

GP (optimizers with `predict(history, X)`, i.e. bo): the last k = max(2, n // 4) completed trials
of each study are predicted from the trials before them (one fit per study, as the campaign would
have seen them). Fitted laws (optimizers with `fit(history).predict(X)`, the law baselines): 5-fold
cross-validation over the study's completed trials, seeded by the study's seed.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from bomix.optimizers import History
from bomix.trial import TrialState

log = logging.getLogger("bomix")
COLUMNS = ["label", "seed", "model", "split", "number", "actual", "true_value", "predicted", "sd"]
MAX_SEEDS = 5  # studies per method whose model is refitted (each fit of a GP takes about a second)


def _completed(study, budget: int):
    done = [t for t in study.trials if t.state is TrialState.COMPLETED and t.value is not None
            and "replicate_of" not in t.extra]
    return done[:budget] if budget else done


def predictions(data):
    """A DataFrame with COLUMNS: one row per held-out trial per study whose method has a model."""
    import pandas as pd

    truth = data.trials.set_index(["label", "seed", "number"])["true_value"]
    rows, per_label = [], {}
    for (label, seed), study in data.studies.items():
        opt = study.optimizer
        kind = ("gp" if callable(getattr(opt, "predict", None)) else
                "law" if callable(getattr(opt, "fit", None)) and callable(getattr(opt, "cross_validate", None))
                else None)
        if kind is None or per_label.get(label, 0) >= MAX_SEEDS:
            continue
        done = _completed(study, data.budget)
        try:
            got = _gp(study, done) if kind == "gp" else _law(study, done)
        except Exception as e:  # a model that cannot be fitted here is a note, not a failed report
            log.warning("report: %s seed %s: predicted-vs-actual skipped: %s", label, seed, e)
            continue
        if not got:
            continue
        per_label[label] = per_label.get(label, 0) + 1
        model = "GP" if kind == "gp" else f"{opt.name} law"
        split = "last trials, fitted on the earlier ones" if kind == "gp" else "5-fold cross-validation"
        for t, pred, sd in got:
            rows.append({"label": label, "seed": seed, "model": model, "split": split, "number": t.number,
                         "actual": t.value, "true_value": truth.get((label, seed, t.number), math.nan),
                         "predicted": pred, "sd": sd})
    return pd.DataFrame(rows, columns=COLUMNS)


def _gp(study, done):
    n = len(done)
    k = max(2, n // 4)
    if n - k < 3:
        return []
    train, test = done[:n - k], done[n - k:]
    history = History(study.space, study.objective, tuple(train))
    mean, sd = study.optimizer.predict(history, np.array([t.x for t in test]))
    return [(t, float(m), float(s)) for t, m, s in zip(test, mean, sd)]


def _law(study, done, folds: int = 5):
    if len(done) < 2 * folds:
        return []
    fold = np.random.default_rng(study.seed).permutation(len(done)) % folds
    out = []
    for f in range(folds):
        train = tuple(t for t, g in zip(done, fold) if g != f)
        test = [t for t, g in zip(done, fold) if g == f]
        law = study.optimizer.fit(History(study.space, study.objective, train))
        out += [(t, float(p), math.nan) for t, p in zip(test, law.predict(np.array([t.x for t in test])))]
    return out
