"""The evaluator interface: what a mixture scores."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bomix.registry import get_params
from bomix.trial import Evaluation


@dataclass(frozen=True)
class TrialContext:
    """What an evaluator may know about the trial it runs.

    number: the trial number in its study. seed: the seed to train/evaluate with (a retried trial
    gets its original's seed). directory: trials/<number>/ for logs and artifacts, or None.
    fidelity: the scale to evaluate at (one of the evaluator's `fidelities`), or None: its target
    (or only) scale.
    """

    number: int = 0
    seed: int = 0
    directory: Path | None = None
    fidelity: str | None = None


DEFAULT_UNIT = "nats/token"  # what an evaluator's losses are in unless it says otherwise


class Evaluator(ABC):
    """Scores mixtures. One required method, `evaluate`.

    `domains` names the training domains the evaluator expects, in order, or is None when it takes
    any; the study checks it against its space before the first trial.
    `pool` is None, or the (N, k) mixtures that alone it can answer for (logged runs replayed as
    they are); a study that runs it must search them (create_study(pool=evaluator.pool)).
    An evaluator raises (or returns an invalid Evaluation) on failure; it never hides one.

    Optional: `max_batch` > 1 declares that `evaluate_many` scores up to that many mixtures together
    better than one by one (the proxy trainer trains them stacked on one GPU); the process runner
    then hands a worker up to max_batch trials at once. Each stays its own trial.
    """

    name: str = ""
    domains: tuple[str, ...] | None = None
    pool = None  # (N, k) np.ndarray of the only mixtures it can evaluate, or None
    max_batch: int = 1  # mixtures evaluate_many takes at once; 1: runners call evaluate, one at a time
    fidelities: dict[str, float] | None = None  # scale name -> relative cost; None: one scale (bomix.fidelity)
    target_fidelity: str | None = None  # the scale a recommendation is for, when `fidelities` is set
    unit: str = DEFAULT_UNIT  # the unit of the losses it returns, shown by reports

    @abstractmethod
    def evaluate(self, weights: Mapping[str, float], context: TrialContext | None = None) -> Evaluation:
        """Evaluate one mixture {domain: weight} and return its per-domain validation losses."""

    def evaluate_many(self, weights: Sequence[Mapping[str, float]],
                      contexts: Sequence[TrialContext]) -> list[Evaluation | Exception]:
        """Evaluate up to max_batch mixtures, each its own trial (contexts[i] is mixture i's).

        Returns, in order, each mixture's Evaluation or the exception that failed that trial alone;
        raising fails them all (a crash of what they shared). This default evaluates them one by one.
        """
        results: list[Evaluation | Exception] = []
        for w, context in zip(weights, contexts, strict=True):
            try:
                results.append(self.evaluate(w, context))
            except Exception as e:  # noqa: BLE001 - one trial's failure is its own
                results.append(e)
        return results

    def get_params(self) -> dict:
        return get_params(self)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
