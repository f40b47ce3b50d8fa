"""Campaign configs: flat frozen dataclasses, read from TOML, then overridden by `--set key=value`.

    [study]                      # where and how long
    dir = "runs/seedlike-sobol"
    seed = 0
    n_trials = 40
    objective = "mean"           # "worst", "target:NAME", or {kind = "weighted", weights = {...}}

    [space]
    domains = ["books", "cc", "stack", "pes2o", "reddit"]
    floors = {pes2o = 0.02}      # optional; caps likewise, or tokens + target_tokens + repetition_factor

    [optimizer]
    name = "sobol"
    params = {}                  # constructor arguments; seed defaults to study.seed

    [evaluator]
    name = "landscape"
    params = {name = "seedlike", noise_sd = 0.017, seed = 0}

The resolved config is written next to the study as config.json.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bomix.errors import ConfigError


@dataclass(frozen=True)
class StudyConfig:
    dir: str = "runs/study"            # the study directory (created, or resumed if it exists)
    seed: int = 0                      # study seed: trial seeds and the optimizer's default seed
    n_trials: int | None = None        # budget: finished (completed + failed) trials in the study;
    #                                    default 64, or with compute_budget as many as the compute buys
    compute_budget: float | None = None  # multi-fidelity: total compute in the fidelities' cost units
    n_parallel: int = 1                # trials in flight at once
    runner: str | dict = "inline"      # where trials run: a name, or {name = "ray", params = {num_gpus = 1}}
    timeout: float | None = None       # seconds a trial may run before it is stopped and FAILED (not inline)
    retries: int = 0                   # further tries of a FAILED mixture (each a trial of the budget)
    max_failures: int | None = None    # stop after this many failed trials in a run (None: >= 5 and > half)
    objective: str | dict = "mean"     # what to minimise, from per-domain losses
    show_progress: bool | None = None  # progress bar; None: only on a terminal
    replicate_top: int = 0             # after the budget, re-evaluate the m best mixtures ...
    replicate_repeats: int = 2         # ... this many more times each, with fresh seeds

    @property
    def trials(self) -> int | None:
        """The n_trials a campaign runs: n_trials; else 64, or None (the compute bounds it) when
        compute_budget is set."""
        if self.n_trials is None and self.compute_budget is None:
            return 64
        return self.n_trials

    def __post_init__(self):
        if self.n_trials is not None and self.n_trials < 0:
            raise ConfigError(f"study.n_trials must be >= 0, got {self.n_trials}")
        if self.n_parallel < 1:
            raise ConfigError(f"study.n_parallel must be >= 1, got {self.n_parallel}")
        if self.compute_budget is not None and not self.compute_budget > 0:
            raise ConfigError(f"study.compute_budget must be a number > 0, got {self.compute_budget}")
        if isinstance(self.runner, dict):
            bad = sorted(set(self.runner) - {"name", "params"})
            if bad or not isinstance(self.runner.get("name"), str) or not isinstance(self.runner.get("params", {}), dict):
                raise ConfigError(f"study.runner must be a name or a table {{name = ..., params = {{...}}}}, "
                                  f"got {self.runner!r}")
        if self.retries < 0:
            raise ConfigError(f"study.retries must be >= 0, got {self.retries}")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"study.timeout must be > 0 seconds, got {self.timeout}")
        if self.max_failures is not None and self.max_failures < 0:
            raise ConfigError(f"study.max_failures must be >= 0, got {self.max_failures}")
        if self.replicate_top < 0 or self.replicate_repeats < 1:
            raise ConfigError(f"study.replicate_top must be >= 0 and study.replicate_repeats >= 1, got "
                              f"{self.replicate_top} and {self.replicate_repeats}")


@dataclass(frozen=True)
class SpaceConfig:
    domains: list = field(default_factory=list)  # ordered training domain names
    floors: dict | float | None = None           # minimum weight per domain
    caps: dict | float | None = None             # maximum weight per domain
    tokens: dict | None = None                   # available tokens per domain -> caps
    target_tokens: float | None = None           # token budget of the run the mixture is for
    repetition_factor: float = 1.0               # epochs allowed per domain
    prior: dict | list | None = None             # natural shares per domain (e.g. token shares), normalised

    def __post_init__(self):
        if self.tokens is not None and self.caps is not None:
            raise ConfigError("space: give caps or tokens (+ target_tokens), not both")
        if self.tokens is not None and self.target_tokens is None:
            raise ConfigError("space.tokens needs space.target_tokens (the token budget) to turn into caps")

    def build(self):
        from bomix.space import MixtureSpace

        if self.tokens is not None:
            if self.domains and list(self.domains) != list(self.tokens):
                raise ConfigError(f"space.tokens must list space.domains in order, got {list(self.tokens)} "
                                  f"for {list(self.domains)}")
            return MixtureSpace.from_tokens(self.tokens, target_tokens=self.target_tokens,
                                            repetition_factor=self.repetition_factor, floors=self.floors,
                                            prior=self.prior)
        return MixtureSpace(self.domains, floors=self.floors, caps=self.caps, prior=self.prior)


@dataclass(frozen=True)
class ComponentConfig:
    name: str = ""                              # a registered name
    params: dict = field(default_factory=dict)  # its constructor arguments


@dataclass(frozen=True)
class Config:
    study: StudyConfig = field(default_factory=StudyConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    optimizer: ComponentConfig = field(default_factory=lambda: ComponentConfig("sobol"))
    evaluator: ComponentConfig = field(default_factory=lambda: ComponentConfig("landscape"))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def write(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)


DEFAULTS = {f.name: f.default_factory() for f in dataclasses.fields(Config)}  # section -> default instance


def _check_type(where: str, value, annotation) -> None:
    hint = typing.get_type_hints(annotation[0])[annotation[1]]
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    options = tuple(typing.get_origin(o) or o for o in options)
    options = tuple(type(None) if o is None else o for o in options)
    if float in options:
        options += (int,)
    if isinstance(value, bool) and bool not in options:
        ok = False
    else:
        ok = isinstance(value, options)
    if not ok:
        # TOML has no null, so a key that may be left out is named by the type it takes
        names = " or ".join(o.__name__ for o in options if o is not type(None))
        raise ConfigError(f"{where} must be {names}, got {value!r} ({type(value).__name__})")


def check_section(name: str, cls, values) -> dict:
    """`values` for section [name] of dataclass `cls`, checked: a table, known keys, right types."""
    if not isinstance(values, dict):
        raise ConfigError(f"[{name}] must be a table, got {values!r}")
    keys = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(values) - keys)
    if bad:
        raise ConfigError(f"[{name}] keys must be among {sorted(keys)}, got unknown {bad}")
    for key, value in values.items():
        _check_type(f"{name}.{key}", value, (cls, key))
    return values


def from_dict(raw: dict[str, Any]) -> Config:
    """A Config from nested dicts; unknown sections/keys and wrong types raise ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a table of sections, got {raw!r}")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"config sections must be among {sorted(DEFAULTS)}, got unknown {unknown}")
    sections = {}
    for name, default in DEFAULTS.items():
        cls = type(default)
        values = check_section(name, cls, raw.get(name, {}))
        sections[name] = dataclasses.replace(default, **values)
    return Config(**sections)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'study.n_trials=64' -> (['study', 'n_trials'], 64). Values are TOML; bare words are strings."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set takes key=value (e.g. study.n_trials=64), got {text!r}")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key.strip().split("."), parsed


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Read a TOML config (or start from defaults when `path` is None) and apply `--set` overrides."""
    return from_dict(read_toml(path, overrides, example="study.seed=1"))


def read_toml(path: str | Path | None, overrides=(), *, example: str = "study.seed=1") -> dict:
    """The nested dict of a TOML file (empty when `path` is None) with `--set key=value` overrides
    applied; `example` is the key=value shown when an override is not section.key."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file must exist, got {str(path)!r}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path} must be valid TOML: {e}") from None
    for text in overrides:
        keys, value = parse_override(text)
        if len(keys) < 2:
            raise ConfigError(f"--set keys are section.key (e.g. {example}), got {text!r}")
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: {k} is not a table")
        node[keys[-1]] = value
    return raw
