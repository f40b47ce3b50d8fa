import json
import multiprocessing as mp

import numpy as np
import pandas as pd
import pytest

import bomix
from bomix import testing
from bomix.errors import (ConfigError, EvaluationError, JournalCorruptedError, SpecMismatchError, StudyError,
                          StudyLockedError, UnknownNameError)
from bomix.trial import Evaluation, TrialState


class Toy(bomix.Evaluator):
    """Deterministic per-domain losses; optionally fails on chosen trial numbers."""

    def __init__(self, *, fail_on=(), nan_on=(), interrupt_on=()):
        self.fail_on, self.nan_on, self.interrupt_on = fail_on, nan_on, interrupt_on

    def evaluate(self, weights, context=None):
        n = context.number if context else -1
        if n in self.fail_on:
            raise RuntimeError("CUDA out of memory (pretend)")
        if n in self.interrupt_on:
            raise KeyboardInterrupt
        space = bomix.MixtureSpace(list(weights))
        losses = testing.toy_losses(space, np.array(list(weights.values())))
        if n in self.nan_on:
            losses[next(iter(losses))] = float("nan")
        return Evaluation(losses=losses, cost={"seconds": 0.0})


@pytest.fixture
def study(tmp_path, space5):
    return bomix.create_study(tmp_path / "s", space=space5, optimizer="sobol", seed=0)


def test_optimize_runs_the_budget_and_resumes_to_it(tmp_path, space5):
    s = bomix.create_study(tmp_path / "s", space=space5, seed=0)
    s.optimize(Toy(), n_trials=6)
    assert [t.state for t in s.trials] == [TrialState.COMPLETED] * 6
    s.close()
    s2 = bomix.create_study(tmp_path / "s", space=space5, seed=0, load_if_exists=True)
    s2.optimize(Toy(), n_trials=6)  # the budget is met: nothing new
    assert len(s2.trials) == 6
    s2.optimize(Toy(), n_trials=9)
    assert len(s2.trials) == 9
    assert s2.best_trial.value == min(t.value for t in s2.trials)


def test_ask_tell_enqueue(study, space5):
    study.enqueue({"books": 0.2, "cc": 0.2, "stack": 0.2, "pes2o": 0.2, "reddit": 0.2}, source="uniform")
    a, b = study.ask(n=2)
    assert a.proposed_by == "uniform" and a.x.tolist() == [0.2] * 5
    assert b.proposed_by == "sobol"
    study.tell(a, Toy().evaluate(a.weights))
    study.tell(b, state="failed", error="OOM")
    assert (a.state, b.state, b.error) == (TrialState.COMPLETED, TrialState.FAILED, "OOM")
    with pytest.raises(StudyError, match="already completed"):
        study.tell(a, Toy().evaluate(a.weights))
    with pytest.raises(StudyError, match="needs its evaluation"):
        study.tell(study.ask()[0])


def test_failures_are_data_and_the_campaign_goes_on(study):
    study.optimize(Toy(fail_on={1}, nan_on={2}), n_trials=4)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETED, TrialState.FAILED, TrialState.FAILED, TrialState.COMPLETED]
    assert "out of memory" in study.trials[1].error
    assert "finite" in study.trials[2].error


def test_ctrl_c_abandons_and_the_mixture_is_redone(tmp_path, space5):
    s = bomix.create_study(tmp_path / "s", space=space5, seed=0)
    with pytest.raises(KeyboardInterrupt):
        s.optimize(Toy(interrupt_on={2}), n_trials=5)
    interrupted = s.trials[2]
    assert interrupted.state is TrialState.ABANDONED
    s.close()
    s = bomix.load_study(tmp_path / "s")
    s.optimize(Toy(), n_trials=5)
    redo = s.trials[3]
    assert redo.retry_of == 2 and redo.weights == interrupted.weights and redo.seed == interrupted.seed
    reference = bomix.create_study(tmp_path / "ref", space=space5, seed=0)
    reference.optimize(Toy(), n_trials=5)
    done = [t for t in s.trials if t.state is TrialState.COMPLETED]
    assert [t.weights for t in done] == [t.weights for t in reference.trials]
    assert [t.seed for t in done] == [t.seed for t in reference.trials]


def test_running_trials_of_a_dead_process_are_abandoned_on_reopen(tmp_path, space5):
    s = bomix.create_study(tmp_path / "s", space=space5, seed=0)
    t0, t1 = s.ask(2)
    s.tell(t0, Toy().evaluate(t0.weights))
    s.close()  # t1 stays RUNNING, as if the process died
    reader = bomix.load_study(tmp_path / "s")
    assert reader.trials[1].state is TrialState.RUNNING  # reading changes nothing
    s = bomix.create_study(tmp_path / "s", space=space5, seed=0, load_if_exists=True)
    assert s.trials[1].state is TrialState.ABANDONED
    (redo,) = s.ask()
    assert redo.retry_of == 1 and redo.weights == t1.weights


def test_spec_mismatch_is_refused_with_the_difference(tmp_path, space5):
    bomix.create_study(tmp_path / "s", space=space5, seed=0).close()
    with pytest.raises(SpecMismatchError, match="seed: stored 0, given 1"):
        bomix.create_study(tmp_path / "s", space=space5, seed=1, load_if_exists=True)
    with pytest.raises(SpecMismatchError, match="objective.kind: stored 'mean', given 'worst'"):
        bomix.create_study(tmp_path / "s", space=space5, objective="worst", load_if_exists=True)
    with pytest.raises(SpecMismatchError, match="optimizer.name: stored 'sobol', given 'random'"):
        bomix.create_study(tmp_path / "s", space=space5, optimizer="random", load_if_exists=True)
    capped = bomix.MixtureSpace(space5.domains, caps={"cc": 0.5})
    with pytest.raises(SpecMismatchError, match="space.caps"):
        bomix.create_study(tmp_path / "s", space=capped, load_if_exists=True)
    with pytest.raises(StudyError, match="already holds a study"):
        bomix.create_study(tmp_path / "s", space=space5)


def test_not_a_study(tmp_path, space5):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(StudyError, match="has no study.json"):
        bomix.load_study(tmp_path)
    with pytest.raises(StudyError, match="does not exist"):
        bomix.load_study(tmp_path / "nope")
    with pytest.raises(StudyError, match="other files"):
        bomix.create_study(tmp_path, space=space5)
    (tmp_path / "study.json").write_text("{not json")
    with pytest.raises(StudyError, match="valid JSON"):
        bomix.load_study(tmp_path)
    (tmp_path / "study.json").write_text('{"format": "optuna"}')
    with pytest.raises(StudyError, match="format"):
        bomix.load_study(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "study.json"]


def test_torn_last_line_is_tolerated_and_repaired(tmp_path, space5):
    s = bomix.create_study(tmp_path / "s", space=space5, seed=0)
    s.optimize(Toy(), n_trials=3)
    s.close()
    journal = tmp_path / "s" / "journal.jsonl"
    whole = journal.read_text()
    journal.write_text(whole + '{"event":"create","number":3,"weig')  # a crash mid-append
    with pytest.warns(UserWarning, match="torn last line"):
        reader = bomix.load_study(tmp_path / "s")
    assert len(reader.trials) == 3
    with pytest.warns(UserWarning, match="torn last line"):
        s = bomix.create_study(tmp_path / "s", space=space5, seed=0, load_if_exists=True)
    assert journal.read_text() == whole  # cut back to the last whole event
    s.optimize(Toy(), n_trials=4)
    assert len(s.trials) == 4


def test_corruption_in_the_middle_is_refused_with_the_line(tmp_path, space5):
    s = bomix.create_study(tmp_path / "s", space=space5, seed=0)
    s.optimize(Toy(), n_trials=3)
    s.close()
    journal = tmp_path / "s" / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    lines[2] = "#garbage#" + lines[2]
    journal.write_text("".join(lines))
    before = journal.read_bytes()
    with pytest.raises(JournalCorruptedError, match="line 3 is corrupted"):
        bomix.load_study(tmp_path / "s")
    with pytest.raises(JournalCorruptedError, match="line 3"):
        bomix.create_study(tmp_path / "s", space=space5, seed=0, load_if_exists=True)
    assert journal.read_bytes() == before  # nothing written


def test_hand_edited_event_is_refused(tmp_path, space5):
    s = bomix.create_study(tmp_path / "s", space=space5, seed=0)
    s.optimize(Toy(), n_trials=2)
    s.close()
    journal = tmp_path / "s" / "journal.jsonl"
    events = [json.loads(x) for x in journal.read_text().splitlines()]
    events[0]["weights"] = [0.5, 0.5, 0.5, 0.0, 0.0]
    journal.write_text("".join(json.dumps(e) + "\n" for e in events))
    with pytest.raises(StudyError, match="line 1 is not a valid event.*sum to 1"):
        bomix.load_study(tmp_path / "s")


def _hold(path, ready, done):
    s = bomix.load_study(path)
    s.ask()
    ready.set()
    done.wait(10)


def test_a_second_writer_is_refused(tmp_path, space5):
    bomix.create_study(tmp_path / "s", space=space5, seed=0).close()
    ctx = mp.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold, args=(tmp_path / "s", ready, done))
    p.start()
    try:
        assert ready.wait(30)
        with pytest.raises(StudyLockedError, match="already open for writing by process"):
            bomix.create_study(tmp_path / "s", space=space5, seed=0, load_if_exists=True)
        reader = bomix.load_study(tmp_path / "s")  # reading is fine
        assert len(reader.trials) == 1
    finally:
        done.set()
        p.join(30)


def test_rescoring_under_another_objective(study):
    study.optimize(Toy(), n_trials=4)
    worst = study.trials_dataframe(objective="worst")
    mean = study.trials_dataframe()
    assert (worst["value"] >= mean["value"]).all()
    expected = [max(t.losses.values()) for t in study.trials]
    np.testing.assert_allclose(worst["value"], expected)
    assert {"w_books", "loss_books", "cost_seconds", "proposed_by", "seed"} <= set(mean.columns)


def test_objective_domain_missing_fails_the_trial(tmp_path, space5):
    s = bomix.create_study(tmp_path / "s", space=space5, objective="target:pile_cc")
    s.optimize(Toy(), n_trials=1)
    assert s.trials[0].state is TrialState.FAILED and "pile_cc" in s.trials[0].error


def test_export_import_roundtrip(tmp_path, study, space5):
    study.optimize(Toy(), n_trials=5)
    out = study.export(tmp_path / "out")
    ratios, metrics = pd.read_csv(out / "ratios.csv"), pd.read_csv(out / "metrics.csv")
    assert list(ratios.columns) == ["run", "name", "index", *space5.domains]
    assert list(metrics.columns)[:3] == ["run", "name", "index"] and len(metrics) == 5
    other = bomix.create_study(tmp_path / "t", space=space5)
    trials = other.import_runs(out / "ratios.csv", out / "metrics.csv")
    np.testing.assert_allclose([t.x for t in trials], [t.x for t in study.trials], atol=1e-12)
    assert [t.value for t in trials] == pytest.approx([t.value for t in study.trials])
    assert trials[0].proposed_by == "import"


def test_export_refuses_names_that_clash_with_its_key_columns(tmp_path):
    s = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(["web", "fidelity"]))
    s.add_trial([0.5, 0.5], {"web": 3.0, "fidelity": 3.1})
    with pytest.raises(ConfigError, match=r"key columns \['run', 'name', 'index', 'fidelity'\].*got \['fidelity'\]"):
        s.export(tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_import_bad_csvs_write_nothing(tmp_path, space5):
    s = bomix.create_study(tmp_path / "s", space=space5)
    r = pd.DataFrame({"run": ["a", "b"], **{d: [0.2, 0.2] for d in space5.domains}})
    m = pd.DataFrame({"run": ["a", "b"], "books": [4.0, 4.1]})
    r.loc[1, "cc"] = 0.3
    with pytest.raises(bomix.errors.InvalidWeightsError, match="run='b'.*sum to 1"):
        s.import_runs(r, m)
    r.loc[1, "cc"] = 0.2
    with pytest.raises(ConfigError, match="unmatched"):
        s.import_runs(r, m.iloc[:1])
    with pytest.raises(ConfigError, match="missing \\['reddit'\\]"):
        s.import_runs(r.drop(columns="reddit"), m)
    m["books"] = m["books"].astype(object)
    m.loc[1, "books"] = "n/a"
    with pytest.raises(ConfigError, match="must be numbers.*n/a"):
        s.import_runs(r, m)
    assert s.trials == [] and (tmp_path / "s" / "journal.jsonl").read_text() == ""


def test_import_regmix_runs(tmp_path, regmix_csvs):
    ratios, metrics = regmix_csvs
    domains = [c.removeprefix("train_the_pile_") for c in pd.read_csv(ratios).columns if c != "index"]
    s = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(domains), objective="target:pile_cc")
    trials = s.import_runs(ratios, metrics, renormalize=True, atol=1e-3,
                           rename_domains=lambda c: c.removeprefix("train_the_pile_"),
                           rename_metrics=lambda c: c.removeprefix("metric/the_pile_").removesuffix("_val_loss"))
    assert len(trials) == 512
    assert all(abs(sum(t.weights.values()) - 1) < 1e-9 for t in trials)
    assert 3 < s.best_trial.value < 8


def test_unknown_names(tmp_path, space5):
    with pytest.raises(UnknownNameError, match="must be one of"):
        bomix.create_study(tmp_path / "s", space=space5, optimizer="bayes")
    with pytest.raises(UnknownNameError, match="inline"):
        bomix.get_runner("threads")
    assert not (tmp_path / "s").exists()


def test_evaluation_rejects_garbage():
    with pytest.raises(EvaluationError, match="non-empty"):
        Evaluation(losses={})
    with pytest.raises(EvaluationError, match="numbers.*'4.2'"):
        Evaluation(losses={"a": "4.2"})
    with pytest.raises(EvaluationError, match="finite.*inf"):
        Evaluation(losses={"a": float("inf")})


def test_replicate_after_an_interruption_completes_the_same_picks(tmp_path, space5):
    s = bomix.create_study(tmp_path / "s", space=space5, seed=0)
    s.optimize(Toy(), n_trials=6)
    picks = [t.number for t in s.top_trials(2)]
    with pytest.raises(KeyboardInterrupt):
        s.replicate(Toy(interrupt_on={7}), top=2, repeats=2)
    table = s.replicate(Toy(), top=2, repeats=2)
    assert sorted(table["number"]) == sorted(picks) and (table["n_evaluations"] == 3).all()
    reps = [t for t in s.trials if t.proposed_by == "replicate" and t.state is TrialState.COMPLETED]
    assert len(reps) == 4
    assert len({t.seed for t in s.trials if t.state is TrialState.COMPLETED}) == 10  # fresh seeds, redo kept its own
    with pytest.raises(ConfigError, match="top must be an integer >= 1"):
        s.replicate(Toy(), top=0)


def test_a_study_in_memory_equals_its_reloaded_journal(tmp_path, space5):
    s = bomix.create_study(tmp_path / "s", space=space5, seed=0)
    s.enqueue([0.2] * 5, source="uniform")
    s.optimize(Toy(fail_on={2}), n_trials=5)
    s.tell(s.ask()[0], state="abandoned")
    reloaded = bomix.load_study(tmp_path / "s")
    pd.testing.assert_frame_equal(s.trials_dataframe(), reloaded.trials_dataframe())
    assert s.queued == reloaded.queued and len(s.queued) == 1


@pytest.mark.parametrize("spec", ["mean", "worst", "target:cc", {"kind": "weighted", "weights": {"books": 1, "cc": 3}}])
def test_objective_of_rows_matches_the_objective_of_each_dict(spec):
    objective = bomix.Objective.parse(spec)
    rows = [{"books": 4.1, "cc": 3.7, "stack": 2.2}, {"books": 3.9, "cc": 4.4, "stack": 2.8}]
    names = objective.required(rows[0])
    L = np.array([[r[n] for n in names] for r in rows])
    assert np.allclose(objective.of_rows(names, L), [objective(r) for r in rows], rtol=0, atol=1e-12)


def test_journal_batch_writes_at_once_and_syncs_once(tmp_path, monkeypatch):
    """Group commit: every event is in the file as soon as it is recorded (a killed process loses
    nothing), and the events of a batch share one fsync."""
    import os

    from bomix import journal as journal_module

    syncs = []
    monkeypatch.setattr(journal_module.os, "fsync", lambda fd: syncs.append(fd) or os.fstat(fd))
    study = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(["a", "b", "c"]), optimizer="sobol")
    syncs.clear()
    with study.batch():
        trials = study.ask(3)
        for t in trials:
            study.tell(t, {"a": 1.0, "b": 2.0, "c": 3.0})
        assert len(bomix.load_study(tmp_path / "s").trials) == 3  # already on disk, inside the batch
        assert not syncs
    assert len(syncs) == 1
    study.ask(1)
    assert len(syncs) == 2  # outside a batch: one fsync per event
