"""Name -> "module:attr" registries, imported lazily (so `import bomix` stays light)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping

from bomix.errors import ConfigError, UnknownNameError


def resolve(registry: Mapping[str, str], kind: str, name: str):
    """The class (or factory) registered as `name`, or UnknownNameError listing the valid names."""
    if not isinstance(name, str) or name not in registry:
        raise UnknownNameError(f"{kind} must be one of {sorted(registry)}, got {name!r}")
    module, attr = registry[name].split(":")
    return getattr(importlib.import_module(module), attr)


def build(registry: Mapping[str, str], kind: str, name: str, params: Mapping | None = None):
    """Instantiate `name` with keyword `params`, refusing unknown parameter names up front."""
    factory = resolve(registry, kind, name)
    params = dict(params or {})
    accepted = accepted_params(factory)
    if accepted is not None:
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ConfigError(f"{kind} {name!r} accepts parameters {sorted(accepted)}, got unknown {unknown}")
    try:
        return factory(**params)
    except TypeError as e:  # wrong types, missing required arguments
        raise ConfigError(f"{kind} {name!r} cannot be built from {params}: {e}") from e


def accepted_params(factory) -> list[str] | None:
    """Keyword parameter names of a class or function, or None when it takes **kwargs."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    sig = inspect.signature(target)
    names = []
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
    return names


def get_params(obj) -> dict:
    """scikit-learn style: constructor arguments read back from same-named attributes."""
    names = accepted_params(type(obj)) or []
    return {n: getattr(obj, n) for n in names if hasattr(obj, n)}
