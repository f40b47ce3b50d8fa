"""Token counts into a campaign config's [space] table, keeping every other line of the file.

bomix reads TOML with the standard library, which cannot write it, so the edit is textual: the
`tokens` (and, when given, `target_tokens` / `repetition_factor`) lines of the [space] table are
replaced, or added at the end of that table, or a [space] table is appended. Comments, order and
formatting elsewhere stay byte for byte. The result is then parsed again and must equal the old
config with exactly those keys changed, and its [space] must build a MixtureSpace (so counts too
small for the target, where no mixture fits under the caps, are refused); otherwise nothing is
written and the error shows the snippet to paste by hand. The file is replaced atomically.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import tomllib
from pathlib import Path

from bomix.errors import BomixError, ConfigError

BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
HEADER = re.compile(r"^[ \t]*\[")
SPACE_HEADER = re.compile(r"^[ \t]*\[[ \t]*space[ \t]*\][ \t]*(#.*)?$")


def toml_key(name: str) -> str:
    """A TOML key: bare when it can be, else a quoted string ("web:news")."""
    return name if BARE_KEY.match(name) else json.dumps(name)


def toml_value(value) -> str:
    """A TOML value for an int, float, string or flat table of numbers (one line)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"config values must be finite numbers, got {value!r}")
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return json.dumps(str(value))


def space_values(tokens: dict, target_tokens=None, repetition_factor=None) -> dict:
    values = {"tokens": dict(tokens)}
    if target_tokens is not None:
        values["target_tokens"] = target_tokens
    if repetition_factor is not None:
        values["repetition_factor"] = repetition_factor
    return values


def space_snippet(tokens: dict, target_tokens=None, repetition_factor=None) -> str:
    """The [space] lines that give these token counts, as TOML text."""
    lines = ["[space]", *(f"{k} = {toml_value(v)}" for k, v in space_values(tokens, target_tokens,
                                                                          repetition_factor).items())]
    if target_tokens is None:
        lines.append("# target_tokens = ...   # the token budget of the run the mixture is for (caps need it)")
    return "\n".join(lines) + "\n"


def _line_with_comment(old: str, key: str, value) -> str:
    """`key = value`, keeping `old`'s indentation and its trailing comment when it has one that
    can be told apart from the value (the part before '#' must be valid TOML on its own)."""
    indent = old[: len(old) - len(old.lstrip())]
    new = f"{indent}{toml_key(key)} = {toml_value(value)}"
    for i, ch in enumerate(old):
        if ch == "#":
            try:
                tomllib.loads(old[:i])
            except tomllib.TOMLDecodeError:
                continue
            return f"{new}  {old[i:].rstrip()}"
    return new


def merge_space(text: str, values: dict, origin: str = "config") -> str:
    """TOML `text` with [space] keys set to `values`, every other line kept; ConfigError when the
    table cannot be edited safely (verified by parsing the result)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{origin} must be valid TOML: {e}") from None
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if SPACE_HEADER.match(ln)), None)
    if start is None:
        if "space" in data:
            raise ConfigError(f"{origin} defines space without a [space] header (an inline table or dotted keys), "
                              "which bomix does not edit; use a [space] table")
        block = ["", "[space]", *(f"{toml_key(k)} = {toml_value(v)}" for k, v in values.items())]
        lines = (lines[:-1] if lines and not lines[-1].strip() else lines) + block
    else:
        end = next((i for i in range(start + 1, len(lines)) if HEADER.match(lines[i])), len(lines))
        last = start  # the table's last line with content: new keys go after it
        for i in range(start + 1, end):
            if lines[i].strip() and not lines[i].lstrip().startswith("#"):
                last = i
        added = []
        for key, value in values.items():
            pattern = re.compile(rf"^[ \t]*(?:{re.escape(key)}|\"{re.escape(key)}\")[ \t]*=")
            at = next((i for i in range(start + 1, end) if pattern.match(lines[i])), None)
            if at is None:
                added.append(f"{toml_key(key)} = {toml_value(value)}")
            else:
                lines[at] = _line_with_comment(lines[at], key, value)
        lines[last + 1:last + 1] = added
    out = "\n".join(lines) + "\n"
    expected = copy.deepcopy(data)
    expected.setdefault("space", {}).update(values)
    try:
        ok = tomllib.loads(out) == expected
    except tomllib.TOMLDecodeError:
        ok = False
    if not ok:
        raise ConfigError(f"{origin}'s [space] table is written in a form bomix cannot edit safely (e.g. a "
                          f"[space.tokens] table or multi-line values); nothing was written. Add these lines to "
                          f"[space] by hand:\n" + "\n".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in values.items()))
    return out


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to PATH.tmp, flush to disk, rename over PATH (keeping PATH's permissions): a
    reader sees the old file or the whole new one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    if path.exists():
        os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)


def write_tokens(config, tokens: dict, *, target_tokens=None, repetition_factor=None) -> dict:
    """Merge token counts into the campaign config file `config` ([space] tokens, ordered as its
    space.domains) and return the new [space] table. Refused, with nothing written, when the
    counts' domains differ from space.domains, when the config has caps (tokens set the caps), or
    when the resulting space is not valid (no target_tokens, or caps that leave no mixture)."""
    from bomix.config import SpaceConfig, check_section

    path = Path(config)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"the config to merge into must exist, got {str(path)!r}") from None
    try:
        space = dict(tomllib.loads(text).get("space", {}))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} must be valid TOML: {e}") from None
    domains = space.get("domains") or list(tokens)
    missing, extra = [d for d in domains if d not in tokens], [d for d in tokens if d not in domains]
    if missing or extra:
        raise ConfigError(f"token counts must cover exactly {path}'s space.domains {list(domains)}; missing "
                          f"{missing}, unknown {extra}")
    if space.get("caps") is not None:
        raise ConfigError(f"{path} has space.caps, and tokens set the caps (repetition_factor x tokens / "
                          "target_tokens); remove caps first, or keep them and leave tokens out")
    values = space_values({d: tokens[d] for d in domains}, target_tokens, repetition_factor)
    new_text = merge_space(text, values, str(path))
    new_space = tomllib.loads(new_text)["space"]
    try:
        SpaceConfig(**check_section("space", SpaceConfig, new_space)).build()
    except BomixError as e:
        raise ConfigError(f"{path} would not load with these token counts, so nothing was written: {e}") from None
    write_text_atomic(path, new_text)
    return new_space
