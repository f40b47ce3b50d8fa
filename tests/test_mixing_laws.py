"""The data mixing laws baseline: contract, Algorithm-2 design, fit recovery, protocols, arguments."""

import numpy as np
import pytest

import bomix
from baselines import mixing_laws
from baselines._law import LawFitError
from baselines.mixing_laws import MixingLaws, double_diminishing
from bomix import testing
from bomix.errors import ConfigError
from bomix.trial import Trial, TrialState

HALVINGS = {0.0, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0}  # Algorithm 2's values for an uncapped domain


def run(evaluator, space, X, objective="mean", source="design"):
    """A History of the mixtures X evaluated (with noise) by `evaluator`."""
    trials = tuple(Trial(i, space.to_mixture(x), state=TrialState.COMPLETED, proposed_by=source, seed=i,
                         losses=evaluator.evaluate(space.to_mixture(x)).losses) for i, x in enumerate(X))
    return bomix.History(space, bomix.Objective.parse(objective), trials)


@pytest.fixture(scope="module")
def law_landscape():
    """The mixing-law landscape (k=5, little noise), its space and 40 design mixtures evaluated."""
    ev = bomix.get_evaluator("landscape", name="mixing_law", k=5, noise_sd=0.002, seed=1)
    space = bomix.MixtureSpace(ev.domains)
    return ev, space, run(ev, space, MixingLaws(seed=0).design(space, 40))


# -- contract ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("params", [{}, {"protocol": "one_shot", "budget": 8},
                                    {"protocol": "one_shot", "budget": 8, "optimum": "grid"}],
                         ids=["sequential", "one_shot", "one_shot_grid"])
def test_contract(params):
    # budget 8: the contract's histories of 6 to 10 trials reach the fit and the optimum
    testing.check_optimizer(lambda space, seed: bomix.get_optimizer("mixing_laws", seed=seed, **params))


# -- Algorithm 2 --------------------------------------------------------------------------------------
def test_grid_matches_the_recounted_redpajama_candidates():
    caps = [1, 1, 0.5857, 0.2588, 0.2254, 0.1779, 0.1727]  # the authors' availability caps
    X, zero = double_diminishing(bomix.MixtureSpace(list("abcdefg"), caps=caps), 1 / 16, np.random.default_rng(0))
    assert (len(X), int(zero.sum())) == (854, 721)


def test_design_lies_on_the_halving_grid(space5):
    X = MixingLaws(seed=3).design(space5, 63)
    assert set(np.round(X[:, :-1], 12).ravel()) <= HALVINGS
    np.testing.assert_allclose(X[:, -1] * 16, np.round(X[:, -1] * 16), atol=1e-9)  # the remainder
    assert len(np.unique(X, axis=0)) == 63


def test_design_is_feasible_with_floors_and_caps():
    for space in testing.contract_spaces():
        X = MixingLaws(seed=1).design(space, 63)
        for x in X:
            space.validate(x, atol=1e-9)
    floored = testing.contract_spaces()[1]
    X = MixingLaws(seed=1).design(floored, 63)
    assert np.isclose(X, floored.floors, atol=1e-12)[:, floored.floors > 0].any()  # zeros lifted to floors


def test_zero_containing_mixtures_are_down_sampled(space5):
    X = MixingLaws(seed=0).design(space5, 40)
    assert (X == 0).any(axis=1).mean() == pytest.approx(0.3, abs=0.03)
    assert (double_diminishing(space5, 1 / 16, np.random.default_rng(0))[1]).mean() > 0.6  # before: most do
    assert (MixingLaws(seed=0, zero_fraction=0.0).design(space5, 40) > 0).all()


def test_design_is_prefix_stable_and_seeded(space5):
    two = bomix.MixtureSpace(["a", "b"])  # a grid of 8 mixtures: the design goes on with Sobol points
    for space in (space5, two):
        full = MixingLaws(seed=4).design(space, 30)
        for n in (1, 7, 8, 9, 30):
            np.testing.assert_array_equal(MixingLaws(seed=4).design(space, n), full[:n])
    assert not np.array_equal(MixingLaws(seed=5).design(space5, 30), MixingLaws(seed=4).design(space5, 30))


def test_small_grids_halve_delta(space5):
    three = bomix.MixtureSpace(["a", "b", "c"])  # 27 mixtures at 1/16, fewer than budget - 1 = 63
    values = set(np.round(MixingLaws(budget=64).candidates(three)[:, :2], 12).ravel())
    assert values - HALVINGS  # finer values (1/32, 1/64) joined
    assert len(MixingLaws(budget=16).candidates(three)) == 27
    assert len(MixingLaws(budget=64).candidates(space5)) == 494  # enough at 1/16: unchanged


def test_large_grids_are_sampled_feasibly(monkeypatch):
    monkeypatch.setattr(mixing_laws, "GRID_LIMIT", 2000)
    space = bomix.MixtureSpace([f"d{i}" for i in range(8)], caps={"d7": 0.5})
    X = MixingLaws(seed=0).candidates(space)
    assert 100 < len(X) <= 2000
    for x in X[:200]:
        space.validate(x, atol=1e-9)
    assert set(np.round(X[:, :-1], 12).ravel()) <= HALVINGS


# -- fitting ------------------------------------------------------------------------------------------
def test_explicit_fit_recovers_the_law(law_landscape):
    ev, space, history = law_landscape
    law = MixingLaws(seed=0).fit(history)
    test = space.sample(200, method="sobol", seed=7)
    truth = np.array([ev.true_value(x) for x in test])
    assert np.abs(law.predict(test) - truth).mean() < 0.01
    assert ev.true_value(law.optimum) - ev.optimal_value < 0.01
    fitted = law.params["losses"]
    c = np.array([fitted[d]["c"] for d in ev.domains])
    t = np.array([[fitted[d]["t"][e] for e in ev.domains] for d in ev.domains])
    np.testing.assert_allclose(c, ev.c_, atol=0.02)
    np.testing.assert_allclose(t, ev.t_ - ev.t_.mean(axis=1, keepdims=True), atol=0.3)  # centred gauge


def test_reported_parameters_reproduce_the_predictions(law_landscape):
    _, space, history = law_landscape
    law = MixingLaws(seed=0).fit(history)
    X = space.sample(20, method="sobol", seed=2)
    losses = [[p["c"] + p["k"] * np.exp(sum(p["t"][d] * x[j] for j, d in enumerate(space.domains))) for x in X]
              for p in law.params["losses"].values()]
    assert all(abs(sum(p["t"].values())) < 1e-9 for p in law.params["losses"].values())
    np.testing.assert_allclose(np.mean(losses, axis=0), law.predict(X), atol=1e-9)


def test_fit_is_deterministic_and_needs_k_plus_2_trials(law_landscape):
    _, space, history = law_landscape
    a, b = MixingLaws(seed=2).fit(history), MixingLaws(seed=2).fit(history)
    np.testing.assert_array_equal(a.optimum, b.optimum)
    short = bomix.History(space, history.objective, history.trials[:6])
    with pytest.raises(LawFitError, match="min\\(k \\+ 2, its design\\) = 7"):
        MixingLaws().fit(short)


def test_own_domain_slope_starts_negative(law_landscape, monkeypatch):
    import scipy.optimize

    starts, minimize = [], scipy.optimize.minimize
    monkeypatch.setattr(scipy.optimize, "minimize", lambda f, x0, **kw: starts.append(x0) or minimize(f, x0, **kw))
    _, _, history = law_landscape
    X, y = history.X(), np.array([t.losses["d2"] for t in history.completed])
    mixing_laws.fit_exponential(X, y, 2, np.random.default_rng(0), 3)
    t = np.array(starts)[:, 2:]  # (log c, log k, t): the t of each refined start
    assert (t[:, 2] < 0).all() and (np.delete(t, 2, axis=1) >= 0).all()


def test_grid_optimum_is_the_best_candidate(law_landscape):
    _, space, history = law_landscape
    opt = MixingLaws(optimum="grid")
    law, pool = opt.fit(history), opt.candidates(space)
    assert law.optimal_value == pytest.approx(law.predict(pool).min())
    assert np.abs(pool - law.optimum).sum(axis=1).min() < 1e-12
    convex = MixingLaws().fit(history)
    assert convex.optimal_value <= law.optimal_value + 1e-9  # the convex solve can only do better


def test_target_objective_fits_that_loss_alone(law_landscape):
    ev, space, history = law_landscape
    target = bomix.History(space, bomix.Objective.parse("target:d2"), history.trials)
    law = MixingLaws().fit(target)
    assert list(law.params["losses"]) == ["d2"]
    test = space.sample(50, method="sobol", seed=3)
    truth = np.array([ev.true_losses(x)["d2"] for x in test])
    assert np.abs(law.predict(test) - truth).mean() < 0.01


def test_implicit_law_fits_sensibly(law_landscape):
    ev, space, history = law_landscape
    law = MixingLaws(variant="implicit", n_restarts=1).fit(history)
    assert law.params["n_latent"] == 30
    np.testing.assert_array_equal(law.optimum, MixingLaws(variant="implicit", n_restarts=1).fit(history).optimum)
    test = space.sample(100, method="sobol", seed=7)
    truth = np.array([ev.true_value(x) for x in test])
    mae = np.abs(law.predict(test) - truth).mean()
    assert mae < 0.05 and mae < 0.5 * np.abs(truth - truth.mean()).mean()  # far better than a constant
    assert ev.true_value(law.optimum) - ev.optimal_value < 0.02


# -- protocols ----------------------------------------------------------------------------------------
def study(opt, ev, space, n):
    """Run opt for n trials on the landscape, one at a time; returns the trials."""
    history = bomix.History(space, bomix.Objective("mean"))
    for i in range(n):
        p = opt.suggest(history, 1)[0]
        trial = Trial(i, space.to_mixture(p.weights), state=TrialState.COMPLETED, proposed_by=p.source, seed=i,
                      losses=ev.evaluate(space.to_mixture(p.weights)).losses)
        history = bomix.History(space, history.objective, history.trials + (trial,))
    return history


def test_one_shot_runs_budget_minus_one_design_points_then_the_optimum():
    ev = bomix.get_evaluator("landscape", name="mixing_law", k=3, noise_sd=0.002, seed=0)
    space = bomix.MixtureSpace(ev.domains)
    opt = MixingLaws(protocol="one_shot", budget=12)
    history = study(opt, ev, space, 12)
    assert [t.proposed_by for t in history.trials] == ["mixing_laws/design"] * 11 + ["mixing_laws/optimum"]
    np.testing.assert_allclose(history.X()[:11], opt.design(space, 11))
    last = bomix.History(space, history.objective, history.trials[:11])
    np.testing.assert_allclose(history.X()[11], space.project(opt.fit(last).optimum))


def test_sequential_designs_n0_then_exploits():
    ev = bomix.get_evaluator("landscape", name="mixing_law", k=3, noise_sd=0.002, seed=0)
    space = bomix.MixtureSpace(ev.domains)
    history = study(MixingLaws(n0=6, budget=12), ev, space, 10)
    sources = [t.proposed_by for t in history.trials]
    assert sources[:6] == ["mixing_laws/design"] * 6
    assert set(sources[6:]) <= {"mixing_laws/optimum", "mixing_laws/candidate"} and "mixing_laws/optimum" in sources
    assert history.y()[6:].min() - ev.optimal_value < 0.01


def test_default_n0_follows_the_spec():
    assert MixingLaws().default_n0(bomix.MixtureSpace(list("abcde"))) == 21  # 3 (k + 2)
    assert MixingLaws().default_n0(bomix.MixtureSpace(["a", "b"])) == 16


# -- arguments ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, value", [("variant", "latent"), ("optimum", "best"), ("delta", 0), ("delta", 1.5),
                                         ("zero_fraction", -0.1), ("zero_fraction", True), ("n_restarts", 0),
                                         ("n_latent", 2.5), ("protocol", "greedy")])
def test_bad_arguments_name_the_value(name, value):
    with pytest.raises(ConfigError, match=rf"{name} must .* got {value!r}"):
        bomix.get_optimizer("mixing_laws", **{name: value})


def test_params_are_stored_unchanged():
    params = {"seed": 3, "protocol": "one_shot", "budget": 20, "n0": None, "min_distance": 0.05,
              "variant": "implicit", "optimum": "grid", "delta": 1 / 32, "zero_fraction": 0.5, "n_restarts": 2,
              "n_latent": 10}
    assert bomix.get_optimizer("mixing_laws", **params).get_params() == params


# -- the size law of the nested scaling laws ---------------------------------------------------------
def test_size_law_recovers_a_shared_exponent_and_extrapolates_to_a_larger_size():
    rng = np.random.default_rng(0)
    N = np.array([1.0, 2.0, 4.0])
    E, B, a = rng.uniform(2, 3, 30), rng.uniform(0.3, 1.0, 30), 0.437  # a between the grid's points
    law = mixing_laws.fit_size_law(N, E[:, None] + B[:, None] * N ** -a)
    assert law.a == pytest.approx(a, abs=1e-4)
    assert np.allclose(law.predict(10.0), E + B * 10.0 ** -a, atol=1e-4)
    # Huber: one far-off point (2 nats) among 120 moves the shared exponent a little (to 0.405);
    # least squares would take it to the lower bound (0.005)
    L = E[:, None] + B[:, None] * np.r_[N, 8.0] ** -a
    L[0, 1] += 2.0
    assert mixing_laws.fit_size_law(np.r_[N, 8.0], L).a == pytest.approx(a, abs=0.05)


def test_size_law_needs_three_sizes():
    with pytest.raises(LawFitError, match=r"at least 3 distinct positive sizes, got \[1.0, 2.0, 2.0\]"):
        mixing_laws.fit_size_law([1.0, 2.0, 2.0], np.ones((4, 3)))
    with pytest.raises(LawFitError, match=r"shape \(curves, 3\), got \(4, 2\)"):
        mixing_laws.fit_size_law([1.0, 2.0, 4.0], np.ones((4, 2)))
