"""The `process` runner: trials side by side in a pool of local worker processes.

Each of the n_parallel workers is a long-lived process (started with "spawn", so no CUDA or
thread state is inherited) that evaluates one trial at a time. Where GPUs exist, worker i sees
one of them, CUDA_VISIBLE_DEVICES=gpus[i % len(gpus)], for its whole life, so 8 workers on an
8-GPU machine train 8 proxies at once, one per GPU.

An evaluator with max_batch = K > 1 (ProxyEvaluator(stack=K)) gets up to K trials per worker, in
one evaluate_many call: n_parallel still counts trials in flight, so n_parallel = 8 x K keeps 8
workers busy (worker i is started only when a batch needs it). Each trial of a batch is told to
the study on its own; a trial the evaluator fails fails alone, a dead or timed-out worker fails
the trials it held.

Why not concurrent.futures.ProcessPoolExecutor: one killed worker (the OOM killer, a timeout)
breaks that pool and fails every trial in flight. Here a worker that dies fails only its own
trial, with its exit status and log tail, and a fresh worker takes its slot.

Each worker is the leader of its own process group, so a timeout stops the trial's child
processes too (a training launched by a command evaluator), and it dies with the driver (Linux:
PR_SET_PDEATHSIG), so a killed driver leaves no worker training on behind its back.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing as mp
import os
import pickle
import shutil
import signal
import subprocess
from multiprocessing.connection import wait as mp_wait
from pathlib import Path

from bomix.errors import ConfigError, EvaluationError
from bomix.runners.base import (LOG_NAME, Outcome, Runner, captured, describe_error, die_with_parent, log_tail,
                                run_trial, signal_name)
from bomix.trial import Evaluation

log = logging.getLogger("bomix")


def detect_gpus() -> list[str]:
    """The GPU ids trials may use: CUDA_VISIBLE_DEVICES when it is set, else one per GPU that
    nvidia-smi lists, else none."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(ln for ln in out.splitlines() if ln.startswith("GPU "))]


def _name_process(name: str) -> None:
    """Name this process for ps -o comm and pgrep (Linux PR_SET_NAME, 15 bytes; a no-op elsewhere)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(15, name.encode()[:15])


def run_trials(evaluator, items, capture: bool = False) -> list[Outcome]:
    """Evaluate several trials, (weights, context) pairs, with one evaluator.evaluate_many call.
    Never raises an evaluator's error: a trial the evaluator fails fails alone; if evaluate_many
    itself raises, every trial gets that error.

    capture: as run_trial, into the first trial's worker.log, hard-linked into every other trial's
    directory (where the file system allows), so each trial's log shows the batch that ran it.
    """
    paths = [Path(c.directory) / LOG_NAME if capture and c.directory is not None else None for _, c in items]
    for path in paths[1:] if paths[0] is not None else []:
        with contextlib.suppress(OSError):
            paths[0].parent.mkdir(parents=True, exist_ok=True)
            paths[0].touch()
            path.parent.mkdir(parents=True, exist_ok=True)
            os.link(paths[0], path)
    with captured(paths[0]):
        try:
            results = evaluator.evaluate_many([dict(w) for w, _ in items], [c for _, c in items])
            if not isinstance(results, list) or len(results) != len(items):
                raise EvaluationError(f"evaluate_many() must return a list of one result per mixture ({len(items)}), "
                                      f"got {type(results).__name__} {str(results)[:200]}")
        except Exception as e:  # noqa: BLE001 - what fails the batch fails each of its trials
            results = [e] * len(items)
    outcomes = []
    for result in results:
        if isinstance(result, Evaluation):
            outcomes.append(Outcome(evaluation=result))
        else:
            error = describe_error(result) if isinstance(result, BaseException) else (
                f"EvaluationError: evaluate_many() must give an Evaluation or an exception per mixture, got "
                f"{type(result).__name__}")
            outcomes.append(Outcome(error=error + log_tail(paths[0])))
    return outcomes


def _worker(conn, payload: bytes, gpu: str | None, index: int = 0) -> None:
    """A worker's life: unpickle the evaluator once, then evaluate batches of trials (a list of
    (number, weights, context), usually of one) until told to stop; answers [(number, Outcome), ...]."""
    os.setsid()  # its own process group: the driver can stop the trial with everything it started
    die_with_parent()
    _name_process(f"bomix-worker-{index}")  # pgrep bomix-worker finds them
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    try:
        evaluator, broken = pickle.loads(payload), None
    except Exception as e:  # noqa: BLE001 - e.g. a class defined in the driver's __main__
        evaluator, broken = None, f"the worker could not load the evaluator: {type(e).__name__}: {e}"
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the driver is gone
            return
        if task is None:
            return
        numbers = [number for number, _, _ in task]
        if broken:
            outcomes = [Outcome(error=broken) for _ in task]
        elif len(task) == 1:
            _, weights, context = task[0]
            outcomes = [run_trial(evaluator, weights, context, capture=True)]
        else:
            outcomes = run_trials(evaluator, [(weights, context) for _, weights, context in task], capture=True)
        try:
            conn.send(list(zip(numbers, outcomes)))
        except (OSError, pickle.PicklingError) as e:
            with contextlib.suppress(OSError):
                conn.send([(n, Outcome(error=f"the trial's result could not be sent back: {e}")) for n in numbers])
            return


class _Slot:
    """One worker process, its pipe and its GPU."""

    def __init__(self, index: int, gpu: str | None):
        self.index, self.gpu = index, gpu
        self.process = self.conn = None
        self.numbers: list[int] = []  # the trials it runs, if any

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def start(self, ctx, payload: bytes) -> None:
        parent, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker, args=(child, payload, self.gpu, self.index), daemon=True,
                                   name=f"bomix-worker-{self.index}")
        self.process.start()
        child.close()
        self.conn = parent

    def kill(self) -> None:
        if self.process is None:
            return
        pid = self.process.pid
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)  # the worker and every process of its group
        with contextlib.suppress(OSError, AssertionError, ValueError):  # AssertionError: it never started
            self.process.kill()
            self.process.join(10)
        self.conn.close()
        self.process = self.conn = None
        self.numbers = []

    def __repr__(self) -> str:
        pid = None if self.process is None else self.process.pid
        return f"worker {self.index} (pid {pid}" + (f", GPU {self.gpu})" if self.gpu is not None else ")")


class ProcessRunner(Runner):
    """Up to n_parallel trials at once in local worker processes (see the module docstring).

    gpus: "auto" (CUDA_VISIBLE_DEVICES, else every GPU nvidia-smi lists, else none), a list of GPU
        ids, or None (leave CUDA_VISIBLE_DEVICES alone). With fewer GPUs than workers, workers share
        them round-robin (a warning says so).
    start_method: multiprocessing start method, "spawn" (default) or "forkserver".
    The evaluator must be picklable (every built-in one is); a worker that cannot load it fails
    its trials with that reason.
    """

    name = "process"
    batches = True

    def __init__(self, *, gpus="auto", start_method: str = "spawn"):
        if not (gpus is None or gpus == "auto" or (isinstance(gpus, (list, tuple))
                                                   and all(isinstance(g, (int, str)) for g in gpus))):
            raise ConfigError(f"process runner gpus must be 'auto', a list of GPU ids or None, got {gpus!r}")
        if start_method not in ("spawn", "forkserver"):
            raise ConfigError(f"process runner start_method must be 'spawn' or 'forkserver', got {start_method!r}")
        self.gpus = gpus
        self.start_method = start_method

    def open(self, study, evaluator, n_parallel: int) -> None:
        try:
            self._payload = pickle.dumps(evaluator)
        except Exception as e:
            raise ConfigError(f"the process runner sends the evaluator to worker processes, so it must be "
                              f"picklable; {type(evaluator).__name__} is not: {e}") from e
        gpus = detect_gpus() if self.gpus == "auto" else [str(g) for g in (self.gpus or [])]
        workers = math.ceil(n_parallel / self._batch_size(evaluator))  # what n_parallel trials keep busy
        if gpus and len(gpus) < workers:
            log.warning("process runner: %d workers share %d GPUs (%s)", workers, len(gpus), ",".join(gpus))
        self._ctx = mp.get_context(self.start_method)
        self._slots = [_Slot(i, gpus[i % len(gpus)] if gpus else None) for i in range(n_parallel)]
        self._study = study

    def submit(self, study, trial):
        return self.submit_batch(study, [trial])

    def submit_batch(self, study, trials):
        """Send the trials to an idle worker (started if need be) as one task; the handle is its slot."""
        slot = next(s for s in self._slots if not s.numbers)  # n_parallel slots: one is idle while trials < n_parallel
        if not slot.alive():
            if slot.process is not None:
                slot.kill()
            slot.start(self._ctx, self._payload)
        slot.numbers = [t.number for t in trials]
        slot.conn.send([(t.number, dict(t.weights), self.context(study, t)) for t in trials])
        return slot

    def wait(self, flights, timeout):
        by_slot: dict[int, list] = {}
        watch = {}
        for f in flights:
            by_slot.setdefault(id(f.handle), []).append(f)
            watch[f.handle.conn] = watch[f.handle.process.sentinel] = f.handle
        ready = mp_wait(list(watch), timeout)
        ended, seen = [], set()
        for slot in (watch[r] for r in ready):
            if id(slot) not in seen:
                seen.add(id(slot))
                ended += self._collect(slot, by_slot[id(slot)])
        return ended

    def _collect(self, slot: _Slot, flights) -> list:
        """[(flight, outcome)] for the slot's flights: their results, or why its worker died; [] while it runs."""
        if slot.conn.poll():
            try:
                answers = dict(slot.conn.recv())
            except (EOFError, OSError):
                answers = None
            else:
                slot.numbers = []
                missing = Outcome(error="the worker sent back no result for this trial")  # cannot happen
                return [(f, answers.get(f.trial.number, missing)) for f in flights]
        if slot.process.is_alive():
            return []
        slot.process.join(5)
        reason = signal_name(slot.process.exitcode)
        slot.kill()
        held = f" (with {len(flights) - 1} more trials in its batch)" if len(flights) > 1 else ""
        return [(f, Outcome(error=f"the worker process died while running the trial{held} ({reason}: killed, "
                                  "or out of memory)" + log_tail(self._study.trial_dir(f.trial.number) / LOG_NAME)))
                for f in flights]

    def cancel(self, handle) -> None:
        handle.kill()

    def close(self) -> None:
        for slot in getattr(self, "_slots", []):
            if slot.alive() and not slot.numbers:
                with contextlib.suppress(OSError):
                    slot.conn.send(None)
        for slot in getattr(self, "_slots", []):
            if slot.process is not None:
                slot.process.join(5)
                slot.kill()
        self._slots = []
