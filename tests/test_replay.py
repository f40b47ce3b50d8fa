"""The replay evaluator (logged runs, pool and surrogate modes). Searching its pool: test_pool.py."""

import json

import numpy as np
import pytest

import bomix
from bomix.errors import ConfigError, EvaluationError, StudyError
from bomix.evaluators.base import TrialContext
from bomix.evaluators.replay import ReplayEvaluator
from bomix.trial import Evaluation, TrialState

DOMAINS = ["books", "cc", "stack"]  # the toy runs of conftest.py


def test_reads_the_pair_and_rebuilds_from_its_params(pool_ev, toy_runs):
    ratios, metrics = toy_runs
    assert pool_ev.domains == tuple(DOMAINS) and pool_ev.loss_names == ("books", "cc")
    assert pool_ev.pool.shape == (40, 3) and np.allclose(pool_ev.pool.sum(axis=1), 1)
    assert np.allclose(pool_ev.logged_losses, metrics[["books", "cc"]].to_numpy())  # matched on run, not row order
    assert pool_ev.pool is pool_ev.logged and pool_ev.space == bomix.MixtureSpace(DOMAINS)  # the space is plain
    assert ReplayEvaluator(**pool_ev.get_params()).get_params() == pool_ev.get_params()
    assert pool_ev.logged_best() == pytest.approx(pool_ev.logged_values().min())
    assert pool_ev.logged_best("target:cc") == pytest.approx(metrics["cc"].min())


def test_pool_answers_with_the_nearest_run_and_says_which(pool_ev):
    x = np.array([0.3, 0.3, 0.4])
    i = int(np.argmin(np.abs(pool_ev.pool - x).sum(axis=1)))
    ev = pool_ev.evaluate(dict(zip(DOMAINS, x)), TrialContext(seed=3))
    assert ev.weights == pool_ev.space.to_mixture(pool_ev.pool[i])
    assert ev.losses == dict(zip(pool_ev.loss_names, pool_ev.logged_losses[i].tolist()))  # the logged value, exactly
    assert ev.extra["replay_run"] == f"r{i:03d}" and ev.extra["replay_distance"] > 0
    assert pool_ev.true_losses(x) == ev.losses
    assert pool_ev.true_value(x) == pytest.approx(np.mean(pool_ev.logged_losses[i]))


def test_study_records_the_evaluated_mixture_and_replays_it(tmp_path, pool_ev):
    s = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(DOMAINS), optimizer="sobol", seed=0)
    with pytest.raises(ConfigError, match="pool=evaluator.pool"):  # optimize: the study must search the pool
        s.optimize(pool_ev, 8, show_progress=False)
    for _ in range(8):  # by hand, Sobol points: the evaluator answers with the nearest logged runs
        t = s.ask()[0]
        s.tell(t, pool_ev.evaluate(t.weights))
    for t in s.trials:
        i = pool_ev.nearest(t.extra["proposed_weights"])
        assert t.x == pytest.approx(pool_ev.pool[i], abs=0)  # the run evaluated, not the proposal
        assert t.losses == dict(zip(pool_ev.loss_names, pool_ev.logged_losses[i].tolist()))
        assert t.extra["proposed_weights"] != t.weights
    events = [json.loads(line) for line in (tmp_path / "s" / "journal.jsonl").read_text().splitlines()]
    assert all("weights" in e for e in events if e["event"] == "complete")
    s.close()
    again = bomix.load_study(tmp_path / "s")
    assert [(t.weights, t.losses, t.extra) for t in again.trials] == [(t.weights, t.losses, t.extra) for t in s.trials]
    assert again.best_trial.value == pytest.approx(min(pool_ev.true_value(t.weights) for t in s.trials))


def test_tell_refuses_an_evaluated_mixture_outside_the_space(tmp_path):
    s = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(DOMAINS, caps={"cc": 0.5}), seed=0)
    t = s.ask()[0]
    with pytest.raises(StudyError, match="must lie in the space"):
        s.tell(t, Evaluation(losses={"books": 3.0}, weights={"books": 0.0, "cc": 0.9, "stack": 0.1}))
    assert t.state is TrialState.RUNNING and len((tmp_path / "s" / "journal.jsonl").read_text().splitlines()) == 1
    with pytest.raises(EvaluationError, match="weights"):
        Evaluation(losses={"books": 3.0}, weights={"books": float("nan")})


def test_pool_noise_is_seeded_by_the_trial(csvs):
    ev = ReplayEvaluator(ratios=csvs[0], metrics=csvs[1], noise_sd=0.05, seed=1)
    w = dict(zip(DOMAINS, [0.2, 0.5, 0.3]))
    a, b, c = (ev.evaluate(w, TrialContext(seed=s)).losses for s in (7, 7, 8))
    assert a == b and a != c
    assert ev.true_losses(w) != a and max(abs(a[n] - v) for n, v in ev.true_losses(w).items()) < 0.5


@pytest.mark.parametrize("family", ["lightgbm", "mixing_law", "linear"])
def test_surrogate_reports_its_cv_error_and_noise_is_deterministic(csvs, family):
    ev = ReplayEvaluator(ratios=csvs[0], metrics=csvs[1], mode="surrogate", surrogate=family, noise_sd=0.01)
    assert ev.pool is None and ev.logged.shape == (40, 3)
    cv = ev.cv_error()
    assert set(cv) == {"books", "cc"} and all(0 <= v < 1.0 for v in cv.values())
    again = ReplayEvaluator(ratios=csvs[0], metrics=csvs[1], mode="surrogate", surrogate=family, noise_sd=0.01)
    assert again.cv_error() == cv  # deterministic: a fresh evaluator, not a cache, gives the same numbers
    held_out = np.abs(ev.cv_predictions() - ev.logged_losses).mean(axis=0)
    in_sample = np.abs(ev.true_loss_matrix(ev.logged) - ev.logged_losses).mean(axis=0)
    assert list(cv.values()) == pytest.approx(held_out.tolist())
    assert (held_out > in_sample).all()  # each run is predicted by models that did not see it
    w = dict(zip(DOMAINS, [0.25, 0.25, 0.5]))
    truth = ev.true_losses(w)
    a, b = ev.evaluate(w, TrialContext(seed=5)), ev.evaluate(w, TrialContext(seed=5))
    assert a.losses == b.losses and a.weights is None
    assert all(0 < abs(a.losses[n] - truth[n]) < 0.06 for n in truth)
    assert ev.true_value(w, "target:cc") == pytest.approx(truth["cc"])


def test_bad_inputs_name_the_value(tmp_path, csvs, toy_runs):
    with pytest.raises(ConfigError, match="nope.csv"):
        ReplayEvaluator(ratios=tmp_path / "nope.csv", metrics=csvs[1])
    with pytest.raises(ConfigError, match="'poool'"):
        ReplayEvaluator(ratios=csvs[0], metrics=csvs[1], mode="poool")
    with pytest.raises(ConfigError, match="'gp'"):
        ReplayEvaluator(ratios=csvs[0], metrics=csvs[1], mode="surrogate", surrogate="gp")
    with pytest.raises(ConfigError, match="'pile'"):
        ReplayEvaluator(ratios=csvs[0], metrics=csvs[1], preset="pile")
    ratios, metrics = toy_runs
    with pytest.raises(ConfigError, match="r039"):  # a run without metrics
        ReplayEvaluator(ratios=ratios, metrics=metrics.iloc[:-1])
    bad = ratios.copy()
    bad.loc[3, "cc"] += 0.2
    with pytest.raises(ConfigError, match="r003.*sum to 1"):
        ReplayEvaluator(ratios=bad, metrics=metrics)
    ev = ReplayEvaluator(ratios=csvs[0], metrics=csvs[1])
    other = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(["books", "cc", "web"]), seed=0)
    with pytest.raises(ConfigError, match="domains must match"):  # the study checks the evaluator's domains
        other.optimize(ev, 1, show_progress=False)
    with pytest.raises(ConfigError, match="nope"):
        ev.true_value([0.2, 0.3, 0.5], "target:nope")


def test_unit_is_declared_and_rebuilds_from_its_params(csvs):
    assert ReplayEvaluator(ratios=csvs[0], metrics=csvs[1]).unit == "nats/token"  # Evaluator's default
    ev = ReplayEvaluator(ratios=csvs[0], metrics=csvs[1], unit="bits/byte")
    assert ev.unit == "bits/byte" and ev.get_params()["unit"] == "bits/byte"
    assert ReplayEvaluator(**ev.get_params()).unit == "bits/byte"
    for bad in ("", 3):
        with pytest.raises(ConfigError, match=f"unit must be a non-empty string.*got {bad!r}"):
            ReplayEvaluator(ratios=csvs[0], metrics=csvs[1], unit=bad)

def test_regmix_files_load_with_the_preset(regmix_csvs):
    ev = ReplayEvaluator(ratios=regmix_csvs[0], metrics=regmix_csvs[1], preset="regmix")
    assert len(ev.domains) == 17 and len(ev.loss_names) == 13 and "pile_cc" in ev.loss_names
    assert ev.pool.shape == (512, 17) and np.allclose(ev.pool.sum(axis=1), 1)
    assert ev.logged_best() == pytest.approx(4.7534, abs=1e-4)
    assert float(np.median(ev.logged_values())) == pytest.approx(5.3067, abs=1e-4)
    with pytest.raises(ConfigError, match="sum to 1"):  # rounded weights: only the preset renormalises
        ReplayEvaluator(ratios=regmix_csvs[0], metrics=regmix_csvs[1])
