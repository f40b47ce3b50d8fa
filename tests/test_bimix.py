from dataclasses import replace

import numpy as np
import pytest
from scipy.optimize import minimize

import bomix
from baselines._law import LawFitError
from baselines.bimix import BiMix, entropy_mixture
from bomix import testing
from bomix.errors import ConfigError
from bomix.evaluators import TrialContext
from bomix.evaluators.landscapes import landscape
from bomix.objective import Objective
from bomix.optimizers.base import History
from bomix.space import MixtureSpace
from bomix.trial import Trial, TrialState


def run(opt, land, n, objective="mean", space=None) -> History:
    """n trials of `opt` on the landscape, in memory (trial i evaluated with seed i, curves kept)."""
    space = space or MixtureSpace(land.domains)
    history = History(space, Objective.parse(objective), ())
    for i in range(n):
        p = opt.suggest(history, 1)[0]
        ev = land.evaluate(space.to_mixture(p.weights), TrialContext(number=i, seed=i))
        trial = Trial(i, space.to_mixture(p.weights), TrialState.COMPLETED, p.source, i, ev.losses,
                      history.objective(ev.losses), curves=ev.curves)
        history = History(space, history.objective, history.trials + (trial,))
    return history


def history_of(space, X, losses, objective="mean") -> History:
    trials = tuple(Trial(i, space.to_mixture(x), TrialState.COMPLETED, "test", i, losses(x))
                   for i, x in enumerate(X))
    return History(space, Objective.parse(objective), trials)


def slsqp(fun, space, x0):
    res = minimize(fun, x0, method="SLSQP", bounds=list(zip(space.floors, space.caps)),
                   constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1}], options={"ftol": 1e-15, "maxiter": 1000})
    return res.x


# -- the optimizer contract ----------------------------------------------------------------------
@pytest.mark.parametrize("params", [dict(protocol="one_shot", budget=8), dict(), dict(n0=4)],
                         ids=["one_shot", "sequential", "sequential_fits"])
def test_contract(params):
    testing.check_optimizer(lambda space, seed: BiMix(seed=seed, **params))


def test_registered_name_builds_bimix():
    opt = bomix.get_optimizer("bimix", seed=2, n0=5)
    assert isinstance(opt, BiMix) and opt.get_params()["n0"] == 5


# -- recovering its own law ----------------------------------------------------------------------
@pytest.mark.parametrize("use_curves", [False, True], ids=["fixed_step", "curves"])
def test_recovers_its_own_law(use_curves):
    land = landscape("bimix_law", k=5, seed=0, noise_sd=0.002)
    opt = BiMix(seed=0, n0=10, use_curves=use_curves)
    history = run(opt, land, 20)
    law = opt.fit(history)
    assert {f["form"] for f in law.params["fits"].values()} == {"curves" if use_curves else "fixed_step"}
    np.testing.assert_allclose(list(law.params["alpha"].values()), land.alpha_, atol=0.01)
    assert opt.cross_validate(history)["mae"] < 0.01
    rec = opt.recommend(history)
    assert land.regret(rec.weights) < 0.01 < land.regret([0.2] * 5)
    if use_curves:  # A is fixed to 1: the fit recovers A*B, A*C and beta
        fits = [law.params["fits"][d] for d in land.domains]
        np.testing.assert_allclose([f["C"] for f in fits], land.A_ * land.C_, rtol=0.05)
        np.testing.assert_allclose([f["B"] for f in fits], land.A_ * land.B_, rtol=0.2)
        np.testing.assert_allclose([f["beta"] for f in fits], land.beta_, atol=0.05)
        # trials without curves join the curve fit with their final loss at the last step
        half = tuple(t if t.number % 2 else replace(t, curves=None) for t in history.trials)
        mixed = opt.fit(History(history.space, history.objective, half))
        assert {f["n_points"] for f in mixed.params["fits"].values()} == {10 * 4 + 10}
        np.testing.assert_allclose(list(mixed.params["alpha"].values()), land.alpha_, atol=0.01)


def test_curves_survive_the_journal_and_are_fitted(tmp_path):
    land = bomix.get_evaluator("landscape", name="bimix_law", k=3, seed=1, noise_sd=0.002)
    space = MixtureSpace(land.domains)
    study = bomix.create_study(tmp_path / "s", space=space, optimizer=BiMix(seed=0, n0=6), seed=0)
    study.optimize(land, n_trials=8, show_progress=False)
    study.close()
    history = bomix.load_study(tmp_path / "s").history()
    assert history.completed[0].curves and len(history.completed[0].curves["d0"]) == 4
    law = BiMix(seed=0).fit(history)
    assert {f["form"] for f in law.params["fits"].values()} == {"curves"}
    assert [t.proposed_by for t in history.trials][:7] == ["bimix/design"] * 6 + ["bimix/optimum"]


# -- the exact optimum ---------------------------------------------------------------------------
SPACES = [MixtureSpace([f"d{i}" for i in range(5)]),
          MixtureSpace([f"d{i}" for i in range(5)], floors={"d4": 0.5}, caps={"d0": 0.05, "d1": 0.12})]


@pytest.mark.parametrize("space", SPACES, ids=["free", "floors_and_caps"])
@pytest.mark.parametrize("objective", ["mean", {"kind": "weighted", "weights": {"d0": 3, "d2": 1, "d3": 0.5}}])
def test_kkt_optimum_matches_slsqp(space, objective):
    rng = np.random.default_rng(0)
    K, alpha = rng.uniform(2, 4, 5), rng.uniform(0.05, 0.4, 5)
    objective = Objective.parse(objective)
    names = objective.required(dict.fromkeys(space.domains))
    cols = [space.index(n) for n in names]
    opt = BiMix(min_weight=1e-3)
    x = opt.optimum(space, objective, names, K[cols], alpha[cols])
    assert space.contains(x, atol=1e-12)

    def f(r):
        return objective(dict(zip(space.domains, K * np.maximum(r, 1e-9) ** -alpha)))

    lo, hi = opt.bounds(space)
    ref = slsqp(f, MixtureSpace(space.domains, floors=lo, caps=hi), space.center)
    np.testing.assert_allclose(x, ref, atol=1e-4)
    assert f(x) <= f(ref) + 1e-9
    if space is SPACES[1]:
        assert x[0] == pytest.approx(0.05) and x[4] == pytest.approx(0.5)  # active cap and floor
    if objective.kind == "weighted":  # d1, d4 are not in the objective: left at their lower bound
        np.testing.assert_allclose(x[[1, 4]], lo[[1, 4]], atol=1e-12)


@pytest.mark.parametrize("space", SPACES, ids=["free", "floors_and_caps"])
def test_minimax_optimum_matches_slsqp_on_the_epigraph(space):
    rng = np.random.default_rng(1)
    K, alpha = rng.uniform(2, 4, 5), rng.uniform(0.05, 0.4, 5)
    x = BiMix().optimum(space, Objective("worst"), list(space.domains), K, alpha)
    lo, hi = BiMix().bounds(space)
    res = minimize(lambda z: z[5], np.r_[space.center, 10.0], method="SLSQP",
                   bounds=list(zip(lo, hi)) + [(None, None)], options={"ftol": 1e-14, "maxiter": 1000},
                   constraints=[{"type": "eq", "fun": lambda z: z[:5].sum() - 1},
                                {"type": "ineq", "fun": lambda z: z[5] - K * z[:5] ** -alpha}])
    assert (K * x ** -alpha).max() == pytest.approx(res.x[5], abs=1e-6)
    assert space.contains(x, atol=1e-12)


def test_target_objective_leaves_other_domains_at_min_weight():
    space = MixtureSpace(["a", "b", "c"], floors={"c": 0.1})
    x = BiMix(min_weight=0.01).optimum(space, Objective("target:a"), ["a"], np.array([3.0]), np.array([0.2]))
    np.testing.assert_allclose(x, [0.89, 0.01, 0.1], atol=1e-12)
    capped = MixtureSpace(["a", "b", "c"], caps={"a": 0.5})  # the law is indifferent to the leftover mass
    x = BiMix(min_weight=0.01).optimum(capped, Objective("target:a"), ["a"], np.array([3.0]), np.array([0.2]))
    assert x[0] == pytest.approx(0.5) and x.sum() == pytest.approx(1.0) and min(x) >= 0.01


# -- design --------------------------------------------------------------------------------------
def test_design_starts_with_the_entropy_mixtures_then_uniform():
    space = MixtureSpace(["books", "cc", "stack", "pes2o", "reddit"])
    ce = {"books": 5.0, "cc": 5.5, "stack": 3.5, "pes2o": 4.8, "reddit": 5.2}
    se = {"books": 7.0, "cc": 7.3, "stack": 6.0, "pes2o": 6.8, "reddit": 7.1}
    X = BiMix(entropies=ce).design(space, 12)
    softmax = np.exp(list(ce.values())) / np.exp(list(ce.values())).sum()
    np.testing.assert_allclose(X[0], softmax, atol=1e-12)
    np.testing.assert_allclose(X[1], 0.2, atol=1e-12)
    assert X[2:].min() >= 0.01 - 1e-9  # interior Sobol spread: the law needs r_i > 0
    assert len({tuple(np.round(x, 9)) for x in X}) == 12
    two = BiMix(entropies={"CE": ce, "SE": se}).design(space, 9)
    np.testing.assert_allclose(two[0], entropy_mixture(se, space), atol=1e-12)  # paper order: SE before CE
    np.testing.assert_allclose(two[1], softmax, atol=1e-12)
    np.testing.assert_allclose(two[:5], BiMix(entropies={"CE": ce, "SE": se}).design(space, 5))  # prefix-stable
    with pytest.raises(ConfigError, match="one H per training domain.*missing \\['reddit'\\]"):
        BiMix(entropies={d: h for d, h in ce.items() if d != "reddit"}).design(space, 1)


def test_design_is_proposed_first_and_fits_after_n0():
    space = MixtureSpace(["a", "b", "c"])
    opt = BiMix(seed=3, n0=6)
    empty = History(space, Objective("mean"), ())
    np.testing.assert_allclose([p.weights for p in opt.suggest(empty, 6)], opt.design(space, 6))
    assert opt.default_n0(MixtureSpace([f"d{i}" for i in range(7)])) == 14


# -- what it cannot do ---------------------------------------------------------------------------
def test_losses_without_a_training_domain_are_a_config_error():
    space = MixtureSpace(["a", "b"])
    history = history_of(space, space.sample(3, seed=0), lambda x: {"a": 3.0, "b": 3.1, "wiki": 2.0})
    with pytest.raises(ConfigError, match="own training domain's weight.*\\['wiki'\\] that have no training domain"):
        BiMix().suggest(history, 1)
    ok = History(space, Objective("mean", domains=["a", "b"]), history.trials)  # restricted objective: fine
    assert len(BiMix(n0=2).suggest(ok, 1)) == 1


def test_one_distinct_weight_cannot_be_fitted_during_the_design():
    space = MixtureSpace(["a", "b"])
    history = history_of(space, [[0.5, 0.5]] * 4, lambda x: {"a": 3.0, "b": 3.0})
    with pytest.raises(LawFitError, match="two distinct weights"):
        BiMix(n0=6).fit(history)
    assert BiMix(n0=6).suggest(history, 1)[0].source == "bimix/design"


def test_after_the_design_a_domain_it_never_varied_gets_a_flat_law():
    """A sparse pool may never give a domain two weights >= min_weight (the synthetic 64-domain
    swarm has one run of 512 with d23 >= 1e-3): past its design BiMix fits the other domains and
    gives that one the flattest law allowed, instead of designing forever."""
    space = MixtureSpace(["a", "b", "c"])
    X = [[0.6, 0.4, 0.0], [0.3, 0.7, 0.0], [0.8, 0.2, 0.0], [0.5, 0.45, 0.05]]
    history = history_of(space, X, lambda x: {"a": 3.0 * max(x[0], 1e-9) ** -0.2, "b": 3.0 * max(x[1], 1e-9) ** -0.1,
                                              "c": 4.0})
    with pytest.raises(LawFitError, match="domain 'c'"):
        BiMix(n0=5).fit(history)  # still designing
    law = BiMix(n0=4).fit(history)
    assert law.params["flat"] == ["c"] and law.params["fits"]["c"]["form"] == "flat"
    assert law.params["alpha"]["c"] == 1e-3 and law.params["alpha_clamped"] == 0
    assert law.params["alpha"]["a"] == pytest.approx(0.2) and law.params["alpha"]["b"] == pytest.approx(0.1)
    assert law.optimum[2] < 0.01  # the flat domain gets almost nothing
    proposal = BiMix(n0=4).suggest(history, 1)[0]
    assert proposal.source == "bimix/optimum" and not proposal.design


def test_weights_below_min_weight_are_left_out_and_degenerate_alpha_is_clamped():
    space = MixtureSpace(["a", "b"])
    X = [[0.0, 1.0], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]]
    # a: a clean power law; b: loss falls as its weight falls (alpha < 0, degenerate)
    history = history_of(space, X, lambda x: {"a": 3.0 * max(x[0], 1e-9) ** -0.1, "b": 3.0 * x[1] ** 0.05})
    law = BiMix(alpha_min=1e-3, min_weight=1e-3).fit(history)
    assert law.params["alpha"]["a"] == pytest.approx(0.1) and law.params["K"]["a"] == pytest.approx(3.0)
    assert law.params["alpha"]["b"] == 1e-3 and law.params["alpha_clamped"] == 1
    assert law.optimum[1] < 0.01  # b gains almost nothing from weight


@pytest.mark.parametrize("params, match", [
    (dict(min_weight=0), "min_weight must be a number in \\(0, 0.5\\), got 0"),
    (dict(alpha_min=-1), "alpha_min must be a number in \\(0, 1.0\\), got -1"),
    (dict(entropies=[1, 2]), "entropies must be None"),
    (dict(protocol="greedy"), "protocol must be one of"),
])
def test_invalid_parameters_say_the_rule_and_the_value(params, match):
    with pytest.raises(ConfigError, match=match):
        BiMix(**params)


# -- the bimix_law landscape ---------------------------------------------------------------------
def test_bimix_law_landscape_follows_its_law_and_returns_curves():
    land = landscape("bimix_law", k=4, seed=2, noise_sd=0.01, steps=800)
    assert land.get_params() == {"name": "bimix_law", "k": 4, "domains": ("d0", "d1", "d2", "d3"), "seed": 2,
                                 "noise_sd": 0.01, "sleep_s": 0.0, "objective": "mean", "steps": 800}
    r = np.array([0.1, 0.2, 0.3, 0.4])
    expected = land.A_ * r ** -land.alpha_ * (land.B_ * 800.0 ** -land.beta_ + land.C_)
    np.testing.assert_allclose(list(land.true_losses(r).values()), expected)
    assert np.all((2.0 < expected) & (expected < 6.0))
    ev = land.evaluate(land._space.to_mixture(r), TrialContext(seed=5))
    assert [s for s, _ in ev.curves["d0"]] == [100, 200, 400, 800] == list(land.curve_steps)
    assert all(ev.curves[d][-1][1] == ev.losses[d] for d in land.domains)  # the final point is the loss
    first_draw = land._noise(np.random.default_rng([2, 5]))  # the base Landscape's noise pattern
    np.testing.assert_allclose(np.array(list(ev.losses.values())) - expected, first_draw, atol=1e-12)
    early = np.array([ev.curves[d][0][1] for d in land.domains])
    assert np.all(early > np.array(list(ev.losses.values())))  # losses fall with steps
    assert ev.curves == land.evaluate(land._space.to_mixture(r), TrialContext(seed=5)).curves


def test_bimix_law_optimum_is_interior_and_the_kkt_point():
    land = landscape("bimix_law", k=5, seed=0)
    x, value = land.optimum_in()
    assert x.min() > 0.02
    K = land.A_ * (land.B_ * 1000.0 ** -land.beta_ + land.C_)
    kkt = BiMix(min_weight=1e-4).optimum(MixtureSpace(land.domains), Objective("mean"), list(land.domains), K,
                                         land.alpha_)
    np.testing.assert_allclose(x, kkt, atol=1e-4)
    assert land.true_value(kkt) <= value + 1e-9
    assert land.true_value([1, 0, 0, 0, 0]) < 100  # finite on the simplex's faces
