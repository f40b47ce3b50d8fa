"""Evaluators, by name. `get_evaluator("landscape", name="seedlike", noise_sd=0.017, seed=0)`."""

from __future__ import annotations

from bomix import registry
from bomix.evaluators.base import Evaluator, TrialContext

EVALUATORS: dict[str, str] = {
    "landscape": "bomix.evaluators.landscapes:landscape",
    "command": "bomix.evaluators.command:CommandEvaluator",
    "proxy": "bomix.evaluators.proxy:ProxyEvaluator",
    "replay": "bomix.evaluators.replay:ReplayEvaluator",
    "replay_scales": "bomix.evaluators.replay_scales:ReplayScales",
}


def get_evaluator(kind: str, /, **params) -> Evaluator:
    """Build a registered evaluator; unknown names and parameters raise with the valid choices."""
    if isinstance(kind, Evaluator):
        return kind
    return registry.build(EVALUATORS, "evaluator", kind, params)


__all__ = ["EVALUATORS", "Evaluator", "TrialContext", "get_evaluator"]
