"""The built-in proxy trainer: a small GPT trained on one data mixture, scored on every domain.

    from bomix.train import build_dataset, DomainData, TrainConfig, train
    build_dataset("corpus/", "data/corpus", tokenizer="bpe", vocab_size=8192)
    result = train(DomainData("data/corpus"), {"books": 0.5, "code": 0.5}, TrainConfig(preset="tiny"))

Or from a shell (what the "proxy" evaluator runs in a subprocess, one trial per process):

    python -m bomix.train data/corpus --mixture mixture.json --metrics metrics.json --seed 0

Several proxies of one small shape train faster together, their parameters stacked on a model axis
(train_many; `--mixture A --metrics A.out --mixture B --metrics B.out` from the shell).

This package knows nothing of the rest of bomix: it needs torch, numpy and tokenizers only.
Importing it is light; torch loads when the model or the trainer is first used.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "GPT": "bomix.train.model",
    "GPTConfig": "bomix.train.model",
    "PRESETS": "bomix.train.model",
    "get_preset": "bomix.train.model",
    "count_params": "bomix.train.model",
    "TrainConfig": "bomix.train.trainer",
    "TrainResult": "bomix.train.trainer",
    "train": "bomix.train.trainer",
    "train_many": "bomix.train.stacked",
    "StackedGPT": "bomix.train.stacked",
    "linear_cross_entropy": "bomix.train.fused_ce",
    "build_dataset": "bomix.train.data",
    "DomainData": "bomix.train.data",
    "MixtureSampler": "bomix.train.data",
    "check_weights": "bomix.train.data",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'bomix.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
