#!/usr/bin/env python3
"""Build a multi-domain corpus of real human-written text, offline, from Debian packages.

Every domain is text that people wrote, taken from files a Debian system installs, so the
corpus can be rebuilt anywhere with the project's machine and no download other than
Debian's own packages:

    code        the Python standard library's source (the running interpreter's ``Lib``)
    pydocs      the Python documentation's reStructuredText sources (python3-doc)
    manpages    manual pages rendered to plain text by man-db/groff
    dictionary  GCIDE, Webster's 1913 dictionary plus later additions (dict-gcide)
    bible       the King James Version, one chapter per document (bible-kjv)
    fortunes    fortune cookies: quotations, jokes, aphorisms (fortunes)
    legal       licence texts and Debian copyright files, repeated paragraphs removed

Usage::

    python experiments/build_corpus.py --install          # data/corpus/text, 20 MB cap per domain
    python experiments/build_corpus.py --small            # data/corpus/small, 1 MB cap per domain
    python experiments/build_corpus.py --list             # the domains, packages and licences

The output is ``OUT/<domain>/<domain>.jsonl``: one JSON object per line, ``{"source": ...,
"text": ...}``, one document per line, plus ``OUT/manifest.json`` (sizes, package versions,
parameters). A build is deterministic: inputs are read in sorted order, the documents kept
under a domain's cap are chosen in the order of a hash of their source names (so a smaller
cap keeps, nearly always exactly, a subset of a larger one's documents), and files are
written atomically and only when their content changes. Documents longer than
``MAX_DOC_CHARS`` are split at paragraph breaks.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import unicodedata
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "data" / "corpus" / "text"
SMALL_OUTPUT = REPO / "data" / "corpus" / "small"
DEFAULT_MAX_MB = 20.0
SMALL_MAX_MB = 1.0
MB = 1_000_000
MAX_DOC_CHARS = 32_000  # longer documents are split at paragraph breaks
SELECT_PATIENCE = 50  # selection stops after this many documents in a row did not fit
MANPAGES_PER_PACKAGE = 50  # no single package's man pages may dominate the domain
MIN_MANPAGE_CHARS = 200
FORMAT_VERSION = 1

MAN_ROOT = Path("/usr/share/man")
DOC_ROOT = Path("/usr/share/doc")
LICENSE_ROOT = Path("/usr/share/common-licenses")
FORTUNE_ROOT = Path("/usr/share/games/fortunes")
GCIDE_INDEX = Path("/usr/share/dictd/gcide.index")
GCIDE_DICT = Path("/usr/share/dictd/gcide.dict.dz")
BIBLE_DATA = Path("/usr/lib/bible.data")
DPKG_STATUS = Path("/var/lib/dpkg/status")
DPKG_INFO = Path("/var/lib/dpkg/info")

FORTUNE_SKIP = frozenset({"ascii-art"})  # pictures, not prose
CODE_SKIP_DIRS = frozenset(
    {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "pydoc_data"}
)
_GENERATED = re.compile(
    r"(?i)\b(auto-?generated|automatically generated|generated from|do not edit)\b"
)


class CorpusError(Exception):
    """A problem the user can fix: a bad output path, an unknown domain, a missing source."""


# --------------------------------------------------------------------------------------
# Text helpers


_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")
_OVERSTRIKE = re.compile(r".\x08")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def decode(data: bytes) -> str:
    """UTF-8 where it is valid, else Latin-1 (every byte string decodes)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_maybe_compressed(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix in (".gz", ".dz") or data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if path.suffix == ".bz2":
        return bz2.decompress(data)
    if path.suffix in (".xz", ".lzma"):
        return lzma.decompress(data)
    return data


def normalize(text: str, squeeze_blank_lines: bool = True) -> str:
    """Plain-text clean-up every domain shares.

    Unix newlines (U+2028/2029 too, so a reader that splits JSONL with str.splitlines
    cannot cut a document), no overstrikes, ANSI sequences or control characters other
    than tab and newline, NFC, no trailing spaces, at most one blank line in a row (unless
    squeeze_blank_lines is false: code keeps its two), no blank lines at either end.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u2028", "\n").replace("\u2029", "\n\n").replace("\x85", "\n")
    text = _OVERSTRIKE.sub("", text)
    text = _ANSI.sub("", text)
    text = _CTRL.sub("", text)
    text = unicodedata.normalize("NFC", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    if squeeze_blank_lines:
        text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")


def _pieces(text: str, max_chars: int) -> Iterator[str]:
    """Paragraphs no longer than max_chars (long ones split at lines, then hard)."""
    for para in text.split("\n\n"):
        if not para.strip():
            continue
        if len(para) <= max_chars:
            yield para
            continue
        cur: list[str] = []
        size = 0
        for line in para.split("\n"):
            while len(line) > max_chars:
                if cur:
                    yield "\n".join(cur)
                    cur, size = [], 0
                yield line[:max_chars]
                line = line[max_chars:]
            if cur and size + 1 + len(line) > max_chars:
                yield "\n".join(cur)
                cur, size = [], 0
            size += len(line) + (1 if cur else 0)
            cur.append(line)
        if cur and "\n".join(cur).strip():
            yield "\n".join(cur)


def split_long(text: str, max_chars: int = MAX_DOC_CHARS) -> list[str]:
    """Split a document longer than max_chars at paragraph breaks into chunks <= max_chars."""
    if len(text) <= max_chars:
        return [text] if text.strip() else []
    chunks: list[str] = []
    cur: list[str] = []
    size = 0
    for piece in _pieces(text, max_chars):
        add = len(piece) + (2 if cur else 0)
        if cur and size + add > max_chars:
            chunks.append("\n\n".join(cur))
            cur, size, add = [], 0, len(piece)
        cur.append(piece)
        size += add
    if cur:
        chunks.append("\n\n".join(cur))
    return [c.strip("\n") for c in chunks if c.strip()]


def _walk(root: Path, skip_dirs: frozenset[str] = frozenset()) -> list[Path]:
    """Regular files under root (symlinks neither followed nor listed), sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
        for name in filenames:
            p = Path(dirpath) / name
            if p.is_file() and not p.is_symlink():
                out.append(p)
    return sorted(out)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------
# Debian package facts


def dpkg_nonfree_packages(status: Path = DPKG_STATUS) -> frozenset[str]:
    """Installed packages from Debian's non-free areas: their files are left out."""
    if not status.is_file():
        return frozenset()
    out = set()
    for stanza in decode(status.read_bytes()).split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line[0].isspace()
        )
        if fields.get("Section", "").startswith("non-free") and "Package" in fields:
            out.add(fields["Package"])
    return frozenset(out)


def dpkg_owners(prefix: str, info: Path = DPKG_INFO) -> dict[str, str]:
    """Map each installed path starting with prefix to the package that owns it."""
    owners: dict[str, str] = {}
    if not info.is_dir():
        return owners
    for lst in sorted(info.glob("*.list")):
        pkg = lst.name[: -len(".list")].split(":")[0]
        for line in decode(lst.read_bytes()).splitlines():
            if line.startswith(prefix):
                owners.setdefault(line, pkg)
    return owners


def dpkg_version(package: str) -> str | None:
    if not shutil.which("dpkg-query"):
        return None
    r = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True
    )
    return (r.stdout.strip() or None) if r.returncode == 0 else None


# --------------------------------------------------------------------------------------
# Domains


@dataclass(frozen=True)
class Candidate:
    """One input document before selection: a stable name and how to produce its text."""

    key: str
    load: Callable[[], str | None]


def _const(text: str) -> Callable[[], str]:
    return lambda: text


# code -------------------------------------------------------------------------------


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def code_candidates(root: Path | None = None) -> list[Candidate]:
    """The standard library's .py files, tests and generated tables left out."""
    root = root or stdlib_root()
    out = []
    for p in _walk(root, CODE_SKIP_DIRS):
        if p.suffix != ".py" or p.name.startswith("_sysconfigdata"):
            continue
        rel = p.relative_to(root).as_posix()

        def load(p: Path = p) -> str | None:
            text = decode(p.read_bytes())
            if _GENERATED.search(text[:400]):
                return None
            return normalize(text, squeeze_blank_lines=False)

        out.append(Candidate(f"{root.name}/{rel}", load))
    return out


# pydocs -----------------------------------------------------------------------------


def pydocs_root(doc_root: Path = DOC_ROOT) -> Path | None:
    """The _sources folder of the installed Python docs, this interpreter's version first."""
    found = {}
    for p in doc_root.glob("python3.*/html/_sources"):
        if p.is_dir():
            m = re.fullmatch(r"python3\.(\d+)", p.parents[1].name)
            if m:
                found[int(m.group(1))] = p
    if not found:
        return None
    return found.get(sys.version_info.minor, found[max(found)])


_ROLE = re.compile(r":[\w:+.-]+:`([^`]+)`")
_LINK = re.compile(r"`([^`<]+?)\s*<[^`>]+>`_{1,2}")
_REF = re.compile(r"`([^`<>]+)`_{1,2}")
_BOLD = re.compile(r"(?<![\w*])\*\*(\S(?:[^*]*?\S)?)\*\*(?![\w*])")
_DROP_DIRECTIVE = re.compile(
    r"^\s*\.\.\s+(index|highlight|sectionauthor|moduleauthor|codeauthor|toctree|testsetup|"
    r"testcleanup|raw|image|figure|include|literalinclude|only|tabularcolumns|"
    r"impl-detail|audit-event|availability|c:namespace|program|currentmodule)::"
)
_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w:-]+)::\s*(.*)$")
_TARGET_OR_COMMENT = re.compile(r"^(\s*)\.\.(\s|$)")
_UNDERLINE = re.compile(r"^\s*([=\-~^\"'`#*+.:_])\1{2,}\s*$")
_OPTION = re.compile(r"^\s+:[\w-]+:(\s.*)?$")
_ADMONITION = {
    "note": "Note:",
    "warning": "Warning:",
    "seealso": "See also:",
    "tip": "Tip:",
    "important": "Important:",
    "caution": "Caution:",
    "attention": "Attention:",
    "danger": "Danger:",
    "hint": "Hint:",
}
_VERSIONED = {
    "versionadded": "New in version {}.",
    "versionchanged": "Changed in version {}:",
    "deprecated": "Deprecated since version {}:",
    "deprecated-removed": "Deprecated since version {}:",
}


def _role_text(m: re.Match[str]) -> str:
    t = m.group(1)
    titled = re.fullmatch(r"(.*?)\s*<[^<>]*>", t, re.S)
    if titled and titled.group(1):
        t = titled.group(1)
    if t.startswith("~"):  # Sphinx shows only the last component: ~os.path.join -> join
        t = t[1:].rsplit(".", 1)[-1]
    return t.lstrip("!")


def clean_rst(text: str) -> str:
    """reStructuredText to readable plain text: roles, links and markup-only lines removed."""
    out: list[str] = []
    lines = normalize(text).split("\n")
    skip_indent: int | None = None  # dropping an indented block deeper than this
    after_directive = False
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not line.strip() or indent > skip_indent:
                continue
            skip_indent = None
        if after_directive and _OPTION.match(line):
            continue
        after_directive = False
        if _DROP_DIRECTIVE.match(line):
            skip_indent = indent
            continue
        d = _DIRECTIVE.match(line)
        if d:
            pad, name, arg = d.groups()
            after_directive = True
            if name in _ADMONITION:
                line = pad + _ADMONITION[name] + (" " + arg if arg else "")
            elif name in _VERSIONED and arg:
                version, _, rest = arg.partition(" ")
                line = pad + _VERSIONED[name].format(version) + (" " + rest if rest else "")
            elif arg:
                line = pad + arg  # function signatures, class names, code-block languages...
                if name in ("code-block", "sourcecode", "code", "doctest", "productionlist"):
                    continue
            else:
                continue
        elif _TARGET_OR_COMMENT.match(line):  # comments, link targets, substitutions
            skip_indent = indent
            continue
        if _UNDERLINE.match(line):
            continue
        if line.strip() == "::":
            continue
        if line.endswith("::"):
            line = line[:-1]
        out.append(line)
    text = "\n".join(out)
    # inline markup, which may span lines
    text = _ROLE.sub(_role_text, text)
    text = _LINK.sub(r"\1", text)
    text = _REF.sub(r"\1", text)
    text = _BOLD.sub(r"\1", text)
    text = text.replace("``", "")
    return normalize(text)


def pydocs_candidates(root: Path | None = None) -> list[Candidate]:
    root = root or pydocs_root()
    if root is None:
        return []
    out = []
    for p in _walk(root):
        if not p.name.endswith(".rst.txt"):
            continue
        rel = p.relative_to(root).as_posix()[: -len(".txt")]
        out.append(Candidate(f"{root.parents[1].name}/{rel}", lambda p=p: clean_rst(decode(p.read_bytes()))))
    return out


# manpages ---------------------------------------------------------------------------


_MAN_ENV_KEYS = ("PATH", "HOME", "TMPDIR")
_MAN_HEADER = re.compile(r"^\S.*\([\w.-]+\)$")  # "LS(1)   User Commands   LS(1)"


def render_manpage(path: Path, width: int = 78) -> str | None:
    """A man page as plain text (man-db/groff), or None for a stub, a failure or a tiny page.

    A page longer than MAX_DOC_CHARS is cut at a paragraph break to its first part, so a
    few huge references (cmake's modules, bash) cannot fill the domain."""
    try:
        raw = read_maybe_compressed(path)
    except (OSError, EOFError, ValueError, lzma.LZMAError):
        return None
    head = raw.lstrip()[:200]
    if head.startswith(b".so ") and raw.strip().count(b"\n") < 2:
        return None  # a redirect to another page
    env = {k: os.environ[k] for k in _MAN_ENV_KEYS if k in os.environ}
    env.update(
        LC_ALL="C.UTF-8", MANWIDTH=str(width), MANPAGER="cat", PAGER="cat", MAN_DISABLE_SECCOMP="1"
    )
    try:
        r = subprocess.run(
            ["man", "--nj", "--nh", "-l", str(path)],
            env=env,
            capture_output=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    lines = normalize(decode(r.stdout)).split("\n")
    # header and footer start in column 0 and end in NAME(section); the text is indented
    if lines and _MAN_HEADER.match(lines[0]):
        lines = lines[1:]
    if lines and _MAN_HEADER.match(lines[-1]) and len(lines[-1]) <= width + 2:
        lines = lines[:-1]  # the footer: source, date, NAME(section)
    text = normalize("\n".join(lines))
    if len(text) < MIN_MANPAGE_CHARS:
        return None
    return split_long(text, MAX_DOC_CHARS)[0]  # the first part of a huge reference page


def manpage_candidates(
    root: Path = MAN_ROOT,
    per_package: int = MANPAGES_PER_PACKAGE,
    owners: dict[str, str] | None = None,
    nonfree: frozenset[str] | None = None,
) -> list[Candidate]:
    """English man pages (man1..man9), at most per_package pages from any one package."""
    if owners is None:
        owners = dpkg_owners(str(root) + "/")
    if nonfree is None:
        nonfree = dpkg_nonfree_packages()
    groups: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    for section in sorted(root.glob("man[1-9]*")):
        if not section.is_dir():
            continue
        for p in sorted(section.iterdir()):
            if not p.is_file() or p.is_symlink():
                continue
            pkg = owners.get(str(p), "(unowned)")
            if pkg in nonfree:
                continue
            groups[pkg].append((p.relative_to(root).as_posix(), p))
    kept = []
    for pkg in sorted(groups):
        pages = sorted(groups[pkg], key=lambda kp: _hash(kp[0]))[:per_package]
        kept.extend(pages)
    kept.sort()
    return [Candidate(key, lambda p=p: render_manpage(p)) for key, p in kept]


# dictionary -------------------------------------------------------------------------


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def dictd_number(s: str) -> int:
    """Decode a dictd index offset/length (base 64, most significant digit first)."""
    n = 0
    for ch in s:
        n = n * 64 + _B64.index(ch)
    return n


_GCIDE_WORDS = {
    "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "eth": "ð", "thorn": "þ", "THORN": "Þ",
    "ng": "ŋ", "deg": "°", "sect": "§", "yogh": "ȝ", "root": "√", "imac": "ī", "th": "th",
    ",c": "ç", ",C": "Ç", "~n": "ñ", "~N": "Ñ",
}  # fmt: skip
_GCIDE_MARKS = {"'": "\u0301", "`": "\u0300", '"': "\u0308", "=": "\u0304", "~": "\u0303",
                "^": "\u0302", ".": "\u0307"}  # fmt: skip
_GCIDE_WORD = re.compile(r"\[(" + "|".join(re.escape(w) for w in _GCIDE_WORDS) + r")\]")
_GCIDE_MARK = re.compile(r"\[([='`\"~^.])([A-Za-z])\]")
_GCIDE_BREVE = re.compile(r"\[([A-Za-z])\^\]")
_GCIDE_TAG_LINE = re.compile(r"(?m)^[ \t]*\[[^\]\n]{1,40}\][ \t]*\n?")


def clean_gcide(text: str) -> str:
    """A GCIDE entry as plain text: source tags dropped, braces and accent codes resolved."""
    text = normalize(text)
    text = _GCIDE_TAG_LINE.sub("", text)  # "[1913 Webster]", "[PJC]", "[WordNet 1.5]" lines
    text = text.replace("{", "").replace("}", "")
    text = _GCIDE_WORD.sub(lambda m: _GCIDE_WORDS[m.group(1)], text)
    text = _GCIDE_MARK.sub(lambda m: m.group(2) + _GCIDE_MARKS[m.group(1)], text)
    text = _GCIDE_BREVE.sub(lambda m: m.group(1) + "\u0306", text)
    return normalize(text)


def dictd_entries(index: Path, data: Path) -> list[tuple[str, str]]:
    """(headword, raw text) of each distinct entry of a dictd database, in file order."""
    blob = read_maybe_compressed(data)
    spans: dict[tuple[int, int], str] = {}
    for line in decode(index.read_bytes()).splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or parts[0].startswith(("00-", "00database")):
            continue
        try:
            span = (dictd_number(parts[1]), dictd_number(parts[2]))
        except ValueError:
            continue
        spans.setdefault(span, parts[0])
    out = []
    end = -1
    for (off, length), word in sorted(spans.items()):
        if off + length <= end:  # inside an entry already taken
            continue
        out.append((word, decode(blob[off : off + length])))
        end = max(end, off + length)
    return out


def gcide_candidates(index: Path = GCIDE_INDEX, data: Path = GCIDE_DICT) -> list[Candidate]:
    out = []
    seen: dict[str, int] = defaultdict(int)
    for word, raw in dictd_entries(index, data):
        if not raw.strip():
            continue
        seen[word] += 1
        key = word if seen[word] == 1 else f"{word} ({seen[word]})"
        out.append(Candidate(f"gcide/{key}", lambda raw=raw: clean_gcide(raw)))
    return out


# bible ------------------------------------------------------------------------------


_CHAPTER = re.compile(r"^(\S.*?) (\d+)$")
_VERSE = re.compile(r"^\s+(\d+) (.*)$")


def parse_bible(text: str) -> list[tuple[str, str]]:
    """(chapter title, text) from the `bible` program's output; verse numbers dropped."""
    chapters: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _CHAPTER.match(line)
        if m and not line[0].isspace():
            chapters.append((line.strip(), []))
            continue
        v = _VERSE.match(line)
        if v and chapters:
            chapters[-1][1].append(v.group(2).strip())
        elif chapters and chapters[-1][1]:  # a wrapped verse
            chapters[-1][1][-1] += " " + line.strip()
    return [(title, normalize(title + "\n\n" + "\n".join(verses))) for title, verses in chapters if verses]


def bible_candidates(binary: str = "bible", data_dir: Path | None = None) -> list[Candidate]:
    cmd = [binary, "-l100000"]
    if data_dir is not None:
        cmd += ["-p", str(data_dir)]
    env = dict(os.environ, COLUMNS="100000")
    r = subprocess.run(cmd + ["gen1:1-rev22:21"], capture_output=True, env=env, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise CorpusError(f"bible: `{' '.join(cmd)}` failed: {decode(r.stderr).strip()}")
    return [Candidate(f"kjv/{title}", _const(text)) for title, text in parse_bible(decode(r.stdout))]


# fortunes ---------------------------------------------------------------------------


def fortune_candidates(root: Path = FORTUNE_ROOT, skip: frozenset[str] = FORTUNE_SKIP) -> list[Candidate]:
    """One document per fortune cookie of the English files (not the subfolders: other
    languages and the rot13-encoded offensive set)."""
    out = []
    for p in sorted(root.iterdir()):
        if not p.is_file() or p.is_symlink() or "." in p.name or p.name in skip:
            continue
        for i, piece in enumerate(re.split(r"(?m)^%[ \t]*$", decode(p.read_bytes()))):
            text = normalize(piece)
            if text.strip():
                out.append(Candidate(f"{p.name}/{i:05d}", _const(text)))
    return out


# legal ------------------------------------------------------------------------------


def legal_candidates(
    licenses: Path = LICENSE_ROOT, docs: Path = DOC_ROOT, nonfree: frozenset[str] | None = None
) -> list[Candidate]:
    """Licence texts, then each package's copyright file; a paragraph already seen (the
    same licence pasted into hundreds of copyright files) is kept only the first time."""
    if nonfree is None:
        nonfree = dpkg_nonfree_packages()
    files: list[tuple[str, Path]] = []
    if licenses.is_dir():
        files += [
            (f"common-licenses/{p.name}", p)
            for p in sorted(licenses.iterdir())
            if p.is_file() and not p.is_symlink()
        ]
    seen_real = set()
    if docs.is_dir():
        for d in sorted(docs.iterdir()):
            c = d / "copyright"
            if d.name in nonfree or not c.is_file():
                continue
            real = c.resolve()
            if real in seen_real:
                continue
            seen_real.add(real)
            files.append((f"copyright/{d.name}", c))
    seen: set[str] = set()
    out = []
    for key, p in files:
        try:
            text = normalize(decode(read_maybe_compressed(p)))
        except (OSError, EOFError):
            continue
        text = re.sub(r"(?m)^[ \t]*\.$", "", text)  # DEP-5's " ." blank-line marker
        keep = []
        for para in re.split(r"\n[ \t]*\n", text):
            k = " ".join(para.split()).lower()
            if k and k not in seen:
                seen.add(k)
                keep.append(para)
        doc = normalize("\n\n".join(keep))
        if doc:
            out.append(Candidate(key, _const(doc)))
    return out


# registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Domain:
    name: str
    style: str
    packages: tuple[str, ...]
    licence: str
    sources: str
    missing: Callable[[], str | None]  # None when the sources are present
    candidates: Callable[[], list[Candidate]]


def _missing_code() -> str | None:
    return None if stdlib_root().is_dir() else f"no standard library at {stdlib_root()}"


def _missing_pydocs() -> str | None:
    return None if pydocs_root() else f"no {DOC_ROOT}/python3.*/html/_sources"


def _missing_manpages() -> str | None:
    if not shutil.which("man") or not shutil.which("groff"):
        return "the man and groff commands are not installed"
    if not any(MAN_ROOT.glob("man1/*")):
        return f"no man pages in {MAN_ROOT}/man1 (a minimal image may exclude them)"
    return None


def _missing_dictionary() -> str | None:
    absent = [str(p) for p in (GCIDE_INDEX, GCIDE_DICT) if not p.is_file()]
    return f"missing {', '.join(absent)}" if absent else None


def _missing_bible() -> str | None:
    if not shutil.which("bible"):
        return "the bible command is not installed"
    return None if BIBLE_DATA.is_file() else f"missing {BIBLE_DATA}"


def _missing_fortunes() -> str | None:
    ok = FORTUNE_ROOT.is_dir() and any(p.is_file() and "." not in p.name for p in FORTUNE_ROOT.iterdir())
    return None if ok else f"no fortune files in {FORTUNE_ROOT}"


def _missing_legal() -> str | None:
    return None if LICENSE_ROOT.is_dir() or DOC_ROOT.is_dir() else f"no {LICENSE_ROOT}"


DOMAINS: dict[str, Domain] = {
    d.name: d
    for d in [
        Domain(
            "code",
            "Python source: identifiers, indentation, docstrings and comments",
            (),
            "PSF-2.0 (Python Software Foundation License)",
            "the running interpreter's standard library (sysconfig 'stdlib'), *.py; tests, "
            "site-packages, pydoc_data and generated files left out",
            _missing_code,
            code_candidates,
        ),
        Domain(
            "pydocs",
            "technical prose: tutorials, reference and how-tos in reStructuredText",
            ("python3-doc",),
            "PSF-2.0 (documentation); examples 0BSD",
            "/usr/share/doc/python3.X/html/_sources/**/*.rst.txt, markup stripped",
            _missing_pydocs,
            pydocs_candidates,
        ),
        Domain(
            "manpages",
            "terse command reference: synopses, option lists",
            ("man-db", "groff-base"),
            "each package's own (Debian main: DFSG-free); non-free packages left out",
            f"{MAN_ROOT}/man[1-9]*/ rendered by `man --nj --nh -l` at 78 columns, "
            f"at most {MANPAGES_PER_PACKAGE} pages per package, each cut to {MAX_DOC_CHARS:,} characters",
            _missing_manpages,
            manpage_candidates,
        ),
        Domain(
            "dictionary",
            "lexicography: headwords, etymologies, numbered senses, citations",
            ("dict-gcide",),
            "GPL-2+ (GCIDE; Webster's 1913 is public domain)",
            f"{GCIDE_DICT} + {GCIDE_INDEX}, one document per entry",
            _missing_dictionary,
            gcide_candidates,
        ),
        Domain(
            "bible",
            "Early Modern English narrative and verse (1611)",
            ("bible-kjv",),
            "public domain text (KJV); bible-kjv program: free use, GPL-2+",
            f"`bible -l100000 gen1:1-rev22:21` reading {BIBLE_DATA} (bible-kjv-text), "
            "one document per chapter",
            _missing_bible,
            bible_candidates,
        ),
        Domain(
            "fortunes",
            "informal: jokes, quotations, aphorisms, dialogue",
            ("fortunes",),
            "BSD-3-Clause (fortune-mod collection)",
            f"{FORTUNE_ROOT}/* (English files only, not ascii-art), one document per cookie",
            _missing_fortunes,
            fortune_candidates,
        ),
        Domain(
            "legal",
            "licences and copyright notices",
            (),
            "the licence texts themselves (verbatim copying permitted)",
            f"{LICENSE_ROOT}/* and {DOC_ROOT}/*/copyright, repeated paragraphs kept once",
            _missing_legal,
            legal_candidates,
        ),
    ]
}


# --------------------------------------------------------------------------------------
# Selection, writing, statistics


@dataclass(frozen=True)
class Document:
    order: tuple[int, int]  # (candidate index in natural order, chunk index)
    source: str
    text: str


def _ordered_prefetch(
    items: Sequence[int], fn: Callable[[int], str | None], jobs: int
) -> Iterator[tuple[int, str | None]]:
    """fn over items, jobs at a time, yielded in the items' order (a bounded window ahead)."""
    if jobs <= 1:
        for i in items:
            yield i, fn(i)
        return
    window = 4 * jobs
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = []
        it = iter(items)
        try:
            for i in it:
                pending.append((i, pool.submit(fn, i)))
                if len(pending) >= window:
                    j, fut = pending.pop(0)
                    yield j, fut.result()
            for j, fut in pending:
                yield j, fut.result()
        finally:
            for _, fut in pending:
                fut.cancel()


def select(
    domain: str,
    candidates: Sequence[Candidate],
    max_bytes: int,
    jobs: int = 1,
    patience: int = SELECT_PATIENCE,
) -> list[Document]:
    """Documents up to max_bytes of UTF-8 text, chosen in the order of a hash of their
    names and returned in the candidates' natural order.

    A document that no longer fits is passed over; the selection ends when the cap is
    reached exactly or `patience` documents in a row did not fit. Deterministic and
    independent of jobs; a smaller cap takes its documents from the front of the same
    hash order, so it keeps (nearly always exactly) a subset of a larger cap's documents.
    """
    keys = [c.key for c in candidates]
    if len(set(keys)) != len(keys):
        counts = defaultdict(int)
        for k in keys:
            counts[k] += 1
        dups = sorted(k for k, c in counts.items() if c > 1)[:3]
        raise CorpusError(f"{domain}: duplicate document names {dups}")
    order = sorted(range(len(candidates)), key=lambda i: (_hash(candidates[i].key), i))
    chosen: list[Document] = []
    total = 0
    misses = 0
    gen = _ordered_prefetch(order, lambda i: candidates[i].load(), jobs)
    try:
        for i, text in gen:
            chunks = split_long(text) if text else []
            for j, chunk in enumerate(chunks):
                n = len(chunk.encode("utf-8"))
                if total + n > max_bytes:
                    misses += 1
                    continue
                misses = 0
                source = f"{domain}:{candidates[i].key}" + (f"#{j}" if len(chunks) > 1 else "")
                chosen.append(Document((i, j), source, chunk))
                total += n
            if total >= max_bytes or misses >= patience:
                break
    finally:
        gen.close()
    chosen.sort(key=lambda d: d.order)
    return chosen


def jsonl_bytes(docs: Iterable[Document]) -> bytes:
    lines = (
        json.dumps({"source": d.source, "text": d.text}, ensure_ascii=False, sort_keys=True) + "\n"
        for d in docs
    )
    return "".join(lines).encode("utf-8")


def write_atomic(path: Path, data: bytes) -> bool:
    """Write data to path via a temporary file and a rename; False when already identical."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return True


def stats(docs: Sequence[Document]) -> dict:
    nbytes = sum(len(d.text.encode("utf-8")) for d in docs)
    return {
        "documents": len(docs),
        "chars": sum(len(d.text) for d in docs),
        "bytes": nbytes,
        "words": sum(len(d.text.split()) for d in docs),
        "approx_tokens": nbytes // 4,
    }


def format_table(rows: dict[str, dict]) -> str:
    head = f"{'domain':<11} {'documents':>9} {'characters':>11} {'MB':>6} {'words':>10} {'~tokens':>10}"
    lines = [head, "-" * len(head)]
    tot = defaultdict(int)
    for name, s in rows.items():
        lines.append(
            f"{name:<11} {s['documents']:>9,} {s['chars']:>11,} {s['bytes'] / MB:>6.2f} "
            f"{s['words']:>10,} {s['approx_tokens']:>10,}"
        )
        for k in ("documents", "chars", "bytes", "words", "approx_tokens"):
            tot[k] += s[k]
    lines.append("-" * len(head))
    lines.append(
        f"{'total':<11} {tot['documents']:>9,} {tot['chars']:>11,} {tot['bytes'] / MB:>6.2f} "
        f"{tot['words']:>10,} {tot['approx_tokens']:>10,}"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Building


def resolve_domains(names: Sequence[str] | None) -> list[str]:
    """Domain names from a list that may contain comma-separated items; all when None."""
    if not names:
        return list(DOMAINS)
    out: list[str] = []
    for item in names:
        for name in filter(None, (s.strip() for s in item.split(","))):
            if name not in DOMAINS:
                raise CorpusError(f"unknown domain {name!r}; known domains: {', '.join(DOMAINS)}")
            if name not in out:
                out.append(name)
    if not out:
        raise CorpusError("no domain named")
    return out


def prepare_output(path: Path) -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CorpusError(f"output path {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        raise CorpusError(f"cannot create output directory {path}: a parent is not a directory") from e
    except PermissionError as e:
        raise CorpusError(f"cannot create output directory {path}: permission denied") from e
    if not os.access(path, os.W_OK):
        raise CorpusError(f"output directory {path} is not writable")
    return path


def install_packages(packages: Sequence[str], log: Callable[[str], None] = print) -> bool:
    """apt-get install the packages when root with apt-get; False when it cannot or fails."""
    if not packages:
        return True
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if not shutil.which("apt-get") or os.geteuid() != 0:
        log(f"cannot install (needs root and apt-get); run: sudo {' '.join(cmd)}")
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log(f"$ {' '.join(cmd)}")
    if subprocess.run(cmd, env=env).returncode == 0:
        return True
    log("install failed; running apt-get update and trying once more")
    subprocess.run(["apt-get", "update"], env=env)
    return subprocess.run(cmd, env=env).returncode == 0


def build_domain(name: str, out_dir: Path, max_bytes: int, jobs: int = 1) -> dict:
    """Build one domain into out_dir/<name>/<name>.jsonl and return its statistics."""
    domain = DOMAINS[name]
    t0 = time.perf_counter()
    docs = select(name, domain.candidates(), max_bytes, jobs)
    if not docs:
        raise CorpusError(f"{name}: no documents found in {domain.sources}")
    target = out_dir / name
    target.mkdir(exist_ok=True)
    data = jsonl_bytes(docs)
    changed = write_atomic(target / f"{name}.jsonl", data)
    s = stats(docs)
    s.update(
        file=f"{name}/{name}.jsonl",
        sha256=hashlib.sha256(data).hexdigest(),
        changed=changed,
        seconds=round(time.perf_counter() - t0, 2),
    )
    return s


def build(
    out_dir: Path,
    domains: Sequence[str] | None = None,
    max_mb: float = DEFAULT_MAX_MB,
    jobs: int = 1,
    install: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, dict]:
    """Build the corpus; returns {domain: stats} for the domains built (others are skipped
    with a message). Raises CorpusError for a bad output path or domain name."""
    names = resolve_domains(domains)
    if not max_mb > 0:
        raise CorpusError(f"--max-mb-per-domain must be positive, got {max_mb}")
    out_dir = prepare_output(out_dir)
    missing = {n: DOMAINS[n].missing() for n in names}
    absent = {n: r for n, r in missing.items() if r}
    if absent and install:
        pkgs = sorted({p for n in absent for p in DOMAINS[n].packages})
        install_packages(pkgs, log)
        missing = {n: DOMAINS[n].missing() for n in names}
    results: dict[str, dict] = {}
    for n in names:
        if missing[n]:
            pkgs = " ".join(DOMAINS[n].packages)
            hint = (
                f"; install with `apt-get install --no-install-recommends {pkgs}` or rerun with --install"
                if pkgs
                else ""
            )
            log(f"skipping {n}: {missing[n]}{hint}")
            continue
        results[n] = build_domain(n, out_dir, int(max_mb * MB), jobs)
        log(
            f"built {n}: {results[n]['documents']:,} documents, {results[n]['bytes'] / MB:.2f} MB "
            f"in {results[n]['seconds']:.1f} s{'' if results[n]['changed'] else ' (unchanged)'}"
        )
    if results:
        write_manifest(out_dir, results, max_mb)
    return results


def write_manifest(out_dir: Path, results: dict[str, dict], max_mb: float) -> None:
    path = out_dir / "manifest.json"
    manifest: dict = {"format_version": FORMAT_VERSION, "domains": {}}
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            if old.get("format_version") == FORMAT_VERSION:
                manifest["domains"].update(old.get("domains", {}))
        except (OSError, ValueError):
            pass
    for n, s in results.items():
        d = DOMAINS[n]
        entry = {k: s[k] for k in ("file", "documents", "chars", "bytes", "words", "approx_tokens", "sha256")}
        entry.update(
            max_mb=max_mb,
            max_doc_chars=MAX_DOC_CHARS,
            style=d.style,
            sources=d.sources,
            licence=d.licence,
            packages={p: dpkg_version(p) for p in d.packages},
        )
        if n == "code":
            entry["python"] = ".".join(map(str, sys.version_info[:3]))
        manifest["domains"][n] = entry
    manifest["domains"] = dict(sorted(manifest["domains"].items()))
    write_atomic(path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Build a multi-domain corpus of human-written text from Debian packages.",
        epilog="Domains: " + ", ".join(DOMAINS),
    )
    default_out = f"{DEFAULT_OUTPUT.relative_to(REPO)}, with --small {SMALL_OUTPUT.relative_to(REPO)}"
    ap.add_argument("-o", "--output", type=Path, help=f"output folder (default {default_out})")
    ap.add_argument("--domains", nargs="+", metavar="NAME", help="domains to build (default: all)")
    ap.add_argument(
        "--max-mb-per-domain",
        type=float,
        help=f"cap per domain in MB of text (default {DEFAULT_MAX_MB:g}, with --small {SMALL_MAX_MB:g})",
    )
    ap.add_argument("--small", action="store_true", help="a small corpus for quick CPU trials and tests")
    ap.add_argument(
        "--install", action="store_true", help="apt-get install the packages of missing domains"
    )
    ap.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1), help="parallel man page renderers")
    ap.add_argument("--list", action="store_true", help="list the domains, their packages and licences")
    args = ap.parse_args(argv)
    if args.list:
        for d in DOMAINS.values():
            state = d.missing() or "available"
            print(f"{d.name}: {d.style}\n  sources:  {d.sources}\n  packages: {' '.join(d.packages) or '-'}"
                  f"\n  licence:  {d.licence}\n  status:   {state}")  # fmt: skip
        return 0
    out = args.output or (SMALL_OUTPUT if args.small else DEFAULT_OUTPUT)
    max_mb = args.max_mb_per_domain
    if max_mb is None:
        max_mb = SMALL_MAX_MB if args.small else DEFAULT_MAX_MB
    t0 = time.perf_counter()
    try:
        results = build(out, args.domains, max_mb, max(1, args.jobs), args.install)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not results:
        print("error: no domain could be built", file=sys.stderr)
        return 1
    print()
    print(f"corpus in {out} (cap {max_mb:g} MB of text per domain; ~tokens = bytes/4)")
    print(format_table(results))
    print(f"built in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
