"""Fidelity in the data model (trial, journal, resume, export, study checks), the multiscale
landscape and the multi-scale replay."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

import bomix
from bomix.errors import ConfigError, StudyError
from bomix.evaluators.base import TrialContext
from bomix.evaluators.landscapes import landscape
from bomix.evaluators.replay_scales import ReplayScales
from bomix.fidelity import check_fidelities
from bomix.optimizers import Optimizer, Proposal

SCALES = {"small": 1.0, "big": 60.0}


def toy_losses(weights, shift=0.0):
    return {d: 3.0 + shift - 0.3 * np.log(w + 0.05) for d, w in weights.items()}


@pytest.fixture
def space():
    return bomix.MixtureSpace(["a", "b", "c"])


def mf_study(path, space, optimizer="sobol"):
    return bomix.create_study(path, space=space, optimizer=optimizer, fidelities=SCALES)


def journal(path):
    return [json.loads(line) for line in (path / "journal.jsonl").read_text().splitlines()]


def test_a_single_fidelity_study_and_an_old_journal_are_unchanged(tmp_path, space):
    with bomix.create_study(tmp_path / "s", space=space, seed=0) as study:
        for t in study.ask(2):
            study.tell(t, toy_losses(t.weights))
    assert "fidelities" not in json.loads((tmp_path / "s" / "study.json").read_text())
    assert all("fidelity" not in e for e in journal(tmp_path / "s"))
    # a create event in the format written before fidelities existed still loads
    old = {"event": "create", "number": 2, "weights": [0.2, 0.3, 0.5], "proposed_by": "sobol", "seed": 7,
           "enqueue_id": None, "retry_of": None, "info": {}, "time": 1.0}
    with open(tmp_path / "s" / "journal.jsonl", "a") as f:
        f.write(json.dumps(old) + "\n")
    loaded = bomix.load_study(tmp_path / "s")
    assert [t.fidelity for t in loaded.trials] == [None, None, None]
    assert "fidelity" not in loaded.trials_dataframe().columns


def test_fidelity_is_journaled_resumed_and_exported(tmp_path, space):
    study = mf_study(tmp_path / "s", space)
    assert (study.fidelities, study.target_fidelity) == (SCALES, "big")
    study.enqueue([0.2, 0.3, 0.5], fidelity="small")
    (t0,) = study.ask()
    assert t0.fidelity == "small"
    study.tell(t0, toy_losses(t0.weights, 1.0))
    (t1,) = study.ask()  # the optimizer's proposal carries no fidelity: the target
    assert t1.fidelity == "big"
    study.close()  # t1 dies RUNNING: reopening abandons it and redoes it at its fidelity
    again = bomix.load_study(tmp_path / "s")
    assert [t.fidelity for t in again.trials] == ["small", "big"]
    (redo,) = again.ask()
    assert (redo.retry_of, redo.fidelity) == (1, "big")
    again.tell(redo, toy_losses(redo.weights))
    assert [e.get("fidelity") for e in journal(tmp_path / "s") if e["event"] == "create"] == ["small", "big", "big"]
    assert again.history().fidelities == SCALES and again.history().target_fidelity == "big"
    assert [t.number for t in again.history().at("small")] == [0]
    df = again.trials_dataframe()
    assert df["fidelity"].tolist() == ["small", "big", "big"]
    out = again.export(tmp_path / "out")
    ratios = pd.read_csv(out / "ratios.csv")
    assert ratios["fidelity"].tolist() == ["small", "big"]
    back = bomix.create_study(tmp_path / "back", space=space)
    assert len(back.import_runs(out / "ratios.csv", out / "metrics.csv")) == 2  # the fidelity column is a key


def test_best_and_a_plain_optimizer_see_the_target_fidelity_only(tmp_path, space):
    study = mf_study(tmp_path / "s", space, optimizer="random")
    study.add_trial([0.2, 0.3, 0.5], toy_losses({"a": 0.2, "b": 0.3, "c": 0.5}, -5.0), fidelity="small")
    target = study.add_trial([0.4, 0.3, 0.3], toy_losses({"a": 0.4, "b": 0.3, "c": 0.3}))
    assert study.best_trial.number == target.number  # the small scale's lower number is not comparable
    assert study.recommend().trial == target.number  # random search does not model fidelities


class Proposes(Optimizer):
    def __init__(self, *, seed=0, fidelity=None):
        self.seed, self.fidelity = seed, fidelity

    def suggest(self, history, n=1):
        return [Proposal(history.space.center, "fixed", fidelity=self.fidelity) for _ in range(n)]


def test_unknown_fidelities_are_refused_naming_them(tmp_path, space):
    study = bomix.create_study(tmp_path / "m", space=space, optimizer=Proposes(fidelity="huge"), fidelities=SCALES)
    with pytest.raises(StudyError, match="fidelities \\['small', 'big'\\], got 'huge'"):
        study.ask()
    with pytest.raises(ConfigError, match="got 'huge'"):
        study.enqueue([0.2, 0.3, 0.5], fidelity="huge")
    single = bomix.create_study(tmp_path / "one", space=space, optimizer=Proposes(fidelity="small"))
    with pytest.raises(StudyError, match="must be None, got 'small'"):
        single.ask()
    with pytest.raises(ConfigError, match="target fidelity must be one of"):
        bomix.create_study(tmp_path / "t", space=space, fidelities=SCALES, target_fidelity="medium")
    with pytest.raises(ConfigError, match="cost must be a finite number > 0, got big=0"):
        check_fidelities({"small": 1, "big": 0})


def test_a_fixed_multiscale_landscape_is_a_single_fidelity_test_function(tmp_path):
    land = landscape("multiscale", k=3, seed=0, scale="1m", fixed=True)
    assert (land.fidelities, land.target_fidelity) == (None, None)
    study = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(land.domains))
    study.optimize(land, 2)
    (t0, t1) = study.trials
    assert t0.fidelity is None and t0.cost["compute"] == 1.0
    both = landscape("multiscale", k=3, seed=0)
    assert t0.value == pytest.approx(both.at("1m").true_value(t0.weights))
    assert land.optimum_in()[1] == pytest.approx(both.at("1m").optimal_value)
    with pytest.raises(ConfigError, match="must be None, got '1m'"):
        land.evaluate(t0.weights, TrialContext(fidelity="1m"))


def test_optimize_needs_the_evaluator_to_offer_the_study_fidelities(tmp_path):
    land = landscape("multiscale", k=3, seed=0)
    space = bomix.MixtureSpace(land.domains)
    single = bomix.create_study(tmp_path / "one", space=space)
    with pytest.raises(ConfigError, match="evaluator's fidelities must be the study's"):
        single.optimize(land, 1)
    mf = bomix.create_study(tmp_path / "mf", space=space, fidelities={"1m": 1.0, "60m": 30.0})
    with pytest.raises(ConfigError, match="evaluator's fidelities must be the study's"):
        mf.optimize(land, 1)


# -- the multiscale landscape -----------------------------------------------------------------------
def test_multiscale_optimum_drifts_towards_uniform_and_ranks_correlate_imperfectly():
    land = landscape("multiscale", k=5, seed=0)
    assert (land.fidelities, land.target_fidelity) == ({"1m": 1.0, "60m": 60.0}, "60m")
    small = land.at("1m")
    x_small, _ = small.optimum_in()
    x_big, _ = land.optimum_in()
    center = land._space.center
    assert np.abs(x_small - x_big).sum() > 0.1  # the optimum moves with scale
    assert np.abs(x_big - center).sum() < np.abs(x_small - center).sum()  # ... towards uniform
    assert land.regret(center) < small.regret(center) / 2  # uniform gains at the larger scale
    X = land._space.sample(300, method="random", seed=1)
    rho = spearmanr(small.true_loss_matrix(X).mean(1), land.true_loss_matrix(X).mean(1))[0]
    assert 0.5 < rho < 0.99


def test_multiscale_evaluates_at_the_trial_fidelity_and_reports_its_cost():
    land = landscape("multiscale", k=3, seed=2, scales={"a": 1, "b": 4, "c": 16}, scale="b")
    w = {"d0": 0.2, "d1": 0.3, "d2": 0.5}
    x = np.array([[0.2, 0.3, 0.5]])
    for name, cost in (("a", 1.0), ("c", 16.0), (None, 4.0)):
        ev = land.evaluate(w, TrialContext(seed=1, fidelity=name))
        assert np.allclose(list(ev.losses.values()), land.loss_matrix_at(x, name or "b")[0])
        assert ev.cost["compute"] == cost
    assert land.position("a") == 0 and land.position("c") == 1 and land.position("b") == pytest.approx(0.5)
    assert (land.loss_matrix_at(x, "c") < land.loss_matrix_at(x, "a")).all()  # larger is better everywhere
    with pytest.raises(ConfigError, match="got 'z'"):
        land.evaluate(w, TrialContext(fidelity="z"))
    rebuilt = bomix.get_evaluator("landscape", **land.get_params())
    assert np.allclose(rebuilt.true_loss_matrix(x), land.true_loss_matrix(x))


def test_scales_added_between_the_cheapest_and_the_costliest_leave_their_laws_unchanged():
    # what the nested-law arm of experiments/bench_multifidelity.py relies on to run proxies at
    # intermediate sizes of the same landscape the other arms search
    two = landscape("multiscale", k=4, seed=3, scales={"small": 1, "big": 10})
    four = landscape("multiscale", k=4, seed=3, scales={"small": 1, "n2": 2, "n4": 4, "big": 10})
    X = two._space.sample(20, method="random", seed=0)
    for name in ("small", "big"):
        assert np.array_equal(two.loss_matrix_at(X, name), four.loss_matrix_at(X, name))
    assert four.target_fidelity == "big" and four.optimal_value == pytest.approx(two.optimal_value)
    between = four.loss_matrix_at(X, "n2")
    assert (four.loss_matrix_at(X, "big") < between).mean() > 0.9 and (between < two.loss_matrix_at(X, "small")).mean() > 0.9


# -- replay at several scales ---------------------------------------------------------------------
def toy_scales(n=12, seed=0, shuffle_big=False, small_level=4.0):
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.ones(3), n)
    ratios = pd.DataFrame({"run": [f"r{i}" for i in range(n)], "a": W[:, 0], "b": W[:, 1], "c": W[:, 2]})
    small = pd.DataFrame({"run": ratios["run"], "la": small_level - W[:, 0], "lb": small_level - W[:, 1]})
    big = pd.DataFrame({"run": ratios["run"], "la": 3 - W[:, 0] ** 2, "lb": 3 - W[:, 1] ** 2})
    big_ratios = ratios.iloc[::-1].reset_index(drop=True) if shuffle_big else ratios
    return {"small": {"ratios": ratios, "metrics": small, "cost": 1.0},
            "big": {"ratios": big_ratios, "metrics": big, "cost": 60.0}}


def test_replay_scales_answers_with_the_run_logged_at_the_trial_scale():
    ev = ReplayScales(scales=toy_scales(shuffle_big=True))  # rows in another order at the big scale
    assert ev.fidelities == {"small": 1.0, "big": 60.0} and ev.target_fidelity == "big"
    w = ev.space.to_mixture(ev.pool[4])
    small = ev.evaluate(w, TrialContext(fidelity="small"))
    big = ev.evaluate(w)
    assert small.losses["la"] == pytest.approx(4 - ev.pool[4][0])
    assert big.losses["la"] == pytest.approx(3 - ev.pool[4][0] ** 2)
    assert (small.cost["compute"], big.cost["compute"]) == (1.0, 60.0)
    assert small.extra["replay_run"] == big.extra["replay_run"] == "r4"
    assert np.allclose(ev.logged_values("mean", "big"), 3 - (ev.pool[:, :2] ** 2).mean(1))  # pool order
    assert np.allclose(ev.loss_matrix("small")[:, 0], 4 - ev.pool[:, 0])
    assert ev.unit == "nats/token" and ReplayScales(scales=toy_scales(), unit="bits/byte").get_params()["unit"] \
        == "bits/byte"


def test_replay_scales_refuses_scales_that_logged_other_mixtures():
    scales = toy_scales()
    scales["big"] = {**scales["big"], "ratios": toy_scales(seed=1)["small"]["ratios"]}
    with pytest.raises(ConfigError, match="same mixtures; 'small' run 'r0' has no match at 'big'"):
        ReplayScales(scales=scales)
    with pytest.raises(ConfigError, match="exactly ratios, metrics and cost"):
        ReplayScales(scales={"x": {"ratios": "r.csv"}})
    with pytest.raises(ConfigError, match="replay_scales unit must be a non-empty string.*got ''"):
        ReplayScales(scales=toy_scales(), unit="")


def test_optimize_runs_each_trial_at_its_fidelity_when_the_runner_passes_it(tmp_path):
    from bomix.runners.base import InlineRunner

    land = landscape("multiscale", k=3, seed=0)
    space = bomix.MixtureSpace(land.domains)
    study = bomix.create_study(tmp_path / "s", space=space, fidelities=land.fidelities)
    study.enqueue(space.center, fidelity="1m")
    study.optimize(land, 3)  # the built-in runners pass each trial's fidelity (Runner.context)
    assert [t.fidelity for t in study.trials] == ["1m", "60m", "60m"]
    assert [t.cost["compute"] for t in study.trials] == [1.0, 60.0, 60.0]
    assert study.trials[0].value == pytest.approx(land.at("1m").true_value(space.center))

    class Drops(InlineRunner):  # a runner that does not pass it is refused before any trial runs
        @staticmethod
        def context(study, trial):
            return TrialContext(number=trial.number, seed=trial.seed)

    with pytest.raises(ConfigError, match="runner that passes each trial's fidelity"):
        study.optimize(land, 4, runner=Drops())
    assert len(study.trials) == 3


def test_replicates_take_the_best_target_trials_and_rerun_them_at_the_target(tmp_path):
    land = landscape("multiscale", k=3, seed=0)
    space = bomix.MixtureSpace(land.domains)
    study = bomix.create_study(tmp_path / "s", space=space, optimizer="random", fidelities=land.fidelities)
    cheap = {d: v - 5.0 for d, v in land.at("1m").evaluate(space.to_mixture(space.center)).losses.items()}
    study.add_trial(space.center, cheap, fidelity="1m")  # the lowest value, but at the cheap scale
    for w in ([0.6, 0.2, 0.2], [0.2, 0.2, 0.6]):
        study.add_trial(w, land.at("60m").evaluate(space.to_mixture(w)).losses)
    table = study.replicate(land, top=1, repeats=1)
    (rep,) = [t for t in study.trials if "replicate_of" in t.extra]
    assert study.trials[rep.extra["replicate_of"]].fidelity == "60m"
    assert rep.fidelity == "60m" and table["number"].tolist() == [rep.extra["replicate_of"]]
