"""The command and proxy evaluators: a real process per trial, small Python scripts as commands."""

import json
import os
import shlex
import shutil
import signal
import stat
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import bomix
from bomix.errors import ConfigError, EvaluationError
from bomix.evaluators import TrialContext, get_evaluator
from bomix.evaluators import command as command_module
from bomix.evaluators.command import CommandEvaluator, weight_variable
from bomix.evaluators.proxy import ProxyEvaluator
from bomix.trial import TrialState

DOMAINS = ["web:news", "code"]
GOOD = {"losses": {"web:news": 3.5, "code": 2.5}}

PRELUDE = """\
import json, os, sys, time
METRICS = os.environ["BOMIX_METRICS"]
def write(obj, text=None):
    with open(METRICS, "w") as f:
        f.write(json.dumps(obj) if text is None else text)
"""


def script(tmp_path, body: str, name: str = "cmd.py") -> list[str]:
    """A command running `body` (after PRELUDE) with this interpreter."""
    path = tmp_path / name
    path.write_text(PRELUDE + textwrap.dedent(body))
    return [sys.executable, str(path)]


def run_study(tmp_path, evaluator, objective="mean", n_trials=1):
    study = bomix.create_study(tmp_path / "study", space=bomix.MixtureSpace(DOMAINS), optimizer="sobol",
                               objective=objective)
    study.optimize(evaluator, n_trials=n_trials)
    return study


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_success_passes_the_mixture_in_and_reads_losses_curves_cost_and_extra(tmp_path):
    cmd = script(tmp_path, """
        seen = {"argv": sys.argv[1:], "cwd": os.getcwd(),
                "env": {k: v for k, v in os.environ.items() if k.startswith("BOMIX_") or k == "MY_VAR"},
                "mixture": json.load(open(os.environ["BOMIX_MIXTURE"]))}
        json.dump(seen, open(os.path.join(os.environ["BOMIX_TRIAL_DIR"], "seen.json"), "w"))
        print("hello stdout"); print("hello stderr", file=sys.stderr)
        write({"losses": {"web:news": 3.5, "code": 2.5, "heldout": 4.0},
               "curves": {"code": [[10, 3.0], [20, 2.5]]}, "cost": {"tokens": 1e6}, "extra": {"note": "x"}})
    """)
    cwd = tmp_path / "work"
    cwd.mkdir()
    ev = CommandEvaluator(command=cmd + ["{seed}"], env={"MY_VAR": 7}, cwd=str(cwd), domains=DOMAINS)
    trial_dir = tmp_path / "trials" / "3"
    out = ev.evaluate({"web:news": 0.25, "code": 0.75}, TrialContext(number=3, seed=11, directory=trial_dir))

    assert out.losses == {"web:news": 3.5, "code": 2.5, "heldout": 4.0}
    assert out.curves == {"code": [(10, 3.0), (20, 2.5)]}
    assert out.cost["tokens"] == 1e6 and 0 < out.cost["seconds"] < 30
    assert out.extra == {"note": "x"}
    seen = json.loads((trial_dir / "seen.json").read_text())
    assert seen["mixture"] == {"weights": {"web:news": 0.25, "code": 0.75}, "seed": 11, "trial": 3}
    assert seen["argv"] == ["11"] and seen["cwd"] == str(cwd)
    env = seen["env"]
    assert env["BOMIX_MIXTURE"] == str(trial_dir / "mixture.json")
    assert env["BOMIX_METRICS"] == str(trial_dir / "metrics.json")
    assert (env["BOMIX_SEED"], env["BOMIX_TRIAL"], env["BOMIX_TRIAL_DIR"]) == ("11", "3", str(trial_dir))
    assert float(env["BOMIX_WEIGHT_WEB_NEWS"]) == 0.25 and float(env["BOMIX_WEIGHT_CODE"]) == 0.75
    assert env["MY_VAR"] == "7"
    assert (trial_dir / "stdout.log").read_text() == "hello stdout\n"
    assert (trial_dir / "stderr.log").read_text() == "hello stderr\n"
    assert json.loads((trial_dir / "command.json").read_text())["argv"][-1] == "11"


def test_a_study_completes_trials_and_keeps_their_files(tmp_path):
    cmd = script(tmp_path, """
        m = json.load(open(os.environ["BOMIX_MIXTURE"]))
        write({"losses": {d: 3.0 + w for d, w in m["weights"].items()}, "cost": {"seconds": 1.5}})
    """)
    study = run_study(tmp_path, get_evaluator("command", command=cmd), n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.COMPLETED] * 2
    t = study.trials[1]
    assert t.losses == pytest.approx({d: 3.0 + w for d, w in t.weights.items()})
    assert t.cost == {"seconds": 1.5}  # the command's own figure is kept
    assert json.loads((study.trial_dir(1) / "mixture.json").read_text())["seed"] == t.seed


FAILURES = {
    "exit status": ("print('CUDA out of memory on line 7', file=sys.stderr); sys.exit(3)",
                    ["exited with status 3", "CUDA out of memory on line 7", "stderr.log"]),
    "signal": ("import signal; os.kill(os.getpid(), signal.SIGKILL)", ["killed by signal SIGKILL"]),
    "no metrics": ("print('forgot to write')", ["does not exist", "metrics.json", "forgot to write"]),
    "bad json": ("write(None, text='{\"losses\": {\"code\": 2.5,')", ["valid JSON", "line 1 column"]),
    "not an object": ("write([2.5, 3.5])", ["JSON object", "list"]),
    "no losses": ("write({'loss': {'code': 2.5}})", ["unknown ['loss']"]),
    "losses missing": ("write({'cost': {}})", ["must have \"losses\""]),
    "empty losses": ("write({'losses': {}})", ["non-empty object"]),
    "string loss": ("write({'losses': {'code': '2.5', 'web:news': 3.0}})", ["'code': '2.5'"]),
    "nan loss": ("write(None, text='{\"losses\": {\"code\": NaN, \"web:news\": 3.0}}')", ["'code': nan"]),
    "inf loss": ("write(None, text='{\"losses\": {\"code\": Infinity, \"web:news\": 3.0}}')", ["'code': inf"]),
    "bool loss": ("write({'losses': {'code': True, 'web:news': 3.0}})", ["'code': True"]),
    "empty name": ("write({'losses': {'': 2.5, 'web:news': 3.0}})", ["non-empty strings, got ''"]),
    "curve not a list": ("write({'losses': {'code': 2.5}, 'curves': {'code': 2.5}})", ["curves['code']"]),
    "curve bad point": ("write({'losses': {'code': 2.5}, 'curves': {'code': [[10, 3.0], [20]]}})",
                        ["curves['code'][1]", "[20]"]),
    "curve float step": ("write({'losses': {'code': 2.5}, 'curves': {'code': [[10.5, 3.0]]}})",
                         ["integer step", "[10.5, 3.0]"]),
    "curve nan loss": ("write(None, text='{\"losses\": {\"code\": 2.5}, \"curves\": {\"code\": [[1, NaN]]}}')",
                       ["curves['code'][0]", "[1, nan]"]),
    "bad cost": ("write({'losses': {'code': 2.5}, 'cost': {'gpu': 'A100'}})", ["cost values", "'gpu': 'A100'"]),
    "bad extra": ("write({'losses': {'code': 2.5}, 'extra': [1]})", ["\"extra\" must be an object"]),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_each_failure_mode_fails_the_trial_with_its_reason(tmp_path, case):
    body, expected = FAILURES[case]
    study = run_study(tmp_path, CommandEvaluator(command=script(tmp_path, body)))
    (trial,) = study.trials
    assert trial.state is TrialState.FAILED and trial.losses is None
    assert trial.error.startswith("EvaluationError: ")
    for text in expected:
        assert text in trial.error, (text, trial.error)


def test_a_missing_program_and_a_missing_cwd_fail_clearly(tmp_path):
    study = run_study(tmp_path, CommandEvaluator(command="no-such-program-bomix --x"), n_trials=1)
    assert "'no-such-program-bomix' failed" in study.trials[0].error
    ev = CommandEvaluator(command=script(tmp_path, "write({'losses': {'code': 1.0}})"), cwd=str(tmp_path / "nope"))
    with pytest.raises(EvaluationError, match="cwd must be an existing directory"):
        ev.evaluate({"web:news": 0.5, "code": 0.5}, TrialContext(directory=tmp_path / "t"))


def test_a_loss_the_objective_needs_but_the_command_lacks_fails_the_trial_by_name(tmp_path):
    cmd = script(tmp_path, "write({'losses': {'web:news': 3.5, 'code': 2.5}})")
    study = run_study(tmp_path, CommandEvaluator(command=cmd), objective="target:pile_cc")
    (trial,) = study.trials
    assert trial.state is TrialState.FAILED
    assert "needs losses for ['pile_cc'], got ['code', 'web:news']" in trial.error


def test_a_stale_metrics_file_does_not_pass_for_a_new_run(tmp_path):
    trial_dir = tmp_path / "t"
    trial_dir.mkdir()
    (trial_dir / "metrics.json").write_text(json.dumps(GOOD))
    ev = CommandEvaluator(command=script(tmp_path, "pass"))
    with pytest.raises(EvaluationError, match="does not exist"):
        ev.evaluate({"web:news": 0.5, "code": 0.5}, TrialContext(directory=trial_dir))


CHILD_THEN_SLEEP = """
    import subprocess
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(os.path.join(os.environ["BOMIX_TRIAL_DIR"], "pids"), "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    print("training...", file=sys.stderr, flush=True)
    time.sleep(60)
"""


def read_pids(trial_dir: Path) -> list[int]:
    return [int(p) for p in (trial_dir / "pids").read_text().split()]


def test_timeout_kills_the_whole_process_group(tmp_path):
    ev = CommandEvaluator(command=script(tmp_path, CHILD_THEN_SLEEP), timeout_s=3)
    start = time.monotonic()
    study = run_study(tmp_path, ev)
    assert time.monotonic() - start < 30  # the command sleeps 60 s
    (trial,) = study.trials
    assert trial.state is TrialState.FAILED
    assert "timeout_s=3 s" in trial.error and "training..." in trial.error
    leader, child = read_pids(study.trial_dir(0))
    assert wait_gone(leader) and wait_gone(child)


def test_a_command_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path, monkeypatch):
    monkeypatch.setattr(command_module, "KILL_GRACE_S", 0.5)
    body = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + textwrap.dedent(CHILD_THEN_SLEEP)
    ev = CommandEvaluator(command=script(tmp_path, body), timeout_s=2)
    start = time.monotonic()
    with pytest.raises(EvaluationError, match="timeout_s=2 s"):
        ev.evaluate({"web:news": 0.5, "code": 0.5}, TrialContext(directory=tmp_path / "t"))
    assert time.monotonic() - start < 20
    assert all(wait_gone(pid) for pid in read_pids(tmp_path / "t"))


def test_ctrl_c_kills_the_command_and_propagates(tmp_path):
    # A Python started with SIGINT ignored (e.g. by `cmd &` in a script, as a CI job may be) keeps
    # ignoring it: install the default handler so the simulated Ctrl-C raises KeyboardInterrupt.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_kills_the_command(tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)


def _ctrl_c_kills_the_command(tmp_path):
    ev = CommandEvaluator(command=script(tmp_path, CHILD_THEN_SLEEP))
    trial_dir = tmp_path / "t"

    def interrupt():  # Ctrl-C once the command has started its child
        deadline = time.monotonic() + 30
        while not (trial_dir / "pids").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        ev.evaluate({"web:news": 0.5, "code": 0.5}, TrialContext(directory=trial_dir))
    assert time.monotonic() - start < 30  # the command sleeps 60 s
    assert all(wait_gone(pid) for pid in read_pids(trial_dir))


def test_placeholders_are_substituted_in_every_argument_and_nothing_else(tmp_path):
    cmd = script(tmp_path, """
        json.dump(sys.argv[1:], open(os.path.join(os.environ["BOMIX_TRIAL_DIR"], "argv.json"), "w"))
        write({"losses": {"code": 1.0}})
    """)
    args = ["--mixture={mixture}", "{metrics}", "s{seed}-t{trial}", "{trial_dir}/ckpt", "{python}", "{other}",
            '{"json": 1}']
    d = tmp_path / "t"
    CommandEvaluator(command=cmd + args).evaluate({"a": 0.5, "b": 0.5}, TrialContext(number=4, seed=9, directory=d))
    assert json.loads((d / "argv.json").read_text()) == [
        f"--mixture={d / 'mixture.json'}", str(d / "metrics.json"), "s9-t4", f"{d}/ckpt", sys.executable,
        "{other}", '{"json": 1}']


def test_a_string_command_is_split_like_a_shell_and_a_relative_directory_made_absolute(tmp_path, monkeypatch):
    cmd = script(tmp_path, """
        json.dump(sys.argv[1:], open(os.path.join(os.environ["BOMIX_TRIAL_DIR"], "argv.json"), "w"))
        write({"losses": {"code": 1.0}}, None)
    """)
    ev = CommandEvaluator(command=shlex.join(cmd) + " --name 'two words' {seed}")
    assert ev.argv == cmd + ["--name", "two words", "{seed}"]
    monkeypatch.chdir(tmp_path)
    ev.evaluate({"a": 0.5, "b": 0.5}, TrialContext(seed=5, directory=Path("rel")))
    assert json.loads((tmp_path / "rel" / "argv.json").read_text()) == ["--name", "two words", "5"]


def test_without_a_trial_directory_a_temporary_one_is_used_then_removed_unless_it_failed(tmp_path):
    record = tmp_path / "where"
    cmd = script(tmp_path, """
        open(os.environ["RECORD"], "w").write(os.environ["BOMIX_TRIAL_DIR"])
        if os.environ["BOMIX_WEIGHT_A"] == "0.5":
            write({"losses": {"code": 1.0}})
    """)
    ev = CommandEvaluator(command=cmd, env={"RECORD": str(record)})
    assert ev.evaluate({"a": 0.5, "b": 0.5}).losses == {"code": 1.0}
    assert not Path(record.read_text()).exists()
    with pytest.raises(EvaluationError) as failure:
        ev.evaluate({"a": 0.25, "b": 0.75})
    kept = Path(record.read_text())
    assert kept.is_dir() and str(kept) in str(failure.value)
    shutil.rmtree(kept)


def test_weight_variables_and_collisions():
    assert weight_variable("web:news") == "BOMIX_WEIGHT_WEB_NEWS"
    assert weight_variable("pes2o") == "BOMIX_WEIGHT_PES2O"
    with pytest.raises(ConfigError, match="'a-b' and 'a_b' both give BOMIX_WEIGHT_A_B"):
        CommandEvaluator(command="true", domains=["a-b", "a_b"])


@pytest.mark.parametrize("params, message", [
    ({"command": ""}, "must name a program"),
    ({"command": []}, "must name a program"),
    ({"command": ["train", 100]}, "must all be strings"),
    ({"command": "train 'unclosed"}, "shell-like string"),
    ({"command": "t", "timeout_s": 0}, "timeout_s must be None or a finite number > 0"),
    ({"command": "t", "env": {"A": [1]}}, "env values"),
    ({"command": "t", "metrics_name": "/abs.json"}, "metrics_name"),
    ({"command": "t", "metrics_name": "mixture.json"}, "metrics_name"),
    ({"command": "t", "domains": ["a", "a"]}, "distinct"),
    ({"command": "t", "timeout": 5}, "accepts parameters"),
])
def test_bad_parameters_are_refused_up_front(params, message):
    with pytest.raises(ConfigError, match=message):
        get_evaluator("command", **params)


def test_domains_are_checked_by_the_study_and_by_evaluate(tmp_path):
    ev = CommandEvaluator(command="true", domains=["x", "y"])
    with pytest.raises(ConfigError, match="evaluator's domains must match"):
        run_study(tmp_path, ev)
    with pytest.raises(EvaluationError, match=r"takes mixtures over \['x', 'y'\]"):
        ev.evaluate({"a": 0.5, "b": 0.5}, TrialContext(directory=tmp_path / "t"))


def test_get_params_rebuilds_the_command_evaluator(tmp_path):
    ev = get_evaluator("command", command=["python", "train.py", "{mixture}"], domains=DOMAINS, timeout_s=5.5,
                       env={"X": "1"}, cwd=str(tmp_path), metrics_name="out/m.json")
    params = ev.get_params()
    assert params == {"command": ["python", "train.py", "{mixture}"], "domains": tuple(DOMAINS), "timeout_s": 5.5,
                      "env": {"X": "1"}, "cwd": str(tmp_path), "metrics_name": "out/m.json", "mapping": None,
                      "fidelities": None}
    assert CommandEvaluator(**params).get_params() == params
    assert json.loads(json.dumps(params)) == {**params, "domains": DOMAINS}


# -- proxy ----------------------------------------------------------------------------------------

def dataset(tmp_path, domains=DOMAINS) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.json").write_text(json.dumps({"domains": {d: {"tokens": 1000} for d in domains}}))
    return data


def test_proxy_reads_its_training_domains_from_the_manifest(tmp_path):
    data = dataset(tmp_path, ["b", "a", "c", "heldout", "val2"])
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["domains"]["heldout"] = {"train_tokens": 0, "val_tokens": 50, "val_only": True}
    manifest["domains"]["val2"] = {"train_tokens": 0, "val_tokens": 50}
    (data / "manifest.json").write_text(json.dumps(manifest))
    assert get_evaluator("proxy", data=str(data)).domains == ("b", "a", "c")


def test_proxy_without_a_manifest_says_how_to_build_one(tmp_path):
    with pytest.raises(ConfigError, match=r"does not exist .*manifest\.json.*bomix data build"):
        ProxyEvaluator(data=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"has no manifest\.json.*bomix data build"):
        ProxyEvaluator(data=str(tmp_path / "empty"))
    (tmp_path / "empty" / "manifest.json").write_text('{"domains": []}')
    with pytest.raises(ConfigError, match=r"must have \"domains\""):
        ProxyEvaluator(data=str(tmp_path / "empty"))


def test_proxy_builds_the_trainer_command(tmp_path):
    data = dataset(tmp_path)
    base = [sys.executable, "-m", "bomix.train", str(data), "--mixture", "{mixture}", "--metrics", "{metrics}",
            "--seed", "{seed}", "--preset", "tiny", "--device", "auto"]
    assert ProxyEvaluator(data=str(data)).argv == base
    ev = ProxyEvaluator(data=str(data), preset="small", tokens=5e6, device="cuda", eval_every=50, compile=False,
                        timeout_s=60, extra_args="--batch-size 16")
    assert ev.argv == base[:11] + ["small", "--device", "cuda", "--tokens", "5000000", "--eval-every", "50",
                                   "--no-compile", "--batch-size", "16"]
    assert ProxyEvaluator(data=str(data), compile=True).argv[-1] == "--compile"
    params = ev.get_params()
    assert params["extra_args"] == "--batch-size 16" and params["tokens"] == 5e6
    assert ProxyEvaluator(**params).argv == ev.argv
    for bad in ({"tokens": 1.5}, {"eval_every": 0}, {"compile": "yes"}, {"extra_args": [1]}, {"timeout_s": -1}):
        with pytest.raises(ConfigError):
            ProxyEvaluator(data=str(data), **bad)


def test_proxy_runs_the_trainer_in_a_child_process(tmp_path, monkeypatch):
    """A fake interpreter stands in for `python -m bomix.train`: it records its argv and trains nothing."""
    fake = tmp_path / "fake-python"
    fake.write_text(f"#!{sys.executable}\n" + PRELUDE + textwrap.dedent("""
        args = sys.argv[1:]
        json.dump(args, open(os.path.join(os.environ["BOMIX_TRIAL_DIR"], "argv.json"), "w"))
        assert args[:2] == ["-m", "bomix.train"]
        m = json.load(open(args[args.index("--mixture") + 1]))
        if m["trial"] == 1:
            sys.exit("RuntimeError: CUDA out of memory")
        with open(args[args.index("--metrics") + 1], "w") as f:
            json.dump({"losses": {d: 3.0 + w for d, w in m["weights"].items()},
                       "curves": {"code": [[1, 5.0], [2, 4.0]]}, "cost": {"tokens": 1e5}}, f)
    """))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(sys, "executable", str(fake))
    study = run_study(tmp_path, ProxyEvaluator(data=str(dataset(tmp_path)), tokens=100000), n_trials=2)
    ok, oom = study.trials
    assert ok.state is TrialState.COMPLETED and [list(p) for p in ok.curves["code"]] == [[1, 5.0], [2, 4.0]]
    assert ok.losses == pytest.approx({d: 3.0 + w for d, w in ok.weights.items()})
    argv = json.loads((study.trial_dir(0) / "argv.json").read_text())
    assert argv[argv.index("--seed") + 1] == str(ok.seed) and argv[argv.index("--tokens") + 1] == "100000"
    assert argv[argv.index("--metrics") + 1] == str((study.trial_dir(0) / "metrics.json").absolute())
    assert oom.state is TrialState.FAILED and "CUDA out of memory" in oom.error and "status 1" in oom.error


FIDELITY_SCRIPT = """
mix = json.load(open(os.environ["BOMIX_MIXTURE"]))
scale = sys.argv[1]
assert scale == os.environ["BOMIX_FIDELITY"] == mix["fidelity"], (scale, mix)
shift = {"small": 0.5, "big": 0.0}[scale]  # the smaller model is worse
w = mix["weights"]
write({"losses": {"web:news": 3.0 + shift + (w["web:news"] - 0.6) ** 2, "code": 2.0 + shift + (w["code"] - 0.4) ** 2}})
"""


def test_a_command_with_fidelities_runs_each_trial_at_its_scale(tmp_path):
    ev = CommandEvaluator(command=[*script(tmp_path, FIDELITY_SCRIPT), "{fidelity}"], domains=DOMAINS,
                          fidelities={"small": 1, "big": 10})
    assert ev.fidelities == {"small": 1.0, "big": 10.0} and ev.target_fidelity == "big"
    fast = {"n_init": 3, "raw_samples": 32, "num_restarts": 1, "mc_samples": 16}
    study = bomix.create_study(tmp_path / "study", space=bomix.MixtureSpace(DOMAINS), seed=0,
                               optimizer=bomix.get_optimizer("bo_mf", seed=0, **fast),
                               fidelities=ev.fidelities, target_fidelity=ev.target_fidelity)
    study.optimize(ev, n_trials=100, compute_budget=30)
    done = [t for t in study.trials if t.state is TrialState.COMPLETED]
    assert len(done) == len(study.trials) and study.compute_spent() <= 30
    assert {t.fidelity for t in done} == {"small", "big"}  # the script checked argv, env and mixture.json agree
    for t in done:
        assert t.cost["compute"] == {"small": 1.0, "big": 10.0}[t.fidelity]
        assert (t.losses["code"] > 2.4) == (t.fidelity == "small")
    rebuilt = get_evaluator("command", **ev.get_params())
    assert (rebuilt.fidelities, rebuilt.target_fidelity) == (ev.fidelities, "big")
    with pytest.raises(EvaluationError, match=r"must be one of the study's fidelities \['small', 'big'\], got 'huge'"):
        ev.evaluate({"web:news": 0.5, "code": 0.5}, TrialContext(fidelity="huge"))


def test_a_fidelity_placeholder_needs_fidelities(tmp_path):
    with pytest.raises(ConfigError, match=r"the \{fidelity\} placeholder needs fidelities = \{name: relative cost\}"):
        CommandEvaluator(command=["train", "--scale", "{fidelity}"])
    with pytest.raises(ConfigError, match="a fidelity's cost must be a finite number > 0, got big=0"):
        CommandEvaluator(command=["train", "{fidelity}"], fidelities={"small": 1, "big": 0})


def test_proxy_scales_train_each_trial_at_its_preset_and_tokens(tmp_path, monkeypatch):
    fake = tmp_path / "fake-python"  # records its argv, trains nothing
    fake.write_text(f"#!{sys.executable}\n" + PRELUDE + textwrap.dedent("""
        args = sys.argv[1:]
        json.dump(args, open(os.path.join(os.environ["BOMIX_TRIAL_DIR"], "argv.json"), "w"))
        with open(args[args.index("--metrics") + 1], "w") as f:
            json.dump({"losses": {"web:news": 3.0, "code": 2.0}}, f)
    """))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(sys, "executable", str(fake))
    data = dataset(tmp_path)
    scales = {"s": {"preset": "tiny", "tokens": 1000, "cost": 1}, "m": {"preset": "small", "tokens": 5000, "cost": 8}}
    ev = ProxyEvaluator(data=str(data), scales=scales)
    assert ev.fidelities == {"s": 1.0, "m": 8.0} and ev.target_fidelity == "m"
    for scale, preset, tokens in (("s", "tiny", "1000"), ("m", "small", "5000")):
        out = ev.evaluate({"web:news": 0.5, "code": 0.5}, TrialContext(number=1, seed=3, directory=tmp_path / scale,
                                                                       fidelity=scale))
        argv = json.loads((tmp_path / scale / "argv.json").read_text())
        assert argv[argv.index("--preset") + 1] == preset and argv[argv.index("--tokens") + 1] == tokens
        assert out.cost["compute"] == ev.fidelities[scale]
    assert ProxyEvaluator(**ev.get_params()).fidelities == ev.fidelities
    with pytest.raises(EvaluationError, match=r"the scale must be one of the study's fidelities \['s', 'm'\], got 'l'"):
        ev.evaluate({"web:news": 0.5, "code": 0.5}, TrialContext(fidelity="l"))


def test_proxy_scale_costs_default_to_parameters_times_tokens(tmp_path):
    from bomix.train.model import count_params, get_preset

    data = dataset(tmp_path)
    no_vocab = {"s": {"preset": "tiny", "tokens": 1000}}
    with pytest.raises(ConfigError, match="scale 's' needs a cost: .* gives no vocab_size"):
        ProxyEvaluator(data=str(data), scales=no_vocab)
    manifest = json.loads((data / "manifest.json").read_text())
    (data / "manifest.json").write_text(json.dumps({**manifest, "vocab_size": 256}))
    ev = ProxyEvaluator(data=str(data), scales={"s": {"preset": "tiny", "tokens": 1000}, "m": {"preset": "small"}})
    tiny, small = (count_params(get_preset(p, vocab_size=256)) for p in ("tiny", "small"))
    assert ev.fidelities == {"s": tiny * 1000.0, "m": small * 20.0 * small}  # small: 20 tokens per parameter
    for bad, message in (({"s": {"tokens": 5}}, "must be a table with a preset"),
                         ({"s": {"preset": "huge"}}, "preset must be one of"),
                         ({"s": {"preset": "tiny", "cost": -1}}, "a fidelity's cost must be a finite number > 0")):
        with pytest.raises(ConfigError, match=message):
            ProxyEvaluator(data=str(data), scales=bad)
