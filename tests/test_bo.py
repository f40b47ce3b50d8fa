"""The `bo` optimizer: GP + qLogNEI over the simplex. Small acquisition settings keep these fast."""

import numpy as np
import pytest

import bomix
from bomix import testing
from bomix.evaluators import get_evaluator
from bomix.optimizers.bo import BayesOpt
from bomix.trial import Trial, TrialState

FAST = dict(num_restarts=2, raw_samples=64, mc_samples=32, n_init=4)


def history_from(space, X, losses_fn, states=None, objective="mean"):
    trials = []
    for i, x in enumerate(X):
        state = states[i] if states else TrialState.COMPLETED
        losses = losses_fn(x) if state is TrialState.COMPLETED else None
        trials.append(Trial(i, space.to_mixture(x), state=state, proposed_by="bo/init", seed=i, losses=losses))
    return bomix.History(space, bomix.Objective.parse(objective), tuple(trials))


@pytest.fixture(scope="module")
def seedlike():
    return get_evaluator("landscape", name="seedlike", noise_sd=0.017, seed=0)


def test_initial_design_is_center_then_sobol_and_continues(space5):
    opt = BayesOpt(seed=3, n_init=5)
    empty = testing.make_history(space5, n_completed=0)
    first = [p.weights for p in opt.suggest(empty, 2)]
    np.testing.assert_allclose(first[0], [0.2] * 5)
    design = opt.initial_design(space5, 5)
    np.testing.assert_allclose(np.array(first), design[:2])
    trials = tuple(Trial(i, space5.to_mixture(x), proposed_by="bo/init") for i, x in enumerate(first))
    nxt = opt.suggest(bomix.History(space5, bomix.Objective(), trials), 3)
    np.testing.assert_allclose(np.array([p.weights for p in nxt]), design[2:5])
    assert {p.source for p in nxt} == {"bo/init"}


@pytest.mark.parametrize("model,prior_mean", [("per_domain", "constant"), ("scalar", "constant"),
                                              ("lowrank", "constant"), ("per_domain", "law"), ("scalar", "law")])
@pytest.mark.parametrize("objective", ["mean", "worst", "target:pes2o",
                                       {"kind": "weighted", "weights": {"books": 1.0, "cc": 3.0}}])
def test_gp_step_for_every_model_and_objective(seedlike, model, prior_mean, objective):
    space = bomix.MixtureSpace(seedlike.domains)
    X = space.sample(12, method="sobol", seed=1)
    h = history_from(space, X, seedlike.true_losses, objective=objective)
    out = BayesOpt(seed=0, model=model, prior_mean=prior_mean, **FAST).suggest(h, 2)
    assert out[0].source == "bo/gp" and out[1].source in ("bo/gp", "bo/dedup")  # dedup: a repeat replaced
    for p in out:
        space.validate(p.weights)
    assert np.abs(out[0].weights - out[1].weights).max() > 1e-6


def test_same_history_same_proposals(seedlike):
    space = bomix.MixtureSpace(seedlike.domains)
    h = history_from(space, space.sample(10, method="sobol", seed=2), seedlike.true_losses)
    a = BayesOpt(seed=1, **FAST).suggest(h, 1)[0].weights
    b = BayesOpt(seed=1, **FAST).suggest(h, 1)[0].weights
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("state", [TrialState.RUNNING, TrialState.FAILED])
def test_a_pending_or_failed_point_steers_the_proposal_away(seedlike, state):
    """Two histories of the same length (so the same step seed): the 11th trial, RUNNING or FAILED,
    sits far away in one and at the acquisition's best point in the other. The proposal stays at
    that point in the first and moves away in the second; its acquisition score drops there too.
    Without the pending points in the acquisition both histories give the same proposal."""
    space = bomix.MixtureSpace(seedlike.domains)
    X = space.sample(10, method="sobol", seed=2)
    states = [TrialState.COMPLETED] * 10 + [state]
    far = space.project([0.92, 0.02, 0.02, 0.02, 0.02])
    opt = BayesOpt(seed=1, **FAST)
    best = opt.suggest(history_from(space, np.vstack([X, far]), seedlike.true_losses, states=states), 1)[0].weights
    assert np.abs(best - far).sum() > 0.5
    at_best = history_from(space, np.vstack([X, best]), seedlike.true_losses, states=states)
    moved = opt.suggest(at_best, 1)[0].weights
    assert np.abs(moved - best).max() > 1e-2
    elsewhere = history_from(space, np.vstack([X, far]), seedlike.true_losses, states=states)
    assert opt.score(at_best, best[None])[0] < opt.score(elsewhere, best[None])[0] - 1.0  # log EI, much lower


def test_constant_values_and_duplicates_do_not_break_the_fit():
    space = bomix.MixtureSpace(["a", "b", "c"])
    X = np.vstack([space.sample(4, seed=0)] * 2)  # every mixture twice
    h = history_from(space, X, lambda x: {"a": 3.0, "b": 3.0, "c": 3.0})
    for p in BayesOpt(seed=0, **FAST).suggest(h, 2):
        space.validate(p.weights)


@pytest.mark.parametrize("k", [2, 32])
def test_small_and_large_k(k):
    space = bomix.MixtureSpace([f"d{i}" for i in range(k)])
    X = space.sample(8, method="sobol", seed=0)
    h = history_from(space, X, lambda x: testing.toy_losses(space, x))
    (p,) = BayesOpt(seed=0, **FAST).suggest(h, 1)
    assert p.source == "bo/gp"
    space.validate(p.weights, atol=0)


def test_narrow_capped_polytope_with_floors():
    space = bomix.MixtureSpace(["a", "b", "c", "d"], floors={"a": 0.1, "d": 0.05}, caps=[0.3, 0.3, 0.3, 0.15])
    X = space.sample(8, method="sobol", seed=0)
    h = history_from(space, X, lambda x: testing.toy_losses(space, x))
    for p in BayesOpt(seed=0, **FAST).suggest(h, 3):
        space.validate(p.weights, atol=0)  # exactly feasible, not within a tolerance


@pytest.mark.parametrize("over", ["evaluated", "simplex"])
def test_recommendation_is_model_based_with_uncertainty(seedlike, over):
    space = bomix.MixtureSpace(seedlike.domains)
    X = space.sample(24, method="sobol", seed=4)
    noisy = get_evaluator("landscape", name="seedlike", noise_sd=0.017, seed=0)
    h = history_from(space, X, lambda x: noisy.evaluate(x).losses)
    rec = BayesOpt(seed=0, recommend_over=over, **FAST).recommend(h)
    assert rec.sd is not None and 0 < rec.sd < 0.1
    assert abs(rec.value - seedlike.true_value(rec.weights)) < 0.05
    if over == "evaluated":
        assert rec.trial is not None and h.trials[rec.trial].weights == pytest.approx(rec.weights)


def test_one_history_is_fitted_once_and_a_new_trial_refits(seedlike, monkeypatch):
    import botorch.fit

    fits = []
    real = botorch.fit.fit_gpytorch_mll
    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", lambda *a, **kw: fits.append(1) or real(*a, **kw))
    space = bomix.MixtureSpace(seedlike.domains)
    X = space.sample(12, method="sobol", seed=4)
    h = history_from(space, X, seedlike.true_losses)
    opt = BayesOpt(seed=0, **FAST)
    rec = opt.recommend(h)
    mean, sd = opt.predict(h, X[:3])
    opt.sample_objective(h, X[:3], 8)
    assert len(fits) == 1  # recommend, predict and the draws read one fit
    fresh_mean, fresh_sd = BayesOpt(seed=0, **FAST).predict(h, X[:3])  # a reused fit answers as a new one
    np.testing.assert_allclose(mean, fresh_mean) and np.testing.assert_allclose(sd, fresh_sd)
    longer = history_from(space, np.vstack([X, space.sample(1, method="random", seed=9)]), seedlike.true_losses)
    assert opt.recommend(longer).value != rec.value and len(fits) == 3  # one more trial: fitted anew
    assert opt.recommend(history_from(space, X, seedlike.true_losses, objective="worst")).value != rec.value
    assert len(fits) == 4  # so is another objective


def test_bad_parameters_are_refused():
    with pytest.raises(bomix.errors.ConfigError, match="model must be one of"):
        BayesOpt(model="multitask")
    with pytest.raises(bomix.errors.ConfigError, match="n_init must be an integer"):
        BayesOpt(n_init=0)
    with pytest.raises(bomix.errors.ConfigError, match="num_restarts must be an integer >= 1 or None, got 0"):
        BayesOpt(num_restarts=0)


@pytest.mark.parametrize("k, default", [(5, 2), (8, 2), (9, 4), (17, 4)])
def test_acquisition_restarts_by_number_of_domains(k, default, monkeypatch):
    import botorch.optim

    starts = []
    real = botorch.optim.optimize_acqf
    monkeypatch.setattr(botorch.optim, "optimize_acqf",
                        lambda *a, **kw: starts.append(len(kw["batch_initial_conditions"])) or real(*a, **kw))
    space = bomix.MixtureSpace([f"d{i}" for i in range(k)])
    h = history_from(space, space.sample(6, method="sobol", seed=1), lambda x: {"d0": 1.0 + float(x @ x)})
    fast = dict(n_init=4, raw_samples=32, mc_samples=8)
    BayesOpt(seed=0, **fast).suggest(h, 1)
    BayesOpt(seed=0, num_restarts=3, **fast).suggest(h, 1)
    assert starts == [default, 3]  # the default by k (bo.RESTARTS), an explicit count as given


def test_fit_maxiter_reaches_the_gp_fit(seedlike, monkeypatch):
    import botorch.fit

    seen = []
    real = botorch.fit.fit_gpytorch_mll
    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll",
                        lambda *a, **kw: seen.append(kw["optimizer_kwargs"]["options"]["maxiter"]) or real(*a, **kw))
    space = bomix.MixtureSpace(seedlike.domains)
    h = history_from(space, space.sample(8, method="sobol", seed=2), seedlike.true_losses)
    BayesOpt(seed=0, **FAST)._fit(h)
    BayesOpt(seed=0, fit_maxiter=7, **FAST)._fit(h)
    wide = bomix.MixtureSpace([f"d{i}" for i in range(9)])
    BayesOpt(seed=0, **FAST)._fit(history_from(wide, wide.sample(8, method="sobol", seed=2),
                                               lambda x: {"d0": 1.0 + float(x @ x)}))
    BayesOpt(seed=0, kernel="additive", **FAST)._fit(h)
    assert seen == [50, 7, 100, 100]  # the default by k (bo.FIT_MAXITER: 50 up to 8 domains, not for the
    #                                   additive kernel), an explicit count as given
    with pytest.raises(bomix.errors.ConfigError, match="fit_maxiter must be an integer >= 1 or None, got 0"):
        BayesOpt(fit_maxiter=0)


def test_study_with_bo_replicates_the_top_mixtures(tmp_path, seedlike):
    space = bomix.MixtureSpace(seedlike.domains)
    study = bomix.create_study(tmp_path / "s", space=space, optimizer=BayesOpt(seed=0, **FAST))
    study.optimize(seedlike, n_trials=8)
    table = study.replicate(seedlike, top=2, repeats=2)
    assert len(table) == 2 and (table["n_evaluations"] == 3).all()
    assert len(study.trials) == 12
    assert {t.proposed_by for t in study.trials[8:]} == {"replicate"}
    assert study.replicate(seedlike, top=2, repeats=2).equals(table)  # nothing missing: nothing added
    assert len(study.trials) == 12


@pytest.mark.slow
def test_ax_default_runs_a_study_through_its_init_and_model_phases(tmp_path, seedlike):
    space = bomix.MixtureSpace(seedlike.domains)
    study = bomix.create_study(tmp_path / "s", space=space, optimizer="ax_default")
    study.optimize(seedlike, n_trials=9)
    sources = [t.proposed_by for t in study.trials]
    assert sources[0] == "ax_default/CenterOfSearchSpace" and "ax_default/MBM" in sources
    for t in study.trials:
        space.validate(t.weights, atol=0)
