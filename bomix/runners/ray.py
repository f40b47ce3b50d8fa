"""The `ray` runner: each trial is a Ray task with declared resources.

    runner = RayRunner(num_gpus=1)                 # one GPU per trial, on a local Ray started for you
    runner = RayRunner(address="auto", num_gpus=1)   # on the Ray cluster this machine is part of

Ray schedules the tasks on whichever node has the resources free, so `n_parallel` can exceed one
machine's GPUs. Tasks are not retried by Ray (max_retries=0): a lost task (its worker or node
died) becomes a FAILED trial with Ray's reason, and bomix's own `retries` decide what happens
next. A trial over its timeout is cancelled with force (its worker process is killed).

Re-attaching: Ray tasks belong to the driver that submitted them and die with it, so after a
driver crash they cannot be re-attached; their trials are abandoned and their mixtures redone.
If this runner started Ray, it shuts it down at the end; a cluster it connected to is left as is.
Needs Ray (an optional extra): pip install 'bomix[ray]'.
"""

from __future__ import annotations

import logging
import math
import os

from bomix.errors import ConfigError
from bomix.runners.base import Outcome, Runner, run_trial

log = logging.getLogger("bomix")


def _import_ray():
    try:
        import ray
    except ImportError as e:
        raise ConfigError("the ray runner needs Ray, an optional extra: pip install 'bomix[ray]'") from e
    return ray


def _ray_trial(evaluator, weights, context):
    """The Ray task: run one trial, capturing its output in trials/<n>/worker.log."""
    return run_trial(evaluator, weights, context, capture=True)


class RayRunner(Runner):
    """Trials as Ray tasks (see the module docstring).

    address: the Ray cluster to connect to ("auto": the one this machine belongs to); None starts
        a local Ray for the campaign unless one is already running in this process.
    num_cpus, num_gpus, resources: what each trial declares (resources: {name: amount}).
    init: more keyword arguments for ray.init. A local Ray started for you gets
        num_cpus = max(CPU cores, n_parallel * num_cpus) unless `init` sets it, so n_parallel
        trials can run at once even when they mostly wait (on a GPU, on a sleep).
    """

    name = "ray"

    def __init__(self, *, address: str | None = None, num_cpus: float = 1, num_gpus: float = 0,
                 resources: dict | None = None, init: dict | None = None):
        for what, v in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ConfigError(f"ray runner {what} must be a number >= 0, got {v!r}")
        if resources is not None and not isinstance(resources, dict):
            raise ConfigError(f"ray runner resources must be a table {{name: amount}}, got {resources!r}")
        if init is not None and not isinstance(init, dict):
            raise ConfigError(f"ray runner init must be a table of ray.init arguments, got {init!r}")
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.resources = resources
        self.init = init

    def open(self, study, evaluator, n_parallel: int) -> None:
        ray = self._ray = _import_ray()
        self._started = False
        if not ray.is_initialized():
            init = {"include_dashboard": False, "log_to_driver": False, **(self.init or {})}
            if self.address is None and "num_cpus" not in init:  # let a local Ray run n_parallel trials at once
                init["num_cpus"] = max(os.cpu_count() or 1, math.ceil(n_parallel * self.num_cpus))
            ray.init(address=self.address, **init)
            self._started = True
        self._evaluator = ray.put(evaluator)
        self._task = ray.remote(_ray_trial).options(num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                                                    resources=self.resources or {}, max_retries=0)

    def submit(self, study, trial):
        return self._task.remote(self._evaluator, dict(trial.weights), self.context(study, trial))

    def wait(self, flights, timeout):
        ray = self._ray
        refs = {f.handle: f for f in flights}
        ready, _ = ray.wait(list(refs), num_returns=1, timeout=timeout)
        if ready:  # take every other one that is done too
            ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
        ended = []
        for ref in ready:
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayError as e:  # the task was lost: worker or node died, cancelled...
                outcome = Outcome(error=f"the Ray task was lost ({type(e).__name__}): {e}"[:4000])
            ended.append((refs[ref], outcome))
        return ended

    def cancel(self, handle) -> None:
        self._ray.cancel(handle, force=True)

    def close(self) -> None:
        if getattr(self, "_started", False):
            self._ray.shutdown()
            self._started = False
        self._evaluator = self._task = None
