import numpy as np
import pytest

from bomix.errors import ConfigError, InvalidWeightsError, UnknownNameError
from bomix.evaluators import TrialContext, get_evaluator
from bomix.evaluators.landscapes import LANDSCAPES, Landscape, landscape
from bomix.objective import Objective
from bomix.space import MixtureSpace

SEEDLIKE = ("books", "cc", "stack", "pes2o", "reddit")
LLAMA_LIKE = np.array([4.5, 67.0, 6.5, 2.5, 10.0]) / 90.5  # [0.0497, 0.7403, 0.0718, 0.0276, 0.1105]


def values(land: Landscape, x: np.ndarray, objective) -> np.ndarray:
    """(n,) noise-free objective values of the (n, k) mixtures x."""
    objective = Objective.parse(objective)
    return np.array([objective(dict(zip(land.loss_names, row))) for row in land.true_loss_matrix(x)])


def test_seedlike_hits_the_seed_study_anchors():
    land = landscape("seedlike")
    assert land.domains == SEEDLIKE
    assert land.true_value([0.2] * 5) == pytest.approx(4.466, abs=0.005)
    assert land.optimal_value == pytest.approx(4.35, abs=0.01)
    assert land.true_value(LLAMA_LIKE) == pytest.approx(4.68, abs=0.01)
    at_best = land.true_losses(land.optimum)
    assert 2.8 < at_best["stack"] < 3.3 < 4.3 < min(at_best[d] for d in ("books", "cc", "pes2o", "reddit"))
    assert max(at_best.values()) < 5.0


def test_seedlike_losses_blow_up_as_a_domain_goes_to_zero():
    land = landscape("seedlike")
    uniform = land.true_losses([0.2] * 5)
    for i, domain in enumerate(SEEDLIKE):
        without = np.full(5, 0.25)
        without[i] = 0.0
        assert land.true_losses(without)[domain] > uniform[domain] + 0.3


@pytest.mark.parametrize("family", sorted(LANDSCAPES))
@pytest.mark.parametrize("objective", ["mean", "worst"])
def test_optimum_is_feasible_and_no_random_point_beats_it(family, objective):
    land = landscape(family)
    x, value = land.optimum_in(objective=objective)
    space = MixtureSpace(land.domains)
    assert space.contains(x, atol=1e-9)
    assert value == pytest.approx(land.true_value(x, objective), abs=1e-12)
    random = values(land, space.sample(2000, seed=1), objective)
    assert value <= random.min() + 1e-9


def test_interaction_optimum_is_interior():
    assert landscape("interaction").optimum_in()[0].min() > 0.01


def test_optimum_respects_floors_and_caps():
    land = landscape("seedlike")
    space = MixtureSpace(SEEDLIKE, floors={"books": 0.15}, caps={"stack": 0.2, "cc": 0.1})
    x, value = land.optimum_in(space)
    assert space.contains(x, atol=1e-9)
    assert x[0] >= 0.15 - 1e-9 and x[1] <= 0.1 + 1e-9 and x[2] <= 0.2 + 1e-9
    assert value > land.optimal_value  # the unconstrained optimum is infeasible here
    assert value <= values(land, space.sample(2000, seed=2), "mean").min() + 1e-9
    assert land.regret(x, space) == pytest.approx(0.0, abs=1e-12)


def test_optimum_is_deterministic_and_cached_per_space_and_objective():
    a, b = landscape("interaction", seed=3), landscape("interaction", seed=3)
    np.testing.assert_array_equal(a.optimum_in()[0], b.optimum_in()[0])
    first = a.optimum_in(objective="worst")
    first[0][:] = 0  # callers get copies
    assert a.optimum_in(objective="worst")[0].sum() == pytest.approx(1.0)
    assert len(a._optima) == 2


def test_optimum_in_refuses_a_space_over_other_domains():
    with pytest.raises(ConfigError, match="MixtureSpace over the landscape's domains"):
        landscape("seedlike").optimum_in(MixtureSpace(["a", "b"]))


def test_same_context_seed_gives_the_same_noisy_losses():
    land = landscape("seedlike", noise_sd=0.017, seed=4)
    w = dict(zip(SEEDLIKE, [0.2] * 5))
    same = [land.evaluate(w, TrialContext(number=n, seed=7)).losses for n in (0, 1)]
    assert same[0] == same[1]
    assert landscape("seedlike", noise_sd=0.017, seed=4).evaluate(w, TrialContext(seed=7)).losses == same[0]
    assert land.evaluate(w, TrialContext(seed=8)).losses != same[0]
    assert landscape("seedlike", noise_sd=0.017, seed=5).evaluate(w, TrialContext(seed=7)).losses != same[0]
    assert land.evaluate(w).losses != land.evaluate(w).losses  # no context: a fresh draw each call


def test_noise_sd_is_the_sd_of_the_mean_loss():
    land = landscape("seedlike", noise_sd=0.017)
    w = [0.2] * 5
    noisy = np.array([list(land.evaluate(w, TrialContext(seed=s)).losses.values()) for s in range(2000)])
    errors = noisy - np.array(list(land.true_losses(w).values()))
    assert errors.mean(axis=1).std() == pytest.approx(0.017, rel=0.1)
    corr = np.corrcoef(errors.T)[np.triu_indices(5, 1)]
    assert corr.mean() == pytest.approx(0.5, abs=0.1)


def test_noise_free_evaluation_and_its_cost():
    land = landscape("mixing_law", k=3, sleep_s=0.05)
    ev = land.evaluate({"d0": 0.5, "d1": 0.3, "d2": 0.2})
    assert ev.losses == land.true_losses([0.5, 0.3, 0.2])
    assert ev.cost["seconds"] >= 0.05


def test_mixing_law_exposes_its_parameters():
    land = landscape("mixing_law", k=4, domains=["a", "b", "c", "e"], seed=2)
    assert land.c_.shape == land.k_.shape == (4,) and land.t_.shape == (4, 4)
    assert np.all(np.diag(land.t_) < -1) and np.all(np.abs(land.t_[~np.eye(4, dtype=bool)]) <= 0.8)
    r = np.array([0.1, 0.2, 0.3, 0.4])
    expected = land.c_ + land.k_ * np.exp(land.t_ @ r)
    np.testing.assert_allclose(list(land.true_losses(r).values()), expected)
    assert landscape("mixing_law").domains == tuple(f"d{i}" for i in range(10))


def test_unknown_names_and_parameters_are_refused():
    with pytest.raises(UnknownNameError, match="interaction.*mixing_law.*seedlike.*'nope'"):
        landscape("nope")
    with pytest.raises(ConfigError, match="accepts parameters.*unknown \\['k'\\]"):
        landscape("seedlike", k=5)


@pytest.mark.parametrize("params, match", [
    (dict(name="seedlike", noise_sd=-0.1), "noise_sd must be a finite number >= 0, got -0.1"),
    (dict(name="seedlike", sleep_s=float("inf")), "sleep_s must be a finite number >= 0, got inf"),
    (dict(name="seedlike", seed=-1), "seed must be an integer >= 0, got -1"),
    (dict(name="mixing_law", k=1), "k \\(the number of domains\\) must be an integer >= 2, got 1"),
    (dict(name="interaction", k=3, domains=["a", "b"]), "domains must name k=3 domains.*got 2"),
    (dict(name="interaction", k=2, domains=["a", "a"]), "unique"),
    (dict(name="seedlike", objective="target:wiki"), "only read losses.*\\['wiki'\\]"),
    (dict(name="seedlike", objective="median"), "objective must be one of"),
])
def test_invalid_parameters_say_the_rule_and_the_value(params, match):
    with pytest.raises(ConfigError, match=match):
        landscape(**params)


@pytest.mark.parametrize("weights", [[0.5, 0.5, 0.5, 0.0, 0.0], [1.2, -0.2, 0, 0, 0], [0.5, 0.5], {"books": 1.0}])
def test_weights_off_the_simplex_are_refused(weights):
    land = landscape("seedlike")
    with pytest.raises(InvalidWeightsError):
        land.evaluate(weights)
    with pytest.raises(InvalidWeightsError):
        land.true_value(weights)


def test_get_evaluator_builds_a_landscape_that_rebuilds_from_its_params():
    ev = get_evaluator("landscape", name="seedlike", noise_sd=0.017, seed=0)
    assert isinstance(ev, Landscape) and ev.name == "landscape"
    assert set(ev.optimum) == set(SEEDLIKE) and sum(ev.optimum.values()) == pytest.approx(1.0)
    assert ev.true_value(ev.optimum) == pytest.approx(ev.optimal_value)
    assert ev.true_value([0.2] * 5, "worst") == max(ev.true_losses([0.2] * 5).values())
    assert ev.get_params() == {"name": "seedlike", "seed": 0, "noise_sd": 0.017, "sleep_s": 0.0, "objective": "mean"}
    law = get_evaluator("landscape", name="mixing_law", k=4, seed=9)
    again = get_evaluator("landscape", **law.get_params())
    np.testing.assert_array_equal(again.t_, law.t_)
    assert again.domains == law.domains
