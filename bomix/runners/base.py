"""What every runner shares: the asynchronous campaign loop, the fault policy, the worker-side call.

A runner keeps up to `n_parallel` trials in flight until the study holds `n_trials` finished
(COMPLETED or FAILED) trials, or, in a multi-fidelity campaign with a compute budget, until the
compute left cannot pay for another trial (a trial's cost counts from its start; one asked beyond
the budget is abandoned unrun and stays queued). Whenever a trial ends it is told to the study at once, and one new
trial is asked for while the others are still pending (the optimizer sees them as pending points),
so a slow trial never holds the others up. A subclass says how to start, watch and stop one trial
(`submit`, `wait`, `cancel`); the loop, the timeouts, the retries and the failure limit live here.

Batches: a runner that declares `batches = True` (the process runner) hands an evaluator whose
`max_batch` is K > 1 up to K trials at once (`submit_batch`: one worker, one evaluate_many call),
still asked one at a time from the study and told one at a time; a trial that fails in a batch
fails alone, while what kills the batch's worker or timeout fails the trials it held.

Faults become data, and the campaign goes on: an evaluator exception, a NaN, infinite or missing
loss, a trial over its `timeout`, a worker process killed or out of memory, a lost Ray task or a
failed Slurm job each make the trial FAILED with its reason and the tail of its log
(trials/<n>/worker.log where the runner captures one).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bomix.errors import BomixError, ConfigError, EvaluationError
from bomix.evaluators.base import TrialContext
from bomix.trial import Evaluation, TrialState

log = logging.getLogger("bomix")

ERROR_TAIL = 4000  # characters of a traceback or log kept with a FAILED trial
LOG_NAME = "worker.log"  # trials/<n>/worker.log: a worker's stdout and stderr while it ran the trial
MIN_FAILED_FOR_RATE = 5  # the default failure limit (as Ax's scheduler): at least 5 failed trials in this run ...
TOLERATED_FAILURE_RATE = 0.5  # ... and more than half of the trials this run finished


class TooManyFailuresError(BomixError):
    """A campaign stopped because its trials keep failing (see FaultPolicy.max_failures)."""


@dataclass(frozen=True)
class FaultPolicy:
    """How a campaign treats failing trials.

    timeout: seconds a trial may run before it is stopped and marked FAILED; None: no limit.
    retries: how many more times a FAILED mixture is tried (same mixture, same seed; each retry is a
        new trial and, like every finished trial, counts against n_trials).
    max_failures: stop the campaign once more than this many trials failed in this run; None: stop
        once at least 5 failed and they are more than half of the trials this run finished.
    """

    timeout: float | None = None
    retries: int = 0
    max_failures: int | None = None

    def __post_init__(self):
        if self.timeout is not None and (isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float))
                                         or not math.isfinite(self.timeout) or self.timeout <= 0):
            raise ConfigError(f"timeout must be a number of seconds > 0 or None, got {self.timeout!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(f"retries must be an integer >= 0, got {self.retries!r}")
        if self.max_failures is not None and (isinstance(self.max_failures, bool)
                                              or not isinstance(self.max_failures, int) or self.max_failures < 0):
            raise ConfigError(f"max_failures must be an integer >= 0 or None, got {self.max_failures!r}")

    def too_many(self, failed: int, finished: int) -> bool:
        if self.max_failures is not None:
            return failed > self.max_failures
        return failed >= MIN_FAILED_FOR_RATE and failed > TOLERATED_FAILURE_RATE * finished


@dataclass
class Outcome:
    """What comes back from running one trial: its evaluation, or why it failed."""

    evaluation: Evaluation | None = None
    error: str | None = None


@dataclass
class Flight:
    """A trial in flight: the runner's handle on it and when it must end."""

    trial: Any
    handle: Any
    started: float = field(default_factory=time.monotonic)
    deadline: float = math.inf


# -- the worker side ---------------------------------------------------------------------------
def run_trial(evaluator, weights, context: TrialContext, capture: bool = False) -> Outcome:
    """Evaluate one mixture where the trial runs (any process); never raises an evaluator's error.

    capture: send this process's stdout and stderr to trials/<n>/worker.log while it runs, and put
    the log's tail into the error of a failed trial.
    """
    path = Path(context.directory) / LOG_NAME if capture and context.directory is not None else None
    with captured(path):
        try:
            evaluation = evaluator.evaluate(dict(weights), context)
            if not isinstance(evaluation, Evaluation):
                raise EvaluationError(f"evaluate() must return an Evaluation, got {type(evaluation).__name__}")
            return Outcome(evaluation=evaluation)
        except Exception as e:  # noqa: BLE001 - every failure of a trial is data
            error = describe_error(e)
    return Outcome(error=error + log_tail(path))


def describe_error(e: BaseException) -> str:
    """A failed trial's error: the exception's one-line summary, then its traceback's tail."""
    return f"{type(e).__name__}: {e}\n" + "".join(traceback.format_exception(e))[-ERROR_TAIL:]


@contextlib.contextmanager
def captured(path: Path | None):
    """Redirect file descriptors 1 and 2 (so child processes' output too) to `path`, appending."""
    if path is None:
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:  # an unwritable trial directory must not fail the trial
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def log_tail(path: Path | None, n: int = 2000) -> str:
    """'\\n--- last lines of <path> ---\\n...' or '' when there is no such log."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return f"\n--- end of {path} ---\n{text}" if text.strip() else ""


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (PR_SET_PDEATHSIG; a no-op elsewhere),
    so a worker never runs on, unattended, after its driver was killed."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def signal_name(code: int | None) -> str:
    """'exit code 1', or 'killed by SIGKILL' for a negative (signal) exit code."""
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


# -- the driver side ---------------------------------------------------------------------------
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


def _affords(cost: float, left: float) -> bool:
    """True if the compute `left` pays for `cost`, up to float rounding: the one rule every
    affordability check here uses (callers without a compute budget never ask)."""
    return cost <= left * (1 + 1e-9) + 1e-12


def _affords_any(study) -> bool:
    """True unless the optimize call's compute budget cannot pay for a trial at the cheapest scale."""
    left = study.compute_left()  # None without a compute budget (and always for one scale)
    return left is None or _affords(min(study.fidelities.values()), left)


def _ask_affordable(study):
    """study.ask(1), or None when the trial asked costs more than the compute left: it is abandoned
    unrun (its mixture stays queued, first in line if the budget is raised) and the caller stops.
    A queued mixture the compute left cannot pay for stops the caller before anything is asked, so
    a resume with the same budget records nothing new."""
    left = study.compute_left()
    queued_cost = study.next_queued_cost() if left is not None else None
    if queued_cost is not None and not _affords(queued_cost, left):
        # a mixture abandoned for want of compute: asking again would only abandon it again
        log.info("not run: the next queued mixture costs %.6g, more than the %.6g the compute budget has left",
                 queued_cost, left)
        return None
    (trial,) = study.ask(1)
    left = study.compute_left()
    if left is None:
        return trial
    cost = study.fidelities[study.fidelity_of(trial)]
    if _affords(cost, left + cost):  # ask counted it as RUNNING already
        return trial
    study.tell(trial, state="abandoned",
               error=f"not run: at {study.fidelity_of(trial)} it costs {cost:g}, more than the {left + cost:g} "
                     f"the compute budget had left")
    log.info("trial %d: not run, the compute budget is spent (%.6g left, the trial costs %.6g)",
             trial.number, left + cost, cost)
    return None


class Runner(ABC):
    """Keeps up to n_parallel trials in flight until the study has n_trials finished trials, or
    until the optimize call's compute budget cannot pay for another (study.compute_left()).

    Subclasses implement `submit` (start one trial, return a handle), `wait` (the flights that
    ended within `timeout` seconds, each with its Outcome) and `cancel` (stop one, best effort);
    optionally `open`/`close` (set up and tear down workers) and `reattach` (pick up a trial a
    killed driver left running elsewhere). Runner arguments are keyword-only, stored unchanged.
    """

    name: str = ""
    parallel: bool = True  # False: one trial at a time in this process (the inline runner)
    can_time_out: bool = True
    batches: bool = False  # True: submit_batch gives an evaluator with max_batch > 1 several trials at once

    def run(self, study, evaluator, n_trials: int, n_parallel: int = 1, *, policy: FaultPolicy | None = None,
            show_progress: bool | None = None) -> None:
        policy = policy or FaultPolicy()
        if not self.parallel and n_parallel != 1:
            raise ConfigError(f"the {self.name} runner runs one trial at a time, so n_parallel must be 1, "
                              f"got {n_parallel}")
        if policy.timeout is not None and not self.can_time_out:
            raise ConfigError(f"the {self.name} runner cannot stop a trial that runs in its own process, so it "
                              f"takes no timeout (got {policy.timeout!r}); use runner 'process', 'ray' or 'slurm'")
        batch = self._batch_size(evaluator)
        flights: list[Flight] = []
        progress = _Progress(study, n_trials, show_progress)
        counts = {"failed": 0, "finished": 0}
        self.open(study, evaluator, n_parallel)
        try:
            for trial in [t for t in study.running if "job" in t.extra]:  # left running elsewhere by a killed driver
                handle = self.reattach(study, trial)
                if handle is None:
                    study.tell(trial, state="abandoned",
                               error=f"its driver stopped and the {self.name} runner cannot re-attach it; redone")
                else:
                    log.info("trial %d: re-attached to %s", trial.number, handle)
                    flights.append(Flight(trial, handle, deadline=self._deadline(policy)))
            spent = False  # the compute budget cannot pay for the next trial: start no more
            while True:
                with study.batch():  # trials that start together share one fsync of the journal
                    while len(flights) < n_parallel and study.n_finished + len(flights) < n_trials and not spent:
                        if not _affords_any(study):
                            spent = True
                        elif batch == 1:
                            started = self._start(study, evaluator, policy)
                            flights.extend(started)
                            spent = not started
                        else:
                            n = min(batch, n_parallel - len(flights), n_trials - study.n_finished - len(flights))
                            started = self._start_batch(study, policy, n)
                            flights.extend(started)
                            spent = len(started) < n
                if not flights:
                    break
                now = time.monotonic()
                wait_s = max(0.0, min(f.deadline for f in flights) - now)
                ended = self.wait(flights, min(wait_s, 1.0))
                with study.batch():  # ... and so do trials that end together
                    for flight, outcome in ended:
                        flights.remove(flight)
                        self._finish(study, flight, outcome, policy, counts)
                        progress.update(study)
                    now = time.monotonic()
                    for flight in [f for f in flights if f.deadline <= now]:  # a batch shares one deadline
                        flights.remove(flight)
                        self.cancel(flight.handle)
                        error = (f"timed out: stopped after {policy.timeout:g} s (the runner's timeout)"
                                 + log_tail(self._log_path(study, flight.trial)))
                        self._finish(study, flight, Outcome(error=error), policy, counts)
                        progress.update(study)
                if policy.too_many(counts["failed"], counts["finished"]):
                    last = next(t for t in reversed(study.trials) if t.state is TrialState.FAILED)
                    raise TooManyFailuresError(
                        f"{counts['failed']} of the {counts['finished']} trials this run finished failed "
                        f"(max_failures={policy.max_failures}); stopping so a broken setup does not burn the budget. "
                        f"Last failure, trial {last.number}: {(last.error or '').splitlines()[0][:500]}. "
                        "Fix the cause and run again to resume.")
        except BaseException as e:
            for flight in flights:  # stopped on purpose (Ctrl-C, too many failures, an error): redo them later
                with contextlib.suppress(Exception):
                    self.cancel(flight.handle)
                if flight.trial.state is TrialState.RUNNING:
                    study.tell(flight.trial, state="abandoned", error=f"interrupted ({type(e).__name__})")
            raise
        finally:
            progress.close()
            self.close()

    def _deadline(self, policy: FaultPolicy) -> float:
        return math.inf if policy.timeout is None else time.monotonic() + policy.timeout

    def _start(self, study, evaluator, policy: FaultPolicy) -> list[Flight]:
        """One trial started, or none when the compute left cannot pay for the trial asked."""
        trial = _ask_affordable(study)
        if trial is None:
            return []
        started = time.monotonic()  # before submit: the inline runner runs the whole trial inside it
        try:
            handle = self.submit(study, trial)
        except BaseException:
            study.tell(trial, state="abandoned", error="could not be started")
            raise
        return [Flight(trial, handle, started=started, deadline=self._deadline(policy))]

    def _batch_size(self, evaluator) -> int:
        """Trials per submit: the evaluator's max_batch where this runner batches, else 1."""
        if not self.batches:
            return 1
        size = getattr(evaluator, "max_batch", 1)  # Evaluator declares it (default 1); a duck-typed one may not
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"an evaluator's max_batch must be an integer >= 1, got {size!r}")
        return size

    def _start_batch(self, study, policy: FaultPolicy, n: int) -> list[Flight]:
        """Ask n trials one at a time (each sees the others pending) and start them together; fewer
        when the compute left cannot pay for them all."""
        trials = []
        try:
            for _ in range(n):
                trial = _ask_affordable(study)
                if trial is None:
                    break
                trials.append(trial)
            if not trials:
                return []
            handle = self.submit_batch(study, trials)
        except BaseException:
            for trial in trials:
                study.tell(trial, state="abandoned", error="could not be started")
            raise
        deadline = self._deadline(policy)
        return [Flight(trial, handle, deadline=deadline) for trial in trials]

    def _finish(self, study, flight: Flight, outcome: Outcome, policy: FaultPolicy, counts: dict) -> None:
        trial = flight.trial
        if trial.state is not TrialState.RUNNING:  # told already (e.g. by another path); never twice
            return
        error = outcome.error
        if outcome.evaluation is not None:
            try:
                study.tell(trial, outcome.evaluation)
            except BomixError as e:  # e.g. a loss the objective needs is missing: the trial failed
                error = f"{type(e).__name__}: {e}"
        if error is not None:
            study.tell(trial, state="failed", error=error)
            counts["failed"] += 1
            log.warning("trial %d failed: %s", trial.number, error.splitlines()[0][:300])
            if policy.retries and study.failed_attempts(trial) <= policy.retries:
                study.retry(trial)
        counts["finished"] += 1
        best = study.best_trial
        log.info("trial %d %s in %.1fs: value=%s; best so far %s (trial %s)", trial.number, trial.state.value,
                 time.monotonic() - flight.started, "-" if trial.value is None else f"{trial.value:.4f}",
                 "-" if best is None else f"{best.value:.4f}", "-" if best is None else best.number)

    @staticmethod
    def _log_path(study, trial) -> Path:
        return study.trial_dir(trial.number) / LOG_NAME

    @staticmethod
    def context(study, trial) -> TrialContext:
        return TrialContext(number=trial.number, seed=trial.seed, directory=study.trial_dir(trial.number),
                            fidelity=getattr(trial, "fidelity", None))

    # -- what a runner provides -----------------------------------------------------------------
    def open(self, study, evaluator, n_parallel: int) -> None:
        """Set up before the first trial (start workers, connect to a cluster)."""

    def close(self) -> None:
        """Tear down after the campaign stops, however it stops."""

    @abstractmethod
    def submit(self, study, trial) -> Any:
        """Start `trial` (RUNNING) and return a handle on it."""

    def submit_batch(self, study, trials) -> Any:
        """Start `trials` (RUNNING) together, as one evaluate_many call, and return one handle on them
        all; only runners that declare `batches = True` are asked to."""
        raise NotImplementedError(f"the {self.name} runner does not start trials in batches")

    @abstractmethod
    def wait(self, flights: list[Flight], timeout: float) -> list[tuple[Flight, Outcome]]:
        """The flights that ended, each with its Outcome, waiting at most `timeout` seconds."""

    @abstractmethod
    def cancel(self, handle) -> None:
        """Stop a trial in flight (best effort; its outcome is no longer wanted)."""

    def reattach(self, study, trial):
        """A handle on a trial that a killed driver left RUNNING, or None if it cannot be re-attached
        (the trial is then abandoned and its mixture redone)."""
        return None

    def get_params(self) -> dict:
        from bomix.registry import get_params

        return get_params(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"


class InlineRunner(Runner):
    """One trial at a time, in this process. The simplest and the default; it takes no timeout.

    Ctrl-C abandons the trial in flight (its mixture is queued again) and stops the campaign.
    """

    name = "inline"
    parallel = False
    can_time_out = False

    def __init__(self):
        self._evaluator = None

    def open(self, study, evaluator, n_parallel: int) -> None:
        self._evaluator = evaluator

    def submit(self, study, trial):
        return run_trial(self._evaluator, trial.weights, self.context(study, trial))

    def wait(self, flights, timeout):
        return [(f, f.handle) for f in flights]

    def cancel(self, handle) -> None:
        pass

    def close(self) -> None:
        self._evaluator = None
