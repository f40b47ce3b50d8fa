"""What every law-fitting baseline shares: a design, a fitted model, its optimum, two protocols.

A law-fitting method (BiMix, data mixing laws, RegMix) runs some design mixtures, fits a model of
the loss to them, and proposes the model's optimum. Under a fixed budget of N trials it runs one of
two protocols (baseline-methods.md section 9.3):

    "one_shot"     the authors' protocol: N-1 design trials, then the predicted optimum as trial N.
                   (A study that goes on past N keeps refitting and proposing the optimum.)
    "sequential"   our variant: n0 design trials, then refit and propose the optimum after every
                   trial. A proposal within L1 distance `min_distance` of a mixture already tried
                   (or pending) is replaced by the best-predicted untried mixture of the method's
                   own candidate set, so the method does not re-evaluate one point forever.

The default is "sequential": with the same N it is the strongest version of each method (its
model sees every trial and spends them where it predicts the optimum), so a benchmark that bomix
wins against it is a fair one. "one_shot" reproduces the papers. min_distance=0 turns the
fallback off: the sequential protocol then re-proposes its optimum (a replicate) when it was tried.

The budget N is the constructor's `budget`, else the campaign's (History.budget, which
study.optimize and bomix benchmark set), else 64. The sequential design takes each method's
documented n0, at most DESIGN_SHARE of N (bomix.optimizers.base), so every law is fitted and acts
on at least half of the budget at any k.

On a finite pool of logged runs (bomix.optimizers.pool) a law ranks candidate runs by its
predicted objective (`score`), and its design points are design points (Proposal.design).

Subclasses implement `design`, `fit` and `candidates`; the fitted model is a `Law`. Everything is
a pure function of (constructor arguments, history, n), as the optimizer contract requires.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field

import numpy as np

from bomix.errors import BomixError, ConfigError
from bomix.optimizers.base import History, Optimizer, Proposal, Recommendation, design_cap
from bomix.space import MixtureSpace

PROTOCOLS = ("sequential", "one_shot")


class LawFitError(BomixError):
    """The law cannot be fitted to this history (too few trials, degenerate data)."""


@dataclass
class Law:
    """A fitted model of the study's objective.

    predict: (p, k) mixtures -> (p,) predicted objective values (lower is better).
    params:  the fitted parameters, JSON-friendly, for the report.
    optimum: the model's optimal mixture in the space and its predicted value.
    """

    predict_fn: object
    params: dict = field(default_factory=dict)
    optimum: np.ndarray | None = None
    optimal_value: float | None = None

    def predict(self, X) -> np.ndarray:
        return np.asarray(self.predict_fn(np.atleast_2d(np.asarray(X, dtype=float))), dtype=float).reshape(-1)


class LawBaseline(Optimizer):
    """Design mixtures, then the optimum of a fitted law (see the module docstring).

    seed: seeds the design and the fit's random restarts.
    protocol: "sequential" (default) or "one_shot".
    budget: N, the trial budget the protocols plan for (one-shot: N-1 design mixtures); None: the
        campaign's budget (History.budget), else 64.
    n0: design size of the sequential protocol; None: the method's documented default, at most
        DESIGN_SHARE of N.
    min_distance: L1 distance under which a sequential proposal counts as already tried.
    """

    name = "law"

    def __init__(self, *, seed: int = 0, protocol: str = "sequential", budget: int | None = None,
                 n0: int | None = None, min_distance: float = 0.02):
        if protocol not in PROTOCOLS:
            raise ConfigError(f"{self.name} protocol must be one of {list(PROTOCOLS)}, got {protocol!r}")
        if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 2):
            raise ConfigError(f"{self.name} budget must be an integer >= 2 or None, got {budget!r}")
        if n0 is not None and (not isinstance(n0, int) or n0 < 1):
            raise ConfigError(f"{self.name} n0 must be an integer >= 1 or None, got {n0!r}")
        if not isinstance(min_distance, (int, float)) or min_distance < 0:
            raise ConfigError(f"{self.name} min_distance must be a number >= 0, got {min_distance!r}")
        self.seed = seed
        self.protocol = protocol
        self.budget = budget
        self.n0 = n0
        self.min_distance = min_distance
        self._planned: dict[int, LawBaseline] = {}  # budget -> this method planned for it (a cache)

    def planned(self, history: History) -> LawBaseline:
        """This method with its budget set: its own, else the campaign's, else 64 (a cached copy)."""
        if self.budget is not None:
            return self
        budget = max(2, history.plan())
        if budget not in self._planned:
            self._planned[budget] = type(self)(**{**self.get_params(), "budget": budget})
        return self._planned[budget]

    # -- what a method provides ---------------------------------------------------------------
    @abstractmethod
    def design(self, space: MixtureSpace, n: int) -> np.ndarray:
        """(n, k): the first n mixtures of the method's design for `seed` (a prefix-stable sequence:
        design(space, m)[:n] == design(space, n) for m >= n)."""

    @abstractmethod
    def fit(self, history: History) -> Law:
        """Fit the law to the completed trials and find its optimum; LawFitError when it cannot."""

    @abstractmethod
    def candidates(self, space: MixtureSpace) -> np.ndarray:
        """(p, k) feasible mixtures the sequential protocol falls back on when its optimum was tried."""

    def default_n0(self, space: MixtureSpace) -> int:
        return max(8, 2 * space.k)

    # -- the protocols ------------------------------------------------------------------------
    def design_size(self, space: MixtureSpace) -> int:
        """Design trials under the protocol for this method's budget (set: see `planned`)."""
        budget = 64 if self.budget is None else self.budget
        if self.protocol == "one_shot":
            return budget - 1
        if self.n0 is not None:
            return min(self.n0, budget - 1)
        return min(self.default_n0(space), design_cap(budget), budget - 1)

    def suggest(self, history: History, n: int = 1) -> list[Proposal]:
        me = self.planned(history)
        if me is not self:
            return me.suggest(history, n)
        space = history.space
        # Every trial in the history counts towards the design (imported and enqueued ones too);
        # the design's own points are taken in order, so a resumed study continues it.
        remaining = max(0, self.design_size(space) - len(history.trials))
        proposals = self._design_points(history, min(n, remaining))
        if len(proposals) == n:
            return proposals
        try:
            law = self.fit(history)
        except LawFitError:  # not enough data yet (failures in the design): keep designing
            return proposals + self._design_points(history, n - len(proposals), after=proposals)
        taken = [t.x for t in history.trials] + [p.weights for p in proposals]
        x = space.project(law.optimum)
        if self.protocol == "one_shot" and not proposals and not self._near(x, taken, 1e-9):
            proposals.append(Proposal(x, f"{self.name}/optimum", {"predicted": law.optimal_value}))
        elif self.protocol == "sequential" and not self._near(x, taken, self.min_distance):
            proposals.append(Proposal(x, f"{self.name}/optimum", {"predicted": law.optimal_value}))
        if len(proposals) < n:
            proposals += self._best_untried(history, law, n - len(proposals), taken + [p.weights for p in proposals])
        return proposals

    def _design_points(self, history: History, n: int, after: list[Proposal] = ()) -> list[Proposal]:
        """The design's next n points; `after`: design points this call already took."""
        if n <= 0:
            return []
        space = history.space
        done = history.count(f"{self.name}/design") + len(after)
        X = self.design(space, done + n)[done:]
        return [Proposal(history.space.clean(x), f"{self.name}/design", design=True) for x in X]

    def _best_untried(self, history: History, law: Law, n: int, taken: list) -> list[Proposal]:
        """The n best-predicted candidates farther than min_distance (L1) from everything taken."""
        space = history.space
        pool = self.candidates(space)
        order = np.argsort(law.predict(pool), kind="stable")
        chosen: list[Proposal] = []
        radius = max(self.min_distance, 1e-9)
        for i in order:
            if len(chosen) == n:
                break
            if not self._near(pool[i], taken + [p.weights for p in chosen], radius):
                chosen.append(Proposal(space.clean(pool[i]), f"{self.name}/candidate"))
        if len(chosen) < n:  # the candidate set is exhausted: fresh Sobol points
            extra = space.sample(n - len(chosen), method="sobol", seed=self.seed + 1,
                                 skip=history.count(f"{self.name}/explore"))
            chosen += [Proposal(x, f"{self.name}/explore", design=True) for x in extra]
        return chosen

    @staticmethod
    def _near(x, others, radius: float) -> bool:
        return any(np.abs(np.asarray(x) - np.asarray(o)).sum() < radius for o in others)

    # -- ranking candidates and what a report reads ----------------------------------------------
    def _law(self, history: History) -> Law | None:
        try:
            return self.fit(history)
        except LawFitError:
            return None

    def score(self, history: History, X: np.ndarray) -> np.ndarray | None:
        """(p,) the negated predicted objective of each candidate; None while the design runs or
        before the law can be fitted."""
        me = self.planned(history)
        if me is not self:
            return me.score(history, X)
        if len(history.trials) < self.design_size(history.space):
            return None
        law = self._law(history)
        return None if law is None else -law.predict(X)

    def predict(self, history: History, X: np.ndarray):
        """((p,) the fitted law's predicted objective at X, None); None before a fit is possible."""
        law = self.planned(history)._law(history)
        return None if law is None else (law.predict(X), None)

    def recommend(self, history: History) -> Recommendation | None:
        """The fitted law's optimum and its predicted value (best observed before a fit is possible)."""
        me = self.planned(history)
        if me is not self:
            return me.recommend(history)
        law = self._law(history)
        if law is None:
            return super().recommend(history)
        space = history.space
        x = space.project(law.optimum)
        return Recommendation(history.space.to_mixture(x), law.optimal_value, None, f"{self.name} law optimum")

    def cross_validate(self, history: History, *, folds: int = 5) -> dict:
        """Held-out prediction error of the law: k-fold over the completed trials (seeded).

        Returns {"n", "folds", "mae", "rmse", "spearman"} on the objective's values.
        """
        from scipy.stats import spearmanr

        done = history.completed
        if len(done) < folds or folds < 2:
            raise LawFitError(f"cross-validation needs at least {max(folds, 2)} completed trials, got {len(done)}")
        fold = np.random.default_rng(self.seed).permutation(len(done)) % folds
        pred = np.empty(len(done))
        y = history.y()
        for f in range(folds):
            train = History(history.space, history.objective, tuple(t for t, g in zip(done, fold) if g != f))
            pred[fold == f] = self.fit(train).predict(history.X([t for t, g in zip(done, fold) if g == f]))
        err = pred - y
        return {"n": len(done), "folds": folds, "mae": float(np.abs(err).mean()),
                "rmse": float(np.sqrt((err ** 2).mean())), "spearman": float(spearmanr(pred, y).statistic)}


# -- helpers the methods share --------------------------------------------------------------------
def loss_matrix(history: History) -> tuple[list[str], np.ndarray]:
    """(names the objective reads, (n, m) their losses over the completed trials)."""
    done = history.completed
    if not done:
        raise LawFitError("no completed trials to fit")
    names = history.objective.required(done[0].losses)
    return names, np.array([[t.losses[name] for name in names] for t in done], dtype=float)


def minimize_on_space(fun, space: MixtureSpace, starts: np.ndarray, *, jac=None) -> tuple[np.ndarray, float]:
    """Multi-start SLSQP of fun over the space (floors/caps as bounds, sum = 1); the best end point."""
    from scipy.optimize import minimize

    bounds = list(zip(space.floors, space.caps))
    cons = [{"type": "eq", "fun": lambda x: x.sum() - 1.0, "jac": lambda x: np.ones_like(x)}]
    best_x, best_f = None, np.inf
    for x0 in np.atleast_2d(starts):
        res = minimize(fun, x0, jac=jac, method="SLSQP", bounds=bounds, constraints=cons,
                       options={"maxiter": 300, "ftol": 1e-10})
        x = space.project(res.x) if np.all(np.isfinite(res.x)) else space.project(x0)
        f = float(fun(x))
        if f < best_f:
            best_x, best_f = x, f
    return best_x, best_f
