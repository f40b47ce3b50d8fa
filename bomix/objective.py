"""Objectives: one number to minimise, computed from a trial's per-domain losses.

Because trials keep every per-domain loss, a study can be re-scored under another objective
without rerunning anything: `Objective("worst")(trial.losses)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from bomix.errors import ConfigError, EvaluationError

KINDS = ("mean", "weighted", "worst", "target")


class Objective:
    """A function of per-domain losses, minimised.

    kind="mean": average loss (over `domains`, default every reported loss); the seed study's
        average log-perplexity.
    kind="weighted": sum_i w_i * loss_i / sum_i w_i over the domains named in `weights`.
    kind="worst": the largest loss over `domains` (default all).
    kind="target": the loss of one named validation set, `target` (e.g. "pile_cc").
    A string "target:NAME" is read as kind="target", target=NAME.
    """

    def __init__(self, kind: str = "mean", *, weights: Mapping[str, float] | None = None,
                 domains: list[str] | None = None, target: str | None = None):
        if isinstance(kind, str) and kind.startswith("target:"):
            kind, target = "target", kind.split(":", 1)[1]
        if kind not in KINDS:
            raise ConfigError(f"objective must be one of {list(KINDS)}, got {kind!r}")
        if kind == "weighted":
            if not weights:
                raise ConfigError("objective 'weighted' needs weights {domain: weight}, got none")
            bad = {d: w for d, w in weights.items() if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0}
            if bad or sum(weights.values()) <= 0:
                raise ConfigError(f"objective weights must be finite, >= 0 and not all 0, got {dict(weights)}")
        elif weights:
            raise ConfigError(f"objective weights are only for kind 'weighted', got kind {kind!r}")
        if kind == "target" and not target:
            raise ConfigError("objective 'target' needs the name of the target validation set, got none")
        self.kind = kind
        self.weights = {d: float(w) for d, w in weights.items()} if weights else None
        self.domains = list(domains) if domains else None
        self.target = target

    @classmethod
    def parse(cls, spec) -> Objective:
        """An Objective from an Objective, a string ("mean", "worst", "target:NAME") or a dict."""
        if isinstance(spec, Objective):
            return spec
        if isinstance(spec, str):
            return cls(spec)
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"kind", "weights", "domains", "target"}
            if unknown:
                raise ConfigError(f"objective keys must be among kind, weights, domains, target; got {sorted(unknown)}")
            return cls(spec.get("kind", "mean"), weights=spec.get("weights"), domains=spec.get("domains"),
                       target=spec.get("target"))
        raise ConfigError(f"objective must be a name, a dict or an Objective, got {spec!r}")

    def required(self, losses: Mapping[str, float]) -> list[str]:
        """The loss names this objective reads."""
        if self.kind == "target":
            return [self.target]
        if self.kind == "weighted":
            return list(self.weights)
        return self.domains or list(losses)

    def __call__(self, losses: Mapping[str, float]) -> float:
        names = self.required(losses)
        missing = [n for n in names if n not in losses]
        if missing:
            raise EvaluationError(f"the {self.kind} objective needs losses for {missing}, got {sorted(losses)}")
        if self.kind == "weighted":
            total = sum(self.weights.values())
            return sum(w * losses[d] for d, w in self.weights.items()) / total
        if self.kind == "worst":
            return max(losses[n] for n in names)
        return sum(losses[n] for n in names) / len(names)

    def of_rows(self, names: list[str], L) -> np.ndarray:
        """The objective of each row of (p, m) losses L, columns in `names` order (the names
        `required` gives): the vectorised form of calling it on a dict, for fitted models."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        if self.kind == "weighted":
            w = np.array([self.weights[n] for n in names], dtype=float)
            return L @ w / w.sum()
        if self.kind == "worst":
            return L.max(axis=1)
        return L.mean(axis=1)  # mean, or target (one column)

    def to_dict(self) -> dict:
        d = {"kind": self.kind}
        if self.weights:
            d["weights"] = self.weights
        if self.domains:
            d["domains"] = self.domains
        if self.target:
            d["target"] = self.target
        return d

    def __eq__(self, other) -> bool:
        return isinstance(other, Objective) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "kind")
        return f"Objective({self.kind!r}{', ' + args if args else ''})"
