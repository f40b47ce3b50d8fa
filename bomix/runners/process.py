"""The `process` runner: trials side by side in a pool of local worker processes.

Each of the n_parallel workers is a long-lived process (started with "spawn", so no CUDA or
thread state is inherited) that evaluates one trial at a time. Where GPUs exist, worker i sees
one of them, CUDA_VISIBLE_DEVICES=gpus[i % len(gpus)], for its whole life, so 8 workers on an
8-GPU machine train 8 proxies at once, one per GPU.

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
import multiprocessing as mp
import os
import pickle
import shutil
import signal
import subprocess
from multiprocessing.connection import wait as mp_wait

from bomix.errors import ConfigError
from bomix.runners.base import LOG_NAME, Outcome, Runner, die_with_parent, log_tail, run_trial, signal_name

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


def _worker(conn, payload: bytes, gpu: str | None, index: int = 0) -> None:
    """A worker's life: unpickle the evaluator once, then evaluate trials until told to stop."""
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
        number, weights, context = task
        outcome = Outcome(error=broken) if broken else run_trial(evaluator, weights, context, capture=True)
        try:
            conn.send((number, outcome))
        except (OSError, pickle.PicklingError) as e:
            with contextlib.suppress(OSError):
                conn.send((number, Outcome(error=f"the trial's result could not be sent back: {e}")))
            return


class _Slot:
    """One worker process, its pipe and its GPU."""

    def __init__(self, index: int, gpu: str | None):
        self.index, self.gpu = index, gpu
        self.process = self.conn = None
        self.number: int | None = None  # the trial it runs, if any

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
        self.number = None

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
        if gpus and len(gpus) < n_parallel:
            log.warning("process runner: %d workers share %d GPUs (%s)", n_parallel, len(gpus), ",".join(gpus))
        self._ctx = mp.get_context(self.start_method)
        self._slots = [_Slot(i, gpus[i % len(gpus)] if gpus else None) for i in range(n_parallel)]
        self._study = study

    def submit(self, study, trial):
        slot = next(s for s in self._slots if s.number is None)
        if not slot.alive():
            if slot.process is not None:
                slot.kill()
            slot.start(self._ctx, self._payload)
        slot.number = trial.number
        slot.conn.send((trial.number, dict(trial.weights), self.context(study, trial)))
        return slot

    def wait(self, flights, timeout):
        watch = {}
        for f in flights:
            watch[f.handle.conn] = f
            watch[f.handle.process.sentinel] = f
        ready = mp_wait(list(watch), timeout)
        ended, seen = [], set()
        for flight in (watch[r] for r in ready):
            if id(flight) in seen:
                continue
            seen.add(id(flight))
            outcome = self._collect(flight)
            if outcome is not None:
                ended.append((flight, outcome))
        return ended

    def _collect(self, flight) -> Outcome | None:
        """The flight's outcome: its result, or why its worker died; None if it is still running."""
        slot = flight.handle
        if slot.conn.poll():
            try:
                number, outcome = slot.conn.recv()
            except (EOFError, OSError):
                outcome = None
            else:
                slot.number = None
                if number != flight.trial.number:  # cannot happen: one trial per worker at a time
                    return Outcome(error=f"the worker answered for trial {number}, not {flight.trial.number}")
                return outcome
        if slot.process.is_alive():
            return None
        slot.process.join(5)
        reason = signal_name(slot.process.exitcode)
        slot.kill()
        return Outcome(error=f"the worker process died while running the trial ({reason}: killed, or out of memory)"
                             + log_tail(self._study.trial_dir(flight.trial.number) / LOG_NAME))

    def cancel(self, handle) -> None:
        handle.kill()

    def close(self) -> None:
        for slot in getattr(self, "_slots", []):
            if slot.alive() and slot.number is None:
                with contextlib.suppress(OSError):
                    slot.conn.send(None)
        for slot in getattr(self, "_slots", []):
            if slot.process is not None:
                slot.process.join(5)
                slot.kill()
        self._slots = []
