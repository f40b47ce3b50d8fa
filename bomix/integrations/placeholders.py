"""`{mixture:FORMAT}` placeholders of the command evaluator: each trial's mixture in a trainer's form.

For every format named in the command's arguments, the evaluator writes the trial's mixture to
D/mixture-FORMAT.EXT (D the trial directory; EXT from formats.SUFFIXES) before the command
starts, replaces `{mixture:FORMAT}` by that file's path, and sets BOMIX_MIXTURE_<FORMAT> (upper
case, "-" -> "_": BOMIX_MIXTURE_OLMO_CORE) to it. Everything that can be checked without a
mixture (known formats, a mapping when a format needs one, the mapping's paths and its domains
against the evaluator's) is checked when the evaluator is built, so a bad setup launches nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

from bomix.errors import BomixError, ConfigError, EvaluationError

PLACEHOLDER = re.compile(r"\{mixture:([^{}]*)\}")


def placeholder_formats(argv) -> tuple[str, ...]:
    """The formats named by {mixture:FORMAT} in any argument, in first-use order; ConfigError for
    an unknown one."""
    from bomix.integrations.formats import FORMATS

    found = []
    for arg in argv:
        for fmt in PLACEHOLDER.findall(arg):
            if fmt not in FORMATS:
                raise ConfigError(f"{{mixture:FORMAT}} placeholders must name one of {list(FORMATS)}, got "
                                  f"{{mixture:{fmt}}} in {arg!r}")
            if fmt not in found:
                found.append(fmt)
    return tuple(found)


def env_name(fmt: str) -> str:
    return "BOMIX_MIXTURE_" + fmt.upper().replace("-", "_")


def file_name(fmt: str) -> str:
    from bomix.integrations.formats import SUFFIXES

    return f"mixture-{fmt}{SUFFIXES[fmt]}"


def prepare(mapping, formats, domains):
    """The parsed mapping (None when none is given), checked for `formats` and `domains`."""
    if mapping is None:
        needing = [f for f in formats if f not in ("json", "yaml")]
        if needing:
            raise ConfigError(f"placeholders {[f'{{mixture:{f}}}' for f in needing]} need a mapping from domains to "
                              "data: give the command evaluator mapping = \"data.toml\"")
        return None
    from bomix.integrations.mapping import PATH_KINDS, load_mapping

    parsed = load_mapping(mapping)
    if domains is not None:
        parsed.check_domains(domains)
    for fmt in formats:
        if fmt in PATH_KINDS:
            for domain in parsed.domains:
                parsed.paths(domain, fmt)
    return parsed


def write_trial_files(weights, formats, mapping, directory: Path) -> dict[str, str]:
    """{format: path} of the trial's mixture written in each format; EvaluationError (before the
    command starts) when one cannot be written."""
    from bomix.integrations.formats import write_mixture

    out = {}
    for fmt in formats:
        path = directory / file_name(fmt)
        try:
            write_mixture(weights, fmt, path, mapping)
        except BomixError as e:
            raise EvaluationError(f"the trial's mixture must be writable as {fmt} before the command starts: {e}") \
                from None
        out[fmt] = str(path)
    return out
