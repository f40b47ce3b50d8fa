"""Replay of logged runs: an evaluator that answers from runs someone already trained.

The runs come as a CSV pair in the olmix convention (ratios.csv: run/name/index keys plus one
column per training domain, rows on the simplex; metrics.csv: the same keys plus one column per
validation loss, in `unit`), or RegMix's train_mixture / train_pile_loss files with
preset="regmix" (columns renamed to the Pile subset names, weights rounded to 3 decimals
renormalised).

Modes:
    "pool"       only mixtures that were really run can be evaluated. `evaluate` answers with the
                 logged losses of the run nearest (L1) to the given mixture and says which mixture
                 that was (Evaluation.weights), so the study records the mixture actually evaluated,
                 never the proposal (kept in trial.extra["proposed_weights"]). `pool` holds the
                 logged mixtures: a study that runs the evaluator searches them
                 (bomix.optimizers.pool), so every method picks distinct logged runs.
    "surrogate"  a smooth model per loss fitted to all logged runs (`surrogate` names the family),
                 answering for any mixture (`pool` is None); `cv_error` gives its
                 cross-validated error. The families are fitted through the registered baselines
                 that define them ("regmix", "mixing_laws"), loaded by name.

Noise: `noise_sd` is the sd of independent Gaussian noise added to each loss (default 0: the
logged or predicted value itself). With a TrialContext it is drawn from
default_rng([seed, context.seed]), so the same trial seed gives the same answer (resume relies on
this); without one from a per-instance generator seeded from `seed`. `true_losses` and
`true_value` give the noise-free answer.

Unit: `unit` names the unit of the logged losses (default "nats/token"; the olmix swarms log
bits-per-byte of downstream tasks, "bits/byte"). Reports print it; nothing converts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np

from bomix.errors import ConfigError, InvalidSpaceError, InvalidWeightsError
from bomix.evaluators.base import DEFAULT_UNIT, Evaluator, TrialContext
from bomix.export import read_runs
from bomix.objective import Objective
from bomix.space import MixtureSpace
from bomix.trial import Evaluation, Trial, TrialState

MODES = ("pool", "surrogate")
SURROGATES = ("lightgbm", "mixing_law", "linear")
PRESETS: dict[str, dict] = {
    "regmix": {"rename_domains": lambda c: c.removeprefix("train_the_pile_"),
               "rename_metrics": lambda c: c.removeprefix("metric/the_pile_").removesuffix("_val_loss"),
               "renormalize": True},
}
RENORMALIZE_TOL = 0.01  # rounded logs: rows whose sum is within this of 1 are rescaled (preset "regmix")
CV_FOLDS = 5
MIXING_LAW_RESTARTS = 12  # L-BFGS restarts of each explicit-law fit (baselines.mixing_laws' default)


def check_unit(unit, what: str) -> None:
    """Raise ConfigError unless `unit` (the unit evaluator `what` declares) is a non-empty string."""
    if not isinstance(unit, str) or not unit.strip():
        raise ConfigError(f"{what} unit must be a non-empty string such as \"bits/byte\", got {unit!r}")


class ReplayEvaluator(Evaluator):
    """Answers from logged runs (see the module docstring).

    ratios, metrics: paths of the two CSV files (or DataFrames).
    preset: None (olmix columns as they are) or "regmix" (RegMix's column names, renormalised rows).
    mode: "pool" or "surrogate".
    noise_sd: sd of the noise added to each loss, in `unit` (>= 0; default 0).
    seed: seeds the noise and the surrogate's fit (integer >= 0).
    surrogate: the model family of surrogate mode: "lightgbm" (RegMix's regressor, one per loss),
        "mixing_law" (the explicit data mixing law c + k exp(t . r) of the "mixing_laws" baseline,
        one per loss) or "linear" (RegMix's linear regressor). Ignored in pool mode.
    unit: the unit of the logged losses, a non-empty string (default "nats/token"; "bits/byte" for
        the olmix swarms).

    Attributes: domains (training domains, column order), loss_names (validation losses, column
    order), runs (the logged run keys), logged ((n, k) logged mixtures, rows on the simplex),
    logged_losses ((n, m) their losses), pool (`logged` in pool mode, else None), space (a
    MixtureSpace over `domains`).
    """

    name = "replay"

    def __init__(self, *, ratios, metrics, preset: str | None = None, mode: str = "pool", noise_sd: float = 0.0,
                 seed: int = 0, surrogate: str = "lightgbm", unit: str = DEFAULT_UNIT):
        if preset is not None and preset not in PRESETS:
            raise ConfigError(f"replay preset must be None or one of {list(PRESETS)}, got {preset!r}")
        if mode not in MODES:
            raise ConfigError(f"replay mode must be one of {list(MODES)}, got {mode!r}")
        if surrogate not in SURROGATES:
            raise ConfigError(f"replay surrogate must be one of {list(SURROGATES)}, got {surrogate!r}")
        if isinstance(noise_sd, bool) or not isinstance(noise_sd, (int, float)) or not math.isfinite(noise_sd) \
                or noise_sd < 0:
            raise ConfigError(f"replay noise_sd must be a finite number >= 0, got {noise_sd!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"replay seed must be an integer >= 0, got {seed!r}")
        check_unit(unit, "replay")
        self.ratios = ratios
        self.metrics = metrics
        self.preset = preset
        self.mode = mode
        self.noise_sd = noise_sd
        self.seed = seed
        self.surrogate = surrogate
        self.unit = unit
        self._load()
        self._rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
        self._models = None  # per-loss predictors, fitted on first use (surrogate mode)
        self._cv: tuple[int, np.ndarray] | None = None  # (folds, out-of-fold predictions)

    # -- reading ------------------------------------------------------------------------------
    def _load(self) -> None:
        opts = PRESETS.get(self.preset, {})
        key, r, m, domains, loss_names = read_runs(self.ratios, self.metrics, what="replay",
                                                   rename_domains=opts.get("rename_domains"),
                                                   rename_metrics=opts.get("rename_metrics"))
        try:
            space = MixtureSpace(domains)
        except InvalidSpaceError as e:
            raise ConfigError(f"replay ratios must have a column per training domain (at least 2, unique): "
                              f"{e}") from None
        X = self._numbers(r[domains], "ratios", key, r[key])
        L = self._numbers(m[loss_names], "metrics", key, r[key])
        bad = np.flatnonzero(~np.isfinite(L).all(axis=1))
        if len(bad):
            raise ConfigError(f"replay metrics must give every loss of every run as a finite number; {key} "
                              f"{r[key].iloc[bad[0]]!r} has {dict(zip(loss_names, L[bad[0]].tolist()))}")
        for i, x in enumerate(X):
            if opts.get("renormalize") and np.all(np.isfinite(x)) and x.min() >= 0 \
                    and abs(x.sum() - 1) <= RENORMALIZE_TOL:
                x = x / x.sum()
            try:
                X[i] = space.clean(x)
            except InvalidWeightsError as e:
                raise ConfigError(f"replay ratios row {key}={r[key].iloc[i]!r} must be a mixture: {e}") from None
        self.domains: tuple[str, ...] = space.domains
        self.loss_names: tuple[str, ...] = tuple(loss_names)
        self.runs: list = r[key].tolist()
        self.logged: np.ndarray = X
        self.logged_losses: np.ndarray = L
        self.logged.flags.writeable = self.logged_losses.flags.writeable = False
        self.pool = X if self.mode == "pool" else None
        self.space = space

    @staticmethod
    def _numbers(df, what: str, key: str, runs) -> np.ndarray:
        try:
            return np.array(df.to_numpy(dtype=float), dtype=float, copy=True)
        except (TypeError, ValueError) as e:
            for column in df.columns:  # name the first cell that is not a number
                for run, value in zip(runs, df[column]):
                    try:
                        float(value)
                    except (TypeError, ValueError):
                        raise ConfigError(f"replay {what} columns must hold numbers, got {column}={value!r} for "
                                          f"{key}={run!r}") from None
            raise ConfigError(f"replay {what} columns must hold numbers: {e}") from None

    # -- the truth ----------------------------------------------------------------------------
    def nearest(self, weights) -> int:
        """The row of the logged run nearest (L1) to one mixture {domain: weight} or (k,) array."""
        return int(np.argmin(np.abs(self.logged - self.space.clean(weights)).sum(axis=1)))

    def true_loss_matrix(self, X: np.ndarray) -> np.ndarray:
        """(n, m) noise-free losses of (n, k) mixtures: the nearest run's (pool) or predicted (surrogate)."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        if self.mode == "pool":
            return self.logged_losses[np.abs(self.logged[:, None] - X[None]).sum(axis=2).argmin(axis=0)]
        return np.column_stack([predict(X) for predict in self._fitted()])

    def true_losses(self, weights) -> dict[str, float]:
        """Noise-free losses {name: loss in `unit`} of one mixture (pool: of the nearest logged run)."""
        x = self.space.clean(weights)
        return dict(zip(self.loss_names, self.true_loss_matrix(x[None])[0].tolist()))

    def true_value(self, weights, objective="mean") -> float:
        """The noise-free objective of one mixture, in `unit`."""
        return float(self._objective(objective)(self.true_losses(weights)))

    def logged_values(self, objective="mean") -> np.ndarray:
        """(n,) the objective of every logged run, in `unit`, in `runs` order."""
        objective = self._objective(objective)
        return np.array([objective(dict(zip(self.loss_names, row))) for row in self.logged_losses.tolist()])

    def logged_best(self, objective="mean") -> float:
        """The best logged objective value: the pool's optimum, in `unit`."""
        return float(self.logged_values(objective).min())

    def _objective(self, spec) -> Objective:
        objective = Objective.parse(spec)
        missing = [n for n in objective.required(dict.fromkeys(self.loss_names)) if n not in self.loss_names]
        if missing:
            raise ConfigError(f"the objective may only read the logged losses {list(self.loss_names)}; "
                              f"{objective!r} reads {missing}")
        return objective

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, weights: Mapping[str, float], context: TrialContext | None = None) -> Evaluation:
        """The losses of one mixture plus noise (sd `noise_sd` per loss).

        Pool mode answers with the nearest logged run: Evaluation.weights is that run's mixture and
        extra holds its key ("replay_run") and L1 distance from the proposal ("replay_distance").
        """
        start = time.perf_counter()
        x = self.space.clean(weights)
        rng = self._rng if context is None else np.random.default_rng([self.seed, context.seed])
        noise = self.noise_sd * rng.standard_normal(len(self.loss_names)) if self.noise_sd else 0.0
        if self.mode == "pool":
            i = self.nearest(x)
            losses = self.logged_losses[i] + noise
            run = self.runs[i]
            extra = {"replay_run": run.item() if isinstance(run, np.generic) else run,
                     "replay_distance": float(np.abs(self.logged[i] - x).sum())}
            return Evaluation(losses=dict(zip(self.loss_names, losses.tolist())),
                              weights=self.space.to_mixture(self.logged[i]), extra=extra,
                              cost={"seconds": time.perf_counter() - start})
        losses = self.true_loss_matrix(x[None])[0] + noise
        return Evaluation(losses=dict(zip(self.loss_names, losses.tolist())),
                          cost={"seconds": time.perf_counter() - start})

    # -- the surrogate ------------------------------------------------------------------------
    def _fitted(self) -> list:
        if self._models is None:
            self._models = [self._fit(self.logged, self.logged_losses[:, j], name)
                            for j, name in enumerate(self.loss_names)]
        return self._models

    def _fit(self, X: np.ndarray, y: np.ndarray, name: str):
        """A function (p, k) mixtures -> (p,) predicted loss `name`, fitted to (X, y) by `surrogate`."""
        from bomix.optimizers import History, get_optimizer

        trials = tuple(Trial(number=i, weights=self.space.to_mixture(x), state=TrialState.COMPLETED,
                             losses={name: float(v)}) for i, (x, v) in enumerate(zip(X, y)))
        history = History(self.space, Objective.parse({"kind": "target", "target": name}), trials)
        if self.surrogate == "mixing_law":
            law = get_optimizer("mixing_laws", seed=self.seed, n_restarts=MIXING_LAW_RESTARTS).fit_losses(history)
            return lambda P: law(P)[:, 0]
        regmix = get_optimizer("regmix", seed=self.seed, regressor=self.surrogate, n_simulations=1, top_k=1)
        return regmix.fit(history).predict

    def cv_predictions(self, folds: int = CV_FOLDS) -> np.ndarray:
        """(n, m) out-of-fold predictions of every logged run's losses (columns in loss_names order).

        Folds are a seeded permutation of the logged runs; each fold is predicted by models fitted
        to the others, with the same family and seed as the surrogate itself.
        """
        if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= len(self.logged):
            raise ConfigError(f"cv folds must be an integer in [2, {len(self.logged)}], got {folds!r}")
        if self._cv is not None and self._cv[0] == folds:
            return self._cv[1].copy()
        fold = np.random.default_rng(self.seed).permutation(len(self.logged)) % folds
        pred = np.empty_like(self.logged_losses)
        for f in range(folds):
            train, test = fold != f, fold == f
            for j, name in enumerate(self.loss_names):
                pred[test, j] = self._fit(self.logged[train], self.logged_losses[train, j], name)(self.logged[test])
        self._cv = (folds, pred)
        return pred.copy()

    def cv_error(self, folds: int = CV_FOLDS) -> dict[str, float]:
        """The surrogate's `folds`-fold cross-validated mean absolute error per loss, in `unit`
        (from cv_predictions)."""
        mae = np.abs(self.cv_predictions(folds) - self.logged_losses).mean(axis=0)
        return dict(zip(self.loss_names, mae.tolist()))
