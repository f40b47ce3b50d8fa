"""Soak test of the parallel runners: a long campaign under SIGKILLs of its driver and its workers.

Soak (per runner): a fresh study of --trials trials (Sobol on a k=5 mixing-law landscape whose
evaluations sleep --sleep seconds, wrapped in bomix.testing.FaultInjector so each trial records
the pid that ran it) is driven by a subprocess, `soak.py --driver ...`, running
study.optimize(..., n_parallel=--workers, runner=..., max_failures=1000). This script watches the
journal and, at --driver-kills + --worker-kills moments spread over the campaign (thresholds on
the number of finished trials, drawn from a seeded RNG, each fired after a random fraction of a
trial's duration, only while a trial is running, and after the driver has recorded the end of the
trial whose worker the previous kill hit), sends SIGKILL either
  - to the driver, then restarts it (the restart resumes the study), or
  - to one random busy worker: a descendant of the driver whose stdout is a trial's worker.log
    (the process runner's workers: multiprocessing "bomix-worker-<i>", which ps shows as
    "python -c from multiprocessing.spawn ..."; Ray's workers: "ray::_ray_trial" while busy),
until the study holds --trials finished trials and the driver exits 0. Snapshots of the COMPLETED
trials (number -> losses) are taken just before and just after each driver kill. It then checks
the final study against them:
  lost        trials COMPLETED in a snapshot but not COMPLETED with the same losses at the end (must be 0)
  duplicated  COMPLETED trials sharing their seed with another COMPLETED trial, i.e. a redone
              mixture counted twice (must be 0), plus trial numbers with two complete/fail events
  not redone  ABANDONED trials whose seed no COMPLETED or FAILED trial carries (must be 0)
  diverged    finished trials whose mixture or losses differ from those of the same trial seed in
              the same campaign run once inline without faults (must be 0: a resumed study
              proceeds exactly as an uninterrupted one)
and reports completed / failed / abandoned, the kills delivered (a worker kill counts only if its
trial then ended FAILED for the worker's death), processes left alive by a killed driver, wall time.

Speed-up (per runner, no kills): --speedup-trials trials of a landscape whose evaluations sleep
--speedup-sleep (1 s), with 1 and with --workers workers: wall time of the optimize() call
(worker start-up and, for Ray, ray.init included), the span from the first create to the last
complete in the journal (Ray's start-up excluded), and t1/tW for both.

Exits non-zero if lost, duplicated, not redone or diverged is not 0, or a campaign does not finish.

    python experiments/soak.py --quick                      # smoke run: 60 trials, 3+3 kills
    python experiments/soak.py --runners process ray        # 500 trials, 8 workers, 20+20 kills
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve()
DRIVER_TAG = "SOAK-DRIVER "  # prefix of the line a driver prints with its timings
DEATH_REASONS = ("the worker process died", "the Ray task was lost")  # a FAILED trial's error after a worker kill


class SoakError(RuntimeError):
    """A campaign did not finish, or its final study breaks a check."""


# -- the driver (a subprocess this script starts, kills and restarts) --------------------------
def driver(directory: str, runner: str, n_trials: int, workers: int, sleep_s: float, seed: int) -> None:
    """Run (or resume) the campaign in `directory`; print how long optimize() took."""
    import bomix
    from bomix.evaluators.landscapes import landscape
    from bomix.testing import FaultInjector

    ev = landscape("mixing_law", k=5, seed=seed, sleep_s=sleep_s)
    study = bomix.create_study(directory, space=bomix.MixtureSpace(ev.domains), optimizer="sobol", seed=seed,
                               load_if_exists=True)
    start = time.time()
    study.optimize(FaultInjector(evaluator=ev), n_trials, workers, runner=runner, max_failures=1000,
                   show_progress=False)
    end = time.time()
    study.close()
    print(DRIVER_TAG + json.dumps({"optimize_start": start, "optimize_end": end}), flush=True)


def start_driver(directory: Path, runner: str, n_trials: int, workers: int, sleep_s: float, seed: int,
                 log_path: Path) -> subprocess.Popen:
    """A driver subprocess in a session of its own, its output appended to log_path."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(HERE), "--driver", str(directory), runner, str(n_trials), "--workers", str(workers),
           "--sleep", str(sleep_s), "--seed", str(seed)]
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)


def log_tail(path: Path, n: int = 3000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-n:]


# -- processes, read from /proc -----------------------------------------------------------------
def proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time in clock ticks) for every live, non-zombie process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp session ...
        if fields[0] != "Z":
            table[int(entry)] = (int(fields[1]), int(fields[19]))
    return table


def descendants(root: int, table: dict[int, tuple[int, int]]) -> dict[int, int]:
    """The live descendants of `root`: pid -> start time (to tell a pid reused later apart)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out[pid] = table[pid][1]
        todo += children.get(pid, [])
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def trial_of(pid: int, trials_dir: Path | None = None) -> int | None:
    """The trial the process evaluates now, or None. A runner sends a worker's stdout to
    trials/<n>/worker.log for exactly as long as it evaluates trial n (process and ray runners)."""
    try:
        out = Path(os.readlink(f"/proc/{pid}/fd/1"))
    except OSError:
        return None
    if out.name == "worker.log" and out.parent.name.isdigit() and trials_dir in (None, out.parent.parent):
        return int(out.parent.name)
    return None


def busy_workers(driver_pid: int, trials_dir: Path) -> list[tuple[int, int]]:
    """(pid, trial number) of the driver's descendants running a trial of this study now."""
    busy = [(pid, trial_of(pid, trials_dir)) for pid in sorted(descendants(driver_pid, proc_table()))]
    return [(pid, n) for pid, n in busy if n is not None]


def short(command: str) -> str:
    """A process's name for a table: 'ray::IDLE', or the script a python process runs."""
    words = command.split(" ")
    if Path(words[0]).name.startswith("python"):
        for word in words[1:]:
            if word in ("-c", "-m"):
                return f"python {word}"
            if not word.startswith("-"):
                return f"python {Path(word).name}"
    return words[0]


def alive(pid: int, start_ticks: int) -> bool:
    """The process is still running (and is the same process: same start time)."""
    entry = proc_table().get(pid)
    return entry is not None and entry[1] == start_ticks


# -- the journal --------------------------------------------------------------------------------
class JournalTail:
    """Follows DIR/journal.jsonl as the driver appends: finished count and RUNNING trials. It reads
    whole lines only, so a torn last line that a resuming driver cuts is read again as what replaces it."""

    def __init__(self, path: Path):
        self.path, self.offset = path, 0  # offset: where the first line not yet read starts
        self.finished, self.running = 0, set()

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        whole = data[:data.rfind(b"\n") + 1]
        self.offset += len(whole)
        for line in whole.splitlines():
            e = json.loads(line)
            if e["event"] == "create":
                self.running.add(e["number"])
            elif e["event"] in ("complete", "fail"):
                self.running.discard(e["number"])
                self.finished += 1
            elif e["event"] == "abandon":
                self.running.discard(e["number"])


def read_study(directory: Path):
    import bomix

    with warnings.catch_warnings():  # a torn last line (the driver is writing it) is skipped with a warning
        warnings.simplefilter("ignore")
        return bomix.load_study(directory)


def completed_snapshot(directory: Path) -> dict[int, dict]:
    from bomix.trial import TrialState

    return {t.number: dict(t.losses) for t in read_study(directory).trials if t.state is TrialState.COMPLETED}


# -- the soak campaign --------------------------------------------------------------------------
@dataclass
class Kill:
    at: int  # fire once this many trials have finished
    kind: str  # "driver" or "worker"
    delivered: bool = False
    detail: dict = field(default_factory=dict)


def plan_kills(rng: random.Random, n_trials: int, n_driver: int, n_worker: int) -> list[Kill]:
    """Kill moments spread over the campaign: finished-trial thresholds drawn in [5%, 90%] of it."""
    lo, hi = max(1, n_trials // 20), max(2, n_trials * 9 // 10)
    n = n_driver + n_worker
    pool = range(lo, hi)
    ats = sorted(rng.sample(pool, n) if len(pool) >= n else [rng.choice(pool) for _ in range(n)])
    kinds = ["driver"] * n_driver + ["worker"] * n_worker
    rng.shuffle(kinds)
    return [Kill(at, kind) for at, kind in zip(ats, kinds)]


def soak(runner: str, args, workdir: Path) -> dict:
    directory = workdir / f"soak-{runner}"
    trials_dir = directory / "trials"
    rng = random.Random(f"{args.seed}-{runner}")
    kills = plan_kills(rng, args.trials, args.driver_kills, args.worker_kills)
    tail = JournalTail(directory / "journal.jsonl")
    log_path = workdir / f"soak-{runner}-driver.log"
    snapshots: list[dict[int, dict]] = []
    survivors: list[dict] = []  # processes still alive 2 s after their driver was killed
    lives, next_kill = 1, 0
    victim = None  # (trial number, deadline) of the last worker kill, until the driver records its end
    start = time.monotonic()
    proc = start_driver(directory, runner, args.trials, args.workers, args.sleep, args.seed, log_path)
    print(f"[{runner}] soak: {args.trials} trials, {args.workers} workers, {args.driver_kills} driver + "
          f"{args.worker_kills} worker kills, trials sleep {args.sleep:g} s; driver log {log_path}", flush=True)
    try:
        while True:
            if time.monotonic() - start > args.timeout:
                raise SoakError(f"[{runner}] the campaign did not finish within {args.timeout:g} s "
                                f"({tail.finished} of {args.trials} finished)")
            tail.poll()
            code = proc.poll()
            if code is not None:
                if code == 0:
                    break
                raise SoakError(f"[{runner}] the driver exited with {code} without being killed; end of its log:\n"
                                + log_tail(log_path))
            if victim is not None and victim[0] in tail.running and time.monotonic() < victim[1]:
                time.sleep(0.05)  # let the driver record the killed worker's trial before the next kill
                continue
            victim = None
            due = next_kill < len(kills) and tail.finished >= kills[next_kill].at
            busy = busy_workers(proc.pid, trials_dir) if due else []
            busy = [(pid, n) for pid, n in busy if n in tail.running]
            if not busy:  # wait until the (re)started driver has a trial running
                time.sleep(0.05)
                continue
            kill = kills[next_kill]
            time.sleep(rng.uniform(0, args.sleep))  # land at a random point of a trial
            tail.poll()
            kill.detail["finished"] = tail.finished
            if kill.kind == "worker":
                busy = [(pid, n) for pid, n in busy_workers(proc.pid, trials_dir) if n in tail.running]
                if not busy:  # every trial ended meanwhile: try again
                    continue
                next_kill += 1
                pid, number = rng.choice(busy)
                kill.detail.update(pid=pid, trial=number, process=cmdline(pid)[:80])
                try:
                    os.kill(pid, signal.SIGKILL)  # delivered if trial `number` ends FAILED (see check)
                    victim = (number, time.monotonic() + 30)
                except ProcessLookupError:
                    kill.detail["missed"] = "the worker had exited"
                continue
            next_kill += 1
            # a driver kill: snapshot, kill, reap, snapshot, look for what it left behind, restart
            before = completed_snapshot(directory)
            family = descendants(proc.pid, proc_table())
            tail.poll()
            kill.detail["finished"] = tail.finished
            proc.send_signal(signal.SIGKILL)
            code = proc.wait()
            kill.delivered = code == -signal.SIGKILL
            after = completed_snapshot(directory)
            tail.poll()
            kill.detail.update(code=code, running=len(tail.running), completed=len(after))
            snapshots += [before, after]
            time.sleep(2.0)
            left = [(pid, ticks) for pid, ticks in family.items() if alive(pid, ticks)]
            if left:
                survivors.append({"life": lives, "processes": [(pid, cmdline(pid)[:200]) for pid, _ in left],
                                  "busy": [(pid, trial_of(pid)) for pid, _ in left if trial_of(pid) is not None],
                                  "_ticks": left})
            if code == 0:  # it finished just before the kill
                break
            lives += 1
            proc = start_driver(directory, runner, args.trials, args.workers, args.sleep, args.seed, log_path)
    finally:
        if proc.poll() is None:  # stopped by an error: do not leave a driver behind
            for pid in [proc.pid, *descendants(proc.pid, proc_table())]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()
    wall = time.monotonic() - start
    # processes a killed driver left behind and that are still running now (they are ours: end them)
    still = [(pid, ticks) for s in survivors for pid, ticks in s.pop("_ticks") if alive(pid, ticks)]
    for pid, _ in still:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    result = check(runner, directory, snapshots, kills, args, reference(workdir, args))
    result.update(wall_s=round(wall, 1), driver_lives=lives,
                  survivors_after_2s=sum(len(s["processes"]) for s in survivors),
                  busy_survivors=sum(len(s["busy"]) for s in survivors), survivors_at_end=len(still),
                  survivors=survivors,
                  kills=[{"at": k.at, "kind": k.kind, "delivered": k.delivered, **k.detail} for k in kills])
    return result


def reference(workdir: Path, args) -> dict[int, tuple]:
    """seed -> (mixture, losses) of the same campaign run once without faults (inline, no sleep)."""
    path = workdir / f"reference-{args.trials}"
    if not path.exists():
        import bomix
        from bomix.evaluators.landscapes import landscape

        ev = landscape("mixing_law", k=5, seed=args.seed)
        study = bomix.create_study(path, space=bomix.MixtureSpace(ev.domains), optimizer="sobol", seed=args.seed)
        study.optimize(ev, args.trials, show_progress=False)
        study.close()
    return {t.seed: (t.x, dict(t.losses)) for t in read_study(path).trials}


def check(runner: str, directory: Path, snapshots: list[dict[int, dict]], kills: list[Kill], args,
          clean: dict[int, tuple]) -> dict:
    """The final study's figures and the checks against the snapshots and against the campaign run
    without faults (see the module docstring)."""
    import numpy as np
    from bomix.trial import TrialState

    study = read_study(directory)
    trials = study.trials
    by_state = {s: [t for t in trials if t.state is s] for s in TrialState}
    completed = {t.number: t for t in by_state[TrialState.COMPLETED]}
    failed = by_state[TrialState.FAILED]
    lost = sorted({n for snap in snapshots for n, losses in snap.items()
                   if n not in completed or dict(completed[n].losses) != losses})
    seeds: dict[int, list[int]] = {}
    for t in completed.values():
        seeds.setdefault(t.seed, []).append(t.number)
    duplicated = sorted(n for ns in seeds.values() if len(ns) > 1 for n in ns)
    ends: dict[int, int] = {}
    for line in (directory / "journal.jsonl").read_text().splitlines():
        e = json.loads(line)
        if e["event"] in ("complete", "fail"):
            ends[e["number"]] = ends.get(e["number"], 0) + 1
    twice = sorted(n for n, c in ends.items() if c > 1)
    finished_seeds = {t.seed for t in trials if t.state in (TrialState.COMPLETED, TrialState.FAILED)}
    not_redone = sorted(t.number for t in by_state[TrialState.ABANDONED] if t.seed not in finished_seeds)
    # the resumed campaign must be the uninterrupted one: the same mixture for each trial seed, and
    # (the evaluator's noise is drawn from the trial seed) the same losses for each completed trial
    live = [t for t in trials if t.state in (TrialState.COMPLETED, TrialState.FAILED)]
    diverged = sorted(t.number for t in live if t.seed not in clean or not np.array_equal(t.x, clean[t.seed][0])
                      or (t.state is TrialState.COMPLETED and dict(t.losses) != clean[t.seed][1]))
    for k in kills:  # a worker kill is delivered if its trial then failed for the worker's death
        if k.kind == "worker" and "trial" in k.detail:
            t = trials[k.detail["trial"]]
            k.delivered = t.state is TrialState.FAILED and any(r in (t.error or "") for r in DEATH_REASONS)
            k.detail["outcome"] = t.state.value
    killed = {k.detail["trial"] for k in kills if k.kind == "worker" and k.delivered}
    failed_other = {t.number: (t.error or "")[-3000:] for t in failed if t.number not in killed}
    result = {
        "runner": runner, "trials": args.trials, "workers": args.workers, "sleep_s": args.sleep,
        "finished": len(completed) + len(failed), "completed": len(completed), "failed": len(failed),
        "abandoned": len(by_state[TrialState.ABANDONED]), "running_at_end": len(by_state[TrialState.RUNNING]),
        "abandoned_redos": sum(t.retry_of is not None for t in by_state[TrialState.ABANDONED]),
        "driver_kills_planned": args.driver_kills,
        "driver_kills": sum(k.kind == "driver" and k.delivered for k in kills),
        "running_at_driver_kills": sum(k.detail.get("running", 0) for k in kills if k.kind == "driver"),
        "worker_kills_planned": args.worker_kills,
        "worker_kills_sent": sum(k.kind == "worker" and "pid" in k.detail for k in kills),
        "worker_kills": sum(k.kind == "worker" and k.delivered for k in kills),
        "failed_not_by_a_kill": sorted(failed_other), "failed_not_by_a_kill_errors": failed_other,
        "failed_errors": sorted({(t.error or "").splitlines()[0][:100] for t in failed})[:5],
        "snapshots": len(snapshots), "lost": len(lost), "lost_trials": lost[:20],
        "duplicated": len(duplicated), "duplicated_trials": duplicated[:20],
        "ended_twice": len(twice), "ended_twice_trials": twice[:20],
        "not_redone": len(not_redone), "not_redone_trials": not_redone[:20],
        "diverged": len(diverged), "diverged_trials": diverged[:20],
        "redos": sum(t.retry_of is not None for t in trials),
        "worker_pids": len({t.extra.get("pid") for t in completed.values()}),
    }
    problems = [f"{name} = {result[name]}" for name in ("lost", "duplicated", "ended_twice", "not_redone", "diverged")
                if result[name]]
    if result["finished"] != args.trials or result["running_at_end"]:
        problems.append(f"finished = {result['finished']} of {args.trials}, "
                        f"running at end = {result['running_at_end']}")
    result["ok"] = not problems
    result["problems"] = problems
    return result


# -- speed-up -----------------------------------------------------------------------------------
def timed_campaign(runner: str, workers: int, args, workdir: Path) -> dict:
    """One campaign without kills: wall time of optimize(), and the journal's first create to last complete."""
    directory = workdir / f"speed-{runner}-{workers}"
    log_path = workdir / f"speed-{runner}-{workers}.log"
    start = time.monotonic()
    proc = start_driver(directory, runner, args.speedup_trials, workers, args.speedup_sleep, args.seed, log_path)
    try:
        code = proc.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise SoakError(f"[{runner}] the speed-up campaign with {workers} workers did not finish in {args.timeout:g} s")
    wall = time.monotonic() - start
    if code != 0:
        raise SoakError(f"[{runner}] the speed-up campaign with {workers} workers exited with {code}:\n"
                        + log_tail(log_path))
    line = next(ln for ln in log_tail(log_path, 10_000).splitlines() if ln.startswith(DRIVER_TAG))
    times = json.loads(line[len(DRIVER_TAG):])
    events = [json.loads(ln) for ln in (directory / "journal.jsonl").read_text().splitlines()]
    first = min(e["time"] for e in events if e["event"] == "create")
    first_done = min(e["time"] for e in events if e["event"] in ("complete", "fail"))
    last = max(e["time"] for e in events if e["event"] in ("complete", "fail"))
    n_done = sum(e["event"] == "complete" for e in events)
    if n_done != args.speedup_trials:
        raise SoakError(f"[{runner}] the speed-up campaign with {workers} workers completed {n_done} trials")
    return {"workers": workers, "process_s": round(wall, 2),
            "optimize_s": round(times["optimize_end"] - times["optimize_start"], 2),
            "before_first_trial_s": round(first - times["optimize_start"], 2),
            "first_result_s": round(first_done - first, 2), "span_s": round(last - first, 2)}


def speedup(runner: str, args, workdir: Path) -> dict:
    print(f"[{runner}] speed-up: {args.speedup_trials} trials sleeping {args.speedup_sleep:g} s, 1 vs "
          f"{args.workers} workers", flush=True)
    one = timed_campaign(runner, 1, args, workdir)
    many = timed_campaign(runner, args.workers, args, workdir)
    ideal = args.speedup_trials * args.speedup_sleep
    return {"runner": runner, "trials": args.speedup_trials, "sleep_s": args.speedup_sleep, "one": one,
            "many": many, "speedup_optimize": round(one["optimize_s"] / many["optimize_s"], 2),
            "speedup_span": round(one["span_s"] / many["span_s"], 2),
            "ideal_one_s": ideal, "ideal_many_s": ideal / args.workers}


# -- output -------------------------------------------------------------------------------------
def print_tables(soaks: list[dict], speeds: list[dict]) -> None:
    if soaks:
        print("\nsoak: trials finished / completed / failed / abandoned; kills delivered of planned; checks")
        print(f"{'runner':<8} {'trials':>6} {'done':>5} {'compl':>6} {'failed':>6} {'aband':>6} {'drv kills':>10}"
              f" {'wrk kills':>10} {'lost':>5} {'dup':>4} {'twice':>6} {'unredone':>9} {'diverged':>9} {'leftover':>9}"
              f" {'wall s':>7}  ok")
        for r in soaks:
            print(f"{r['runner']:<8} {r['trials']:>6} {r['finished']:>5} {r['completed']:>6} {r['failed']:>6}"
                  f" {r['abandoned']:>6} {r['driver_kills']:>4} of {r['driver_kills_planned']:<3}"
                  f" {r['worker_kills']:>4} of {r['worker_kills_planned']:<3} {r['lost']:>5} {r['duplicated']:>4}"
                  f" {r['ended_twice']:>6} {r['not_redone']:>9} {r['diverged']:>9} {r['survivors_after_2s']:>9}"
                  f" {r['wall_s']:>7.1f}"
                  f"  {'yes' if r['ok'] else 'NO: ' + '; '.join(r['problems'])}")
        print("(aband: trials RUNNING when their driver was killed, redone with the same seed; twice: trial numbers"
              " with two complete/fail events; unredone: abandoned trials whose seed no finished trial has;"
              " diverged: finished trials whose mixture or losses differ from the same seed's in the campaign run"
              " without faults; leftover: processes of a killed driver still alive 2 s after it died"
              " (busy: still evaluating a trial); wrk kills: SIGKILLs of a busy worker whose trial then FAILED)")
        for r in soaks:
            print(f"  {r['runner']}: {r['running_at_driver_kills']} trials were running at the {r['driver_kills']}"
                  f" driver kills; {r['abandoned']} abandoned ({r['abandoned_redos']} of them redos abandoned again),"
                  f" {r['redos']} redo trials; completed trials ran in {r['worker_pids']} worker processes")
            if r["survivors_after_2s"]:
                print(f"  {r['runner']}: {r['survivors_after_2s']} leftover processes after {r['driver_kills']} driver"
                      f" kills, {r['busy_survivors']} busy, {r['survivors_at_end']} still alive at the end (killed);"
                      f" {sorted({short(c) for s in r['survivors'] for _, c in s['processes'] if c})}")
        for r in soaks:
            if r["failed_not_by_a_kill"]:
                print(f"  {r['runner']}: FAILED trials not explained by a worker kill: {r['failed_not_by_a_kill']}")
    if speeds:
        print("\nspeed-up: seconds for the campaign with 1 worker and with W; optimize = the whole optimize() call"
              " (workers' start-up, Ray's start included); span = first create to last complete in the journal")
        print(f"{'runner':<8} {'trials':>6} {'W':>3} {'optimize 1':>11} {'optimize W':>11} {'speed-up':>9}"
              f" {'span 1':>8} {'span W':>8} {'speed-up':>9} {'start-up W':>11} {'1st result W':>13}")
        for s in speeds:
            print(f"{s['runner']:<8} {s['trials']:>6} {s['many']['workers']:>3} {s['one']['optimize_s']:>11.1f}"
                  f" {s['many']['optimize_s']:>11.1f} {s['speedup_optimize']:>8.2f}x {s['one']['span_s']:>8.1f}"
                  f" {s['many']['span_s']:>8.1f} {s['speedup_span']:>8.2f}x {s['many']['before_first_trial_s']:>11.1f}"
                  f" {s['many']['first_result_s']:>13.1f}")
        print("(ideal: t1 = trials x sleep, tW = t1 / W; start-up W: seconds from calling optimize() to the first"
              " trial's creation with W workers, e.g. ray.init; 1st result W: from the first trial's creation to the"
              " first result, i.e. one trial's sleep plus starting a worker process)")


def git_state() -> str | None:
    """The commit the studies ran at, '+dirty' when bomix/ had uncommitted changes (workers import
    bomix from disk when they start, so edits during a run reach the workers started after them)."""
    root = HERE.parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "bomix"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runners", nargs="+", default=["process", "ray"], choices=["process", "ray"])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--driver-kills", type=int, default=20)
    parser.add_argument("--worker-kills", type=int, default=20)
    parser.add_argument("--sleep", type=float, default=0.2, help="seconds each soak trial sleeps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speedup-trials", type=int, default=64)
    parser.add_argument("--speedup-sleep", type=float, default=1.0)
    parser.add_argument("--no-soak", action="store_true", help="only the speed-up")
    parser.add_argument("--no-speedup", action="store_true", help="only the soak")
    parser.add_argument("--quick", action="store_true", help="smoke run: 60 trials, 3+3 kills, 16 speed-up trials")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a campaign may take before failing")
    parser.add_argument("--workdir", type=Path, help="where the studies go (default: a temporary folder, "
                                                     "removed unless a check fails)")
    parser.add_argument("--out", type=Path, default=HERE.parent / "results" / "soak.json")
    parser.add_argument("--driver", nargs=3, metavar=("DIR", "RUNNER", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        directory, runner, n = args.driver
        driver(directory, runner, int(n), args.workers, args.sleep, args.seed)
        return
    if args.quick:
        args.trials, args.driver_kills, args.worker_kills, args.speedup_trials = 60, 3, 3, 16

    import bomix

    git_at_start = git_state()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bomix-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    soaks, speeds, error = [], [], None
    begin = time.monotonic()
    try:
        for runner in args.runners:
            if not args.no_soak:
                soaks.append(soak(runner, args, workdir))
                r = soaks[-1]
                print(f"[{runner}] soak done in {r['wall_s']:.0f} s: {r['finished']} finished, {r['failed']} failed,"
                      f" {r['abandoned']} abandoned, lost {r['lost']}, duplicated {r['duplicated']}", flush=True)
            if not args.no_speedup:
                speeds.append(speedup(runner, args, workdir))
    except SoakError as e:
        error = str(e)
    print_tables(soaks, speeds)
    git_at_end = git_state()
    report = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "bomix_version": bomix.__version__,
              "git": git_at_end if git_at_end == git_at_start else f"{git_at_start} at start, {git_at_end} at end",
              "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version(), "load_avg_at_end": os.getloadavg()},
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "total_wall_s": round(time.monotonic() - begin, 1),
              "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "driver"},
              "soak": soaks, "speedup": speeds, "error": error}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwritten to {args.out} (total {report['total_wall_s']:.0f} s)")
    bad = [f"{r['runner']}: {'; '.join(r['problems'])}" for r in soaks if not r["ok"]]
    if error or bad:
        sys.exit(f"SOAK FAILED ({'; '.join(filter(None, [error, *bad]))}); studies kept in {workdir}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
