"""A litgpt DataModule that trains on bomix's mixture: `--data bomix_litgpt.BomixMixture`.

    litgpt pretrain pythia-160m --data bomix_litgpt.BomixMixture --data.mixture MIX.json \\
        --data.val_dir /data/litgpt/val --tokenizer_dir checkpoints/EleutherAI/pythia-160m ...

MIX.json is the trial's mixture as bomix writes it ({mixture:litgpt}):
{"datasets": [{"name", "input_dir"}], "weights": [...], "seed"}. Each input_dir is a litdata
directory of tokens (litdata.optimize with TokensLoader, as litgpt's own data preparation writes
it). Training draws each block from dataset i with probability weights[i] / sum(weights)
(litdata's CombinedStreamingDataset, iterate_over_all=False, as litgpt's TinyLlama module does).
Validation reads val_dir, the same for every trial, so the "val loss" of trials compares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from torch.utils.data import DataLoader

from litgpt.data import DataModule


def combined_dataset(mixture: str | Path, block_size: int, seed: int | None = None):
    """The weighted CombinedStreamingDataset over the mixture's litdata directories."""
    from litdata.streaming import CombinedStreamingDataset, StreamingDataset, TokensLoader

    spec = json.loads(Path(mixture).read_text())
    datasets = [StreamingDataset(input_dir=d["input_dir"], item_loader=TokensLoader(block_size=block_size),
                                 shuffle=True, drop_last=True) for d in spec["datasets"]]
    return CombinedStreamingDataset(datasets=datasets, weights=spec["weights"],
                                    seed=spec.get("seed", 42) if seed is None else seed, iterate_over_all=False)


@dataclass
class BomixMixture(DataModule):
    """Training data from bomix's litgpt mixture file, validation from a fixed litdata directory."""

    mixture: str = ""
    """The trial's mixture JSON ({mixture:litgpt})."""
    val_dir: str = ""
    """A litdata token directory for validation, fixed across trials."""
    num_workers: int = 4
    """DataLoader processes."""

    batch_size: int = field(init=False, repr=False, default=1)
    seq_length: int = field(init=False, repr=False, default=2048)

    def __post_init__(self):
        super().__init__()

    def connect(self, tokenizer=None, batch_size: int = 1, max_seq_length: int | None = None) -> None:
        self.batch_size = batch_size
        self.seq_length = (max_seq_length or 2048) + 1  # the next token of the last position too

    def prepare_data(self) -> None:
        for path in [self.mixture, self.val_dir]:
            if not path or not Path(path).exists():
                raise FileNotFoundError(f"BomixMixture needs --data.mixture and --data.val_dir, got {path!r}")

    def train_dataloader(self) -> DataLoader:
        from litdata.streaming import StreamingDataLoader

        return StreamingDataLoader(combined_dataset(self.mixture, self.seq_length), batch_size=self.batch_size,
                                   pin_memory=True, num_workers=self.num_workers, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        from litdata.streaming import StreamingDataLoader, StreamingDataset, TokensLoader

        val = StreamingDataset(input_dir=self.val_dir, item_loader=TokensLoader(block_size=self.seq_length),
                               shuffle=False)
        return StreamingDataLoader(val, batch_size=self.batch_size, pin_memory=True, num_workers=self.num_workers,
                                   drop_last=True)
