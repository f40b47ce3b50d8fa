"""The trial record and the evaluation an evaluator returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from bomix.errors import EvaluationError


class TrialState(str, Enum):
    """RUNNING: proposed, not finished. COMPLETED: has losses. FAILED: the evaluation raised or
    returned garbage (kept, with its reason, and counted against the budget). ABANDONED: its work
    was lost (driver killed, Ctrl-C); the mixture is queued again and it counts for nothing."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    ABANDONED = "abandoned"

    @property
    def is_finished(self) -> bool:
        return self is not TrialState.RUNNING


@dataclass(frozen=True)
class Evaluation:
    """What an evaluator returns for one mixture.

    losses: validation loss per validation domain, nats/token (names need not be training domains).
    cost: resources spent, e.g. {"seconds": 812.0, "tokens": 5.0e8}.
    curves: optional loss curves {domain: [(step, loss), ...]} (BiMix fits them).
    extra: anything JSON-serialisable the evaluator wants kept with the trial.
    weights: the mixture actually evaluated {domain: weight}, when it differs from the one proposed
        (a replay evaluator answers with the nearest logged run); None means the proposal itself.
        The study then records these weights as the trial's, and the proposal in
        trial.extra["proposed_weights"].
    """

    losses: dict[str, float]
    cost: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[tuple[int, float]]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, float] | None = None

    def __post_init__(self):
        if not isinstance(self.losses, dict) or not self.losses:
            raise EvaluationError(f"an evaluation needs a non-empty dict of per-domain losses, got {self.losses!r}")
        clean = {}
        for name, value in self.losses.items():
            if not isinstance(name, str):
                raise EvaluationError(f"loss names must be strings, got {name!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise EvaluationError(f"losses must be numbers, got {name}={value!r}")
            if not math.isfinite(float(value)):
                raise EvaluationError(f"losses must be finite, got {name}={value!r}")
            clean[name] = float(value)
        object.__setattr__(self, "losses", clean)
        cost = {}
        for name, value in (self.cost or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
                raise EvaluationError(f"cost values must be finite numbers, got {name}={value!r}")
            cost[name] = float(value)
        object.__setattr__(self, "cost", cost)
        if self.weights is not None:
            if not isinstance(self.weights, dict) or not self.weights:
                raise EvaluationError(f"weights (the mixture evaluated) must be a dict {{domain: weight}} or None, "
                                      f"got {self.weights!r}")
            bad = {n: v for n, v in self.weights.items() if not isinstance(n, str) or isinstance(v, bool)
                   or not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(float(v))}
            if bad:
                raise EvaluationError(f"weights must map domain names to finite numbers, got {bad}")
            object.__setattr__(self, "weights", {n: float(v) for n, v in self.weights.items()})


@dataclass
class Trial:
    """One evaluated (or to-be-evaluated) mixture of a study.

    weights: {domain: weight}, in the space's domain order, on the simplex.
    losses: per-domain validation losses (nats/token) once COMPLETED, else None.
    value: the study objective computed from `losses` (re-scorable with another objective).
    proposed_by: the optimizer or source that proposed the mixture ("sobol", "enqueued", ...).
    seed: the seed the evaluator receives (a retried trial keeps its original's seed).
    retry_of: the number of the ABANDONED trial this one redoes, if any.
    fidelity: the scale the trial ran at (a name among its evaluator's `fidelities`, e.g. "1m",
        "60m"), or None in a single-fidelity study (and in journals written before fidelities).
    Times are Unix seconds.
    """

    number: int
    weights: dict[str, float]
    state: TrialState = TrialState.RUNNING
    proposed_by: str = ""
    seed: int = 0
    losses: dict[str, float] | None = None
    value: float | None = None
    cost: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list] | None = None
    error: str | None = None
    created_at: float | None = None
    finished_at: float | None = None
    retry_of: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    fidelity: str | None = None

    @property
    def x(self) -> np.ndarray:
        """The weights as a (k,) array in domain order."""
        return np.array(list(self.weights.values()), dtype=float)

    @property
    def duration(self) -> float | None:
        if self.created_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.created_at

    def __repr__(self) -> str:
        w = ", ".join(f"{d}={v:.3f}" for d, v in self.weights.items())
        val = "" if self.value is None else f", value={self.value:.4f}"
        fid = "" if self.fidelity is None else f", fidelity={self.fidelity!r}"
        return f"Trial({self.number}, {self.state.value}{val}{fid}, {w})"
