"""experiments/build_corpus.py: format, determinism, caps, cleaning and errors.

Runs on what any Debian machine with Python has (the standard library's source and
/usr/share/common-licenses); the other domains are tested on small synthetic inputs in
tmp_path, or on their real sources when installed. Needs neither apt nor the network.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bc():
    spec = importlib.util.spec_from_file_location("build_corpus", ROOT / "experiments" / "build_corpus.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["build_corpus"] = mod
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("build_corpus", None)


def always_there(bc) -> list[str]:
    names = [n for n in ("code", "legal") if bc.DOMAINS[n].missing() is None]
    if "code" not in names:
        pytest.skip("no Python standard library source on this machine")
    return names


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------------
# Whole builds on the sources every machine has


def test_build_writes_one_jsonl_folder_per_domain(bc, tmp_path):
    names = always_there(bc)
    out = tmp_path / "corpus"
    results = bc.build(out, names, max_mb=0.2, log=lambda s: None)
    assert list(results) == names
    for name in names:
        files = sorted((out / name).iterdir())
        assert [f.name for f in files] == [f"{name}.jsonl"]
        docs = read_jsonl(files[0])
        assert len(docs) == results[name]["documents"] > 1
        for d in docs:
            assert set(d) == {"source", "text"}
            assert d["text"].strip() and d["source"].startswith(f"{name}:")
            assert "\r" not in d["text"] and "\x00" not in d["text"]
            assert len(d["text"]) <= bc.MAX_DOC_CHARS
        assert len({d["source"] for d in docs}) == len(docs)
        assert results[name]["bytes"] == sum(len(d["text"].encode()) for d in docs)
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["domains"]) == set(names)
    assert manifest["domains"]["code"]["documents"] == results["code"]["documents"]


def test_code_documents_are_python_source(bc, tmp_path):
    always_there(bc)
    bc.build(tmp_path, ["code"], max_mb=0.3, log=lambda s: None)
    docs = read_jsonl(tmp_path / "code" / "code.jsonl")
    assert all(d["source"].endswith(".py") or ".py#" in d["source"] for d in docs)
    assert any("def " in d["text"] for d in docs)
    assert not any("/test/" in d["source"] or "_sysconfigdata" in d["source"] for d in docs)


def test_two_builds_are_identical_and_a_rebuild_rewrites_nothing(bc, tmp_path):
    names = always_there(bc)
    a, b = tmp_path / "a", tmp_path / "b"
    bc.build(a, names, max_mb=0.15, jobs=1, log=lambda s: None)
    bc.build(b, names, max_mb=0.15, jobs=3, log=lambda s: None)
    assert tree(a) == tree(b)
    mtimes = {p: p.stat().st_mtime_ns for p in a.rglob("*.jsonl")}
    again = bc.build(a, names, max_mb=0.15, log=lambda s: None)
    assert not any(s["changed"] for s in again.values())
    assert {p: p.stat().st_mtime_ns for p in a.rglob("*.jsonl")} == mtimes
    assert not list(a.rglob(".*tmp*"))


def test_builds_in_separate_processes_are_identical(bc, tmp_path):
    always_there(bc)
    for seed in ("1", "2"):  # a different str hash in each process
        r = subprocess.run(
            [sys.executable, str(ROOT / "experiments" / "build_corpus.py"), "-o", str(tmp_path / seed),
             "--domains", "code", "--max-mb-per-domain", "0.1", "--jobs", seed],
            env=dict(os.environ, PYTHONHASHSEED=seed), capture_output=True, text=True,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
    assert tree(tmp_path / "1") == tree(tmp_path / "2")


def test_cap_holds_and_a_smaller_cap_keeps_a_subset(bc, tmp_path):
    always_there(bc)
    small = bc.build(tmp_path / "s", ["code"], max_mb=0.1, log=lambda s: None)["code"]
    large = bc.build(tmp_path / "l", ["code"], max_mb=0.4, log=lambda s: None)["code"]
    assert small["bytes"] <= 100_000 and large["bytes"] <= 400_000
    assert small["bytes"] > 100_000 - bc.MAX_DOC_CHARS * 4  # filled, not just capped
    assert large["documents"] > small["documents"]
    s = {d["source"] for d in read_jsonl(tmp_path / "s" / "code" / "code.jsonl")}
    l = {d["source"] for d in read_jsonl(tmp_path / "l" / "code" / "code.jsonl")}
    assert len(s & l) >= 0.9 * len(s)  # the same hash order: nearly always a subset


def test_cli_small_prints_the_table(bc, tmp_path, capsys):
    names = always_there(bc)
    rc = bc.main(["--small", "-o", str(tmp_path), "--max-mb-per-domain", "0.1", "--domains", ",".join(names)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "domain" in out and "~tokens" in out and "total" in out
    for name in names:
        assert any(line.startswith(name) for line in out.splitlines())


# --------------------------------------------------------------------------------------
# Errors


def test_unknown_domain_is_a_clear_error(bc, tmp_path, capsys):
    with pytest.raises(bc.CorpusError, match="unknown domain 'novels'.*known domains: code"):
        bc.build(tmp_path, ["code", "novels"], log=lambda s: None)
    assert bc.main(["-o", str(tmp_path), "--domains", "novels"]) == 2
    assert "unknown domain 'novels'" in capsys.readouterr().err
    assert not (tmp_path / "code").exists()


def test_output_path_that_is_a_file_is_a_clear_error(bc, tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(bc.CorpusError, match="exists and is not a directory"):
        bc.build(f, ["legal"], log=lambda s: None)
    with pytest.raises(bc.CorpusError, match="a parent is not a directory"):
        bc.build(f / "sub", ["legal"], log=lambda s: None)
    assert bc.main(["-o", str(f), "--domains", "legal"]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert f.read_text() == "x"


def test_bad_cap_is_an_error(bc, tmp_path):
    with pytest.raises(bc.CorpusError, match="positive"):
        bc.build(tmp_path, ["code"], max_mb=0, log=lambda s: None)


def test_missing_domain_is_skipped_with_install_hint(bc, tmp_path, monkeypatch):
    always_there(bc)
    monkeypatch.setattr(bc, "FORTUNE_ROOT", tmp_path / "nowhere")
    msgs: list[str] = []
    results = bc.build(tmp_path / "out", ["fortunes", "code"], max_mb=0.05, log=msgs.append)
    assert list(results) == ["code"]
    assert any("skipping fortunes" in m and "apt-get install" in m and "fortunes" in m for m in msgs)
    assert not (tmp_path / "out" / "fortunes").exists()


def test_install_without_root_or_apt_only_says_what_to_run(bc, monkeypatch):
    monkeypatch.setattr(bc.shutil, "which", lambda name: None)
    msgs: list[str] = []
    assert bc.install_packages(["fortunes"], msgs.append) is False
    assert "apt-get install -y --no-install-recommends fortunes" in msgs[0]


# --------------------------------------------------------------------------------------
# Helpers and per-domain parsers on synthetic inputs


def test_normalize(bc):
    raw = "a\r\nb\x00c  \r\n\n\n\nd\u2028e\x85f\ufeff\nB\x08Bold\x1b[1mx\x1b[0m\n\n"
    assert bc.normalize(raw) == "a\nbc\n\nd\ne\nf\nBold" + "x"
    assert bc.normalize("x\n\n\n\ny", squeeze_blank_lines=False) == "x\n\n\n\ny"
    assert bc.normalize("e\u0301") == "\u00e9"  # NFC


def test_split_long_respects_the_limit_and_loses_no_words(bc):
    paras = [" ".join(f"w{i}_{j}" for j in range(40)) for i in range(50)]
    text = "\n\n".join(paras) + "\n\n" + "x" * 700
    chunks = bc.split_long(text, max_chars=500)
    assert len(chunks) > 5 and all(0 < len(c) <= 500 for c in chunks)
    assert " ".join(chunks).split() != [] and "".join("".join(chunks).split()) == "".join(text.split())
    assert bc.split_long("short", 500) == ["short"] and bc.split_long("  ", 500) == []


def test_select_passes_over_a_document_too_big_for_the_room_left(bc):
    cands = [bc.Candidate(f"k{i}", bc._const(("y" * 900) if i % 2 else ("x" * 90))) for i in range(40)]
    docs = bc.select("t", cands, max_bytes=1_000)
    assert docs, "a first document larger than the cap must not empty the domain"
    assert sum(len(d.text) for d in docs) <= 1_000
    assert any(d.text.startswith("x") for d in docs)
    assert len(bc.select("t", cands, max_bytes=50)) == 0  # nothing fits at all


def test_select_is_deterministic_capped_and_in_natural_order(bc):
    cands = [bc.Candidate(f"k{i:03d}", bc._const(f"document {i} " * 10)) for i in range(200)]
    docs = bc.select("t", cands, max_bytes=5_000)
    assert sum(len(d.text.encode()) for d in docs) <= 5_000
    assert 0 < len(docs) < 200
    assert [d.order for d in docs] == sorted(d.order for d in docs)
    again = bc.select("t", list(reversed(cands))[::-1], max_bytes=5_000, jobs=4)
    assert [d.source for d in again] == [d.source for d in docs]
    everything = bc.select("t", cands, max_bytes=10**9)
    assert len(everything) == 200
    with pytest.raises(bc.CorpusError, match="duplicate"):
        bc.select("t", cands + cands[:1], max_bytes=10**9)


def test_fortunes_split_into_cookies(bc, tmp_path):
    (tmp_path / "wisdom").write_text("First cookie.\n%\nSecond\n  -- someone\n%\n\n%\nThird.\n")
    (tmp_path / "wisdom.dat").write_bytes(b"\x00\x01")
    (tmp_path / "ascii-art").write_text("  /\\_/\\\n%\n")
    (tmp_path / "de").mkdir()
    (tmp_path / "de" / "witze").write_text("Nein.\n%\n")
    cands = bc.fortune_candidates(tmp_path)
    assert [c.key for c in cands] == ["wisdom/00000", "wisdom/00001", "wisdom/00003"]
    assert [c.load() for c in cands] == ["First cookie.", "Second\n  -- someone", "Third."]


def test_legal_keeps_a_repeated_paragraph_once(bc, tmp_path):
    lic, docs = tmp_path / "licenses", tmp_path / "doc"
    lic.mkdir()
    (lic / "GPL-2").write_text("GNU GENERAL PUBLIC LICENSE\n\nThe full text.\n")
    (lic / "GPL").symlink_to("GPL-2")
    boiler = "On Debian systems, the full text of the GPL is in\n /usr/share/common-licenses/GPL-2."
    for pkg in ("aaa", "bbb", "nonfreepkg"):
        (docs / pkg).mkdir(parents=True)
        (docs / pkg / "copyright").write_text(f"Files: *\nCopyright: 2020 {pkg} authors\n\n{boiler}\n .\n")
    (docs / "ccc").symlink_to(docs / "aaa")
    cands = bc.legal_candidates(lic, docs, nonfree=frozenset({"nonfreepkg"}))
    assert [c.key for c in cands] == ["common-licenses/GPL-2", "copyright/aaa", "copyright/bbb"]
    texts = [c.load() for c in cands]
    assert boiler in texts[1] and boiler not in texts[2] and "bbb authors" in texts[2]


def test_gcide_index_and_cleaning(bc, tmp_path):
    entries = [
        "00-database-info\n   This file is part of GCIDE.\n",
        "Bathe \\Bathe\\ (b[=a][th]), v. t. [OE. ba[eth]ien.]\n   To wash by immersion, as in a {bath}.\n"
        "   [1913 Webster]\n",
        "C[ae]sar \\C[ae]s\"ar\\, n.\n   A title; see Kais[e^]r. ['e]t[\"e]\n   [PJC]\n",
    ]
    blob = "".join(entries).encode()
    index, offset = [], 0
    for word, e in zip(["00-database-info", "Bathe", "Caesar"], entries):
        n = len(e.encode())
        index.append(f"{word}\t{b64(offset)}\t{b64(n)}")
        offset += n
    index.append(f"bathe\t{b64(len(entries[0].encode()))}\t{b64(len(entries[1].encode()))}")  # same entry again
    (tmp_path / "g.index").write_text("\n".join(index) + "\n")
    (tmp_path / "g.dict.dz").write_bytes(gzip.compress(blob, mtime=0))
    assert bc.dictd_number("Kj") == 10 * 64 + 35
    cands = bc.gcide_candidates(tmp_path / "g.index", tmp_path / "g.dict.dz")
    assert [c.key for c in cands] == ["gcide/Bathe", "gcide/Caesar"]
    bathe, caesar = (c.load() for c in cands)
    assert bathe == "Bathe \\Bathe\\ (bāth), v. t. [OE. baðien.]\n   To wash by immersion, as in a bath."
    assert caesar.startswith("Cæsar \\Cæs\"ar\\, n.") and "étë" in caesar and "[PJC]" not in caesar


def b64(n: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    s = ""
    while True:
        s = alphabet[n % 64] + s
        n //= 64
        if n == 0:
            return s


def test_bible_parser(bc):
    out = (
        "\nGenesis 1\n\n  1 In the beginning God created the heaven and the earth.\n"
        "  2 And the earth was without form,\nand void.\n\nSong of Solomon 2\n\n  1 I am the rose of Sharon.\n"
    )
    chapters = bc.parse_bible(out)
    assert chapters == [
        ("Genesis 1", "Genesis 1\n\nIn the beginning God created the heaven and the earth.\n"
                      "And the earth was without form, and void."),
        ("Song of Solomon 2", "Song of Solomon 2\n\nI am the rose of Sharon."),
    ]  # fmt: skip


def test_rst_cleaning(bc):
    rst = """\
:mod:`json` --- JSON encoder
============================

.. module:: json
   :synopsis: Encode and decode the JSON format.

.. index:: single: JSON
   pair: object; serialization

Use :func:`~json.dumps` or :ref:`the tutorial <tut-json>` and `RFC 8259 <https://x.y>`_::

   >>> json.dumps([1])

.. versionadded:: 3.2
   Added ``indent``.

.. note::
   **Careful** with f(*args, **kwargs) and
   :class:`multi-line
   role`.

.. This is a comment
   spanning lines.
"""
    text = bc.clean_rst(rst)
    assert text.startswith("json --- JSON encoder\n\njson\n\nUse dumps or the tutorial and RFC 8259:")
    assert ">>> json.dumps([1])" in text
    assert "New in version 3.2." in text and "Added indent." in text and "Note:" in text
    assert "Careful with f(*args, **kwargs) and\n   multi-line\n   role." in text
    for gone in ("index", "synopsis", "comment", "=====", ":func:", "<https"):
        assert gone not in text


def test_code_skips_tests_and_generated_files(bc, tmp_path):
    lib = tmp_path / "python3.99"
    (lib / "pkg").mkdir(parents=True)
    (lib / "test").mkdir()
    (lib / "pkg" / "mod.py").write_text("def f():\n    return 1\n\n\n\nclass A:\n    pass\n")
    (lib / "gen.py").write_text("# Auto-generated by a tool.\nX = 1\n")
    (lib / "test" / "test_x.py").write_text("assert True\n")
    (lib / "notes.txt").write_text("not code")
    cands = bc.code_candidates(lib)
    assert [c.key for c in cands] == ["python3.99/gen.py", "python3.99/pkg/mod.py"]
    assert cands[0].load() is None
    assert cands[1].load() == "def f():\n    return 1\n\n\n\nclass A:\n    pass"  # blank lines kept


@pytest.mark.skipif(not (shutil.which("man") and shutil.which("groff")), reason="man-db/groff not installed")
def test_manpage_rendering(bc, tmp_path):
    page = tmp_path / "man1" / "frob.1.gz"
    page.parent.mkdir()
    src = (
        ".TH FROB 1 \"2024\" \"frob 1.0\" \"User Commands\"\n.SH NAME\nfrob \\- twiddle bits\n"
        ".SH DESCRIPTION\n.B frob\ntwiddles the bits of each\n.I file\n"
        "it is given, carefully and repeatedly, until they are thoroughly twiddled and fit for use. "
        "It writes nothing and reads less.\n"
    )
    page.write_bytes(gzip.compress(src.encode(), mtime=0))
    (tmp_path / "man1" / "stub.1.gz").write_bytes(gzip.compress(b".so man1/frob.1\n", mtime=0))
    text = bc.render_manpage(page)
    assert text is not None and text.startswith("NAME\n")
    assert "frob - twiddle bits" in text and "twiddles the bits of each file" in text
    assert "\x08" not in text and "FROB(1)" not in text  # no overstrikes, header or footer
    assert bc.render_manpage(tmp_path / "man1" / "stub.1.gz") is None
    long_page = tmp_path / "long.1"
    long_page.write_text(src + "".join(f".PP\nParagraph {i} " + "word " * 60 + "\n" for i in range(200)))
    long_text = bc.render_manpage(long_page)
    assert long_text.startswith("NAME\n") and 0.5 * bc.MAX_DOC_CHARS < len(long_text) <= bc.MAX_DOC_CHARS
    cands = bc.manpage_candidates(tmp_path, per_package=1, owners={}, nonfree=frozenset())
    assert [c.key for c in cands] in (["man1/frob.1.gz"], ["man1/stub.1.gz"])  # one per package


def test_installed_optional_domains_build(bc, tmp_path):
    """Whatever else is installed here (man pages, GCIDE, KJV, fortunes, Python docs)."""
    names = [n for n in bc.DOMAINS if n not in ("code", "legal") and bc.DOMAINS[n].missing() is None]
    if not names:
        pytest.skip("no optional domain's sources are installed")
    results = bc.build(tmp_path, names, max_mb=0.03, jobs=2, log=lambda s: None)
    assert list(results) == names
    for name in names:
        docs = read_jsonl(tmp_path / name / f"{name}.jsonl")
        assert docs and all(d["text"].strip() for d in docs)
        assert sum(len(d["text"].encode()) for d in docs) <= 30_000
