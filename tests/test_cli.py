import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

import bomix
from bomix.cli import main
from bomix.trial import TrialState

EXAMPLE = "experiments/configs/seedlike_sobol.toml"
HEAVY = ("torch", "botorch", "gpytorch", "ax")


@pytest.mark.parametrize("code", [
    "import bomix",
    "import bomix; bomix.MixtureSpace(['a', 'b']).sample(4, method='sobol')",
    "import sys; from bomix.cli import main; sys.argv = ['bomix', '--help']\ntry: main()\nexcept SystemExit: pass",
])
def test_import_and_help_stay_light(code):
    probe = f"{code}\nimport sys; print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_demo_prints_best_and_where(tmp_path, capsys):
    assert main(["demo", "--dir", str(tmp_path / "demo"), "--n-trials", "6", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "best observed: trial" in out and str(tmp_path / "demo") in out
    assert "true (noise-free) losses" in out


def test_run_status_best_export(tmp_path, repo_root, capsys):
    d = tmp_path / "study"
    args = ["run", str(repo_root / EXAMPLE), "--set", f"study.dir='{d}'", "--set", "study.n_trials=5", "--no-progress"]
    assert main(args) == 0
    assert json.loads((d / "config.json").read_text())["study"]["n_trials"] == 5
    capsys.readouterr()
    assert main(["status", str(d)]) == 0
    assert "5 completed" in capsys.readouterr().out
    assert main(["best", str(d), "--json"]) == 0
    best = json.loads(capsys.readouterr().out)
    assert set(best["weights"]) == {"books", "cc", "stack", "pes2o", "reddit"}
    assert main(["export", str(d)]) == 0
    assert (d / "export" / "ratios.csv").exists() and (d / "export" / "metrics.csv").exists()


@pytest.mark.parametrize("extra, match", [
    (["--set", "optimizer.name=bayes"], "optimizer must be one of"),
    (["--set", "evaluator.name=lookup"], "evaluator must be one of"),
    (["--set", "study.n_trial=3"], "unknown \\['n_trial'\\]"),
    (["--set", "optimizer.params={seeds = 1}"], "accepts parameters"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, repo_root, capsys, extra, match):
    d = tmp_path / "study"
    assert main(["run", str(repo_root / EXAMPLE), "--set", f"study.dir='{d}'", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bomix: error: ") and len(err.strip().splitlines()) == 1
    assert pytest.importorskip("re").search(match, err)
    assert not d.exists()


def test_resume_with_changed_optimizer_is_refused(tmp_path, repo_root, capsys):
    d = tmp_path / "study"
    base = ["run", str(repo_root / EXAMPLE), "--set", f"study.dir='{d}'", "--set", "study.n_trials=3", "--no-progress"]
    assert main(base) == 0
    journal = (d / "journal.jsonl").read_bytes()
    assert main([*base, "--set", "optimizer.name=random"]) == 2
    assert "optimizer.name: stored 'sobol', given 'random'" in capsys.readouterr().err
    assert (d / "journal.jsonl").read_bytes() == journal


def test_status_of_a_non_study(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    assert "study.json" in capsys.readouterr().err


def _bomix(*args):
    return [sys.executable, "-m", "bomix.cli", *args]


def _lines(path):
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_sigkill_three_times_then_resume_gives_the_uninterrupted_trials(tmp_path, repo_root):
    """The issue's acceptance test: a seedlike run of 40 trials, SIGKILLed three times at random
    moments and rerun each time, ends with exactly the trials of an uninterrupted run."""
    common = ["--set", "study.n_trials=40", "--set", "evaluator.params.sleep_s=0.02", "--no-progress"]
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_bomix("run", str(repo_root / EXAMPLE), "--set", f"study.dir='{ref_dir}'", *common),
                   check=True, capture_output=True)
    rng = random.Random(os.getpid())
    journal, kills = run_dir / "journal.jsonl", 0
    cmd = _bomix("run", str(repo_root / EXAMPLE), "--set", f"study.dir='{run_dir}'", *common)
    while kills < 3:
        start = _lines(journal)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = start + rng.randint(2, 20)  # kill after a random number of new journal events ...
        deadline = time.time() + 60
        while _lines(journal) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.03))  # ... plus a random delay, so kills land anywhere in a trial
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert bomix.load_study(run_dir).n_finished < 40  # the kills did interrupt the campaign
    subprocess.run(cmd, check=True, capture_output=True)

    ref, got = bomix.load_study(ref_dir), bomix.load_study(run_dir)
    done = [t for t in got.trials if t.state is TrialState.COMPLETED]
    assert len(done) == 40 and got.n_finished == 40
    assert [t.weights for t in done] == [t.weights for t in ref.trials]  # same mixtures, same order
    assert [t.seed for t in done] == [t.seed for t in ref.trials]
    assert [t.losses for t in done] == [t.losses for t in ref.trials]
    assert len({tuple(t.weights.values()) for t in done}) == 40  # none duplicated


def test_bo_config_with_replicates(tmp_path, repo_root, capsys):
    d = tmp_path / "bo"
    fast = "optimizer.params={n_init = 4, num_restarts = 2, raw_samples = 64, mc_samples = 32}"
    args = ["run", str(repo_root / "experiments/configs/seedlike_bo.toml"), "--set", f"study.dir='{d}'",
            "--set", "study.n_trials=7", "--set", "study.replicate_top=2", "--set", "study.replicate_repeats=1",
            "--set", fast, "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "replicated top mixtures" in out and "recommended (posterior mean" in out
    study = bomix.load_study(d)
    assert len(study.trials) == 9 and [t.proposed_by for t in study.trials[7:]] == ["replicate"] * 2


def test_multi_fidelity_config_runs_and_resumes(tmp_path, repo_root, capsys):
    d = tmp_path / "mf"
    fast = "optimizer.params={n_init = 3, n_target_init = 2, num_restarts = 2, raw_samples = 32, mc_samples = 16}"
    args = ["run", str(repo_root / "experiments/configs/mf_multiscale.toml"), "--set", f"study.dir='{d}'",
            "--set", fast, "--no-progress"]
    assert main([*args, "--set", "study.n_trials=5"]) == 0
    assert "best observed at the target fidelity '60m'" in capsys.readouterr().out
    study = bomix.load_study(d)
    assert study.fidelities == {"1m": 1.0, "60m": 60.0} and study.target_fidelity == "60m"
    first = [(t.fidelity, t.weights, t.losses) for t in study.trials]
    assert [f for f, _, _ in first] == ["1m"] * 3 + ["60m"] * 2  # the cheap design, then the target's
    study.close()
    assert main([*args, "--set", "study.n_trials=7"]) == 0  # resume: two more trials, chosen by the model
    capsys.readouterr()
    study = bomix.load_study(d)
    assert [(t.fidelity, t.weights, t.losses) for t in study.trials[:5]] == first
    assert len(study.trials) == 7 and {t.fidelity for t in study.trials[5:]} <= {"1m", "60m"}
    assert [t.proposed_by for t in study.trials[5:]] == ["bo_mf/gp"] * 2
    assert main(["status", str(d)]) == 0
    out = capsys.readouterr().out
    n_big = sum(t.fidelity == "60m" for t in study.trials)
    assert f"60m (relative cost 60, target): 0 running, {n_big} completed" in out
    assert f"1m (relative cost 1): 0 running, {7 - n_big} completed" in out
    assert main(["best", str(d), "--json"]) == 0
    best = json.loads(capsys.readouterr().out)
    assert best["fidelity"] == "60m" and best["trial"] == study.best_trial.number
    assert study.trials[best["trial"]].fidelity == "60m"
    # the best is the lowest value among the target's trials, not among all of them
    assert best["value"] == min(t.value for t in study.trials if t.fidelity == "60m")


def test_single_fidelity_best_json_has_no_fidelity(tmp_path, repo_root, capsys):
    d = tmp_path / "study"
    assert main(["run", str(repo_root / EXAMPLE), "--set", f"study.dir='{d}'", "--set", "study.n_trials=3",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["best", str(d), "--json"]) == 0
    assert "fidelity" not in json.loads(capsys.readouterr().out)
    assert main(["status", str(d)]) == 0
    out = capsys.readouterr().out
    assert "by fidelity" not in out and "best so far: " in out


def test_a_bad_scale_cost_is_one_line_and_writes_nothing(tmp_path, repo_root, capsys):
    d = tmp_path / "mf"
    assert main(["run", str(repo_root / "experiments/configs/mf_multiscale.toml"), "--set", f"study.dir='{d}'",
                 "--set", 'evaluator.params.scales={"1m" = 1.0, "60m" = -60.0}']) == 2
    err = capsys.readouterr().err
    assert "a fidelity's cost must be a finite number > 0, got 60m=-60.0" in err and len(err.splitlines()) == 1
    assert not d.exists()


def test_a_closed_pipe_ends_quietly(tmp_path, repo_root):
    """`bomix status DIR | head` whose reader has gone: exit 1, no traceback on stderr."""
    d = tmp_path / "study"
    assert main(["run", str(repo_root / EXAMPLE), "--set", f"study.dir='{d}'", "--set", "study.n_trials=2",
                 "--no-progress"]) == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before bomix writes a byte
    try:
        proc = subprocess.run(_bomix("status", str(d)), stdout=write_end, stderr=subprocess.PIPE, text=True,
                              cwd=repo_root, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
