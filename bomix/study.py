"""The study: a resumable campaign of trials in a directory.

DIR/study.json        the resolved spec (space, objective, optimizer, seed, and the pool of logged
                      runs when the study searches one), written once (bomix.study_spec)
DIR/journal.jsonl     append-only events: enqueue, create, job, complete, fail, abandon (a complete
                      event with "weights" records the mixture the evaluator actually evaluated;
                      a job event records where a running trial runs, e.g. its Slurm job id)
DIR/trials/<n>/       per-trial artifacts written by evaluators (logs, configs)
DIR/study.lock        the write lock (one writer at a time; readers need no lock)

The journal is the truth: loading replays it. Opening a study for writing takes the lock, and any
trial still RUNNING then belonged to a process that died: it becomes ABANDONED and its mixture is
queued again with its original seed, so the resumed study proceeds exactly as an uninterrupted one.
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
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from bomix.errors import BomixError, ConfigError, InvalidWeightsError, StudyError
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
from bomix.trial import Evaluation, Trial, TrialState

log = logging.getLogger("bomix")

EVENTS = ("enqueue", "create", "job", "complete", "fail", "abandon")


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
        self.seed: int = spec["seed"]
        self.name: str = spec.get("name") or self.directory.name
        self._journal = Journal(self.directory / "journal.jsonl")
        self._lock: StudyLock | None = None
        self._mutex = threading.RLock()
        self._replay()

    # -- loading ------------------------------------------------------------------------------
    def _replay(self) -> None:
        """Rebuild trials and the queue from the journal (the state is kept if a line is invalid)."""
        saved = (getattr(self, "_trials", []), getattr(self, "_queue", {}), getattr(self, "_next_qid", 0))
        self._trials, self._queue, self._next_qid = [], {}, 0
        for lineno, e in enumerate(self._journal.read(), start=1):
            try:
                self._apply(e, where=f"journal line {lineno}")
            except KeyError as err:
                self._trials, self._queue, self._next_qid = saved
                raise StudyError(f"{self._journal.path} line {lineno} is not a valid event (missing field {err}): "
                                 f"{e!r}") from None
            except (TypeError, ValueError, BomixError) as err:
                self._trials, self._queue, self._next_qid = saved
                raise StudyError(f"{self._journal.path} line {lineno} is not a valid event ({err}): {e!r}") from None

    def _apply(self, e: dict, *, where: str = "") -> Trial | None:
        """Apply one journal event to the in-memory state. Replay and live writes both come through
        here, so a study in memory is always exactly what reloading its journal gives."""
        kind = e["event"]
        if kind not in EVENTS:
            raise ValueError(f"event must be one of {list(EVENTS)}, got {kind!r}")
        if kind == "enqueue":
            self.space.validate(e["weights"])
            check_fidelity(e.get("fidelity"), self.fidelities)
            self._queue[e["id"]] = e
            self._next_qid = max(self._next_qid, e["id"] + 1)
            return None
        if kind == "create":
            if e["number"] != len(self._trials):
                raise ValueError(f"trial number {e['number']} out of sequence (expected {len(self._trials)})")
            self._queue.pop(e.get("enqueue_id"), None)
            trial = Trial(number=e["number"], weights=self.space.to_mixture(self.space.validate(e["weights"])),
                          proposed_by=e["proposed_by"], seed=e["seed"], created_at=e["time"],
                          retry_of=e.get("retry_of"), extra=dict(e.get("info") or {}),
                          fidelity=check_fidelity(e.get("fidelity"), self.fidelities))
            self._trials.append(trial)
            return trial
        if not 0 <= e["number"] < len(self._trials):
            raise ValueError(f"{kind} of trial {e['number']}, which was never created")
        t = self._trials[e["number"]]
        if t.state is not TrialState.RUNNING:
            log.warning("%s: ignoring %s of trial %d, already %s", where, kind, t.number, t.state.value)
            return t
        if kind == "job":
            if not isinstance(e["job"], dict):
                raise ValueError(f"a job record must be an object, got {e['job']!r}")
            t.extra["job"] = dict(e["job"])
            return t
        t.finished_at = e["time"]
        if kind == "complete":
            t.state, t.losses = TrialState.COMPLETED, Evaluation(losses=e["losses"]).losses
            if e.get("weights") is not None:  # the evaluator answered with another mixture: record that one
                t.extra["proposed_weights"] = t.weights
                t.weights = self.space.to_mixture(self.space.validate(e["weights"]))
            t.cost, t.curves = e.get("cost") or {}, e.get("curves")
            t.extra.update(e.get("extra") or {})
            t.value = self._score(t.losses)
        else:
            t.state = TrialState.FAILED if kind == "fail" else TrialState.ABANDONED
            t.error = e.get("error")
        return t

    def _score(self, losses: Mapping[str, float]) -> float | None:
        try:
            return self.objective(losses)
        except Exception:
            return None

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
        return list(self._trials)

    @property
    def running(self) -> list[Trial]:
        return [t for t in self._trials if t.state is TrialState.RUNNING]

    @property
    def queued(self) -> list[dict[str, float]]:
        """Mixtures waiting in the queue (enqueued, or abandoned and to be redone), in order."""
        return [self.space.to_mixture(e["weights"]) for e in self._queue.values()]

    @property
    def queued_info(self) -> list[dict]:
        """The info of each queued mixture (e.g. {"replicate_of": 3} for a replicate), in `queued` order."""
        return [dict(e.get("info") or {}) for e in self._queue.values()]

    @property
    def n_finished(self) -> int:
        """Trials that count against the budget: COMPLETED plus FAILED."""
        return sum(t.state in (TrialState.COMPLETED, TrialState.FAILED) for t in self._trials)

    def history(self) -> History:
        live = tuple(t for t in self._trials if t.state is not TrialState.ABANDONED)
        return History(self.space, self.objective, live, self._budget, self.fidelities, self.target_fidelity)

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
        done = [t for t in self._trials if t.state is TrialState.COMPLETED and t.value is not None
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
        return self._apply(event)

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
            self._enqueue(x, source=source, fidelity=self._fidelity(fidelity, "enqueued fidelity"),
                          info=dict(info or {}))

    def _fidelity(self, name, what: str) -> str | None:
        """The scale a new trial runs at: `name` checked, the target when None (None single-fidelity)."""
        return check_fidelity(name, self.fidelities, what=what) or self.target_fidelity

    def _enqueue(self, x, *, source: str, retry_of: int | None = None, seed: int | None = None,
                 front: bool = False, info: dict | None = None, fidelity: str | None = None) -> None:
        event = {"event": "enqueue", "id": self._next_qid, "weights": list(map(float, x)), "source": source,
                 "retry_of": retry_of, "seed": seed, "front": front, "info": info or {}}
        if fidelity is not None:
            event["fidelity"] = fidelity
        self._record(event)

    def _next_queued(self) -> dict | None:
        if not self._queue:
            return None
        front = [e for e in self._queue.values() if e.get("front")]
        return (front or list(self._queue.values()))[0]

    def ask(self, n: int = 1) -> list[Trial]:
        """Create n RUNNING trials: queued mixtures first, then the optimizer's suggestions."""
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        with self._mutex:
            self._writable()
            new: list[Trial] = []
            while len(new) < n and (q := self._next_queued()) is not None:
                seed = q["seed"] if q.get("seed") is not None else self._next_seed()
                new.append(self._create(self.space.validate(q["weights"]), q["source"], seed,
                                        enqueue_id=q["id"], retry_of=q.get("retry_of"), info=q.get("info"),
                                        fidelity=q.get("fidelity")))
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
                    new.append(self._create(x, p.source or self.optimizer.name, self._next_seed(), info=p.info,
                                            fidelity=fidelity))
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
            trial = self._create(self.space.validate(weights), source, self._next_seed(), info=info, fidelity=fidelity)
            return self.tell(trial, ev)

    def _next_seed(self) -> int:
        slot = sum(t.state is not TrialState.ABANDONED for t in self._trials)
        return (self.seed * 1_000_003 + slot) % 2**31

    def _create(self, x, proposed_by: str, seed: int, *, enqueue_id=None, retry_of=None, info=None,
                fidelity: str | None = None) -> Trial:
        event = {"event": "create", "number": len(self._trials), "weights": list(map(float, x)),
                 "proposed_by": proposed_by, "seed": int(seed), "enqueue_id": enqueue_id,
                 "retry_of": retry_of, "info": info or {}}
        if fidelity is not None:  # single-fidelity journals stay as they were
            event["fidelity"] = fidelity
        return self._record(event)

    def _get(self, trial) -> Trial:
        number = trial.number if isinstance(trial, Trial) else trial
        if not isinstance(number, (int, np.integer)) or not 0 <= number < len(self._trials):
            raise StudyError(f"trial must be a Trial or a number in [0, {len(self._trials)}), got {trial!r}")
        return self._trials[number]

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
            t = self._get(trial)
            if t.state is not TrialState.RUNNING:
                raise StudyError(f"only a RUNNING trial can be told; trial {t.number} is already {t.state.value}")
            state = TrialState(state) if state is not None else TrialState.COMPLETED
            if state is TrialState.COMPLETED:
                if evaluation is None:
                    raise StudyError(f"completing trial {t.number} needs its evaluation (per-domain losses), got None")
                ev = evaluation if isinstance(evaluation, Evaluation) else Evaluation(losses=dict(evaluation))
                self.objective(ev.losses)  # raises, writing nothing, if the objective's domains are missing
                # the same losses as the campaign's evaluator's loss_names, else as the first completed trial
                check_loss_names(self.objective, self._trials, t.number, ev.losses, getattr(self, "_loss_names", None))
                event = {"event": "complete", "number": t.number, "losses": ev.losses, "cost": ev.cost,
                         "curves": ev.curves, "extra": ev.extra}
                if ev.weights is not None:  # the mixture actually evaluated (checked before anything is written)
                    try:
                        event["weights"] = list(map(float, self.space.validate(ev.weights)))
                    except InvalidWeightsError as err:
                        raise StudyError(f"trial {t.number}: the mixture the evaluator says it evaluated must lie "
                                         f"in the space: {err}") from None
                self._record(event)
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
            t = self._get(trial)
            if t.state is not TrialState.RUNNING:
                raise StudyError(f"only a RUNNING trial has a job; trial {t.number} is {t.state.value}")
            self._record({"event": "job", "number": t.number, "job": dict(job)})

    def failed_attempts(self, trial) -> int:
        """How many trials of this trial's mixture (it, its retries and redos) FAILED."""
        t = self._get(trial)
        origin = _origin(t)
        return sum(u.state is TrialState.FAILED and (u.number == origin or u.retry_of == origin) for u in self._trials)

    def retry(self, trial) -> None:
        """Queue a FAILED trial's mixture again, first in line, with the same seed (a new trial that
        counts against the budget like any other)."""
        with self._mutex:
            self._writable()
            t = self._get(trial)
            if t.state is not TrialState.FAILED:
                raise StudyError(f"only a FAILED trial can be retried; trial {t.number} is {t.state.value}")
            self._requeue(t)

    def _abandon(self, t: Trial, reason: str) -> None:
        self._record({"event": "abandon", "number": t.number, "error": reason})
        self._requeue(t)

    def _requeue(self, t: Trial) -> None:
        """Queue t's mixture again, first in line, with its seed, as a redo of its original trial
        (its job record stays behind: it belongs to the run that ended)."""
        info = {k: v for k, v in t.extra.items() if k != "job"}
        self._enqueue(t.x, source=t.proposed_by, retry_of=_origin(t), seed=t.seed, front=True, info=info,
                      fidelity=t.fidelity)

    def optimize(self, evaluator, n_trials: int, n_parallel: int = 1, *, runner="inline",
                 timeout: float | None = None, retries: int = 0, max_failures: int | None = None,
                 show_progress: bool | None = None) -> Study:
        """Run trials until the study holds `n_trials` finished (COMPLETED or FAILED) trials.

        `n_trials` is the study's budget, not a number to add: rerunning the same call after a crash
        finishes the same campaign. ABANDONED trials do not count; their mixtures are redone.
        n_parallel: trials in flight at once. runner: "inline" (default), "process", "ray", "slurm"
        or a Runner (bomix.runners). timeout: seconds a trial may run (not with inline). retries:
        further tries of a FAILED mixture. max_failures: stop once more trials than this failed in
        this run (None: once at least 5 failed and more than half of this run's trials failed).
        """
        from bomix.runners import FaultPolicy, get_runner

        if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)) or n_trials < 0:
            raise ConfigError(f"n_trials must be an integer >= 0, got {n_trials!r}")
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
        try:
            runner.run(self, evaluator, n_trials, n_parallel, policy=policy, show_progress=show_progress)
        finally:
            self._loss_names = None
            self._budget = None
        return self

    def top_trials(self, m: int) -> list[Trial]:
        """The m best distinct COMPLETED mixtures, by the model's posterior mean where the optimizer
        has one (`predict`), else by observed value; replicates rank with their original."""
        from bomix.replicates import top_trials

        return top_trials(self, m)

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
        return f"Study({str(self.directory)!r}, {len(self._trials)} trials, optimizer={self.optimizer.name!r})"


def _pool_search(optimizer: Optimizer, pool: np.ndarray, fidelities) -> Optimizer:
    """The study's search of its pool: per run (PoolSearch), or per (run, fidelity) with fidelities."""
    if fidelities is None:
        return PoolSearch(optimizer, pool)
    from bomix.optimizers.pool_mf import MultiFidelityPoolSearch

    return MultiFidelityPoolSearch(optimizer, pool)


def _origin(t: Trial) -> int:
    """The number of the trial that t redoes (itself when it is no redo)."""
    return t.retry_of if t.retry_of is not None else t.number


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
    if space is None:
        if not exists:
            raise ConfigError("creating a study needs a space (a MixtureSpace), got None")
        space = MixtureSpace.from_dict(read_spec(directory)["space"])
    if pool is None and exists:  # resuming: the stored pool, as with the space
        pool = read_spec(directory).get("pool")
    if pool is not None:
        pool = check_pool(space, pool)
    if fidelities is None and exists:
        stored = read_spec(directory).get("fidelities") or {}
        fidelities, target_fidelity = stored.get("costs"), target_fidelity or stored.get("target")
    fidelities, target_fidelity = check_fidelities(fidelities, target_fidelity)
    given = {"space": space.to_dict(), "objective": objective.to_dict(), "optimizer": optimizer_spec(optimizer),
             "seed": int(seed), "pool": None if pool is None else pool.tolist(),
             "fidelities": None if fidelities is None else {"costs": fidelities, "target": target_fidelity}}
    directory.mkdir(parents=True, exist_ok=True)
    lock = StudyLock(directory).acquire()
    try:
        if exists:
            spec = read_spec(directory)
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
