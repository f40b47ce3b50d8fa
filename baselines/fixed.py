"""Fixed-weight baselines."""

from __future__ import annotations

import numpy as np

from bomix.optimizers.base import History, Optimizer


class Uniform(Optimizer):
    """The uniform mixture 1/k, or the feasible mixture closest to it when floors/caps exclude it.

    Proposes that one mixture every time (n copies for n > 1: a fixed baseline is re-evaluated
    with fresh seeds, not varied).
    """

    name = "uniform"
    proposes_distinct = False

    def __init__(self, *, seed: int = 0):
        self.seed = seed

    def suggest(self, history: History, n: int = 1) -> np.ndarray:
        return np.tile(history.space.center, (n, 1))
