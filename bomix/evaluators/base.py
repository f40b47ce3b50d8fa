"""The evaluator interface: what a mixture scores."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bomix.registry import get_params
from bomix.trial import Evaluation


@dataclass(frozen=True)
class TrialContext:
    """What an evaluator may know about the trial it runs.

    number: the trial number in its study. seed: the seed to train/evaluate with (a retried trial
    gets its original's seed). directory: trials/<number>/ for logs and artifacts, or None.
    """

    number: int = 0
    seed: int = 0
    directory: Path | None = None


class Evaluator(ABC):
    """Scores mixtures. One required method, `evaluate`.

    `domains` names the training domains the evaluator expects, in order, or is None when it takes
    any; the study checks it against its space before the first trial.
    An evaluator raises (or returns an invalid Evaluation) on failure; it never hides one.
    """

    name: str = ""
    domains: tuple[str, ...] | None = None

    @abstractmethod
    def evaluate(self, weights: Mapping[str, float], context: TrialContext | None = None) -> Evaluation:
        """Evaluate one mixture {domain: weight} and return its per-domain validation losses."""

    def get_params(self) -> dict:
        return get_params(self)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def space_with_pool(space, evaluator):
    """`space`, carrying the evaluator's finite pool of mixtures when it has one (replay, pool mode),
    so pool-aware optimizers (bo) choose among the logged runs. Any other evaluator: `space` itself."""
    from bomix.errors import ConfigError
    from bomix.space import MixtureSpace

    own = getattr(evaluator, "space", None)
    pool = getattr(own, "pool", None)
    if pool is None or space.pool is not None:
        return space
    if list(space.domains) != list(own.domains):
        raise ConfigError(f"space.domains must be the logged runs' domains {list(own.domains)} in that order, "
                          f"got {list(space.domains)}")
    return MixtureSpace(space.domains, floors=space.floors, caps=space.caps, pool=pool)
