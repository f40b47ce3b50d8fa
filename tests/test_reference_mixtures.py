"""The Pile's and DoReMi's published mixtures as fixed baselines ("pile", "doremi")."""

import logging

import numpy as np
import pytest

import bomix
from baselines.fixed import PILE_SUBSETS, REFERENCE_TABLES, DoReMi, Pile
from bomix import testing
from bomix.errors import ConfigError
from bomix.space import MixtureSpace

PILE17 = MixtureSpace(list(PILE_SUBSETS))
PUBLISHED = {  # as printed in sail-sg/regmix mixture_config/config_1b/{human,doremi}.yaml
    "pile": {"arxiv": .1052, "freelaw": .0386, "nih_exporter": .0052, "pubmed_central": .1071, "wikipedia_en": .0919,
             "dm_mathematics": .0198, "github": .0427, "philpapers": .0027, "stackexchange": .0929,
             "enron_emails": .0030, "gutenberg_pg_19": .0199, "pile_cc": .1121, "ubuntu_irc": .0074,
             "europarl": .0043, "hackernews": .0075, "pubmed_abstracts": .0845, "uspto_backgrounds": .0420},
    "doremi": {"arxiv": .0036, "freelaw": .0043, "nih_exporter": .0063, "pubmed_central": .0046,
               "wikipedia_en": .0699, "dm_mathematics": .0018, "github": .0179, "philpapers": .0274,
               "stackexchange": .0153, "enron_emails": .0070, "gutenberg_pg_19": .0072, "pile_cc": .6057,
               "ubuntu_irc": .0093, "europarl": .0062, "hackernews": .0134, "pubmed_abstracts": .0113,
               "uspto_backgrounds": .0036},
}


def empty(space):
    return testing.make_history(space, n_completed=0)


@pytest.mark.parametrize("name", ["pile", "doremi"])
def test_contract(name):
    def make(space, seed):  # every domain mapped onto a Pile subset, round robin
        mapping = {d: PILE_SUBSETS[i % len(PILE_SUBSETS)] for i, d in enumerate(space.domains)}
        return bomix.get_optimizer(name, seed=seed, mapping=mapping)

    testing.check_optimizer(make)


@pytest.mark.parametrize("name", ["pile", "doremi"])
def test_on_the_17_subsets_it_is_the_published_mixture_renormalised(name):
    assert REFERENCE_TABLES[name] == PUBLISHED[name]
    x = bomix.get_optimizer(name).resolve(PILE17)
    total = sum(PUBLISHED[name].values())
    assert total == pytest.approx({"pile": 0.7868, "doremi": 0.8148}[name])
    assert x == pytest.approx({d: v / total for d, v in PUBLISHED[name].items()}, abs=1e-12)
    assert list(x) == list(PILE_SUBSETS) and sum(x.values()) == pytest.approx(1.0, abs=1e-12)


def test_known_values_by_hand():
    assert Pile().resolve(PILE17)["pile_cc"] == pytest.approx(0.1425, abs=1e-4)  # 0.1121 / 0.7868
    assert DoReMi().resolve(PILE17)["pile_cc"] == pytest.approx(0.7434, abs=1e-4)  # 0.6057 / 0.8148
    assert DoReMi().resolve(PILE17)["arxiv"] == pytest.approx(0.0036 / 0.8148, abs=1e-12)


def test_domain_order_of_the_space_is_followed():
    space = MixtureSpace(sorted(PILE_SUBSETS))
    X = Pile().suggest(empty(space), 3)
    assert X.shape == (3, 17) and np.ptp(X, axis=0).max() == 0 and not Pile.proposes_distinct
    assert space.to_mixture(X[0]) == pytest.approx(Pile().resolve(PILE17), abs=1e-12)


def test_domains_that_are_not_the_pile_subsets_are_a_clear_error():
    space = MixtureSpace(["arxiv", "github", "books"])
    with pytest.raises(ConfigError, match=r"doremi without a mapping needs the space's domains to be its 17 sources "
                                          r".*unknown \['books'\], missing \['freelaw', "):
        DoReMi().suggest(empty(space), 1)
    with pytest.raises(ConfigError, match=r"unknown \[\], missing \['uspto_backgrounds'\]"):
        Pile().resolve(MixtureSpace(list(PILE_SUBSETS[:-1])))


def test_a_declared_mapping_carries_it_over_like_llama():
    space = MixtureSpace(["web", "code", "science"])
    mapping = {"web": ["pile_cc", "wikipedia_en"], "code": ["github", "stackexchange"],
               "science": ["arxiv", "pubmed_central"]}
    p = PUBLISHED["pile"]
    web, code = p["pile_cc"] + p["wikipedia_en"], p["github"] + p["stackexchange"]
    sci = p["arxiv"] + p["pubmed_central"]
    total = web + code + sci  # the unmapped subsets are dropped
    assert Pile(mapping=mapping).resolve(space) == pytest.approx(
        {"web": web / total, "code": code / total, "science": sci / total}, abs=1e-12)
    with pytest.raises(ConfigError, match=r"pile mapping must name sources of table 'pile'.*unknown \['CommonCrawl'\]"):
        Pile(mapping={"web": "CommonCrawl"})
    with pytest.raises(ConfigError, match=r"doremi needs every domain mapped .*unmapped: \['science'\]"):
        DoReMi(mapping={"web": "pile_cc", "code": "github"}).resolve(space)


def test_caps_give_the_closest_feasible_mixture():
    space = MixtureSpace(list(PILE_SUBSETS), caps={"pile_cc": 0.5})
    x = DoReMi().resolve(space)
    raw = DoReMi().resolve(PILE17)
    assert x["pile_cc"] == pytest.approx(0.5, abs=1e-9)
    excess = (raw["pile_cc"] - 0.5) / 16  # Euclidean projection: the other 16 share the excess equally
    assert x == pytest.approx({d: 0.5 if d == "pile_cc" else raw[d] + excess for d in PILE_SUBSETS}, abs=1e-9)


def test_logged_once_under_its_own_name(caplog):
    opt = DoReMi()
    with caplog.at_level(logging.INFO, logger="bomix"):
        opt.suggest(empty(PILE17), 2)
        opt.suggest(empty(PILE17), 1)
    assert len(caplog.records) == 1 and caplog.records[0].getMessage().startswith("doremi mixture: arxiv=0.0044")


def test_the_replay_preset_names_the_same_domains(regmix_csvs):
    from bomix.evaluators.replay import ReplayEvaluator

    ratios, metrics = regmix_csvs
    ev = ReplayEvaluator(ratios=ratios, metrics=metrics, preset="regmix")
    assert list(ev.domains) == list(PILE_SUBSETS)
    x = Pile().suggest(empty(MixtureSpace(ev.domains)), 1)[0]
    assert np.isfinite(ev.evaluate(MixtureSpace(ev.domains).to_mixture(x)).losses["pile_cc"])


@pytest.mark.parametrize("params, match", [
    (dict(mapping=["pile_cc"]), r"pile mapping must be a dict \{domain: source\} or None"),
    (dict(mapping={"web": []}), "non-empty list"),
    (dict(split="tokens"), "split must be 'equal'"),
    (dict(default=1.0), r"default must be None or a weight in \[0, 1\), got 1.0"),
])
def test_invalid_parameters_say_the_rule_and_the_value(params, match):
    with pytest.raises(ConfigError, match=match):
        Pile(**params)


def test_params_roundtrip_and_registry():
    params = {"mapping": {"web": "pile_cc"}, "split": "equal", "default": 0.1, "seed": 4}
    for name, cls in (("pile", Pile), ("doremi", DoReMi)):
        opt = bomix.get_optimizer(name, **params)
        assert type(opt) is cls and opt.get_params() == params and cls(**params).get_params() == params
    assert bomix.get_optimizer("pile").get_params() == {"mapping": None, "split": "equal", "default": None, "seed": 0}


# -- the trivial reference rules: the prior, and the domains the objective reads ------------------
def _first(name, space, objective="mean"):
    history = bomix.History(space, bomix.Objective.parse(objective))
    return bomix.get_optimizer(name).suggest(history, 1)[0]


def test_prior_rule_proposes_the_spaces_prior_within_its_caps():
    space = bomix.MixtureSpace(["a", "b", "c"], prior={"a": 6, "b": 3, "c": 1}, caps={"a": 0.5})
    x = _first("prior", space)
    np.testing.assert_allclose(x, space.project([0.6, 0.3, 0.1]))
    assert x[0] == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="needs a space with a prior"):
        _first("prior", bomix.MixtureSpace(["a", "b", "c"]))


def test_focus_rule_weights_the_domains_the_objective_reads():
    space = bomix.MixtureSpace(["a", "b", "c", "d"])
    np.testing.assert_allclose(_first("focus", space, "target:b"), [0, 1, 0, 0], atol=1e-9)
    np.testing.assert_allclose(_first("focus", space, {"kind": "mean", "domains": ["a", "c"]}), [0.5, 0, 0.5, 0], atol=1e-9)
    np.testing.assert_allclose(_first("focus", space, "mean"), space.center, atol=1e-9)
    np.testing.assert_allclose(_first("focus", space, "target:held_out"), space.center)  # no training domain
    # on a pool, the vertex of a one-domain target is nearest the run with the largest weight on it
    from bomix.optimizers.pool import PoolSearch

    pool = np.random.default_rng(0).dirichlet(np.ones(4), 50)
    pick = PoolSearch(bomix.get_optimizer("focus"), pool).suggest(
        bomix.History(space, bomix.Objective.parse("target:c")), 1)[0]
    assert pick.info["pool_row"] == int(np.argmax(pool[:, 2]))
