"""torchtitan config for one bomix trial: `--module bomix_titan --config bomix_trial`.

torchtitan (0.3) builds a run from a Python function that returns a Trainer.Config. This one takes
a model config from torchtitan's registry (BASE_CONFIG below; llama3 debug model by default) and
replaces its data with bomix's mixture:

- training: InterleavedHuggingFaceTextDataLoader over one source per domain, each with the weight
  bomix gave it (torchtitan samples source i with probability weight_i / sum of weights). The
  sources come from $BOMIX_MIXTURE_TORCHTITAN, the JSON bomix writes for {mixture:torchtitan}:
  {"sources": [{"dataset", "dataset_path", "weight"}], "seed"}.
- validation: one fixed dataset ($BOMIX_VALIDATION_PATH), the same for every trial, so trials
  compare; its "validate step: N  loss: X" lines become bomix's "validation" loss.
- seed and output folder: $BOMIX_SEED and $BOMIX_TRIAL_DIR.

A dataset path is anything `datasets.load_dataset(path)` reads: a folder of .jsonl/.parquet files
with a "text" column, or a dataset on a hub mirror you can reach. Each source is registered in
torchtitan's DATASETS table under its name.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

from torchtitan.hf_datasets import DatasetConfig
from torchtitan.hf_datasets.text_datasets import (
    DATASETS,
    HFDataSource,
    HuggingFaceTextDataLoader,
    InterleavedHuggingFaceTextDataLoader,
)

BASE_CONFIG = os.environ.get("BOMIX_TITAN_BASE", "torchtitan.models.llama3.config_registry:llama3_debugmodel")
VALIDATION_NAME = "bomix_validation"
VALIDATION_FREQ = int(os.environ.get("BOMIX_VALIDATION_FREQ", "500"))  # steps between validation passes
VALIDATION_STEPS = int(os.environ.get("BOMIX_VALIDATION_STEPS", "50"))  # batches per pass (-1: all; may hang)


def _load_text(path: str, split: str = "train"):
    from datasets import load_dataset

    return load_dataset(path, split=split, streaming=True)


def register(name: str, path: str) -> None:
    """Make `name` a torchtitan dataset reading text from `path`."""
    DATASETS[name] = DatasetConfig(path=path, loader=_load_text, sample_processor=lambda sample: sample["text"])


def sources_config(mixture_path) -> InterleavedHuggingFaceTextDataLoader.Config:
    """The training dataloader config for bomix's torchtitan mixture file, sources registered."""
    mixture = json.loads(Path(mixture_path).read_text())
    for source in mixture["sources"]:
        register(source["dataset"], source["dataset_path"])
    extra = {"stopping_strategy": mixture["stopping_strategy"]} if "stopping_strategy" in mixture else {}
    return InterleavedHuggingFaceTextDataLoader.Config(
        sources=[HFDataSource(dataset=s["dataset"], dataset_path=s["dataset_path"], weight=s["weight"])
                 for s in mixture["sources"]],
        seed=mixture.get("seed", 42), **extra)


def bomix_trial():
    module, _, name = BASE_CONFIG.partition(":")
    config = getattr(importlib.import_module(module), name)()
    config.dataloader = sources_config(os.environ["BOMIX_MIXTURE_TORCHTITAN"])
    from torchtitan.components.validate import Validator

    register(VALIDATION_NAME, os.environ["BOMIX_VALIDATION_PATH"])
    config.validator = Validator.Config(
        enable=True, freq=VALIDATION_FREQ, steps=VALIDATION_STEPS,
        dataloader=HuggingFaceTextDataLoader.Config(dataset=VALIDATION_NAME, infinite=False))
    config.debug.seed = int(os.environ.get("BOMIX_SEED", "0"))
    config.dump_folder = os.environ.get("BOMIX_TRIAL_DIR", config.dump_folder)
    return config
