"""OLMo-core training script for one bomix trial: a small OLMo-2 proxy trained on bomix's mixture.

    torchrun --nproc-per-node 8 train_olmo_core.py --mixture MIX.yaml --validation val.toml \\
        --save-folder DIR [--sequence-length 2048] [OLMo-core overrides, e.g. --trainer.max_duration...]

MIX.yaml is the trial's mixture as bomix writes it ({mixture:olmo-core}): a SourceMixtureDatasetConfig
(source_list.sources with target_ratio, paths, max_repetition_ratio; requested_tokens,
global_batch_size, seed from data.toml's [olmo-core] table). The training data is drawn from it by
OLMo-core itself (NumpyFSLDatasetConfig.from_src_mix). Validation is fixed across trials: one
token file set per domain, each an LM evaluator label, so the log ends with one "LABEL/CE loss=X"
line per domain, which run_trial.sh turns into bomix's per-domain losses.

val.toml:   [validation]
            books = ["/data/olmo/val/books.npy"]      # raw token files, one entry per label
            cc = ["/data/olmo/val/cc.npy"]

Everything about the model and optimiser below is a starting point to edit: OLMo-2 30M, AdamW with
cosine decay, bf16 on GPU. Trains as long as the mixture's requested_tokens.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

from olmo_core.data import NumpyDataLoaderConfig, NumpyFSLDatasetConfig, NumpyPaddedFSLDatasetConfig, TokenizerConfig
from olmo_core.data.source_mixture import SourceMixtureDatasetConfig
from olmo_core.nn.transformer import TransformerConfig
from olmo_core.optim import AdamWConfig, CosWithWarmup
from olmo_core.script_utils import ExperimentConfig, get_cli_parser, main
from olmo_core.train import Duration, TrainerConfig
from olmo_core.train.callbacks import LMEvaluatorCallbackConfig
from olmo_core.train.train_module import TransformerTrainModuleConfig

SEQUENCE_LENGTH = 2048
RANK_MICROBATCH_TOKENS = 8 * SEQUENCE_LENGTH
EVAL_INTERVAL = 1000  # steps between validation passes (and one at the end)


def parser() -> argparse.ArgumentParser:
    p = get_cli_parser()
    p.add_argument("--mixture", required=True, help="the trial's SourceMixtureDatasetConfig YAML (from bomix)")
    p.add_argument("--validation", required=True, help="TOML with [validation] label = [token files]")
    p.add_argument("--seed", type=int, default=0, help="the trial's seed (data order and initialisation)")
    return p


def mixture_config(path) -> SourceMixtureDatasetConfig:
    """The trial's source mixture, as OLMo-core reads it (its validate() checks the ratios sum to 1)."""
    config = SourceMixtureDatasetConfig.from_yaml(str(path))
    config.validate()
    return config


def validation_sets(path) -> dict[str, list[str]]:
    table = tomllib.loads(Path(path).read_text())["validation"]
    return {label: [files] if isinstance(files, str) else list(files) for label, files in table.items()}


def build_config(opts: argparse.Namespace, overrides: list[str]) -> ExperimentConfig:
    sequence_length = opts.sequence_length or SEQUENCE_LENGTH
    tokenizer = TokenizerConfig.dolma2()
    mixture = mixture_config(opts.mixture)
    mixture.seed = opts.seed
    dataset = NumpyFSLDatasetConfig.from_src_mix(mixture, tokenizer=tokenizer, sequence_length=sequence_length,
                                                 work_dir=opts.work_dir)
    labels = validation_sets(opts.validation)
    eval_dataset = NumpyPaddedFSLDatasetConfig(
        tokenizer=tokenizer, sequence_length=sequence_length, work_dir=opts.work_dir,
        paths=[f for files in labels.values() for f in files],
        metadata=[{"label": label} for label, files in labels.items() for _ in files])
    trainer = TrainerConfig(save_folder=opts.save_folder, work_dir=opts.work_dir,
                            max_duration=Duration.tokens(mixture.requested_tokens), save_overwrite=True,
                            metrics_collect_interval=10)
    trainer = trainer.with_callback("lm_evaluator", LMEvaluatorCallbackConfig(
        eval_dataset=eval_dataset, eval_interval=EVAL_INTERVAL, eval_on_finish=True))
    config = ExperimentConfig(
        model=TransformerConfig.olmo2_30M(vocab_size=tokenizer.padded_vocab_size()),
        dataset=dataset,
        data_loader=NumpyDataLoaderConfig(global_batch_size=mixture.global_batch_size, seed=opts.seed,
                                          num_workers=4),
        train_module=TransformerTrainModuleConfig(
            rank_microbatch_size=RANK_MICROBATCH_TOKENS, max_sequence_length=sequence_length,
            optim=AdamWConfig(lr=3e-3, weight_decay=0.1), scheduler=CosWithWarmup(warmup_steps=200),
            max_grad_norm=1.0),
        trainer=trainer,
        init_seed=opts.seed,
    )
    return config.merge(overrides) if overrides else config


if __name__ == "__main__":
    main(config_builder=build_config, parser=parser())
