"""The dataset builder and the mixture sampler (bomix.train.data). Run: pytest tests/test_data.py

The corpus is built here from files every Python install has: three domains whose character
statistics differ visibly (Python source, licence or docstring prose, random hex digits as .jsonl).
"""

import json

import numpy as np
import pytest

import bomix
from bomix.cli import main
from bomix.train import data as data_module
from bomix.train.data import DomainData, MixtureSampler, build_dataset, check_weights, read_documents

def _documents(tokens: np.ndarray, decode) -> list[str]:
    """Split a token array at the end-of-text id and decode each document."""
    ends = np.flatnonzero(tokens == data_module.EOT_ID)
    assert ends.size and ends[-1] == tokens.size - 1, "every document must end with EOT"
    return [decode(tokens[a + 1:b].tolist()) for a, b in zip(np.r_[-1, ends[:-1]], ends)]


# -- building ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["bytes", "bpe"])
def test_manifest_counts_match_the_bins(kind, byte_data, bpe_data):
    data = byte_data if kind == "bytes" else bpe_data
    m = data.manifest
    assert data.domains == data.val_domains == ["code", "legal", "noise"]
    assert m["tokenizer"]["kind"] == kind and m["dtype"] == "uint16" and m["bomix_version"] == bomix.__version__
    assert data.vocab_size == (256 if kind == "bytes" else 512)
    for d in data.domains:
        c = m["domains"][d]
        for split in ("train", "val"):
            size = (data.path / d / f"{split}.bin").stat().st_size
            assert size == 2 * c[f"{split}_tokens"] > 0
            assert getattr(data, split)(d).max() < data.vocab_size
        assert c["val_documents"] >= 1 and c["train_documents"] >= 1
    assert m["domains"]["noise"]["files"] == 1 and m["domains"]["noise"]["train_documents"] + \
        m["domains"]["noise"]["val_documents"] == 30
    assert not list(data.path.rglob("*.tmp"))


@pytest.mark.parametrize("kind", ["bytes", "bpe"])
def test_split_is_by_document_and_decodes_to_the_source(kind, corpus, byte_data, bpe_data):
    data = byte_data if kind == "bytes" else bpe_data
    decode = data.tokenizer.decode
    for d in data.domains:
        source = set(read_documents(sorted((corpus / d).iterdir())))
        train, val = set(_documents(data.train(d), decode)), set(_documents(data.val(d), decode))
        assert not train & val, "a document must not be in both splits"
        assert train | val == source
    frac = [data.val_tokens[d] / (data.val_tokens[d] + data.train_tokens[d]) for d in data.domains]
    assert all(0.04 < f < 0.25 for f in frac), frac  # 5% by default, rounded up to whole documents


def test_bpe_compresses_better_than_bytes(byte_data, bpe_data):
    assert all(bpe_data.train_tokens[d] < 0.8 * byte_data.train_tokens[d] for d in ("code", "legal"))
    assert bpe_data.tokenizer.get_vocab_size() == 512
    assert bpe_data.tokenizer.token_to_id("<|endoftext|>") == data_module.EOT_ID


def test_build_is_deterministic_and_seeded(corpus, tmp_path, bpe_data):
    again = tmp_path / "again"
    build_dataset(corpus, again, tokenizer="bpe", vocab_size=512)
    for f in ["manifest.json", "tokenizer.json", *(f"{d}/{s}.bin" for d in bpe_data.domains for s in ("train", "val"))]:
        assert (again / f).read_bytes() == (bpe_data.path / f).read_bytes(), f
    other = build_dataset(corpus, tmp_path / "seed1", tokenizer="bytes", seed=1)["domains"]
    base = json.loads((tmp_path / "again" / "manifest.json").read_text())["domains"]
    assert any(other[d]["val_documents"] != base[d]["val_documents"] or
               (tmp_path / "seed1" / d / "val.bin").stat().st_size != 2 * base[d]["val_tokens"] for d in other)


def test_val_tokens_and_val_only(corpus, tmp_path):
    m = build_dataset(corpus, tmp_path / "d", tokenizer="bytes", val_tokens=30_000, val_only=["legal"])
    assert all(m["domains"][d]["val_tokens"] >= 30_000 for d in ("code", "noise"))
    assert m["domains"]["legal"]["train_tokens"] == 0 and m["domains"]["legal"]["val_only"]
    data = DomainData(tmp_path / "d")
    assert data.domains == ["code", "noise"] and data.val_domains == ["code", "legal", "noise"]
    with pytest.raises(ValueError, match=r"weights must name training domains .* got unknown \['legal'\]"):
        MixtureSampler(data, {"code": 0.5, "legal": 0.5}, 4, 32, seed=0)


def test_a_failed_rebuild_leaves_no_manifest(corpus, tmp_path, monkeypatch):
    build_dataset(corpus, tmp_path, tokenizer="bytes")
    calls = []

    def failing(docs, tok):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(docs, tok)

    real = data_module._encode
    monkeypatch.setattr(data_module, "_encode", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        build_dataset(corpus, tmp_path, tokenizer="bytes", seed=1)
    with pytest.raises(ValueError, match="must hold manifest.json"):
        DomainData(tmp_path)
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("setup, kwargs, match", [
    (None, {}, "source_dir must be an existing directory"),
    ({"a/x.txt": "hello there", "b/": None}, {}, r"must hold .txt, .jsonl or .parquet files, got none in \['b'\]"),
    ({"a/x.txt": "hello", "a/y.txt": "there", "b/x.txt": "  \n"}, {},
     "at least one non-empty document, got none in 'b'"),
    ({"a/x.txt": "one document only"}, {}, "at least 2 documents"),
    ({"a/x.jsonl": '{"txt": "wrong key"}\n'}, {}, "string 'text', got line 1"),
    ({"a/x.txt": "hi", "a/y.txt": "yo"}, {"tokenizer": "wordpiece"}, "tokenizer must be 'bpe' or 'bytes'"),
    ({"a/x.txt": "hi", "a/y.txt": "yo"}, {"vocab_size": 100}, "vocab_size must be an integer >= 257"),
    ({"a/x.txt": "hi", "a/y.txt": "yo"}, {"val_only": ["z"]}, r"val_only must name domains .* got unknown \['z'\]"),
])
def test_build_errors_state_the_rule(tmp_path, setup, kwargs, match):
    src = tmp_path / "src"
    for name, text in (setup or {}).items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            (src / name).mkdir(exist_ok=True)
        else:
            (src / name).write_text(text)
    with pytest.raises(ValueError, match=match):
        build_dataset(src, tmp_path / "out", **kwargs)


def test_parquet_documents(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    (tmp_path / "src" / "a").mkdir(parents=True)
    pd.DataFrame({"text": ["first document", "second one", "third"]}).to_parquet(tmp_path / "src" / "a" / "x.parquet")
    m = build_dataset(tmp_path / "src", tmp_path / "out", tokenizer="bytes", val_fraction=0.3)
    assert m["domains"]["a"]["train_documents"] + m["domains"]["a"]["val_documents"] == 3


def test_out_dir_inside_source_is_refused(corpus):
    with pytest.raises(ValueError, match="out_dir must lie outside source_dir"):
        build_dataset(corpus, corpus / "built")


# -- sampling ------------------------------------------------------------------------------------

@pytest.mark.parametrize("weights, match", [
    ({"code": 0.5, "books": 0.5}, r"must name training domains .* got unknown \['books'\]"),
    ({"code": 0.5, "legal": 0.43}, "weights must sum to 1, got 0.93"),
    ({"code": 1.2, "legal": -0.2}, "weights must be finite and >= 0, got {'legal': -0.2}"),
])
def test_bad_weights_are_refused(weights, match):
    with pytest.raises(ValueError, match=match):
        check_weights(weights, ["code", "legal", "noise"])


def test_a_domain_too_small_for_a_window_is_refused(byte_data):
    big = byte_data.train_tokens["legal"]
    with pytest.raises(ValueError, match=rf"block_size \+ 1 = {big + 1} train tokens, got .*'legal'"):
        MixtureSampler(byte_data, {"legal": 1.0}, 2, big, seed=0)
    MixtureSampler(byte_data, {"code": 1.0}, 2, min(byte_data.train_tokens["code"] - 1, big), seed=0)


def test_sampler_follows_the_weights_and_skips_zero(byte_data):
    weights = {"code": 0.6, "legal": 0.4, "noise": 0.0}
    sampler = MixtureSampler(byte_data, weights, batch_size=16, block_size=8, seed=0)
    for _ in range(250):  # 4000 sequences
        x, y = sampler.next_batch()
    assert x.shape == y.shape == (16, 8) and x.dtype == np.int64
    assert np.array_equal(x[:, 1:], y[:, :-1])
    n = sampler.sequences
    assert n["noise"] == 0
    expected = 4000 * np.array([0.6, 0.4])
    chi2 = (((np.array([n["code"], n["legal"]]) - expected) ** 2) / expected).sum()
    assert chi2 < 10.8  # the 0.1% tail of chi-square with 1 degree of freedom


def test_sampler_windows_come_from_the_domain_and_the_seed_fixes_them(byte_data):
    a = MixtureSampler(byte_data, {"noise": 1.0}, 4, 64, seed=3)
    b = MixtureSampler(byte_data, {"noise": 1.0}, 4, 64, seed=3)
    c = MixtureSampler(byte_data, {"noise": 1.0}, 4, 64, seed=4)
    xa, xb, xc = a.next_batch()[0], b.next_batch()[0], c.next_batch()[0]
    assert np.array_equal(xa, xb) and not np.array_equal(xa, xc)
    allowed = set(b"0123456789abcdef \n") | {data_module.EOT_ID}
    assert set(np.unique(xa).tolist()) <= allowed


def test_repetition_accounting(byte_data):
    sampler = MixtureSampler(byte_data, {"code": 0.25, "legal": 0.25, "noise": 0.5}, 8, 32, seed=0)
    for _ in range(100):
        sampler.next_batch()
    stats = sampler.stats()
    assert sum(stats["tokens_drawn"].values()) == 100 * 8 * 32
    for d in byte_data.domains:
        assert stats["tokens_drawn"][d] == 32 * sampler.sequences[d]
        assert stats["repetition"][d] == pytest.approx(stats["tokens_drawn"][d] / byte_data.train_tokens[d])
    assert sum(stats["realized_weights"].values()) == pytest.approx(1.0)
    assert stats["realized_weights"]["noise"] == pytest.approx(0.5, abs=0.08)


def test_space_caps_feed_a_mixture_space(byte_data):
    caps = byte_data.space_caps(3e5, repetition_factor=2.0)
    assert caps == {d: pytest.approx(2.0 * n / 3e5) for d, n in byte_data.train_tokens.items()}
    space = bomix.MixtureSpace(byte_data.domains, caps=caps)
    assert np.allclose(space.caps, [min(1.0, caps[d]) for d in byte_data.domains])
    with pytest.raises(ValueError, match="target_tokens and repetition_factor must be > 0"):
        byte_data.space_caps(0)


# -- command line --------------------------------------------------------------------------------

def test_bomix_data_build_and_info(corpus, tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["data", "build", str(corpus), "-o", str(out), "--tokenizer", "bytes", "--val-tokens", "5000"]) == 0
    printed = capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"{manifest['domains']['code']['train_tokens']:,}" in printed
    assert main(["data", "info", str(out)]) == 0
    table = capsys.readouterr().out
    assert "tokenizer bytes, vocabulary 256" in table and all(d in table for d in ("code", "legal", "noise"))
    with pytest.raises(SystemExit) as e:
        main(["data", "build", str(tmp_path / "missing"), "-o", str(out)])
    assert e.value.code == 2 and "source_dir must be an existing directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["data", "info", str(tmp_path)])
    assert e.value.code == 2
