"""The study: a resumable campaign of trials in a directory.

DIR/study.json        the resolved spec (space, objective, optimizer, seed, and the pool of logged
                      runs when the study searches one), written once (bomix.study_spec)
DIR/journal.jsonl     append-only events: enqueue, create, job, complete, fail, abandon, replayed
                      into trials and a queue by bomix.study_state (which documents each event)
DIR/trials/<n>/       per-trial artifacts written by evaluators (logs, configs)
DIR/study.lock        the write lock (one writer at a time; readers need no lock)

The journal is the truth: loading replays it into a bomix.study_state.StudyState, which also builds
the events; the Study checks what it is asked, writes each event under the lock, then applies it.
Opening a study for writing takes the lock, and any trial still RUNNING then belonged to a process
that died: it becomes ABANDONED and its mixture is queued again with its original seed, so the
resumed study proceeds exactly as an uninterrupted one.
A RUNNING trial with a job record (it runs elsewhere: a Slurm job) stays RUNNING until a runner
re-attaches to it or abandons it (Runner.run does one or the other before anything else).

A study with a pool (the logged runs a replay evaluator can answer for) searches it: its optimizer
is wrapped in bomix.optimizers.pool.PoolSearch, so every method picks distinct logged runs and
recommends one it evaluated.

A multi-fidelity study (created with fidelities={name: cost}, e.g. {"1m": 1, "60m": 60}) runs each
trial at one named scale: the create event records it ("fidelity"; absent, i.e. None, in a
single-fidelity study and in journals written before fidelities, which load unchanged), evaluators
receive it in TrialContext.fidelity, and a proposal or enqueued mixture naming a scale the study
lacks is refused. "Best" is then the best trial at the target fidelity: losses at different
scales are not comparable.

One driver at a time: a second process that tries to write to a study another holds is refused
(StudyLockedError names the holder's pid); reading needs no lock.

An evaluator is checked against the study (domains, pool, fidelities, reported losses) by
bomix.study_checks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from bomix.errors import ConfigError, InvalidWeightsError, StudyError
from bomix.fidelity import check_fidelities, check_fidelity
from bomix.journal import Journal, StudyLock
from bomix.objective import Objective
from bomix.optimizers import History, Optimizer, Proposal, Recommendation, get_optimizer
from bomix.optimizers.pool import PoolSearch, check_pool
from bomix.space import MixtureSpace
# check_evaluator_domains and optimizer_spec are also imported from here (bomix.cli, tests)
from bomix.study_checks import (check_evaluator_domains, check_evaluator_fidelities, check_evaluator_pool,
                                check_loss_names)
from bomix.study_spec import (check_same_spec, jsonable, new_spec, optimizer_spec, read_spec, spec_components,
                              write_spec)
from bomix.study_state import StudyState
from bomix.trial import Evaluation, Trial, TrialState


class Study:
    """A campaign of trials over a MixtureSpace. Build with `create_study` or `load_study`."""

    def __init__(self, directory: Path, spec: dict, *, space: MixtureSpace, objective: Objective,
                 optimizer: Optimizer, pool: np.ndarray | None = None):
        self.directory = Path(directory)
        self.spec = spec
        self.space = space
        self.objective = objective
        self.optimizer = optimizer
        self.pool: np.ndarray | None = pool  # (N, k) logged runs the study searches, or None
        fid = spec.get("fidelities") or {}
        self.fidelities, self.target_fidelity = check_fidelities(fid.get("costs"), fid.get("target"))
        self._search: Optimizer = optimizer if pool is None else _pool_search(optimizer, pool, self.fidelities)
        self._budget: int | None = None  # the n_trials of the optimize call under way
        self._compute_budget: float | None = None  # ... and its compute_budget
        self.seed: int = spec["seed"]
        self.name: str = spec.get("name") or self.directory.name
        self._journal = Journal(self.directory / "journal.jsonl")
        self._lock: StudyLock | None = None
        self._mutex = threading.RLock()
        self._loss_names: set[str] | None = None  # the loss names the optimize call's evaluator reports
        self._state = StudyState(space, objective, self.fidelities, seed=self.seed)
        self._replay()

    # -- loading ------------------------------------------------------------------------------
    def _replay(self) -> None:
        """Rebuild trials and the queue from the journal (the state is kept if a line is invalid)."""
        self._state.replay(self._journal.read(), path=self._journal.path)

    def _writable(self) -> None:
        """Take the write lock on first write; reconcile trials left RUNNING by a dead process."""
        if self._lock is not None:
            return
        self._lock = StudyLock(self.directory).acquire()
        self._replay()  # another writer may have appended since we loaded
        self._reconcile()

    def _reconcile(self) -> None:
        """Under the lock: cut a torn journal tail, abandon (and requeue) trials of dead processes."""
        self._journal.repair()
        for t in self.running:
            if "job" not in t.extra:  # a trial running elsewhere waits for a runner to re-attach it
                self._abandon(t, "was RUNNING when the study was reopened: its process died or was killed")

    def close(self) -> None:
        """Release the write lock (the OS releases it anyway when the process exits)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Study:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- views --------------------------------------------------------------------------------
    @property
    def trials(self) -> list[Trial]:
        """Every trial in creation order, ABANDONED ones included."""
        return list(self._state.trials)

    @property
    def running(self) -> list[Trial]:
        return [t for t in self._state.trials if t.state is TrialState.RUNNING]

    @property
    def queued(self) -> list[dict[str, float]]:
        """Mixtures waiting in the queue (enqueued, or abandoned and to be redone), in order."""
        return self._state.queued

    @property
    def queued_info(self) -> list[dict]:
        """The info of each queued mixture (e.g. {"replicate_of": 3} for a replicate), in `queued` order."""
        return self._state.queued_info

    def next_queued_cost(self) -> float | None:
        """The cost (its scale's relative cost) of the queued mixture the next ask(1) runs, or None
        when nothing is queued (the next ask comes from the optimizer) or the study has one scale."""
        event = self._state.next_queued()
        if event is None or self.fidelities is None:
            return None
        return self.fidelities[event.get("fidelity") or self.target_fidelity]

    @property
    def n_finished(self) -> int:
        """Trials that count against the budget: COMPLETED plus FAILED."""
        return sum(t.state in (TrialState.COMPLETED, TrialState.FAILED) for t in self._state.trials)

    def history(self) -> History:
        live = tuple(t for t in self._state.trials if t.state is not TrialState.ABANDONED)
        return History(self.space, self.objective, live, self._budget, self.fidelities, self.target_fidelity,
                       self._compute_budget)

    def compute_spent(self) -> float | None:
        """The compute the study's trials took, in its fidelities' cost units: the sum of each
        COMPLETED, FAILED or RUNNING trial's fidelity cost (None for a single-fidelity study)."""
        return None if self.fidelities is None else self.history().compute_spent()

    def compute_left(self) -> float | None:
        """What the compute_budget of the optimize call under way has left, or None without one."""
        if self._compute_budget is None:
            return None
        return self._compute_budget - self.compute_spent()

    def search_history(self) -> History:
        """The history the optimizer sees: all of it, except that an optimizer that does not model
        fidelities (not a FidelityScorer) in a multi-fidelity study sees only the target's trials,
        so it never compares losses measured at different scales."""
        from bomix.optimizers.pool_mf import FidelityScorer

        history = self.history()
        if self.fidelities is None or isinstance(self.optimizer, FidelityScorer):
            return history
        return dataclasses.replace(history, trials=tuple(t for t in history.trials if self.at_target(t)))

    def fidelity_of(self, trial: Trial) -> str | None:
        """The scale `trial` ran at: its fidelity, or the target when it has none (None single-fidelity)."""
        return trial.fidelity if trial.fidelity is not None else self.target_fidelity

    def at_target(self, trial: Trial) -> bool:
        """True for a trial run at the target scale, and for every trial of a single-fidelity study:
        the trials whose values "best" compares (losses at other scales do not compare)."""
        return self.fidelity_of(trial) == self.target_fidelity

    @property
    def best_trial(self) -> Trial | None:
        """The COMPLETED trial with the lowest objective value (best observed), or None; in a
        multi-fidelity study, among the trials at the target fidelity."""
        done = [t for t in self._state.trials if t.state is TrialState.COMPLETED and t.value is not None
                and self.at_target(t)]
        return min(done, key=lambda t: (t.value, t.number)) if done else None

    def recommend(self) -> Recommendation | None:
        """The optimizer's recommended mixture (model-based where the optimizer has a model); with a
        pool, always a run the study evaluated."""
        return self._search.recommend(self.search_history())

    def trial_dir(self, number: int) -> Path:
        return self.directory / "trials" / str(number)

    def trials_dataframe(self, objective=None):
        """A tidy DataFrame, one row per trial: number, state, value, proposed_by, seed, w_<domain>,
        loss_<name>, cost_<name>, error, times. `objective` re-scores `value` without rerunning."""
        from bomix.export import trials_dataframe

        return trials_dataframe(self, Objective.parse(objective) if objective is not None else self.objective)

    def export(self, directory=None) -> Path:
        """Write ratios.csv + metrics.csv (olmix/RegMix shape) and trials.csv; returns the folder."""
        from bomix.export import export_study

        return export_study(self, Path(directory) if directory else self.directory / "export")

    def import_runs(self, ratios, metrics, **kwargs) -> list[Trial]:
        """Add logged runs (olmix ratios.csv + metrics.csv) as COMPLETED trials; see bomix.export."""
        from bomix.export import import_runs

        return import_runs(self, ratios, metrics, **kwargs)

    # -- writing ------------------------------------------------------------------------------
    def _record(self, event: dict) -> Trial | None:
        """Append an event to the journal (durably), then apply it in memory."""
        event = jsonable({"time": time.time(), **event})
        self._journal.append(event)
        return self._state.apply(event)

    @contextlib.contextmanager
    def writing(self) -> Iterator[Study]:
        """A context that holds the study for writing: it takes the write lock on first use (reconciling
        trials left RUNNING by a dead process) and keeps other threads of this process out, so what is
        read and written inside (trials, queue, enqueue) is one consistent step."""
        with self._mutex:
            self._writable()
            yield self

    def enqueue(self, weights, *, source: str = "enqueued", fidelity: str | None = None,
                info: Mapping | None = None) -> None:
        """Queue a mixture to be evaluated before the optimizer is asked again (FIFO), at
        `fidelity` (one of the study's fidelities; None: the target, or the only scale). `info`
        (JSON-serialisable) becomes the extra of the trial that evaluates it."""
        with self._mutex:
            self._writable()
            x = self.space.validate(weights)
            self._record(self._state.enqueue_event(x, source=source, info=dict(info or {}),
                                                   fidelity=self._fidelity(fidelity, "enqueued fidelity")))

    def _fidelity(self, name, what: str) -> str | None:
        """The scale a new trial runs at: `name` checked, the target when None (None single-fidelity)."""
        return check_fidelity(name, self.fidelities, what=what) or self.target_fidelity

    def ask(self, n: int = 1) -> list[Trial]:
        """Create n RUNNING trials: queued mixtures first, then the optimizer's suggestions."""
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        with self._mutex:
            self._writable()
            new: list[Trial] = []
            while len(new) < n and (event := self._state.dequeue_event()) is not None:
                new.append(self._record(event))
            if len(new) < n:
                proposals = self._search.suggest(self.search_history(), n - len(new))
                for p in proposals:
                    p = p if isinstance(p, Proposal) else Proposal(np.asarray(p))
                    try:
                        x = self.space.clean(p.weights)
                    except InvalidWeightsError as e:
                        raise StudyError(f"optimizer {self.optimizer.name!r} proposed an infeasible mixture: {e}") from e
                    try:
                        fidelity = self._fidelity(p.fidelity, "proposal's fidelity")
                    except ConfigError as e:
                        raise StudyError(f"optimizer {self.optimizer.name!r} proposed an unknown fidelity: {e}") from e
                    new.append(self._record(self._state.create_event(
                        x, p.source or self.optimizer.name, self._state.next_seed(), info=p.info, fidelity=fidelity)))
            return new

    def add_trial(self, weights, losses: Evaluation | Mapping, *, source: str = "added", info=None,
                  fidelity: str | None = None) -> Trial:
        """Record an already-evaluated mixture as a COMPLETED trial (bring your own runs), run at
        `fidelity` (None: the target, or the only scale)."""
        with self._mutex:
            self._writable()
            ev = losses if isinstance(losses, Evaluation) else Evaluation(losses=dict(losses))
            self.objective(ev.losses)
            fidelity = self._fidelity(fidelity, "added trial's fidelity")
            trial = self._record(self._state.create_event(self.space.validate(weights), source,
                                                          self._state.next_seed(), info=info, fidelity=fidelity))
            return self.tell(trial, ev)

    def tell(self, trial, evaluation: Evaluation | Mapping | None = None, *, state: TrialState | str | None = None,
             error: str | None = None) -> Trial:
        """Finish a RUNNING trial.

        tell(trial, Evaluation(...)) or tell(trial, {"books": 4.51, ...}): COMPLETED with those losses.
            An Evaluation with `weights` (the mixture actually evaluated) replaces the trial's weights
            with them and keeps the proposal in trial.extra["proposed_weights"].
        tell(trial, state="failed", error="OOM"): FAILED (counts against the budget, kept with its reason).
        tell(trial, state="abandoned"): its work is lost; the mixture is queued again with the same seed.
        """
        with self._mutex:
            self._writable()
            t = self._state.trial(trial)
            if t.state is not TrialState.RUNNING:
                raise StudyError(f"only a RUNNING trial can be told; trial {t.number} is already {t.state.value}")
            state = TrialState(state) if state is not None else TrialState.COMPLETED
            if state is TrialState.COMPLETED:
                if evaluation is None:
                    raise StudyError(f"completing trial {t.number} needs its evaluation (per-domain losses), got None")
                ev = evaluation if isinstance(evaluation, Evaluation) else Evaluation(losses=dict(evaluation))
                self.objective(ev.losses)  # raises, writing nothing, if the objective's domains are missing
                # the same losses as the campaign's evaluator's loss_names, else as the first completed trial
                check_loss_names(self.objective, self._state.trials, t.number, ev.losses, self._loss_names)
                self._record(self._state.complete_event(t, ev))
            elif state is TrialState.FAILED:
                self._record({"event": "fail", "number": t.number, "error": error or "unknown error"})
            elif state is TrialState.ABANDONED:
                self._abandon(t, error or "abandoned")
            else:
                raise StudyError(f"state must be completed, failed or abandoned, got {state.value}")
            return t

    def batch(self):
        """A context in which journal writes share one fsync (group commit), e.g. a runner telling
        the trials that ended together and starting their successors; see Journal.batch."""
        return self._journal.batch()

    def record_job(self, trial, job: Mapping) -> None:
        """Record where a RUNNING trial runs (a runner's job id, folder...), so that a driver that
        resumes the study after this one died can re-attach to it instead of redoing it."""
        with self._mutex:
            self._writable()
            t = self._state.trial(trial)
            if t.state is not TrialState.RUNNING:
                raise StudyError(f"only a RUNNING trial has a job; trial {t.number} is {t.state.value}")
            self._record({"event": "job", "number": t.number, "job": dict(job)})

    def failed_attempts(self, trial) -> int:
        """How many trials of this trial's mixture (it, its retries and redos) FAILED."""
        return self._state.failed_attempts(self._state.trial(trial))

    def retry(self, trial) -> None:
        """Queue a FAILED trial's mixture again, first in line, with the same seed (a new trial that
        counts against the budget like any other)."""
        with self._mutex:
            self._writable()
            t = self._state.trial(trial)
            if t.state is not TrialState.FAILED:
                raise StudyError(f"only a FAILED trial can be retried; trial {t.number} is {t.state.value}")
            self._record(self._state.requeue_event(t))

    def _abandon(self, t: Trial, reason: str) -> None:
        self._record({"event": "abandon", "number": t.number, "error": reason})
        self._record(self._state.requeue_event(t))

    def optimize(self, evaluator, n_trials: int | None = None, n_parallel: int = 1, *, runner="inline",
                 timeout: float | None = None, retries: int = 0, max_failures: int | None = None,
                 show_progress: bool | None = None, compute_budget: float | None = None) -> Study:
        """Run trials until the study holds `n_trials` finished (COMPLETED or FAILED) trials.

        `n_trials` is the study's budget, not a number to add: rerunning the same call after a crash
        finishes the same campaign. ABANDONED trials do not count; their mixtures are redone.
        n_parallel: trials in flight at once. runner: "inline" (default), "process", "ray", "slurm"
        or a Runner (bomix.runners). timeout: seconds a trial may run (not with inline). retries:
        further tries of a FAILED mixture. max_failures: stop once more trials than this failed in
        this run (None: once at least 5 failed and more than half of this run's trials failed).
        compute_budget: a multi-fidelity study's total compute, in its fidelities' cost units (a
        60M run at cost 60 spends 60 of it): no trial starts that the compute left cannot pay for,
        and the optimizer sees the budget (bo_mf keeps its last runs for the target). The study
        stops at whichever of n_trials and compute_budget comes first; like n_trials it is the
        campaign's total, so rerunning the same call resumes without overspending. With
        compute_budget, n_trials may be left out: the compute alone bounds the campaign (n_trials
        is then the most trials it can buy, compute_budget / the cheapest fidelity's cost).
        """
        from bomix.runners import FaultPolicy, get_runner

        if n_trials is None and compute_budget is None:
            raise ConfigError("optimize needs n_trials (the finished trials the study should hold), or, for a "
                              "multi-fidelity study, compute_budget; got neither")
        if n_trials is not None and (isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer))
                                     or n_trials < 0):
            raise ConfigError(f"n_trials must be an integer >= 0, got {n_trials!r}")
        if compute_budget is not None:
            if isinstance(compute_budget, bool) or not isinstance(compute_budget, (int, float, np.number)) \
                    or not math.isfinite(compute_budget) or compute_budget <= 0:
                raise ConfigError(f"compute_budget must be a finite number > 0, got {compute_budget!r}")
            if self.fidelities is None:
                raise ConfigError(f"compute_budget needs a multi-fidelity study (its trials' costs come from the "
                                  f"fidelities its evaluator declares); study {self.name!r} has one scale, where "
                                  f"n_trials is the budget (got compute_budget={compute_budget!r})")
            if n_trials is None:  # every trial costs at least the cheapest fidelity: the most the compute buys
                n_trials = int(math.floor(compute_budget / min(self.fidelities.values()) + 1e-9))
        if isinstance(n_parallel, bool) or not isinstance(n_parallel, (int, np.integer)) or n_parallel < 1:
            raise ConfigError(f"n_parallel must be an integer >= 1, got {n_parallel!r}")
        check_evaluator_domains(evaluator, self.space)
        check_evaluator_pool(evaluator, self.pool)
        policy = FaultPolicy(timeout=timeout, retries=retries, max_failures=max_failures)
        runner = get_runner(runner["name"], **runner.get("params", {})) if isinstance(runner, Mapping) \
            else get_runner(runner)
        check_evaluator_fidelities(self, evaluator, runner)
        self._writable()
        names = getattr(evaluator, "loss_names", None)
        self._loss_names = set(names) if names else None
        self._budget = int(n_trials)
        self._compute_budget = None if compute_budget is None else float(compute_budget)
        try:
            runner.run(self, evaluator, n_trials, n_parallel, policy=policy, show_progress=show_progress)
        finally:
            self._loss_names = None
            self._budget = None
            self._compute_budget = None
        return self

    def top_trials(self, m: int) -> list[Trial]:
        """The m best distinct COMPLETED mixtures, by the model's posterior mean where the optimizer
        has one (`predict`), else by observed value; replicates rank with their original."""
        from bomix.replicates import top_trials

        return top_trials(self, m)

    def which_wins(self, top: int = 5, n_samples: int = 4096, basis: str = "independent"):
        """The `top` best evaluated mixtures with the model's predicted value and sd, p_best (the
        probability that each has the lowest noise-free objective of them) and expected_regret:
        how sure the recommendation is. basis: "independent" or "joint" draws. A DataFrame; see
        bomix.confidence."""
        from bomix.confidence import which_wins

        return which_wins(self, top, n_samples, basis)

    def replicate(self, evaluator, *, top: int = 3, repeats: int = 2, n_parallel: int = 1, runner="inline",
                  show_progress: bool | None = None):
        """Re-evaluate the `top` best mixtures `repeats` more times each, with fresh trial seeds, and
        return `replicates()`. See bomix.replicates."""
        from bomix.replicates import replicate

        return replicate(self, evaluator, top=top, repeats=repeats, n_parallel=n_parallel, runner=runner,
                         show_progress=show_progress)

    def replicates(self):
        """A DataFrame per replicated mixture: first value, mean, sd and count of all its evaluations,
        and `luck` = first value - mean (how lucky the first draw was)."""
        from bomix.replicates import replicates_table

        return replicates_table(self)

    def __repr__(self) -> str:
        return f"Study({str(self.directory)!r}, {len(self._state.trials)} trials, optimizer={self.optimizer.name!r})"


def _pool_search(optimizer: Optimizer, pool: np.ndarray, fidelities) -> Optimizer:
    """The study's search of its pool: per run (PoolSearch), or per (run, fidelity) with fidelities."""
    if fidelities is None:
        return PoolSearch(optimizer, pool)
    from bomix.optimizers.pool_mf import MultiFidelityPoolSearch

    return MultiFidelityPoolSearch(optimizer, pool)


def load_study(directory) -> Study:
    """Open an existing study. Reading needs no lock; the first write (ask, tell, enqueue, optimize)
    takes it and reconciles trials left RUNNING by a process that died."""
    directory = Path(directory)
    spec = read_spec(directory)
    space, objective, optimizer, pool = spec_components(directory, spec)
    return Study(directory, spec, space=space, objective=objective, optimizer=optimizer, pool=pool)


def create_study(directory, *, space: MixtureSpace | None = None, optimizer="sobol", objective="mean",
                 seed: int = 0, load_if_exists: bool = False, name: str | None = None, pool=None,
                 fidelities=None, target_fidelity: str | None = None) -> Study:
    """Create a study in `directory`, or resume it (load_if_exists=True) if it already holds one.

    optimizer: a registered name (built with seed=`seed`) or an Optimizer. Resuming with a space,
    objective, optimizer, seed or pool different from the stored ones is refused, naming the
    difference. pool: None, or the (N, k) logged runs the study searches (a replay evaluator's
    `pool`): every optimizer then picks distinct runs among them (bomix.optimizers.pool); when
    resuming, None means the stored pool.
    fidelities: None (one scale), or {name: relative cost} of the scales trials may run at (an
    evaluator's `fidelities`), with `target_fidelity` the one recommendations are for (None: the
    costliest); when resuming, None means the stored ones.
    The returned study holds the write lock.
    """
    directory = Path(directory)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    if not isinstance(optimizer, Optimizer):
        optimizer = get_optimizer(optimizer, seed=seed)
    objective = Objective.parse(objective)
    exists = (directory / "study.json").exists()
    if exists and not load_if_exists:
        raise StudyError(f"{directory} already holds a study; pass load_if_exists=True to resume it")
    if not exists and directory.exists() and any(directory.iterdir()):
        raise StudyError(f"a new study needs an empty or new directory, but {directory} has other files and no study.json")
    stored = read_spec(directory) if exists else None  # written once at creation: one read serves
    if space is None:
        if not exists:
            raise ConfigError("creating a study needs a space (a MixtureSpace), got None")
        space = MixtureSpace.from_dict(stored["space"])
    if pool is None and exists:  # resuming: the stored pool, as with the space
        pool = stored.get("pool")
    if pool is not None:
        pool = check_pool(space, pool)
    if fidelities is None and exists:
        scales = stored.get("fidelities") or {}
        fidelities, target_fidelity = scales.get("costs"), target_fidelity or scales.get("target")
    fidelities, target_fidelity = check_fidelities(fidelities, target_fidelity)
    given = {"space": space.to_dict(), "objective": objective.to_dict(), "optimizer": optimizer_spec(optimizer),
             "seed": int(seed), "pool": None if pool is None else pool.tolist(),
             "fidelities": None if fidelities is None else {"costs": fidelities, "target": target_fidelity}}
    directory.mkdir(parents=True, exist_ok=True)
    lock = StudyLock(directory).acquire()
    try:
        if exists:
            spec = stored
            check_same_spec(directory, spec, given)
        else:
            spec = new_spec(name or directory.name, given)
            write_spec(directory, spec)
            (directory / "journal.jsonl").touch()
        study = Study(directory, spec, space=space, objective=objective, optimizer=optimizer, pool=pool)
    except BaseException:
        lock.release()
        raise
    study._lock = lock
    study._reconcile()
    return study
