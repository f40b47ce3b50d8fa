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


@dataclass(frozen=True)
class History:
    """Everything an optimizer may look at: the space, the objective and the trials so far.

    trials: COMPLETED, FAILED and RUNNING (pending) trials in creation order. ABANDONED trials are
    left out: their work was lost and their mixture is queued again, so a resumed study shows an
    optimizer exactly the history an uninterrupted run would have shown it.
    """

    space: MixtureSpace
    objective: Objective
    trials: tuple[Trial, ...] = ()

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

    def count(self, proposed_by: str) -> int:
        """How many trials (any state in the history) `proposed_by` proposed."""
        return sum(t.proposed_by == proposed_by for t in self.trials)


@dataclass(frozen=True)
class Proposal:
    """One suggested mixture with where it came from (e.g. "bo/init") and optional model info."""

    weights: np.ndarray
    source: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


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


# -- finite pools (a replay evaluator's logged runs) -------------------------------------------
def pool_taken(history: History) -> set[int]:
    """Pool rows some trial of the history holds or will be answered with (its nearest row)."""
    space = history.space
    return set() if space.pool is None else {space.nearest(t.x) for t in history.trials}


def snap_to_pool(space: MixtureSpace, X: np.ndarray, taken: set[int]) -> np.ndarray:
    """Each row of X, in order, replaced by the nearest (L1) pool row not yet taken (X itself
    without a pool). Adds the rows it picks to `taken`. Once every row is taken, X's rows are kept."""
    if space.pool is None:
        return X
    out = []
    for x in X:
        order = np.argsort(np.abs(space.pool - x).sum(axis=1), kind="stable")
        row = next((int(i) for i in order if int(i) not in taken), None)
        if row is None:
            out.append(x)
            continue
        taken.add(row)
        out.append(space.pool[row])
    return np.array(out).reshape(len(X), space.k)


def free_pool_rows(space: MixtureSpace, history: History, extra=()) -> np.ndarray:
    """(n_pool,) bool: pool rows neither held by a trial of the history nor by an `extra` mixture."""
    free = np.ones(len(space.pool), dtype=bool)
    free[list(pool_taken(history) | {space.nearest(x) for x in extra})] = False
    return free
