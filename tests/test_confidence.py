"""study.which_wins: the top evaluated mixtures with the model's probability that each is the best."""

import numpy as np
import pytest

import bomix
from bomix.cli import main
from bomix.errors import ConfigError
from bomix.evaluators.landscapes import landscape
from bomix.optimizers.builtin import SobolSearch

FAST = dict(num_restarts=2, raw_samples=64, mc_samples=32, n_init=4)


@pytest.fixture(scope="module")
def bo_study(tmp_path_factory):
    land = landscape("seedlike", noise_sd=0.017, seed=0)
    study = bomix.create_study(tmp_path_factory.mktemp("s") / "bo", space=bomix.MixtureSpace(land.domains),
                               optimizer=bomix.get_optimizer("bo", seed=0, **FAST), seed=0)
    study.optimize(land, n_trials=12, show_progress=False)
    return study


def test_the_top_mixtures_with_probabilities_that_sum_to_one(bo_study):
    table = bo_study.which_wins(top=4)
    assert list(table["trial"]) == [t.number for t in bo_study.top_trials(4)]  # best predicted first
    assert list(table["rank"]) == [1, 2, 3, 4] and set(table["basis"]) == {"independent normals"}
    assert table["p_best"].sum() == pytest.approx(1.0) and (table["p_best"] >= 0).all()
    assert list(table["predicted"]) == sorted(table["predicted"])
    # lower is better: the mixture predicted best is likelier the best than the one predicted worst
    assert table["p_best"].iloc[0] > table["p_best"].iloc[-1]
    assert {"w_books", "loss_books"} <= set(table.columns)
    again = bo_study.which_wins(top=4)  # a pure function of the trials and the seed
    assert again["p_best"].tolist() == table["p_best"].tolist()
    joint = bo_study.which_wins(top=4, basis="joint")  # the GP's correlated draws: the same mixtures
    assert set(joint["basis"]) == {"joint posterior"} and joint["trial"].tolist() == table["trial"].tolist()
    assert joint["p_best"].sum() == pytest.approx(1.0) and joint["p_best"].iloc[0] > joint["p_best"].iloc[-1]


def test_expected_regret_is_what_deploying_each_costs_against_the_best_of_them(bo_study):
    table = bo_study.which_wins(top=4, basis="joint")
    X = np.array([bo_study.trials[int(n)].x for n in table["trial"]])
    draws = bo_study.optimizer.sample_objective(bo_study.search_history(), X, 4096)  # the same seeded draws
    assert table["expected_regret"].to_numpy() == pytest.approx((draws - draws.min(1, keepdims=True)).mean(0))
    assert (table["expected_regret"] >= 0).all()


def test_the_draws_are_joint_so_near_mixtures_move_together(bo_study):
    history = bo_study.search_history()
    x = bo_study.trials[-1].x
    near = x + np.array([0.004, -0.004, 0.0, 0.0, 0.0])
    far = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
    draws = bo_study.optimizer.sample_objective(history, np.array([x, near, far]), 2048)
    assert draws.shape == (2048, 3)
    corr = np.corrcoef(draws.T)
    assert corr[0, 1] > 0.9 and corr[0, 1] > corr[0, 2] + 0.3  # marginal draws would give about 0 for both


def test_without_a_model_there_are_only_observed_values(tmp_path):
    land = landscape("seedlike", noise_sd=0.017, seed=0)
    study = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(land.domains), optimizer="sobol", seed=0)
    assert len(study.which_wins()) == 0  # nothing completed yet
    study.optimize(land, n_trials=6, show_progress=False)
    table = study.which_wins(top=3)
    assert list(table["observed"]) == sorted(t.value for t in study.trials)[:3]
    assert set(table["basis"]) == {"observed only"} and table["p_best"].isna().all()


class Predicting(SobolSearch):
    """sobol with a fixed model: predicted objective = the weight on the first domain, sd 0.01."""

    name = "predicting"

    def predict(self, history, X):
        X = np.atleast_2d(X)
        return X[:, 0].copy(), np.full(len(X), 0.01)


def test_a_model_with_only_mean_and_sd_gives_independent_draws(tmp_path):
    land = landscape("seedlike", noise_sd=0.017, seed=0)
    study = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(land.domains),
                               optimizer=Predicting(seed=0), seed=0)
    study.optimize(land, n_trials=8, show_progress=False)
    table = study.which_wins(top=3)
    assert set(table["basis"]) == {"independent normals"}
    assert list(table["predicted"]) == sorted(t.weights["books"] for t in study.trials)[:3]
    assert table["p_best"].sum() == pytest.approx(1.0)
    assert table["p_best"].iloc[0] == table["p_best"].max() and table["p_best"].iloc[0] > table["p_best"].iloc[-1]


@pytest.mark.parametrize("kwargs, match", [
    ({"top": 0}, "top must be an integer >= 1, got 0"),
    ({"n_samples": 1}, "n_samples must be an integer >= 2, got 1"),
    ({"basis": "copula"}, "basis must be 'independent' or 'joint', got 'copula'")])
def test_bad_arguments_are_refused(bo_study, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        bo_study.which_wins(**kwargs)


def test_bomix_best_says_how_sure(bo_study, capsys):
    assert main(["best", str(bo_study.directory)]) == 0
    out = capsys.readouterr().out
    assert "how sure: the model's probability that each of the top 5 evaluated mixtures is the best " \
           "(independent normals): trial" in out


def test_a_pool_campaign_ranks_its_logged_runs_by_their_values(tmp_path, pool_ev):
    study = bomix.create_study(tmp_path / "p", space=bomix.MixtureSpace(pool_ev.domains), seed=0,
                               optimizer=bomix.get_optimizer("bo", seed=0, **FAST), pool=pool_ev.pool)
    study.optimize(pool_ev, n_trials=8, show_progress=False)
    table = study.which_wins(top=3)  # what the study deploys is its best evaluated run: no model's guess
    assert set(table["basis"]) == {"observed only"} and table["p_best"].isna().all()
    assert table["trial"].iloc[0] == study.recommend().trial
    assert list(table["observed"]) == sorted(t.value for t in study.trials)[:3]
