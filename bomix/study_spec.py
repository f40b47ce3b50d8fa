"""The study spec: study.json, what a study was created with and is resumed against.

study.json is written once, atomically, when a study is created: {"format": SPEC_FORMAT, "name",
"space", "objective", "optimizer", "seed", "pool" and "fidelities" (left out when unused, as before
they existed), "created_at" (Unix seconds), "bomix_version"}. The optimizer is stored as {"name",
"class" ("module:Class"), "params"} and rebuilt from them (STYLE 8). Resuming compares the
SPEC_KEYS of the stored spec with the given one and refuses any difference, naming it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bomix import __version__
from bomix.errors import BomixError, ConfigError, SpecMismatchError, StudyError
from bomix.objective import Objective
from bomix.optimizers import Optimizer
from bomix.optimizers.pool import check_pool
from bomix.registry import resolve
from bomix.space import MixtureSpace

SPEC_FORMAT = "bomix.study/1"
SPEC_KEYS = ("space", "objective", "optimizer", "seed", "pool", "fidelities")


def jsonable(value):
    """`value` with numpy arrays and scalars made lists and Python numbers, and mapping keys made
    strings, recursively (tuples become lists), so json.dumps takes it."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def optimizer_spec(optimizer: Optimizer) -> dict:
    """The {"name", "class", "params"} study.json stores for `optimizer`; ConfigError unless its
    parameters are JSON-serialisable."""
    cls = type(optimizer)
    spec = {"name": optimizer.name or cls.__name__, "class": f"{cls.__module__}:{cls.__qualname__}",
            "params": jsonable(optimizer.get_params())}
    try:
        json.dumps(spec, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optimizer parameters must be JSON-serialisable to be stored, got {spec['params']!r}") from e
    return spec


def optimizer_from_spec(spec: Mapping) -> Optimizer:
    """Rebuild an optimizer from the {"name", "class", "params"} stored in study.json."""
    cls = resolve({spec["name"]: spec["class"]}, "optimizer", spec["name"])
    return cls(**spec["params"])


def spec_diff(stored, given, path="") -> list[str]:
    """The differences between two JSON values, one "path: stored ..., given ..." line each (a pool
    is summarised by its number of runs)."""
    if isinstance(stored, dict) and isinstance(given, dict):
        out = []
        for key in sorted(set(stored) | set(given), key=str):
            out += spec_diff(stored.get(key), given.get(key), f"{path}.{key}" if path else str(key))
        return out
    if path == "pool" and stored != given:
        size = lambda p: "none" if p is None else f"{len(p)} runs"  # noqa: E731
        return [f"pool: stored {size(stored)}, given {size(given)}" + (" (other runs)" if size(stored) == size(given)
                                                                         else "")]
    return [] if stored == given else [f"{path}: stored {stored!r}, given {given!r}"]


def check_same_spec(directory: Path, stored: Mapping, given: Mapping) -> None:
    """SpecMismatchError, naming every difference, unless `given` has the stored SPEC_KEYS values."""
    diffs = [d for key in SPEC_KEYS for d in spec_diff(stored.get(key), given[key], key)]
    if diffs:
        raise SpecMismatchError(f"resuming {directory} needs the spec it was created with; differences: "
                                + "; ".join(diffs))


def read_spec(directory: Path) -> dict:
    """The spec in directory/study.json; StudyError when it is missing, not JSON or not a study spec."""
    path = directory / "study.json"
    if not path.exists():
        what = "does not exist" if not directory.exists() else "has no study.json"
        raise StudyError(f"a study directory must contain study.json, but {directory} {what}")
    try:
        spec = json.loads(path.read_text())
    except ValueError as e:
        raise StudyError(f"{path} must be valid JSON: {e}") from None
    if not isinstance(spec, dict) or spec.get("format") != SPEC_FORMAT:
        raise StudyError(f"{path} must be a bomix study spec (format {SPEC_FORMAT!r}), got format "
                         f"{spec.get('format') if isinstance(spec, dict) else spec!r}")
    return spec


def new_spec(name: str, given: Mapping) -> dict:
    """The spec of a new study: `given` (the SPEC_KEYS values) with its format, name, creation time
    and bomix version; a None pool or fidelities is left out."""
    spec = {"format": SPEC_FORMAT, "name": name, **given, "created_at": time.time(), "bomix_version": __version__}
    for key in ("pool", "fidelities"):  # absent, as before these existed, when unused
        if spec[key] is None:
            del spec[key]
    return spec


def write_spec(directory: Path, spec: Mapping) -> None:
    """Write `spec` to directory/study.json atomically (a temporary file renamed over it)."""
    tmp = directory / "study.json.tmp"
    tmp.write_text(json.dumps(spec, indent=2) + "\n")
    os.replace(tmp, directory / "study.json")


def spec_components(directory: Path, spec: Mapping):
    """(space, objective, optimizer, pool) rebuilt from a stored spec (pool: (N, k) array or None);
    StudyError naming study.json when a field is missing or invalid."""
    try:
        space = MixtureSpace.from_dict(spec["space"])
        objective = Objective.parse(spec["objective"])
        optimizer = optimizer_from_spec(spec["optimizer"])
        seed = spec["seed"]
        pool = None if spec.get("pool") is None else check_pool(space, spec["pool"])
    except (KeyError, TypeError, ImportError, AttributeError) as e:
        raise StudyError(f"{directory / 'study.json'} is missing or has a malformed field: "
                         f"{type(e).__name__}: {e}") from None
    except BomixError as e:
        raise StudyError(f"{directory / 'study.json'} has an invalid field: {e}") from None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise StudyError(f"{directory / 'study.json'} must hold an integer seed, got {seed!r}")
    return space, objective, optimizer, pool
