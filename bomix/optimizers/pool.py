"""Pool search: any optimizer, searching a finite set of logged runs.

A replay evaluator in pool mode can answer only for the runs someone logged: its `pool`, an
(N, k) array of mixtures. A study created with such a pool wraps its optimizer in `PoolSearch`,
so no optimizer needs to know about pools. Each of the n picks of one `suggest` call is made in
turn, earlier picks pending for later ones; a run is *free* when no trial of the history (and no
earlier pick) holds it:

  1. ranked   when the optimizer can rank candidates (`Optimizer.score` returns values: bo its
              acquisition value, a law its negated predicted objective, random search seeded
              noise), the free run it scores highest;
  2. design   otherwise its own next proposal; when that is a design point (`Proposal.design`:
              an initial design, a Sobol point), the pool's design rule picks a free run;
  3. snapped  any other proposal (a fixed mixture, a model's optimum) becomes the free run nearest
              to it (L1).

The design rule, the same for every method: a study's first design pick is the free run nearest
the optimizer's design point (so bo still starts at the centre and RegMix near its prior); every
later one is the run farthest (L1) from all runs held so far among a seeded random subset of
the free runs, DESIGN_SUBSET of them or half, whichever is fewer (greedy maximin). On a sparse
many-domain pool the run nearest most interior points is one of a few dense "hub" runs, so
snapping a Sobol design piles onto them (measured at 64 domains: Sobol seeds 0 and 2 both landed
on one run at trial 4); maximin over the logged mixtures themselves spreads the design, and the
random subset keeps seeds apart. It must be a strict subset: maximin over every free run is the
same for every seed (on olmix's 64-run reuse swarm, with a subset of 64, every seed of every
method started from one design).

Once every run is taken the optimizer's proposal is passed through (the evaluator answers with
its nearest run: a replicate). The recommendation, for every method, is the evaluated run with
the best logged value. A replayed pool is deterministic: a run's logged value is all the
evidence there is about it, and asking again returns the same number, so a model's smoothed
value (a GP's posterior mean shrinks the logged values towards what its kernel can fit, which on
17 sparse domains is mostly misfit) can only pick a run whose logged value is worse. Measured on
the RegMix pool, Pile-CC target, 20 seeds: bo found the pool's best run in every seed but its
posterior mean deployed a run 0.014 worse on average. A model's preference for an unevaluated run
is never reported as a measured value; `predict` still gives its view of any run.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bomix.errors import InvalidSpaceError, InvalidWeightsError
from bomix.optimizers.base import History, Optimizer, Proposal, Recommendation
from bomix.space import MixtureSpace
from bomix.trial import Trial, TrialState

DESIGN_SUBSET = 64  # free runs a maximin design pick chooses among (seeded random subset; at most half)
SAME = 1e-9         # L1 distance under which a mixture is the logged run itself


def check_pool(space: MixtureSpace, pool) -> np.ndarray:
    """The pool as a read-only (N, k) array of feasible mixtures of `space`, or InvalidSpaceError."""
    try:
        P = np.array(pool, dtype=float)
    except (TypeError, ValueError) as e:
        raise InvalidSpaceError(f"pool must be an (n, k) array of numbers, got {type(pool).__name__}") from e
    if P.ndim != 2 or P.shape[1] != space.k or len(P) < 1:
        raise InvalidSpaceError(f"pool must be an (n, {space.k}) array of mixtures with n >= 1, got shape {P.shape}")
    try:
        P = space.clean_rows(P, what="pool row")
    except InvalidWeightsError as e:
        raise InvalidSpaceError(f"every pool row must be a feasible mixture of the study's space: {e}") from None
    P.flags.writeable = False
    return P


def nearest_rows(pool: np.ndarray, X: np.ndarray) -> np.ndarray:
    """(n,) index of the pool row nearest (L1; the first on ties) to each of the (n, k) mixtures X."""
    X = np.atleast_2d(np.asarray(X, dtype=float))
    if not len(X):
        return np.zeros(0, dtype=int)
    return np.abs(pool[None] - X[:, None]).sum(axis=2).argmin(axis=1)


class PoolSearch(Optimizer):
    """`optimizer`, searching the (N, k) logged mixtures `pool` (see the module docstring).

    Built by the study from its own optimizer and pool; it is not registered by name and adds no
    state: suggest and recommend stay pure functions of (optimizer, pool, history).
    """

    def __init__(self, optimizer: Optimizer, pool: np.ndarray):
        self.optimizer = optimizer
        self.pool = np.asarray(pool, dtype=float)
        self.name = optimizer.name
        self.seed = getattr(optimizer, "seed", 0)

    def get_params(self) -> dict:
        return self.optimizer.get_params()

    # -- suggestions --------------------------------------------------------------------------
    def suggest(self, history: History, n: int = 1) -> list[Proposal]:
        held = set(nearest_rows(self.pool, history.X(list(history.trials))).tolist())
        picks: list[Proposal] = []
        for j in range(n):
            now = with_pending(history, picks, self.name)
            free = np.array([i for i in range(len(self.pool)) if i not in held], dtype=int)
            pick = self._pick(now, free, held, j)
            row = pick.info.get("pool_row")
            if row is not None:
                held.add(row)
            picks.append(pick)
        return picks

    def _pick(self, history: History, free: np.ndarray, held: set[int], j: int) -> Proposal:
        if len(free):
            scores = self.optimizer.score(history, self.pool[free])
            if scores is not None:
                scores = np.asarray(scores, dtype=float).reshape(-1)
                best = int(np.argmax(np.where(np.isfinite(scores), scores, -np.inf)))
                return self._row(free[best], f"{self.name}/ranked", {"score": float(scores[best])})
        proposal = as_proposal(self.optimizer.suggest(history, 1)[0])
        if not len(free):  # every logged run is taken: the evaluator answers with the nearest (a replicate)
            return proposal
        if proposal.design and held:
            rng = np.random.default_rng([int(self.seed), len(history.trials), 7])
            subset = rng.choice(free, max(1, min(DESIGN_SUBSET, len(free) // 2)), replace=False)
            gaps = np.abs(self.pool[subset][:, None] - self.pool[sorted(held)][None]).sum(axis=2).min(axis=1)
            row = int(subset[int(np.argmax(gaps))])
            rule = "maximin"
        else:
            row = int(free[int(np.abs(self.pool[free] - proposal.weights).sum(axis=1).argmin())])
            rule = "nearest"
        return self._row(row, proposal.source or self.name,
                         {**proposal.info, "pool_rule": rule, "proposed": [float(v) for v in proposal.weights]},
                         design=proposal.design)

    def _row(self, row: int, source: str, info: dict, design: bool = False, fidelity: str | None = None) -> Proposal:
        return Proposal(self.pool[row].copy(), source, {**info, "pool_row": int(row)}, design, fidelity)

    # -- what the optimizer knows -------------------------------------------------------------
    def score(self, history: History, X: np.ndarray) -> np.ndarray | None:
        return self.optimizer.score(history, X)

    def predict(self, history: History, X: np.ndarray):
        return self.optimizer.predict(history, X)

    def recommend(self, history: History) -> Recommendation | None:
        """The best logged run the study evaluated (see the module docstring)."""
        rec = Optimizer.recommend(self, history)
        if rec is None:
            return None
        return Recommendation(rec.weights, rec.value, None, "best evaluated logged run", rec.trial)


def as_proposal(p) -> Proposal:
    return p if isinstance(p, Proposal) else Proposal(np.asarray(p, dtype=float))


def with_pending(history: History, picks: list[Proposal], name: str) -> History:
    """`history` with this call's earlier picks appended as RUNNING trials (pending points), each at
    its proposal's fidelity (None in a single-fidelity study)."""
    if not picks:
        return history
    start = max((t.number for t in history.trials), default=-1) + 1
    extra = tuple(Trial(start + i, history.space.to_mixture(p.weights), TrialState.RUNNING, p.source or name,
                        fidelity=p.fidelity) for i, p in enumerate(picks))
    return dataclasses.replace(history, trials=history.trials + extra)
