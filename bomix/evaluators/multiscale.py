"""A landscape at several model scales: the same mixtures, cheaper and noisier guides to the target.

The "multiscale" family (`landscape("multiscale", k=5, scales={"1m": 1, "60m": 60})`) is Ye et
al.'s data mixing law, one validation loss per training domain (home domain i), whose parameters
move with the scale s:

    L_i(r; s) = c_i - DROP * u_s + k_i(s) * exp(sum_j t_ij(s) r_j)
    p(s)      = p_0 + SHIFT * u_s * (sym(p_0) - p_0) + TWIST * u_s * e_p     for p = k, t
    u_s       = log(cost_s / cost_min) / log(cost_max / cost_min)  in [0, 1] (0 with one scale)

sym(p) is the symmetric version of p: every k_i replaced by their mean, every diagonal t_ii by the
diagonal's mean and every off-diagonal t_ij by the off-diagonal mean; e_p ~ N(0, 1) (times the
parameter's spread) is a scale-specific twist. Base parameters as in MixingLaw: c_i ~ U[2, 4],
k_i ~ U[0.5, 2], t_ii = -k U[0.8, 1.6], t_ij ~ U[-0.8, 0.4].

What this reproduces, as the seed study saw between 25M and 125M proxies: larger models are
better everywhere (the DROP), the domains' differences shrink with scale, so the optimum drifts
towards the uniform mixture and uniform gains (its regret falls; the symmetric law's optimum is
exactly uniform), and the drift and the twist mean that rankings at the cheap scale correlate with the
target's but not perfectly (Spearman 0.88-0.97 over random mixtures at k = 5, seeds 0-5).

The target scale (`scale`, default the costliest) is what `true_loss_matrix`, `optimum`,
`optimal_value` and `regret` refer to: a benchmark's regret is at the target. `evaluate` runs at
the trial's fidelity (TrialContext.fidelity; None: the target) and reports its relative cost as
cost["compute"]. `at(name)` is the same landscape with another target (e.g. its optimum at 1m).
With fixed=True it is a single-fidelity test function at `scale` alone (it declares no
fidelities, so an ordinary study runs it): `landscape("multiscale", scale="1m", fixed=True)`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np

from bomix.errors import ConfigError
from bomix.evaluators.base import TrialContext
from bomix.evaluators.landscapes import Landscape, _check_k, _domain_names, _param_rng
from bomix.fidelity import check_fidelities, check_fidelity
from bomix.trial import Evaluation

DEFAULT_SCALES = {"1m": 1.0, "60m": 60.0}  # relative cost = parameters x tokens (both at 1B tokens)


class MultiScale(Landscape):
    """A mixing law whose parameters move with model scale (see the module docstring).

    k: number of domains (>= 2). domains: their names, default d0..d{k-1}.
    scales: {name: relative cost > 0}, at least one (default {"1m": 1, "60m": 60}).
    scale: the target scale, one of `scales` (default the costliest).
    fixed: evaluate at `scale` only and declare no fidelities (a single-fidelity landscape).
    Attributes: c_ (k,); k0_ (k,), t0_ (k, k) the smallest scale's law; costs ({scale: cost});
    fidelities, target_fidelity (`costs` and `scale`, or None when fixed).
    """

    family = "multiscale"
    DROP = 0.3    # nats/token every loss falls from the smallest scale to the largest
    SHIFT = 0.6   # share of the way to the symmetric law the largest scale goes
    TWIST = 0.25  # scale-specific change of each parameter at the largest scale, in its own spread

    def __init__(self, *, k: int = 5, domains=None, scales: Mapping[str, float] | None = None,
                 scale: str | None = None, fixed: bool = False, seed: int = 0, noise_sd: float = 0.0,
                 sleep_s: float = 0.0, objective="mean"):
        self.k = k
        self.scales = scales
        self.scale = scale
        self.fixed = fixed
        if not isinstance(fixed, bool):
            raise ConfigError(f"fixed must be true or false, got {fixed!r}")
        super().__init__(domains=_domain_names(_check_k(k), domains), seed=seed, noise_sd=noise_sd,
                         sleep_s=sleep_s, objective=objective)
        self.costs, self._target = check_fidelities(dict(DEFAULT_SCALES if scales is None else scales), scale)
        self.fidelities = None if fixed else self.costs
        self.target_fidelity = None if fixed else self._target
        rng = _param_rng(seed)
        self.c_ = rng.uniform(2.0, 4.0, k)
        self.k0_ = rng.uniform(0.5, 2.0, k)
        self.t0_ = rng.uniform(-0.8, 0.4, (k, k))
        self.t0_[np.arange(k), np.arange(k)] = -k * rng.uniform(0.8, 1.6, k)
        self._twist_k = rng.standard_normal(k) * self.k0_.std()
        self._twist_t = rng.standard_normal((k, k)) * 0.4
        np.fill_diagonal(self._twist_t, rng.standard_normal(k) * np.diag(self.t0_).std())
        self._laws = {name: self._law(self.position(name)) for name in self.costs}

    def position(self, name: str) -> float:
        """u_s in [0, 1]: where scale `name` sits between the cheapest (0) and costliest (1), in log cost."""
        check_fidelity(name, self.costs, what="scale")
        costs = self.costs.values()
        lo, hi = min(costs), max(costs)
        return 0.0 if hi == lo else math.log(self.costs[name] / lo) / math.log(hi / lo)

    def _law(self, u: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(level (k,), amplitudes (k,), transfers (k, k)) of the law at position u."""
        k = self.k
        diag = np.eye(k, dtype=bool)
        sym_t = np.where(diag, np.diag(self.t0_).mean(), self.t0_[~diag].mean())
        amp = self.k0_ + self.SHIFT * u * (self.k0_.mean() - self.k0_) + self.TWIST * u * self._twist_k
        t = self.t0_ + self.SHIFT * u * (sym_t - self.t0_) + self.TWIST * u * self._twist_t
        return self.c_ - self.DROP * u, np.maximum(amp, 0.05), t

    def loss_matrix_at(self, x: np.ndarray, scale: str) -> np.ndarray:
        """(n, k) noise-free losses, nats/token, of the (n, k) mixtures x at scale `scale`."""
        check_fidelity(scale, self.costs, what="scale")
        level, amp, t = self._laws[scale]
        return level + amp * np.exp(np.asarray(x, dtype=float) @ t.T)

    def true_loss_matrix(self, x: np.ndarray) -> np.ndarray:
        return self.loss_matrix_at(x, self._target)

    def at(self, scale: str) -> MultiScale:
        """The same landscape (same seed, same laws) with `scale` as its target."""
        params = {k: v for k, v in self.get_params().items() if k != "name"}
        return type(self)(**{**params, "scale": check_fidelity(scale, self.costs, what="scale")})

    def evaluate(self, weights: Mapping[str, float], context: TrialContext | None = None) -> Evaluation:
        """Noisy losses at the trial's fidelity (context.fidelity; None: the target scale; fixed:
        `scale` only), with cost {"seconds": wall time, "compute": the scale's relative cost}."""
        start = time.perf_counter()
        scale = check_fidelity(getattr(context, "fidelity", None), self.fidelities) or self._target
        x = self._space.clean(weights)
        if self.sleep_s:
            time.sleep(self.sleep_s)
        rng = self._rng if context is None else np.random.default_rng([self.seed, context.seed])
        losses = self.loss_matrix_at(x[None], scale)[0] + self._noise(rng)
        return Evaluation(losses=dict(zip(self.loss_names, losses.tolist())),
                          cost={"seconds": time.perf_counter() - start, "compute": self.costs[scale]})

    def get_params(self) -> dict:
        params = super().get_params()
        if isinstance(params.get("scales"), Mapping):
            params["scales"] = dict(params["scales"])
        return params


if __name__ == "__main__":  # pragma: no cover - a quick look: python -m bomix.evaluators.multiscale
    land = MultiScale()
    for name in land.costs:
        x, v = land.at(name).optimum_in()
        print(name, np.round(x, 3), round(v, 4), "uniform regret", round(land.at(name).regret(land._space.center), 4))
