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


# Published source proportions (baseline-methods.md sections 1.2 and 1.3); each table sums to 1.
LLAMA_TABLES: dict[str, dict[str, float]] = {
    # Touvron et al. 2023, LLaMA-1 Table 1: sampling proportions of the pretraining sources.
    "llama1": {"CommonCrawl": 0.67, "C4": 0.15, "GitHub": 0.045, "Wikipedia": 0.045, "Books": 0.045,
               "ArXiv": 0.025, "StackExchange": 0.02},
    # The Llama 3 Herd of Models 2024, section 3.1.2: approximate token categories of the final mix.
    "llama3": {"general": 0.50, "math": 0.25, "code": 0.17, "multilingual": 0.08},
}


class Llama(Optimizer):
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
    proposes_distinct = False

    def __init__(self, *, mapping: Mapping | None = None, table: str = "llama1", split="equal", default=None,
                 seed: int = 0):
        if table not in LLAMA_TABLES:
            raise ConfigError(f"llama table must be one of {sorted(LLAMA_TABLES)}, got {table!r}")
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"llama needs a mapping {{domain: source}} declared in advance (sources of {table}: "
                              f"{list(LLAMA_TABLES[table])}), got {mapping!r}")
        valid = LLAMA_TABLES[table]
        bad = {d: v for d, v in mapping.items() if not (isinstance(v, str) or (
            isinstance(v, (list, tuple)) and v and all(isinstance(s, str) for s in v)))}
        if bad:
            raise ConfigError(f"llama mapping values must be a source name or a non-empty list of names, got {bad}")
        unknown = sorted({s for v in mapping.values() for s in _sources(v)} - set(valid))
        if unknown:
            raise ConfigError(f"llama mapping must name sources of table {table!r}, {list(valid)}; got unknown "
                              f"{unknown}")
        if not (split == "equal" or isinstance(split, Mapping)):
            raise ConfigError(f"llama split must be 'equal' or {{domain: tokens}}, got {split!r}")
        if default is not None and (isinstance(default, bool) or not isinstance(default, (int, float))
                                    or not 0 <= default < 1):
            raise ConfigError(f"llama default must be None or a weight in [0, 1), got {default!r}")
        self.mapping = mapping
        self.table = table
        self.split = split
        self.default = default
        self.seed = seed
        self._logged: set[tuple[str, ...]] = set()

    def resolve(self, space: MixtureSpace) -> dict[str, float]:
        """The resolved mixture {domain: weight} for `space` (see the class docstring)."""
        shares = LLAMA_TABLES[self.table]
        outside = [d for d in self.mapping if d not in space.domains]
        if outside:
            raise ConfigError(f"llama mapping names domains that are not in the space {list(space.domains)}: "
                              f"{outside}")
        unmapped = [d for d in space.domains if d not in self.mapping]
        if unmapped and self.default is None:
            raise ConfigError(f"llama needs every domain mapped to a source of {self.table} {list(shares)} (or a "
                              f"default weight); unmapped: {unmapped}")
        if len(unmapped) == space.k:
            raise ConfigError(f"llama mapping must map at least one domain of {list(space.domains)}, got "
                              f"{dict(self.mapping)}")
        left = 1.0 - len(unmapped) * (self.default or 0.0)
        if left <= 0:
            raise ConfigError(f"llama default weight times the unmapped domains must be < 1, got "
                              f"{self.default} x {len(unmapped)} for {unmapped}")
        owners: dict[str, list[str]] = {}
        for d in space.domains:
            for s in _sources(self.mapping.get(d, ())):
                owners.setdefault(s, []).append(d)
        raw = dict.fromkeys(space.domains, 0.0)
        for source, domains in owners.items():
            for d, part in zip(domains, self._split(source, domains)):
                raw[d] += shares[source] * part
        total = sum(raw.values())
        x = np.array([raw[d] / total * left if d in self.mapping else self.default for d in space.domains])
        x = space.project(x)
        key = space.domains
        if key not in self._logged:
            self._logged.add(key)
            logging.getLogger("bomix").info("llama (%s) mixture: %s", self.table,
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
            raise ConfigError(f"llama split needs a token count >= 0 (not all 0) for each domain sharing source "
                              f"{source!r} {domains}, got {dict(self.split)}")
        return [t / sum(tokens) for t in tokens]

    def suggest(self, history: History, n: int = 1) -> np.ndarray:
        x = history.space.as_array(self.resolve(history.space))
        return np.tile(x, (n, 1))


def _sources(value) -> list[str]:
    """A mapping value (a source name or a list of them) as a list."""
    return [value] if isinstance(value, str) else list(value)
