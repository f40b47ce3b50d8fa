"""bomix's mixtures in the trainers people use, and token counts from their data files.

    from bomix.integrations import render, write_mixture, mixture_from, count_tokens
    weights, what = mixture_from("runs/my-study")                     # the recommended mixture
    print(render(weights, "megatron", mapping="data.toml"))            # "0.31 /data/books 0.69 /data/cc"
    write_mixture(weights, "olmo-core", "mix.yaml", mapping="data.toml")
    count_tokens("data.toml", dtype="uint32")                         # {domain: tokens}, for space caps

Formats: olmo-core, torchtitan, megatron, litgpt, levanter, gpt-neox, json, yaml (formats.py).
The mapping file (mapping.py) says which data each domain stands for. Templates for each trainer:
experiments/integrations/. Command line: `bomix mixture export`, `bomix data tokens`. Only
the standard library is imported here; numpy with the token readers, PyYAML on use.
"""

import importlib

_LAZY = {
    "FORMATS": "formats", "SUFFIXES": "formats", "check_mixture": "formats", "render": "formats",
    "write_mixture": "formats", "DataMapping": "mapping", "Source": "mapping", "load_mapping": "mapping",
    "parse_mapping": "mapping", "mixture_from": "source", "read_mixture_json": "source",
    "merge_space": "space_config", "space_snippet": "space_config", "write_tokens": "space_config",
    "count_tokens": "tokens", "file_tokens": "tokens", "manifest_tokens": "tokens", "megatron_tokens": "tokens",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'bomix.integrations' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"bomix.integrations.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
