"""Replicates: re-evaluate the best mixtures with fresh seeds to see how much of their value was luck.

With noisy proxy runs (seed-to-seed sd about 0.017 nats at 25M parameters), the best observed
value of a campaign is biased low: it is the minimum of many noisy draws. Replicating the top
mixtures gives values that are not selected on their own noise. Replicates are ordinary trials
(proposed_by "replicate", extra["replicate_of"] = the original's number), so they also sharpen
the model, and they survive crashes and resume like every other trial.

In a multi-fidelity study the top mixtures are those measured at the target scale, and their
replicates run at that scale: values at different scales do not compare.
"""

from __future__ import annotations

import numpy as np

from bomix.errors import ConfigError
from bomix.trial import Trial, TrialState


def top_trials(study, m: int) -> list[Trial]:
    """The m best first-time trials at the target scale, by the model's prediction when it has one."""
    return ranked(study.optimizer, study.search_history(), m)[0]


def ranked(optimizer, history, m: int):
    """([m best completed first-time trials at the target scale], the optimizer's (mean, sd or None)
    prediction for them or None): ranked by the prediction where the optimizer has a model and the
    history 2 or more completed trials, else by observed value. optimizer None: observed only."""
    done = [t for t in history.completed if t.value is not None and "replicate_of" not in t.extra
            and history.fidelity_of(t) == history.target_fidelity]
    if not done:
        return [], None
    pred = optimizer.predict(history, np.array([t.x for t in done])) \
        if optimizer is not None and len(history.completed) >= 2 else None
    order = np.argsort(pred[0] if pred is not None else np.array([t.value for t in done]), kind="stable")[:m]
    if pred is not None:
        pred = (np.asarray(pred[0])[order], None if pred[1] is None else np.asarray(pred[1])[order])
    return [done[i] for i in order], pred


def replicate(study, evaluator, *, top: int, repeats: int, n_parallel: int, runner, show_progress):
    """Queue what is missing of `repeats` replicates for each of the `top` mixtures, then run them.

    Mixtures already being replicated keep their place, so a rerun after an interruption completes
    the same picks instead of switching to mixtures the replicates have since moved up.
    """
    for name, value in (("top", top), ("repeats", repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    with study.writing():
        have: dict[int, int] = {}
        for t in study.trials:
            if "replicate_of" in t.extra and t.state is not TrialState.ABANDONED:
                have[t.extra["replicate_of"]] = have.get(t.extra["replicate_of"], 0) + 1
        for info in study.queued_info:
            if "replicate_of" in info:  # an abandoned replicate's redo counts too
                have[info["replicate_of"]] = have.get(info["replicate_of"], 0) + 1
        picks = [study.trials[n] for n in have][:top]
        picks += [t for t in top_trials(study, top) if t.number not in have][:top - len(picks)]
        for t in picks:
            for _ in range(repeats - have.get(t.number, 0)):
                study.enqueue(t.x, source="replicate", info={"replicate_of": t.number}, fidelity=t.fidelity)
        queued = len(study.queued)
    study.optimize(evaluator, n_trials=study.n_finished + queued, n_parallel=n_parallel, runner=runner,
                   show_progress=show_progress)
    return replicates_table(study)


def replicates_table(study):
    import pandas as pd

    rows = []
    trials = study.trials
    for t in trials:
        reps = [r.value for r in trials if r.extra.get("replicate_of") == t.number
                and r.state is TrialState.COMPLETED and r.value is not None]
        if reps and t.value is not None:
            values = np.array([t.value, *reps])
            rows.append({"number": t.number, "value": t.value, "n_evaluations": len(values), "mean": values.mean(),
                         "sd": values.std(ddof=1), "luck": t.value - values.mean(),
                         **{f"w_{d}": w for d, w in t.weights.items()}})
    return pd.DataFrame(rows, columns=["number", "value", "n_evaluations", "mean", "sd", "luck",
                                       *[f"w_{d}" for d in study.space.domains]])
