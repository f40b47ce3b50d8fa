"""Mixture writers, token counts and config merging for the trainers people use, without the trainers.

The real libraries check the same outputs in test_integrations_libs.py; here every format is read
back by an independent parser written from the trainer's documentation, and every bad input must
raise a bomix error naming the rule and leave no file behind.
"""

import json
import struct
import tomllib

import numpy as np
import pytest
import yaml

from bomix.cli import main
from bomix.errors import ConfigError, EvaluationError, InvalidWeightsError
from bomix.integrations import (count_tokens, file_tokens, load_mapping, manifest_tokens, megatron_tokens,
                                merge_space, mixture_from, render, space_snippet, write_mixture, write_tokens)

WEIGHTS = {"books": 0.1, "cc": 0.45, "code": 0.25, "web:news": 0.2}


def write_megatron(prefix, lengths, dtype=np.uint16):
    """PREFIX.bin + PREFIX.idx in megatron-core's MMIDIDX layout, written from its description."""
    codes = {np.uint8: 1, np.int32: 4, np.uint16: 8}
    itemsize = np.dtype(dtype).itemsize
    pointers = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) * itemsize
    with open(f"{prefix}.idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00" + struct.pack("<Q", 1) + struct.pack("<B", codes[dtype]))
        f.write(struct.pack("<Q", len(lengths)) + struct.pack("<Q", len(lengths) + 1))
        f.write(np.asarray(lengths, np.int32).tobytes() + pointers.tobytes())
        f.write(np.arange(len(lengths) + 1, dtype=np.int64).tobytes())
    np.zeros(int(sum(lengths)), dtype).tofile(f"{prefix}.bin")


@pytest.fixture
def data(tmp_path):
    """Token data for 4 domains in every layout (mapping_for names one), and data.toml mapping the
    domains to Megatron prefixes (relative paths)."""
    d = tmp_path / "data"
    for name in ("mg", "files", "lit", "titan"):
        (d / name).mkdir(parents=True)
    write_megatron(d / "mg" / "books", [10, 20, 30])            # 60 tokens
    write_megatron(d / "mg" / "cc_a", [100, 200])               # 300
    write_megatron(d / "mg" / "cc_b", [100])                    # 100: cc's weight splits 3:1
    write_megatron(d / "mg" / "code", [5] * 8)                  # 40
    write_megatron(d / "mg" / "news", [7])                      # 7
    for domain in WEIGHTS:
        safe = domain.replace(":", "_")
        np.zeros(64, np.uint32).tofile(d / "files" / f"{safe}-0.npy")  # raw, as OLMo-core's are
        (d / "lit" / safe).mkdir()
        (d / "lit" / safe / "index.json").write_text("{}")
        (d / "titan" / safe).mkdir()
    mapping = tmp_path / "data.toml"
    mapping.write_text("""
[domains]
books = "data/mg/books"
cc = ["data/mg/cc_a", "data/mg/cc_b.bin"]
code = "data/mg/code"
"web:news" = { paths = ["data/mg/news"], name = "news" }
""")
    return tmp_path


def mapping_for(root, fmt, **options):
    """A mapping file whose paths suit `fmt`, plus option tables."""
    layout = {"megatron": "data/mg/{m}", "gpt-neox": "data/mg/{m}", "olmo-core": "data/files/{f}-*.npy",
              "levanter": "data/files/{f}-0.npy", "litgpt": "data/lit/{f}", "torchtitan": "data/titan/{f}"}[fmt]
    mg = {"books": "books", "cc": "cc_a", "code": "code", "web:news": "news"}
    lines = ["[domains]"]
    for domain in WEIGHTS:
        path = layout.format(m=mg[domain], f=domain.replace(":", "_"))
        name = ', name = "news"' if domain == "web:news" else ""
        lines.append(f'"{domain}" = {{ paths = ["{path}"]{name} }}')
    for table, values in options.items():
        lines.append(f"[{table}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path = root / f"map-{fmt}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


# -- each format, read back as the trainer reads it ------------------------------------------------

def trainer_shares(fmt, text):
    """{source name or prefix: share the trainer samples}, parsed here from the trainer's docs."""
    if fmt == "megatron":
        words = text.split()
        pairs = [(words[i + 1], float(words[i])) for i in range(0, len(words), 2)]
    elif fmt == "gpt-neox":
        d = yaml.safe_load(text)
        pairs = list(zip(d["train-data-paths"], d["train-data-weights"]))
    elif fmt == "olmo-core":
        d = yaml.safe_load(text)
        return {s["source_name"]: s["target_ratio"] for s in d["source_list"]["sources"]}  # no renormalising
    elif fmt == "torchtitan":
        pairs = [(s["dataset"], s["weight"]) for s in json.loads(text)["sources"]]
    elif fmt == "litgpt":
        d = json.loads(text)
        pairs = [(x["name"], w) for x, w in zip(d["datasets"], d["weights"])]
    elif fmt == "levanter":
        pairs = list(yaml.safe_load(text)["data"]["train_weights"].items())
    else:
        return json.loads(text) if fmt == "json" else yaml.safe_load(text)
    total = sum(w for _, w in pairs)
    return {k: w / total for k, w in pairs}


@pytest.mark.parametrize("fmt", ["olmo-core", "torchtitan", "litgpt", "levanter", "json", "yaml"])
def test_each_format_samples_every_domain_at_its_weight(data, fmt):
    options = {"olmo-core": {"requested_tokens": 1000, "global_batch_size": 100}} if fmt == "olmo-core" else {}
    mapping = mapping_for(data, fmt, **options) if fmt not in ("json", "yaml") else mapping_for(data, "litgpt")
    shares = trainer_shares(fmt, render(WEIGHTS, fmt, mapping))
    expected = {("news" if d == "web:news" else d): w for d, w in WEIGHTS.items()}
    assert shares == pytest.approx(expected, rel=1e-12)


def test_megatron_splits_a_domain_over_its_prefixes_by_their_tokens(data):
    text = render(WEIGHTS, "megatron", data / "data.toml")
    assert "\n" not in text.rstrip("\n")  # one line, for --data-args-path or $(cat FILE)
    shares = trainer_shares("megatron", text)
    mg = str(data / "data" / "mg")
    assert shares == pytest.approx({f"{mg}/books": 0.1, f"{mg}/cc_a": 0.45 * 300 / 400, f"{mg}/cc_b": 0.45 * 100 / 400,
                                    f"{mg}/code": 0.25, f"{mg}/news": 0.2}, rel=1e-12)
    neox = yaml.safe_load(render(WEIGHTS, "gpt-neox", data / "data.toml"))
    assert neox["train-data-paths"] == [f"{mg}/{p}" for p in ("books", "cc_a", "cc_b", "code", "news")]


def test_megatron_leaves_out_zero_weights_but_still_checks_their_paths(data):
    weights = {"books": 0.5, "cc": 0.5, "code": 0.0, "web:news": 0.0}
    assert "code" not in render(weights, "megatron", data / "data.toml")
    (data / "data" / "mg" / "code.idx").unlink()
    with pytest.raises(ConfigError, match="needs P.bin and P.idx.*code.idx"):
        render(weights, "megatron", data / "data.toml")


def test_olmo_core_writes_the_full_config_or_the_source_list(data):
    full = yaml.safe_load(render(WEIGHTS, "olmo-core", mapping_for(data, "olmo-core", **{"olmo-core": {
        "requested_tokens": 10**9, "global_batch_size": 2**20, "seed": 7, "max_repetition_ratio": 4.0}})))
    assert (full["requested_tokens"], full["global_batch_size"], full["seed"]) == (10**9, 2**20, 7)
    source = full["source_list"]["sources"][0]
    assert source == {"source_name": "books", "target_ratio": 0.1, "paths": [str(data / "data/files/books-*.npy")],
                      "max_repetition_ratio": 4.0, "max_source_fraction": 1.0}
    bare = yaml.safe_load(render(WEIGHTS, "olmo-core", mapping_for(data, "olmo-core")))
    assert list(bare) == ["sources"] and len(bare["sources"]) == 4
    with pytest.raises(ConfigError, match="both.*got only \\['requested_tokens'\\]"):
        render(WEIGHTS, "olmo-core", mapping_for(data, "olmo-core", **{"olmo-core": {"requested_tokens": 5}}))


# -- bad input: the rule, the value, and nothing written ------------------------------------------

BAD = [
    ("missing domain", {"books": 0.5, "cc": 0.5, "code": 0.0, "web:news": 0.0, "extra": 0.0}, None, ConfigError,
     "missing \\['extra'\\]"),
    ("unknown domain", {"books": 0.5, "cc": 0.5, "code": 0.0}, None, ConfigError, "unknown \\['web:news'\\]"),
    ("sum", {"books": 0.1, "cc": 0.4, "code": 0.23, "web:news": 0.2}, None, InvalidWeightsError,
     "must sum to 1.*got 0.93"),
    ("negative", {"books": -0.1, "cc": 0.6, "code": 0.3, "web:news": 0.2}, None, InvalidWeightsError,
     ">= 0, got \\{'books': -0.1\\}"),
    ("no such path", WEIGHTS, 'cc = "data/mg/nope"', ConfigError, "needs P.bin and P.idx.*nope.bin"),
    ("unknown key", WEIGHTS, 'cc = { paths = ["data/mg/cc_a"], weight = 2 }', ConfigError, "unknown \\['weight'\\]"),
]


@pytest.mark.parametrize("what, weights, cc_line, error, match", BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_the_rule_and_writes_nothing(data, what, weights, cc_line, error, match):
    mapping = data / "data.toml"
    if cc_line:
        mapping.write_text(mapping.read_text().replace('cc = ["data/mg/cc_a", "data/mg/cc_b.bin"]', cc_line))
    out = data / "out.txt"
    out.write_text("old\n")
    with pytest.raises(error, match=match):
        write_mixture(weights, "megatron", out, mapping)
    assert out.read_text() == "old\n" and not (data / "out.txt.tmp").exists()


def test_other_mapping_rules(data):
    with pytest.raises(ConfigError, match="glob must match at least one file.*nothing-\\*.npy"):
        render(WEIGHTS, "olmo-core", {"domains": {**{d: str(data / "data/files/books-0.npy") for d in WEIGHTS},
                                                  "cc": str(data / "nothing-*.npy")}})
    two = {"domains": {d: [str(data / "data/titan/books"), str(data / "data/titan/cc")] for d in WEIGHTS}}
    with pytest.raises(ConfigError, match="one dataset path per source.*'books' 2"):
        render(WEIGHTS, "torchtitan", two)
    with pytest.raises(ConfigError, match="index.json"):
        render(WEIGHTS, "litgpt", {"domains": {d: str(data / "data/titan/books") for d in WEIGHTS}})
    with pytest.raises(ConfigError, match="tables must be among.*unknown \\['megatorn'\\]"):
        load_mapping({"domains": {"a": "x"}, "megatorn": {}})
    with pytest.raises(ConfigError, match="needs a mapping"):
        render(WEIGHTS, "megatron")
    with pytest.raises(ConfigError, match="format must be one of"):
        render(WEIGHTS, "nanogpt")
    with pytest.raises(ConfigError, match="source names must be distinct.*\\['x'\\]"):
        load_mapping({"domains": {"a": {"paths": ["p"], "name": "x"}, "b": {"paths": ["q"], "name": "x"}}})


# -- token counts -----------------------------------------------------------------------------------

def test_megatron_tokens_come_from_the_index_header(tmp_path):
    write_megatron(tmp_path / "a", [3, 1000, 17], np.int32)
    assert megatron_tokens(tmp_path / "a") == 1020
    write_megatron(tmp_path / "empty", [])
    assert megatron_tokens(tmp_path / "empty") == 0
    with open(tmp_path / "a.bin", "ab") as f:
        f.write(b"\0\0\0\0")  # one token more than the index says
    with pytest.raises(ConfigError, match="must hold the 4,080 bytes its index describes, got 4,084"):
        megatron_tokens(tmp_path / "a")
    (tmp_path / "bad.idx").write_bytes(b"NOTANIDX" + bytes(40))
    with pytest.raises(ConfigError, match="must start with"):
        megatron_tokens(tmp_path / "bad")


def test_numpy_raw_and_manifest_tokens(tmp_path):
    np.save(tmp_path / "h.npy", np.zeros((3, 50), np.uint16))
    np.zeros(101, np.uint16).tofile(tmp_path / "raw.bin")
    assert file_tokens(tmp_path / "h.npy") == 150  # the header's shape; no dtype needed
    assert file_tokens(tmp_path / "raw.bin", "uint16") == 101
    with pytest.raises(ConfigError, match="dtype must be given"):
        file_tokens(tmp_path / "raw.bin")
    with pytest.raises(ConfigError, match="whole number of 4-byte tokens.*202 bytes"):
        file_tokens(tmp_path / "raw.bin", "uint32")
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "manifest.json").write_text(json.dumps({"domains": {
        "a": {"train_tokens": 5, "val_tokens": 1}, "target": {"train_tokens": 0, "val_tokens": 9}}}))
    assert manifest_tokens(tmp_path / "ds") == {"a": 5}
    assert count_tokens(tmp_path / "ds") == {"a": 5}


def test_count_tokens_from_a_mapping(data):
    assert count_tokens(data / "data.toml") == {"books": 60, "cc": 400, "code": 40, "web:news": 7}
    globbed = {"domains": {"x": str(data / "data/files/*-0.npy")}}
    assert count_tokens(globbed, dtype="uint32") == {"x": 4 * 64}


CONFIG = """# my campaign
[study]
dir = "runs/x"   # keep me

[space]
domains = ["books", "cc", "code", "web:news"]   # the order matters
target_tokens = 1000   # budget
tokens = { books = 1 }  # stale

# trailing comment of the space table

[optimizer]
name = "sobol"
"""


def test_merge_keeps_every_other_line_and_the_comments(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    counts = {"cc": 400, "books": 60, "web:news": 7, "code": 40}
    space = write_tokens(path, counts, repetition_factor=4)
    text = path.read_text()
    assert text.replace('tokens = { books = 60, cc = 400, code = 40, "web:news" = 7 }  # stale\nrepetition_factor = 4',
                        'tokens = { books = 1 }  # stale') == CONFIG
    assert list(space["tokens"]) == ["books", "cc", "code", "web:news"]  # space.domains order
    assert tomllib.loads(text)["study"] == {"dir": "runs/x"}
    new = merge_space("[study]\nseed = 1\n", {"tokens": {"a": 1}})  # no [space]: appended
    assert tomllib.loads(new) == {"study": {"seed": 1}, "space": {"tokens": {"a": 1}}}


@pytest.mark.parametrize("config, kwargs, match", [
    (CONFIG, {"counts": {"books": 1, "cc": 1}}, "missing \\['code', 'web:news'\\]"),
    (CONFIG.replace("target_tokens = 1000   # budget\n", ""), {}, "needs space.target_tokens"),
    (CONFIG.replace("target_tokens = 1000", "caps = 0.5"), {}, "has space.caps"),
    (CONFIG.replace("tokens = { books = 1 }  # stale", "[space.tokens]\nbooks = 1"), {}, "cannot edit safely"),
    (CONFIG.replace("target_tokens = 1000", "target_tokens = 1e9"), {}, "caps must sum to at least 1"),
])
def test_merge_refusals_write_nothing(tmp_path, config, kwargs, match):
    path = tmp_path / "c.toml"
    path.write_text(config)
    counts = kwargs.get("counts", {"books": 60, "cc": 400, "code": 40, "web:news": 7})
    with pytest.raises(ConfigError, match=match):
        write_tokens(path, counts)
    assert path.read_text() == config and not (tmp_path / "c.toml.tmp").exists()


def test_snippet_is_valid_toml():
    text = space_snippet({"a": 5, "web:news": 7}, target_tokens=1e9, repetition_factor=4.0)
    assert "target_tokens = 1000000000\n" in text  # a count, written as one (not 1000000000.0)
    assert tomllib.loads(text) == {"space": {"tokens": {"a": 5, "web:news": 7}, "target_tokens": 1000000000,
                                             "repetition_factor": 4}}


# -- the command line -------------------------------------------------------------------------------

def test_cli_exports_a_json_mixture_and_refuses_bad_ones(data, capsys):
    mix = data / "mixture.json"
    mix.write_text(json.dumps({"weights": WEIGHTS, "seed": 3, "trial": 4}))  # the command evaluator's file
    assert main(["mixture", "export", str(mix), "--format", "megatron", "--mapping", str(data / "data.toml")]) == 0
    out = capsys.readouterr()
    assert trainer_shares("megatron", out.out)[str(data / "data/mg/books")] == pytest.approx(0.1)
    assert f"the mixture in {mix}" in out.err
    target = data / "mix.yaml"
    mix.write_text(json.dumps({**WEIGHTS, "cc": 0.5}))  # a plain {domain: weight}, summing to 1.05
    assert main(["mixture", "export", str(mix), "--format", "yaml", "-o", str(target)]) == 2
    assert "must sum to 1" in capsys.readouterr().err and not target.exists()


def test_cli_exports_a_studys_recommended_best_or_chosen_trial(tmp_path, capsys):
    import bomix

    space = bomix.MixtureSpace(["d0", "d1", "d2"])
    study = bomix.create_study(tmp_path / "s", space=space, optimizer="sobol", seed=0)
    study.optimize(bomix.get_evaluator("landscape", name="mixing_law", k=3, noise_sd=0.0, seed=0), n_trials=4)
    best, second = study.best_trial, study.trials[2]
    study.close()
    # sobol has no model, so its recommended mixture is the best observed; the choice is named on stderr
    for extra, weights, what in (([], best.weights, "the recommended mixture"), (["--best"], best.weights,
                                 "best observed, value"), (["--trial", "2"], second.weights, "trial 2 (completed)")):
        assert main(["mixture", "export", str(tmp_path / "s"), "--format", "json", *extra]) == 0
        out = capsys.readouterr()
        assert json.loads(out.out) == pytest.approx(weights) and what in out.err
        assert ("recommended" in out.err) == (not extra)
    assert main(["mixture", "export", str(tmp_path / "s"), "--format", "json", "--trial", "9"]) == 2
    assert "--trial must be one of the study's trials 0..3, got 9" in capsys.readouterr().err
    weights, what = mixture_from(tmp_path / "s", which="best")
    assert weights == best.weights and f"trial {best.number}" in what and "best observed" in what


def test_cli_data_tokens_prints_a_snippet_or_merges(data, capsys):
    assert main(["data", "tokens", str(data / "data.toml")]) == 0
    out = capsys.readouterr()
    assert tomllib.loads(out.out)["space"]["tokens"] == {"books": 60, "cc": 400, "code": 40, "web:news": 7}
    config = data / "campaign.toml"
    config.write_text(CONFIG)
    assert main(["data", "tokens", str(data / "data.toml"), "--into", str(config), "--target-tokens", "200",
                 "--repetition-factor", "2"]) == 0
    assert "0.6000" in capsys.readouterr().out  # books: 2 x 60 / 200
    space = tomllib.loads(config.read_text())["space"]
    assert space["target_tokens"] == 200 and space["repetition_factor"] == 2 and space["tokens"]["cc"] == 400


# -- {mixture:FORMAT} in the command evaluator ---------------------------------------------------------

READER = """\
import json, os, sys
words = open(sys.argv[1]).read().split()
blend = {words[i + 1]: float(words[i]) for i in range(0, len(words), 2)}
plain = json.load(open(os.environ["BOMIX_MIXTURE_JSON"]))
assert sys.argv[2] == "--json=" + os.environ["BOMIX_MIXTURE_JSON"]
losses = {d: 3 + (w - 0.25) ** 2 for d, w in plain.items()}
losses["blend_sum"] = sum(blend.values())
json.dump({"losses": losses, "extra": {"blend": blend}}, open(os.environ["BOMIX_METRICS"], "w"))
"""


def test_command_placeholders_carry_the_mixture_in_the_trainers_form(data):
    import sys

    import bomix

    script = data / "reader.py"
    script.write_text(READER)
    ev = bomix.get_evaluator("command", command=[sys.executable, str(script), "{mixture:megatron}",
                                                      "--json={mixture:json}"],
                             mapping=str(data / "data.toml"), domains=list(WEIGHTS))
    study = bomix.create_study(data / "s", space=bomix.MixtureSpace(list(WEIGHTS)), optimizer="sobol")
    study.optimize(ev, n_trials=2)
    trial = study.trials[1]
    assert trial.losses["blend_sum"] == pytest.approx(1.0)
    assert trial.losses["news"] == pytest.approx(3 + (trial.weights["web:news"] - 0.25) ** 2)
    written = (data / "s" / "trials" / "1" / "mixture-megatron.txt").read_text()
    assert trainer_shares("megatron", written) == pytest.approx(trial.extra["blend"])
    argv = json.loads((data / "s" / "trials" / "1" / "command.json").read_text())["argv"]
    assert argv[-2] == str(data / "s" / "trials" / "1" / "mixture-megatron.txt")


def test_command_placeholder_setup_errors_launch_nothing(data):
    from bomix.evaluators.command import CommandEvaluator

    with pytest.raises(ConfigError, match="must name one of.*\\{mixture:megatorn\\}"):
        CommandEvaluator(command=["x", "{mixture:megatorn}"])
    with pytest.raises(ConfigError, match="need a mapping"):
        CommandEvaluator(command=["x", "{mixture:olmo-core}"])
    with pytest.raises(ConfigError, match="needs P.bin and P.idx"):
        CommandEvaluator(command=["x", "{mixture:megatron}"], mapping={"domains": {"a": "/nowhere/a", "b": "/x"}})
    with pytest.raises(ConfigError, match="unknown \\['web:news'\\]"):
        CommandEvaluator(command=["x", "{mixture:megatron}"], mapping=str(data / "data.toml"),
                         domains=["books", "cc", "code"])
    ev = CommandEvaluator(command=["/bin/false", "{mixture:megatron}"], mapping=str(data / "data.toml"))
    (data / "data" / "mg" / "code.bin").unlink()  # gone after the evaluator was built
    with pytest.raises(EvaluationError, match="writable as megatron before the command starts"):
        ev.evaluate(WEIGHTS)
