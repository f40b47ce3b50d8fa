"""Fidelities: the scales a trial can run at, each with its relative cost.

A multi-fidelity study runs each trial at one named scale (a proxy size, a token budget: "1m",
"60m", "25m-500m") whose relative cost (parameters x tokens, in any unit) the evaluator declares:
`fidelities = {"1m": 1.0, "60m": 60.0}`. One scale is the target, the one the user will train and
the one recommendations are for (default: the costliest). A single-fidelity study has no
fidelities (None) and every trial's fidelity is None: nothing about it changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from bomix.errors import ConfigError


def check_fidelities(fidelities, target=None) -> tuple[dict[str, float] | None, str | None]:
    """(fidelities as {name: cost}, target name), checked; (None, None) for a single fidelity.

    fidelities: None or a mapping of at least one non-empty name to a finite cost > 0.
    target: one of the names, or None for the costliest (the first of equal costs).
    """
    if fidelities is None:
        if target is not None:
            raise ConfigError(f"a target fidelity needs fidelities to choose from, got target {target!r} "
                              "and fidelities None")
        return None, None
    if not isinstance(fidelities, Mapping) or not fidelities:
        raise ConfigError(f"fidelities must be a non-empty mapping {{name: relative cost}}, got {fidelities!r}")
    out = {}
    for name, cost in fidelities.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"fidelity names must be non-empty strings, got {name!r}")
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost) or cost <= 0:
            raise ConfigError(f"a fidelity's cost must be a finite number > 0, got {name}={cost!r}")
        out[name] = float(cost)
    if target is None:
        target = max(out, key=lambda n: out[n])
    if target not in out:
        raise ConfigError(f"the target fidelity must be one of {list(out)}, got {target!r}")
    return out, target


def check_fidelity(name, fidelities: Mapping[str, float] | None, *, what: str = "fidelity") -> str | None:
    """`name` if the study offers it: one of `fidelities`, or None (the target / the only scale)."""
    if name is None:
        return None
    if fidelities is None:
        raise ConfigError(f"a single-fidelity study runs every trial at its one scale, so the {what} must be "
                          f"None, got {name!r}")
    if name not in fidelities:
        raise ConfigError(f"the {what} must be one of the study's fidelities {list(fidelities)}, got {name!r}")
    return name
