"""The data mapping: which of the user's files each bomix domain stands for.

bomix knows domains by name ("books", "cc"); a trainer knows token files, Megatron prefixes,
litdata directories. A mapping file (TOML) joins the two, once, for every format:

    [domains]
    books = "/data/books/part-*.npy"                   # one path, prefix or glob
    cc    = ["/data/cc/part-0.npy", "/data/cc/part-1.npy"]
    code  = { paths = ["/data/code/*.npy"], name = "the-stack", max_repetition_ratio = 2.0 }

    [olmo-core]                                        # options that one format reads
    requested_tokens = 2_000_000_000
    global_batch_size = 4_194_304

A domain's long form takes `paths`, `name` (the source's name in the trainer's config; default the
domain) and OLMo-core's per-source `max_repetition_ratio` / `max_source_fraction`. Relative paths
are relative to the mapping file. What a path must be depends on the format (see PATH_KINDS): a
file or glob (OLMo-core, Levanter), a Megatron prefix with PREFIX.bin and PREFIX.idx (Megatron,
GPT-NeoX; a trailing .bin or .idx is dropped), a directory (litgpt: a litdata directory with
index.json; torchtitan: a Hugging Face dataset path). Paths with a scheme (s3://, gs://, hf://)
are passed through unchecked: bomix cannot look at object stores offline.
"""

from __future__ import annotations

import glob
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bomix.errors import ConfigError

DOMAIN_KEYS = ("paths", "name", "max_repetition_ratio", "max_source_fraction")
FORMAT_OPTIONS = {  # the options table of each format and the keys it may hold
    "olmo-core": ("requested_tokens", "global_batch_size", "seed", "max_repetition_ratio", "max_source_fraction"),
    "torchtitan": ("seed", "stopping_strategy"),
    "litgpt": ("seed",),
    "megatron": (),
    "levanter": (),
    "gpt-neox": (),
}
PATH_KINDS = {  # what a domain's paths must be, per format
    "olmo-core": "files", "levanter": "files",
    "megatron": "prefix", "gpt-neox": "prefix",
    "litgpt": "litdata", "torchtitan": "exists",
}


def is_url(path: str) -> bool:
    """A path with a scheme (s3://, gs://, https://, hf://): not checked on the local disk."""
    return "://" in path


@dataclass(frozen=True)
class Source:
    """One domain's data. paths: absolute paths, prefixes or globs (URLs as given), in file order."""

    domain: str
    name: str
    paths: tuple[str, ...]
    options: dict = field(default_factory=dict)  # per-source OLMo-core options


@dataclass(frozen=True)
class DataMapping:
    """A parsed mapping: sources {domain: Source} in file order, options {format: {key: value}}.
    `origin` names the file (or "mapping") in messages."""

    sources: dict
    options: dict
    origin: str = "mapping"

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(self.sources)

    def check_domains(self, domains) -> None:
        """ConfigError unless the mapping names exactly `domains` (any order)."""
        domains = list(domains)
        missing = [d for d in domains if d not in self.sources]
        extra = [d for d in self.sources if d not in domains]
        if missing:
            raise ConfigError(f"{self.origin} must map every domain of the mixture to its data, missing {missing} "
                              f"(the mixture's domains are {domains})")
        if extra:
            raise ConfigError(f"{self.origin} must map only the mixture's domains {domains}, got unknown {extra} "
                              "(a typo, or a mapping for another study?)")

    def option(self, fmt: str, key: str, default=None):
        return self.options.get(fmt, {}).get(key, default)

    def paths(self, domain: str, fmt: str) -> list[str]:
        """The domain's paths as format `fmt` takes them, checked on disk (ConfigError naming the
        path and what was expected); globs stay globs (the trainers expand them)."""
        kind = PATH_KINDS[fmt]
        source = self.sources[domain]
        if kind in ("litdata", "exists") and len(source.paths) != 1:
            raise ConfigError(f"{fmt} takes one dataset path per source, but {self.origin} gives domain {domain!r} "
                              f"{len(source.paths)}: {list(source.paths)} (point it at one directory)")
        out = []
        for path in source.paths:
            if kind == "prefix":
                path = path.removesuffix(".bin").removesuffix(".idx")
            if not is_url(path):
                _check_path(path, kind, f"{self.origin} domain {domain!r}")
            out.append(path)
        return out


def _check_path(path: str, kind: str, where: str) -> None:
    if kind == "files":
        if glob.has_magic(path):
            if not any(os.path.isfile(p) for p in glob.glob(path)):
                raise ConfigError(f"{where}: a glob must match at least one file, got none for {path!r}")
        elif not os.path.isfile(path):
            raise ConfigError(f"{where}: each path must be an existing file (or a glob), got {path!r}")
    elif kind == "prefix":
        absent = [p for p in (path + ".bin", path + ".idx") if not os.path.isfile(p)]
        if absent:
            raise ConfigError(f"{where}: a Megatron prefix P needs P.bin and P.idx, but {absent} do not exist "
                              f"(prefix {path!r})")
    elif kind == "litdata":
        if not os.path.isfile(os.path.join(path, "index.json")):
            raise ConfigError(f"{where}: a litdata dataset must be a directory holding index.json (litdata's "
                              f"optimize() writes it), got {path!r}")
    elif not os.path.exists(path):
        raise ConfigError(f"{where}: the path must exist, got {path!r}")


def _number(where: str, value, *, integer: bool = False, low: float = 0.0, high: float = math.inf):
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{where} must be {kind} in [{low:g}, {high:g}], got {value!r}")
    return int(value) if integer else float(value)


def _check_option(where: str, key: str, value):
    if key in ("requested_tokens", "global_batch_size"):
        return _number(where, value, integer=True, low=1)
    if key == "seed":
        return _number(where, value, integer=True, low=0)
    if key == "max_repetition_ratio":
        return _number(where, value, low=1)
    if key == "max_source_fraction":
        return _number(where, value, low=0, high=1)
    if key == "stopping_strategy":
        if value not in ("on_first_exhausted", "all_exhausted"):
            raise ConfigError(f"{where} must be 'on_first_exhausted' or 'all_exhausted', got {value!r}")
    return value


def _source(domain: str, entry, base: Path, origin: str) -> Source:
    where = f"{origin} [domains] {domain}"
    if isinstance(entry, (str, list)):
        entry = {"paths": entry}
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a path, a list of paths or a table {{paths = [...], name = ...}}, "
                          f"got {entry!r}")
    unknown = sorted(set(entry) - set(DOMAIN_KEYS))
    if unknown:
        raise ConfigError(f"{where} keys must be among {list(DOMAIN_KEYS)}, got unknown {unknown}")
    paths = entry.get("paths")
    paths = [paths] if isinstance(paths, str) else paths
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise ConfigError(f"{where} must give at least one path (a non-empty string), got {entry.get('paths')!r}")
    resolved = tuple(p if is_url(p) else str((base / os.path.expanduser(p)).absolute()) for p in paths)
    name = entry.get("name", domain)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where} name must be a non-empty string, got {name!r}")
    options = {k: _check_option(f"{where} {k}", k, entry[k]) for k in DOMAIN_KEYS[2:] if k in entry}
    return Source(domain, name, resolved, options)


def parse_mapping(raw: Mapping, *, base: str | os.PathLike = ".", origin: str = "mapping") -> DataMapping:
    """A DataMapping from the nested dict of a mapping file; relative paths are taken from `base`."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{origin} must be a table with [domains], got {raw!r}")
    allowed = ["domains", *FORMAT_OPTIONS]
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ConfigError(f"{origin} tables must be among {allowed}, got unknown {unknown}")
    domains = raw.get("domains")
    if not isinstance(domains, Mapping) or not domains:
        raise ConfigError(f"{origin} must have a [domains] table with one entry per domain, got {domains!r}")
    base = Path(base)
    sources = {str(d): _source(str(d), entry, base, origin) for d, entry in domains.items()}
    names = [s.name for s in sources.values()]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{origin} source names must be distinct (each becomes one source of the trainer), got "
                          f"{dupes} more than once")
    options = {}
    for fmt, keys in FORMAT_OPTIONS.items():
        table = raw.get(fmt, {})
        if not isinstance(table, Mapping):
            raise ConfigError(f"{origin} [{fmt}] must be a table of options, got {table!r}")
        bad = sorted(set(table) - set(keys))
        if bad:
            raise ConfigError(f"{origin} [{fmt}] keys must be among {list(keys)}, got unknown {bad}")
        options[fmt] = {k: _check_option(f"{origin} [{fmt}] {k}", k, v) for k, v in table.items()}
    return DataMapping(sources, options, origin)


def load_mapping(mapping) -> DataMapping:
    """A DataMapping from a TOML file path, a dict (paths relative to the working directory), or
    a DataMapping (returned as is). ConfigError names the file and the problem."""
    if isinstance(mapping, DataMapping):
        return mapping
    if isinstance(mapping, Mapping):
        return parse_mapping(mapping)
    if not isinstance(mapping, (str, os.PathLike)):
        raise ConfigError(f"a mapping must be a TOML file path or a table, got {mapping!r}")
    path = Path(mapping).expanduser()
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"the mapping file must exist, got {str(path)!r}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"the mapping file {path} must be readable text: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"the mapping file {path} must be valid TOML: {e}") from None
    return parse_mapping(raw, base=path.absolute().parent, origin=str(path))
