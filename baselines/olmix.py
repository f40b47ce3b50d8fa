"""Olmix (Chen et al., arXiv:2602.12237; allenai/olmix) as a bomix baseline: a Dirichlet swarm
around the corpus prior, a log-linear law per metric, and the "exact" convex proposer.

The method, as olmix's default fit config runs it (`configs/examples/fit/dclm_per_family.yaml`:
`regression.type: log_linear`, `proposer.type: exact`, `kl_reg: 0.05`):

    swarm     (`generate/synthesize_mixture.py`, one level of domains) each candidate is one of 15
              draws r ~ Dirichlet(s * q^temperature), one per strength s in 15 log-spaced values in
              [0.1, 5], chosen at random among the draws within the caps (olmix's path without
              repetition; with repetition it chooses first and rejects after); weights below
              `min_weight` (2e-3) are set to 0, the rest renormalised, rounded to multiples of
              `min_weight` and renormalised again; near-duplicates are dropped.
    law       (`fit/utils.py` LogLinearRegressor) per metric j the objective reads
                  L_j(r) = exp(c_j) + exp(t_j . r),
              fitted by the summed Huber loss (delta 0.02) from 300 starts: c in linspace(-2, 1.5,
              10), 30 draws of t each with the metric's own domain t_jj ~ -U(0, 1) and the others
              t_ji ~ U(0, 0.1); the start with the lowest training loss wins.
    proposer  (`LogLinearExactProposer`) the convex program
                  minimise  sum_j w_j L_j(r) + kl_weight * KL(r || q)
                  subject to sum r = 1, floors <= r <= caps,
              w_j the objective's weights over its metrics (1/m for the mean), q the prior.
              Each exp(c) + exp(t . r) is convex in r, KL is convex and the constraints are linear,
              so cvxpy solves it exactly (CLARABEL, then SCS if CLARABEL fails).

q is the space's prior (`MixtureSpace.prior`, the natural token shares), uniform when it has none;
the caps are the space's, which `MixtureSpace.from_tokens(target_tokens=..., repetition_factor=...)`
sets to olmix's repetition_factor * tokens / target_tokens. `LawBaseline` adds the fixed-budget
protocols: "one_shot" is olmix's own (a swarm of N-1 runs, then the proposer's optimum);
"sequential" (the default) designs n0 runs, then refits and proposes after every trial.

Deviations from olmix's code, and why:
  * one cap set for swarm and proposer: olmix rejects swarm draws that repeat a domain more than
    5 times at the proxy scale and caps the proposal at the target scale; a bomix space has one
    set of caps and both steps keep to it. Floors (olmix has none) enter as in the RegMix
    baseline: a draw d becomes floors + (1 - sum(floors)) * d.
  * the swarm takes draws from one seeded stream in order (so design(m)[:n] == design(n)) instead
    of oversampling 10x, deduplicating and subsampling: the same distribution of distinct draws.
    After MAX_GROUPS groups of 15 draws in a row without a feasible new one (caps that Dirichlet
    draws almost never meet, where olmix gives up), the design point is a Sobol point.
  * one law per metric the objective reads (olmix's per-metric default), composed by the
    objective's weights; olmix's DCLM config instead averages each task family first
    (aggregate_task_families) and fits one law per family mean. A "families" objective gives
    olmix's family weights (w_f / |f| per metric) but keeps one law per metric.
  * the own domain of a metric is the domain of the same name, or none: olmix passes the metric's
    column index, which only means a domain when metrics and domains line up.
  * fit: all 300 starts are scored by their initial Huber loss in one pass and only the
    `n_starts` best are refined, by scipy's L-BFGS-B with the analytic gradient (olmix refines
    every start with up to 100 outer steps of torch L-BFGS); log c and t are bounded (|t| <= T_BOUND) so the
    exponentials stay finite and the convex program well scaled.
  * the constant sum_j w_j exp(c_j), which olmix leaves out of the program, is added back so the
    reported value is the predicted objective; it does not move the optimum.
  * a "worst" objective (max over metrics; olmix has none) is not linear in the losses, but the
    max of convex laws is convex, so the same program minimises max_j L_j(r) + kl * KL exactly.
  * if both solvers fail, multi-start SLSQP on the same objective stands in (params["solver"]).
  * candidates (the sequential fallback) are olmix's simulation proposer's draws,
    Dirichlet(alpha * q) with log alpha ~ U(log 2, log 200), kept within the caps.
"""

from __future__ import annotations

import math

import numpy as np

from baselines._law import Law, LawBaseline, LawFitError, loss_matrix, minimize_on_space
from bomix.errors import ConfigError
from bomix.optimizers.base import History
from bomix.space import MixtureSpace

# Swarm (olmix generate/synthesize_mixture.py, SwarmConfig and ConfigDefaults)
STRENGTHS = np.logspace(math.log10(0.1), math.log10(5.0), 15)  # one Dirichlet draw per strength
DEDUP_ATOL = 1e-5      # a draw within this (max abs difference) of an earlier one is a duplicate
BLOCK = 64             # groups of 15 draws generated at a time from one stream
MAX_GROUPS = 400       # groups in a row without a feasible new draw before a Sobol point stands in

# Fit (olmix fit/utils.py LogLinearRegressor, init_params_log_linear_law)
LOG_C_GRID = np.linspace(-2.0, 1.5, 10)
T_DRAWS = 30           # draws of t per value of log c: 300 starts in all
T_BOUND = 50.0         # |t_ji| bound of the refinement
MAX_ITER = 200         # L-BFGS-B iterations per refined start (olmix: up to 100 x 20 torch L-BFGS steps)
OWN_T, OTHER_T = 1.0, 0.1  # own domain t_jj ~ -U(0, OWN_T), others t_ji ~ U(0, OTHER_T)

# Proposer
SOLVERS = ("CLARABEL", "SCS")
PRIOR_EPS = 1e-12      # olmix's floor on prior shares inside the KL term
N_SLSQP_STARTS = 8     # Sobol starts of the SLSQP stand-in, besides the prior and the best trial

# Candidates (olmix SimulationProposer, first round)
N_CANDIDATES = 2048
ALPHA_RANGE = (2.0, 200.0)
CANDIDATE_ROUNDS = 4

MIN_FIT = 4  # completed trials a fit needs at least; k + 2 (one per parameter of a law) unless the
            # budget's design is smaller: the Huber fit from many starts still gives a usable law then

class OlMix(LawBaseline):
    """olmix: Dirichlet swarm, log-linear law per metric, KL-regularised convex optimum.

    seed, protocol, budget, n0, min_distance: as LawBaseline; n0=None means max(8, 2 (k + 1)),
        twice the k + 1 parameters of each metric's law (capped at half the budget).
    kl_weight: lambda of the KL(r || prior) term of the proposer (olmix's kl_reg; 0.05 in its
        configs); 0 drops the term.
    n_starts: how many of olmix's 300 starts of each metric's fit are refined by L-BFGS-B.
    huber_delta: delta of the Huber loss of the fit (olmix: 0.02), in the metrics' units.
    temperature: the swarm centres on prior^temperature, renormalised (olmix's mix_temperature, 1).
    min_weight: swarm weights below this are set to 0 and the rest rounded to multiples of it
        (olmix's minimum_weight, 2e-3); 0 keeps the draws as they are.
    """

    name = "olmix"

    def __init__(self, *, seed: int = 0, protocol: str = "sequential", budget: int | None = None,
                 n0: int | None = None, min_distance: float = 0.02, kl_weight: float = 0.05, n_starts: int = 8,
                 huber_delta: float = 0.02, temperature: float = 1.0, min_weight: float = 2e-3):
        super().__init__(seed=seed, protocol=protocol, budget=budget, n0=n0, min_distance=min_distance)
        if not _is_int(seed) or seed < 0:
            raise ConfigError(f"olmix seed must be an integer >= 0, got {seed!r}")
        if not _is_number(kl_weight) or kl_weight < 0:
            raise ConfigError(f"olmix kl_weight must be a finite number >= 0, got {kl_weight!r}")
        if not _is_int(n_starts) or n_starts < 1 or n_starts > len(LOG_C_GRID) * T_DRAWS:
            raise ConfigError(f"olmix n_starts must be an integer in [1, {len(LOG_C_GRID) * T_DRAWS}], "
                              f"got {n_starts!r}")
        if not _is_number(huber_delta) or huber_delta <= 0:
            raise ConfigError(f"olmix huber_delta must be a finite number > 0, got {huber_delta!r}")
        if not _is_number(temperature) or temperature < 0:
            raise ConfigError(f"olmix temperature must be a finite number >= 0, got {temperature!r}")
        if not _is_number(min_weight) or not 0 <= min_weight < 0.5:
            raise ConfigError(f"olmix min_weight must be a number in [0, 0.5), got {min_weight!r}")
        self.kl_weight = kl_weight
        self.n_starts = n_starts
        self.huber_delta = huber_delta
        self.temperature = temperature
        self.min_weight = min_weight

    def default_n0(self, space: MixtureSpace) -> int:
        return max(8, 2 * (space.k + 1))

    # -- the swarm ------------------------------------------------------------------------------
    def design(self, space: MixtureSpace, n: int) -> np.ndarray:
        """(n, k) the first n swarm mixtures for `seed`: prefix-stable, feasible, distinct.

        Groups of 15 draws (one per strength) come from one stream seeded by `seed`, in order;
        each group gives the design one of its feasible draws (chosen by a uniform number drawn
        with the group), unless that draw duplicates an earlier design point.
        """
        centre = prior_of(space) ** self.temperature
        centre /= centre.sum()
        mass = 1.0 - space.floors.sum()
        rng = np.random.default_rng([self.seed, 0x01A1])
        out = np.empty((n, space.k))
        got = misses = fallbacks = 0
        sobol = np.empty((0, space.k))
        while got < n:
            d = self._round(_dirichlet(rng, STRENGTHS[None, :, None] * centre[None, None, :],
                                       (BLOCK, len(STRENGTHS), space.k)))
            pick = rng.random(BLOCK)
            X = space.floors + mass * d
            ok = np.all(X <= space.caps + 1e-12, axis=2) & np.isfinite(X).all(axis=2)  # (BLOCK, 15)
            for g in range(BLOCK):
                if got == n:
                    break
                idx = np.flatnonzero(ok[g])
                x = space.clean(X[g, idx[int(pick[g] * len(idx))]]) if len(idx) else None
                if x is not None and (got == 0 or np.abs(out[:got] - x).max(axis=1).min() > DEDUP_ATOL):
                    out[got], got, misses = x, got + 1, 0
                    continue
                misses += 1
                if misses == MAX_GROUPS:  # the i-th Sobol point does not depend on how many are drawn
                    if fallbacks == len(sobol):
                        sobol = space.sample(max(16, 2 * len(sobol)), method="sobol", seed=self.seed)
                    out[got], got, fallbacks, misses = sobol[fallbacks], got + 1, fallbacks + 1, 0
        return out

    def _round(self, d: np.ndarray) -> np.ndarray:
        """olmix's clean-up of a draw: weights < min_weight to 0, renormalise, round to multiples of
        min_weight, renormalise. Rows left all zero become NaN (infeasible)."""
        if self.min_weight == 0:
            return d
        with np.errstate(invalid="ignore", divide="ignore"):
            d = np.where(d < self.min_weight, 0.0, d)
            d = d / d.sum(axis=-1, keepdims=True)
            d = np.round(d / self.min_weight) * self.min_weight
            return d / d.sum(axis=-1, keepdims=True)

    def candidates(self, space: MixtureSpace) -> np.ndarray:
        """(N_CANDIDATES, k) olmix simulation draws floors + mass * Dirichlet(alpha * prior) within
        the caps (log alpha uniform on ALPHA_RANGE), topped up with uniform feasible mixtures when
        caps reject most draws; fixed for the seed."""
        rng = np.random.default_rng([self.seed, 0xCA4D])
        q = prior_of(space)
        mass = 1.0 - space.floors.sum()
        kept, have = [], 0
        for _ in range(CANDIDATE_ROUNDS):
            alpha = np.exp(rng.uniform(*np.log(ALPHA_RANGE), N_CANDIDATES))
            X = space.floors + mass * _dirichlet(rng, alpha[:, None] * q[None, :], (N_CANDIDATES, space.k))
            X = X[np.all(X <= space.caps + 1e-12, axis=1)][: N_CANDIDATES - have]
            kept.append(X)
            have += len(X)
            if have == N_CANDIDATES:
                break
        if have < N_CANDIDATES:
            kept.append(space.sample(N_CANDIDATES - have, method="random", seed=self.seed))
        return np.vstack(kept)

    # -- the law and its optimum ----------------------------------------------------------------
    def fit(self, history: History) -> Law:
        """A log-linear law per metric the objective reads, and the KL-regularised optimum."""
        import scipy.optimize  # noqa: F401  (loads scipy's BLAS before the limit below, so it applies)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # many tiny BLAS calls: one thread is faster on a busy machine
            return self._fit(history)

    def _fit(self, history: History) -> Law:
        space, done = history.space, history.completed
        need = min(space.k + 2, max(MIN_FIT, self.planned(history).design_size(space)))
        if len(done) < need:
            raise LawFitError(f"olmix needs at least min(k + 2, its design) = {need} completed trials, got "
                              f"{len(done)}")
        names, L = loss_matrix(history)
        if not np.all(np.isfinite(L)) or L.min() <= 0:
            raise LawFitError(f"olmix's log-linear law needs positive losses, got a minimum of {np.min(L):.4g}")
        X = history.X()
        rng = np.random.default_rng([self.seed, len(done), 0x0A11])
        thetas = np.array([fit_log_linear(X, L[:, j], space.index(name) if name in space.domains else None, rng,
                                          n_starts=self.n_starts, delta=self.huber_delta)
                           for j, name in enumerate(names)])
        objective = history.objective
        weights = None if objective.kind == "worst" else objective.of_rows(names, np.eye(len(names)))

        def predict(P):
            return objective.of_rows(names, log_linear(thetas, P))

        q = prior_of(space)
        x, solver = propose(thetas, weights, q, self.kl_weight, space,
                            starts=history.X()[[int(np.argmin(history.y()))]], seed=self.seed)
        x = space.project(x)
        params = {"law": "log_linear",
                  "objective_weights": None if weights is None else dict(zip(names, weights.tolist())),
                  "losses": {name: {"log_c": float(th[0]), "t": dict(zip(space.domains, th[1:].tolist()))}
                             for name, th in zip(names, thetas)},
                  "kl_weight": self.kl_weight, "solver": solver,
                  "kl_to_prior": float(kl_divergence(x, q)),
                  "at_bounds": [d for d, v, lo, hi in zip(space.domains, x, space.floors, space.caps)
                                if min(v - lo, hi - v) < 1e-6]}
        return Law(predict, params, x, float(predict(x[None, :])[0]))


# -- the law --------------------------------------------------------------------------------------
def log_linear(thetas: np.ndarray, P: np.ndarray) -> np.ndarray:
    """(p, m) L_j(r) = exp(c_j) + exp(t_j . r) of (m, k + 1) thetas (log c_j, t_j) at (p, k) mixtures."""
    P = np.atleast_2d(P)
    return np.exp(thetas[:, 0])[None, :] + np.exp(P @ thetas[:, 1:].T)


def fit_log_linear(X: np.ndarray, y: np.ndarray, own: int | None, rng: np.random.Generator, *,
                   n_starts: int, delta: float) -> np.ndarray:
    """Fit y ~ exp(c) + exp(X t) by the summed Huber loss; returns theta = (log c, t_1..t_k).

    X: (n, k) mixtures; y: (n,) one metric (> 0); own: the column of the domain the metric
    belongs to (its t starts negative), or None. olmix's 300 starts, the n_starts best refined.
    """
    from scipy.optimize import minimize

    n, k = X.shape
    log_c = np.repeat(LOG_C_GRID, T_DRAWS)
    T = rng.uniform(0.0, OTHER_T, (len(log_c), k))
    if own is not None:
        T[:, own] = -rng.uniform(0.0, OWN_T, len(log_c))
    starts = np.column_stack([log_c, T])
    loss0 = _huber(log_linear(starts, X).T - y, delta).sum(axis=1)  # (300,)
    bounds = [(-30.0, float(np.log(y.max())) + 1.0)] + [(-T_BOUND, T_BOUND)] * k
    best, best_f = None, np.inf
    for s in np.argsort(loss0, kind="stable")[:n_starts]:
        theta0 = np.clip(starts[s], [b[0] for b in bounds], [b[1] for b in bounds])
        res = minimize(_huber_loss, theta0, args=(X, y, delta), jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": MAX_ITER, "ftol": 1e-10, "gtol": 1e-9})
        if np.isfinite(res.fun) and res.fun < best_f:
            best, best_f = res.x, float(res.fun)
    if best is None:
        raise LawFitError("olmix's log-linear fit diverged from every start")
    return best


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _huber_loss(theta: np.ndarray, X: np.ndarray, y: np.ndarray, delta: float) -> tuple[float, np.ndarray]:
    """Summed Huber loss of exp(log c) + exp(X t) and its gradient in (log c, t)."""
    c, e = np.exp(theta[0]), np.exp(X @ theta[1:])
    r = c + e - y
    psi = np.clip(r, -delta, delta)
    return float(_huber(r, delta).sum()), np.r_[c * psi.sum(), X.T @ (psi * e)]


# -- the proposer ---------------------------------------------------------------------------------
def prior_of(space: MixtureSpace) -> np.ndarray:
    """(k,) the space's prior (its natural shares), uniform when it has none; a fresh array."""
    return np.full(space.k, 1.0 / space.k) if space.prior is None else np.array(space.prior, dtype=float)


def kl_divergence(x: np.ndarray, q: np.ndarray) -> float:
    """KL(x || q) in nats, q floored at PRIOR_EPS and renormalised as in olmix."""
    from scipy.special import rel_entr

    q = np.maximum(q, PRIOR_EPS)
    return float(rel_entr(np.maximum(x, 0.0), q / q.sum()).sum())


def regularised(thetas: np.ndarray, weights: np.ndarray | None, q: np.ndarray, kl_weight: float):
    """r -> sum_j w_j L_j(r) (max_j L_j(r) when weights is None) + kl_weight * KL(r || q): the
    proposer's objective as a plain function, (k,) -> float."""
    def f(r):
        L = log_linear(thetas, r)[0]
        value = L.max() if weights is None else float(weights @ L)
        return value + (kl_weight * kl_divergence(r, q) if kl_weight else 0.0)

    return f


def propose(thetas: np.ndarray, weights: np.ndarray | None, q: np.ndarray, kl_weight: float,
            space: MixtureSpace, *, starts: np.ndarray | None = None, seed: int = 0) -> tuple[np.ndarray, str]:
    """The proposer's optimum over the space and the solver that found it.

    thetas: (m, k + 1) fitted (log c_j, t_j); weights: (m,) the objective's weights over the
    metrics, or None for their maximum ("worst"); q: (k,) prior. Solved by cvxpy (SOLVERS in turn);
    if none succeeds, multi-start SLSQP from the prior, `starts` and Sobol points ("slsqp").
    """
    import cvxpy as cp

    c, T = np.exp(thetas[:, 0]), thetas[:, 1:]
    qq = np.maximum(q, PRIOR_EPS)
    qq = qq / qq.sum()
    x = cp.Variable(space.k)
    if weights is None:
        loss = cp.max(c + cp.exp(T @ x))
    else:
        used = weights > 0
        loss = float(weights @ c) + cp.sum(cp.multiply(weights[used], cp.exp(T[used] @ x)))
    objective = loss + kl_weight * cp.sum(cp.rel_entr(x, qq)) if kl_weight else loss
    problem = cp.Problem(cp.Minimize(objective), [x >= space.floors, x <= space.caps, cp.sum(x) == 1])
    for solver in SOLVERS:
        try:
            problem.solve(solver=solver)
        except (cp.error.SolverError, ValueError, ArithmeticError):
            continue
        if problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) and x.value is not None \
                and np.all(np.isfinite(x.value)):
            return space.project(np.asarray(x.value, dtype=float)), solver.lower()
    starts = np.vstack([space.project(q), *(() if starts is None else [np.atleast_2d(starts)]),
                        space.sample(N_SLSQP_STARTS, method="sobol", seed=seed)])
    return minimize_on_space(regularised(thetas, weights, q, kl_weight), space, starts)[0], "slsqp"


# -- helpers --------------------------------------------------------------------------------------
def _dirichlet(rng: np.random.Generator, alpha: np.ndarray, shape: tuple) -> np.ndarray:
    """Draws ~ Dirichlet(alpha) along the last axis of `shape` (alpha broadcast to it), stable for
    tiny alpha: Gamma(a) = Gamma(a + 1) * U^(1/a), normalised in log space. alpha = 0 gives 0."""
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), shape)
    g = rng.standard_gamma(alpha + 1.0)
    u = np.maximum(rng.random(shape), 1e-300)
    with np.errstate(divide="ignore"):
        log_g = np.where(alpha > 0, np.log(g) + np.log(u) / np.where(alpha > 0, alpha, 1.0), -np.inf)
    log_g -= log_g.max(axis=-1, keepdims=True)
    w = np.exp(log_g)
    return w / w.sum(axis=-1, keepdims=True)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)
