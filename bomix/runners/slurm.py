"""The `slurm` runner: each trial is a Slurm job, submitted through submitit.

    runner = SlurmRunner(parameters={"slurm_partition": "gpu", "gpus_per_node": 1, "timeout_min": 720})
    runner = SlurmRunner(cluster="local")   # submitit's local executor: jobs as local processes

Jobs outlive the driver, so this runner can re-attach: it records each trial's job id and folder
in the study's journal, and a driver that resumes the study after the last one was killed (even
by SIGKILL) waits for those jobs and collects their results instead of redoing them. A job that
ended without a result (cancelled, out of memory, over Slurm's time limit) is a FAILED trial
with submitit's reason and the job's stderr tail. A trial over bomix's own `timeout` is
cancelled (scancel). A driver killed in the instant between submitting a job and writing its id
to the journal leaves a trial without a job record: that one is abandoned and redone (the orphan
job's result is not used, so nothing is counted twice).

Job files go to `folder` (default: DIR/slurm/ of the study), which must be on a file system the
nodes share. Needs submitit (an optional extra): pip install 'bomix[slurm]'.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

from bomix.errors import ConfigError
from bomix.runners.base import Outcome, Runner, run_trial

log = logging.getLogger("bomix")

CLUSTERS = ("slurm", "local")
LOCAL_TIMEOUT_MIN = 7 * 24 * 60  # submitit's local executor kills a job after 5 minutes unless told otherwise


def _import_submitit():
    try:
        import submitit
    except ImportError as e:
        raise ConfigError("the slurm runner needs submitit, an optional extra: pip install 'bomix[slurm]'") from e
    return submitit


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Job:
    """A submitit job; `pid` is set for a local job re-attached after its driver died (submitit
    then has no process handle and cannot tell by itself whether it still runs)."""

    def __init__(self, job, cluster: str, pid: int | None = None):
        self.job, self.cluster, self.pid = job, cluster, pid

    def done(self) -> bool:
        if self.pid is not None:
            return self.job.paths.result_pickle.exists() or not _alive(self.pid)
        return self.job.done()

    def outcome(self) -> Outcome:
        try:
            return self.job.result()
        except Exception as e:  # noqa: BLE001 - killed, out of memory, over the time limit, lost
            stderr = ""
            with contextlib.suppress(Exception):
                stderr = (self.job.stderr() or "")[-2000:]
            message = f"the {self} ended without a result ({type(e).__name__}): {e}"[:3000]
            return Outcome(error=message + (f"\n--- job stderr ---\n{stderr}" if stderr and stderr not in message else ""))

    def cancel(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGINT)
            return
        self.job.cancel(check=False)

    def __repr__(self) -> str:
        return f"{self.cluster} job {self.job.job_id}"


class SlurmRunner(Runner):
    """Trials as Slurm jobs through submitit (see the module docstring).

    cluster: "slurm", or "local" (submitit's local executor, for trying a setup on one machine).
    parameters: submitit executor parameters, e.g. {"slurm_partition": "gpu", "gpus_per_node": 1,
        "cpus_per_task": 8, "timeout_min": 720}; a wrong name is refused by submitit.
    folder: where submitit writes job files (default DIR/slurm of the study).
    poll: seconds between looks at the jobs' states.
    """

    name = "slurm"

    def __init__(self, *, cluster: str = "slurm", parameters: dict | None = None, folder: str | None = None,
                 poll: float = 1.0):
        if cluster not in CLUSTERS:
            raise ConfigError(f"slurm runner cluster must be one of {list(CLUSTERS)}, got {cluster!r}")
        if parameters is not None and not isinstance(parameters, dict):
            raise ConfigError(f"slurm runner parameters must be a table of submitit parameters, got {parameters!r}")
        if isinstance(poll, bool) or not isinstance(poll, (int, float)) or poll <= 0:
            raise ConfigError(f"slurm runner poll must be a number of seconds > 0, got {poll!r}")
        self.cluster = cluster
        self.parameters = parameters
        self.folder = folder
        self.poll = poll

    def _folder(self, study) -> Path:
        return Path(self.folder) if self.folder is not None else study.directory / "slurm"

    def open(self, study, evaluator, n_parallel: int) -> None:
        self._submitit = submitit = _import_submitit()
        params = dict(self.parameters or {})
        if self.cluster == "local":
            params.setdefault("timeout_min", LOCAL_TIMEOUT_MIN)
        self._executor = submitit.AutoExecutor(folder=self._folder(study), cluster=self.cluster)
        try:
            self._executor.update_parameters(**params)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"slurm runner parameters {params} are not all submitit's: {e}") from None
        self._evaluator = evaluator

    def submit(self, study, trial):
        job = self._executor.submit(run_trial, self._evaluator, dict(trial.weights), self.context(study, trial), True)
        study.record_job(trial, {"runner": self.name, "cluster": self.cluster, "job_id": str(job.job_id),
                                 "folder": str(self._folder(study))})
        return _Job(job, self.cluster)

    def wait(self, flights, timeout):
        end = time.monotonic() + timeout
        while True:
            ended = [(f, f.handle.outcome()) for f in flights if f.handle.done()]
            if ended or time.monotonic() >= end:
                return ended
            time.sleep(max(0.0, min(self.poll, end - time.monotonic())))

    def cancel(self, handle) -> None:
        handle.cancel()

    def reattach(self, study, trial):
        job = trial.extra.get("job") or {}
        if job.get("runner") != self.name or job.get("cluster") != self.cluster:
            return None
        submitit = self._submitit
        if self.cluster == "local":
            from submitit.local.local import LocalJob

            pid = int(job["job_id"])
            handle = _Job(LocalJob(folder=job["folder"], job_id=job["job_id"]), "local", pid=pid)
            if not handle.job.paths.result_pickle.exists() and not _alive(pid):
                return None  # it died with no result: redo it
            return handle
        return _Job(submitit.SlurmJob(folder=job["folder"], job_id=job["job_id"]), "slurm")

    def close(self) -> None:
        self._executor = self._evaluator = None
