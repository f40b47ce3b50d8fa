"""Checks of an evaluator against a study: what it answers for must be what the study asks.

An evaluator may declare its domains (in order), the logged runs it answers for (`pool`, a replay
evaluator), its fidelities and target, and the loss names it reports. The first three are checked
before a campaign writes anything (ConfigError); the losses each trial reports are checked when it
is told (EvaluationError), for the objectives that average over every reported loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bomix.errors import ConfigError, EvaluationError
from bomix.fidelity import check_fidelities
from bomix.objective import Objective
from bomix.space import MixtureSpace
from bomix.trial import Trial, TrialState


def check_evaluator_domains(evaluator, space: MixtureSpace) -> None:
    """ConfigError unless the evaluator takes any domains or exactly the space's, in order."""
    domains = getattr(evaluator, "domains", None)
    if domains is not None and tuple(domains) != space.domains:
        raise ConfigError(f"the evaluator's domains must match the study's, got {list(domains)} "
                          f"for a study over {list(space.domains)}")


def check_evaluator_pool(evaluator, study_pool: np.ndarray | None) -> None:
    """ConfigError when the evaluator answers only for logged runs the study (searching `study_pool`,
    its (N, k) runs or None) does not search."""
    pool = getattr(evaluator, "pool", None)
    if pool is None:
        return
    if study_pool is None:
        raise ConfigError(f"evaluator {getattr(evaluator, 'name', evaluator)!r} answers only for its {len(pool)} "
                          "logged runs, so the study must search them: create it with pool=evaluator.pool "
                          "(bomix run and bomix benchmark do)")
    if np.shape(pool) != study_pool.shape or not np.allclose(pool, study_pool, rtol=0, atol=1e-9):
        raise ConfigError(f"the evaluator's logged runs must be the study's pool, got {len(pool)} runs for a "
                          f"study over {len(study_pool)} other runs")


def check_evaluator_fidelities(study, evaluator, runner) -> None:
    """ConfigError unless the evaluator offers exactly the study's fidelities (or neither has any),
    and, for a multi-fidelity study, the runner hands each trial's fidelity to the evaluator."""
    name = getattr(evaluator, "name", evaluator)
    offered = check_fidelities(getattr(evaluator, "fidelities", None), getattr(evaluator, "target_fidelity", None))
    if offered != (study.fidelities, study.target_fidelity):
        raise ConfigError(f"the evaluator's fidelities must be the study's (create it with "
                          f"fidelities=evaluator.fidelities, target_fidelity=evaluator.target_fidelity), got "
                          f"{offered[0]} (target {offered[1]!r}) from {name!r} for a study with {study.fidelities} "
                          f"(target {study.target_fidelity!r})")
    if study.fidelities is not None:
        probe = Trial(number=0, weights=study.space.to_mixture(study.space.center), fidelity=study.target_fidelity)
        if getattr(runner.context(study, probe), "fidelity", None) != study.target_fidelity:
            raise ConfigError(f"a multi-fidelity study needs a runner that passes each trial's fidelity to the "
                              f"evaluator (TrialContext.fidelity); {type(runner).__name__}.context does not")


def check_loss_names(objective: Objective, trials: Sequence[Trial], number: int, losses: Mapping,
                     loss_names=None) -> None:
    """An objective over every reported loss ("mean" or "worst" without `domains`, or task
    families, whose patterns match the reported names) compares
    trials only if they all report the same losses: a trial that left one out, or added one,
    would be scored on another average. EvaluationError when trial `number`'s `losses` differ from
    the losses the evaluator of the running campaign says it reports (`loss_names`), or, when that
    is None, from those of the first completed trial among `trials`."""
    if not (objective.kind == "families" or (objective.kind in ("mean", "worst") and not objective.domains)):
        return
    expected, who = loss_names, "its evaluator's loss_names"
    if expected is None:
        first = next((u for u in trials if u.state is TrialState.COMPLETED and u.losses), None)
        if first is None:
            return
        expected, who = set(first.losses), f"trial {first.number}'s losses"
    if set(expected) == set(losses):
        return
    missing, extra = sorted(set(expected) - set(losses)), sorted(set(losses) - set(expected))
    raise EvaluationError(
        f"trial {number} must report the same losses as every trial of the study for the "
        f"{objective.kind} objective over every reported loss; missing {missing}, extra {extra} "
        f"(compared with {who}, {sorted(expected)}). Set the objective's domains to choose the losses "
        "that count.")
