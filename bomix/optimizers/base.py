"""The optimizer interface: what to try next, as a pure function of the trial history."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bomix.objective import Objective
from bomix.registry import get_params
from bomix.space import MixtureSpace
from bomix.trial import Trial, TrialState


DESIGN_SHARE = 0.5  # an initial design takes at most this share of the campaign's budget, at any k


def design_cap(budget: int) -> int:
    """The largest design a method may run in a campaign of `budget` trials (at least 2), so it
    keeps at least half its trials to fit a model and act on it."""
    return max(2, int(budget * DESIGN_SHARE))


@dataclass(frozen=True)
class History:
    """Everything an optimizer may look at: the space, the objective and the trials so far.

    trials: COMPLETED, FAILED and RUNNING (pending) trials in creation order. ABANDONED trials are
    left out: their work was lost and their mixture is queued again, so a resumed study shows an
    optimizer exactly the history an uninterrupted run would have shown it.
    fidelities: {name: relative cost} of the scales a multi-fidelity study runs trials at (each
    trial's `fidelity` names one), or None for a single-fidelity study (every trial's fidelity None).
    target_fidelity: the scale the study optimises for (recommendations are for it), or None.
    compute_budget: the campaign's total compute in the fidelities' cost units (the compute_budget
    of study.optimize), if it has one; the trials so far (RUNNING and FAILED ones included) spent
    the sum of their fidelities' costs of it.
    """

    space: MixtureSpace
    objective: Objective
    trials: tuple[Trial, ...] = ()
    budget: int | None = None  # finished trials the campaign plans (the n_trials of study.optimize), if known
    fidelities: dict[str, float] | None = None
    target_fidelity: str | None = None
    compute_budget: float | None = None

    def plan(self, default: int = 64) -> int:
        """The trial budget to plan a design for: the campaign's budget, else `default`."""
        return self.budget if self.budget is not None else default

    def with_state(self, *states: TrialState) -> list[Trial]:
        return [t for t in self.trials if t.state in states]

    @property
    def completed(self) -> list[Trial]:
        return self.with_state(TrialState.COMPLETED)

    @property
    def pending(self) -> list[Trial]:
        return self.with_state(TrialState.RUNNING)

    @property
    def failed(self) -> list[Trial]:
        return self.with_state(TrialState.FAILED)

    def X(self, trials: list[Trial] | None = None) -> np.ndarray:
        """(n, k) weights of `trials` (default: completed), columns in space.domains order."""
        trials = self.completed if trials is None else trials
        return np.array([[t.weights[d] for d in self.space.domains] for t in trials]).reshape(len(trials), self.space.k)

    def y(self) -> np.ndarray:
        """(n,) objective values of the completed trials (lower is better)."""
        return np.array([self.objective(t.losses) for t in self.completed], dtype=float)

    def compute_spent(self) -> float:
        """The sum of the trials' fidelity costs (RUNNING and FAILED ones included); 0 for a
        single-fidelity history."""
        if self.fidelities is None:
            return 0.0
        return float(sum(self.fidelities[self.fidelity_of(t)] for t in self.trials))

    def fidelity_of(self, trial: Trial) -> str | None:
        """The scale `trial` ran at: its fidelity, or the target when it has none (None single-fidelity)."""
        return trial.fidelity if trial.fidelity is not None else self.target_fidelity

    def at(self, fidelity: str | None) -> list[Trial]:
        """The completed trials run at `fidelity` (see fidelity_of), in creation order."""
        return [t for t in self.completed if self.fidelity_of(t) == fidelity]

    def count(self, proposed_by: str) -> int:
        """How many trials (any state in the history) `proposed_by` proposed."""
        return sum(t.proposed_by == proposed_by for t in self.trials)


@dataclass(frozen=True)
class Proposal:
    """One suggested mixture with where it came from (e.g. "bo/init") and optional model info.

    design: True for a point of a space-filling design (an initial design, a Sobol point), which
    carries no model's preference; a pool search may then pick a logged run by its own
    space-filling rule instead of the run nearest this point (see bomix.optimizers.pool).
    fidelity: the scale to run it at (one of History.fidelities), or None: the target fidelity in a
    multi-fidelity study, the only one otherwise.
    """

    weights: np.ndarray
    source: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    design: bool = False
    fidelity: str | None = None


@dataclass(frozen=True)
class Recommendation:
    """The mixture a study recommends, with its (predicted or observed) value.

    value: predicted mean (model) or observed value (best observed), nats/token.
    sd: the model's posterior sd of that value, None when not model-based.
    """

    weights: dict[str, float]
    value: float | None
    sd: float | None = None
    source: str = "best observed"
    trial: int | None = None


class Optimizer(ABC):
    """Proposes mixtures. One required method, `suggest`.

    Rules every optimizer keeps (checked by bomix.testing): suggestions lie in the space (floors
    and caps included); `suggest` is a pure function of (constructor arguments, history, n), so the
    same seed and history give the same suggestion; it tolerates failed and pending trials; it
    returns n distinct mixtures for n > 1. Constructor arguments are keyword-only, stored unchanged
    under their own names, and include `seed`.
    """

    name: str = ""
    proposes_distinct: bool = True  # False for fixed-mixture baselines, which repeat one mixture

    @abstractmethod
    def suggest(self, history: History, n: int = 1) -> np.ndarray | list[Proposal]:
        """n mixtures to evaluate next: an (n, k) array or n Proposals, rows on the simplex."""

    def score(self, history: History, X: np.ndarray) -> np.ndarray | None:
        """How much the optimizer wants each of the (p, k) candidate mixtures X evaluated next,
        (p,) with higher = sooner, given `history` (its RUNNING trials are pending); or None when
        it cannot rank candidates now (no model, or still in its design). Default: None.

        A pool search (bomix.optimizers.pool) ranks a finite set of logged runs with it: bo by its
        acquisition value, a law by its negated predicted objective, random search by seeded noise.
        Must be a pure function of (constructor arguments, history, X), like `suggest`.
        """
        return None

    def predict(self, history: History, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None] | None:
        """The model's predicted objective at (p, k) mixtures X: ((p,) mean, (p,) sd or None), in
        nats/token; None when the optimizer has no model. Default: None."""
        return None

    def recommend(self, history: History) -> Recommendation | None:
        """The mixture to use. Default: the completed trial with the best objective value."""
        done = history.completed
        if not done:
            return None
        values = history.y()
        best = done[int(np.argmin(values))]
        return Recommendation(dict(best.weights), float(values.min()), None, "best observed", best.number)

    def get_params(self) -> dict:
        return get_params(self)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
