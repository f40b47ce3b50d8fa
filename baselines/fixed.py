"""Fixed-weight baselines."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from bomix.errors import ConfigError
from bomix.optimizers.base import History, Optimizer
from bomix.space import MixtureSpace


class Uniform(Optimizer):
    """The uniform mixture 1/k, or the feasible mixture closest to it when floors/caps exclude it.

    Proposes that one mixture every time (n copies for n > 1: a fixed baseline is re-evaluated
    with fresh seeds, not varied).
    """

    name = "uniform"
    proposes_distinct = False

    def __init__(self, *, seed: int = 0):
        self.seed = seed

    def suggest(self, history: History, n: int = 1) -> np.ndarray:
        return np.tile(history.space.center, (n, 1))


class Prior(Optimizer):
    """The space's prior (MixtureSpace.prior: the natural token shares), projected onto the space:
    the "train on the corpus as it is" reference rule. ConfigError when the space has no prior."""

    name = "prior"
    proposes_distinct = False

    def __init__(self, *, seed: int = 0):
        self.seed = seed

    def suggest(self, history: History, n: int = 1) -> np.ndarray:
        space = history.space
        if space.prior is None:
            raise ConfigError("the prior reference rule needs a space with a prior (space.prior = {domain: share}), "
                              f"got none for {list(space.domains)}")
        return np.tile(space.project(space.prior), (n, 1))


class Focus(Optimizer):
    """Equal weight on the training domains the objective reads, none elsewhere (projected onto
    the space): the "train on what you evaluate" reference rule. For a one-domain target
    ("target:pile_cc") it is that domain's vertex, so on a pool of logged runs it picks the run
    with the largest weight on it. Uniform when the objective names no training domain (the
    mean or worst over every loss, task families)."""

    name = "focus"
    proposes_distinct = False

    def __init__(self, *, seed: int = 0):
        self.seed = seed

    def suggest(self, history: History, n: int = 1) -> np.ndarray:
        space, objective = history.space, history.objective
        read = [d for d in space.domains if d in objective.named()]
        if not read:
            return np.tile(space.center, (n, 1))
        x = np.array([1.0 / len(read) if d in read else 0.0 for d in space.domains])
        return np.tile(space.project(x), (n, 1))


# Published source proportions (baseline-methods.md sections 1.2 and 1.3); each table sums to 1.
LLAMA_TABLES: dict[str, dict[str, float]] = {
    # Touvron et al. 2023, LLaMA-1 Table 1: sampling proportions of the pretraining sources.
    "llama1": {"CommonCrawl": 0.67, "C4": 0.15, "GitHub": 0.045, "Wikipedia": 0.045, "Books": 0.045,
               "ArXiv": 0.025, "StackExchange": 0.02},
    # The Llama 3 Herd of Models 2024, section 3.1.2: approximate token categories of the final mix.
    "llama3": {"general": 0.50, "math": 0.25, "code": 0.17, "multilingual": 0.08},
}


# The 17 copyright-clean Pile subsets RegMix trains on, named as the replay evaluator names them
# with preset="regmix", in RegMix's column order.
PILE_SUBSETS = ("arxiv", "freelaw", "nih_exporter", "pubmed_central", "wikipedia_en", "dm_mathematics", "github",
                "philpapers", "stackexchange", "enron_emails", "gutenberg_pg_19", "pile_cc", "ubuntu_irc", "europarl",
                "hackernews", "pubmed_abstracts", "uspto_backgrounds")

# Published mixtures over those subsets, as printed (sail-sg/regmix mixture_config/config_1b/, also
# /work/shared/data/regmix-1m/README.md); they do not sum to 1 and are renormalised when resolved.
REFERENCE_TABLES: dict[str, dict[str, float]] = {
    # The Pile's own human-chosen mixture (human.yaml); the 17 shares sum to 0.7868.
    "pile": dict(zip(PILE_SUBSETS, (0.1052, 0.0386, 0.0052, 0.1071, 0.0919, 0.0198, 0.0427, 0.0027, 0.0929, 0.0030,
                                    0.0199, 0.1121, 0.0074, 0.0043, 0.0075, 0.0845, 0.0420))),
    # DoReMi's mixture as RegMix reports it (doremi.yaml); the 17 shares sum to 0.8148.
    "doremi": dict(zip(PILE_SUBSETS, (0.0036, 0.0043, 0.0063, 0.0046, 0.0699, 0.0018, 0.0179, 0.0274, 0.0153, 0.0070,
                                      0.0072, 0.6057, 0.0093, 0.0062, 0.0134, 0.0113, 0.0036))),
}


class Published(Optimizer):
    """A published mixture over named sources, carried over to the study's domains by a mapping.

    The shared machinery of Llama, Pile and DoReMi (each sets `name` and `TABLES`, {table: {source:
    share}}): mapping, split and default work as the Llama docstring says. The published shares
    are renormalised over the mapped sources, so rounded tables and tables over a subset of the
    sources still give a mixture.
    """

    name = "published"
    proposes_distinct = False
    TABLES: dict[str, dict[str, float]] = {}
    needs_mapping = True  # False: mapping=None means the space's domains are the table's sources

    def __init__(self, *, mapping: Mapping | None = None, table: str = "", split="equal", default=None,
                 seed: int = 0):
        if table not in self.TABLES:
            raise ConfigError(f"{self.name} table must be one of {sorted(self.TABLES)}, got {table!r}")
        valid = self.TABLES[table]
        if self.needs_mapping and not isinstance(mapping, Mapping):
            raise ConfigError(f"{self.name} needs a mapping {{domain: source}} declared in advance (sources of "
                              f"{table}: {list(valid)}), got {mapping!r}")
        if mapping is not None and not isinstance(mapping, Mapping):
            raise ConfigError(f"{self.name} mapping must be a dict {{domain: source}} or None (the space's domains are "
                              f"the sources {list(valid)}), got {mapping!r}")
        bad = {d: v for d, v in (mapping or {}).items() if not (isinstance(v, str) or (
            isinstance(v, (list, tuple)) and v and all(isinstance(s, str) for s in v)))}
        if bad:
            raise ConfigError(f"{self.name} mapping values must be a source name or a non-empty list of names, "
                              f"got {bad}")
        unknown = sorted({s for v in (mapping or {}).values() for s in _sources(v)} - set(valid))
        if unknown:
            raise ConfigError(f"{self.name} mapping must name sources of table {table!r}, {list(valid)}; got unknown "
                              f"{unknown}")
        if not (split == "equal" or isinstance(split, Mapping)):
            raise ConfigError(f"{self.name} split must be 'equal' or {{domain: tokens}}, got {split!r}")
        if default is not None and (isinstance(default, bool) or not isinstance(default, (int, float))
                                    or not 0 <= default < 1):
            raise ConfigError(f"{self.name} default must be None or a weight in [0, 1), got {default!r}")
        self.mapping = mapping
        self.table = table
        self.split = split
        self.default = default
        self.seed = seed
        self._logged: set[tuple[str, ...]] = set()

    def _mapping(self, space: MixtureSpace) -> Mapping:
        """The declared mapping, or {source: source} when none is declared and the space's domains
        are exactly the table's sources (ConfigError naming the difference otherwise)."""
        if self.mapping is not None:
            return self.mapping
        sources = list(self.TABLES[self.table])
        unknown = [d for d in space.domains if d not in sources]
        missing = [s for s in sources if s not in space.domains]
        if unknown or missing:
            raise ConfigError(f"{self.name} without a mapping needs the space's domains to be its {len(sources)} "
                              f"sources {sources}; got unknown {unknown}, missing {missing} (declare mapping="
                              f"{{domain: source}} to carry it over to other domains)")
        return {s: s for s in sources}

    def resolve(self, space: MixtureSpace) -> dict[str, float]:
        """The resolved mixture {domain: weight} for `space` (see the Llama docstring)."""
        shares = self.TABLES[self.table]
        mapping = self._mapping(space)
        outside = [d for d in mapping if d not in space.domains]
        if outside:
            raise ConfigError(f"{self.name} mapping names domains that are not in the space {list(space.domains)}: "
                              f"{outside}")
        unmapped = [d for d in space.domains if d not in mapping]
        if unmapped and self.default is None:
            raise ConfigError(f"{self.name} needs every domain mapped to a source of {self.table} {list(shares)} (or "
                              f"a default weight); unmapped: {unmapped}")
        if len(unmapped) == space.k:
            raise ConfigError(f"{self.name} mapping must map at least one domain of {list(space.domains)}, got "
                              f"{dict(mapping)}")
        left = 1.0 - len(unmapped) * (self.default or 0.0)
        if left <= 0:
            raise ConfigError(f"{self.name} default weight times the unmapped domains must be < 1, got "
                              f"{self.default} x {len(unmapped)} for {unmapped}")
        owners: dict[str, list[str]] = {}
        for d in space.domains:
            for s in _sources(mapping.get(d, ())):
                owners.setdefault(s, []).append(d)
        raw = dict.fromkeys(space.domains, 0.0)
        for source, domains in owners.items():
            for d, part in zip(domains, self._split(source, domains)):
                raw[d] += shares[source] * part
        total = sum(raw.values())
        x = np.array([raw[d] / total * left if d in mapping else self.default for d in space.domains])
        x = space.project(x)
        key = space.domains
        if key not in self._logged:
            self._logged.add(key)
            label = f"{self.name} ({self.table})" if len(self.TABLES) > 1 else self.name
            logging.getLogger("bomix").info("%s mixture: %s", label,
                                            ", ".join(f"{d}={v:.4f}" for d, v in zip(space.domains, x)))
        return space.to_mixture(x)

    def _split(self, source: str, domains: list[str]) -> list[float]:
        """Fractions of `source`'s share for each of `domains` (sum 1)."""
        if len(domains) == 1 or self.split == "equal":
            return [1.0 / len(domains)] * len(domains)
        missing = [d for d in domains if d not in self.split]
        tokens = [self.split.get(d) for d in domains]
        if missing or any(isinstance(t, bool) or not isinstance(t, (int, float)) or t < 0 for t in tokens) \
                or sum(tokens) <= 0:
            raise ConfigError(f"{self.name} split needs a token count >= 0 (not all 0) for each domain sharing "
                              f"source {source!r} {domains}, got {dict(self.split)}")
        return [t / sum(tokens) for t in tokens]

    def suggest(self, history: History, n: int = 1) -> np.ndarray:
        x = history.space.as_array(self.resolve(history.space))
        return np.tile(x, (n, 1))


class Llama(Published):
    """The published LLaMA mixture carried over to the study's domains by a declared mapping.

    mapping: {bomix domain: LLaMA source name, or a list of names}, e.g. {"cc": ["CommonCrawl", "C4"],
        "stack": "GitHub"}. A domain mapped to several sources gets the sum of their shares.
    table: "llama1" (seven LLaMA-1 sources) or "llama3" (general, math, code, multilingual).
    split: how a source mapped to several domains shares out over them: "equal", or
        {domain: available tokens} (needed for every domain of such a source), split in
        proportion to tokens.
    default: the weight each unmapped domain gets (the mapped domains share the rest); None makes
        an unmapped domain a ConfigError, so that no domain is left out by accident.
    seed: unused (the mixture is fixed); kept so every optimizer takes one.

    Resolution (baseline-methods.md 1.2): sources no domain maps to are dropped and the remaining
    shares renormalised over the mapped domains (to 1 - default * #unmapped); then the closest
    feasible mixture (space.project) when floors or caps exclude it. Like Uniform it proposes that
    one mixture every time. The resolved mixture is logged once and is `resolve(space)`.
    """

    name = "llama"
    TABLES = LLAMA_TABLES

    def __init__(self, *, mapping: Mapping | None = None, table: str = "llama1", split="equal", default=None,
                 seed: int = 0):
        super().__init__(mapping=mapping, table=table, split=split, default=default, seed=seed)


class Pile(Published):
    """The Pile's own human-chosen mixture over its 17 copyright-clean subsets (RegMix's
    `mixture_config/config_1b/human.yaml`), renormalised: the published shares of these 17 sum to
    0.787 (the Pile's other 5 subsets are left out) and are rounded to 4 decimals.

    mapping: None (default): the space's domains must be the 17 subsets, named as the replay
        evaluator names them with preset="regmix" (PILE_SUBSETS); a ConfigError names any
        difference. Or {bomix domain: subset or list of subsets}, resolved as Llama's mapping.
    split, default, seed: as Llama. Proposes that one mixture every time.
    """

    name = "pile"
    needs_mapping = False
    TABLES = {"pile": REFERENCE_TABLES["pile"]}

    def __init__(self, *, mapping: Mapping | None = None, split="equal", default=None, seed: int = 0):
        super().__init__(mapping=mapping, table=self.name, split=split, default=default, seed=seed)


class DoReMi(Published):
    """DoReMi's mixture over the 17 Pile subsets as RegMix reports it (`config_1b/doremi.yaml`:
    the 22-domain DoReMi weights of Xie et al. 2023 restricted to these 17, sum 0.815, 4
    decimals), renormalised. Arguments and the default mapping as Pile."""

    name = "doremi"
    needs_mapping = False
    TABLES = {"doremi": REFERENCE_TABLES["doremi"]}

    def __init__(self, *, mapping: Mapping | None = None, split="equal", default=None, seed: int = 0):
        super().__init__(mapping=mapping, table=self.name, split=split, default=default, seed=seed)


def _sources(value) -> list[str]:
    """A mapping value (a source name or a list of them) as a list."""
    return [value] if isinstance(value, str) else list(value)
