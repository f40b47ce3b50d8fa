import math

import numpy as np
import pytest

from bomix import MixtureSpace
from bomix.errors import InvalidSpaceError, InvalidWeightsError

DOMAINS = ["books", "cc", "stack", "pes2o", "reddit"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(domains=[]), "at least 2 domains"),
    (dict(domains=["a"]), "at least 2 domains"),
    (dict(domains=["a", "a", "b"]), "unique.*'a'"),
    (dict(domains=["a", ""]), "non-empty strings"),
    (dict(domains=["a", "b"], floors=[0.6, 0.6]), "floors must sum to at most 1, got 1.2"),
    (dict(domains=["a", "b", "c"], caps=[0.3, 0.3, 0.3]), "caps must sum to at least 1.*0.9"),
    (dict(domains=["a", "b"], floors={"a": 0.5}, caps={"a": 0.2}), "floor must be <= its cap.*'a'"),
    (dict(domains=["a", "b"], floors=[float("nan"), 0]), "floors must be finite.*nan"),
    (dict(domains=["a", "b"], caps=[-0.1, 1]), "caps must be >= 0.*-0.1"),
    (dict(domains=["a", "b"], caps={"c": 0.5}), "unknown domains \\['c'\\]"),
    (dict(domains=["a", "b"], floors=[0.1, 0.1, 0.1]), "one value per domain \\(2\\), got 3"),
])
def test_invalid_spaces_say_the_rule_and_the_value(kwargs, match):
    with pytest.raises(InvalidSpaceError, match=match):
        MixtureSpace(kwargs.pop("domains"), **kwargs)


@pytest.mark.parametrize("weights, match", [
    ([0.2, 0.2, 0.2, 0.2, 0.1], "sum to 1, got 0.9"),
    ([0.5, 0.5, 0.2, -0.2, 0.0], ">= 0"),
    ([0.2, 0.2, 0.2, 0.2, float("nan")], "finite"),
    ([0.25, 0.25, 0.25, 0.25], "one value per domain"),
    ({"books": 0.5, "cc": 0.5, "code": 0.0, "stack": 0, "pes2o": 0}, "unknown domains \\['code'\\]"),
    ({"books": 0.5, "cc": 0.5}, "missing \\['stack', 'pes2o', 'reddit'\\]"),
    (["a", "b", "c", "d", "e"], "must be numbers"),
])
def test_invalid_weights_say_the_rule_and_the_value(weights, match):
    with pytest.raises(InvalidWeightsError, match=match):
        MixtureSpace(DOMAINS).validate(weights)


def test_floors_and_caps_are_enforced_by_validate():
    space = MixtureSpace(DOMAINS, floors={"pes2o": 0.05}, caps={"cc": 0.3})
    with pytest.raises(InvalidWeightsError, match="below floors"):
        space.validate([0.3, 0.3, 0.3, 0.0, 0.1])
    with pytest.raises(InvalidWeightsError, match="above caps"):
        space.validate([0.1, 0.5, 0.2, 0.1, 0.1])
    assert space.contains([0.2, 0.3, 0.2, 0.1, 0.2])


def test_from_tokens_turns_availability_into_caps():
    space = MixtureSpace.from_tokens({"a": 1e8, "b": 5e8, "c": 4e9}, target_tokens=1e9, repetition_factor=4)
    np.testing.assert_allclose(space.caps, [0.4, 1.0, 1.0])
    with pytest.raises(InvalidSpaceError, match="caps must sum to at least 1"):
        MixtureSpace.from_tokens({"a": 1e8, "b": 1e8}, target_tokens=1e9)
    with pytest.raises(InvalidSpaceError, match="target_tokens must be a positive number"):
        MixtureSpace.from_tokens({"a": 1e8, "b": 1e8}, target_tokens=0)


def test_clean_snaps_tiny_errors_and_refuses_large_ones():
    space = MixtureSpace(["a", "b", "c"])
    x = space.clean([0.5 + 1e-9, 0.5, -1e-10])
    assert x.min() >= 0 and x.sum() == pytest.approx(1, abs=1e-15)
    with pytest.raises(InvalidWeightsError):
        space.clean([0.5, 0.5, 0.01])


def test_project_and_center_respect_bounds():
    space = MixtureSpace(["a", "b", "c", "d"], floors={"d": 0.4}, caps={"a": 0.05})
    c = space.center
    np.testing.assert_allclose(c, [0.05, 0.275, 0.275, 0.4], atol=1e-9)
    p = space.project([3.0, -1.0, 0.2, 0.0])
    space.validate(p)


def test_roundtrip_dict():
    space = MixtureSpace(DOMAINS, floors=0.01, caps={"cc": 0.6})
    assert MixtureSpace.from_dict(space.to_dict()) == space


@pytest.mark.parametrize("method", ["random", "sobol"])
@pytest.mark.parametrize("k", [2, 5, 17, 64])
def test_samples_are_feasible_for_many_k(method, k):
    rng = np.random.default_rng(k)
    caps = np.minimum(1.0, rng.uniform(0.5, 3.0, k) / k)
    caps[0] = 0.2 / k  # one tight cap
    caps[-1] = max(caps[-1], 1.2 - caps[:-1].sum())  # keep the caps summing above 1
    floors = np.where(np.arange(k) == 1, 0.1 / k, 0.0)
    space = MixtureSpace([f"d{i}" for i in range(k)], floors=floors, caps=caps)
    X = space.sample(256, method=method, seed=3)
    assert X.shape == (256, k)
    for row in X:
        space.validate(row, atol=1e-9)
    assert len({tuple(np.round(r, 12)) for r in X}) == 256


def test_sampling_is_uniform_on_the_capped_simplex():
    """Means and quantiles match rejection sampling from the flat Dirichlet (exactly uniform)."""
    space = MixtureSpace(["a", "b", "c", "d"], caps=[0.3, 0.5, 1, 1])
    X = space.sample(40_000, method="random", seed=1)
    D = np.random.default_rng(0).dirichlet(np.ones(4), 400_000)
    D = D[(D[:, 0] <= 0.3) & (D[:, 1] <= 0.5)]
    np.testing.assert_allclose(X.mean(0), D.mean(0), atol=0.004)
    np.testing.assert_allclose(np.quantile(X, [0.1, 0.5, 0.9], axis=0), np.quantile(D, [0.1, 0.5, 0.9], axis=0),
                               atol=0.01)


def test_uncapped_sampling_matches_dirichlet_marginals():
    k = 10
    X = MixtureSpace([f"d{i}" for i in range(k)]).sample(20_000, method="random", seed=2)
    # each coordinate of a flat Dirichlet is Beta(1, k - 1): mean 1/k, P(x > 0.25) = 0.75^(k-1)
    np.testing.assert_allclose(X.mean(0), 1 / k, atol=0.003)
    np.testing.assert_allclose((X > 0.25).mean(0), 0.75 ** (k - 1), atol=0.01)


def test_sobol_is_more_even_than_random():
    """Low discrepancy survives the map: Sobol estimates a smooth integral with less error."""
    space = MixtureSpace(["a", "b", "c"], caps=[0.6, 0.6, 0.6])
    f = lambda X: np.sin(3 * X[:, 0]) + X[:, 1] ** 2  # noqa: E731
    truth = f(space.sample(400_000, method="random", seed=99)).mean()
    err_sobol = [abs(f(space.sample(256, method="sobol", seed=s)).mean() - truth) for s in range(20)]
    err_random = [abs(f(space.sample(256, method="random", seed=s)).mean() - truth) for s in range(20)]
    assert np.mean(err_sobol) < 0.6 * np.mean(err_random)


def test_sobol_skip_continues_the_sequence():
    space = MixtureSpace(DOMAINS, caps={"cc": 0.4})
    whole = space.sample(12, method="sobol", seed=7)
    parts = np.vstack([space.sample(5, method="sobol", seed=7), space.sample(7, method="sobol", seed=7, skip=5)])
    np.testing.assert_allclose(whole, parts, atol=1e-12)


def test_fixed_domains_floor_equals_cap():
    space = MixtureSpace(["a", "b", "c"], floors={"a": 0.25}, caps={"a": 0.25})
    X = space.sample(50, method="sobol")
    np.testing.assert_allclose(X[:, 0], 0.25)
    assert all(math.isclose(r.sum(), 1.0) for r in X)
