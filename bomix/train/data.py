"""Tokenised per-domain datasets and the batch sampler through which a mixture enters training.

On disk (what `build_dataset` writes, nanoGPT's train.bin/val.bin layout, one pair per domain):

    OUT_DIR/manifest.json          counts, tokenizer, dtype, seed; written last, so its presence
                                   means the dataset is complete
    OUT_DIR/tokenizer.json         the byte-level BPE (HF tokenizers format); absent for "bytes"
    OUT_DIR/<domain>/train.bin     a flat array of token ids (uint16, or uint32 when the vocabulary
    OUT_DIR/<domain>/val.bin       exceeds 65536), documents each followed by the end-of-text id 0

Source layout: SOURCE_DIR/<domain>/ holds .txt files (one document each), .jsonl files (one document
per line, in its "text" field) and .parquet files (one document per row of a "text" column; read with
pandas, which then needs pyarrow). Folders are searched recursively; the domain is the top folder.

The validation split is taken at document level: each domain's documents are shuffled once (seeded
by the seed and the domain's name, so adding a domain changes no other), validation takes documents
from the front of that order and the BPE's training sample from the back, so the tokenizer never sees
validation text unless validation takes more than half of a domain.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

EOT_ID = 0                  # end-of-text id: "<|endoftext|>" in a BPE, the NUL byte in "bytes"
EOT_TOKEN = "<|endoftext|>"
SOURCE_SUFFIXES = (".txt", ".jsonl", ".parquet")
SUM_ATOL = 1e-6             # how far from 1 a mixture's weights may sum


# -- reading the source documents --------------------------------------------------------------

def find_domains(source_dir: str | Path) -> dict[str, list[Path]]:
    """{domain: sorted source files} for every non-hidden folder of source_dir."""
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise ValueError(f"source_dir must be an existing directory with one folder per domain, "
                         f"got {str(source_dir)!r}")
    domains = {}
    for folder in sorted(p for p in source_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        domains[folder.name] = sorted(p for p in folder.rglob("*") if p.suffix in SOURCE_SUFFIXES and p.is_file())
    if not domains:
        raise ValueError(f"source_dir must hold one folder per domain, got no folders in {str(source_dir)!r}")
    empty = [d for d, files in domains.items() if not files]
    if empty:
        raise ValueError(f"each domain folder must hold .txt, .jsonl or .parquet files, got none in {empty}")
    return domains


def read_documents(files: Sequence[Path]) -> list[str]:
    """The non-empty documents of the files, in file order."""
    docs = []
    for path in files:
        if path.suffix == ".txt":
            docs.append(path.read_text(encoding="utf-8", errors="replace"))
        elif path.suffix == ".jsonl":
            with open(path, encoding="utf-8") as f:
                for line_no, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    record = json.loads(line)
                    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                        raise ValueError(f"each .jsonl line must be an object with a string 'text', got line {line_no} "
                                         f"of {str(path)!r}")
                    docs.append(record["text"])
        else:
            try:
                import pandas as pd  # only when a .parquet file exists

                column = pd.read_parquet(path, columns=["text"])["text"]
            except ImportError as e:
                raise ImportError(f"reading .parquet files needs pandas and pyarrow (pip install pyarrow): {e}") from e
            docs.extend(str(t) for t in column if t is not None)
    return [d for d in docs if d.strip()]


def _shuffled(docs: list[str], seed: int, domain: str) -> list[str]:
    rng = np.random.default_rng([seed, zlib.crc32(domain.encode())])
    return [docs[i] for i in rng.permutation(len(docs))]


# -- tokenizers ---------------------------------------------------------------------------------

class ByteTokenizer:
    """UTF-8 bytes as tokens: vocabulary 256, nothing to train. Id 0 (NUL) ends a document."""

    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if i != EOT_ID).decode("utf-8", errors="replace")


def train_bpe(texts: Iterator[str], vocab_size: int):
    """A byte-level BPE (the GPT-2 kind) trained on `texts`; id 0 is "<|endoftext|>"."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT_TOKEN], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def _encode(docs: list[str], tok) -> list[np.ndarray]:
    """Each document's token ids followed by EOT_ID, as int64 arrays."""
    if tok is None:  # bytes
        return [np.append(np.frombuffer(d.encode("utf-8"), dtype=np.uint8).astype(np.int64), EOT_ID) for d in docs]
    return [np.array(e.ids + [EOT_ID], dtype=np.int64) for e in tok.encode_batch(docs)]


# -- building a dataset -------------------------------------------------------------------------

def _write_atomic(path: Path, data: bytes | np.ndarray) -> None:
    """Write to PATH.tmp, flush to disk, then rename over PATH: a reader sees the old file or the new."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        if isinstance(data, np.ndarray):
            data.tofile(f)
        else:
            f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bomix")
    except PackageNotFoundError:
        return "unknown"


def build_dataset(source_dir: str | Path, out_dir: str | Path, *, tokenizer: str = "bpe", vocab_size: int = 8192,
                  val_tokens: int | None = None, val_fraction: float = 0.05, val_only: Sequence[str] = (),
                  sample_bytes: int = 4_000_000, seed: int = 0,
                  log: Callable[[str], None] | None = None) -> dict:
    """Tokenise every domain of source_dir into out_dir; returns the manifest (also in manifest.json).

    tokenizer: "bpe" trains a byte-level BPE of `vocab_size` ids (at least 257: 256 bytes and the
        end-of-text token) on up to `sample_bytes` of text per domain; "bytes" uses UTF-8 bytes (256).
    val_tokens: validation tokens per domain (whole documents, so slightly more); when None,
        `val_fraction` of each domain's tokens. At least one document always stays in train.
    val_only: domains whose every document goes to validation (a held-out target set, e.g. the loss
        a user cares about on text no training domain matches); they cannot be given a weight.
    seed: decides the document shuffle, hence the split. Same inputs and seed -> identical files.
    """
    log = log or (lambda message: None)
    source_dir, out_dir = Path(source_dir).resolve(), Path(out_dir).resolve()
    sources = find_domains(source_dir)
    if out_dir == source_dir or source_dir in out_dir.parents:
        raise ValueError(f"out_dir must lie outside source_dir (it would become a domain), got {str(out_dir)!r}")
    if tokenizer not in ("bpe", "bytes"):
        raise ValueError(f"tokenizer must be 'bpe' or 'bytes', got {tokenizer!r}")
    if tokenizer == "bpe" and not (isinstance(vocab_size, int) and 257 <= vocab_size <= 2**32):
        raise ValueError(f"vocab_size must be an integer >= 257 (256 bytes + end-of-text) for a BPE, "
                         f"got {vocab_size!r}")
    if val_tokens is not None and (not isinstance(val_tokens, int) or val_tokens < 1):
        raise ValueError(f"val_tokens must be a positive integer or None, got {val_tokens!r}")
    if val_tokens is None and not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    unknown = sorted(set(val_only) - set(sources))
    if unknown:
        raise ValueError(f"val_only must name domains of source_dir {sorted(sources)}, got unknown {unknown}")
    out_dir.mkdir(parents=True, exist_ok=True)
    # Each file is replaced atomically and the manifest comes last; removing an old one first means a
    # rebuild that fails half way leaves no manifest, so no reader takes mixed files for a dataset.
    (out_dir / "manifest.json").unlink(missing_ok=True)

    # 1. The tokenizer, trained on the back of each domain's shuffled documents.
    tok = None
    if tokenizer == "bpe":
        sample = []
        for domain, files in sources.items():
            docs = _shuffled(read_documents(files), seed, domain)
            taken = 0
            for doc in reversed(docs[len(docs) // 2:] if domain not in val_only else []):
                if taken >= sample_bytes:
                    break
                sample.append(doc)
                taken += len(doc.encode("utf-8"))
        log(f"training a {vocab_size}-id byte-level BPE on {sum(len(s) for s in sample):,} characters")
        tok = train_bpe(iter(sample), vocab_size)
        _write_atomic(out_dir / "tokenizer.json", tok.to_str().encode("utf-8"))
        vocab = tok.get_vocab_size()
    else:
        vocab = ByteTokenizer.vocab_size
    dtype = np.uint16 if vocab <= 2**16 else np.uint32

    # 2. Each domain: shuffle documents, tokenise, validation from the front, the rest is train.
    domains = {}
    for domain, files in sources.items():
        docs = read_documents(files)
        if not docs:
            raise ValueError(f"each domain must hold at least one non-empty document, got none in {domain!r}")
        encoded = _encode(_shuffled(docs, seed, domain), tok)
        total = sum(len(e) for e in encoded)
        if domain in val_only:
            n_val = len(encoded)
        else:
            if len(encoded) < 2:
                raise ValueError(f"a domain needs at least 2 documents for a document-level validation split, got 1 "
                                 f"in {domain!r} (split a large .txt into several files, or use .jsonl)")
            target = val_tokens if val_tokens is not None else val_fraction * total
            n_val, counted = 0, 0
            while counted < target and n_val < len(encoded) - 1:
                counted += len(encoded[n_val])
                n_val += 1
        train = np.concatenate(encoded[n_val:] or [np.zeros(0, np.int64)]).astype(dtype)
        val = np.concatenate(encoded[:n_val]).astype(dtype)
        (out_dir / domain).mkdir(exist_ok=True)
        _write_atomic(out_dir / domain / "train.bin", train)
        _write_atomic(out_dir / domain / "val.bin", val)
        domains[domain] = {"train_tokens": int(train.size), "val_tokens": int(val.size),
                           "train_documents": len(encoded) - n_val, "val_documents": n_val, "files": len(files),
                           "bytes": sum(len(d.encode("utf-8")) for d in docs), "val_only": domain in val_only}
        log(f"{domain}: {len(docs):,} documents -> {train.size:,} train and {val.size:,} val tokens")

    manifest = {
        "format": "bomix-dataset/1",
        "bomix_version": _version(),
        "source_dir": str(source_dir),
        "tokenizer": {"kind": tokenizer, "vocab_size": vocab, "eot_id": EOT_ID,
                      **({"file": "tokenizer.json", "requested_vocab_size": vocab_size, "sample_bytes": sample_bytes}
                         if tokenizer == "bpe" else {})},
        "vocab_size": vocab,
        "dtype": np.dtype(dtype).name,
        "seed": seed,
        "split": {"val_tokens": val_tokens, "val_fraction": None if val_tokens is not None else val_fraction,
                  "val_only": sorted(val_only)},
        "domains": domains,
    }
    _write_atomic(out_dir / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return manifest


# -- reading a dataset --------------------------------------------------------------------------

class DomainData:
    """A dataset build_dataset wrote: per-domain token arrays opened as read-only memmaps.

    .domains        training domains (those with train tokens), in manifest order
    .val_domains    domains with validation tokens (training domains and val_only ones)
    .train_tokens   {domain: tokens}; .val_tokens likewise
    .vocab_size     ids are < vocab_size; id 0 ends each document
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest_path = self.path / "manifest.json"
        if not manifest_path.is_file():
            raise ValueError(f"a dataset directory must hold manifest.json (bomix data build writes it), "
                             f"got none in {str(self.path)!r}")
        self.manifest = json.loads(manifest_path.read_text())
        self.vocab_size = int(self.manifest["vocab_size"])
        self.dtype = np.dtype(self.manifest["dtype"])
        counts = self.manifest["domains"]
        self.train_tokens = {d: c["train_tokens"] for d, c in counts.items() if c["train_tokens"] > 0}
        self.val_tokens = {d: c["val_tokens"] for d, c in counts.items() if c["val_tokens"] > 0}
        self.domains = list(self.train_tokens)
        self.val_domains = list(self.val_tokens)
        self._arrays: dict[tuple[str, str], np.ndarray] = {}
        self._tokenizer = None

    def _open(self, domain: str, split: str) -> np.ndarray:
        counts = self.train_tokens if split == "train" else self.val_tokens
        if domain not in counts:
            raise ValueError(f"domain must be one of the {split} domains {list(counts)}, got {domain!r}")
        if (domain, split) not in self._arrays:
            array = np.memmap(self.path / domain / f"{split}.bin", dtype=self.dtype, mode="r")
            if array.size != counts[domain]:
                raise ValueError(f"{domain}/{split}.bin must hold the {counts[domain]:,} tokens manifest.json "
                                 f"counts, got {array.size:,} (rebuild the dataset)")
            self._arrays[domain, split] = array
        return self._arrays[domain, split]

    def train(self, domain: str) -> np.ndarray:
        """The domain's training tokens, a read-only (n,) memmap."""
        return self._open(domain, "train")

    def val(self, domain: str) -> np.ndarray:
        """The domain's validation tokens, a read-only (n,) memmap."""
        return self._open(domain, "val")

    @property
    def tokenizer(self):
        """A tokenizers.Tokenizer for a BPE dataset, a ByteTokenizer for a bytes one (loaded on use)."""
        if self._tokenizer is None:
            if self.manifest["tokenizer"]["kind"] == "bytes":
                self._tokenizer = ByteTokenizer()
            else:
                from tokenizers import Tokenizer

                self._tokenizer = Tokenizer.from_file(str(self.path / self.manifest["tokenizer"]["file"]))
        return self._tokenizer

    def space_caps(self, target_tokens: float, repetition_factor: float = 4.0) -> dict[str, float]:
        """{domain: repetition_factor * train_tokens / target_tokens}: the largest weight a domain can
        get in a run of target_tokens without being seen more than repetition_factor times. Pass it to
        bomix.MixtureSpace(caps=...) (values above 1 mean no limit). The default of 4 follows
        Muennighoff et al. (2023): up to about 4 epochs of repeated data cost almost nothing."""
        if not target_tokens > 0 or not repetition_factor > 0:
            raise ValueError(f"target_tokens and repetition_factor must be > 0, got {target_tokens!r} "
                             f"and {repetition_factor!r}")
        return {d: repetition_factor * n / target_tokens for d, n in self.train_tokens.items()}


def check_weights(weights: Mapping[str, float], domains: Sequence[str]) -> dict[str, float]:
    """{domain: weight} for every domain (missing ones get 0) after checking the mixture's rules."""
    unknown = sorted(set(weights) - set(domains))
    if unknown:
        raise ValueError(f"weights must name training domains of the dataset {list(domains)}, got unknown {unknown}")
    w = {d: float(weights.get(d, 0.0)) for d in domains}
    bad = {d: v for d, v in w.items() if not np.isfinite(v) or v < 0}
    if bad:
        raise ValueError(f"weights must be finite and >= 0, got {bad}")
    total = sum(w.values())
    if abs(total - 1.0) > SUM_ATOL:
        raise ValueError(f"weights must sum to 1, got {total:.6g} for {w}")
    return w


class MixtureSampler:
    """Batches of random windows whose domains follow the mixture: this is where the mixture enters.

    Each of a batch's `batch_size` sequences independently picks domain i with probability
    weights[i] (a zero weight is never picked), then a uniformly random window of block_size + 1
    consecutive tokens from that domain's train tokens. Everything comes from one numpy Generator
    seeded by `seed`, so a seed fixes every batch. The sampler counts the tokens it drew per domain;
    repetition() divides them by the tokens available (1.0 = one epoch of that domain on average).
    """

    def __init__(self, data: DomainData, weights: Mapping[str, float], batch_size: int, block_size: int, *, seed: int):
        self.data, self.batch_size, self.block_size = data, batch_size, block_size
        self.weights = check_weights(weights, data.domains)
        small = {d: data.train_tokens[d] for d, w in self.weights.items() if w > 0
                 and data.train_tokens[d] < block_size + 1}
        if small:
            raise ValueError(f"a domain with a positive weight needs at least block_size + 1 = {block_size + 1} train "
                             f"tokens, got {small}")
        self.domains = [d for d, w in self.weights.items() if w > 0]
        p = np.array([self.weights[d] for d in self.domains])
        self.p = p / p.sum()
        self.rng = np.random.default_rng(seed)
        self.sequences = {d: 0 for d in data.domains}

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y): (batch_size, block_size) int64 arrays, y is x shifted left by one token."""
        picks = self.rng.choice(len(self.domains), size=self.batch_size, p=self.p)
        x = np.empty((self.batch_size, self.block_size + 1), dtype=np.int64)
        for row, i in enumerate(picks):
            domain = self.domains[i]
            tokens = self.data.train(domain)
            start = self.rng.integers(0, tokens.size - self.block_size)
            x[row] = tokens[start:start + self.block_size + 1]
            self.sequences[domain] += 1
        return np.ascontiguousarray(x[:, :-1]), np.ascontiguousarray(x[:, 1:])

    def stats(self) -> dict:
        """Per domain: tokens drawn (block_size per sequence), repetition = drawn / train tokens, and
        the realised weights (fraction of the sequences drawn)."""
        drawn = {d: n * self.block_size for d, n in self.sequences.items()}
        total = max(1, sum(self.sequences.values()))
        return {"tokens_drawn": drawn,
                "repetition": {d: drawn[d] / self.data.train_tokens[d] for d in drawn},
                "realized_weights": {d: n / total for d, n in self.sequences.items()}}
