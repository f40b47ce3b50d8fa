"""The report's per-study summary (summary.json): computed once, read thereafter, recomputed when the
study changes; and predicted-vs-actual's one common set of held-out trials for every model."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

import bomix
from bomix.optimizers import Optimizer
from bomix.optimizers.bo import BayesOpt
from bomix.optimizers.builtin import RandomSearch, SobolSearch
from bomix.report import cache, load, surrogate, tables
from bomix.report.cache import study_summary
from bomix.study import load_study

LANDSCAPE = {"name": "seedlike", "noise_sd": 0.017, "seed": 0}
METHODS = {  # label -> (optimizer, params, trials, seeds)
    "bo": ("bo", {"n_init": 4, "num_restarts": 1, "raw_samples": 16, "mc_samples": 8}, 6, (0,)),
    "sobol": ("sobol", {}, 6, (0, 1)),
    "random": ("random", {}, 6, (0, 1)),
    "uniform": ("uniform", {}, 1, (0, 1)),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A small benchmark directory, without any summary.json (removed after it is built)."""
    out = tmp_path_factory.mktemp("bench")
    ev = bomix.get_evaluator("landscape", **LANDSCAPE)
    space = bomix.MixtureSpace(list(ev.domains))
    for label, (name, params, n, seeds) in METHODS.items():
        for s in seeds:
            study = bomix.create_study(out / "studies" / label / f"seed-{s}", space=space,
                                       optimizer=bomix.get_optimizer(name, seed=s, **params), seed=s)
            study.optimize(ev, n_trials=n, show_progress=False)
            study.close()
    (out / "benchmark.json").write_text(json.dumps({
        "methods": {label: {"name": m[0], "params": m[1]} for label, m in METHODS.items()}, "seeds": [0, 1],
        "budget": 6, "fixed": ["uniform"], "objective": "mean", "space": space.to_dict(),
        "evaluator": {"name": "landscape", "params": LANDSCAPE}, "bomix": bomix.__version__}))
    for f in out.glob("studies/*/*/summary.json"):
        f.unlink()
    return out


@pytest.fixture
def bench(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "bench")


def study_dirs(bench):
    return sorted(bench.glob("studies/*/seed-*"))


@pytest.fixture
def recommends(monkeypatch):
    """Counts every Optimizer.recommend call (bo's and the base class's); `.fail = True` makes them raise."""
    class Calls(list):
        state = {"fail": False}

    calls = Calls()
    state = calls.state

    def wrap(original):
        def recommend(self, history):
            calls.append(type(self).__name__)
            if state["fail"]:
                raise RuntimeError("recommend() called: the cache was not used")
            return original(self, history)
        return recommend

    monkeypatch.setattr(Optimizer, "recommend", wrap(Optimizer.recommend))
    monkeypatch.setattr(BayesOpt, "recommend", wrap(BayesOpt.recommend))
    return calls


def test_second_load_reads_the_cache_and_refits_nothing(bench, recommends):
    first = load([bench])
    assert len(recommends) == len(study_dirs(bench))  # one refit per study, the first time
    for d in study_dirs(bench):
        stored = json.loads((d / "summary.json").read_text())
        assert stored["key"]["journal_bytes"] == (d / "journal.jsonl").stat().st_size
        assert stored["recommendation"] is not None and stored["truth"]["evaluator"]
    recommends.state["fail"] = True  # a refit now raises: the report must come from the cache
    second = load([bench])
    pd.testing.assert_frame_equal(first.recommendations, second.recommendations)
    pd.testing.assert_frame_equal(first.trials, second.trials)
    assert second.recommendations["source"].notna().all()
    bo = second.recommendations.set_index("label").loc["bo"]
    assert bo["source"].startswith("posterior mean") and np.isfinite(bo["true_value"])
    copy = shutil.copytree(bench, bench.parent / "copied", copy_function=shutil.copy)  # new mtimes, same content
    pd.testing.assert_frame_equal(first.recommendations, load([copy]).recommendations)


def test_a_changed_journal_recomputes_that_study_only(bench, recommends):
    load([bench])
    recommends.clear()
    target = bench / "studies" / "sobol" / "seed-0"
    study = load_study(target)
    ev = bomix.get_evaluator("landscape", **LANDSCAPE)
    w = ev.optimum
    new = study.add_trial(w, {n: v - 0.5 for n, v in ev.true_losses(w).items()})  # a very good new trial
    study.close()
    data = load([bench])
    assert recommends == ["SobolSearch"]  # only the changed study was refitted
    rec = data.recommendations.set_index(["label", "seed"]).loc[("sobol", 0)]
    assert rec["trial"] == new.number and rec["true_value"] == pytest.approx(ev.true_value(w))
    stored = json.loads((target / "summary.json").read_text())
    assert stored["key"]["n_trials"] == 7 and stored["recommendation"]["trial"] == new.number


def test_a_new_bomix_version_recomputes(bench, recommends, monkeypatch):
    load([bench])
    recommends.clear()
    monkeypatch.setattr(bomix, "__version__", "99.0")
    load([bench])
    assert len(recommends) == len(study_dirs(bench))


def test_another_evaluator_recomputes_the_truth_but_not_the_recommendation(bench, recommends):
    d = bench / "studies" / "bo" / "seed-0"
    first = study_summary(load_study(d), bomix.get_evaluator("landscape", **LANDSCAPE))
    recommends.state["fail"] = True
    other = bomix.get_evaluator("landscape", **{**LANDSCAPE, "seed": 3})
    again = study_summary(load_study(d), other)
    assert again["recommendation"] == first["recommendation"]
    assert again["truth"]["evaluator"] != first["truth"]["evaluator"]
    assert again["truth"]["recommended"]["value"] == pytest.approx(
        other.true_value(first["recommendation"]["weights"], "mean"))
    assert study_summary(load_study(d))["truth"] == again["truth"]  # no evaluator: the stored truth stays


def test_a_cache_that_cannot_be_written_does_not_break_the_report(bench, recommends, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(cache.tempfile, "mkstemp", refuse)
    data = load([bench])
    assert not list(bench.glob("studies/*/*/summary.json"))
    assert len(recommends) == len(study_dirs(bench))
    assert data.recommendations["true_value"].notna().all()
    assert not tables.compute(data)["verdict"].empty


def test_a_damaged_summary_is_recomputed(bench, recommends):
    load([bench])
    recommends.clear()
    (bench / "studies" / "random" / "seed-1" / "summary.json").write_text("{ not json")
    load([bench])
    assert recommends == ["RandomSearch"]


# -- predicted vs actual: one common held-out set ----------------------------------------------------
def test_every_model_predicts_the_same_heldout_trials(bench, monkeypatch):
    seen = []

    def linear_model(self, history, X):  # a stand-in model, so that sobol and random "have" one
        seen.append((type(self).__name__, self.seed, {t.number for t in history.completed}))
        return np.asarray(X) @ np.arange(1.0, 6.0), None

    monkeypatch.setattr(SobolSearch, "predict", linear_model, raising=False)
    monkeypatch.setattr(RandomSearch, "predict", linear_model, raising=False)
    data = load([bench])
    pred = surrogate.predictions(data)
    pool = data.trials[(data.trials["state"] == "completed") & data.trials["trial_index"].notna()]
    n = min(surrogate.MAX_HELDOUT, max(1, len(pool) // 5))
    sets = {key: frozenset(zip(g["heldout_label"], g["heldout_seed"], g["number"]))
            for key, g in pred.groupby(["label", "seed"])}
    assert set(pred["label"]) == {"bo", "sobol", "random"} and len(sets) == 5
    assert len(set(sets.values())) == 1 and len(next(iter(sets.values()))) == n  # one common set
    heldout = next(iter(sets.values()))
    for name, seed, trained_on in seen:  # a model never trains on a held-out trial of its own study
        label = {"SobolSearch": "sobol", "RandomSearch": "random"}[name]
        mine = {num for lb, s, num in heldout if lb == label and s == seed}
        assert not trained_on & mine and len(trained_on) == 6 - len(mine)
    X = pool.set_index(["label", "seed", "number"]).loc[sorted(heldout)][[f"w_{d}" for d in data.domains]]
    got = pred[(pred["label"] == "sobol") & (pred["seed"] == 0)]
    got = got.set_index(["heldout_label", "heldout_seed", "number"]).loc[sorted(heldout)]
    assert got["predicted"].to_numpy() == pytest.approx(X.to_numpy() @ np.arange(1.0, 6.0))
    assert (pred.loc[pred["label"] == "bo", "model"] == "GP").all() and pred["sd"].notna().any()
    scores = surrogate.scores(pred).set_index("label")
    assert set(scores.index) == {"bo", "sobol", "random"} and (scores["n_heldout"] == n).all()
    before = len(seen)
    again = surrogate.predictions(load([bench]))  # cached in each study's summary.json: no refit
    assert len(seen) == before
    pd.testing.assert_frame_equal(pred, again)
