"""Runners: process, ray and slurm (submitit's local executor); asynchrony, faults, driver kills."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import bomix
from bomix.errors import ConfigError
from bomix.evaluators.base import Evaluator, TrialContext
from bomix.evaluators.landscapes import landscape
from bomix.runners import TooManyFailuresError, get_runner
from bomix.testing import FaultInjector
from bomix.trial import Evaluation, TrialState


def make(tmp_path, name="s", **kwargs):
    ev = landscape("mixing_law", k=4, **kwargs)
    return bomix.create_study(tmp_path / name, space=bomix.MixtureSpace(ev.domains), optimizer="sobol"), ev


def journal(study):
    return [json.loads(line) for line in (study.directory / "journal.jsonl").read_text().splitlines()]


def max_in_flight(study) -> int:
    running = peak = 0
    for e in journal(study):
        running += {"create": 1, "complete": -1, "fail": -1, "abandon": -1}.get(e["event"], 0)
        peak = max(peak, running)
    return peak


def test_process_runner_runs_trials_side_by_side_and_asynchronously(tmp_path):
    study, ev = make(tmp_path)
    slow = FaultInjector(evaluator=ev, delays={0: 2.5, **{i: 0.3 for i in range(1, 12)}})
    study.optimize(slow, 12, 3, runner="process", show_progress=False)
    assert study.n_finished == 12 and all(t.state is TrialState.COMPLETED for t in study.trials)
    assert max_in_flight(study) == 3
    done = [e["number"] for e in journal(study) if e["event"] == "complete"]
    assert done.index(0) >= 4  # the slow trial did not hold the others up
    assert len({t.extra["pid"] for t in study.trials}) == 3  # three long-lived workers
    for t in study.trials:  # each result is exactly what the landscape gives for the trial's mixture
        assert t.losses == ev.evaluate(t.weights, bomix.evaluators.base.TrialContext(t.number, t.seed)).losses


def test_process_runner_gives_each_worker_its_gpu(tmp_path):
    study, ev = make(tmp_path)
    study.optimize(FaultInjector(evaluator=ev), 6, 2, runner=get_runner("process", gpus=["3", "5"]),
                   show_progress=False)
    by_pid = {}
    for t in study.trials:
        by_pid.setdefault(t.extra["pid"], set()).add(t.extra["cuda_visible_devices"])
    assert sorted(map(tuple, by_pid.values())) == [("3",), ("5",)]


def test_faults_become_failed_trials_and_the_campaign_goes_on(tmp_path):
    study, ev = make(tmp_path)
    faults = {1: "raise", 2: "nan", 3: "missing", 4: "hang", 5: "kill", 6: "exit"}
    study.optimize(FaultInjector(evaluator=ev, faults=faults), 12, 3, runner="process", timeout=5,
                   max_failures=6, show_progress=False)
    assert study.n_finished == 12
    states = {t.number: t.state for t in study.trials}
    assert {n for n, s in states.items() if s is TrialState.FAILED} == set(faults)
    errors = {t.number: t.error for t in study.trials}
    assert "injected failure in trial 1" in errors[1] and "Traceback" in errors[1]
    assert "finite" in errors[2]
    assert "must report the same losses" in errors[3] and "missing ['d0']" in errors[3]
    assert errors[4].startswith("timed out: stopped after 5 s")
    assert "killed by SIGKILL" in errors[5] and "exit code 3" in errors[6]
    assert all(s is TrialState.COMPLETED for n, s in states.items() if n not in faults)


def test_a_failed_trial_is_retried_with_its_mixture_and_seed(tmp_path):
    study, ev = make(tmp_path)
    study.optimize(FaultInjector(evaluator=ev, faults={0: "raise", 2: "kill"}), 6, 1, runner="process",
                   retries=1, show_progress=False)
    by_number = {t.number: t for t in study.trials}
    for n in (0, 2):
        (retry,) = [t for t in study.trials if t.retry_of == n]
        assert retry.state is TrialState.COMPLETED and retry.weights == by_number[n].weights
        assert retry.seed == by_number[n].seed
    assert study.n_finished == 6  # retries are trials of the budget


def test_max_failures_stops_a_campaign_that_keeps_failing(tmp_path):
    study, ev = make(tmp_path)
    broken = FaultInjector(evaluator=ev, faults={i: "raise" for i in range(100)})
    with pytest.raises(TooManyFailuresError, match=r"max_failures=2.*injected failure"):
        study.optimize(broken, 50, 2, runner="process", max_failures=2, show_progress=False)
    failed = sum(t.state is TrialState.FAILED for t in study.trials)
    assert 3 <= failed <= 4  # it stops after the trials that ended together with the third failure
    assert not study.running  # what was in flight was abandoned, to be redone on resume
    with pytest.raises(TooManyFailuresError, match="max_failures=None"):  # the default: >= 5 and over half
        study.optimize(broken, 50, 1, show_progress=False)


def test_bad_runner_settings_are_refused_up_front(tmp_path):
    study, ev = make(tmp_path)
    with pytest.raises(ConfigError, match="inline runner cannot stop"):
        study.optimize(ev, 2, timeout=10)
    with pytest.raises(ConfigError, match="n_parallel must be 1, got 2"):
        study.optimize(ev, 2, 2)
    with pytest.raises(ConfigError, match="timeout must be a number of seconds > 0.*-1"):
        study.optimize(ev, 2, runner="process", timeout=-1)
    with pytest.raises(ConfigError, match="retries must be an integer >= 0.*'x'"):
        study.optimize(ev, 2, runner="process", retries="x")
    with pytest.raises(ConfigError, match="runner must be one of.*'threads'"):
        study.optimize(ev, 2, runner="threads")
    with pytest.raises(ConfigError, match="gpus must be 'auto'"):
        get_runner("process", gpus=3)
    with pytest.raises(ConfigError, match="cluster must be one of.*'pbs'"):
        get_runner("slurm", cluster="pbs")
    assert study.n_finished == 0 and not study.trials  # nothing was started


def test_an_unpicklable_evaluator_is_refused_by_the_process_runner(tmp_path):
    study, ev = make(tmp_path)
    ev.hook = lambda: None  # a lambda cannot be pickled
    with pytest.raises(ConfigError, match="must be picklable"):
        study.optimize(ev, 2, 2, runner="process")
    assert not study.trials


class Batching(Evaluator):
    """A landscape scored up to max_batch mixtures per evaluate_many call (as ProxyEvaluator(stack=K)
    trains them), recording each trial's batch; trials in `fail` fail inside their batch, a trial in
    `hang` hangs its whole batch."""

    name = "batching"

    def __init__(self, *, evaluator, max_batch: int, fail=(), hang=()):
        self.evaluator, self.max_batch, self.fail, self.hang = evaluator, max_batch, set(fail), set(hang)
        self.domains = evaluator.domains

    def evaluate(self, weights, context=None):
        (result,) = self.evaluate_many([weights], [context or TrialContext()])
        if isinstance(result, Exception):
            raise result
        return result

    def evaluate_many(self, weights, contexts):
        numbers = [c.number for c in contexts]
        print(f"batch {numbers}", flush=True)  # lands in every trial's worker.log
        if self.hang & set(numbers):
            time.sleep(3600)
        return [RuntimeError(f"diverged in trial {c.number}") if c.number in self.fail else
                Evaluation(losses=self.evaluator.evaluate(w, c).losses, extra={"batch": numbers, "pid": os.getpid()})
                for w, c in zip(weights, contexts)]


def test_process_runner_hands_a_worker_up_to_max_batch_trials_each_told_alone(tmp_path):
    study, ev = make(tmp_path)
    batching = Batching(evaluator=ev, max_batch=3, fail={4}, hang={13})
    study.optimize(batching, 16, 6, runner="process", timeout=10, max_failures=5, show_progress=False)
    assert study.n_finished == 16 and max_in_flight(study) <= 6
    by_number = {t.number: t for t in study.trials}
    done = [t for t in study.trials if t.state is TrialState.COMPLETED]
    batches = {tuple(t.extra["batch"]) for t in done}
    assert max(map(len, batches)) == 3 and all(t.number in t.extra["batch"] for t in done)
    assert len({t.extra["pid"] for t in done}) <= 2  # 6 trials in flight in batches of 3: two workers
    for t in done:  # each trial's own result, told on its own
        assert t.losses == ev.evaluate(t.weights, TrialContext(t.number, t.seed)).losses
    assert by_number[4].state is TrialState.FAILED and "diverged in trial 4" in by_number[4].error
    assert all(u.state is TrialState.COMPLETED for u in study.trials if u.number != 4 and 4 in u.extra.get("batch", ()))
    timed_out = {t.number for t in study.trials if t.state is TrialState.FAILED and t.number != 4}
    assert 13 in timed_out and len(timed_out) <= 3  # the hung batch's trials, and only those
    assert all(by_number[n].error.startswith("timed out") for n in timed_out)
    for t in done:  # the batch's log is in each of its trials' directories
        assert f"batch {t.extra['batch']}" in (study.trial_dir(t.number) / "worker.log").read_text()


def test_batches_need_a_batching_runner_and_an_evaluator_declaring_them(tmp_path):
    study, ev = make(tmp_path)
    study.optimize(Batching(evaluator=ev, max_batch=3), 3, show_progress=False)  # inline: one at a time
    assert [t.extra["batch"] for t in study.trials] == [[0], [1], [2]]
    faulty = FaultInjector(evaluator=ev, faults={1: "raise"})  # Evaluator's default: one by one, failures kept
    out = faulty.evaluate_many([t.weights for t in study.trials[:2]], [TrialContext(0, 0), TrialContext(1, 1)])
    assert isinstance(out[0], Evaluation) and isinstance(out[1], RuntimeError) and faulty.max_batch == 1
    with pytest.raises(ConfigError, match="max_batch must be an integer >= 1, got 0"):
        study.optimize(Batching(evaluator=ev, max_batch=0), 2, 2, runner="process", show_progress=False)


DRIVER = textwrap.dedent("""
    import sys
    import bomix
    from bomix.evaluators.landscapes import landscape
    from bomix.testing import FaultInjector

    if __name__ == "__main__":
        ev = landscape("mixing_law", k=4)
        study = bomix.create_study(sys.argv[1], space=bomix.MixtureSpace(ev.domains), optimizer="sobol",
                                   load_if_exists=True)
        runner = {"name": sys.argv[2], "params": {"cluster": "local"} if sys.argv[2] == "slurm" else {}}
        delays = {i: float(sys.argv[4]) for i in range(100)}
        study.optimize(FaultInjector(evaluator=ev, delays=delays), int(sys.argv[3]), 3, runner=runner,
                       show_progress=False)
""")


def kill_driver_midway(tmp_path, runner: str, n: int, delay: float, after: int):
    """Start a driver, SIGKILL it once `after` trials completed, resume it, and check the result."""
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    args = [sys.executable, str(script), str(tmp_path / "s"), runner, str(n), str(delay)]
    proc = subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path, start = tmp_path / "s" / "journal.jsonl", time.monotonic()
    while time.monotonic() - start < 120 and proc.poll() is None:
        text = path.read_text() if path.exists() else ""
        ends = len(re.findall(r'"event":\s*"(?:complete|fail|abandon)"', text))
        running = len(re.findall(r'"event":\s*"create"', text)) - ends
        if ends >= after and running > 0 and (runner != "slurm" or '"event":"job"' in text.rsplit("create", 1)[-1]):
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = bomix.load_study(tmp_path / "s")
    completed = {t.number: t.losses for t in before.trials if t.state is TrialState.COMPLETED}
    assert completed and before.running, "the driver should be killed with trials done and in flight"
    subprocess.run(args, check=True, timeout=120)
    after = bomix.load_study(tmp_path / "s")
    assert after.n_finished == n
    for number, losses in completed.items():  # nothing completed was lost or changed
        assert after.trials[number].state is TrialState.COMPLETED and after.trials[number].losses == losses
    seeds = [t.seed for t in after.trials if t.state is TrialState.COMPLETED]
    assert len(seeds) == len(set(seeds)) == n  # nothing counted twice
    return before, after


def test_process_driver_killed_resumes_without_loss_and_leaves_no_worker(tmp_path):
    before, after = kill_driver_midway(tmp_path, "process", n=12, delay=1.5, after=3)
    pids = {t.extra["pid"] for t in after.trials if t.state is TrialState.COMPLETED}
    time.sleep(0.5)
    for t in before.running:  # its trials were abandoned and redone with their seeds
        assert after.trials[t.number].state is TrialState.ABANDONED
        assert any(u.retry_of == t.number and u.seed == t.seed for u in after.trials)
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    assert not alive, f"workers outlived their driver: {alive}"


def test_slurm_local_jobs_are_reattached_after_the_driver_is_killed(tmp_path):
    pytest.importorskip("submitit")
    before, after = kill_driver_midway(tmp_path, "slurm", n=6, delay=3.0, after=1)
    attached = [t for t in before.running if "job" in t.extra]
    assert attached
    for t in attached:  # its job was still running when the driver died: collected, not redone
        assert after.trials[t.number].state is TrialState.COMPLETED
    for t in before.running:  # killed between submitting and journaling the job id: redone
        if "job" not in t.extra:
            assert after.trials[t.number].state is TrialState.ABANDONED


def test_slurm_local_runs_faults_as_failed_jobs(tmp_path):
    pytest.importorskip("submitit")
    study, ev = make(tmp_path)
    runner = get_runner("slurm", cluster="local", poll=0.2)
    study.optimize(FaultInjector(evaluator=ev, faults={1: "raise", 2: "kill"}), 5, 3, runner=runner,
                   max_failures=2, show_progress=False)
    errors = {t.number: t.error for t in study.trials if t.state is TrialState.FAILED}
    assert set(errors) == {1, 2} and "injected failure" in errors[1] and "without a result" in errors[2]
    jobs = [t.extra["job"] for t in study.trials]
    assert all(j["runner"] == "slurm" and j["cluster"] == "local" and j["job_id"] for j in jobs)


def test_ray_runner_runs_tasks_and_turns_lost_tasks_into_failures(tmp_path):
    pytest.importorskip("ray")
    study, ev = make(tmp_path)
    faults = {1: "raise", 2: "kill", 3: "hang"}
    study.optimize(FaultInjector(evaluator=ev, faults=faults), 8, 3, runner="ray", timeout=8, max_failures=3,
                   show_progress=False)
    assert study.n_finished == 8 and max_in_flight(study) <= 3
    errors = {t.number: t.error for t in study.trials if t.state is TrialState.FAILED}
    assert set(errors) == {1, 2, 3}
    assert "injected failure" in errors[1] and "Ray task was lost" in errors[2]
    assert errors[3].startswith("timed out")


class _Slow(Evaluator):
    name = "slow"

    def evaluate(self, weights, context=None):
        time.sleep(0.3)
        return Evaluation(losses={d: 1.0 for d in weights})


def test_the_inline_runner_logs_how_long_each_trial_ran(tmp_path, caplog):
    study = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(["a", "b"]), optimizer="sobol")
    with caplog.at_level("INFO", logger="bomix"):
        study.optimize(_Slow(), n_trials=1, show_progress=False)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("trial 0 completed in")]
    assert float(re.search(r"in ([0-9.]+)s", line).group(1)) >= 0.3  # it ran inside submit, before the flight
