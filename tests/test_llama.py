import itertools
import logging

import numpy as np
import pytest

import bomix
from baselines.fixed import LLAMA_TABLES, Llama
from bomix import testing
from bomix.config import load_config
from bomix.errors import ConfigError
from bomix.space import MixtureSpace

SEED5 = ["books", "cc", "stack", "pes2o", "reddit"]
SEED_MAPPING = {"books": "Books", "cc": ["CommonCrawl", "C4"], "stack": "GitHub", "pes2o": "ArXiv",
                "reddit": "StackExchange"}


def empty(space):
    return testing.make_history(space, n_completed=0)


def test_contract():
    sources = list(LLAMA_TABLES["llama1"])

    def make(space, seed):  # every domain mapped, several sharing a source in the 12-domain space
        return bomix.get_optimizer("llama", seed=seed, mapping=dict(zip(space.domains, itertools.cycle(sources))))

    testing.check_optimizer(make)


def test_seed_mapping_by_hand():
    x = Llama(mapping=SEED_MAPPING).resolve(MixtureSpace(SEED5))
    total = 0.045 + (0.67 + 0.15) + 0.045 + 0.025 + 0.02  # Wikipedia (0.045) has no domain: dropped
    assert total == pytest.approx(0.955)
    expected = {"books": 0.045 / total, "cc": 0.82 / total, "stack": 0.045 / total, "pes2o": 0.025 / total,
                "reddit": 0.02 / total}
    assert x == pytest.approx(expected, abs=1e-12)
    assert x["cc"] == pytest.approx(0.8586, abs=1e-4) and x["books"] == pytest.approx(0.0471, abs=1e-4)


def test_the_seed_config_resolves_to_the_same_mixture(repo_root):
    config = load_config(repo_root / "experiments" / "configs" / "llama_seed5.toml")
    opt = bomix.get_optimizer(config.optimizer.name, seed=config.study.seed, **config.optimizer.params)
    space = config.space.build()
    assert opt.resolve(space) == Llama(mapping=SEED_MAPPING).resolve(space)
    assert config.evaluator.params["name"] == "seedlike" and config.study.n_trials == 4


def test_suggests_n_copies_of_one_mixture_and_logs_it_once(caplog):
    space = MixtureSpace(SEED5)
    opt = Llama(mapping=SEED_MAPPING)
    with caplog.at_level(logging.INFO, logger="bomix"):
        X = opt.suggest(empty(space), 3)
        opt.suggest(empty(space), 1)
    assert X.shape == (3, 5) and np.ptp(X, axis=0).max() == 0 and not opt.proposes_distinct
    assert [r.getMessage() for r in caplog.records] == [
        "llama (llama1) mixture: books=0.0471, cc=0.8586, stack=0.0471, pes2o=0.0262, reddit=0.0209"]


def test_unmapped_domains_are_an_error_naming_them_and_the_sources():
    with pytest.raises(ConfigError, match="unmapped: \\['pes2o', 'reddit'\\]") as e:
        Llama(mapping={"books": "Books", "cc": "CommonCrawl", "stack": "GitHub"}).resolve(MixtureSpace(SEED5))
    assert "'CommonCrawl', 'C4', 'GitHub', 'Wikipedia', 'Books', 'ArXiv', 'StackExchange'" in str(e.value)
    with pytest.raises(ConfigError, match="declared in advance"):
        bomix.get_optimizer("llama")


def test_default_weight_for_unmapped_domains():
    x = Llama(mapping={"cc": "CommonCrawl", "stack": "GitHub"}, default=0.05).resolve(MixtureSpace(SEED5))
    left = 1 - 3 * 0.05
    assert x == pytest.approx({"books": 0.05, "cc": 0.67 / 0.715 * left, "stack": 0.045 / 0.715 * left,
                               "pes2o": 0.05, "reddit": 0.05}, abs=1e-12)
    with pytest.raises(ConfigError, match="default weight times the unmapped domains must be < 1"):
        Llama(mapping={"cc": "CommonCrawl"}, default=0.3).resolve(MixtureSpace(SEED5))


def test_caps_give_the_closest_feasible_mixture():
    space = MixtureSpace(SEED5, caps={"cc": 0.5})
    x = Llama(mapping=SEED_MAPPING).resolve(space)
    raw = Llama(mapping=SEED_MAPPING).resolve(MixtureSpace(SEED5))
    # Euclidean projection: cc drops to its cap, the excess is shared equally by the other four
    excess = (raw["cc"] - 0.5) / 4
    assert x == pytest.approx({d: 0.5 if d == "cc" else raw[d] + excess for d in SEED5}, abs=1e-9)


def test_a_source_shared_by_domains_splits_equally_or_by_tokens():
    space = MixtureSpace(["web_a", "web_b", "code"])
    mapping = {"web_a": "CommonCrawl", "web_b": "CommonCrawl", "code": "GitHub"}
    total = 0.67 + 0.045
    assert Llama(mapping=mapping).resolve(space) == pytest.approx(
        {"web_a": 0.335 / total, "web_b": 0.335 / total, "code": 0.045 / total}, abs=1e-12)
    by_tokens = Llama(mapping=mapping, split={"web_a": 3e9, "web_b": 1e9}).resolve(space)
    assert by_tokens == pytest.approx({"web_a": 0.5025 / total, "web_b": 0.1675 / total, "code": 0.045 / total},
                                      abs=1e-12)
    with pytest.raises(ConfigError, match="token count.*CommonCrawl"):
        Llama(mapping=mapping, split={"web_a": 3e9}).resolve(space)


def test_llama3_categories():
    space = MixtureSpace(["web", "math", "code"])
    x = Llama(table="llama3", mapping={"web": "general", "math": "math", "code": "code"}).resolve(space)
    assert x == pytest.approx({"web": 0.50 / 0.92, "math": 0.25 / 0.92, "code": 0.17 / 0.92}, abs=1e-12)


@pytest.mark.parametrize("params, match", [
    (dict(mapping={"cc": "Common Crawl"}), "sources of table 'llama1'.*unknown \\['Common Crawl'\\]"),
    (dict(mapping={"cc": "general"}), "unknown \\['general'\\]"),
    (dict(mapping={"cc": "CommonCrawl"}, table="llama2"), "table must be one of \\['llama1', 'llama3'\\]"),
    (dict(mapping={"cc": []}), "non-empty list"),
    (dict(mapping={"cc": "CommonCrawl"}, split="tokens"), "split must be 'equal'"),
    (dict(mapping={"cc": "CommonCrawl"}, default=1.5), "default must be None or a weight in \\[0, 1\\)"),
])
def test_invalid_parameters_say_the_rule_and_the_value(params, match):
    with pytest.raises(ConfigError, match=match):
        Llama(**params)


def test_mapping_of_a_domain_outside_the_space_is_refused():
    with pytest.raises(ConfigError, match="not in the space.*\\['wiki'\\]"):
        Llama(mapping={**SEED_MAPPING, "wiki": "Wikipedia"}).resolve(MixtureSpace(SEED5))
