"""BiMix (Ge et al., arXiv:2405.14908): one bivariate power law per domain, then its KKT optimum.

The law (paper Eq. 3) models the validation loss of domain i from the weight r_i of the training
domain with the same name and the training step s, with no cross-domain terms:

    L_i(r_i, s) = A_i * r_i^(-alpha_i) * (B_i * s^(-beta_i) + C_i)

Only the products A_i B_i and A_i C_i are identifiable, so the curve fit fixes A_i = 1 (the same
law, one gauge). With final losses only (bomix's default trial), the law at the final step S
reduces to L_i(r_i) = K_i r_i^(-alpha_i), K_i = A_i (B_i S^(-beta_i) + C_i), fitted exactly by
per-domain OLS of log L_i on log r_i. With loss curves on the trials (Trial.curves, e.g. from the
bimix_law landscape) the full law is fitted per domain and evaluated at the curves' last step.

Optimum (baseline-methods.md section 6.4): the objective sum_i w_i K_i r_i^(-alpha_i) is
separable and convex, so its KKT point under sum r = 1 and lo_i <= r_i <= hi_i is
r_i(lam) = clip((alpha_i w_i K_i / lam)^(1/(1+alpha_i)), lo_i, hi_i) with lam found by Brent's
method so that the weights sum to 1 -- the fixed point of water-filling (clip the active bounds,
re-solve the rest, repeat) in one root search. For the "worst" objective the minimax point
equalises the modelled losses: r_i(t) = clip((K_i / t)^(1/alpha_i), lo_i, hi_i), t found the same
way. Both are exact; tests check them against SLSQP.

What the method can model. Every loss the objective reads must have a training domain of the
same name; otherwise BiMix has nothing to model it with and `suggest` raises ConfigError as soon
as a completed trial shows the mismatch (restrict the objective with `domains=[...]`, or use
another method). Training domains the objective does not read get no benefit under the law, so
the optimum leaves them at their lower bound max(floor, min_weight) unless caps force mass there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from baselines._law import Law, LawBaseline, LawFitError, loss_matrix
from bomix.errors import ConfigError
from bomix.optimizers.base import History
from bomix.space import MixtureSpace

DESIGN_FLOOR = 0.01  # design points keep every weight >= min(DESIGN_FLOOR, 0.5 / k): the law needs r_i > 0
N_CANDIDATES = 512  # Sobol points the sequential protocol falls back on
N_RESTARTS = 8  # seeded restarts of each domain's curve fit
SOFT_L1_SCALE = 0.02  # soft_l1 f_scale on log-loss residuals: relative errors beyond ~2% count as outliers
ENTROPY_ORDER = ("SE", "CE", "JE", "VNE")  # the paper's four measures, run in this order when given


def entropy_mixture(entropies: Mapping[str, float], space: MixtureSpace) -> np.ndarray:
    """BiMix's training-free mixture r_i = exp(H_i) / sum_j exp(H_j) (paper Eq. 13), projected onto
    the space when floors or caps exclude it.

    entropies: {domain: H_i in nats}, one per domain of the space. Returns (k,) in domain order.
    """
    missing = [d for d in space.domains if d not in entropies]
    unknown = [d for d in entropies if d not in space.domains]
    if missing or unknown:
        raise ConfigError(f"bimix entropies must give one H per training domain {list(space.domains)}, got "
                          f"missing {missing} and unknown {unknown}")
    try:
        h = np.array([float(entropies[d]) for d in space.domains])
    except (TypeError, ValueError):
        raise ConfigError(f"bimix entropies must be numbers (nats), got {dict(entropies)}") from None
    if not np.all(np.isfinite(h)):
        raise ConfigError(f"bimix entropies must be finite, got {dict(entropies)}")
    r = np.exp(h - h.max())
    return space.project(r / r.sum())


class BiMix(LawBaseline):
    """BiMix under a fixed trial budget: design mixtures, fit the per-domain law, propose its optimum.

    seed, protocol, budget, n0, min_distance: see LawBaseline. n0 defaults to max(8, 2k).
    entropies: None, {domain: H_i} (one entropy mixture), or {"CE": {domain: H_i}, "SE": ...} (one
        mixture per measure; SE, CE, JE, VNE first, in that order, then any others by name). H in
        nats. The design starts with these mixtures, then the uniform mixture, then Sobol points
        with every weight >= min(0.01, 0.5/k) (spread the correlated entropy mixtures lack).
    use_curves: fit the full law on the trials' loss curves when they carry curves for a loss;
        False, or no curves: the fixed-step reduction (OLS in log-log).
    min_weight: trials with r_i below it are left out of domain i's fit (the law diverges at 0),
        and the optimum keeps every weight >= it (on top of the space's floors).
    alpha_min: fitted alpha_i <= alpha_min (degenerate: the law would give the domain nothing) is
        clamped to alpha_min; Law.params["alpha_clamped"] counts how often.
    """

    name = "bimix"

    def __init__(self, *, seed: int = 0, protocol: str = "sequential", budget: int | None = None, n0: int | None = None,
                 min_distance: float = 0.02, entropies: Mapping | None = None, use_curves: bool = True,
                 min_weight: float = 1e-3, alpha_min: float = 1e-3):
        super().__init__(seed=seed, protocol=protocol, budget=budget, n0=n0, min_distance=min_distance)
        if entropies is not None and not isinstance(entropies, Mapping):
            raise ConfigError(f"bimix entropies must be None, {{domain: H}} or {{measure: {{domain: H}}}}, "
                              f"got {entropies!r}")
        for what, value, top in (("min_weight", min_weight, 0.5), ("alpha_min", alpha_min, 1.0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < top:
                raise ConfigError(f"bimix {what} must be a number in (0, {top}), got {value!r}")
        self.entropies = entropies
        self.use_curves = use_curves
        self.min_weight = min_weight
        self.alpha_min = alpha_min

    # -- design ---------------------------------------------------------------------------------
    def entropy_mixtures(self, space: MixtureSpace) -> np.ndarray:
        """(e, k) the entropy mixtures the design starts with (e = 0 when `entropies` is None)."""
        if not self.entropies:
            return np.empty((0, space.k))
        if all(isinstance(v, Mapping) for v in self.entropies.values()):
            order = [m for m in ENTROPY_ORDER if m in self.entropies]
            order += sorted(m for m in self.entropies if m not in ENTROPY_ORDER)
            return np.array([entropy_mixture(self.entropies[m], space) for m in order])
        return entropy_mixture(self.entropies, space)[None]

    def _interior(self, space: MixtureSpace) -> MixtureSpace:
        """The space with floors raised to min(DESIGN_FLOOR, 0.5/k), where the caps allow it."""
        floors = np.minimum(np.maximum(space.floors, min(DESIGN_FLOOR, 0.5 / space.k)), space.caps)
        if floors.sum() > 1:
            return space
        return MixtureSpace(space.domains, floors=floors, caps=space.caps)

    def design(self, space: MixtureSpace, n: int) -> np.ndarray:
        """(n, k): the entropy mixtures, the uniform mixture (space.center), then interior Sobol points
        for `seed`. Prefix-stable."""
        head = np.vstack([self.entropy_mixtures(space), space.center[None]])
        if n <= len(head):
            return head[:n]
        return np.vstack([head, self._interior(space).sample(n - len(head), method="sobol", seed=self.seed)])

    def candidates(self, space: MixtureSpace) -> np.ndarray:
        return self._interior(space).sample(N_CANDIDATES, method="sobol", seed=self.seed + 2)

    # -- fit ------------------------------------------------------------------------------------
    def suggest(self, history: History, n: int = 1):
        if history.completed:  # a study the method cannot model fails at its first result, not at n0
            self._modelled(history)
        return super().suggest(history, n)

    def _modelled(self, history: History) -> list[str]:
        names = history.objective.required(history.completed[0].losses)
        orphans = [name for name in names if name not in history.space.domains]
        if orphans:
            raise ConfigError(
                f"bimix models each loss as a function of its own training domain's weight; the objective "
                f"reads losses {orphans} that have no training domain of that name (training domains: "
                f"{list(history.space.domains)}). Restrict the objective to modelled losses "
                f"(objective domains=[...]) or use another method")
        return names

    def fit(self, history: History) -> Law:
        """Fit each modelled domain's law (curves when available), then the KKT optimum.

        A domain with fewer than two distinct weights >= min_weight among the completed trials has
        no power law to fit: during the design that raises LawFitError (the design goes on); after
        it, the domain gets the flattest law allowed (alpha = alpha_min, K from its mean loss), so
        the optimum gives it little beyond its lower bound, and Law.params["flat"] names it. Without
        this a sparse pool kept BiMix designing forever: on the synthetic 64-domain swarm one domain
        has a weight >= 1e-3 in a single run of 512, and BiMix never fitted in 50 of 50 studies.
        """
        space, objective = history.space, history.objective
        names, L = loss_matrix(history)
        self._modelled(history)
        X = history.X()
        cols = [space.index(name) for name in names]
        K, alpha, info = np.empty(len(names)), np.empty(len(names)), {}
        designing = len(history.trials) < self.design_size(space)
        flat = []
        for j, (name, col) in enumerate(zip(names, cols)):
            keep = X[:, col] >= self.min_weight
            r = X[keep, col]
            if len(r) < 2 or np.ptp(np.log(r)) < 1e-9:
                if designing:
                    raise LawFitError(f"bimix needs two distinct weights >= {self.min_weight} of domain {name!r} "
                                      f"to fit its law, got {np.unique(r).round(6).tolist()}")
                # after the design: nothing to fit a power law to, so the flattest law it allows
                flat.append(name)
                K[j], alpha[j] = math.exp(np.mean(np.log(L[:, j]) + self.alpha_min * np.log(
                    np.maximum(X[:, col], self.min_weight)))), self.alpha_min
                info[name] = {"form": "flat", "weights": np.unique(r).round(6).tolist()}
                continue
            curves = self._curve_data(history, keep, name, L[:, j]) if self.use_curves else None
            if curves is not None:
                K[j], alpha[j], info[name] = self._fit_curves(curves, j)
            else:
                K[j], alpha[j] = _ols(np.log(r), np.log(L[keep, j]))
                info[name] = {"form": "fixed_step"}
        clamped = (alpha <= self.alpha_min) & np.array([info[name]["form"] != "flat" for name in names])
        alpha = np.where(clamped, self.alpha_min, alpha)
        for j, name in enumerate(names):  # refit K at the clamped alpha (fixed-step data)
            if clamped[j] and info[name]["form"] == "fixed_step":
                keep = X[:, cols[j]] >= self.min_weight
                K[j] = math.exp(np.mean(np.log(L[keep, j]) + alpha[j] * np.log(X[keep, cols[j]])))

        def predict(Xp):
            r = np.maximum(np.asarray(Xp, dtype=float)[:, cols], 1e-12)
            return objective.of_rows(names, K * r ** -alpha)

        x = self.optimum(space, objective, names, K, alpha)
        params = {"K": dict(zip(names, K.tolist())), "alpha": dict(zip(names, alpha.tolist())),
                  "alpha_clamped": int(clamped.sum()), "flat": flat, "fits": info}
        return Law(predict, params, x, float(predict(x[None])[0]))

    def _curve_data(self, history: History, keep: np.ndarray, name: str, final: np.ndarray):
        """(n, 3) rows (r, s, L) from the loss curves of the kept trials, or None when too few to fit
        the full law (needs >= 2 distinct weights and >= 3 distinct steps). A kept trial without a
        curve adds its final loss `final` at the last step seen, S (every trial runs S steps)."""
        rows, bare = [], []
        for trial, ok, last in zip(history.completed, keep, final):
            if not ok:
                continue
            r = trial.weights[name]
            if trial.curves and trial.curves.get(name):
                rows += [(r, float(s), float(v)) for s, v in trial.curves[name] if s > 0 and v > 0]
            else:
                bare.append((r, last))
        if not rows:
            return None
        S = max(s for _, s, _ in rows)
        data = np.array(rows + [(r, S, v) for r, v in bare])
        if len(np.unique(data[:, 0])) < 2 or len(np.unique(data[:, 1])) < 3:
            return None
        return data

    def _fit_curves(self, data: np.ndarray, j: int) -> tuple[float, float, dict]:
        """Fit log L = -alpha log r + log(B s^-beta + C) (A = 1) by TRF least squares, soft_l1 on log
        residuals, N_RESTARTS seeded starts; returns (K at the last step S, alpha, fitted params)."""
        from scipy.optimize import least_squares

        log_r, s, log_l = np.log(data[:, 0]), data[:, 1], np.log(data[:, 2])
        S = float(s.max())
        last = s == S
        alpha0 = _ols(log_r[last], log_l[last])[1] if len(np.unique(log_r[last])) > 1 else 0.05
        alpha0 = min(max(alpha0, 0.01), 2.0)
        base = np.exp(log_l + alpha0 * log_r)  # L r^alpha: the step part B s^-beta + C
        rng = np.random.default_rng([self.seed, j])

        def residuals(p):
            a, log_b, beta, log_c = p
            return -a * log_r + np.logaddexp(log_b - beta * np.log(s), log_c) - log_l

        best = None
        for i in range(N_RESTARTS):
            beta0 = 0.5 if i == 0 else rng.uniform(0.1, 1.5)
            a0 = alpha0 if i == 0 else alpha0 * rng.uniform(0.5, 1.5)
            c0 = (0.8 if i == 0 else rng.uniform(0.5, 0.95)) * base.min()
            excess = np.maximum(base - c0, 1e-6 * c0)
            b0 = float(np.exp(np.mean(np.log(excess) + beta0 * np.log(s))))
            p0 = np.array([a0, math.log(b0), beta0, math.log(c0)])
            lo, hi = np.array([0.0, -50.0, 0.0, -50.0]), np.array([5.0, 50.0, 5.0, 50.0])
            fit = least_squares(residuals, np.clip(p0, lo + 1e-9, hi - 1e-9), bounds=(lo, hi), method="trf",
                                loss="soft_l1", f_scale=SOFT_L1_SCALE)
            if best is None or fit.cost < best.cost:
                best = fit
        a, log_b, beta, log_c = best.x
        K = math.exp(np.logaddexp(log_b - beta * math.log(S), log_c))
        return K, float(a), {"form": "curves", "A": 1.0, "B": math.exp(log_b), "C": math.exp(log_c),
                             "alpha": float(a), "beta": float(beta), "final_step": S, "n_points": len(s)}

    # -- optimum --------------------------------------------------------------------------------
    def bounds(self, space: MixtureSpace) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) the optimum keeps to: floors raised to min_weight (where caps and the sum allow)."""
        lo = np.minimum(np.maximum(space.floors, self.min_weight), space.caps)
        return (lo if lo.sum() <= 1 else space.floors.copy()), space.caps.copy()

    def optimum(self, space: MixtureSpace, objective, names: list[str], K: np.ndarray,
                alpha: np.ndarray) -> np.ndarray:
        """The exact minimiser over the space of the objective composed from L_name = K r^-alpha.

        names: the modelled losses (training domain names); K, alpha: (m,) in `names` order.
        Returns (k,) in space.domains order.
        """
        lo, hi = self.bounds(space)
        cols = np.array([space.index(name) for name in names], dtype=int)
        w = objective.linear_weights(names)
        if w is None:  # "worst": not a linear combination of the losses
            return _minimax(lo, hi, cols, K, alpha)
        return _kkt(lo, hi, cols, w * K, alpha)


def _ols(log_r: np.ndarray, log_l: np.ndarray) -> tuple[float, float]:
    """OLS of log L = log K - alpha log r: returns (K, alpha)."""
    slope, intercept = np.polyfit(log_r, log_l, 1)
    return math.exp(intercept), float(-slope)


def _fill(r: np.ndarray, lo: np.ndarray, hi: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Spread the mass 1 - sum(r) over the `free` coordinates (all, if they have no room) in
    proportion to their room."""
    left = 1.0 - r.sum()
    for where in (free, np.ones(len(r), bool)):
        room = np.where(where, (hi - r) if left > 0 else (r - lo), 0.0)
        if room.sum() > 0:
            return np.clip(r + left * room / room.sum(), lo, hi)
    return r


def _root(h, lo_t: float, hi_t: float) -> float:
    """The root of the decreasing function h on [lo_t, hi_t] (Brent), widening the bracket if needed."""
    from scipy.optimize import brentq

    for _ in range(100):
        if h(lo_t) >= 0 and h(hi_t) <= 0:
            break
        lo_t, hi_t = lo_t - 10.0, hi_t + 10.0
    else:
        raise LawFitError(f"bimix could not bracket the optimum's multiplier on [{lo_t:.3g}, {hi_t:.3g}]")
    return brentq(h, lo_t, hi_t, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=500)


def _kkt(lo, hi, cols, c, alpha) -> np.ndarray:
    """argmin sum_j c_j r_{cols_j}^-alpha_j s.t. sum r = 1, lo <= r <= hi (c >= 0, alpha > 0).

    r_i(lam) = clip((alpha c / lam)^(1/(1+alpha)), lo, hi) for modelled i, lo for the rest; lam
    in log space by Brent. If even every modelled domain at its cap leaves mass over, that mass goes
    to the unmodelled domains (the law is indifferent to it).
    """
    active = c > 0
    cols, c, alpha = cols[active], c[active], alpha[active]
    r = lo.copy()
    if len(cols) == 0:
        return _fill(r, lo, hi, np.ones(len(lo), bool))

    def at(t):
        x = r.copy()
        x[cols] = np.clip(np.exp((np.log(alpha * c) - t) / (1 + alpha)), lo[cols], hi[cols])
        return x

    full = r.copy()
    full[cols] = hi[cols]
    if full.sum() <= 1.0:  # every modelled domain capped: the rest gets what is left
        free = np.ones(len(lo), bool)
        free[cols] = False
        return _fill(full, lo, hi, free)
    g = np.log(alpha * c)
    t = _root(lambda t: at(t).sum() - 1.0, float((g - (1 + alpha) * np.log(hi[cols])).min()) - 1.0,
              float((g - (1 + alpha) * np.log(np.maximum(lo[cols], 1e-300))).max()) + 1.0)
    return _fill(at(t), lo, hi, np.ones(len(lo), bool))


def _minimax(lo, hi, cols, K, alpha) -> np.ndarray:
    """argmin max_j K_j r_{cols_j}^-alpha_j s.t. sum r = 1, lo <= r <= hi.

    Every modelled loss is decreasing in its own weight, so the optimum gives each domain just the
    weight that brings its loss down to the common level t: r_i(t) = clip((K_i/t)^(1/alpha_i), lo, hi),
    the smallest t whose weights fit in a total of 1 (Brent on log t). Mass left over goes to every
    domain in proportion to its room (it can only lower losses).
    """
    r = lo.copy()

    def at(log_t):
        x = r.copy()
        x[cols] = np.clip(np.exp((np.log(K) - log_t) / alpha), lo[cols], hi[cols])
        return x

    # the level cannot go below the largest loss any domain has at its cap
    floor_t = float((np.log(K) - alpha * np.log(hi[cols])).max())
    if at(floor_t).sum() <= 1.0:
        log_t = floor_t
    else:
        top = float((np.log(K) - alpha * np.log(np.maximum(lo[cols], 1e-300))).max()) + 1.0
        log_t = _root(lambda u: at(u).sum() - 1.0, floor_t, top)
    return _fill(at(log_t), lo, hi, np.ones(len(lo), bool))
