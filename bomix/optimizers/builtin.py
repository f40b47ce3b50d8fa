"""Model-free optimizers: random and Sobol search on the simplex, and a fixed mixture.

On a space with a finite pool (the logged runs of a replay evaluator) random and Sobol search
search the pool, as one would search a finite set: random search draws rows no trial holds yet,
uniformly and without replacement; Sobol search replaces each Sobol point, in order, with the
nearest (L1) pool row no trial holds yet. Neither then spends a trial on a run it already has, and
neither piles onto the few "hub" runs that happen to be nearest to most of the simplex.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bomix.errors import ConfigError
from bomix.optimizers.base import History, Optimizer, free_pool_rows, pool_taken, snap_to_pool


class RandomSearch(Optimizer):
    """Mixtures drawn uniformly from the feasible set (the flat Dirichlet when nothing is capped).

    Draw i of a study is a function of (seed, i) alone, so resume continues the same stream. On a
    pool: rows no trial holds, uniformly without replacement (a function of seed, i and those rows).
    """

    name = "random"

    def __init__(self, *, seed: int = 0):
        self.seed = seed

    def suggest(self, history: History, n: int = 1) -> np.ndarray:
        start = history.count(self.name)
        space = history.space
        if space.pool is not None:
            rows = np.flatnonzero(free_pool_rows(space, history))
            if len(rows) >= n:
                pick = np.random.default_rng([self.seed, start]).choice(rows, size=n, replace=False)
                return space.pool[pick].copy()
        return np.vstack([history.space.sample(1, method="random", seed=self.seed, skip=start + i) for i in range(n)])


class SobolSearch(Optimizer):
    """Scrambled Sobol points carried onto the feasible set (see MixtureSpace.sample).

    The i-th Sobol proposal of a study is point i of one sequence for `seed`; the index is the
    number of Sobol proposals already in the history, so a resumed study continues the sequence
    exactly where it stopped. On a pool each point becomes the nearest pool row no trial holds.
    """

    name = "sobol"

    def __init__(self, *, seed: int = 0):
        self.seed = seed

    def suggest(self, history: History, n: int = 1) -> np.ndarray:
        X = history.space.sample(n, method="sobol", seed=self.seed, skip=history.count(self.name))
        return snap_to_pool(history.space, X, pool_taken(history))


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
