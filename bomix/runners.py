"""Runners: where and how many trials run at once. `inline` runs them one by one in this process."""

from __future__ import annotations

import logging
import sys
import time
import traceback
from abc import ABC, abstractmethod

from bomix import registry
from bomix.errors import BomixError, ConfigError
from bomix.evaluators.base import TrialContext
from bomix.trial import Evaluation, TrialState

log = logging.getLogger("bomix")

RUNNERS: dict[str, str] = {
    "inline": "bomix.runners:InlineRunner",
}

ERROR_TAIL = 4000  # characters of a traceback kept with a FAILED trial


class Runner(ABC):
    """Keeps up to n_parallel trials in flight until the study has n_trials finished trials."""

    @abstractmethod
    def run(self, study, evaluator, n_trials: int, n_parallel: int = 1, *, show_progress: bool | None = None) -> None:
        ...


def get_runner(runner="inline", /, **params) -> Runner:
    if isinstance(runner, Runner):
        return runner
    return registry.build(RUNNERS, "runner", runner, params)


def evaluate_trial(study, evaluator, trial) -> None:
    """Evaluate one trial and tell the study; any exception becomes a FAILED trial with its reason.

    KeyboardInterrupt abandons the trial (its mixture is queued again) and propagates, leaving the
    study consistent and resumable.
    """
    context = TrialContext(number=trial.number, seed=trial.seed, directory=study.trial_dir(trial.number))
    try:
        evaluation = evaluator.evaluate(dict(trial.weights), context)
        if not isinstance(evaluation, Evaluation):
            raise BomixError(f"evaluate() must return an Evaluation, got {type(evaluation).__name__}")
        study.tell(trial, evaluation)
    except KeyboardInterrupt:
        if trial.state is TrialState.RUNNING:
            study.tell(trial, state="abandoned", error="interrupted (KeyboardInterrupt)")
        raise
    except Exception as e:
        tail = "".join(traceback.format_exception(e))[-ERROR_TAIL:]
        study.tell(trial, state="failed", error=f"{type(e).__name__}: {e}\n{tail}")
        log.warning("trial %d failed: %s: %s", trial.number, type(e).__name__, e)


class _Progress:
    """A tqdm bar over finished trials showing the best value so far (or nothing when disabled)."""

    def __init__(self, study, total: int, enabled: bool | None):
        enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=min(study.n_finished, total), unit="trial", desc=study.name)

    def update(self, study) -> None:
        best = study.best_trial
        if self.bar is not None:
            if best is not None:
                self.bar.set_postfix(best=f"{best.value:.4f}", trial=best.number, refresh=False)
            self.bar.update(min(study.n_finished, self.bar.total) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class InlineRunner(Runner):
    """One trial at a time, in this process. The simplest and the default."""

    def run(self, study, evaluator, n_trials: int, n_parallel: int = 1, *, show_progress: bool | None = None) -> None:
        if n_parallel != 1:
            raise ConfigError(f"the inline runner runs one trial at a time, so n_parallel must be 1, got {n_parallel}")
        progress = _Progress(study, n_trials, show_progress)
        try:
            while study.n_finished < n_trials:
                (trial,) = study.ask(1)
                start = time.time()
                evaluate_trial(study, evaluator, trial)
                best = study.best_trial
                log.info("trial %d %s in %.1fs: value=%s; best so far %s (trial %s)", trial.number, trial.state.value,
                         time.time() - start, "-" if trial.value is None else f"{trial.value:.4f}",
                         "-" if best is None else f"{best.value:.4f}", "-" if best is None else best.number)
                progress.update(study)
        finally:
            progress.close()
