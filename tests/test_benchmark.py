import csv
import json

import pytest

import bomix
from bomix import benchmark as bm
from bomix.cli import main
from bomix.errors import ConfigError, SpecMismatchError
from bomix.evaluators import EVALUATORS
from bomix.evaluators.landscapes import landscape
from bomix.optimizers import OPTIMIZERS
from bomix.optimizers.builtin import SobolSearch

SEEDLIKE = {"name": "seedlike", "noise_sd": 0.017, "seed": 0}


def tiny(**benchmark) -> dict:
    return {"benchmark": {"methods": ["sobol", "random", "uniform"], "seeds": 2, "budget": 6, **benchmark},
            "evaluator": {"name": "landscape", "params": dict(SEEDLIKE)}}


def journal_values(out) -> dict:
    """(label, seed) -> [(trial seed, value)] of every finished trial, in order."""
    out_ = {}
    for d in sorted((out / "studies").glob("*/seed-*")):
        study = bomix.load_study(d)
        out_[(d.parent.name, d.name)] = [(t.seed, t.value) for t in study.trials if t.value is not None]
    return out_


def test_layout_summary_and_resume(tmp_path, capsys):
    out = tmp_path / "bench"
    result = bm.run_benchmark(tiny(), out)
    assert not result.failed
    spec = json.loads((out / "benchmark.json").read_text())
    assert spec["methods"] == {m: {"name": m, "params": {}} for m in ("sobol", "random", "uniform")}
    assert spec["seeds"] == [0, 1] and spec["budget"] == 6 and spec["fixed"] == ["uniform"]
    assert spec["objective"] == {"kind": "mean"} and spec["evaluator"] == {"name": "landscape", "params": SEEDLIKE}
    assert spec["space"]["domains"] == ["books", "cc", "stack", "pes2o", "reddit"]  # taken from the evaluator
    for label, n in (("sobol", 6), ("random", 6), ("uniform", 1)):
        for seed in (0, 1):
            study = bomix.load_study(out / "studies" / label / f"seed-{seed}")
            assert study.n_finished == n and study.seed == seed and study.optimizer.seed == seed
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [(r["label"], r["seed"], r["n_trials"]) for r in rows] == [  # seed by seed: a stopped run stays paired
        ("sobol", "0", "6"), ("random", "0", "6"), ("uniform", "0", "1"),
        ("sobol", "1", "6"), ("random", "1", "6"), ("uniform", "1", "1")]
    assert all(float(r["best_value"]) == float(r["recommended_value"]) for r in rows)  # best-observed recommenders
    printed = capsys.readouterr().out
    assert "random           seed 1" in printed and "wrote" in printed

    before = journal_values(out)
    again = bm.run_benchmark(tiny(), out)  # nothing left to do: no study is even opened
    assert "6 studies done, 0 to run" in capsys.readouterr().out
    assert journal_values(out) == before
    assert [r["best_value"] for r in again.summary] == [r["best_value"] for r in result.summary]


def test_paired_trial_seeds_across_methods(tmp_path):
    out = tmp_path / "bench"
    bm.run_benchmark(tiny(), out, show_progress=False)
    values = journal_values(out)
    for seed in (0, 1):
        sobol, random = values[("sobol", f"seed-{seed}")], values[("random", f"seed-{seed}")]
        assert [s for s, _ in sobol] == [s for s, _ in random]
        assert values[("uniform", f"seed-{seed}")][0][0] == sobol[0][0]
    assert values[("sobol", "seed-0")][0][0] != values[("sobol", "seed-1")][0][0]


def test_a_lost_journal_tail_is_redone(tmp_path):
    out = tmp_path / "bench"
    bm.run_benchmark(tiny(), out, show_progress=False)
    full = journal_values(out)
    journal = out / "studies" / "random" / "seed-1" / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:-1]))  # the last trial's "complete" is lost: it is RUNNING, then abandoned
    result = bm.run_benchmark(tiny(), out, show_progress=False)
    assert journal_values(out) == full  # the redo keeps the trial's seed, so the value is the same
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [(r["label"], r["seed"]) for r in runs[6:]] == [("random", 1)]  # only that study ran again
    assert runs[-1]["new_trials"] == 1 and not result.failed


class Interrupting:
    """seedlike, but raises KeyboardInterrupt at call number `stop_at` (module-level switch)."""

    calls, stop_at = 0, None

    def __new__(cls, **params):
        inner = landscape(**params)
        original = inner.evaluate

        def evaluate(weights, context=None):
            cls.calls += 1
            if cls.stop_at is not None and cls.calls == cls.stop_at:
                raise KeyboardInterrupt
            return original(weights, context)

        inner.evaluate = evaluate
        return inner


def test_interrupted_benchmark_resumes_to_the_same_result(tmp_path, monkeypatch):
    monkeypatch.setitem(EVALUATORS, "interrupting", f"{__name__}:Interrupting")
    config = tiny()
    config["evaluator"]["name"] = "interrupting"
    monkeypatch.setattr(Interrupting, "stop_at", 9)  # in random seed 0, the second study
    with pytest.raises(KeyboardInterrupt):
        bm.run_benchmark(config, tmp_path / "a", show_progress=False)
    # sobol seed 0 done, random seed 0 part-way; nothing else started
    assert sorted(journal_values(tmp_path / "a")) == [("random", "seed-0"), ("sobol", "seed-0")]
    monkeypatch.setattr(Interrupting, "stop_at", None)
    result = bm.run_benchmark(config, tmp_path / "a", show_progress=False)
    assert not result.failed and len(result.summary) == 6
    bm.run_benchmark(config, tmp_path / "b", show_progress=False)
    assert journal_values(tmp_path / "a") == journal_values(tmp_path / "b")


def test_report_leaves_out_the_studies_a_stopped_benchmark_did_not_finish(tmp_path, monkeypatch, caplog, capsys):
    from bomix.report import load

    monkeypatch.setitem(EVALUATORS, "interrupting", f"{__name__}:Interrupting")
    config = tiny()
    config["evaluator"]["name"] = "interrupting"
    monkeypatch.setattr(Interrupting, "calls", 0)
    monkeypatch.setattr(Interrupting, "stop_at", 9)  # sobol seed 0 done, random seed 0 stopped after 2 trials
    with pytest.raises(KeyboardInterrupt):
        bm.run_benchmark(config, tmp_path / "a", show_progress=False)
    data = load([tmp_path / "a"])  # a part-run study would enter the paired tests with 2 trials of 6
    assert set(data.studies) == {("sobol", 0)} and data.sources[0]["unfinished"] == ["random seed 0"]
    assert "left out 1 unfinished" in caplog.text and "random seed 0" in caplog.text
    capsys.readouterr()
    assert main(["status", str(tmp_path / "a")]) == 0  # how far a stopped benchmark got
    out = capsys.readouterr().out
    assert "1 of 6 studies finished, 0 failed" in out and "seeds finished by every method (a paired table can " \
        "use them): 0" in out and "rerun the benchmark command to resume" in out
    assert [line.split()[:4] for line in out.splitlines()[1:4]] == [
        ["sobol", "1", "/", "2"], ["random", "0", "/", "2"], ["uniform", "0", "/", "2"]]
    monkeypatch.setattr(Interrupting, "stop_at", None)
    bm.run_benchmark(config, tmp_path / "a", show_progress=False)
    data = load([tmp_path / "a"])
    assert len(data.studies) == 6 and "unfinished" not in data.sources[0]
    assert main(["status", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "6 of 6 studies finished" in out and "every method (a paired table can use them): 2 (0-1)" in out
    assert "time left" not in out


class Boom(SobolSearch):
    name = "boom"

    def suggest(self, history, n=1):
        if self.seed == 1 and len(history.trials) >= 2:
            raise RuntimeError("boom at the third trial")
        return super().suggest(history, n)


def test_a_failing_study_is_reported_and_the_others_go_on(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(OPTIMIZERS, "boom", f"{__name__}:Boom")
    result = bm.run_benchmark(tiny(methods=["boom", "random"]), tmp_path / "b")
    assert [(r["label"], r["seed"]) for r in result.failed] == [("boom", 1)]
    assert "RuntimeError: boom at the third trial" in result.failed[0]["error"]
    assert "boom             seed 1   FAILED" in capsys.readouterr().out
    rows = {(r["label"], r["seed"]): r for r in csv.DictReader((tmp_path / "b" / "summary.csv").open())}
    assert rows[("random", "1")]["n_trials"] == "6" and rows[("boom", "0")]["error"] == ""
    assert "boom at the third trial" in rows[("boom", "1")]["error"]


def test_changed_config_is_refused_naming_the_key(tmp_path):
    bm.run_benchmark(tiny(seeds=[0]), tmp_path / "b", show_progress=False)
    with pytest.raises(SpecMismatchError, match=r"budget: stored 6, given 7"):
        bm.run_benchmark(tiny(seeds=[0], budget=7), tmp_path / "b", show_progress=False)
    changed = tiny(seeds=[0])
    changed["evaluator"]["params"]["noise_sd"] = 0.02
    with pytest.raises(SpecMismatchError, match=r"evaluator.params.noise_sd: stored 0.017, given 0.02"):
        bm.run_benchmark(changed, tmp_path / "b", show_progress=False)
    bm.run_benchmark(tiny(seeds=[0], n_workers=2), tmp_path / "b", show_progress=False)  # not part of the spec


def test_two_workers_give_the_same_studies(tmp_path):
    bm.run_benchmark(tiny(methods=["sobol", "random"]), tmp_path / "one", n_workers=1, show_progress=False)
    result = bm.run_benchmark(tiny(methods=["sobol", "random"]), tmp_path / "two", n_workers=2,
                              show_progress=False)
    assert not result.failed
    assert journal_values(tmp_path / "one") == journal_values(tmp_path / "two")


@pytest.mark.parametrize("change, match", [
    ({"benchmark": {"methods": ["sobol"], "seed": 2}}, r"\[benchmark\] keys must be among .* unknown \['seed'\]"),
    ({"benchmark": {"methods": ["bayes"]}}, r"benchmark.methods.bayes.name must be one of"),
    ({"benchmark": {"methods": {"a": {"name": "sobol", "param": {}}}}}, r"benchmark.methods.a keys .*\['param'\]"),
    ({"benchmark": {"methods": {"a": {"name": "sobol", "params": {"seed": 3}}}}}, r"params.seed must be left out"),
    ({"benchmark": {"methods": {"a/b": "sobol"}}}, r"a label must be"),
    ({"benchmark": {"methods": []}}, r"at least one method"),
    ({"benchmark": {"methods": ["sobol"], "seeds": 0}}, r"benchmark.seeds must be >= 1"),
    ({"benchmark": {"methods": ["sobol"], "seeds": [1, 1]}}, r"must not repeat a seed"),
    ({"benchmark": {"methods": ["sobol"], "budget": "64"}}, r"benchmark.budget must be int"),
    ({"benchmark": {"methods": ["sobol"], "fixed": ["llama"]}}, r"benchmark.fixed must name labels"),
    ({"benchmark": {"methods": ["sobol"]}, "study": {"n_trials": 3}}, r"\[study\] keys must be among \['objective'\]"),
    ({"benchmark": {"methods": ["sobol"]}, "optimizer": {}}, r"sections must be among"),
    ({"evaluator": {"name": "landscape"}}, r"needs a \[benchmark\] section"),
])
def test_bad_config_is_a_config_error(change, match):
    with pytest.raises(ConfigError, match=match):
        bm.config_from_dict(change)


def test_bad_optimizer_params_fail_before_anything_is_written(tmp_path):
    config = tiny(methods={"s": {"name": "sobol", "params": {"scramble": 1}}})
    with pytest.raises(ConfigError, match="accepts parameters"):
        bm.run_benchmark(config, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_fixed_override_and_method_table(tmp_path):
    config = tiny(methods={"s": "sobol", "r2": {"name": "random"}}, fixed=["r2"], seeds=[3])
    result = bm.run_benchmark(config, tmp_path / "b", show_progress=False)
    assert [(r["label"], r["seed"], r["n_trials"]) for r in result.summary] == [("s", 3, 6), ("r2", 3, 1),
                                                                                ("uniform", 3, 1)]


def test_bench_seedlike_config_resolves(repo_root):
    config = bm.load_benchmark_config(repo_root / "experiments/configs/bench_seedlike.toml")
    spec = bm.resolve(config)
    assert list(spec["methods"]) == ["bo", "sobol", "random", "uniform", "llama", "bimix", "mixing_laws", "regmix",
                                     "olmix"]
    assert spec["fixed"] == ["uniform", "llama"] and spec["seeds"] == list(range(50)) and spec["budget"] == 64
    assert spec["methods"]["llama"]["params"]["mapping"]["cc"] == ["CommonCrawl", "C4"]


def test_synthetic_swarm_writes_a_pool_the_benchmark_replays(tmp_path, repo_root, capsys):
    """experiments/synthetic_swarm.py: olmix-shaped CSVs of a landscape's noise-free losses and a
    config that replays them as a pool, with the prior it drew."""
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("synthetic_swarm", repo_root / "experiments/synthetic_swarm.py")
    swarm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(swarm)
    swarm.main(["--landscape", "interaction", "--k", "12", "--runs", "40", "--seeds", "2", "--budget", "8",
                "-o", str(tmp_path / "s")])
    assert "40 runs, 12 domains, 12 losses" in capsys.readouterr().out
    config = bm.load_benchmark_config(tmp_path / "s" / "bench.toml")
    ev = bomix.get_evaluator(config.evaluator.name, **config.evaluator.params)
    land = landscape("interaction", k=12, seed=0)
    assert ev.pool.shape == (40, 12) and (ev.pool == 0).any()  # sparse, as olmix's swarms
    got = [ev.evaluate(dict(zip(ev.domains, x))).losses for x in ev.pool[:3]]
    np.testing.assert_allclose([[g[n] for n in land.loss_names] for g in got], land.true_loss_matrix(ev.pool[:3]))
    assert list(config.space.prior) == list(land.domains) and sum(config.space.prior.values()) == pytest.approx(1.0)
    assert config.benchmark.seeds == [0, 1] and config.benchmark.budget == 8


def test_cli_benchmark(tmp_path, repo_root, capsys):
    out = tmp_path / "bench"
    args = ["benchmark", str(repo_root / "experiments/configs/bench_seedlike.toml"), "-o", str(out),
            "--set", "benchmark.seeds=[0]", "--set", "benchmark.budget=3",
            "--set", 'benchmark.methods=["sobol", "uniform"]']
    assert main(args) == 0
    assert "sobol            seed 0   best" in capsys.readouterr().out
    assert (out / "summary.csv").exists() and (out / "studies" / "uniform" / "seed-0" / "study.json").exists()
    assert main(args[:-1] + ['benchmark.methods=["sobol", "random"]']) == 2
    assert "methods.random: stored" in capsys.readouterr().err
    assert main(args + ["--set", "benchmark.bogus=1"]) == 2
    assert "unknown ['bogus']" in capsys.readouterr().err


def test_a_killed_benchmark_leaves_no_worker_running(tmp_path):
    """Its workers die with it (PR_SET_PDEATHSIG), so no study goes on running, and locked, behind it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    config = tmp_path / "b.toml"
    config.write_text('[benchmark]\nmethods = ["sobol", "random"]\nseeds = 2\nbudget = 25\nreferences = false\n\n'
                      '[evaluator]\n'
                      'name = "landscape"\nparams = { name = "seedlike", sleep_s = 0.2 }\n')
    proc = subprocess.Popen([sys.executable, "-m", "bomix", "benchmark", str(config), "-o", str(tmp_path / "out"),
                             "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    start = time.monotonic()
    while time.monotonic() - start < 60 and len(list((tmp_path / "out").glob("studies/*/seed-*/journal.jsonl"))) < 2:
        time.sleep(0.1)
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True)
    workers = [int(p) for p in children.stdout.split()]
    assert workers, "the benchmark should have started its workers"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    alive = workers
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in workers if subprocess.run(["ps", "-p", str(p)], capture_output=True).returncode == 0]
    assert not alive, f"benchmark workers outlived it: {alive}"
    assert main(["benchmark", str(config), "-o", str(tmp_path / "out"), "--workers", "1"]) == 0  # resumes: no lock held
    assert len(journal_values(tmp_path / "out")) == 4


def test_every_method_gets_the_budget_and_no_law_spends_it_on_design(tmp_path):
    """budget 16 at k = 5: every law's design is at most half of it (their own defaults: bimix 10,
    mixing laws 21, olmix 12), so every law is fitted and proposes; bo's design likewise. Methods given no budget plan for
    the benchmark's (History.budget), and a method's own different budget is refused."""
    fast_bo = {"model": "scalar", "num_restarts": 2, "raw_samples": 32, "mc_samples": 16}
    methods = {m: {"name": m, "params": {"n0": None} if m != "bo" else fast_bo}
               for m in ("bo", "bimix", "mixing_laws", "regmix", "olmix")}
    methods["regmix"]["params"]["n_simulations"] = 2000
    methods["mixing_laws"]["params"]["n_restarts"] = 2
    methods["olmix"]["params"]["n_starts"] = 2
    config = {"benchmark": {"methods": methods, "seeds": [0], "budget": 16, "references": False},
              "evaluator": {"name": "landscape", "params": {"name": "seedlike", "noise_sd": 0.002}}}
    result = bm.run_benchmark(config, tmp_path / "b", show_progress=False)
    assert not result.failed, result.failed
    for label in methods:
        study = bomix.load_study(bm.study_dir(tmp_path / "b", label, 0))
        sources = [t.proposed_by for t in study.trials]
        design = sum(s.endswith(("/design", "/init")) for s in sources)
        assert len(sources) == 16 and 1 <= design <= 8, (label, sources)
    with pytest.raises(ConfigError, match="params.budget must be left out or equal benchmark.budget"):
        bm.resolve(bm.config_from_dict({**config, "benchmark": {**config["benchmark"],
                                                                 "methods": {"r": {"name": "regmix",
                                                                                   "params": {"budget": 64}}}}}))


def test_the_trivial_reference_rules_join_every_benchmark():
    base = {"benchmark": {"methods": ["sobol"], "seeds": 1, "budget": 4},
            "space": {"domains": ["a", "b", "c"], "prior": {"a": 0.5, "b": 0.3, "c": 0.2}},
            "study": {"objective": "target:b"},
            "evaluator": {"name": "landscape", "params": {"name": "seedlike"}}}
    spec = bm.resolve(bm.config_from_dict(base))
    assert list(spec["methods"]) == ["sobol", "uniform", "prior", "focus"]
    assert spec["fixed"] == ["uniform", "prior", "focus"]
    plain = bm.resolve(bm.config_from_dict({**base, "space": {"domains": ["a", "b", "c"]}, "study": {}}))
    assert list(plain["methods"]) == ["sobol", "uniform"]  # no prior, and the mean names no domain
    off = bm.resolve(bm.config_from_dict({**base, "benchmark": {**base["benchmark"], "references": False}}))
    assert list(off["methods"]) == ["sobol"]
    with pytest.raises(ConfigError, match="params.prior must be left out"):
        bm.resolve(bm.config_from_dict({**base, "benchmark": {**base["benchmark"], "methods": {
            "r": {"name": "regmix", "params": {"prior": {"a": 1, "b": 1, "c": 1}}}}}}))
