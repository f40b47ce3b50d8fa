"""Token counts read from the trainers' own data files, for the space's caps.

A cap is hi_i = repetition_factor * tokens_i / target_tokens (bomix.space.MixtureSpace.from_tokens),
so the counts must be exact and cheap to get. Each is read from metadata or the file size, never
by scanning tokens:

- Megatron (also GPT-NeoX) PREFIX.idx, the MMIDIDX index megatron-core's IndexedDatasetBuilder
  writes (megatron/core/datasets/indexed_dataset.py), little-endian:
      bytes 0-9    magic b"MMIDIDX\\x00\\x00"
      9-17         version, uint64, = 1
      17           dtype code, uint8: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64,
                   7 float32, 8 uint16
      18-26        sequence count N, uint64
      26-34        document count D, uint64
      34-          N int32 sequence lengths (tokens), then N int64 sequence pointers (byte
                   offsets into PREFIX.bin), then D int64 document indices
  The sequences lie back to back in PREFIX.bin, so tokens = (pointer[N-1] + itemsize *
  length[N-1]) / itemsize: two numbers read, whatever N. PREFIX.bin's size must agree.
- NumPy .npy files (a "\\x93NUMPY" header): the array's size, from the header.
- Raw token files (OLMo-core's .npy token files are raw arrays without a header, and .bin
  files): file size / itemsize of the given dtype, which is how OLMo-core counts them too.
- A bomix dataset directory (bomix data build): each domain's train_tokens from manifest.json.
"""

from __future__ import annotations

import glob
import json
import os
import struct
from pathlib import Path

import numpy as np

from bomix.errors import ConfigError

IDX_MAGIC = b"MMIDIDX\x00\x00"
IDX_HEADER_BYTES = 34  # magic 9 + version 8 + dtype 1 + sequence count 8 + document count 8
IDX_DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64, 7: np.float32,
              8: np.uint16}
NPY_MAGIC = b"\x93NUMPY"
TOKEN_DTYPES = ("uint8", "uint16", "uint32", "int32", "int64")


def megatron_tokens(prefix: str | os.PathLike) -> int:
    """Tokens in a Megatron indexed dataset, from PREFIX.idx (see the module docstring)."""
    idx = Path(str(prefix) + ".idx")
    try:
        with open(idx, "rb") as f:
            head = f.read(IDX_HEADER_BYTES)
            if len(head) < IDX_HEADER_BYTES or head[:9] != IDX_MAGIC:
                raise ConfigError(f"a Megatron index must start with {IDX_MAGIC!r} and a 34-byte header, got "
                                  f"{head[:9]!r} in {idx}")
            version, code, n, _ = struct.unpack("<QBQQ", head[9:])
            if version != 1 or code not in IDX_DTYPES:
                raise ConfigError(f"a Megatron index must have version 1 and a dtype code in {sorted(IDX_DTYPES)}, "
                                  f"got version {version} and code {code} in {idx}")
            itemsize = np.dtype(IDX_DTYPES[code]).itemsize
            if n == 0:
                return 0
            f.seek(IDX_HEADER_BYTES + 4 * (n - 1))
            (last_length,) = struct.unpack("<i", f.read(4))
            f.seek(IDX_HEADER_BYTES + 4 * n + 8 * (n - 1))
            raw = f.read(8)
            if len(raw) < 8:
                raise ConfigError(f"a Megatron index must hold {n} sequence lengths and pointers, but {idx} is "
                                  "shorter (truncated?)")
            (last_pointer,) = struct.unpack("<q", raw)
    except FileNotFoundError:
        raise ConfigError(f"a Megatron prefix P needs P.idx, got none at {str(idx)!r}") from None
    total = last_pointer + itemsize * last_length
    binary = Path(str(prefix) + ".bin")
    if binary.exists() and binary.stat().st_size != total:
        raise ConfigError(f"{binary} must hold the {total:,} bytes its index describes, got {binary.stat().st_size:,} "
                          "(a partial copy, or .bin and .idx from different builds?)")
    return total // itemsize


def file_tokens(path: str | os.PathLike, dtype: str | None = None) -> int:
    """Tokens in a .npy file (from its header) or a raw token file (size / itemsize of `dtype`)."""
    path = Path(path)
    with open(path, "rb") as f:
        magic = f.read(len(NPY_MAGIC))
    if magic == NPY_MAGIC:
        return int(np.load(path, mmap_mode="r", allow_pickle=False).size)
    if dtype is None:
        raise ConfigError(f"a raw token file has no header, so its dtype must be given (--dtype, one of "
                          f"{list(TOKEN_DTYPES)}; OLMo-core's .npy token files are raw), got none for {str(path)!r}")
    if dtype not in TOKEN_DTYPES:
        raise ConfigError(f"dtype must be one of {list(TOKEN_DTYPES)}, got {dtype!r}")
    itemsize = np.dtype(dtype).itemsize
    size = path.stat().st_size
    if size % itemsize:
        raise ConfigError(f"a raw {dtype} token file must be a whole number of {itemsize}-byte tokens, but "
                          f"{path} has {size:,} bytes (wrong --dtype?)")
    return size // itemsize


def manifest_tokens(directory: str | os.PathLike) -> dict[str, int]:
    """{domain: train tokens} of a bomix dataset directory, in manifest order (validation-only
    domains, with no train tokens, are left out: they cannot be given a weight)."""
    path = Path(directory) / "manifest.json"
    if not path.is_file():
        raise ConfigError(f"a bomix dataset directory must hold manifest.json (bomix data build writes it), got "
                          f"none in {str(directory)!r}")
    domains = json.loads(path.read_text())["domains"]
    return {d: int(c["train_tokens"]) for d, c in domains.items() if c["train_tokens"] > 0}


def path_tokens(path: str, dtype: str | None = None) -> int:
    """Tokens behind one mapping path: a Megatron prefix (or its .bin/.idx), a .npy or raw token
    file, or a glob of such files (summed)."""
    if "://" in path:
        raise ConfigError(f"token counts are read from local files, got the URL {path!r}")
    prefix = path.removesuffix(".bin").removesuffix(".idx")
    if os.path.isfile(prefix + ".idx"):
        return megatron_tokens(prefix)
    if glob.has_magic(path):
        files = sorted(p for p in glob.glob(path) if os.path.isfile(p))
        if not files:
            raise ConfigError(f"a glob must match at least one file, got none for {path!r}")
        return sum(path_tokens(p, dtype) for p in files)
    if os.path.isdir(path):
        raise ConfigError(f"token counts come from files (Megatron prefixes, .npy or raw token files) or a bomix "
                          f"dataset directory given as the source itself, got the directory {path!r}")
    if not os.path.isfile(path):
        raise ConfigError(f"each path must be an existing token file, Megatron prefix or glob, got {path!r}")
    return file_tokens(path, dtype)


def count_tokens(source, dtype: str | None = None) -> dict[str, int]:
    """{domain: tokens} from a bomix dataset directory, or from a mapping (file, dict or
    DataMapping) whose paths are token files or Megatron prefixes."""
    from bomix.integrations.mapping import load_mapping

    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        return manifest_tokens(source)
    mapping = load_mapping(source)
    out = {}
    for domain, s in mapping.sources.items():
        try:
            out[domain] = sum(path_tokens(p, dtype) for p in s.paths)
        except ConfigError as e:
            raise ConfigError(f"{mapping.origin} domain {domain!r}: {e}") from None
    return out
