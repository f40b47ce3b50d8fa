import numpy as np
import pytest

import bomix
from bomix import testing
from bomix.errors import ConfigError, UnknownNameError
from bomix.optimizers import OPTIMIZERS


LLAMA_SOURCES = ["CommonCrawl", "C4", "GitHub", "Wikipedia", "Books", "ArXiv", "StackExchange"]


def contract_params(name, space):
    """What each registered optimizer needs besides its seed to run the contract on `space`
    (the "prior" rule reads the space's prior: the contract spaces have none, see below)."""
    if name == "fixed":
        return {"weights": space.center.tolist()}
    if name == "llama":  # every domain mapped onto a LLaMA-1 source, round robin
        return {"mapping": {d: LLAMA_SOURCES[i % len(LLAMA_SOURCES)] for i, d in enumerate(space.domains)}}
    if name in ("pile", "doremi"):  # every domain mapped onto a Pile subset, round robin
        from baselines.fixed import PILE_SUBSETS

        return {"mapping": {d: PILE_SUBSETS[i % len(PILE_SUBSETS)] for i, d in enumerate(space.domains)}}
    if name == "regmix":
        return {"n_simulations": 2000}
    return {}


def factory(name):
    def make(space, seed):
        return bomix.get_optimizer(name, seed=seed, **contract_params(name, space))

    return make


SLOW = {"ax_default"}  # rebuilds an Ax Client and fits Ax's default model on every call


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in sorted(OPTIMIZERS)])
@pytest.mark.parametrize("check", testing.CHECKS, ids=lambda c: c.__name__)
def test_contract(name, check):
    check(factory(name))


def test_contract_catches_an_optimizer_off_the_simplex():
    class Broken(bomix.Optimizer):
        def __init__(self, *, seed=0):
            self.seed = seed

        def suggest(self, history, n=1):
            return np.full((n, history.space.k), 0.5)

    with pytest.raises(bomix.errors.InvalidWeightsError):
        testing.check_on_simplex(lambda space, seed: Broken(seed=seed))


def test_contract_catches_nondeterminism():
    class Noisy(bomix.Optimizer):
        def __init__(self, *, seed=0):
            self.seed = seed

        def suggest(self, history, n=1):
            return history.space.sample(n, seed=np.random.randint(1 << 30))

    with pytest.raises(AssertionError, match="different"):
        testing.check_deterministic(lambda space, seed: Noisy(seed=seed))


def test_contract_catches_a_score_that_is_not_one_number_per_candidate():
    class Lopsided(bomix.Optimizer):
        def __init__(self, *, seed=0):
            self.seed = seed

        def suggest(self, history, n=1):
            return history.space.sample(n, method="sobol", seed=self.seed, skip=len(history.trials))

        def score(self, history, X):
            return np.zeros(1)

    with pytest.raises(AssertionError, match="one number per candidate"):
        testing.check_pool_search(lambda space, seed: Lopsided(seed=seed))


def test_sobol_continues_its_sequence_from_history():
    space = testing.contract_spaces()[1]
    opt = bomix.get_optimizer("sobol", seed=1)
    empty = testing.make_history(space, n_completed=0)
    first8 = np.array([p.weights for p in opt.suggest(empty, 8)])
    assert all(p.design for p in opt.suggest(empty, 2))  # Sobol points are design points
    # A history holding the first 5 Sobol trials (say, before a crash): the next 3 continue the sequence.
    trials = tuple(bomix.Trial(i, space.to_mixture(x), proposed_by="sobol",
                               state=bomix.TrialState.COMPLETED, losses=testing.toy_losses(space, x))
                   for i, x in enumerate(first8[:5]))
    history = bomix.History(space, bomix.Objective("mean"), trials)
    np.testing.assert_allclose([p.weights for p in opt.suggest(history, 3)], first8[5:], atol=1e-12)


def test_uniform_is_the_closest_feasible_point_to_one_over_k():
    space = bomix.MixtureSpace(["a", "b", "c", "d"], caps={"a": 0.1})
    x = bomix.get_optimizer("uniform").suggest(testing.make_history(space, n_completed=0), 1)[0]
    np.testing.assert_allclose(x, [0.1, 0.3, 0.3, 0.3], atol=1e-9)


def test_unknown_optimizer_lists_valid_names():
    with pytest.raises(UnknownNameError, match="sobol"):
        bomix.get_optimizer("sobolx")


def test_unknown_optimizer_parameter_is_refused():
    with pytest.raises(ConfigError, match="accepts parameters"):
        bomix.get_optimizer("sobol", seeds=3)


def test_fixed_rejects_weights_off_the_simplex(space5):
    opt = bomix.get_optimizer("fixed", weights=[0.5, 0.5, 0.5, 0, 0])
    with pytest.raises(bomix.errors.InvalidWeightsError, match="sum to 1"):
        opt.suggest(testing.make_history(space5, n_completed=0), 1)
