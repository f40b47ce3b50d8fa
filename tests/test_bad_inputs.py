"""The bad-input suite: malformed configs, mixtures, CSVs, evaluator outputs and study files.

Every case checks two things:
  1. a CLEAR error: its type, and a message that states the rule and names the offending value;
  2. that NOTHING is lost or half-written: a refused operation leaves a study's files byte-identical
     (journal.jsonl, study.json, config.json), creates no directory or partial file, and the trials
     completed before it still load.
Evaluator outputs are the exception by design: a bad metrics file FAILS its trial (with a reason
naming the problem) and the campaign goes on, keeping the trials completed around it.

Families: configs (TOML files, `bomix run`, `bomix benchmark`, --set), mixtures (MixtureSpace,
enqueue, add_trial), CSVs (import_runs and the replay evaluator), evaluator outputs (the command
evaluator inside a study), study files (journal.jsonl, study.json, the write lock), objectives
(specs, the task-family kind resolved against losses, olmix fit configs).
"""

import json
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import bomix
from bomix import testing
from bomix.benchmark import load_benchmark_config
from bomix.cli import main
from bomix.errors import (ConfigError, EvaluationError, InvalidWeightsError, JournalCorruptedError,
                          SpecMismatchError, StudyError, StudyLockedError)
from bomix.evaluators.command import CommandEvaluator
from bomix.evaluators.replay import ReplayEvaluator
from bomix.journal import StudyLock
from bomix.study import optimizer_spec
from bomix.trial import Evaluation, TrialState

COMPLETED, FAILED = TrialState.COMPLETED, TrialState.FAILED
ABC = ["a", "b", "c"]


# -- helpers ------------------------------------------------------------------------------------
def files(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (relative path -> bytes), the lock file aside (it holds a pid)."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name != "study.lock"}


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def summary(study) -> list[tuple]:
    """What must survive a refused operation: each trial's number, state, weights and losses."""
    return [(t.number, t.state, t.weights, t.losses) for t in study.trials]


def assert_unlocked(directory: Path) -> None:
    """A refused open must not leave the study locked."""
    StudyLock(directory).acquire().release()


class Toy(bomix.Evaluator):
    """Deterministic smooth per-domain losses (bomix.testing.toy_losses)."""

    def evaluate(self, weights, context=None):
        space = bomix.MixtureSpace(list(weights))
        return Evaluation(losses=testing.toy_losses(space, np.array(list(weights.values()))))


# == 1. configs ==================================================================================
CONFIG = """\
[study]
dir = {dir}
seed = 0
n_trials = 2

[space]
domains = ["books", "cc", "stack", "pes2o", "reddit"]

[optimizer]
name = "sobol"

[evaluator]
name = "landscape"
params = {{name = "seedlike", noise_sd = 0.0, seed = 0}}
"""


def run_cli(capsys, *args) -> tuple[int, str]:
    """`bomix ARGS` in-process: (exit code, stderr)."""
    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().err


def assert_one_line_error(err: str, match: str) -> None:
    assert err.startswith("bomix: error: "), err
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(match, err), (match, err)


@pytest.fixture
def campaign(tmp_path, capsys):
    """A config file and the 2-trial study `bomix run` made from it: (config path, study dir)."""
    config = tmp_path / "campaign.toml"
    study_dir = tmp_path / "study"
    config.write_text(CONFIG.format(dir=json.dumps(str(study_dir))))
    assert run_cli(capsys, "run", str(config), "--no-progress")[0] == 0
    return config, study_dir


def _replace(old, new):
    def edit(text):
        assert old in text
        return text.replace(old, new)
    return edit


MISSING_FILE = object()

CONFIG_CASES = [
    pytest.param(lambda t: t + "\n[studdy]\nseed = 1\n", [],
                 r"config sections must be among \['evaluator', 'optimizer', 'space', 'study'\], got unknown "
                 r"\['studdy'\]", id="unknown-section"),
    pytest.param(_replace("n_trials = 2", "n_trails = 4"), [],
                 r"\[study\] keys must be among \[.*'n_trials'.*\], got unknown \['n_trails'\]", id="misspelt-key"),
    pytest.param(_replace("n_trials = 2", 'n_trials = "4"'), [],
                 r"study\.n_trials must be int, got '4' \(str\)", id="string-for-int"),
    pytest.param(_replace("n_trials = 2", "n_trials = 4.5"), [],
                 r"study\.n_trials must be int, got 4\.5 \(float\)", id="float-for-int"),
    pytest.param(_replace("n_trials = 2", "n_trials = -4"), [],
                 r"study\.n_trials must be >= 0, got -4", id="negative-n_trials"),
    pytest.param(_replace("[space]", "[space"), [],
                 r"bad\.toml must be valid TOML: .*\(at line 6, column \d+\)", id="toml-syntax-error"),
    pytest.param(MISSING_FILE, [], r"config file must exist, got '.*nope\.toml'", id="missing-file"),
    pytest.param(None, ["--set", "study.n_trials"],
                 r"--set takes key=value \(e\.g\. study\.n_trials=64\), got 'study\.n_trials'", id="set-without-value"),
    pytest.param(None, ["--set", "n_trials=4"],
                 r"--set keys are section\.key \(e\.g\. study\.seed=1\), got 'n_trials=4'", id="set-without-section"),
    pytest.param(None, ["--set", "study.dir.x=4"], r"--set 'study\.dir\.x=4': dir is not a table",
                 id="set-into-a-value"),
    pytest.param(None, ["--set", "study.n_trials=four"], r"study\.n_trials must be int, got 'four' \(str\)",
                 id="set-bad-value"),
    pytest.param(None, ["--set", "study.seed=1"],
                 r"resuming .*study needs the spec it was created with; differences: .*seed: stored 0, given 1",
                 id="set-changes-the-spec"),
]


@pytest.mark.parametrize("edit, extra, match", CONFIG_CASES)
def test_cli_refuses_a_bad_config_and_leaves_the_study_as_it_was(tmp_path, capsys, campaign, edit, extra, match):
    config, study_dir = campaign
    before, trials, names = files(study_dir), summary(bomix.load_study(study_dir)), listing(tmp_path)
    if edit is MISSING_FILE:
        path = tmp_path / "nope.toml"
    elif edit is None:
        path = config
    else:
        path = tmp_path / "bad.toml"
        path.write_text(edit(config.read_text()))
    code, err = run_cli(capsys, "run", str(path), "--no-progress", *extra)
    assert code == 2
    assert_one_line_error(err, match)
    assert files(study_dir) == before  # journal.jsonl, study.json and config.json untouched
    assert [n for n in listing(tmp_path) if n != "bad.toml"] == names  # nothing new beside it
    again = bomix.load_study(study_dir)
    assert summary(again) == trials and [t.state for t in again.trials] == [COMPLETED] * 2


BENCHMARK = """\
[benchmark]
methods = ["sobol", "random"]
seeds = 2
budget = 3

[evaluator]
name = "landscape"
params = {name = "seedlike"}
"""

BENCHMARK_CASES = [
    pytest.param(_replace("budget = 3", "budgett = 3"), [],
                 r"\[benchmark\] keys must be among \[.*'budget'.*\], got unknown \['budgett'\]", id="misspelt-key"),
    pytest.param(_replace("budget = 3", "budget = -1"), [], r"benchmark\.budget must be an integer >= 1, got -1",
                 id="negative-budget"),
    pytest.param(_replace('"random"]', '"bayes"]'), [],
                 r"benchmark\.methods\.bayes\.name must be one of \[.*'sobol'.*\], got 'bayes'", id="unknown-method"),
    pytest.param(_replace("[evaluator]", "[evaluator"), [], r"bench\.toml must be valid TOML: .*line 6",
                 id="toml-syntax-error"),
    pytest.param(None, ["--set", "seeds=3"],
                 r"--set keys are section\.key \(e\.g\. benchmark\.seeds=3\), got 'seeds=3'", id="set-without-section"),
]


@pytest.mark.parametrize("edit, extra, match", BENCHMARK_CASES)
def test_cli_refuses_a_bad_benchmark_config_before_creating_its_folder(tmp_path, capsys, edit, extra, match):
    path = tmp_path / "bench.toml"
    path.write_text(BENCHMARK if edit is None else edit(BENCHMARK))
    code, err = run_cli(capsys, "benchmark", str(path), "-o", str(tmp_path / "out"), *extra)
    assert code == 2
    assert_one_line_error(err, match)
    assert listing(tmp_path) == ["bench.toml"]  # no OUT folder, no partial benchmark.json


def test_load_benchmark_config_names_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config file must exist, got '.*nowhere\.toml'"):
        load_benchmark_config(tmp_path / "nowhere.toml")
    assert listing(tmp_path) == []


# == 2. mixtures =================================================================================
@pytest.fixture
def bounded(tmp_path):
    """An open study over a, b, c (c >= 0.05, a <= 0.8) holding 2 completed trials."""
    space = bomix.MixtureSpace(ABC, floors={"c": 0.05}, caps={"a": 0.8})
    study = bomix.create_study(tmp_path / "s", space=space, optimizer="sobol", seed=0)
    study.optimize(Toy(), n_trials=2)
    yield study
    study.close()


MIXTURE_CASES = [
    pytest.param([0.2, 0.3, 0.4], r"weights must sum to 1, got 0\.9 for \['a', 'b', 'c'\]", id="sum-not-1"),
    pytest.param([1.1, -0.15, 0.05], r"weights must be >= 0, got \[1\.1, -0\.15, 0\.05\]", id="negative"),
    pytest.param([0.5, float("nan"), 0.5], r"weights must be finite, got \[0\.5, nan, 0\.5\]", id="nan"),
    pytest.param([0.5, float("inf"), 0.5], r"weights must be finite, got \[0\.5, inf, 0\.5\]", id="infinity"),
    pytest.param({"a": 0.5, "b": 0.45, "d": 0.05},
                 r"weights name unknown domains \['d'\]; the domains are \['a', 'b', 'c'\]", id="unknown-domain"),
    pytest.param({"a": 0.5, "b": 0.5}, r"weights must give every domain, missing \['c'\]", id="missing-domain"),
    pytest.param({"a": "0.5", "b": 0.45, "c": 0.05},
                 r"weights must be numbers \(not strings or booleans\), got \{'a': '0\.5'\}", id="string-weight"),
    pytest.param([True, False, False], r"weights must be numbers \(not strings or booleans\), got True in",
                 id="boolean-weights"),
    pytest.param([0.5, 0.5], r"weights must have one value per domain \(3\), got shape \(2,\)", id="too-few"),
    pytest.param([0.5, 0.5, 0.0], r"weights must be >= their floors, got \['c'\] below floors \[0, 0, 0\.05\]",
                 id="below-floor"),
    pytest.param([0.9, 0.05, 0.05], r"weights must be <= their caps, got \['a'\] above caps \[0\.8, 1, 1\]",
                 id="above-cap"),
]


@pytest.mark.parametrize("method", ["enqueue", "add_trial"])
@pytest.mark.parametrize("weights, match", MIXTURE_CASES)
def test_a_bad_mixture_is_refused_and_the_journal_is_untouched(bounded, method, weights, match):
    journal = bounded.directory / "journal.jsonl"
    before, trials = journal.read_bytes(), summary(bounded)
    call = (lambda: bounded.enqueue(weights)) if method == "enqueue" else \
        (lambda: bounded.add_trial(weights, {"a": 3.0, "b": 3.1, "c": 3.2}))
    with pytest.raises(InvalidWeightsError, match=match):
        call()
    assert journal.read_bytes() == before
    assert summary(bounded) == trials and bounded.queued == []
    assert summary(bomix.load_study(bounded.directory)) == trials  # the completed trials still load
    bounded.enqueue([0.4, 0.4, 0.2])  # and the study still takes a good mixture
    assert len(bomix.load_study(bounded.directory).queued) == 1


@pytest.mark.parametrize("losses, error, match", [
    pytest.param({"a": "3.1", "b": 3.0, "c": 3.0}, EvaluationError, r"losses must be numbers, got a='3\.1'",
                 id="string-loss"),
    pytest.param({"a": 3.1, "b": float("nan"), "c": 3.0}, EvaluationError, r"losses must be finite, got b=nan",
                 id="nan-loss"),
    pytest.param({}, EvaluationError, r"an evaluation needs a non-empty dict of per-domain losses, got \{\}",
                 id="no-losses"),
])
def test_add_trial_refuses_bad_losses_before_writing(bounded, losses, error, match):
    journal = bounded.directory / "journal.jsonl"
    before, trials = journal.read_bytes(), summary(bounded)
    with pytest.raises(error, match=match):
        bounded.add_trial([0.4, 0.4, 0.2], losses)
    assert journal.read_bytes() == before and summary(bounded) == trials
    assert summary(bomix.load_study(bounded.directory)) == trials


@pytest.mark.parametrize("overrides, match", [
    pytest.param(["space.floors={books = 0.6, cc = 0.6}"],
                 r"floors must sum to at most 1, got 1\.2 for \[0\.6, 0\.6, 0, 0, 0\]", id="floors-over-1"),
    pytest.param(["space.caps=0.1"], r"caps must sum to at least 1 \(else no mixture fits\), got 0\.5",
                 id="caps-under-1"),
    pytest.param(["space.floors={books = 0.6}", "space.caps={books = 0.3}"],
                 r"each floor must be <= its cap, got \(floor, cap\) \{'books': \(0\.6, 0\.3\)\}",
                 id="cap-under-floor"),
    pytest.param(['space.domains=["books", "books", "cc", "stack", "pes2o"]'],
                 r"domain names must be unique, got duplicates \['books'\]", id="duplicate-domains"),
    pytest.param(["space.floors={book = 0.1}"],
                 r"floors name unknown domains \['book'\]; the domains are \['books', 'cc', 'stack', 'pes2o', "
                 r"'reddit'\]", id="floor-of-unknown-domain"),
])
def test_a_bad_space_in_a_config_is_refused_before_anything_is_written(tmp_path, capsys, overrides, match):
    config = tmp_path / "c.toml"
    config.write_text(CONFIG.format(dir=json.dumps(str(tmp_path / "study"))))
    extra = [arg for override in overrides for arg in ("--set", override)]
    code, err = run_cli(capsys, "run", str(config), "--no-progress", *extra)
    assert code == 2
    assert_one_line_error(err, match)
    assert listing(tmp_path) == ["c.toml"]  # no study directory


def test_a_space_the_evaluator_cannot_score_is_refused_before_the_study_is_created(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(CONFIG.format(dir=json.dumps(str(tmp_path / "study"))))
    code, err = run_cli(capsys, "run", str(config), "--no-progress", "--set", 'space.domains=["a", "b", "c"]')
    assert code == 2
    assert_one_line_error(err, r"the evaluator's domains must match the study's, got \['books', .*\] for a study "
                               r"over \['a', 'b', 'c'\]")
    assert listing(tmp_path) == ["c.toml"]


# == 3. CSVs (olmix ratios.csv + metrics.csv) ====================================================
RATIOS = """\
run,name,index,a,b,c
r0,toy,0,0.5,0.3,0.2
r1,toy,1,0.2,0.5,0.3
r2,toy,2,0.3,0.3,0.4
r3,toy,3,0.6,0.2,0.2
"""
METRICS = """\
run,name,index,a,b,c
r0,toy,0,3.1,3.2,3.3
r1,toy,1,3.4,3.0,3.1
r2,toy,2,3.3,3.2,3.0
r3,toy,3,3.0,3.4,3.4
"""


def _sub(which: str, old: str, new: str):
    """A mutation replacing `old` by `new` in ratios.csv or metrics.csv."""
    def mutate(pair):
        path = pair[which]
        text = path.read_text()
        assert old in text, (old, text)
        path.write_text(text.replace(old, new, 1))
    return mutate


def _drop_column(which: str, *columns: str):
    def mutate(pair):
        import pandas as pd

        df = pd.read_csv(pair[which])
        df.drop(columns=list(columns)).to_csv(pair[which], index=False)
    return mutate


# id, mutation, (error, match) from study.import_runs, (error, match) from ReplayEvaluator
CSV_CASES = [
    ("run-in-ratios-not-metrics", _sub("metrics", "r3,toy,3,3.0,3.4,3.4\n", ""),
     (ConfigError, r"every run needs both ratios and metrics; unmatched run values \['r3'\]"),
     (ConfigError, r"replay every run needs both ratios and metrics; unmatched run values \['r3'\]")),
    ("run-in-metrics-not-ratios", _sub("ratios", "r1,toy,1,0.2,0.5,0.3\n", ""),
     (ConfigError, r"unmatched run values \['r1'\]"), (ConfigError, r"unmatched run values \['r1'\]")),
    ("non-numeric-weight", _sub("ratios", "r1,toy,1,0.2,", "r1,toy,1,abc,"),
     (InvalidWeightsError, r"ratios row run='r1': weights must be numbers, got \{'a': 'abc'\}"),
     (ConfigError, r"replay ratios columns must hold numbers, got a='abc' for run='r1'")),
    ("non-numeric-loss", _sub("metrics", "r2,toy,2,3.3,3.2,", "r2,toy,2,3.3,oops,"),
     (ConfigError, r"metrics must be numbers, got b='oops' for run='r2'"),
     (ConfigError, r"replay metrics columns must hold numbers, got b='oops' for run='r2'")),
    ("blank-weight", _sub("ratios", "r1,toy,1,0.2,", "r1,toy,1,,"),
     (InvalidWeightsError, r"ratios row run='r1': weights must be finite, got \[nan, 0\.5, 0\.3\]"),
     (ConfigError, r"replay ratios row run='r1' must be a mixture: weights must be finite, got \[nan, 0\.5, 0\.3\]")),
    ("missing-domain-column", _drop_column("ratios", "c"),
     (ConfigError, r"ratios columns must be the study's domains \['a', 'b', 'c'\]; missing \['c'\], unknown \[\]"),
     (ConfigError, r"replay ratios row run='r0' must be a mixture: weights must sum to 1, got 0\.8")),
    ("missing-key-column", _drop_column("metrics", "run", "index"),
     (ConfigError, r"ratios and metrics must share a 'run' or 'index' column, got \[.*\] and "
                   r"\['name', 'a', 'b', 'c'\]"),
     (ConfigError, r"replay ratios and metrics must share a 'run' or 'index' column")),
    ("no-loss-column", _drop_column("metrics", "a", "b", "c"),
     (ConfigError, r"metrics must have at least one loss column besides \['run', 'name', 'index'\]"),
     (ConfigError, r"replay metrics must have at least one loss column")),
    ("empty-file", lambda pair: pair["ratios"].write_text(""),
     (ConfigError, r"ratios must be a readable CSV file or a DataFrame, got .*ratios\.csv'\): No columns to parse"),
     (ConfigError, r"replay ratios must be a readable CSV file or a DataFrame, got .*ratios\.csv'\): No columns")),
    ("row-not-summing-to-1", _sub("ratios", "r2,toy,2,0.3,0.3,0.4", "r2,toy,2,0.3,0.3,0.5"),
     (InvalidWeightsError, r"ratios row run='r2': weights must sum to 1, got 1\.1 for \['a', 'b', 'c'\]"),
     (ConfigError, r"replay ratios row run='r2' must be a mixture: weights must sum to 1, got 1\.1")),
    ("negative-weight", _sub("ratios", "r3,toy,3,0.6,0.2,0.2", "r3,toy,3,0.9,-0.1,0.2"),
     (InvalidWeightsError, r"ratios row run='r3': weights must be >= 0, got \[0\.9, -0\.1, 0\.2\]"),
     (ConfigError, r"replay ratios row run='r3' must be a mixture: weights must be >= 0")),
    ("duplicate-run", _sub("ratios", "r3,toy,3,0.6,0.2,0.2\n", "r3,toy,3,0.6,0.2,0.2\nr1,toy,1,0.2,0.5,0.3\n"),
     (ConfigError, r"ratios must have one row per run, got duplicates \['r1'\]"),
     (ConfigError, r"replay ratios must have one row per run, got duplicates \['r1'\]")),
    ("row-with-an-extra-field", _sub("ratios", "r0,toy,0,0.5,0.3,0.2\n", "r0,toy,0,0.5,0.3,0.2,9\n"),
     (ConfigError, r"ratios rows must have one field per header column \['run', 'name', 'index', 'a', 'b', 'c'\], "
                   r"but .*ratios\.csv has rows with more fields than its header"),
     (ConfigError, r"replay ratios rows must have one field per header column")),
    ("no-finite-loss", _sub("metrics", "r2,toy,2,3.3,3.2,3.0", "r2,toy,2,inf,,nan"),
     (ConfigError, r"metrics row run='r2' has no finite loss"),
     (ConfigError, r"replay metrics must give every loss of every run as a finite number; run 'r2' has "
                   r"\{'a': inf, 'b': nan, 'c': nan\}")),
    ("unnamed-column-not-first", lambda pair: _insert_column(pair["ratios"], 1, "", [0, 1, 2, 3]),
     (ConfigError, r"ratios columns must be the study's domains \['a', 'b', 'c'\]; missing \[\], "
                   r"unknown \['Unnamed: 1'\]"),
     (ConfigError, r"replay ratios row run='r1' must be a mixture: weights must sum to 1, got 2 for "
                   r"\['Unnamed: 1', 'a', 'b', 'c'\]")),
]


def _insert_column(path: Path, at: int, name: str, values) -> None:
    import pandas as pd

    df = pd.read_csv(path)
    df.insert(at, name, values)
    df.to_csv(path, index=False)


@pytest.fixture
def pair(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "ratios.csv").write_text(RATIOS)
    (folder / "metrics.csv").write_text(METRICS)
    return {"ratios": folder / "ratios.csv", "metrics": folder / "metrics.csv"}


def test_the_good_pair_is_accepted_by_both_readers(tmp_path, pair):
    """The baseline every CSV case mutates: both readers take it as it is."""
    assert ReplayEvaluator(ratios=pair["ratios"], metrics=pair["metrics"]).runs == ["r0", "r1", "r2", "r3"]
    study = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(ABC))
    assert len(study.import_runs(pair["ratios"], pair["metrics"])) == 4


def test_a_leading_pandas_index_column_is_no_domain(tmp_path, pair):
    """olmix's CSVs start with pandas' index (an empty header cell): both readers drop it, only there."""
    for which in ("ratios", "metrics"):
        _insert_column(pair[which], 0, "", [0, 1, 2, 3])
        assert pair[which].read_text().startswith(",run,name,index,a,b,c\n")
    replay = ReplayEvaluator(ratios=pair["ratios"], metrics=pair["metrics"])
    assert replay.domains == tuple(ABC) and replay.loss_names == tuple(ABC)
    study = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(ABC))
    assert [t.losses for t in study.import_runs(pair["ratios"], pair["metrics"])][0] == {"a": 3.1, "b": 3.2, "c": 3.3}


@pytest.mark.parametrize("mutate, expected", [pytest.param(m, i, id=n) for n, m, i, _ in CSV_CASES])
def test_import_runs_refuses_a_bad_csv_pair_and_writes_nothing(tmp_path, pair, mutate, expected):
    study = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(ABC), optimizer="sobol")
    study.optimize(Toy(), n_trials=2)
    journal, trials = (tmp_path / "s" / "journal.jsonl").read_bytes(), summary(study)
    mutate(pair)
    error, match = expected
    with pytest.raises(error, match=match):
        study.import_runs(pair["ratios"], pair["metrics"])
    assert (tmp_path / "s" / "journal.jsonl").read_bytes() == journal  # not even the rows before the bad one
    assert summary(study) == trials
    study.close()
    assert summary(bomix.load_study(tmp_path / "s")) == trials


@pytest.mark.parametrize("mutate, expected", [pytest.param(m, r, id=n) for n, m, _, r in CSV_CASES])
def test_replay_refuses_a_bad_csv_pair(pair, mutate, expected):
    mutate(pair)
    written = {p: p.read_bytes() for p in pair.values()}
    error, match = expected
    with pytest.raises(error, match=match):
        ReplayEvaluator(ratios=pair["ratios"], metrics=pair["metrics"])
    assert {p: p.read_bytes() for p in pair.values()} == written
    assert listing(pair["ratios"].parent) == ["metrics.csv", "ratios.csv"]


# == 4. evaluator outputs (the command evaluator inside a study) =================================
CMD_DOMAINS = ["web", "code"]
OBJECTIVE = {"kind": "mean", "domains": CMD_DOMAINS}  # the mean over the training domains, named
PRELUDE = """\
import json, os, sys
weights = json.load(open(os.environ["BOMIX_MIXTURE"]))["weights"]
good = {"losses": {d: 3.0 + w for d, w in weights.items()}}
def write(text):
    with open(os.environ["BOMIX_METRICS"], "w") as f:
        f.write(text)
if os.environ["BOMIX_TRIAL"] != "1":  # every trial but trial 1 writes good metrics
    write(json.dumps(good))
    sys.exit(0)
"""


def command_study(tmp_path, body: str, n_trials: int = 3):
    script = tmp_path / "train.py"
    script.write_text(PRELUDE + textwrap.dedent(body) + "\n")
    study = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(CMD_DOMAINS), optimizer="sobol",
                               objective=OBJECTIVE)
    study.optimize(CommandEvaluator(command=[sys.executable, str(script)], domains=CMD_DOMAINS), n_trials=n_trials)
    return study


def expected_losses(trial) -> dict:
    return {d: 3.0 + w for d, w in trial.weights.items()}


@pytest.mark.parametrize("body, fragments", [
    pytest.param("write(json.dumps({'losses': {'web': 3.1}}))",
                 ["the mean objective needs losses for ['code'], got ['web']"], id="missing-a-domain"),
    pytest.param("write(json.dumps({'losses': {'web': '3.1', 'code': 3.0}}))",
                 ["metrics.json losses must be finite numbers (nats/token), got 'web': '3.1'"],
                 id="string-instead-of-number"),
    pytest.param("write('{\"losses\": {\"web\": NaN, \"code\": 3.0}}')",
                 ["losses must be finite numbers (nats/token), got 'web': nan"], id="nan"),
    pytest.param("write('{\"losses\": {\"web\": 3.0, \"code\": -Infinity}}')",
                 ["losses must be finite numbers (nats/token), got 'code': -inf"], id="infinity"),
    pytest.param("write('{\"losses\": {\"web\": null, \"code\": 3.0}}')",
                 ["losses must be finite numbers (nats/token), got 'web': None"], id="null"),
    pytest.param("write('losses: web=3.1 code=3.0')",
                 ["metrics.json must be valid JSON: Expecting value at line 1 column 1"], id="not-json"),
    pytest.param("print('RuntimeError: CUDA out of memory', file=sys.stderr); sys.exit(3)",
                 ["trial 1's command must exit with status 0, but it exited with status 3",
                  "stderr.log", "RuntimeError: CUDA out of memory"], id="non-zero-exit"),
])
def test_a_bad_metrics_file_fails_its_trial_and_the_campaign_goes_on(tmp_path, body, fragments):
    study = command_study(tmp_path, body)
    assert [t.state for t in study.trials] == [COMPLETED, FAILED, COMPLETED]
    bad = study.trials[1]
    assert bad.losses is None and bad.value is None
    assert bad.error.startswith("EvaluationError: ")
    for fragment in fragments:
        assert fragment in bad.error, (fragment, bad.error)
    for t in (study.trials[0], study.trials[2]):  # the neighbours are complete and right
        assert t.losses == pytest.approx(expected_losses(t))
    assert (study.trial_dir(1) / "stderr.log").exists()  # the failed trial's logs are kept
    study.close()
    again = bomix.load_study(tmp_path / "s")
    assert [(t.state, t.losses, t.error) for t in again.trials] == [(t.state, t.losses, t.error) for t in study.trials]


def test_extra_losses_in_a_metrics_file_are_kept_by_design(tmp_path):
    """Loss names need not be training domains (a held-out target set is fine): an extra loss is
    kept with the trial, and an objective over the named domains ignores it."""
    study = command_study(tmp_path, "write(json.dumps({'losses': {**good['losses'], 'heldout': 9.0}}))")
    assert [t.state for t in study.trials] == [COMPLETED] * 3
    t = study.trials[1]
    assert t.losses == pytest.approx({**expected_losses(t), "heldout": 9.0})
    assert t.value == pytest.approx(np.mean(list(expected_losses(t).values())))


# == 5. study files =============================================================================
@pytest.fixture
def stored(tmp_path):
    """A closed study over a, b, c with 3 completed trials: its directory."""
    study = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(ABC), optimizer="sobol", seed=0)
    study.optimize(Toy(), n_trials=3)
    study.close()
    return tmp_path / "s"


def _events(directory: Path) -> list[str]:
    return (directory / "journal.jsonl").read_text().splitlines(keepends=True)


def _edit_event(line: int, **changes):
    """A mutation of journal line `line` (1-based): set (or, with None, drop) fields of its event."""
    def mutate(lines):
        event = json.loads(lines[line - 1])
        for key, value in changes.items():
            if value is None:
                event.pop(key)
            else:
                event[key] = value
        lines[line - 1] = json.dumps(event) + "\n"
        return lines
    return mutate


def _insert(line: int, text: str):
    def mutate(lines):
        return [*lines[:line - 1], text, *lines[line - 1:]]
    return mutate


# Journal of `stored`: line 1 create 0, 2 complete 0, 3 create 1, 4 complete 1, 5 create 2, 6 complete 2.
JOURNAL_CASES = [
    pytest.param(_insert(2, "\x00\udcff binary garbage\n"), JournalCorruptedError,  # \udcff: the byte 0xff
                 r"journal\.jsonl line 2 is corrupted \(.*\); only a torn last line can be skipped, got '\\x00",
                 id="garbage-line"),
    pytest.param(_insert(3, "[1, 2]\n"), JournalCorruptedError,
                 r"line 3 is corrupted \(not an event object\); .* got '\[1, 2\]'", id="not-an-event-object"),
    pytest.param(_edit_event(3, weights=[float("nan"), 0.5, 0.5]), StudyError,
                 r"line 3 is not a valid event \(weights must be finite, got \[nan, 0\.5, 0\.5\]", id="nan-weight"),
    pytest.param(_edit_event(3, weights=[1.2, -0.2, 0.0]), StudyError,
                 r"line 3 is not a valid event \(weights must be >= 0, got \[1\.2, -0\.2, 0\]", id="negative-weight"),
    pytest.param(_edit_event(3, weights=["0.5", 0.5, 0.0]), StudyError,
                 r"line 3 is not a valid event \(weights must be numbers .*got '0\.5'", id="string-weight"),
    pytest.param(_edit_event(3, number=5), StudyError,
                 r"line 3 is not a valid event \(trial number 5 out of sequence \(expected 1\)\)",
                 id="out-of-sequence-number"),
    pytest.param(_edit_event(4, number=7), StudyError,
                 r"line 4 is not a valid event \(complete of trial 7, which was never created\)",
                 id="complete-of-unknown-trial"),
    pytest.param(_edit_event(4, event="finish"), StudyError,
                 r"line 4 is not a valid event \(event must be one of \[.*'complete'.*\], got 'finish'\)",
                 id="unknown-event"),
    pytest.param(_edit_event(3, weights=None), StudyError,
                 r"line 3 is not a valid event \(missing field 'weights'\)", id="missing-field"),
    pytest.param(_edit_event(2, losses={"a": "3.1", "b": 3.0, "c": 3.0}), StudyError,
                 r"line 2 is not a valid event \(losses must be numbers, got a='3\.1'\)", id="string-loss"),
]


@pytest.mark.parametrize("mutate, error, match", JOURNAL_CASES)
def test_a_damaged_journal_is_refused_naming_the_line_and_left_as_it_is(stored, mutate, error, match):
    journal = stored / "journal.jsonl"
    journal.write_bytes("".join(mutate(_events(stored))).encode("utf-8", "surrogateescape"))
    before = files(stored)
    with pytest.raises(error, match=match):
        bomix.load_study(stored)
    with pytest.raises(error, match=match):  # resuming for writing refuses too, and does not "repair" it
        bomix.create_study(stored, space=bomix.MixtureSpace(ABC), optimizer="sobol", seed=0, load_if_exists=True)
    assert files(stored) == before
    assert listing(stored) == ["journal.jsonl", "study.json", "study.lock"]
    assert_unlocked(stored)


def test_a_torn_last_line_is_tolerated_then_cut_by_the_next_write(stored):
    journal = stored / "journal.jsonl"
    whole = journal.read_bytes()
    torn = b'{"time":1.0,"event":"create","number":3,"weig'  # a crash mid-append
    journal.write_bytes(whole + torn)
    with pytest.warns(UserWarning, match=rf"journal\.jsonl: ignoring a torn last line \({len(torn)} bytes\) left by a "
                                         "crash"):
        reader = bomix.load_study(stored)
    assert [t.state for t in reader.trials] == [COMPLETED] * 3
    assert journal.read_bytes() == whole + torn  # reading cuts nothing
    with pytest.warns(UserWarning, match="torn last line"):
        reader.enqueue([0.2, 0.3, 0.5])  # the first write takes the lock and cuts the torn tail
    reader.close()
    lines = journal.read_bytes()[len(whole):].splitlines()
    assert journal.read_bytes().startswith(whole) and len(lines) == 1
    assert json.loads(lines[0])["event"] == "enqueue"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no torn line any more
        again = bomix.load_study(stored)
    assert [t.state for t in again.trials] == [COMPLETED] * 3 and again.queued == [dict(zip(ABC, [0.2, 0.3, 0.5]))]


def _spec_edit(**changes):
    def mutate(path):
        spec = json.loads(path.read_text())
        for key, value in changes.items():
            if value is None:
                spec.pop(key)
            else:
                spec[key] = value
        path.write_text(json.dumps(spec, indent=2))
    return mutate


def _space(domains=ABC, floors=(0.0, 0.0, 0.0)):
    return {"domains": list(domains), "floors": list(floors), "caps": [1.0, 1.0, 1.0]}


def _load(directory):
    return bomix.load_study(directory)


def _resume(directory):
    return bomix.create_study(directory, space=bomix.MixtureSpace(ABC), optimizer="sobol", seed=0,
                              load_if_exists=True)


SPEC_CASES = [
    pytest.param(lambda p: p.unlink(), _load, StudyError,
                 r"a study directory must contain study\.json, but .*s has no study\.json", id="deleted-load"),
    pytest.param(lambda p: p.unlink(), _resume, StudyError,
                 r"a new study needs an empty or new directory, but .*s has other files and no study\.json",
                 id="deleted-resume"),
    pytest.param(lambda p: p.write_text('{"format": "bomix.study/1", "space": '), _load, StudyError,
                 r"study\.json must be valid JSON: Expecting value: line 1 column \d+", id="not-json-load"),
    pytest.param(lambda p: p.write_text("{oops"), _resume, StudyError,
                 r"study\.json must be valid JSON: Expecting property name", id="not-json-resume"),
    pytest.param(lambda p: p.write_text('{"space": {}}'), _load, StudyError,
                 r"study\.json must be a bomix study spec \(format 'bomix\.study/1'\), got format None",
                 id="not-a-spec"),
    pytest.param(_spec_edit(space=None), _load, StudyError,
                 r"study\.json is missing or has a malformed field: .*'space'", id="space-field-removed"),
    pytest.param(_spec_edit(optimizer={"name": "sobol", "class": "bomix.optimizers.builtin:SobolSearch",
                                       "params": {"seed": 0, "scrambel": True}}), _load, StudyError,
                 r"study\.json is missing or has a malformed field: .*.*unexpected keyword argument 'scrambel'",
                 id="optimizer-param-misspelt"),
    pytest.param(_spec_edit(space=_space(["a", "b", "d"])), _resume, SpecMismatchError,
                 r"resuming .*s needs the spec it was created with; differences: space\.domains: stored "
                 r"\['a', 'b', 'd'\], given \['a', 'b', 'c'\]$", id="domains-edited"),
    pytest.param(_spec_edit(space=_space(floors=[0.1, 0.0, 0.0])), _resume, SpecMismatchError,
                 r"differences: space\.floors: stored \[0\.1, 0\.0, 0\.0\], given \[0\.0, 0\.0, 0\.0\]$",
                 id="floors-edited"),
    pytest.param(_spec_edit(optimizer=optimizer_spec(bomix.get_optimizer("random", seed=0))), _resume,
                 SpecMismatchError, r"differences: optimizer\.class: stored '.*', given '.*'; optimizer\.name: "
                 r"stored 'random', given 'sobol'", id="optimizer-edited"),
    pytest.param(_spec_edit(objective={"kind": "worst"}), _resume, SpecMismatchError,
                 r"differences: objective\.kind: stored 'worst', given 'mean'$", id="objective-edited"),
    pytest.param(_spec_edit(optimizer={"name": "sobol", "class": "bomix.optimizers.sobol:Sobol", "params": {}}),
                 _load, StudyError, r"study\.json .*bomix\.optimizers\.sobol", id="optimizer-class-unknown"),
    pytest.param(_spec_edit(seed=None), _load, StudyError, r"study\.json .*'seed'", id="seed-field-removed"),
]


@pytest.mark.parametrize("mutate, opener, error, match", SPEC_CASES)
def test_a_damaged_or_mismatched_study_json_is_refused_and_nothing_is_rewritten(stored, mutate, opener, error,
                                                                                 match):
    mutate(stored / "study.json")
    before, names = files(stored), listing(stored)
    with pytest.raises(error, match=match):
        opener(stored)
    assert files(stored) == before and listing(stored) == names  # no study.json (re)written, journal untouched
    assert_unlocked(stored)
    if error is SpecMismatchError:  # the stored study itself is fine: its completed trials still load
        assert [t.state for t in bomix.load_study(stored).trials] == [COMPLETED] * 3


LOCKED = rf"one writer per study: .*s is already open for writing by process {os.getpid()}; stop that process"

WRITES = {
    "enqueue": lambda s: s.enqueue([0.2, 0.3, 0.5]),
    "add_trial": lambda s: s.add_trial([0.2, 0.3, 0.5], {"a": 3.0, "b": 3.0, "c": 3.0}),
    "ask": lambda s: s.ask(),
    "optimize": lambda s: s.optimize(Toy(), n_trials=5),
    "create_study": lambda s: _resume(s.directory),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_second_writer_is_refused_while_the_lock_is_held(stored, write):
    holder = _resume(stored)
    second = bomix.load_study(stored)  # reading needs no lock
    before = files(stored)
    with pytest.raises(StudyLockedError, match=LOCKED):
        WRITES[write](second)
    assert files(stored) == before
    assert [t.state for t in second.trials] == [COMPLETED] * 3 and second.queued == []
    holder.close()
    second.enqueue([0.2, 0.3, 0.5])  # once the holder is gone, the second writer may write
    second.close()
    assert len(bomix.load_study(stored).queued) == 1


def test_a_second_process_is_refused_while_the_cli_study_is_held(tmp_path, campaign):
    config, study_dir = campaign
    holder = bomix.load_study(study_dir)
    holder.enqueue([0.2] * 5)  # the first write takes the lock
    before = files(study_dir)
    proc = subprocess.run([sys.executable, "-m", "bomix.cli", "run", str(config), "--set", "study.n_trials=4",
                           "--no-progress"], capture_output=True, text=True, timeout=120)
    holder.close()
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc.stderr, LOCKED.replace(r".*s is", r".*study is"))
    assert files(study_dir) == before
    assert [t.state for t in bomix.load_study(study_dir).trials] == [COMPLETED] * 2


# == 6. objectives ==============================================================================
FAMILIES = {"qa": ["mmlu_*", "arc"], "code": ["humaneval"]}


def _families(**changes) -> dict:
    return {"kind": "families", "families": FAMILIES, **changes}


OBJECTIVE_CASES = [
    pytest.param({"kind": "families"}, r"objective 'families' needs families \{family: \[metric names or "
                 r"patterns\]\}, got None", id="no-families"),
    pytest.param(_families(families={"qa": []}),
                 r"objective family 'qa' must be a non-empty list of metric names or patterns, got \[\]",
                 id="empty-family"),
    pytest.param(_families(families={"qa": "mmlu_*"}),
                 r"objective family 'qa' must be a non-empty list of metric names or patterns, got 'mmlu_\*'",
                 id="family-not-a-list"),
    pytest.param(_families(weights={"qa": 1}),
                 r"objective weights must give each family a weight; missing \['code'\], unknown \[\]",
                 id="family-weight-missing"),
    pytest.param(_families(weights={"qa": 1, "code": 1, "math": 1}),
                 r"objective weights must give each family a weight; missing \[\], unknown \['math'\]",
                 id="weight-for-no-family"),
    pytest.param(_families(weights={"qa": -1, "code": 1}),
                 r"objective family weights must be finite numbers >= 0, not all 0, got \{'qa': -1, 'code': 1\}",
                 id="negative-family-weight"),
    pytest.param(_families(weights={"qa": "7/52", "code": 1}),
                 r"objective family weights must be finite numbers >= 0, not all 0, got \{'qa': '7/52'",
                 id="string-family-weight"),
    pytest.param(_families(drop="arc"), r"objective drop must be a list of metric names or patterns, got 'arc'",
                 id="drop-not-a-list"),
    pytest.param(_families(drop=["humaneval"]), r"objective family 'code' must keep at least one metric after drop, "
                 r"got all of \['humaneval'\] dropped", id="family-all-dropped"),
    pytest.param({"kind": "mean", "drop": ["arc"]},
                 r"objective families and drop are only for kind 'families', got kind 'mean'", id="drop-on-mean"),
    pytest.param(_families(domains=["arc"]), r"objective 'families' reads the metrics its families name; domains "
                 r"and target are not for it, got domains=\['arc'\]", id="families-with-domains"),
    pytest.param(_families(family={"x": ["y"]}), r"objective keys must be among kind, weights, domains, target, "
                 r"families, drop; got \['family'\]", id="misspelt-key"),
]


@pytest.mark.parametrize("spec, match", OBJECTIVE_CASES)
def test_a_bad_objective_is_refused_before_a_study_is_created(tmp_path, spec, match):
    with pytest.raises(ConfigError, match=match):
        bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(ABC), objective=spec)
    assert listing(tmp_path) == []


FAMILY_LOSS_CASES = [
    pytest.param({"arc": 3.0, "humaneval": 2.0},
                 r"objective family 'qa': each pattern must match at least one loss that is not dropped, got "
                 r"'mmlu_\*' for losses \['arc', 'humaneval'\]", id="pattern-matches-nothing"),
    pytest.param({"arc": 3.0, "humaneval": 2.0, "mmlu_noisy": 3.5},
                 r"objective family 'qa': each pattern must match at least one loss that is not dropped, got "
                 r"'mmlu_\*' for losses \['arc', 'humaneval', 'mmlu_noisy'\]", id="pattern-matches-only-dropped"),
    pytest.param({"mmlu_a": 3.0, "humaneval": 2.0},
                 r"the families objective needs losses for \['arc'\], got \['humaneval', 'mmlu_a'\]",
                 id="named-metric-missing"),
]


@pytest.mark.parametrize("losses, match", FAMILY_LOSS_CASES)
def test_losses_a_family_objective_cannot_read_are_refused_before_writing(tmp_path, losses, match):
    study = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(ABC),
                               objective=_families(drop=["*_noisy"]))
    study.add_trial([0.4, 0.4, 0.2], {"arc": 3.0, "humaneval": 2.0, "mmlu_a": 3.1})
    journal, trials = (tmp_path / "s" / "journal.jsonl").read_bytes(), summary(study)
    with pytest.raises(EvaluationError, match=match):
        study.add_trial([0.2, 0.4, 0.4], losses)
    assert (tmp_path / "s" / "journal.jsonl").read_bytes() == journal and summary(study) == trials
    study.close()


OLMIX_FIT = """\
eval:
  tasks:
    math: ["minerva_math_algebra::olmes"]
    qa: ["arc_easy:rc::olmes", "lab_bench_dbqa"]
regression:
  aggregate_task_families: true
filtering:
  drop_metrics: ["lab_bench_dbqa", "wildchat_masked_ppl"]
  obj_weights:
    math: "7/52.0"
    qa: "26/52.0"
"""

OLMIX_FIT_CASES = [
    pytest.param(_replace("aggregate_task_families: true", "aggregate_task_families: false"),
                 r"olmix config '.*fit\.yaml' must set regression\.aggregate_task_families: true \(its objective "
                 r"is then per task family\), got False", id="not-per-family"),
    pytest.param(_replace('"7/52.0"', '"7/fifty"'), r"olmix config '.*fit\.yaml': filtering\.obj_weights\.math must be "
                 r"a number or a fraction 'a/b', got '7/fifty'", id="bad-fraction"),
    pytest.param(_replace("    qa: \"26", "    code: \"26"), r"olmix config '.*fit\.yaml': filtering\.obj_weights must "
                 r"name task families \['math', 'qa'\], got \['code'\]", id="weight-for-no-family"),
    pytest.param(_replace("  tasks:", "  taks:"), r"olmix config '.*fit\.yaml' must have eval\.tasks \{family: "
                 r"\[metric names\]\}, got None", id="no-tasks"),
    pytest.param(_replace("eval:", "eval: ["), r"olmix config must be valid YAML, got '.*fit\.yaml'",
                 id="yaml-syntax-error"),
    pytest.param(MISSING_FILE, r"olmix config must be a readable file, got '.*nope\.yaml': No such file",
                 id="missing-file"),
    pytest.param(_replace('["lab_bench_dbqa", ', "lab_bench_dbqa"), r"objective drop must be a list of metric "
                 r"names or patterns, got 'lab_bench_dbqa", id="drop-not-a-list"),
]


def test_the_olmix_fit_config_baseline_is_accepted(tmp_path):
    (tmp_path / "fit.yaml").write_text(OLMIX_FIT)
    objective = bomix.Objective.from_olmix_config(tmp_path / "fit.yaml")
    assert objective.weights == pytest.approx({"math": 7 / 52, "qa": 26 / 52})
    assert objective({"minerva_math_algebra::olmes": 1.0, "arc_easy:rc::olmes": 2.0}) == pytest.approx(
        (7 * 1.0 + 26 * 2.0) / 33)


@pytest.mark.parametrize("edit, match", OLMIX_FIT_CASES)
def test_a_bad_olmix_fit_config_is_refused_naming_the_field(tmp_path, edit, match):
    path = tmp_path / ("nope.yaml" if edit is MISSING_FILE else "fit.yaml")
    if edit is not MISSING_FILE:
        path.write_text(edit(OLMIX_FIT))
    with pytest.raises(ConfigError, match=match):
        bomix.Objective.from_olmix_config(path)
