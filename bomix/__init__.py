"""bomix: Bayesian optimisation of pretraining data mixtures.

    import bomix
    space = bomix.MixtureSpace(["books", "cc", "stack", "pes2o", "reddit"])
    ev = bomix.get_evaluator("landscape", name="seedlike", noise_sd=0.017, seed=0)
    study = bomix.create_study("runs/demo", space=space, optimizer="sobol", seed=0, load_if_exists=True)
    study.optimize(ev, n_trials=64)
    study.best_trial, study.recommend()

`import bomix` loads numpy only; torch, botorch and ax load when a component that needs them is used.
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib

_LAZY = {
    "MixtureSpace": "bomix.space",
    "Objective": "bomix.objective",
    "Trial": "bomix.trial",
    "TrialState": "bomix.trial",
    "Evaluation": "bomix.trial",
    "Study": "bomix.study",
    "create_study": "bomix.study",
    "load_study": "bomix.study",
    "get_optimizer": "bomix.optimizers",
    "Optimizer": "bomix.optimizers",
    "History": "bomix.optimizers",
    "Proposal": "bomix.optimizers",
    "Recommendation": "bomix.optimizers",
    "get_evaluator": "bomix.evaluators",
    "Evaluator": "bomix.evaluators",
    "TrialContext": "bomix.evaluators",
    "get_runner": "bomix.runners",
    "Runner": "bomix.runners",
    "errors": "bomix.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'bomix' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if name == "errors" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
