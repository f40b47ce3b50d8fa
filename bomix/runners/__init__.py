"""Runners: where trials run and how many at once.

    inline    one trial at a time in this process (the default)
    process   a pool of local worker processes; one GPU per worker (CUDA_VISIBLE_DEVICES) where
              GPUs exist
    ray       Ray tasks with declared resources (e.g. one GPU per trial), on a running cluster or a
              local Ray started for you (optional extra: pip install 'bomix[ray]')
    slurm     Slurm jobs through submitit, or submitit's local executor (optional extra:
              pip install 'bomix[slurm]')

    study.optimize(evaluator, n_trials=64, n_parallel=8, runner="process")
    study.optimize(evaluator, 64, 8, runner=RayRunner(num_gpus=1), timeout=6 * 3600, retries=1)

Every runner but inline is asynchronous: when a trial ends it is told to the study and one new
trial is suggested with the others pending; never more than n_parallel are in flight. Faults
(exceptions, NaN losses, timeouts, killed workers, lost Ray tasks, failed jobs) become FAILED
trials with their reason and log tail, and the campaign goes on (bomix.runners.base).

If the driver itself dies (even SIGKILL), nothing completed is lost: every result is in the
journal before the next trial starts. On resume, a trial still running elsewhere is re-attached
where the runner can (slurm: the job id is in the journal); otherwise it is abandoned and its
mixture redone with the same seed, so it is never counted twice.
"""

from __future__ import annotations

from bomix import registry
from bomix.runners.base import FaultPolicy, Outcome, Runner, TooManyFailuresError, run_trial

RUNNERS: dict[str, str] = {
    "inline": "bomix.runners.base:InlineRunner",
    "process": "bomix.runners.process:ProcessRunner",
    "ray": "bomix.runners.ray:RayRunner",
    "slurm": "bomix.runners.slurm:SlurmRunner",
}


def get_runner(runner="inline", /, **params) -> Runner:
    """A runner by name (with its keyword arguments) or the Runner given."""
    if isinstance(runner, Runner):
        if params:
            raise TypeError(f"runner parameters {sorted(params)} given with a Runner object; set them on the object")
        return runner
    return registry.build(RUNNERS, "runner", runner, params)


__all__ = ["RUNNERS", "FaultPolicy", "Outcome", "Runner", "TooManyFailuresError", "get_runner", "run_trial"]
