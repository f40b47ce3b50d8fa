"""A study's state in memory: its trials and its queue, exactly as replaying its journal leaves them.

The journal (DIR/journal.jsonl, bomix.journal) is a list of events, one JSON object each, with
"event" one of EVENTS and "time" (Unix seconds):
  enqueue   a mixture queued: "id", "weights", "source", "seed" (None: a fresh one), "retry_of",
            "front" (a redo, first in line), "info", and "fidelity" in a multi-fidelity study
  create    trial "number" made RUNNING: "weights", "proposed_by", "seed", "retry_of", "info" (the
            trial's extra), "enqueue_id" when it takes a mixture off the queue, and "fidelity" in a
            multi-fidelity study
  job       where RUNNING trial "number" runs: "job", e.g. {"slurm": 42} (complete, fail and abandon
            also name the trial by "number")
  complete  its "losses" (per loss name, in the evaluator's unit), "cost", "curves", "extra", and
            "weights" when the evaluator evaluated another mixture than the one proposed
  fail      its "error"
  abandon   its "error"; an enqueue event that follows queues its mixture again
An event for a trial that is no longer RUNNING is ignored, with a warning.

StudyState applies events one at a time, and builds the enqueue, create and complete events without
writing them: bomix.study writes each event to the journal, then applies it here, so a study in
memory is always exactly what reloading its journal gives. It holds no lock and does no I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from bomix.errors import BomixError, InvalidWeightsError, StudyError
from bomix.fidelity import check_fidelity
from bomix.objective import Objective
from bomix.space import MixtureSpace
from bomix.trial import Evaluation, Trial, TrialState

log = logging.getLogger("bomix")

EVENTS = ("enqueue", "create", "job", "complete", "fail", "abandon")


class StudyState:
    """The trials and queue of one study, rebuilt from its journal's events.

    trials: every trial in creation order (a trial's number is its index), ABANDONED ones included.
    queue: enqueue id -> enqueue event, for each mixture waiting, in the order they were queued.
    next_qid: the id the next enqueue event takes.
    space, objective (scores completed trials), fidelities ({name: cost}, or None) and seed (from which
    each new trial's seed derives) are the study's.
    """

    def __init__(self, space: MixtureSpace, objective: Objective, fidelities: Mapping[str, float] | None, *,
                 seed: int):
        self.space = space
        self.objective = objective
        self.fidelities = fidelities
        self.seed = seed
        self.trials: list[Trial] = []
        self.queue: dict[int, dict] = {}
        self.next_qid = 0

    # -- applying events ----------------------------------------------------------------------
    def replay(self, events: Iterable[dict], *, path: Path) -> None:
        """Rebuild trials and queue from `events`, a journal's in order (`path` names it in errors).
        StudyError on an invalid event, naming its line; the state is then kept as it was."""
        saved = self.trials, self.queue, self.next_qid
        self.trials, self.queue, self.next_qid = [], {}, 0
        for lineno, e in enumerate(events, start=1):
            try:
                self.apply(e, where=f"journal line {lineno}")
            except KeyError as err:
                self.trials, self.queue, self.next_qid = saved
                raise StudyError(f"{path} line {lineno} is not a valid event (missing field {err}): {e!r}") from None
            except (TypeError, ValueError, BomixError) as err:
                self.trials, self.queue, self.next_qid = saved
                raise StudyError(f"{path} line {lineno} is not a valid event ({err}): {e!r}") from None

    def apply(self, e: dict, *, where: str = "") -> Trial | None:
        """Apply one event; returns the trial it created or changed (None for enqueue). Replay and
        live writes both come through here. `where` names the event in a warning."""
        kind = e["event"]
        if kind not in EVENTS:
            raise ValueError(f"event must be one of {list(EVENTS)}, got {kind!r}")
        if kind == "enqueue":
            self.space.validate(e["weights"])
            check_fidelity(e.get("fidelity"), self.fidelities)
            self.queue[e["id"]] = e
            self.next_qid = max(self.next_qid, e["id"] + 1)
            return None
        if kind == "create":
            if e["number"] != len(self.trials):
                raise ValueError(f"trial number {e['number']} out of sequence (expected {len(self.trials)})")
            self.queue.pop(e.get("enqueue_id"), None)
            trial = Trial(number=e["number"], weights=self.space.to_mixture(self.space.validate(e["weights"])),
                          proposed_by=e["proposed_by"], seed=e["seed"], created_at=e["time"],
                          retry_of=e.get("retry_of"), extra=dict(e.get("info") or {}),
                          fidelity=check_fidelity(e.get("fidelity"), self.fidelities))
            self.trials.append(trial)
            return trial
        if not 0 <= e["number"] < len(self.trials):
            raise ValueError(f"{kind} of trial {e['number']}, which was never created")
        t = self.trials[e["number"]]
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

    # -- building events (the study stamps, writes and applies them) ---------------------------
    def enqueue_event(self, x, *, source: str, retry_of: int | None = None, seed: int | None = None,
                      front: bool = False, info: dict | None = None, fidelity: str | None = None) -> dict:
        """The event queueing mixture `x` ((k,) weights on the simplex, in space.domains order)."""
        event = {"event": "enqueue", "id": self.next_qid, "weights": list(map(float, x)), "source": source,
                 "retry_of": retry_of, "seed": seed, "front": front, "info": info or {}}
        if fidelity is not None:
            event["fidelity"] = fidelity
        return event

    def requeue_event(self, t: Trial) -> dict:
        """The event queueing t's mixture again, first in line, with its seed, as a redo of its original
        trial (its job record stays behind: it belongs to the run that ended)."""
        info = {k: v for k, v in t.extra.items() if k != "job"}
        return self.enqueue_event(t.x, source=t.proposed_by, retry_of=origin(t), seed=t.seed, front=True,
                                  info=info, fidelity=t.fidelity)

    def create_event(self, x, proposed_by: str, seed: int, *, enqueue_id=None, retry_of=None, info=None,
                     fidelity: str | None = None) -> dict:
        """The event creating the next trial, RUNNING mixture `x` ((k,) weights) with `seed`."""
        event = {"event": "create", "number": len(self.trials), "weights": list(map(float, x)),
                 "proposed_by": proposed_by, "seed": int(seed), "enqueue_id": enqueue_id,
                 "retry_of": retry_of, "info": info or {}}
        if fidelity is not None:  # single-fidelity journals stay as they were
            event["fidelity"] = fidelity
        return event

    def dequeue_event(self) -> dict | None:
        """The event creating a trial of the next queued mixture (`next_queued`), with its queued seed
        or else the next one; None when the queue is empty."""
        q = self.next_queued()
        if q is None:
            return None
        seed = q["seed"] if q.get("seed") is not None else self.next_seed()
        return self.create_event(self.space.validate(q["weights"]), q["source"], seed, enqueue_id=q["id"],
                                 retry_of=q.get("retry_of"), info=q.get("info"), fidelity=q.get("fidelity"))

    def complete_event(self, t: Trial, ev: Evaluation) -> dict:
        """The event completing trial t with evaluation `ev`; StudyError, before anything is written,
        if the mixture the evaluator says it evaluated (ev.weights) is not in the space."""
        event = {"event": "complete", "number": t.number, "losses": ev.losses, "cost": ev.cost,
                 "curves": ev.curves, "extra": ev.extra}
        if ev.weights is not None:  # the mixture actually evaluated
            try:
                event["weights"] = list(map(float, self.space.validate(ev.weights)))
            except InvalidWeightsError as err:
                raise StudyError(f"trial {t.number}: the mixture the evaluator says it evaluated must lie "
                                 f"in the space: {err}") from None
        return event

    # -- reading ------------------------------------------------------------------------------
    def trial(self, trial) -> Trial:
        """The trial `trial` (a Trial or a trial number) names; StudyError for any other value."""
        number = trial.number if isinstance(trial, Trial) else trial
        if not isinstance(number, (int, np.integer)) or not 0 <= number < len(self.trials):
            raise StudyError(f"trial must be a Trial or a number in [0, {len(self.trials)}), got {trial!r}")
        return self.trials[number]

    def next_seed(self) -> int:
        """The seed of the next new trial: one per slot (trials not ABANDONED), derived from the study's."""
        slot = sum(t.state is not TrialState.ABANDONED for t in self.trials)
        return (self.seed * 1_000_003 + slot) % 2**31

    def failed_attempts(self, trial: Trial) -> int:
        """How many trials of this trial's mixture (it, its retries and redos) FAILED."""
        first = origin(trial)
        return sum(u.state is TrialState.FAILED and (u.number == first or u.retry_of == first) for u in self.trials)

    def next_queued(self) -> dict | None:
        """The enqueue event of the mixture to run next: the first redo ("front"), else the first queued."""
        if not self.queue:
            return None
        front = [e for e in self.queue.values() if e.get("front")]
        return (front or list(self.queue.values()))[0]

    @property
    def queued(self) -> list[dict[str, float]]:
        """Mixtures waiting in the queue (enqueued, or abandoned and to be redone), in order."""
        return [self.space.to_mixture(e["weights"]) for e in self.queue.values()]

    @property
    def queued_info(self) -> list[dict]:
        """The info of each queued mixture (e.g. {"replicate_of": 3} for a replicate), in `queued` order."""
        return [dict(e.get("info") or {}) for e in self.queue.values()]


def origin(t: Trial) -> int:
    """The number of the trial that t redoes (itself when it is no redo)."""
    return t.retry_of if t.retry_of is not None else t.number
