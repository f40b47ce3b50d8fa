"""Tools for testing: contract tests every optimizer must pass, and a fault injector for runners.

Contract tests for optimizers, baselines included (like optuna's sampler tests and scikit-learn's
check_estimator). Each check raises AssertionError with what went wrong:

    from bomix.testing import check_optimizer
    check_optimizer(lambda space, seed: MyOptimizer(seed=seed))

FaultInjector wraps an evaluator and makes chosen trials fail in chosen ways (an exception, a NaN,
a missing loss, a hang, a killed or exiting worker), to test a runner or rehearse a campaign's
failure handling before spending GPU hours on it:

    ev = FaultInjector(evaluator=landscape("mixing_law"), faults={3: "kill", 5: "hang"})
    study.optimize(ev, 16, n_parallel=4, runner="process", timeout=30)
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Mapping

import numpy as np

from bomix.errors import ConfigError
from bomix.evaluators.base import Evaluator, TrialContext
from bomix.objective import Objective
from bomix.optimizers.base import History, Optimizer, Proposal
from bomix.space import MixtureSpace
from bomix.trial import Evaluation, Trial, TrialState

Factory = Callable[[MixtureSpace, int], Optimizer]


def contract_spaces() -> list[MixtureSpace]:
    """Spaces the contract runs on: 2 domains, 5 with floors and caps, 12 with tight caps; each
    with a prior (natural shares), as a benchmark on real data has."""
    twelve = [f"d{i}" for i in range(12)]
    return [
        MixtureSpace(["a", "b"], prior=[0.7, 0.3]),
        MixtureSpace(["books", "cc", "stack", "pes2o", "reddit"], floors={"pes2o": 0.02, "reddit": 0.02},
                     caps={"cc": 0.5, "stack": 0.3}, prior=[0.2, 0.45, 0.15, 0.1, 0.1]),
        MixtureSpace(twelve, caps=[0.05, 0.05, 0.1] + [0.2] * 9, prior=0.8 ** np.arange(12)),
    ]


def toy_losses(space: MixtureSpace, x: np.ndarray) -> dict[str, float]:
    """A smooth per-domain loss with an interior optimum: loss_i = 3 + 0.3 * -log(x_i + 0.05)."""
    return {d: float(3.0 - 0.3 * np.log(v + 0.05)) for d, v in zip(space.domains, x)}


def make_history(space: MixtureSpace, *, n_completed: int = 8, n_failed: int = 0, n_pending: int = 0,
                 seed: int = 0) -> History:
    """A history of random feasible trials: completed (toy losses), then failed, then pending."""
    n = n_completed + n_failed + n_pending
    X = space.sample(n, method="random", seed=seed + 1234)
    trials = []
    for i, x in enumerate(X):
        state = TrialState.COMPLETED if i < n_completed else TrialState.FAILED if i < n_completed + n_failed \
            else TrialState.RUNNING
        losses = toy_losses(space, x) if state is TrialState.COMPLETED else None
        trials.append(Trial(i, space.to_mixture(x), state=state, proposed_by="contract", seed=i, losses=losses,
                            error="boom" if state is TrialState.FAILED else None))
    return History(space, Objective("mean"), tuple(trials))


def _as_array(out, space: MixtureSpace, n: int, who: str) -> np.ndarray:
    if isinstance(out, list) and out and isinstance(out[0], Proposal):
        out = [p.weights for p in out]
    X = np.asarray(out, dtype=float)
    assert X.shape == (n, space.k), f"{who}: suggest(history, {n}) must return shape ({n}, {space.k}), got {X.shape}"
    for row in X:
        space.validate(row, atol=1e-6)  # raises InvalidWeightsError naming the broken rule
    return X


def check_on_simplex(make: Factory) -> None:
    for space in contract_spaces():
        for history in (make_history(space, n_completed=0), make_history(space, n_completed=8)):
            for n in (1, 3):
                _as_array(make(space, 0).suggest(history, n), space, n, "on_simplex")


def check_deterministic(make: Factory) -> None:
    for space in contract_spaces():
        history = make_history(space, n_completed=10, n_pending=1)
        a = _as_array(make(space, 3).suggest(history, 2), space, 2, "deterministic")
        b = _as_array(make(space, 3).suggest(history, 2), space, 2, "deterministic")
        assert np.allclose(a, b, atol=1e-9, rtol=0), f"same seed and history gave different suggestions:\n{a}\n{b}"


def check_failed_and_pending(make: Factory) -> None:
    for space in contract_spaces():
        for hist in (make_history(space, n_completed=6, n_failed=3, n_pending=2),
                     make_history(space, n_completed=0, n_failed=4), make_history(space, n_completed=0, n_pending=3)):
            _as_array(make(space, 0).suggest(hist, 2), space, 2, "failed_and_pending")


def check_batch(make: Factory) -> None:
    for space in contract_spaces():
        opt = make(space, 0)
        X = _as_array(opt.suggest(make_history(space, n_completed=8, n_pending=2), 4), space, 4, "batch")
        if opt.proposes_distinct:
            gaps = [np.abs(X[i] - X[j]).max() for i in range(4) for j in range(i)]
            assert min(gaps) > 1e-6, f"suggest(history, 4) must return 4 distinct mixtures, got\n{X}"


def check_params_roundtrip(make: Factory) -> None:
    space = contract_spaces()[1]
    opt = make(space, 5)
    params = opt.get_params()
    assert "seed" in params, f"{type(opt).__name__} must take a keyword `seed`, got params {sorted(params)}"
    clone = type(opt)(**params)
    history = make_history(space, n_completed=6)
    a, b = np.asarray(_as_array(opt.suggest(history, 1), space, 1, "roundtrip")), \
        np.asarray(_as_array(clone.suggest(history, 1), space, 1, "roundtrip"))
    assert np.allclose(a, b, atol=1e-9, rtol=0), "an optimizer rebuilt from get_params() must suggest the same"


def check_pool_search(make: Factory) -> None:
    """On a finite pool of logged runs (bomix.optimizers.pool) the optimizer yields distinct runs no
    trial holds, deterministically; its `score`, when it gives one, is one finite-or-(-inf) number
    per candidate."""
    from bomix.optimizers.pool import PoolSearch

    space = contract_spaces()[1]
    pool = space.sample(40, method="random", seed=99)
    held = np.random.default_rng(0).permutation(40)[:10]
    trials = []
    for i, row in enumerate(held):  # 6 completed, 2 failed, 2 pending, each a logged run
        state = TrialState.COMPLETED if i < 6 else TrialState.FAILED if i < 8 else TrialState.RUNNING
        losses = toy_losses(space, pool[row]) if state is TrialState.COMPLETED else None
        trials.append(Trial(i, space.to_mixture(pool[row]), state=state, proposed_by="contract", seed=i, losses=losses))
    for history in (History(space, Objective("mean")), History(space, Objective("mean"), tuple(trials))):
        opt = make(space, 0)
        picks = PoolSearch(opt, pool).suggest(history, 3)
        again = PoolSearch(make(space, 0), pool).suggest(history, 3)
        rows = [int(np.abs(pool - p.weights).sum(axis=1).argmin()) for p in picks]
        assert all(np.abs(pool[r] - p.weights).sum() < 1e-9 for r, p in zip(rows, picks)), \
            "a pool search must propose logged runs exactly"
        assert len(set(rows)) == 3 and not set(rows) & set(held[:len(history.trials)].tolist()), \
            f"a pool search must propose 3 distinct runs no trial holds, got rows {rows}"
        assert [p.weights.tolist() for p in picks] == [p.weights.tolist() for p in again], \
            "a pool search must be deterministic for a seed and a history"
        scores = opt.score(history, pool[:5])
        if scores is not None:
            scores = np.asarray(scores, dtype=float)
            assert scores.shape == (5,) and not np.isnan(scores).any(), \
                f"score(history, X) must give one number per candidate, got {scores!r}"


CHECKS = [check_on_simplex, check_deterministic, check_failed_and_pending, check_batch, check_params_roundtrip,
          check_pool_search]


def check_optimizer(make: Factory) -> None:
    """Run every contract check on optimizers built by make(space, seed)."""
    for check in CHECKS:
        check(make)


# -- fault injection ---------------------------------------------------------------------------
FAULTS = ("raise", "nan", "missing", "hang", "kill", "exit")


class FaultInjector(Evaluator):
    """An evaluator that makes chosen trials fail (a stand-in for a real failure, named as such).

    evaluator: the evaluator that scores every other trial (its answers pass through unchanged).
    faults: {trial number: fault}, a fault being
        "raise"    the evaluation raises RuntimeError
        "nan"      a loss is NaN (rejected as not finite)
        "missing"  the first loss is left out (the objective cannot be computed)
        "hang"     sleeps for an hour (a runner's timeout must stop it)
        "kill"     the process running the trial kills itself with SIGKILL (as the OOM killer does)
        "exit"     the process running the trial exits at once with status 3
    delays: {trial number: seconds} to sleep before evaluating (a slow trial).
    Every evaluation records in Evaluation.extra the process it ran in ("pid") and the GPU it was
    given ("cuda_visible_devices"), so tests can see where trials ran.
    """

    name = "fault_injector"

    def __init__(self, *, evaluator, faults: Mapping | None = None, delays: Mapping | None = None):
        faults = {int(k): v for k, v in (faults or {}).items()}
        bad = {k: v for k, v in faults.items() if v not in FAULTS}
        if bad:
            raise ConfigError(f"faults must be among {list(FAULTS)}, got {bad}")
        self.evaluator = evaluator
        self.faults = faults
        self.delays = {int(k): float(v) for k, v in (delays or {}).items()}
        self.domains = getattr(evaluator, "domains", None)
        self.loss_names = getattr(evaluator, "loss_names", None)
        self.pool = getattr(evaluator, "pool", None)
        self.fidelities = getattr(evaluator, "fidelities", None)  # a multi-scale evaluator stays one
        self.target_fidelity = getattr(evaluator, "target_fidelity", None)

    def evaluate(self, weights, context: TrialContext | None = None) -> Evaluation:
        context = context or TrialContext()
        time.sleep(self.delays.get(context.number, 0.0))
        fault = self.faults.get(context.number)
        if fault == "raise":
            raise RuntimeError(f"injected failure in trial {context.number}")
        if fault == "hang":
            time.sleep(3600)
        if fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if fault == "exit":
            os._exit(3)
        ev = self.evaluator.evaluate(weights, context)
        losses = dict(ev.losses)
        if fault == "nan":
            losses[next(iter(losses))] = math.nan
        if fault == "missing":
            losses.pop(next(iter(losses)))
        extra = {**ev.extra, "pid": os.getpid(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
        return Evaluation(losses=losses, cost=ev.cost, curves=ev.curves, extra=extra, weights=ev.weights)
