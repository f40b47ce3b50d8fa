import json
import re

import numpy as np
import pytest

import bomix
from baselines._law import LawFitError
from baselines.regmix import STRENGTHS, RegMix, _LeafRegions, _LightGBM
from bomix import testing
from bomix.errors import ConfigError
from bomix.optimizers.base import History


def regmix(**params):
    return bomix.get_optimizer("regmix", **{"n_simulations": 2000, "top_k": 32, **params})


def completed(space, X, loss, start=0):
    """History trials for the rows of X, each with losses loss(x) -> {name: value}."""
    return tuple(bomix.Trial(start + i, space.to_mixture(x), state=bomix.TrialState.COMPLETED,
                             proposed_by="test", losses=loss(x)) for i, x in enumerate(X))


# -- the optimizer contract, design phase and fit phase alike --------------------------------------
@pytest.mark.parametrize("regressor", ["lightgbm", "linear"])
@pytest.mark.parametrize("protocol", ["sequential", "one_shot"])
def test_contract(protocol, regressor):
    # budget 8: both protocols fit the regressor on the contract's 8- and 10-trial histories
    testing.check_optimizer(lambda space, seed: regmix(seed=seed, protocol=protocol, budget=8, regressor=regressor))


@pytest.mark.parametrize("protocol", ["sequential", "one_shot"])
def test_design_then_optimum(protocol):
    space = testing.contract_spaces()[1]
    opt = regmix(protocol=protocol, budget=8)
    assert opt.design_size(space) == (4 if protocol == "sequential" else 7)
    design = opt.suggest(testing.make_history(space, n_completed=0), 3)
    assert [p.source for p in design] == ["regmix/design"] * 3
    assert np.allclose([p.weights for p in design], opt.design(space, 3))
    after = opt.suggest(testing.make_history(space, n_completed=8), 2)
    assert after[0].source == "regmix/optimum" and np.isfinite(after[0].info["predicted"])
    assert after[1].source == "regmix/candidate"


def test_default_n0_is_half_the_budget_and_params_roundtrip():
    space = testing.contract_spaces()[1]
    opt = bomix.get_optimizer("regmix", seed=2)
    assert opt.design_size(space) == 32 and RegMix(budget=20).design_size(space) == 10
    params = opt.get_params()
    assert params["target"] == "objective" and params["n_simulations"] == 100_000 and params["top_k"] == 128
    assert RegMix(**params).get_params() == params


# -- the design (synthesize_mixture) -------------------------------------------------------------
@pytest.mark.parametrize("space", testing.contract_spaces(), ids=lambda s: f"k{s.k}")
def test_design_is_feasible_distinct_deterministic_and_prefix_stable(space):
    D = RegMix(seed=3).design(space, 80)
    for x in D:
        space.validate(x)
    gaps = np.abs(D[:, None, :] - D[None, :, :]).sum(axis=2) + np.eye(len(D))
    assert gaps.min() > 1e-5
    assert np.array_equal(RegMix(seed=3).design(space, 80), D)
    for n in (1, 13, 79):
        assert np.array_equal(RegMix(seed=3).design(space, n), D[:n])
    assert not np.allclose(RegMix(seed=4).design(space, 80), D)


def test_design_centres_on_the_tempered_prior():
    space = bomix.MixtureSpace(list("abcd"))
    prior = {"a": 4, "b": 3, "c": 2, "d": 1}  # normalised to 0.4 .. 0.1; 15 x share >= 1: no cap binds
    p = np.array([0.4, 0.3, 0.2, 0.1])
    tempered = np.sqrt(p) / np.sqrt(p).sum()
    mean = RegMix(prior=prior, seed=1).design(space, 1500).mean(axis=0)
    assert np.abs(mean - tempered).max() < 0.025
    assert np.abs(mean - p).max() > 0.05  # the temperature matters
    mean_t1 = RegMix(prior=prior, temperature=1.0, seed=1).design(space, 1500).mean(axis=0)
    assert np.abs(mean_t1 - p).max() < 0.025


def test_design_has_sparse_mixtures_and_spread_out_ones():
    space = bomix.MixtureSpace([f"d{i}" for i in range(8)])
    D = RegMix(seed=0).design(space, 300)
    zero = D < 1e-12  # (space.clean may leave 1e-17 where the draw had 0)
    zeros = zero.sum(axis=1)
    assert (zeros >= 4).mean() > 0.2  # low strengths put the mass on a few domains
    assert (zeros == 0).mean() > 0.1  # high strengths (c = 5) spread it
    assert np.all(zero | (D >= 2e-4 - 1e-12))  # small weights are set to 0
    assert STRENGTHS[0] == pytest.approx(0.1) and STRENGTHS[-1] == pytest.approx(5.0) and len(STRENGTHS) == 15


def test_design_caps_usage_at_max_usage_times_the_prior_and_keeps_floors():
    space = bomix.MixtureSpace(["web", "code", "math", "books"], floors={"books": 0.05})
    prior = {"web": 0.8, "code": 0.15, "math": 0.01, "books": 0.04}
    opt = RegMix(prior=prior, seed=0)
    assert np.allclose(opt.design_caps(space), [1.0, 1.0, 0.15, 0.6])
    D = opt.design(space, 200)
    assert D[:, 2].max() <= 0.15 + 1e-9 and D[:, 3].max() <= 0.6 + 1e-9 and D[:, 3].min() >= 0.05 - 1e-9
    assert D[:, 2].max() > 0.05  # the cap is reached for, not a side effect of a tiny prior
    assert RegMix(prior=prior, max_usage=3).design(space, 200)[:, 2].max() <= 0.03 + 1e-9


def test_design_falls_back_to_sobol_when_caps_reject_almost_every_draw():
    space = testing.contract_spaces()[2]  # 12 domains, caps 0.05 .. 0.2: about 1 draw in 6,000 passes
    D = RegMix(seed=0).design(space, 20)
    sobol = space.sample(20, method="sobol", seed=0)
    assert sum(any(np.allclose(x, s) for s in sobol) for x in D) >= 10


def test_prior_must_name_the_space_domains():
    space = bomix.MixtureSpace(["web", "code", "math"])
    opt = RegMix(prior={"web": 0.5, "code": 0.3, "wiki": 0.2})
    with pytest.raises(ConfigError, match=r"unknown \['wiki'\], missing \['math'\]"):
        opt.design(space, 4)
    with pytest.raises(ConfigError, match="wiki"):
        opt.suggest(History(space, bomix.Objective("mean")), 1)


@pytest.mark.parametrize("bad, shown", [
    ({"regressor": "xgboost"}, "'xgboost'"), ({"target": "loss"}, "'loss'"), ({"n_simulations": 0}, "0"),
    ({"top_k": 0}, "0"), ({"top_k": 500, "n_simulations": 100}, "500"), ({"temperature": -1}, "-1"),
    ({"max_usage": 0}, "0"), ({"prior": {"a": -1.0}}, "-1.0"), ({"prior": "uniform"}, "'uniform'"),
    ({"small_data": "yes"}, "'yes'"), ({"seed": -1}, "-1"), ({"protocol": "greedy"}, "'greedy'"),
])
def test_bad_arguments_raise_config_errors_naming_the_value(bad, shown):
    with pytest.raises(ConfigError, match=" got .*" + re.escape(shown)):
        bomix.get_optimizer("regmix", **bad)


# -- the regressors and the optimum ----------------------------------------------------------------
def test_fit_needs_four_completed_trials():
    space = testing.contract_spaces()[1]
    with pytest.raises(LawFitError, match="at least 4"):
        regmix().fit(testing.make_history(space, n_completed=3, n_failed=5))
    regmix().fit(testing.make_history(space, n_completed=4))


def test_lightgbm_optimum_finds_an_interior_minimum():
    space = bomix.MixtureSpace(list("abcd"))
    target = np.array([0.5, 0.3, 0.1, 0.1])
    opt = regmix(n_simulations=20_000, top_k=128)
    hist = History(space, bomix.Objective("mean"),
                   completed(space, opt.design(space, 60), lambda x: {"q": 3 + float(((x - target) ** 2).sum())}))
    law = opt.fit(hist)
    assert np.abs(law.optimum - target).sum() < 0.3  # uniform is 0.6 away
    assert law.optimal_value == pytest.approx(law.predict(law.optimum)[0])
    params = json.loads(json.dumps(law.params))
    model = params["models"]["objective"]
    assert params["regressor"] == "lightgbm" and model["num_trees"] == 1000
    assert set(model["feature_importance_gain"]) == set("abcd")
    again = opt.fit(hist)
    assert np.array_equal(again.optimum, law.optimum)  # seeded simulation


def test_linear_recovers_coefficients_and_has_a_vertex_like_optimum():
    space = bomix.MixtureSpace(list("abcde"), caps={"b": 0.4})
    coef = np.array([3.0, 2.0, 2.6, 3.5, 2.8])
    X = space.sample(30, seed=0)
    opt = regmix(regressor="linear")
    law = opt.fit(History(space, bomix.Objective("mean"), completed(space, X, lambda x: {"q": float(x @ coef)})))
    fitted = np.array(list(law.params["models"]["objective"]["coefficients"].values()))
    assert np.allclose(fitted, coef, atol=5e-3)  # (the small ridge penalty biases them by ~1e-3)
    # the top-k average puts its mass on b (capped at 0.4) and then c, the two cheapest domains
    assert space.contains(law.optimum) and law.optimum[1] > 0.25 and law.optimum[1] + law.optimum[2] > 0.8


def test_per_domain_target_composes_one_regressor_per_loss():
    space = bomix.MixtureSpace(["x", "y", "z"])
    X = space.sample(40, seed=1)
    losses = lambda x: {"x": 3 - np.log(x[0] + 0.05), "y": 3 - np.log(x[1] + 0.05), "z": 4.0 + x[2]}  # noqa: E731
    trials = completed(space, X, lambda x: {k: float(v) for k, v in losses(x).items()})
    for objective, names in ((bomix.Objective("worst"), {"x", "y", "z"}), (bomix.Objective("target:z"), {"z"})):
        law = regmix(target="per_domain", regressor="linear").fit(History(space, objective, trials))
        assert set(law.params["models"]) == names
    law = regmix(target="per_domain", regressor="linear").fit(History(space, bomix.Objective("target:z"), trials))
    assert law.optimum[2] < 0.05  # z's loss grows with z's weight


def test_simulation_respects_caps_and_fills_when_dirichlet_draws_never_fit():
    opt = regmix()
    wide = testing.contract_spaces()[1]
    pool, fill = opt.simulate(wide, 5000, np.random.default_rng(0))
    assert pool.shape == (5000, 5) and fill == 0 and all(wide.contains(x) for x in pool)
    tight = testing.contract_spaces()[2]
    pool, fill = opt.simulate(tight, 500, np.random.default_rng(0))
    assert pool.shape == (500, 12) and fill > 400 and all(tight.contains(x) for x in pool)


def test_leaf_region_prediction_matches_lightgbm():
    rng = np.random.default_rng(0)
    X = rng.dirichlet(np.ones(6), size=64)
    y = np.log(X[:, 0] + 0.01) + 2 * X[:, 1] ** 2 - X[:, 2] * X[:, 3] + 0.01 * rng.standard_normal(64)
    model = _LightGBM(X, y, seed=0, small_data=True)
    regions = _LeafRegions(model.booster.dump_model())
    assert regions.ok and len(regions.regions) < 8000
    P = rng.dirichlet(np.full(6, 0.3), size=5000)
    assert np.abs(regions.predict(P) - model.booster.predict(P)).max() < 1e-9
    assert np.abs(model.predict(P) - model.booster.predict(P)).max() < 1e-9


# -- the real RegMix runs (../shared/data/regmix-1m) -----------------------------------------------
@pytest.fixture
def regmix_runs(regmix_csvs):
    """(space, trials, 400 train indices, 112 test indices) from the 512 real RegMix 1M runs."""
    import pandas as pd

    ratios, metrics = regmix_csvs
    R = pd.read_csv(ratios).set_index("index")
    M = pd.read_csv(metrics).set_index("index").loc[R.index]
    space = bomix.MixtureSpace([c.removeprefix("train_the_pile_") for c in R.columns])
    X = R.to_numpy() / R.to_numpy().sum(axis=1, keepdims=True)  # weights are rounded to 3 decimals
    trials = tuple(bomix.Trial(i, space.to_mixture(space.clean(x, atol=1e-2)), state=bomix.TrialState.COMPLETED,
                               proposed_by="regmix-1m", losses=dict(zip(M.columns, map(float, row))))
                   for i, (x, row) in enumerate(zip(X, M.to_numpy())))
    perm = np.random.default_rng(0).permutation(len(trials))
    return space, trials, perm[:400], perm[400:]


def held_out(runs, objective, **params):
    from scipy.stats import spearmanr

    space, trials, train, test = runs
    law = regmix(**params).fit(History(space, objective, tuple(trials[i] for i in train)))
    X = np.array([[trials[i].weights[d] for d in space.domains] for i in test])
    y = np.array([objective(trials[i].losses) for i in test])
    pred = law.predict(X)
    return spearmanr(pred, y).statistic, np.abs(pred - y).mean()


PILE_CC = bomix.Objective("target:metric/the_pile_pile_cc_val_loss")


def test_real_runs_lightgbm_ranks_held_out_mixtures(regmix_runs):
    # measured: 0.957 / MAE 0.069 (average of 13 losses), 0.985 / 0.045 (Pile-CC)
    rho, mae = held_out(regmix_runs, bomix.Objective("mean"))
    assert rho > 0.9 and mae < 0.1
    rho, mae = held_out(regmix_runs, PILE_CC)
    assert rho > 0.95 and mae < 0.07


def test_real_runs_per_domain_lightgbm_beats_one_model_on_the_average(regmix_runs):
    rho, mae = held_out(regmix_runs, bomix.Objective("mean"), target="per_domain")  # measured 0.983 / 0.040
    assert rho > 0.96 and mae < 0.06


def test_real_runs_linear(regmix_runs):
    # measured: 0.886 / 0.137 (Pile-CC), 0.365 / 0.229 (average of 13: far from linear in the weights)
    rho, mae = held_out(regmix_runs, PILE_CC, regressor="linear")
    assert rho > 0.8 and mae < 0.2
    rho, mae = held_out(regmix_runs, bomix.Objective("mean"), regressor="linear")
    assert rho > 0.2 and mae < 0.3
