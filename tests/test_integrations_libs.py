"""bomix's mixtures read by the real trainer libraries: each test builds the library's own mixture
object from bomix's output and checks the ratios it will sample.

Optional: `pip install -c <(echo torch==2.13.0) -e ".[integrations]"` (see pyproject.toml); each
test skips itself when its library is absent. `pytest -m integrations` runs this group alone.
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from bomix.integrations import count_tokens, megatron_tokens, render, write_mixture

pytestmark = pytest.mark.integrations
TEMPLATES = Path(__file__).resolve().parents[1] / "experiments" / "integrations"
WEIGHTS = {"books": 0.1, "cc": 0.45, "code": 0.25, "news": 0.2}


def template_module(trainer: str, name: str):
    """A template's Python file, imported (the folders' names are not Python identifiers)."""
    spec = importlib.util.spec_from_file_location(name, TEMPLATES / trainer / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# -- OLMo-core ------------------------------------------------------------------------------------

def test_olmo_core_builds_a_source_mixture_at_bomix_ratios(tmp_path):
    pytest.importorskip("olmo_core")
    from olmo_core.data.source_mixture import SourceMixtureDatasetConfig

    sizes = {"books": 8000, "cc": 40000, "code": 20000, "news": 16000}  # tokens per raw uint16 file
    domains = {}
    for d, n in sizes.items():
        for part in range(2):
            np.zeros(n // 2, np.uint16).tofile(tmp_path / f"{d}-{part}.npy")
        domains[d] = {"paths": [str(tmp_path / f"{d}-*.npy")]}
    mapping = {"domains": domains, "olmo-core": {"requested_tokens": 65536, "global_batch_size": 1024, "seed": 3,
                                                 "max_repetition_ratio": 2.0}}
    assert count_tokens(mapping, dtype="uint16") == sizes  # what OLMo-core counts too: size / itemsize
    path = tmp_path / "mix.yaml"
    write_mixture(WEIGHTS, "olmo-core", path, mapping)
    config = SourceMixtureDatasetConfig.from_yaml(str(path))
    config.quiet, config.render_tables = True, False
    outcome = config.build(npdtype=np.uint16, sequence_length=64)
    tokens = {s.name: sum(p.tokens for p in s.path_tokens) for s in outcome.sources}
    total = sum(tokens.values())
    assert total == 65536
    # OLMo-core rounds each path's share to whole 64-token instances: 2 paths, so 2 instances at most
    assert {d: t / total for d, t in tokens.items()} == pytest.approx(WEIGHTS, abs=2 * 64 / 65536)
    # and it refuses a ratio the data cannot give under max_repetition_ratio (bomix's caps prevent that)
    with pytest.raises(Exception, match="Insufficient tokens for source: books"):
        heavy = {"books": 0.4, "cc": 0.3, "code": 0.2, "news": 0.1}
        write_mixture(heavy, "olmo-core", path, {**mapping, "olmo-core": {**mapping["olmo-core"],
                                                                           "requested_tokens": 65536 * 2}})
        SourceMixtureDatasetConfig.from_yaml(str(path)).build(npdtype=np.uint16, sequence_length=64)


def test_olmo_core_template_trains_on_the_mixture_file(tmp_path):
    pytest.importorskip("olmo_core")
    for d in WEIGHTS:
        np.zeros(4096, np.uint32).tofile(tmp_path / f"{d}.npy")
    mapping = {"domains": {d: str(tmp_path / f"{d}.npy") for d in WEIGHTS},
               "olmo-core": {"requested_tokens": 4096, "global_batch_size": 1024}}
    write_mixture(WEIGHTS, "olmo-core", tmp_path / "mix.yaml", mapping)
    (tmp_path / "val.toml").write_text("[validation]\n" + "\n".join(f'{d} = ["{tmp_path / d}.npy"]' for d in WEIGHTS))
    train = template_module("olmo-core", "train_olmo_core")
    opts = train.parser().parse_args(["--mixture", str(tmp_path / "mix.yaml"), "--validation", str(tmp_path / "val.toml"),
                                      "--save-folder", str(tmp_path / "save"), "--work-dir", str(tmp_path / "work"),
                                      "--seed", "5"])
    config = train.build_config(opts, [])
    sources = config.dataset.source_mixture_config.source_list.sources
    assert {s.source_name: s.target_ratio for s in sources} == WEIGHTS
    assert config.dataset.source_mixture_config.seed == 5 and config.data_loader.global_batch_size == 1024
    assert [m["label"] for m in config.trainer.callbacks["lm_evaluator"].eval_dataset.metadata] == list(WEIGHTS)


# -- megatron-core --------------------------------------------------------------------------------

def write_prefix(prefix, lengths):
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=np.uint16)
    for n in lengths:
        builder.add_document(torch.arange(n) % 1000, [n])
    builder.finalize(f"{prefix}.idx")


def test_megatron_index_tokens_match_megatron_cores_reader(tmp_path):
    pytest.importorskip("megatron.core")
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    write_prefix(tmp_path / "a", [5, 700, 33, 1])
    dataset = IndexedDataset(str(tmp_path / "a"))  # keep a reference: its arrays view a memory map
    assert megatron_tokens(tmp_path / "a") == int(dataset.sequence_lengths.sum()) == 739


def test_megatron_blend_parses_and_samples_at_bomix_ratios(tmp_path):
    pytest.importorskip("megatron.core")
    from megatron.core.datasets import helpers
    from megatron.core.datasets.blended_megatron_dataset_config import BlendedMegatronDatasetConfig
    from megatron.core.datasets.utils import get_blend_from_list, normalize

    write_prefix(tmp_path / "books", [10] * 3)
    write_prefix(tmp_path / "cc_a", [300])
    write_prefix(tmp_path / "cc_b", [100])  # cc's weight splits 3:1 over its prefixes
    write_prefix(tmp_path / "code", [7])
    write_prefix(tmp_path / "news", [9])
    mapping = {"domains": {"books": str(tmp_path / "books"), "cc": [str(tmp_path / "cc_a"), str(tmp_path / "cc_b")],
                           "code": str(tmp_path / "code"), "news": str(tmp_path / "news")}}
    words = render(WEIGHTS, "megatron", mapping).split()
    prefixes, weights = get_blend_from_list(words)  # how --data-path / --data-args-path is parsed
    config = BlendedMegatronDatasetConfig(random_seed=0, sequence_length=16, blend=(prefixes, weights),
                                          split="100,0,0")
    assert config.blend[0] == prefixes
    weights = np.array(normalize(weights), dtype=np.float64)
    size = 200_000
    index, sample = np.zeros(size, np.int16), np.zeros(size, np.int64)
    helpers.build_blending_indices(index, sample, weights, len(prefixes), size, False)  # what BlendedDataset runs
    per_prefix = np.bincount(index, minlength=len(prefixes)) / size
    domain_of = {str(tmp_path / p): d for p, d in [("books", "books"), ("cc_a", "cc"), ("cc_b", "cc"), ("code", "code"),
                                                  ("news", "news")]}
    shares = {d: 0.0 for d in WEIGHTS}
    for prefix, share in zip(prefixes, per_prefix):
        shares[domain_of[prefix]] += share
    assert shares == pytest.approx(WEIGHTS, abs=1e-4)
    assert per_prefix[prefixes.index(str(tmp_path / "cc_a"))] == pytest.approx(0.45 * 0.75, abs=1e-4)


# -- litgpt / litdata -------------------------------------------------------------------------------

def test_litgpt_datamodule_samples_litdata_datasets_at_bomix_ratios(tmp_path):
    pytest.importorskip("litdata")
    try:
        import litgpt  # noqa: F401
    except Exception as e:  # noqa: BLE001 - e.g. a torchvision built for another torch
        pytest.skip(f"litgpt does not import here: {type(e).__name__}: {e}")
    import torch
    from litdata import optimize
    from litdata.streaming import TokensLoader

    for i, d in enumerate(WEIGHTS):
        optimize(fn=_tokens_of(i), inputs=list(range(400)), output_dir=str(tmp_path / d), chunk_bytes="64KB",
                 item_loader=TokensLoader(), num_workers=1, mode="overwrite")
    assert all((tmp_path / d / "index.json").is_file() for d in WEIGHTS)
    mapping = {"domains": {d: str(tmp_path / d) for d in WEIGHTS}, "litgpt": {"seed": 1}}
    write_mixture(WEIGHTS, "litgpt", tmp_path / "mix.json", mapping)
    module = template_module("litgpt", "bomix_litgpt")
    data = module.BomixMixture(mixture=str(tmp_path / "mix.json"), val_dir=str(tmp_path / "books"), num_workers=0)
    data.connect(batch_size=1, max_seq_length=15)
    counts = torch.zeros(len(WEIGHTS))
    for n, batch in enumerate(data.train_dataloader()):
        counts[int(batch[0, 0])] += 1
        if n == 4999:
            break
    shares = dict(zip(WEIGHTS, (counts / counts.sum()).tolist()))
    assert shares == pytest.approx(WEIGHTS, abs=0.025)  # 5000 seeded draws: sd <= 0.007


class _tokens_of:
    """litdata.optimize's fn: 64 tokens, all equal to the domain's index (picklable for workers)."""

    def __init__(self, value):
        self.value = value

    def __call__(self, _):
        import torch

        return torch.full((64,), self.value, dtype=torch.int32)


# -- torchtitan -------------------------------------------------------------------------------------

class _Source:
    """An endless stateful dataset yielding its own name, as InterleavedDataset requires."""

    def __init__(self, name):
        self.name, self.n = name, 0

    def __iter__(self):
        while True:
            self.n += 1
            yield self.name

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]


def test_torchtitan_template_interleaves_at_bomix_ratios(tmp_path):
    pytest.importorskip("torchtitan")
    pytest.importorskip("datasets")
    from torchtitan.hf_datasets.interleaved import InterleavedDataset
    from torchtitan.hf_datasets.text_datasets import DATASETS

    for d in WEIGHTS:
        (tmp_path / d).mkdir()
        (tmp_path / d / "part.jsonl").write_text(json.dumps({"text": d}) + "\n")
    mapping = {"domains": {d: str(tmp_path / d) for d in WEIGHTS}, "torchtitan": {"seed": 11}}
    write_mixture(WEIGHTS, "torchtitan", tmp_path / "mix.json", mapping)
    titan = template_module("torchtitan", "bomix_titan")
    config = titan.sources_config(tmp_path / "mix.json")  # InterleavedHuggingFaceTextDataLoader.Config
    assert [(s.dataset, s.weight) for s in config.sources] == list(WEIGHTS.items()) and config.seed == 11
    assert DATASETS["books"].path == str(tmp_path / "books")
    assert next(iter(DATASETS["cc"].loader(str(tmp_path / "cc"))))["text"] == "cc"  # the registered loader reads it
    mixed = InterleavedDataset([_Source(s.dataset) for s in config.sources], [s.weight for s in config.sources],
                               seed=config.seed)
    draws = [name for name, _ in zip(mixed, range(40_000))]
    shares = {d: draws.count(d) / len(draws) for d in WEIGHTS}
    assert shares == pytest.approx(WEIGHTS, abs=0.01)  # 40k seeded draws: sd <= 0.0025
