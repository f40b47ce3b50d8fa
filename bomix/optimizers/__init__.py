"""Optimizers, by name. Baselines from the sibling package `baselines` register here too."""

from __future__ import annotations

from bomix import registry
from bomix.optimizers.base import History, Optimizer, Proposal, Recommendation

OPTIMIZERS: dict[str, str] = {
    "random": "bomix.optimizers.builtin:RandomSearch",
    "sobol": "bomix.optimizers.builtin:SobolSearch",
    "fixed": "bomix.optimizers.builtin:FixedMixture",
    "bo": "bomix.optimizers.bo:BayesOpt",
    "bo_mf": "bomix.optimizers.bo_mf:MultiFidelityBO",
    "ax_default": "bomix.optimizers.ax_default:AxDefault",
    "uniform": "baselines.fixed:Uniform",
    "prior": "baselines.fixed:Prior",
    "focus": "baselines.fixed:Focus",
    "llama": "baselines.fixed:Llama",
    "pile": "baselines.fixed:Pile",
    "doremi": "baselines.fixed:DoReMi",
    "bimix": "baselines.bimix:BiMix",
    "mixing_laws": "baselines.mixing_laws:MixingLaws",
    "regmix": "baselines.regmix:RegMix",
    "olmix": "baselines.olmix:OlMix",
}


def get_optimizer(name: str, /, **params) -> Optimizer:
    """Build a registered optimizer, e.g. get_optimizer("sobol", seed=0)."""
    if isinstance(name, Optimizer):
        return name
    return registry.build(OPTIMIZERS, "optimizer", name, params)


__all__ = ["OPTIMIZERS", "History", "Optimizer", "Proposal", "Recommendation", "get_optimizer"]
