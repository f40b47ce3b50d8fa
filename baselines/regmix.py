"""RegMix (Liu et al., arXiv:2407.01492): Dirichlet design, a regressor, simulate-and-average optimum.

The method, as the authors' code runs it (baseline-methods.md section 4):

    design    mixtures drawn from Dirichlet(c * p^T / Z) around the corpus token shares p, with the
              strength c picked among 15 log-spaced values in [0.1, 5]; draws that use a domain for
              more than `max_usage` times its share are rejected, weights below 2e-4 are set to 0.
    fit       a regressor from the mixture to the loss: LightGBM (1000 rounds at rate 0.01) or
              a linear model on the raw weights.
    optimum   draw 100,000 mixtures from Dirichlet(p), predict each, and average the 128 with the
              lowest predictions.

`LawBaseline` adds the fixed-budget protocols ("one_shot": N-1 design trials then the optimum;
"sequential", the default: N/2 design trials, then refit and propose the optimum after each trial).

Deviations from the authors' code, and why:
  * no test-set early stopping: the notebook stops LightGBM on the held-out mixtures (leakage,
    section 4.4); a fixed 1000 rounds is used, with the pre-declared small-data leaves
    (min_child_samples=5, num_leaves=8) unless small_data=False.
  * the design takes draws from one seeded stream in order (so design(m)[:n] == design(n)) instead
    of drawing 100 x n and choosing n at random: the same distribution of distinct draws.
  * design weights are not rounded to multiples of 2e-4 (that only served the YAML configs).
  * floors: a draw d sets the mixture floors + (1 - sum(floors)) * d, so floors hold and the
    authors' sampler is unchanged when there are none. Caps are min(space cap, max_usage * p_i).
  * the simulated mixtures are floors + (1 - sum(floors)) * Dirichlet(p), kept when under the
    space's caps (as olmix filters them, section 4.4); tight caps are filled up with uniform draws.
  * LightGBM predicts the 100,000 simulated mixtures through its distinct leaf regions
    (`_LeafRegions`): the same numbers, about 5x faster than walking 1000 trees per row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from baselines._law import Law, LawBaseline, LawFitError, loss_matrix
from bomix.errors import ConfigError
from bomix.optimizers.base import History
from bomix.space import MixtureSpace

STRENGTHS = np.logspace(math.log10(0.1), math.log10(5.0), 15)  # Dirichlet strengths c of the design
MIN_WEIGHT = 2e-4      # design weights below this are set to 0 (authors: about 100 examples at 1B tokens)
DEDUP_L1 = 1e-5        # design draws this close (L1) to an earlier one are duplicates
BLOCK = 256            # design draws are generated in blocks of this many from one stream
MAX_ATTEMPTS = 2000    # rejected draws in a row before a design point falls back to a Sobol point
MIN_TRIALS = 4         # completed trials the regressor needs
RIDGE = 1e-3           # L2 penalty of the linear model (only matters when it is underdetermined)
N_CANDIDATES = 4096    # size of the fallback candidate pool (at most n_simulations)
SIM_ROUNDS = 4         # rounds of n_simulations Dirichlet draws tried before uniform filling
FAST_ROWS = 2_048      # LightGBM batches at least this large are predicted leaf region by leaf region
REGRESSORS = ("lightgbm", "linear")
TARGETS = ("objective", "per_domain")


class RegMix(LawBaseline):
    """RegMix under a fixed trial budget (see the module docstring).

    seed, protocol, budget, n0, min_distance: as LawBaseline; n0=None means budget // 2, the
        RegMix-seq start of baseline-methods.md section 9.3.
    regressor: "lightgbm" (the paper's choice) or "linear" (least squares on the raw weights, no
        intercept since the weights sum to 1, with a tiny ridge penalty).
    prior: {domain: token share} of the corpus, normalised here; None means the space's prior
        (MixtureSpace.prior, what a benchmark hands every method), else uniform. The design
        centres on it and the simulation draws from Dirichlet(prior). Every domain of the space
        must have a share > 0.
    target: "objective" (default): one regressor on the study's objective value, which is what the
        paper does (one regressor for the metric it optimises) and costs one model per refit and
        per 100,000-point simulation (a suggest takes about 0.4 s with 64 trials). "per_domain":
        one regressor per loss the objective reads, predictions composed by the objective; on the
        real RegMix runs it ranks held-out mixtures better (Spearman 0.97 against 0.90 with 64
        training runs), but costs m times as much with m losses (about 4 s per suggest for the 13
        RegMix losses), so it is an option, not the default; a smaller n_simulations cuts that.
    n_simulations: mixtures drawn from Dirichlet(prior) to search for the optimum (authors: 1e5).
    top_k: how many of the best-predicted simulated mixtures are averaged (authors: 128).
    small_data: LightGBM with min_child_samples=5, num_leaves=8 (the pre-declared small-data
        setting of section 4.4); False uses LightGBM's defaults (20 and 31).
    temperature: the design centres on prior^temperature, renormalised (authors: 0.5).
    max_usage: design caps min(1, max_usage * prior_i), the authors' epoch cap (15).
    """

    name = "regmix"

    def __init__(self, *, seed: int = 0, protocol: str = "sequential", budget: int | None = None, n0: int | None = None,
                 min_distance: float = 0.02, regressor: str = "lightgbm", prior: Mapping[str, float] | None = None,
                 target: str = "objective", n_simulations: int = 100_000, top_k: int = 128,
                 small_data: bool = True, temperature: float = 0.5, max_usage: float = 15):
        super().__init__(seed=seed, protocol=protocol, budget=budget, n0=n0, min_distance=min_distance)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"regmix seed must be an integer >= 0, got {seed!r}")
        if regressor not in REGRESSORS:
            raise ConfigError(f"regmix regressor must be one of {list(REGRESSORS)}, got {regressor!r}")
        if target not in TARGETS:
            raise ConfigError(f"regmix target must be one of {list(TARGETS)}, got {target!r}")
        if prior is not None:
            if not isinstance(prior, Mapping) or not prior:
                raise ConfigError(f"regmix prior must be a dict {{domain: token share}} or None, got {prior!r}")
            bad = {d: v for d, v in prior.items() if not _number(v) or not v > 0}
            if bad:
                raise ConfigError(f"regmix prior shares must be finite numbers > 0, got {bad}")
        for arg, value, lowest in (("n_simulations", n_simulations, 1), ("top_k", top_k, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
                raise ConfigError(f"regmix {arg} must be an integer >= {lowest}, got {value!r}")
        if top_k > n_simulations:
            raise ConfigError(f"regmix top_k must be <= n_simulations ({n_simulations}), got {top_k!r}")
        if not isinstance(small_data, bool):
            raise ConfigError(f"regmix small_data must be True or False, got {small_data!r}")
        if not _number(temperature) or temperature < 0:
            raise ConfigError(f"regmix temperature must be a finite number >= 0, got {temperature!r}")
        if not _number(max_usage) or max_usage <= 0:
            raise ConfigError(f"regmix max_usage must be a finite number > 0, got {max_usage!r}")
        self.regressor = regressor
        self.prior = prior
        self.target = target
        self.n_simulations = n_simulations
        self.top_k = top_k
        self.small_data = small_data
        self.temperature = temperature
        self.max_usage = max_usage

    def default_n0(self, space: MixtureSpace) -> int:
        return (self.budget or 64) // 2

    # -- the prior and the design -------------------------------------------------------------
    def prior_vector(self, space: MixtureSpace) -> np.ndarray:
        """(k,) the normalised prior in space.domains order; ConfigError if it names other domains."""
        if self.prior is None and space.prior is None:
            return np.full(space.k, 1.0 / space.k)
        if self.prior is None:
            if not (space.prior > 0).all():
                zero = [d for d, v in zip(space.domains, space.prior) if v <= 0]
                raise ConfigError(f"regmix needs every domain's prior share > 0 (its design is a Dirichlet around "
                                  f"it), got 0 for {zero}")
            return space.prior.copy()
        unknown = [d for d in self.prior if d not in space.domains]
        missing = [d for d in space.domains if d not in self.prior]
        if unknown or missing:
            raise ConfigError(f"regmix prior must give a share for exactly the space's domains "
                              f"{list(space.domains)}; unknown {unknown}, missing {missing}")
        p = np.array([float(self.prior[d]) for d in space.domains])
        return p / p.sum()

    def design_caps(self, space: MixtureSpace) -> np.ndarray:
        """(k,) design caps: min(space cap, 1, max_usage * prior_i), never below the floors.

        If these caps leave no mixture (they sum to < 1), the space's own caps are used.
        """
        p = self.prior_vector(space)
        hi = np.maximum(np.minimum(space.caps, np.minimum(1.0, self.max_usage * p)), space.floors)
        return hi if hi.sum() >= 1.0 else space.caps.copy()

    def design(self, space: MixtureSpace, n: int) -> np.ndarray:
        """(n, k) the first n design mixtures for `seed`: prefix-stable, feasible, distinct.

        Draws come one by one from a single stream seeded by `seed` and are kept in order. A
        design point for which MAX_ATTEMPTS draws in a row were rejected (caps that Dirichlet draws
        around the prior almost never meet) is the next point of a Sobol sequence on the space.
        """
        p = self.prior_vector(space)
        hi = self.design_caps(space)
        centre = p ** self.temperature
        centre /= centre.sum()
        mass = 1.0 - space.floors.sum()
        rng = np.random.default_rng([self.seed, 0x4E6D])
        out = np.empty((n, space.k))
        got = attempts = fallbacks = 0

        spare = np.empty((0, space.k))  # Sobol fallback points, generated in batches

        def fall_back(count: int) -> None:  # the next `count` Sobol points, as far as n allows
            nonlocal got, fallbacks, spare
            count = min(count, n - got)
            if count > 0:
                if fallbacks + count > len(spare):  # the i-th Sobol point does not depend on the batch
                    spare = space.sample(max(2 * len(spare), fallbacks + count, 16), method="sobol", seed=self.seed)
                out[got:got + count] = spare[fallbacks:fallbacks + count]
                got, fallbacks = got + count, fallbacks + count

        while got < n:
            c = STRENGTHS[rng.integers(len(STRENGTHS), size=BLOCK)]
            d = _dirichlet(rng, c[:, None] * centre[None, :])
            d[d < MIN_WEIGHT] = 0.0
            d /= d.sum(axis=1, keepdims=True)
            X = space.floors + mass * d
            last = -1
            # Walk the block in order; runs of rejected draws are counted, not looped over.
            for i in [*np.flatnonzero(np.all(X <= hi + 1e-12, axis=1)).tolist(), BLOCK]:
                attempts += i - last - 1
                fall_back(attempts // MAX_ATTEMPTS)
                attempts %= MAX_ATTEMPTS
                last = i
                if got == n or i == BLOCK:
                    break
                x = space.clean(np.minimum(X[i], hi))
                attempts += 1
                if got == 0 or np.abs(out[:got] - x).sum(axis=1).min() > DEDUP_L1:
                    out[got], got, attempts = x, got + 1, 0
                elif attempts == MAX_ATTEMPTS:  # a duplicate can be the last straw too
                    fall_back(1)
                    attempts = 0
        return out

    def simulate(self, space: MixtureSpace, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """(n, k) feasible mixtures from Dirichlet(prior), and how many of them are uniform fill.

        Draws are floors + (1 - sum(floors)) * Dirichlet(prior) and kept when under the caps. Rounds
        of n draws go on (SIM_ROUNDS at most) while the rounds left can fill the pool at the rate
        seen; what is still missing (tight caps) is filled with uniform feasible mixtures, so the
        top-k average always picks top_k out of n.
        """
        p = self.prior_vector(space)
        mass = 1.0 - space.floors.sum()
        kept, have = [], 0
        for left in range(SIM_ROUNDS - 1, -1, -1):
            X = space.floors + mass * _dirichlet(rng, np.broadcast_to(p, (n, space.k)))
            X = X[np.all(X <= space.caps + 1e-12, axis=1)]
            kept.append(X[: n - have])
            have += len(kept[-1])
            if have == n or len(X) * left < n - have:
                break
        fill = n - have
        if fill:
            kept.append(space.sample(fill, method="random", seed=int(rng.integers(2**31))))
        return np.vstack(kept), fill

    def candidates(self, space: MixtureSpace) -> np.ndarray:
        """(p, k) simulated mixtures (p = min(n_simulations, N_CANDIDATES)), fixed for the seed."""
        return self.simulate(space, min(self.n_simulations, N_CANDIDATES),
                             np.random.default_rng([self.seed, 0xCA4D]))[0]

    # -- the regression and its optimum -------------------------------------------------------
    def fit(self, history: History) -> Law:
        """Fit the regressor(s) to the completed trials; the optimum is the top-k simulated average."""
        space, done = history.space, history.completed
        if len(done) < MIN_TRIALS:
            raise LawFitError(f"regmix needs at least {MIN_TRIALS} completed trials, got {len(done)}")
        X = history.X()
        if self.target == "per_domain":
            names, Y = loss_matrix(history)
        else:
            names, Y = ["objective"], history.y()[:, None]
        models = [self._fit_one(X, y) for y in Y.T]

        def predict(P: np.ndarray) -> np.ndarray:
            out = np.column_stack([m.predict(P) for m in models])
            return history.objective.of_rows(names, out) if self.target == "per_domain" else out[:, 0]

        rng = np.random.default_rng([self.seed, len(done), 0x5133])
        pool, filled = self.simulate(space, self.n_simulations, rng)
        pred = predict(pool)
        best = np.argsort(pred, kind="stable")[: self.top_k]
        optimum = space.project(pool[best].mean(axis=0))
        params = {"regressor": self.regressor, "target": self.target, "n_train": len(done),
                  "models": {name: m.describe(space.domains) for name, m in zip(names, models)},
                  "simulations": self.n_simulations, "uniform_fill": filled, "top_k": self.top_k,
                  "top_k_mean_prediction": float(pred[best].mean())}
        return Law(predict, params, optimum, float(predict(optimum[None, :])[0]))

    def _fit_one(self, X: np.ndarray, y: np.ndarray):
        if self.regressor == "linear":
            return _Linear(X, y)
        return _LightGBM(X, y, seed=self.seed, small_data=self.small_data)


class _Linear:
    """y ~ X @ coef, no intercept (rows sum to 1): ridge on coef - mean(y), so the penalty shrinks
    the coefficients towards the mean loss rather than towards 0."""

    def __init__(self, X: np.ndarray, y: np.ndarray):
        level = float(y.mean())
        A = X.T @ X + RIDGE * np.eye(X.shape[1])
        self.coef = np.linalg.solve(A, X.T @ (y - level)) + level

    def predict(self, P: np.ndarray) -> np.ndarray:
        return P @ self.coef

    def describe(self, domains) -> dict:
        return {"coefficients": {d: float(c) for d, c in zip(domains, self.coef)}}


class _LightGBM:
    """LightGBM regression with the authors' settings, a fixed 1000 rounds and one thread.

    Large batches (the 100,000 simulated mixtures) are predicted by `_LeafRegions`, which gives
    LightGBM's numbers (to rounding) about 5x faster; 64 rows are checked against LightGBM.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, *, seed: int, small_data: bool):
        try:
            import lightgbm as lgb
        except ImportError as e:  # pragma: no cover - lightgbm is a dependency of bomix
            raise ConfigError("regmix regressor 'lightgbm' needs the lightgbm package (pip install lightgbm), "
                              f"got ImportError: {e}") from e
        params = {"objective": "regression", "boosting": "gbdt", "learning_rate": 0.01, "seed": seed,
                  "deterministic": True, "force_col_wise": True, "num_threads": 1, "verbose": -1}
        if small_data:
            params.update(min_child_samples=5, num_leaves=8)
        self.booster = lgb.train(params, lgb.Dataset(X, y, params={"verbose": -1}), num_boost_round=1000)
        self._regions = None

    def predict(self, P: np.ndarray) -> np.ndarray:
        P = np.ascontiguousarray(P, dtype=float)
        if len(P) < FAST_ROWS:
            return self.booster.predict(P, num_threads=1)
        if self._regions is None:
            self._regions = _LeafRegions(self.booster.dump_model())
        out = self._regions.predict(P) if self._regions.ok else None
        check = np.linspace(0, len(P) - 1, 64).astype(int)
        if out is None or not np.allclose(out[check], self.booster.predict(P[check], num_threads=1), rtol=0, atol=1e-9):
            return self.booster.predict(P, num_threads=1)
        return out

    def describe(self, domains) -> dict:
        gain = self.booster.feature_importance(importance_type="gain")
        return {"num_trees": int(self.booster.num_trees()),
                "feature_importance_gain": {d: float(g) for d, g in zip(domains, gain)}}


class _LeafRegions:
    """A tree ensemble as a sum over its distinct leaf regions: {(x_f <= t or x_f > t, ...): value}.

    Boosting 1000 rounds on a few dozen points repeats the same leaves many times (about 1,200
    distinct regions out of 8,000 leaves for 64 points), so summing each region's value over the
    rows inside it is several times cheaper than walking 1000 trees per row. `ok` is False for
    splits other than numerical "<=" without missing-value handling (then LightGBM predicts).
    """

    def __init__(self, model: dict):
        self.ok, self.constant, regions = True, 0.0, {}

        def walk(node, path):
            if "leaf_value" in node:
                key = tuple(sorted(set(path)))
                regions[key] = regions.get(key, 0.0) + node["leaf_value"]
            elif node.get("decision_type") != "<=" or node.get("missing_type") != "None":
                self.ok = False
            else:
                atom = (int(node["split_feature"]), float(node["threshold"]))
                walk(node["left_child"], path + [(atom, True)])
                walk(node["right_child"], path + [(atom, False)])

        for tree in model["tree_info"]:
            walk(tree["tree_structure"], [])
        self.constant = regions.pop((), 0.0)
        self.regions = list(regions.items())

    def predict(self, P: np.ndarray) -> np.ndarray:
        out = np.full(len(P), self.constant)
        atoms: dict = {}
        for conditions, value in self.regions:
            inside = None
            for (f, t), left in conditions:
                if (f, t, left) not in atoms:
                    atoms[f, t, True] = P[:, f] <= t
                    atoms[f, t, False] = ~atoms[f, t, True]
                a = atoms[f, t, left]
                inside = a if inside is None else inside & a
            out += inside * value  # (a multiply-add is ~10x faster than a masked add here)
        return out


def _dirichlet(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """Rows ~ Dirichlet(alpha row), (n, k) alpha > 0, stable for tiny alpha.

    Gamma(a) = Gamma(a + 1) * U^(1/a), normalised in log space, so a concentration of 0.005 does
    not underflow to an all-zero row.
    """
    alpha = np.asarray(alpha, dtype=float)
    log_g = np.log(rng.standard_gamma(alpha + 1.0)) + np.log(np.maximum(rng.random(alpha.shape), 1e-300)) / alpha
    log_g -= log_g.max(axis=1, keepdims=True)
    w = np.exp(log_g)
    return w / w.sum(axis=1, keepdims=True)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
