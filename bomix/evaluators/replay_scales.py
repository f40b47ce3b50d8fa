"""Replay of the same logged runs at several scales: a multi-fidelity pool.

RegMix trained the same 256 mixtures at ~1M and ~60M parameters (../shared/data/regmix-1m-60m).
`ReplayScales` takes one (ratios, metrics) CSV pair per scale, each tagged with its relative cost
(parameters x tokens), and answers in pool mode: a trial at fidelity f returns the logged losses of
that run at scale f (plus optional noise), and says which run that was (Evaluation.weights).

Every scale must hold the same mixtures (matched by their weights, within MATCH_TOL L1) and the
same losses: a run logged at one scale only could be proposed at a scale that never ran it. The
`pool` is the mixtures in the first scale's row order.

    ev = ReplayScales(scales={
        "1m":  {"ratios": "test_mixture_1m.csv",  "metrics": "test_pile_loss_1m.csv",  "cost": 1e6 * 1e9},
        "60m": {"ratios": "test_mixture_60m.csv", "metrics": "test_pile_loss_60m.csv", "cost": 60e6 * 1e9}},
        preset="regmix")
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from bomix.errors import ConfigError
from bomix.evaluators.base import DEFAULT_UNIT, Evaluator, TrialContext
from bomix.evaluators.replay import ReplayEvaluator, check_unit
from bomix.fidelity import check_fidelities, check_fidelity
from bomix.trial import Evaluation

MATCH_TOL = 1e-6  # L1 distance under which two scales' logged mixtures are the same run
REGMIX_1M_60M = {  # the files of ../shared/data/regmix-1m-60m; cost = parameters x tokens (1B tokens each)
    "1m": {"ratios": "test_mixture_1m.csv", "metrics": "test_pile_loss_1m.csv", "cost": 1e6 * 1e9},
    "60m": {"ratios": "test_mixture_60m.csv", "metrics": "test_pile_loss_60m.csv", "cost": 60e6 * 1e9},
}


def regmix_scales(directory) -> dict:
    """The `scales` argument for the regmix-1m-60m folder `directory` (use with preset="regmix")."""
    from pathlib import Path

    d = Path(directory)
    return {name: {"ratios": str(d / f["ratios"]), "metrics": str(d / f["metrics"]), "cost": f["cost"]}
            for name, f in REGMIX_1M_60M.items()}


class ReplayScales(Evaluator):
    """Logged runs of the same mixtures at several scales, replayed (see the module docstring).

    scales: {name: {"ratios": path or DataFrame, "metrics": path or DataFrame, "cost": relative
        cost > 0}}, at least one scale.
    target: the scale recommendations are for (default the costliest).
    preset, noise_sd, seed, unit: as ReplayEvaluator's (noise drawn from default_rng([seed, trial seed])).
    Attributes: fidelities ({name: cost}), target_fidelity, domains, loss_names, pool ((N, k) the
    logged mixtures), space.
    """

    name = "replay_scales"

    def __init__(self, *, scales: Mapping[str, Mapping], target: str | None = None, preset: str | None = None,
                 noise_sd: float = 0.0, seed: int = 0, unit: str = DEFAULT_UNIT):
        if not isinstance(scales, Mapping) or not scales:
            raise ConfigError(f"replay_scales scales must be a non-empty mapping {{name: {{ratios, metrics, cost}}}}, "
                              f"got {scales!r}")
        for name, spec in scales.items():
            if not isinstance(spec, Mapping) or set(spec) != {"ratios", "metrics", "cost"}:
                raise ConfigError(f"each replay_scales scale must give exactly ratios, metrics and cost, got "
                                  f"{name}={spec!r}")
        check_unit(unit, "replay_scales")
        self.scales = scales
        self.target = target
        self.preset = preset
        self.noise_sd = noise_sd
        self.seed = seed
        self.unit = unit
        self.fidelities, self.target_fidelity = check_fidelities({n: s["cost"] for n, s in scales.items()}, target)
        self._replays = {n: ReplayEvaluator(ratios=s["ratios"], metrics=s["metrics"], preset=preset, mode="pool",
                                            noise_sd=noise_sd, seed=seed, unit=unit) for n, s in scales.items()}
        first_name, first = next(iter(self._replays.items()))
        self.domains, self.loss_names, self.space = first.domains, first.loss_names, first.space
        self.pool = first.logged
        self._rows: dict[str, np.ndarray] = {}  # scale -> its row of each pool mixture
        for name, rep in self._replays.items():
            if rep.domains != self.domains or rep.loss_names != self.loss_names:
                raise ConfigError(f"every replay_scales scale must log the same domains and losses; {name!r} has "
                                  f"{list(rep.domains)} / {list(rep.loss_names)}, {first_name!r} has "
                                  f"{list(self.domains)} / {list(self.loss_names)}")
            if len(rep.logged) != len(self.pool):
                raise ConfigError(f"every replay_scales scale must log the same runs; {name!r} has {len(rep.logged)}, "
                                  f"{first_name!r} {len(self.pool)}")
            dist = np.abs(self.pool[:, None] - rep.logged[None]).sum(axis=2)
            rows = dist.argmin(axis=1)
            bad = np.flatnonzero(dist[np.arange(len(rows)), rows] > MATCH_TOL)
            if len(bad) or len(set(rows.tolist())) != len(rows):
                i = int(bad[0]) if len(bad) else 0
                raise ConfigError(f"every replay_scales scale must log the same mixtures; {first_name!r} run "
                                  f"{first.runs[i]!r} has no match at {name!r} (nearest L1 "
                                  f"{dist[i, rows[i]]:.3g} > {MATCH_TOL})")
            self._rows[name] = rows

    # -- the truth ----------------------------------------------------------------------------
    def loss_matrix(self, scale: str | None = None) -> np.ndarray:
        """(N, m) logged losses, in `unit`, of the pool's runs (pool order) at `scale` (default target)."""
        scale = check_fidelity(scale, self.fidelities, what="scale") or self.target_fidelity
        return self._replays[scale].logged_losses[self._rows[scale]]

    def logged_values(self, objective="mean", scale: str | None = None) -> np.ndarray:
        """(N,) the objective of every pool run at `scale` (default the target), in `unit`."""
        scale = check_fidelity(scale, self.fidelities, what="scale") or self.target_fidelity
        return self._replays[scale].logged_values(objective)[self._rows[scale]]

    def true_value(self, weights, objective="mean", scale: str | None = None) -> float:
        """The logged objective of the pool run nearest `weights` at `scale` (default the target)."""
        return float(self.logged_values(objective, scale)[self.nearest(weights)])

    def nearest(self, weights) -> int:
        """The pool row nearest (L1) to one mixture {domain: weight} or (k,) array."""
        return int(np.argmin(np.abs(self.pool - self.space.clean(weights)).sum(axis=1)))

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, weights: Mapping[str, float], context: TrialContext | None = None) -> Evaluation:
        """The logged losses of the nearest run at the trial's fidelity (context.fidelity; None:
        the target), plus noise. cost: {"seconds", "compute": the scale's relative cost}."""
        start = time.perf_counter()
        scale = check_fidelity(getattr(context, "fidelity", None), self.fidelities) or self.target_fidelity
        rep = self._replays[scale]
        i = self.nearest(weights)
        ev = rep.evaluate(self.space.to_mixture(self.pool[i]), context)
        run = rep.runs[int(self._rows[scale][i])]
        extra = {**ev.extra, "replay_run": run.item() if isinstance(run, np.generic) else run, "scale": scale,
                 "replay_distance": float(np.abs(self.pool[i] - self.space.clean(weights)).sum())}
        return Evaluation(losses=ev.losses, weights=self.space.to_mixture(self.pool[i]), extra=extra,
                          cost={"seconds": time.perf_counter() - start, "compute": self.fidelities[scale]})
