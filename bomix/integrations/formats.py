"""A bomix mixture in each trainer's own form.

    format      what is written                                             the trainer reads it with
    olmo-core   YAML of SourceMixtureDatasetConfig (source_list.sources:    SourceMixtureDatasetConfig.from_yaml
                source_name, target_ratio, paths, max_repetition_ratio,     (SourceMixtureList.from_yaml when
                max_source_fraction; requested_tokens, global_batch_size,   [olmo-core] gives no requested_tokens
                seed)                                                       and global_batch_size)
    torchtitan  JSON {"sources": [{dataset, dataset_path, weight}], seed}   InterleavedHuggingFaceTextDataLoader
                                                                            .Config(sources=[HFDataSource(**s)])
    megatron    "W1 PREFIX1 W2 PREFIX2 ..." on one line                     --data-args-path FILE, or
                                                                            --data-path $(cat FILE)
    litgpt      JSON {"datasets": [{name, input_dir}], "weights", "seed"}   CombinedStreamingDataset in a
                                                                            DataModule
    levanter    YAML data: {configs: {name: {train_urls}}, train_weights}   merged into the run's YAML
    gpt-neox    YAML train-data-paths + train-data-weights                  an extra config file for deepy.py
    json, yaml  {source name: weight}                                       anything

Every trainer format needs a mapping (bomix.integrations.mapping) from domains to data. Rules,
each checked before anything is written (ConfigError / InvalidWeightsError naming the rule and
the value): the mixture's weights are finite, >= 0 and sum to 1 (within 1e-6: torchtitan,
Megatron, litdata, Levanter and GPT-NeoX would silently renormalise another sum into a different
mixture, OLMo-core would refuse it); the mapping names exactly the mixture's domains; every path
exists. Megatron and GPT-NeoX take weights per prefix: a domain with several prefixes has its
weight split in proportion to their token counts (read from their .idx files), so each prefix is
sampled at its natural rate within the domain; a domain at weight 0 is left out (Megatron builds a
dataset for every prefix listed). Finally the written text is read back the way the trainer
reads it (its normalisation included) and must give every domain its weight to 1e-9 relative.
Weights are written with Python's repr, which round-trips a float exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from bomix.errors import ConfigError, InvalidWeightsError
from bomix.integrations.mapping import DataMapping, load_mapping

FORMATS = ("olmo-core", "torchtitan", "megatron", "litgpt", "levanter", "gpt-neox", "json", "yaml")
SUFFIXES = {"olmo-core": ".yaml", "torchtitan": ".json", "megatron": ".txt", "litgpt": ".json", "levanter": ".yaml",
            "gpt-neox": ".yaml", "json": ".json", "yaml": ".yaml"}
SUM_ATOL = 1e-6   # how far from 1 a mixture's weights may sum
READ_RTOL = 1e-9  # how far the trainer's share may be from the weight, relative to the largest weight
OLMO_RTOL, OLMO_ATOL = 1e-5, 1e-8  # OLMo-core's np.allclose(sum of target_ratio, 1.0)


def check_mixture(weights) -> dict[str, float]:
    """{domain: weight} as floats, or InvalidWeightsError: numbers, finite, >= 0, summing to 1."""
    if not isinstance(weights, Mapping) or not weights:
        raise InvalidWeightsError(f"a mixture must be a non-empty table {{domain: weight}}, got {weights!r}")
    bad = {d: w for d, w in weights.items()
           if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0}
    if bad:
        raise InvalidWeightsError(f"weights must be finite numbers >= 0, got {bad}")
    out = {str(d): float(w) for d, w in weights.items()}
    total = math.fsum(out.values())
    if abs(total - 1) > SUM_ATOL:
        raise InvalidWeightsError(f"weights must sum to 1 (trainers that renormalise would train another mixture), "
                                  f"got {total:.6g} for {list(out)}")
    return out


def _dump_yaml(data) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=1000)


def _load_yaml(text: str):
    import yaml

    return yaml.safe_load(text)


def _split_by_tokens(domain: str, weight: float, prefixes: list[str], origin: str) -> list[tuple[float, str]]:
    """(weight, prefix) pairs sharing `weight` in proportion to each prefix's tokens."""
    from bomix.integrations.tokens import megatron_tokens

    if len(prefixes) == 1:
        return [(weight, prefixes[0])]
    if any("://" in p for p in prefixes):
        raise ConfigError(f"{origin} domain {domain!r}: several prefixes share a weight by their token counts, "
                          f"read from local .idx files, but {prefixes} include a URL (give one prefix)")
    tokens = [megatron_tokens(p) for p in prefixes]
    if sum(tokens) == 0:
        raise ConfigError(f"{origin} domain {domain!r}: its prefixes must hold tokens to share weight {weight!r}, "
                          f"got 0 tokens in {prefixes}")
    return [(weight * t / sum(tokens), p) for t, p in zip(tokens, prefixes) if t > 0]


# -- writers: (weights, mapping) -> text ------------------------------------------------------

def _olmo_core(weights, mapping: DataMapping) -> str:
    sources = []
    for d, w in weights.items():
        s = mapping.sources[d]
        opt = {k: s.options.get(k, mapping.option("olmo-core", k, 1.0))
               for k in ("max_repetition_ratio", "max_source_fraction")}
        sources.append({"source_name": s.name, "target_ratio": w, "paths": mapping.paths(d, "olmo-core"), **opt})
    keys = ("requested_tokens", "global_batch_size")
    given = [k for k in keys if mapping.option("olmo-core", k) is not None]
    if len(given) == 1:
        raise ConfigError(f"{mapping.origin} [olmo-core] must give both {list(keys)} (a full "
                          f"SourceMixtureDatasetConfig) or neither (a SourceMixtureList), got only {given}")
    if not given:
        return _dump_yaml({"sources": sources})
    out = {"source_list": {"sources": sources}, **{k: mapping.option("olmo-core", k) for k in keys}}
    out["seed"] = mapping.option("olmo-core", "seed", 42)
    return _dump_yaml(out)


def _torchtitan(weights, mapping: DataMapping) -> str:
    sources = [{"dataset": mapping.sources[d].name, "dataset_path": mapping.paths(d, "torchtitan")[0], "weight": w}
               for d, w in weights.items()]
    out = {"sources": sources, "seed": mapping.option("torchtitan", "seed", 42)}
    if mapping.option("torchtitan", "stopping_strategy"):
        out["stopping_strategy"] = mapping.option("torchtitan", "stopping_strategy")
    return json.dumps(out, indent=2) + "\n"


def _prefix_pairs(weights, mapping: DataMapping, fmt: str) -> list[tuple[float, str]]:
    pairs = []
    for d, w in weights.items():
        prefixes = mapping.paths(d, fmt)  # checks them even when the weight is 0
        if w > 0:
            pairs.extend(_split_by_tokens(d, w, prefixes, mapping.origin))
    return pairs


def _megatron(weights, mapping: DataMapping) -> str:
    pairs = _prefix_pairs(weights, mapping, "megatron")
    bad = [p for _, p in pairs if any(c.isspace() for c in p)]
    if bad:
        raise ConfigError(f"Megatron splits --data-path on whitespace, so prefixes must not contain any, got {bad}")
    return " ".join(f"{w!r} {p}" for w, p in pairs) + "\n"


def _gpt_neox(weights, mapping: DataMapping) -> str:
    pairs = _prefix_pairs(weights, mapping, "gpt-neox")
    return _dump_yaml({"train-data-paths": [p for _, p in pairs], "train-data-weights": [w for w, _ in pairs]})


def _litgpt(weights, mapping: DataMapping) -> str:
    datasets = [{"name": mapping.sources[d].name, "input_dir": mapping.paths(d, "litgpt")[0]} for d in weights]
    out = {"datasets": datasets, "weights": list(weights.values()), "seed": mapping.option("litgpt", "seed", 42)}
    return json.dumps(out, indent=2) + "\n"


def _levanter(weights, mapping: DataMapping) -> str:
    configs = {mapping.sources[d].name: {"train_urls": mapping.paths(d, "levanter")} for d in weights}
    return _dump_yaml({"data": {"configs": configs,
                                "train_weights": {mapping.sources[d].name: w for d, w in weights.items()}}})


def _names(weights, mapping: DataMapping | None) -> dict[str, float]:
    return {(mapping.sources[d].name if mapping else d): w for d, w in weights.items()}


WRITERS = {"olmo-core": _olmo_core, "torchtitan": _torchtitan, "megatron": _megatron, "litgpt": _litgpt,
           "levanter": _levanter, "gpt-neox": _gpt_neox,
           "json": lambda w, m: json.dumps(_names(w, m), indent=2) + "\n",
           "yaml": lambda w, m: _dump_yaml(_names(w, m))}


# -- readers: text -> {source or prefix: share the trainer samples}, its normalisation applied ----

def _normalised(pairs) -> dict[str, float]:
    total = math.fsum(w for _, w in pairs)
    out: dict[str, float] = {}
    for key, w in pairs:
        out[key] = out.get(key, 0.0) + w / total
    return out


def _read_olmo_core(text: str) -> dict[str, float]:
    data = _load_yaml(text)
    sources = data["source_list"]["sources"] if "source_list" in data else data["sources"]
    ratios = {s["source_name"]: float(s["target_ratio"]) for s in sources}
    total = math.fsum(ratios.values())
    if not math.isclose(total, 1.0, rel_tol=OLMO_RTOL, abs_tol=OLMO_ATOL):  # OLMo-core does not renormalise
        raise InvalidWeightsError(f"OLMo-core's target_ratio values must sum to 1 (it does not renormalise), got "
                                  f"{total!r}")
    return ratios


def _read_megatron(text: str) -> dict[str, float]:
    words = text.split()
    return _normalised([(words[i + 1], float(words[i])) for i in range(0, len(words), 2)])


def _read_gpt_neox(text: str) -> dict[str, float]:
    data = _load_yaml(text)
    return _normalised(list(zip(data["train-data-paths"], map(float, data["train-data-weights"]))))


READERS = {
    "olmo-core": _read_olmo_core,
    "torchtitan": lambda t: _normalised([(s["dataset"], s["weight"]) for s in json.loads(t)["sources"]]),
    "megatron": _read_megatron,
    "litgpt": lambda t: _normalised([(d["name"], w) for d, w in zip(json.loads(t)["datasets"],
                                                                     json.loads(t)["weights"])]),
    "levanter": lambda t: _normalised(list(_load_yaml(t)["data"]["train_weights"].items())),
    "gpt-neox": _read_gpt_neox,
    "json": lambda t: dict(json.loads(t)),
    "yaml": lambda t: dict(_load_yaml(t)),
}


def _shares_by_domain(fmt: str, text: str, weights, mapping: DataMapping | None) -> dict[str, float]:
    """What the trainer will sample per domain, from the written text."""
    shares = READERS[fmt](text)
    if fmt in ("megatron", "gpt-neox"):
        owner = {}
        for d in weights:
            for p in mapping.sources[d].paths:
                owner[p.removesuffix(".bin").removesuffix(".idx")] = d
        by_domain = {d: 0.0 for d in weights}
        for prefix, share in shares.items():
            by_domain[owner[prefix]] += share
        return by_domain
    if mapping is None:
        return shares
    name_of = {d: mapping.sources[d].name for d in weights}
    return {d: shares.get(name_of[d], 0.0) for d in weights}


def render(weights, fmt: str, mapping=None) -> str:
    """The mixture {domain: weight} as text in format `fmt` (see the module docstring).
    mapping: a mapping file path, dict or DataMapping; required by every trainer format."""
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {list(FORMATS)}, got {fmt!r}")
    weights = check_mixture(weights)
    if mapping is None and fmt not in ("json", "yaml"):
        raise ConfigError(f"format {fmt!r} needs a mapping from domains to data (--mapping FILE; see "
                          "experiments/integrations/README.md)")
    if mapping is not None:
        mapping = load_mapping(mapping)
        mapping.check_domains(weights)
    text = WRITERS[fmt](weights, mapping)
    shares = _shares_by_domain(fmt, text, weights, mapping)
    top = max(weights.values())
    off = {d: (w, shares.get(d, 0.0)) for d, w in weights.items() if abs(shares.get(d, 0.0) - w) > READ_RTOL * top}
    if off:
        raise InvalidWeightsError(f"{fmt} must sample each domain at its weight after its own normalisation, got "
                                  f"(weight, sampled share) {off}")
    return text


def write_mixture(weights, fmt: str, path, mapping=None) -> str:
    """render() to a file, atomically (nothing is written when a rule is broken); returns the text."""
    from bomix.integrations.space_config import write_text_atomic

    text = render(weights, fmt, mapping)
    write_text_atomic(path, text)
    return text
