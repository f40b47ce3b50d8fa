"""Model-free optimizers: random and Sobol search on the simplex, and a fixed mixture.

On a finite pool of logged runs (bomix.optimizers.pool) random search scores candidates with
seeded noise, so it draws untried runs uniformly without replacement; Sobol points are design
points, so the pool's space-filling rule picks the runs; a fixed mixture becomes the run nearest it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bomix.errors import ConfigError
from bomix.optimizers.base import History, Optimizer, Proposal


class RandomSearch(Optimizer):
    """Mixtures drawn uniformly from the feasible set (the flat Dirichlet when nothing is capped).

    Draw i of a study is a function of (seed, i) alone, so resume continues the same stream.
    `score` is seeded noise (a function of seed and the history's length), so a search over a
    finite set of candidates picks one uniformly at random.
    """

    name = "random"

    def __init__(self, *, seed: int = 0):
        self.seed = seed

    def suggest(self, history: History, n: int = 1) -> np.ndarray:
        start = history.count(self.name)
        return np.vstack([history.space.sample(1, method="random", seed=self.seed, skip=start + i) for i in range(n)])


    def score(self, history: History, X: np.ndarray) -> np.ndarray:
        return np.random.default_rng([self.seed, len(history.trials), 11]).random(len(np.atleast_2d(X)))


class SobolSearch(Optimizer):
    """Scrambled Sobol points carried onto the feasible set (see MixtureSpace.sample).

    The i-th Sobol proposal of a study is point i of one sequence for `seed`; the index is the
    number of Sobol proposals already in the history, so a resumed study continues the sequence
    exactly where it stopped. Every point is a design point (Proposal.design).
    """

    name = "sobol"

    def __init__(self, *, seed: int = 0):
        self.seed = seed

    def suggest(self, history: History, n: int = 1) -> list[Proposal]:
        X = history.space.sample(n, method="sobol", seed=self.seed, skip=history.count(self.name))
        return [Proposal(x, self.name, design=True) for x in X]


class FixedMixture(Optimizer):
    """Always proposes the same mixture (a dict {domain: weight} or a sequence in domain order).

    For n > 1 it still returns the same mixture n times: re-evaluating one mixture with several
    seeds is the point of a fixed baseline.
    """

    name = "fixed"
    proposes_distinct = False

    def __init__(self, *, weights, seed: int = 0):
        if not isinstance(weights, (Mapping, list, tuple, np.ndarray)):
            raise ConfigError(f"fixed needs weights as a dict {{domain: weight}} or a list, got {weights!r}")
        self.weights = weights
        self.seed = seed

    def suggest(self, history: History, n: int = 1) -> np.ndarray:
        x = history.space.validate(self.weights)
        return np.tile(x, (n, 1))
