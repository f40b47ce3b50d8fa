"""Data mixing laws (Ye et al., arXiv:2403.16952) as a bomix baseline.

The law (baseline-methods.md section 3). "explicit", one law per validation loss the objective
reads, composed by the objective (the mean loss: s_i = 1/m, paper Eq. 8):

    L_i(r) = c_i + k_i exp(sum_j t_ij r_j),   fitted as (log c_i, log k_i, t_i), k + 2 parameters

"implicit", K latent domains fitted to the objective value directly (a one-hidden-layer MLP):

    L(r) = b + sum_{j <= K} softmax(w)_j exp(W_j . r + a_j)

Both are convex in r, so the optimum over the capped simplex is found by multi-start SLSQP
("convex", our rule) or, as the authors do, as the argmin over the Algorithm-2 grid ("grid").

Design (Algorithm 2, "double-diminishing"): each of the first k-1 domains takes a value in
{base_i, base_i/2, base_i/4, ...} with base_i = delta * floor(cap_i / delta) and values below
delta snapped to 0; the last domain takes the remainder, kept when within its cap. Floors lift
zeros to the floor and shrink the weight above the floors to sum 1. The design is the grid in a
seeded order in which mixtures containing a zero make up `zero_fraction` of every prefix, then,
once the grid is used up, Sobol points. When the grid holds fewer than budget - 1 mixtures (small
k) delta is halved, at most MAX_HALVINGS times.

The nested scaling laws' size law (paper section 4.1), L(N) = E + (N0 / N)^a with a shared exponent,
is `fit_size_law`; experiments/bench_multifidelity.py's `nested_law` arm runs the nested recipe.

Reductions from the authors' protocol, for a fit that runs after every trial of a benchmark:
  * Explicit fit: the authors refine all 6,000 starts (10 log c x 20 log k x 30 draws of t) with
    L-BFGS. Here every start is scored by its initial Huber loss (one vectorised pass), the best
    (log c, log k) cell is kept for each draw of t, and only the `n_restarts` best draws are refined
    (L-BFGS-B, analytic gradient). The log c grid spans the authors' 3.5 nats but ends just below
    the smallest observed loss, since c_i < min L_i must be reachable whatever the loss scale.
  * Implicit fit: no AdaBoost(30) wrapper, `n_restarts` restarts (not 16) of IMPLICIT_STEPS
    AdamW steps (not 5,000); the authors' split, loss, optimiser and checkpoint rule are kept.
  * Grids beyond GRID_LIMIT candidates (k >= 10 without caps) are sampled, not enumerated.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from baselines._law import Law, LawBaseline, LawFitError, loss_matrix, minimize_on_space
from bomix.errors import ConfigError
from bomix.optimizers.base import History
from bomix.space import MixtureSpace

VARIANTS = ("explicit", "implicit")
OPTIMA = ("convex", "grid")
EPS = 1e-9  # tolerance on sums and caps of grid mixtures

# Design
GRID_LIMIT = 200_000  # larger grids are sampled: GRID_LIMIT random combinations, deduplicated
MAX_HALVINGS = 2  # delta -> delta/4 at most: finer steps only add near-zero weights

# Explicit fit (authors: law.py, mix_5_domains.ipynb)
HUBER_EXPLICIT = 0.05
LOG_C_POINTS, LOG_C_SPAN = 10, 3.5  # authors: log c in linspace(-2, 1.5, 10)
LOG_K_GRID = np.linspace(-10.0, 1.0, 20)
T_DRAWS = 30  # draws of t per (log c, log k) cell: own t_ii ~ -U(0, 1), others t_ij ~ U(0, 0.1)
DEFAULT_RESTARTS = {"explicit": 12, "implicit": 3}

# Size law of the nested scaling laws (authors: pipeline/utils.py, power_law; see fit_size_law)
HUBER_SIZE = 0.08
SIZE_A_GRID = np.linspace(0.05, 2.0, 40)  # the shared exponent a's grid (the authors start at 0.3 to 0.8)
SIZE_A_MIN = SIZE_A_GRID[0] / 10  # the least exponent the fit may reach (below the grid's first point)
SIZE_IRLS_STEPS = 50  # reweighting steps of each curve's Huber line

# Implicit fit (authors: pipeline/mixlaw.py, MLPEstimator)
HUBER_IMPLICIT = 0.03
IMPLICIT_LR, IMPLICIT_WD = 0.1, 1e-3
IMPLICIT_STEPS = 1000
TRAIN_SHARE = 0.8  # the Huber loss sees this share of the (shuffled) points; checkpoints use all

MIN_FIT = 4  # completed trials a fit needs at least; k + 2 (one per parameter of a law) unless the
            # budget's design is smaller: the Huber fit from many starts still gives a usable law then
N_SOBOL_STARTS = 4  # SLSQP starts besides the center, the best observed trial and best candidate


class MixingLaws(LawBaseline):
    """Ye et al.'s data mixing law: design on the Algorithm-2 grid, fit the law, propose its optimum.

    seed, protocol, budget, n0, min_distance: see LawBaseline (n0 default max(3(k+2), 16)).
    variant: "explicit" (per-loss laws, composed by the objective) or "implicit" (K latent domains).
    optimum: "convex" (SLSQP over the capped simplex) or "grid" (argmin over the candidates).
    delta: grid step of Algorithm 2, a fraction of the mixture.
    zero_fraction: share of design mixtures that contain a zero (the authors' released set: 0.3).
    n_restarts: fit restarts refined; None: 12 (explicit), 3 (implicit).
    n_latent: K, the latent domains of the implicit law.
    """

    name = "mixing_laws"

    def __init__(self, *, seed: int = 0, protocol: str = "sequential", budget: int | None = None, n0: int | None = None,
                 min_distance: float = 0.02, variant: str = "explicit", optimum: str = "convex",
                 delta: float = 1 / 16, zero_fraction: float = 0.3, n_restarts: int | None = None,
                 n_latent: int = 30):
        super().__init__(seed=seed, protocol=protocol, budget=budget, n0=n0, min_distance=min_distance)
        if variant not in VARIANTS:
            raise ConfigError(f"{self.name} variant must be one of {list(VARIANTS)}, got {variant!r}")
        if optimum not in OPTIMA:
            raise ConfigError(f"{self.name} optimum must be one of {list(OPTIMA)}, got {optimum!r}")
        if not _is_number(delta) or not 0 < delta <= 1:
            raise ConfigError(f"{self.name} delta must be a number in (0, 1], got {delta!r}")
        if not _is_number(zero_fraction) or not 0 <= zero_fraction <= 1:
            raise ConfigError(f"{self.name} zero_fraction must be a number in [0, 1], got {zero_fraction!r}")
        if n_restarts is not None and (not _is_int(n_restarts) or n_restarts < 1):
            raise ConfigError(f"{self.name} n_restarts must be an integer >= 1 or None, got {n_restarts!r}")
        if not _is_int(n_latent) or n_latent < 1:
            raise ConfigError(f"{self.name} n_latent must be an integer >= 1, got {n_latent!r}")
        self.variant = variant
        self.optimum = optimum
        self.delta = delta
        self.zero_fraction = zero_fraction
        self.n_restarts = n_restarts
        self.n_latent = n_latent
        self._grids: dict[str, np.ndarray] = {}  # ordered grid per space: a pure function of the arguments

    def default_n0(self, space: MixtureSpace) -> int:
        return max(3 * (space.k + 2), 16)

    # -- design ---------------------------------------------------------------------------------
    def candidates(self, space: MixtureSpace) -> np.ndarray:
        """(p, k) the Algorithm-2 grid of the space, feasible, in the design's seeded order."""
        key = repr(space.to_dict())
        if key not in self._grids:
            self._grids[key] = self._ordered_grid(space)
        return self._grids[key]

    def design(self, space: MixtureSpace, n: int) -> np.ndarray:
        """(n, k) the first n grid mixtures in the seeded order, then Sobol points once it runs out."""
        grid = self.candidates(space)
        if n <= len(grid):
            return grid[:n].copy()
        return np.vstack([grid, space.sample(n - len(grid), method="sobol", seed=self.seed)])

    def _ordered_grid(self, space: MixtureSpace) -> np.ndarray:
        """The grid (delta halved while it is smaller than budget - 1), in the seeded design order."""
        rng = np.random.default_rng([self.seed, 2403])
        delta = self.delta
        X, zero = double_diminishing(space, delta, rng)
        for _ in range(MAX_HALVINGS):
            if len(X) >= (self.budget or 64) - 1:
                break
            delta /= 2
            X, zero = double_diminishing(space, delta, rng)
        return X[_interleave(zero, self.zero_fraction, rng)]

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, history: History) -> Law:
        """The law fitted to the completed trials, with its optimum; params say which domains the
        optimum pins to a floor or cap (the law's exponentials often push it to the boundary)."""
        import scipy.optimize  # noqa: F401  (loads scipy's BLAS before the limit below, so it applies)
        from threadpoolctl import threadpool_limits

        # One BLAS thread: L-BFGS-B and SLSQP make many tiny BLAS calls, which ran up to 100x slower
        # on a busy 2-core machine when OpenBLAS could spread them over two threads.
        with threadpool_limits(1):
            return self._fit(history)

    def _fit(self, history: History) -> Law:
        space, done = history.space, history.completed
        need = min(space.k + 2, max(MIN_FIT, self.planned(history).design_size(space)))
        if len(done) < need:
            raise LawFitError(f"{self.name} needs at least min(k + 2, its design) = {need} completed trials, got "
                              f"{len(done)}")
        X = history.X()
        rng = np.random.default_rng([self.seed, len(done)])
        restarts = self.n_restarts or DEFAULT_RESTARTS[self.variant]
        if self.variant == "explicit":
            names, thetas = self._explicit_thetas(history, rng, restarts)
            value_grad = _explicit_value_grad(history.objective, names, thetas)
            worst = _explicit_losses(thetas) if history.objective.kind == "worst" else None
            params = {"variant": "explicit", "losses": _report_explicit(names, space.domains, thetas)}
        else:
            net = fit_latent(X, history.y(), self.n_latent, rng, restarts)
            value_grad, worst = _latent_value_grad(net), None  # fitted to the objective itself: smooth
            params = {"variant": "implicit", "n_latent": self.n_latent, "train_mae": net["mae"],
                      "bias": float(net["b"])}

        def predict(P):
            return value_grad(P)[0]

        x, value = self._optimum(history, predict, value_grad, worst)
        params["at_bounds"] = [d for d, v, lo, hi in zip(space.domains, x, space.floors, space.caps)
                               if min(v - lo, hi - v) < 1e-6]
        return Law(predict, params, x, value)

    @staticmethod
    def _explicit_thetas(history: History, rng: np.random.Generator, restarts: int) -> tuple[list[str], np.ndarray]:
        """(names the objective reads, (m, k + 2) fitted explicit laws, one row per name)."""
        names, L = loss_matrix(history)
        if L.min() <= 0:
            raise LawFitError(f"the explicit law needs positive losses (c_i > 0), got a minimum of {L.min():.4g}")
        space, X = history.space, history.X()
        own = [space.index(n) if n in space.domains else None for n in names]
        return names, np.array([fit_exponential(X, L[:, i], own[i], rng, restarts) for i in range(len(names))])

    def fit_losses(self, history: History):
        """The explicit per-loss laws fitted to the completed trials, without searching an optimum:
        a function (p, k) mixtures -> (p, m) predicted losses, columns in the order of the losses
        the objective reads. The replay evaluator's "mixing_law" surrogate loads it by name."""
        import scipy.optimize  # noqa: F401  (loads scipy's BLAS before the limit below, so it applies)
        from threadpoolctl import threadpool_limits

        rng = np.random.default_rng([self.seed, len(history.completed)])
        with threadpool_limits(1):
            _, thetas = self._explicit_thetas(history, rng, self.n_restarts or DEFAULT_RESTARTS["explicit"])
        return lambda P: np.exp(thetas[:, 0]) + np.exp(thetas[:, 1] + np.atleast_2d(P) @ thetas[:, 2:].T)

    def _optimum(self, history: History, predict, value_grad, worst=None) -> tuple[np.ndarray, float]:
        """The law's optimum and its predicted value: grid argmin, or multi-start SLSQP started at the
        center, Sobol points, the best observed trial and the best candidate. `worst`, the per-loss
        laws of a "worst" objective, switches SLSQP to the epigraph form of the max."""
        space = history.space
        pool = self.candidates(space)
        if not len(pool):  # caps so tight that no grid mixture fits them
            pool = space.sample(256, method="sobol", seed=self.seed)
        best = int(np.argmin(predict(pool)))
        if self.optimum == "grid":
            return pool[best].copy(), float(predict(pool[best:best + 1])[0])
        starts = np.vstack([space.center, space.sample(N_SOBOL_STARTS, method="sobol", seed=self.seed),
                            history.X()[int(np.argmin(history.y()))], pool[best]])
        if worst is not None:
            return _minimize_max(worst, space, starts)
        return minimize_on_space(lambda r: value_grad(r[None])[0][0], space, starts,
                                 jac=lambda r: value_grad(r[None])[1][0])


# -- Algorithm 2 ----------------------------------------------------------------------------------
def double_diminishing(space: MixtureSpace, delta: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The feasible Algorithm-2 candidates of `space` for grid step `delta`, deduplicated.

    Returns ((p, k) mixtures in lexicographic order, (p,) whether each had a zero before floors
    lifted it). Enumerated when at most GRID_LIMIT, else GRID_LIMIT sampled combinations.
    """
    values = [_halvings(cap, delta) for cap in space.caps[:-1]]
    X = _enumerate(values, space.caps[-1])
    if X is None:
        X = _sample(values, space.caps[-1], rng)
    X = np.unique(np.round(X, 12), axis=0)
    zero = (X <= EPS).any(axis=1)
    return _lift_to_floors(X, space.floors), zero


def _halvings(cap: float, delta: float) -> np.ndarray:
    """One domain's values, ascending: 0 and base, base/2, ... down to delta (base = delta*floor(cap/delta))."""
    v, values = delta * np.floor(cap / delta + EPS), [0.0]
    while v >= delta - EPS:
        values.append(v)
        v /= 2
    return np.array(sorted(values))


def _enumerate(values: list[np.ndarray], last_cap: float) -> np.ndarray | None:
    """Every combination with the last domain's remainder in [0, last_cap]; None past GRID_LIMIT.

    Built domain by domain, pruning partial sums above 1 and prefixes that cannot reach 1 even
    with every later domain at its largest value.
    """
    reach = np.cumsum([last_cap] + [v.max() for v in values[::-1]])[::-1]  # reach[i]: max of domains i..
    rows, sums = np.zeros((1, 0)), np.zeros(1)
    for i, v in enumerate(values):
        new = (sums[:, None] + v[None, :]).ravel()
        keep = (new <= 1 + EPS) & (new + reach[i + 1] >= 1 - EPS)
        if keep.sum() > GRID_LIMIT:
            return None
        rows = np.column_stack([np.repeat(rows, len(v), axis=0), np.tile(v, len(rows))])[keep]
        sums = new[keep]
    last = 1.0 - sums
    ok = last <= last_cap + EPS
    return np.column_stack([rows[ok], np.clip(last[ok], 0.0, None)])


def _sample(values: list[np.ndarray], last_cap: float, rng: np.random.Generator) -> np.ndarray:
    """GRID_LIMIT random combinations: domains visited in a random order, each taking a uniformly
    chosen value among those that still fit under 1; kept when the remainder fits the last cap."""
    n, m = GRID_LIMIT, len(values)
    table = np.full((m, max(len(v) for v in values)), np.inf)
    for i, v in enumerate(values):
        table[i, :len(v)] = v  # ascending, so the values that fit are a prefix of each row
    order = np.argsort(rng.random((n, m)), axis=1)
    rows, left = np.zeros((n, m)), np.ones(n)
    for step in range(m):
        d = order[:, step]
        fits = (table[d] <= left[:, None] + EPS).sum(axis=1)  # >= 1: every domain can take 0
        v = table[d, np.floor(rng.random(n) * fits).astype(int)]
        rows[np.arange(n), d] = v
        left -= v
    ok = (left >= -EPS) & (left <= last_cap + EPS)
    return np.column_stack([rows[ok], np.clip(left[ok], 0.0, None)])


def _lift_to_floors(X: np.ndarray, floors: np.ndarray) -> np.ndarray:
    """Raise weights below their floor to it, then shrink the weight above the floors to sum 1.

    Stays within the caps: lifted weights lie in [floor, cap] and the shrink factor is at most 1.
    """
    if not floors.any():
        return X
    lifted = np.maximum(X, floors)
    above = lifted - floors
    total = above.sum(axis=1, keepdims=True)
    scale = np.divide(1.0 - floors.sum(), total, out=np.zeros_like(total), where=total > 0)
    return floors + above * scale


def _interleave(zero: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A seeded order of the grid in which every prefix of length n holds round(fraction * n)
    zero-containing mixtures (each kind shuffled), until one kind runs out and the other fills in."""
    plain, zeros = rng.permutation(np.flatnonzero(~zero)), rng.permutation(np.flatnonzero(zero))
    wanted = np.floor((np.arange(len(zero) + 1)) * fraction + 0.5)
    take_zero = np.diff(wanted).astype(bool)
    fits = (np.cumsum(take_zero) <= len(zeros)) & (np.cumsum(~take_zero) <= len(plain))
    cut = int(fits.argmin()) if not fits.all() else len(zero)
    n_zero = int(take_zero[:cut].sum())
    order = np.empty(cut, dtype=int)
    order[take_zero[:cut]], order[~take_zero[:cut]] = zeros[:n_zero], plain[:cut - n_zero]
    return np.r_[order, plain[cut - n_zero:], zeros[n_zero:]].astype(int)


# -- explicit law ---------------------------------------------------------------------------------
def fit_exponential(X: np.ndarray, y: np.ndarray, own: int | None, rng: np.random.Generator,
                    n_restarts: int) -> np.ndarray:
    """Fit y ~ c + k exp(X t) by Huber loss; returns theta = (log c, log k, t_1..t_k), raw gauge.

    X: (n, k) mixtures; y: (n,) one validation loss (> 0); own: the column of the training domain
    the loss belongs to (its t starts negative), or None. Starts: module docstring.
    """
    from scipy.optimize import minimize

    k = X.shape[1]
    draws = max(T_DRAWS, n_restarts)
    T = rng.uniform(0.0, 0.1, (draws, k))
    if own is not None:
        T[:, own] = -rng.uniform(0.0, 1.0, draws)
    top = np.log(y.min()) - 1e-3
    log_c = np.linspace(top - LOG_C_SPAN, top, LOG_C_POINTS)
    cells = np.array([(a, b) for a in log_c for b in LOG_K_GRID])  # (200, 2)
    E = np.exp(X @ T.T)  # (n, draws)
    pred = np.exp(cells[:, 0])[:, None, None] + np.exp(cells[:, 1])[:, None, None] * E.T[None]
    loss = _huber(pred - y, HUBER_EXPLICIT).sum(axis=2)  # (cells, draws)
    best_cell = loss.argmin(axis=0)
    ranked = np.argsort(loss[best_cell, np.arange(draws)], kind="stable")[:n_restarts]

    bounds = [(-30.0, np.log(y.max()) + 1.0), (-30.0, 10.0)] + [(-100.0, 100.0)] * k
    best_theta, best_f = None, np.inf
    for d in ranked:
        theta0 = np.r_[cells[best_cell[d]], T[d]]
        res = minimize(_explicit_loss, theta0, args=(X, y), jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-8})
        if np.isfinite(res.fun) and res.fun < best_f:
            best_theta, best_f = res.x, float(res.fun)
    if best_theta is None:
        raise LawFitError("the explicit law fit diverged from every start")
    return best_theta


@dataclass
class SizeLaw:
    """Fitted model-size laws L_c(N) = E_c + B_c N^-a, one curve c per (mixture, loss), `a` shared."""

    E: np.ndarray  # (c,)
    B: np.ndarray  # (c,) >= 0: B_c = N0_c^a in the authors' L = E + (N0 / N)^a
    a: float

    def predict(self, N: float) -> np.ndarray:
        """(c,) each curve's loss at model size (or relative cost) N."""
        return self.E + self.B * float(N) ** -self.a


def fit_size_law(N, L) -> SizeLaw:
    """Data Mixing Laws' size law (paper section 4.1, Algorithm 1; baseline-methods.md 3(e)):
    L(N) = E + (N0 / N)^a per curve, the exponent a tied across every mixture and loss, Huber
    loss with delta HUBER_SIZE. N: (s,) the proxy sizes (any unit, e.g. relative compute); L: (c, s)
    one curve per row, its losses at those sizes. Needs s >= 3 distinct sizes: with two, every
    curve fits exactly whatever a is, and the extrapolation is arbitrary.

    The authors start L-BFGS from a grid of (log N0, a). Here the fit is profiled over a: for a
    given a, each curve is linear in (E, B = N0^a) and its Huber fit (B >= 0) is found by
    iteratively reweighted least squares; the a with the least total Huber loss on SIZE_A_GRID is
    refined by a bounded scalar search between its grid neighbours."""
    from scipy.optimize import minimize_scalar

    N, L = np.asarray(N, dtype=float), np.atleast_2d(np.asarray(L, dtype=float))
    if N.ndim != 1 or len(np.unique(N)) < 3 or (N <= 0).any():
        raise LawFitError(f"the size law needs at least 3 distinct positive sizes, got {N.tolist()}")
    if L.shape[1] != len(N) or not np.isfinite(L).all():
        raise LawFitError(f"the size law needs finite losses of shape (curves, {len(N)}), got {L.shape}")

    def curves(a):  # ((c,) E, (c,) B, total Huber loss) of every curve's Huber line in x = N^-a
        x = N ** -a
        w = np.ones_like(L)
        for _ in range(SIZE_IRLS_STEPS):
            sw = w.sum(1)
            mx, my = (w * x).sum(1) / sw, (w * L).sum(1) / sw
            dx = x - mx[:, None]
            B = np.maximum(0.0, (w * dx * (L - my[:, None])).sum(1) / (w * dx * dx).sum(1))
            E = my - B * mx
            r = np.abs(E[:, None] + B[:, None] * x - L)
            w_new = np.where(r <= HUBER_SIZE, 1.0, HUBER_SIZE / np.maximum(r, 1e-300))
            if np.allclose(w_new, w):
                break
            w = w_new
        return E, B, float(_huber(r, HUBER_SIZE).sum())

    grid = SIZE_A_GRID
    on_grid = [curves(a)[2] for a in grid]
    best = int(np.argmin(on_grid))
    lo = grid[best - 1] if best > 0 else SIZE_A_MIN
    hi = grid[best + 1] if best + 1 < len(grid) else grid[-1] * 2
    a = float(minimize_scalar(lambda a: curves(a)[2], bounds=(lo, hi), method="bounded",
                              options={"xatol": 1e-6}).x)
    E, B, loss = curves(a)
    if on_grid[best] < loss:  # the bounded search may end worse than the grid point it started beside
        a = float(grid[best])
        E, B, _ = curves(a)
    return SizeLaw(E, B, a)


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _explicit_loss(theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Summed Huber loss of c + k exp(X t) and its gradient in (log c, log k, t)."""
    e = np.exp(theta[1] + X @ theta[2:])
    r = np.exp(theta[0]) + e - y
    psi = np.clip(r, -HUBER_EXPLICIT, HUBER_EXPLICIT)
    grad = np.r_[np.exp(theta[0]) * psi.sum(), psi @ e, X.T @ (psi * e)]
    return float(_huber(r, HUBER_EXPLICIT).sum()), grad


def _explicit_losses(thetas: np.ndarray):
    """(k,) mixture -> ((m,) per-loss laws L_i(r), (m, k) their gradients k_i exp(t_i . r) t_i)."""
    c, T = np.exp(thetas[:, 0]), thetas[:, 2:]

    def losses(r):
        e = np.exp(thetas[:, 1] + T @ r)
        return c + e, e[:, None] * T

    return losses


def _explicit_value_grad(objective, names: list[str], thetas: np.ndarray):
    """(p, k) mixtures -> ((p,) objective of the composed laws, (p, k) its (sub)gradient)."""
    c, T = np.exp(thetas[:, 0]), thetas[:, 2:]

    def value_grad(P):
        e = np.exp(thetas[:, 1] + P @ T.T)  # (p, m)
        L = c + e
        if objective.kind == "worst":
            w = np.eye(len(names))[L.argmax(axis=1)]
        else:  # the objective is linear in the losses: its weights
            w = np.broadcast_to(objective.of_rows(names, np.eye(len(names))), L.shape)
        return objective.of_rows(names, L), (w * e) @ T

    return value_grad


def _minimize_max(losses, space: MixtureSpace, starts: np.ndarray) -> tuple[np.ndarray, float]:
    """min over the space of max_i L_i(r) as min s subject to s >= L_i(r) (multi-start SLSQP):
    the max is not smooth, its epigraph is."""
    from scipy.optimize import minimize

    k = space.k
    cons = [{"type": "eq", "fun": lambda z: z[:k].sum() - 1.0, "jac": lambda z: np.r_[np.ones(k), 0.0]},
            {"type": "ineq", "fun": lambda z: z[k] - losses(z[:k])[0],
             "jac": lambda z: np.column_stack([-losses(z[:k])[1], np.ones(len(losses(z[:k])[0]))])}]
    best_x, best_f = None, np.inf
    for x0 in starts:
        res = minimize(lambda z: z[k], np.r_[x0, losses(x0)[0].max()], jac=lambda z: np.r_[np.zeros(k), 1.0],
                       method="SLSQP", bounds=list(zip(space.floors, space.caps)) + [(None, None)],
                       constraints=cons, options={"maxiter": 300, "ftol": 1e-10})
        x = space.project(res.x[:k]) if np.all(np.isfinite(res.x)) else space.project(x0)
        f = float(losses(x)[0].max())
        if f < best_f:
            best_x, best_f = x, f
    return best_x, best_f


def _report_explicit(names: list[str], domains, thetas: np.ndarray) -> dict:
    """Per loss {c, k, t: {domain: t_ij}}, in the centred gauge mean_j t_ij = 0 (k absorbs the mean)."""
    out = {}
    for name, theta in zip(names, thetas):
        t = theta[2:]
        out[name] = {"c": float(np.exp(theta[0])), "k": float(np.exp(theta[1] + t.mean())),
                     "t": {d: float(v) for d, v in zip(domains, t - t.mean())}}
    return out


# -- implicit law ---------------------------------------------------------------------------------
def fit_latent(X: np.ndarray, y: np.ndarray, n_latent: int, rng: np.random.Generator, n_restarts: int) -> dict:
    """Fit L(r) = b + softmax(w) . exp(W r + a) by AdamW on the Huber loss of a seeded 80% of the
    points; per restart the checkpoint with the lowest mean absolute error on all points, then the
    restart with the lowest such error. Returns {"W", "a", "w", "b", "mae"} as numpy values."""
    import torch

    n, k = X.shape
    Xt, yt = torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    train = torch.as_tensor(rng.permutation(n)[:max(1, int(np.ceil(TRAIN_SHARE * n)))])
    huber = torch.nn.HuberLoss(delta=HUBER_IMPLICIT)
    best = {"mae": np.inf}
    with _single_thread(torch):
        for _ in range(n_restarts):
            bound = 1.0 / np.sqrt(k)  # torch.nn.Linear's initial range
            init = [rng.uniform(-bound, bound, (n_latent, k)), rng.uniform(-bound, bound, n_latent),
                    np.zeros(n_latent), np.array(y.mean() - 1.0)]
            W, a, w, b = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in init)
            opt = torch.optim.AdamW([W, a, w, b], lr=IMPLICIT_LR, weight_decay=IMPLICIT_WD)
            for _ in range(IMPLICIT_STEPS):
                pred = b + torch.exp(Xt @ W.T + a) @ torch.softmax(w, 0)
                mae = float((pred.detach() - yt).abs().mean())
                if not np.isfinite(mae):
                    break
                if mae < best["mae"]:
                    best = {"W": W.detach().numpy().copy(), "a": a.detach().numpy().copy(),
                            "w": w.detach().numpy().copy(), "b": float(b.detach()), "mae": mae}
                opt.zero_grad()
                huber(pred[train], yt[train]).backward()
                opt.step()
    if not np.isfinite(best["mae"]):
        raise LawFitError("the implicit law fit diverged from every restart")
    return best


def _latent_value_grad(net: dict):
    """(p, k) mixtures -> ((p,) predicted objective, (p, k) its gradient)."""
    s = np.exp(net["w"] - net["w"].max())
    s /= s.sum()

    def value_grad(P):
        h = np.exp(P @ net["W"].T + net["a"]) * s  # (p, K)
        return net["b"] + h.sum(axis=1), h @ net["W"]

    return value_grad


@contextlib.contextmanager
def _single_thread(torch):
    """Run torch on one thread (restored afterwards): deterministic and polite to other jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)
