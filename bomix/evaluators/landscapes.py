"""Analytic test landscapes: cheap evaluators that know their optimum, so benchmarks report regret.

A landscape maps a mixture r (k training-domain weights on the simplex) to noise-free validation
losses L_i(r), in nats/token, one per validation domain (`loss_names`, the training domains unless
a family says otherwise). `evaluate` adds seeded noise; `true_losses`, `true_value` and
`optimum_in` give the noise-free truth.

Families, by name (`landscape(name, **params)`, or `get_evaluator("landscape", name=..., ...)`):
    "mixing_law"   Ye et al.'s data mixing law L_i = c_i + k_i exp(sum_j t_ij r_j), random parameters.
    "interaction"  log barriers, pairwise products and waves: interactions no mixing law captures.
    "seedlike"     5 domains calibrated to the seed study (uniform 4.466, best 4.35, LLaMA-like 4.68).
    "bimix_law"    BiMix's law A_i r_i^-alpha_i (B_i s^-beta_i + C_i), random parameters, with loss curves.
    "multiscale"   a mixing law at several model scales (fidelities) whose optimum drifts with scale
                   (bomix.evaluators.multiscale).

Noise model. `noise_sd` is the standard deviation of the MEAN loss over the m validation domains
(the seed study's seed-to-seed sd of 0.017 is of the mean). Per-domain noise is
    eps_i = sigma * (sqrt(rho) z_0 + sqrt(1 - rho) z_i),   z ~ N(0, 1) iid,   rho = NOISE_CORRELATION,
a shared component plus a domain-specific one, so any two domains correlate by rho, with
sigma = noise_sd / sqrt(rho + (1 - rho) / m) making sd(mean_i eps_i) exactly noise_sd.
With a TrialContext the draw comes from default_rng([seed, context.seed]): the same trial seed gives
the same noisy losses (resume relies on this), whatever the mixture. Without one it comes from a
per-instance generator seeded from `seed`, so repeated calls differ.
"""

from __future__ import annotations

import json
import math
import time
from abc import abstractmethod
from collections.abc import Mapping

import numpy as np

from bomix import registry
from bomix.errors import ConfigError, InvalidSpaceError
from bomix.evaluators.base import Evaluator, TrialContext
from bomix.objective import Objective
from bomix.space import MixtureSpace
from bomix.trial import Evaluation

LANDSCAPES: dict[str, str] = {
    "mixing_law": "bomix.evaluators.landscapes:MixingLaw",
    "interaction": "bomix.evaluators.landscapes:Interaction",
    "seedlike": "bomix.evaluators.landscapes:SeedLike",
    "bimix_law": "bomix.evaluators.landscapes:BiMixLaw",
    "multiscale": "bomix.evaluators.multiscale:MultiScale",
}

NOISE_CORRELATION = 0.5  # rho: correlation of the noise of any two validation domains
N_SCREEN = 512  # feasible Sobol points scored before the local searches of `optimum_in`
N_STARTS = 8  # SLSQP starts besides the space's center: the best screened points
_PARAMS_STREAM, _NOISE_STREAM = 0, 1  # SeedSequence spawn keys: parameter draws vs context-free noise


def landscape(name: str = "seedlike", **params) -> Landscape:
    """Build the landscape family `name` with its keyword `params`.

    Unknown names raise UnknownNameError listing the families; unknown parameters raise ConfigError.
    """
    return registry.build(LANDSCAPES, "landscape", name, params)


def _param_rng(seed: int) -> np.random.Generator:
    """The generator a family draws its random parameters from (apart from every noise stream)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_PARAMS_STREAM,)))


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ConfigError(f"k (the number of domains) must be an integer >= 2, got {k!r}")
    return int(k)


def _domain_names(k: int, domains) -> tuple[str, ...]:
    """`domains` as a tuple of k names, or d0..d{k-1} when None."""
    if domains is None:
        return tuple(f"d{i}" for i in range(k))
    names = [domains] if isinstance(domains, str) else list(domains)
    if len(names) != k:
        raise ConfigError(f"domains must name k={k} domains (or pass k={len(names)}), got {len(names)}: {names}")
    return tuple(names)


class Landscape(Evaluator):
    """Base class of the analytic landscapes. One required method, `true_loss_matrix`.

    Subclass constructors are keyword-only and store their arguments unchanged as same-named
    attributes (so `get_params` rebuilds them), then call this constructor with the training
    `domains` and the shared arguments:

    seed: draws a family's random parameters and seeds the noise (integer >= 0).
    noise_sd: sd of the noisy mean loss over the validation domains, nats/token (>= 0).
    sleep_s: seconds `evaluate` sleeps first, emulating a trial's duration for runner and kill
        tests (>= 0). A landscape is a test function, not a trainer.
    objective: what `optimum`, `optimal_value` and `true_value` minimise by default
        (anything `Objective.parse` reads: "mean", "worst", "target:NAME", a dict).
    """

    name = "landscape"
    family = ""  # the name the family is registered under in LANDSCAPES

    def __init__(self, *, domains, seed: int = 0, noise_sd: float = 0.0, sleep_s: float = 0.0,
                 objective="mean"):
        try:
            self._space = MixtureSpace(domains)
        except InvalidSpaceError as e:
            raise ConfigError(f"landscape domains must be at least 2 unique names: {e}") from e
        self.domains: tuple[str, ...] = self._space.domains
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
        for what, value in (("noise_sd", noise_sd), ("sleep_s", sleep_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{what} must be a finite number >= 0, got {value!r}")
        self.seed = seed
        self.noise_sd = noise_sd
        self.sleep_s = sleep_s
        self.objective = objective
        self._check_objective(objective)
        self._rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_NOISE_STREAM,)))
        self._optima: dict[tuple[str, str], tuple[np.ndarray, float]] = {}

    # -- the one required method --------------------------------------------------------------
    @abstractmethod
    def true_loss_matrix(self, x: np.ndarray) -> np.ndarray:
        """Noise-free losses of many mixtures, vectorised and unchecked (for optimisers and tests).

        x: (n, k) array, rows mixtures in `domains` order, assumed feasible.
        Returns an (n, m) array of losses in nats/token, columns in `loss_names` order.
        """

    @property
    def loss_names(self) -> tuple[str, ...]:
        """The validation domains losses are reported for, in column order (default: `domains`)."""
        return self.domains

    # -- the truth ----------------------------------------------------------------------------
    def true_losses(self, weights) -> dict[str, float]:
        """Noise-free per-domain losses {name: nats/token} of one mixture.

        weights: {domain: weight} or a sequence in `domains` order, on the simplex (else
        InvalidWeightsError).
        """
        x = self._space.clean(weights)
        return dict(zip(self.loss_names, self.true_loss_matrix(x[None])[0].tolist()))

    def true_value(self, weights, objective=None) -> float:
        """The noise-free objective (default `self.objective`) of one mixture, nats/token."""
        objective = self._check_objective(self.objective if objective is None else objective)
        return float(objective(self.true_losses(weights)))

    def optimum_in(self, space: MixtureSpace | None = None, objective=None) -> tuple[np.ndarray, float]:
        """The best feasible mixture of `space` and its noise-free objective value.

        space: a MixtureSpace over exactly `domains` (floors and caps respected); default the
            full simplex. objective: default `self.objective`.
        Returns ((k,) array in `domains` order, value in nats/token). Deterministic and cached per
        (space, objective): multi-start SLSQP with sum(r) = 1 and bounds [floor, cap], started at
        space.center and at the best of N_SCREEN Sobol points; "worst" is solved in epigraph form
        (min s subject to L_i(r) <= s).
        """
        space = self._space if space is None else space
        if not isinstance(space, MixtureSpace) or space.domains != self.domains:
            got = space.domains if isinstance(space, MixtureSpace) else space
            raise ConfigError(
                f"space must be a MixtureSpace over the landscape's domains {list(self.domains)}, got {got!r}"
            )
        objective = self._check_objective(self.objective if objective is None else objective)
        key = (json.dumps(space.to_dict()), json.dumps(objective.to_dict(), sort_keys=True))
        if key not in self._optima:
            self._optima[key] = self._minimize(space, objective)
        x, value = self._optima[key]
        return x.copy(), value

    @property
    def optimum(self) -> dict[str, float]:
        """The best mixture {domain: weight} over the full simplex for `self.objective`."""
        return self._space.to_mixture(self.optimum_in()[0])

    @property
    def optimal_value(self) -> float:
        """The noise-free objective value at `optimum`, nats/token."""
        return self.optimum_in()[1]

    def regret(self, weights, space: MixtureSpace | None = None, objective=None) -> float:
        """true_value(weights) - the optimum's value over `space` (default the full simplex), >= 0."""
        return self.true_value(weights, objective) - self.optimum_in(space, objective)[1]

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, weights: Mapping[str, float], context: TrialContext | None = None) -> Evaluation:
        """Noisy per-domain losses of one mixture (see the module docstring for the noise model).

        Sleeps `sleep_s` seconds first; cost={"seconds": wall time including the sleep}.
        """
        start = time.perf_counter()
        x = self._space.clean(weights)
        if self.sleep_s:
            time.sleep(self.sleep_s)
        rng = self._rng if context is None else np.random.default_rng([self.seed, context.seed])
        losses = self.true_loss_matrix(x[None])[0] + self._noise(rng)
        curves = self._curves(x, losses, rng)
        return Evaluation(losses=dict(zip(self.loss_names, losses.tolist())),
                          cost={"seconds": time.perf_counter() - start}, curves=curves)

    def _curves(self, x: np.ndarray, losses: np.ndarray, rng: np.random.Generator) -> dict | None:
        """Loss curves to return with the final `losses` (drawing any further noise from `rng`); none here."""
        return None

    def _noise(self, rng: np.random.Generator) -> np.ndarray:
        """(m,) correlated noise whose mean over the m validation domains has sd `noise_sd`."""
        m, rho = len(self.loss_names), NOISE_CORRELATION
        z_shared, z_own = rng.standard_normal(), rng.standard_normal(m)
        sigma = self.noise_sd / math.sqrt(rho + (1 - rho) / m)
        return sigma * (math.sqrt(rho) * z_shared + math.sqrt(1 - rho) * z_own)

    def get_params(self) -> dict:
        """Constructor arguments plus the family `name`: get_evaluator("landscape", **params) rebuilds it."""
        return {"name": self.family, **super().get_params()}

    # -- internals ----------------------------------------------------------------------------
    def _check_objective(self, spec) -> Objective:
        objective = Objective.parse(spec)
        missing = [n for n in objective.required(dict.fromkeys(self.loss_names)) if n not in self.loss_names]
        if missing:
            raise ConfigError(
                f"the objective may only read losses this landscape reports, {list(self.loss_names)}; "
                f"{objective!r} reads {missing}"
            )
        return objective

    def _values(self, x: np.ndarray, objective: Objective) -> np.ndarray:
        """(n,) objective values of the (n, k) mixtures x."""
        return np.array([objective(dict(zip(self.loss_names, row))) for row in self.true_loss_matrix(x).tolist()])

    def _minimize(self, space: MixtureSpace, objective: Objective) -> tuple[np.ndarray, float]:
        """Multi-start SLSQP over z = r, or z = (r, s) in epigraph form for "worst"; see optimum_in."""
        from scipy.optimize import minimize

        screen = np.vstack([space.center, space.sample(N_SCREEN, method="sobol", seed=0)])
        order = np.argsort(self._values(screen, objective), kind="stable")
        starts = screen[np.unique(np.r_[0, order[:N_STARTS]])]  # row 0 is the center
        k, bounds = space.k, list(zip(space.floors, space.caps))
        options = {"ftol": 1e-12, "maxiter": 500}
        on_simplex = {"type": "eq", "fun": lambda z: z[:k].sum() - 1.0,
                      "jac": lambda z: np.r_[np.ones(k), np.zeros(len(z) - k)]}
        if objective.kind == "worst":  # min s  s.t.  s - L_i(r) >= 0 for every loss the objective reads
            cols = [self.loss_names.index(n) for n in objective.required(dict.fromkeys(self.loss_names))]
            below = {"type": "ineq", "fun": lambda z: z[k] - self.true_loss_matrix(z[None, :k])[0, cols]}

            def search(x0):
                z0 = np.r_[x0, self.true_loss_matrix(x0[None])[0, cols].max()]
                return minimize(lambda z: z[k], z0, jac=lambda z: np.r_[np.zeros(k), 1.0], method="SLSQP",
                                bounds=bounds + [(None, None)], constraints=[on_simplex, below], options=options)
        else:
            def search(x0):
                return minimize(lambda x: self._values(x[None], objective)[0], x0, method="SLSQP",
                                bounds=bounds, constraints=[on_simplex], options=options)

        best_x, best_value = starts[0], float(self._values(starts[:1], objective)[0])
        for x0 in starts:
            z = search(x0).x
            if not np.all(np.isfinite(z)):
                continue
            x = space.project(z[:k])
            value = float(self._values(x[None], objective)[0])
            if value < best_value:
                best_x, best_value = x, value
        return best_x, best_value


# -- the families --------------------------------------------------------------------------------
# Parameter arrays carry a trailing underscore (scikit-learn's mark for derived attributes), rows
# indexed by validation domain i, columns by training domain j.


class MixingLaw(Landscape):
    """Ye et al.'s data mixing law (arXiv:2403.16952, Eq. 7), one per validation metric:

        L_i(r) = c_i + k_i * exp(sum_j t_ij r_j)

    with parameters drawn from `seed`: c_i ~ U[2, 4] and k_i ~ U[0.5, 2] nats/token; each metric i
    has a home domain h(i) = i mod k with t_{i,h(i)} ~ -k * U[0.8, 1.6] (a domain's own data helps
    it most, with diminishing returns; scaled with k so that at its uniform share 1/k a domain sits
    at exp(-0.8 .. -1.6)); every other t_ij ~ U[-0.8, 0.4] (smaller transfers of either sign). The
    mean loss is convex, and its optimum is interior for most seeds (about 9 in 10 for k = 5 to 20).
    Baselines that fit this law can be checked against c_, k_ and t_.

    k: number of domains (>= 2). domains: their names, default d0..d{k-1}.
    metrics: number of validation metrics m (None: one per domain, named after the domains; an
        integer >= 1: named m0..m{m-1}), e.g. 110 for an olmix-sized task suite.
    Attributes: c_ (m,), k_ (m,), t_ (m, k).
    """

    family = "mixing_law"

    def __init__(self, *, k: int = 10, domains=None, seed: int = 0, noise_sd: float = 0.0,
                 sleep_s: float = 0.0, objective="mean", metrics: int | None = None):
        self.k = k
        self.metrics = metrics
        if metrics is not None and (isinstance(metrics, bool) or not isinstance(metrics, (int, np.integer))
                                    or metrics < 1):
            raise ConfigError(f"metrics must be an integer >= 1 or None, got {metrics!r}")
        self._names = None if metrics is None else tuple(f"m{i}" for i in range(metrics))
        super().__init__(domains=_domain_names(_check_k(k), domains), seed=seed, noise_sd=noise_sd,
                         sleep_s=sleep_s, objective=objective)
        m = k if metrics is None else int(metrics)
        rng = _param_rng(seed)
        self.c_ = rng.uniform(2.0, 4.0, m)
        self.k_ = rng.uniform(0.5, 2.0, m)
        self.t_ = rng.uniform(-0.8, 0.4, (m, k))
        self.t_[np.arange(m), np.arange(m) % k] = -k * rng.uniform(0.8, 1.6, m)

    @property
    def loss_names(self) -> tuple[str, ...]:
        return self.domains if self._names is None else self._names

    def true_loss_matrix(self, x: np.ndarray) -> np.ndarray:
        return self.c_ + self.k_ * np.exp(np.asarray(x, dtype=float) @ self.t_.T)


class Interaction(Landscape):
    """Interactions no data mixing law captures, with an interior optimum:

        L_i(r) = c_i - a_i log(r_i + EPS) + sum_j t_ij r_j + r^T Q_i r + h_i sin(w_i r_i + phi_i)

    a log barrier that blows up (to a finite value) as r_i -> 0, linear transfers, pairwise
    products r_j r_l of mixed sign, and a smooth non-monotone wave. Parameters drawn from `seed`:
    c_i ~ U[2.5, 3.5], a_i ~ U[0.2, 0.4], t_ij ~ U[-0.3, 0.3] (t_ii = 0), Q_i symmetric with a
    zero diagonal and entries ~ U[-0.6, 0.6], h_i ~ U[0.03, 0.1], w_i ~ U[2 pi, 4 pi],
    phi_i ~ U[0, 2 pi]. The products and waves make it non-convex (local minima are possible);
    the barriers keep the optimum interior (every weight above about 0.03 for k <= 10).

    k: number of domains (>= 2). domains: their names, default d0..d{k-1}.
    Attributes: c_, a_, h_, w_, phi_ (k,); t_ (k, k); q_ (k, k, k), q_[i] = Q_i.
    """

    family = "interaction"
    EPS = 0.01  # keeps the barrier finite at r_i = 0: -log(EPS) = 4.6

    def __init__(self, *, k: int = 5, domains=None, seed: int = 0, noise_sd: float = 0.0,
                 sleep_s: float = 0.0, objective="mean"):
        self.k = k
        super().__init__(domains=_domain_names(_check_k(k), domains), seed=seed, noise_sd=noise_sd,
                         sleep_s=sleep_s, objective=objective)
        rng = _param_rng(seed)
        self.c_ = rng.uniform(2.5, 3.5, k)
        self.a_ = rng.uniform(0.2, 0.4, k)
        self.t_ = rng.uniform(-0.3, 0.3, (k, k))
        np.fill_diagonal(self.t_, 0.0)
        upper = np.triu(rng.uniform(-0.6, 0.6, (k, k, k)), 1)
        self.q_ = upper + upper.transpose(0, 2, 1)
        self.h_ = rng.uniform(0.03, 0.1, k)
        self.w_ = rng.uniform(2 * np.pi, 4 * np.pi, k)
        self.phi_ = rng.uniform(0.0, 2 * np.pi, k)

    def true_loss_matrix(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return (self.c_ - self.a_ * np.log(x + self.EPS) + x @ self.t_.T
                + np.einsum("nj,ijl,nl->ni", x, self.q_, x) + self.h_ * np.sin(self.w_ * x + self.phi_))


class SeedLike(Landscape):
    """Five domains calibrated to the seed study's 25M-parameter, 500M-token proxy runs:

        L_i(r) = c_i + a_i * (E + s_i)^(-alpha_i),   s = T r  (effective shares)

    T[i, j] is how much a token of training domain j counts as data for validation domain i
    (diagonal 1; cc and reddit help each other most, 0.19-0.22; cc gives pes2o 0.14; stack is
    nearly self-contained, <= 0.09 from any other). Each loss is a power law in its effective share
    that blows up as the share goes to 0 (finite at 0 thanks to E). Not the mixing-law form, nor
    BiMix's (T, c and E differ), so no baseline is handed the true model. Noise-free mean losses:
    uniform 4.466, optimum 4.350 at [0.073, 0.270, 0.364, 0.225, 0.069], LLaMA-like
    [0.0497, 0.7403, 0.0718, 0.0276, 0.1105] 4.680; the seed study's BO and Sobol best mixtures
    4.397 and 4.464 (it measured 4.386 and 4.437, seed-averaged). Its seed-to-seed sd of the mean
    was 0.017: pass noise_sd=0.017 to reproduce it (default 0, noise-free).

    Attributes: c_, a_, alpha_ (5,); t_ (5, 5); e_ (float).
    """

    family = "seedlike"
    DOMAINS = ("books", "cc", "stack", "pes2o", "reddit")
    # Constants solved by experiments/calibrate_seedlike.py (rerun it after changing any of them).
    E = 0.01
    C = (4.20565, 0.99992, 1.0524, 0.998926, 4.4197)
    A = (0.032704, 3.06824, 1.16897, 2.78816, 0.051078)
    ALPHA = (1.0, 0.202002, 0.613661, 0.218651, 1.0)
    T = (
        (1.0, 0.0, 0.0, 0.083264, 0.087042),  # books
        (0.070222, 1.0, 0.054077, 0.10026, 0.222456),  # cc
        (0.044687, 0.088015, 1.0, 0.044754, 0.044716),  # stack
        (0.033342, 0.140242, 0.074555, 1.0, 0.062101),  # pes2o
        (0.043166, 0.192062, 0.008432, 0.059873, 1.0),  # reddit
    )

    def __init__(self, *, seed: int = 0, noise_sd: float = 0.0, sleep_s: float = 0.0, objective="mean"):
        super().__init__(domains=self.DOMAINS, seed=seed, noise_sd=noise_sd, sleep_s=sleep_s, objective=objective)
        self.c_, self.a_, self.alpha_ = (np.array(v, dtype=float) for v in (self.C, self.A, self.ALPHA))
        self.t_ = np.array(self.T, dtype=float)
        self.e_ = float(self.E)

    def true_loss_matrix(self, x: np.ndarray) -> np.ndarray:
        shares = self.e_ + np.asarray(x, dtype=float) @ self.t_.T
        return self.c_ + self.a_ * shares ** -self.alpha_


class BiMixLaw(Landscape):
    """BiMix's bivariate law (Ge et al., arXiv:2405.14908, Eq. 3), one validation domain per
    training domain, each a function of its own weight r_i and the training step s alone:

        L_i(r_i, s) = A_i * r_i^(-alpha_i) * (B_i * s^(-beta_i) + C_i)

    evaluated at the final step s = `steps` (S). Parameters drawn from `seed`: A_i ~ U[0.9, 1.1];
    C_i ~ U[1.8, 2.6] nats/token; alpha_i ~ U[0.03, 0.3]; beta_i ~ U[0.3, 0.7]; B_i such that at
    s = 1000 the reducible term B_i s^(-beta_i) is U[0.15, 0.4] times C_i. Losses at the uniform
    mixture of k = 5 come out around 2.5-5 nats/token. No cross-domain transfer, so the optimum is
    BiMix's KKT point: interior, r_i proportional to about (alpha_i K_i)^(1/(1 + alpha_i)).
    Weights below R_MIN count as R_MIN, so a loss stays finite (and large) at r_i = 0.

    `evaluate` also returns loss curves {name: [(step, loss), ...]} at CURVE_FRACTIONS of S (step
    S is the reported loss itself, noise included; each earlier step gets its own noise draw of
    the same model, after the final one, so the final losses equal what the base noise pattern
    gives). Baselines that fit BiMix can be checked against A_, B_, C_, alpha_, beta_.

    k: number of domains (>= 2). domains: their names, default d0..d{k-1}.
    steps: S, the final training step the losses are reported at (integer >= 8).
    Attributes: A_, B_, C_, alpha_, beta_ (k,).
    """

    family = "bimix_law"
    R_MIN = 1e-4  # weights below this count as this: finite losses on the simplex's faces
    CURVE_FRACTIONS = (1 / 8, 1 / 4, 1 / 2, 1)  # steps of the loss curves, as fractions of S
    REFERENCE_STEP = 1000  # the step B_i is scaled at (fixed, so `steps` does not change the draw)

    def __init__(self, *, k: int = 5, domains=None, seed: int = 0, noise_sd: float = 0.0,
                 sleep_s: float = 0.0, objective="mean", steps: int = 1000):
        self.k = k
        self.steps = steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 8:
            raise ConfigError(f"steps (the final training step S) must be an integer >= 8, got {steps!r}")
        super().__init__(domains=_domain_names(_check_k(k), domains), seed=seed, noise_sd=noise_sd,
                         sleep_s=sleep_s, objective=objective)
        rng = _param_rng(seed)
        self.A_ = rng.uniform(0.9, 1.1, k)
        self.C_ = rng.uniform(1.8, 2.6, k)
        self.alpha_ = rng.uniform(0.03, 0.3, k)
        self.beta_ = rng.uniform(0.3, 0.7, k)
        self.B_ = self.C_ * rng.uniform(0.15, 0.4, k) * float(self.REFERENCE_STEP) ** self.beta_

    @property
    def curve_steps(self) -> tuple[int, ...]:
        """The steps `evaluate` reports curves at, ascending, ending at S."""
        return tuple(sorted({max(1, round(f * self.steps)) for f in self.CURVE_FRACTIONS}))

    def loss_at(self, x: np.ndarray, step) -> np.ndarray:
        """Noise-free losses of the (n, k) mixtures x after `step` training steps: (n, k) nats/token."""
        r = np.maximum(np.asarray(x, dtype=float), self.R_MIN)
        return self.A_ * r ** -self.alpha_ * (self.B_ * float(step) ** -self.beta_ + self.C_)

    def true_loss_matrix(self, x: np.ndarray) -> np.ndarray:
        return self.loss_at(x, self.steps)

    def _curves(self, x: np.ndarray, losses: np.ndarray, rng: np.random.Generator) -> dict:
        """The losses at each of `curve_steps`: the final step's are `losses`, earlier ones get later noise draws."""
        curves = {name: [] for name in self.loss_names}
        for step in self.curve_steps:
            at = losses if step == self.steps else self.loss_at(x[None], step)[0] + self._noise(rng)
            for name, value in zip(self.loss_names, at.tolist()):
                curves[name].append((int(step), value))
        return curves
