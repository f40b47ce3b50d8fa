"""The trainer templates in experiments/integrations/ and the log reader they end with.

Each template campaign runs for real (`bomix run`, inline runner, 2 trials) with its run_trial.sh,
its mixture placeholder and its mapping; only the trainer is a stand-in that reads the mixture in
that trainer's own form (the argument or file the real trainer would read) and prints validation
losses in that trainer's log format, loss = 3 + the weight it received for the domain. So a trial's
losses equal 3 + its weights only if the mixture crossed the wrapper intact and the log was read.
"""

import json
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from bomix.cli import main
from bomix.integrations.run_trainer import LossLog, run

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "experiments" / "integrations"
TRAINERS = ["megatron", "gpt-neox", "olmo-core", "torchtitan", "litgpt", "levanter"]
DOMAINS = ["books", "cc", "stack", "pes2o", "reddit"]

FAKE = r'''
import json, os, sys, tomllib, yaml
fmt, args = sys.argv[1], sys.argv[2:]
def values(flag):
    i = args.index(flag) + 1
    out = []
    while i < len(args) and not args[i].startswith("--"):
        out.append(args[i]); i += 1
    return out
def name(path):
    return os.path.basename(path.rstrip("/")).split("-")[0]
if fmt == "megatron":
    words = values("--train-data-path")
    got = {name(words[i + 1]): float(words[i]) for i in range(0, len(words), 2)}
    assert "--multiple-validation-sets" in args and values("--seed")
    for k, prefix in enumerate(values("--valid-data-path")):
        print(f" validation-{k} loss at iteration 50 | lm loss value: {3 + got[name(prefix)] + 0.5:.6E} |")
        print(f" validation-{k} loss at iteration 100 | lm loss value: {3 + got[name(prefix)]:.6E} | lm loss PPL: 1 |")
elif fmt == "gpt-neox":
    mix = yaml.safe_load(open(args[-1]))
    assert json.load(open(args[-2]))["seed"] >= 0   # trial.yml
    got = {name(p): w for p, w in zip(mix["train-data-paths"], mix["train-data-weights"])}
    print(f" validation results at iteration 100 | lm_loss value: {3 + got['books']:.6E} | lm_loss_ppl value: 1 |")
elif fmt == "olmo-core":
    mix = yaml.safe_load(open(values("--mixture")[0]))
    got = {s["source_name"]: s["target_ratio"] for s in mix["source_list"]["sources"]}
    labels = tomllib.load(open(values("--validation")[0], "rb"))["validation"]
    print("[step=100/100,epoch=0]")
    print("Finished lm evals in 1.0 seconds. Metrics:\n" + "\n".join(
        f"    {label}/CE loss={3 + got[label]:.3f}\n    {label}/PPL=20.0" for label in labels))
elif fmt == "torchtitan":
    mix = json.load(open(os.environ["BOMIX_MIXTURE_TORCHTITAN"]))
    assert args == ["--module", "bomix_titan", "--config", "bomix_trial"]
    assert os.path.isfile(os.path.join(os.environ["PYTHONPATH"].split(":")[0], "bomix_titan.py"))
    got = {s["dataset"]: s["weight"] for s in mix["sources"]}
    print(f"\x1b[33mvalidate step: 100  \x1b[32mloss: {3 + got['books']:7.4f}  \x1b[36mmemory: 1.00GiB\x1b[39m")
elif fmt == "litgpt":
    assert args[args.index("--data") + 1] == "bomix_litgpt.BomixMixture"
    mix = json.load(open(values("--data.mixture")[0]))
    got = {d["name"]: w / sum(mix["weights"]) for d, w in zip(mix["datasets"], mix["weights"])}
    print(f"iter 50: val loss {4 + got['books']:.4f}, val time: 1.00 ms")
    print(f"Final evaluation | val loss: {3 + got['books']:.3f} | val ppl: 22.000")
elif fmt == "levanter":
    config = yaml.safe_load(open(values("--config_path")[0]))
    data = config["data"]
    assert all(c["validation_urls"] and c["train_urls"] for c in data["configs"].values())
    assert config["trainer"]["seed"] >= 0
    for tag, w in data["train_weights"].items():
        print(f"2026-01-01 - levanter.eval - INFO - {tag} loss: {3 + w:.3f}")
    print("2026-01-01 - levanter.eval - INFO - eval loss: 3.500")
'''


def make_data(root: Path, trainer: str) -> dict:
    """Data on disk for `trainer`'s mapping kind; returns {domain: path}."""
    paths = {}
    for d in DOMAINS:
        if trainer in ("megatron", "gpt-neox"):
            prefix = root / "mg" / d
            prefix.parent.mkdir(exist_ok=True)
            from test_integrations import write_megatron

            write_megatron(prefix, [50, 50])
            paths[d] = str(prefix)
        elif trainer in ("olmo-core", "levanter"):
            (root / d).mkdir()
            np.zeros(100, np.uint32).tofile(root / d / "part-0.npy")
            paths[d] = str(root / d / "*.npy")
        else:
            (root / d).mkdir()
            (root / d / "index.json").write_text("{}")
            paths[d] = str(root / d)
    return paths


def trainer_env(root: Path, trainer: str, fake: Path) -> dict:
    env = {"TRAINER_CMD": f"{sys.executable} {fake} {trainer}"}
    if trainer == "megatron":
        env.update(VALID_PREFIXES=" ".join(f"/val/{d}" for d in DOMAINS), VALID_NAMES=" ".join(DOMAINS))
    elif trainer == "gpt-neox":
        env["NEOX_CONFIGS"] = str(TEMPLATES / "gpt-neox" / "neox_data.yml")
    elif trainer == "olmo-core":
        env["VALIDATION"] = str(TEMPLATES / "olmo-core" / "validation.toml")
    elif trainer == "torchtitan":
        env["BOMIX_VALIDATION_PATH"] = str(root)
    elif trainer == "litgpt":
        env["VAL_DIR"] = str(root)
    else:
        env["BASE_CONFIG"] = str(TEMPLATES / "levanter" / "base.yaml")
    return env


@pytest.mark.parametrize("trainer", TRAINERS)
def test_template_campaign_runs_its_wrapper_and_reads_the_trainers_losses(tmp_path, trainer, monkeypatch):
    monkeypatch.chdir(ROOT)  # the templates' paths are relative to the repository root
    paths = make_data(tmp_path, trainer)
    mapping = tmp_path / "data.toml"
    lines = ["[domains]", *(f'{d} = "{p}"' for d, p in paths.items())]
    if trainer == "olmo-core":
        lines += ["[olmo-core]", "requested_tokens = 200", "global_batch_size = 10"]
    mapping.write_text("\n".join(lines) + "\n")
    fake = tmp_path / "fake_trainer.py"
    fake.write_text(FAKE)
    env = "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in trainer_env(tmp_path, trainer, fake).items()) + "}"
    study = tmp_path / "study"
    args = ["run", str(TEMPLATES / trainer / "campaign.toml"), "--no-progress", "--set", f"study.dir={json.dumps(str(study))}",
            "--set", 'study.runner="process"', "--set", "study.n_trials=2", "--set", "study.n_parallel=1", "--set", "optimizer.name=sobol",
            "--set", f"evaluator.params.mapping={json.dumps(str(mapping))}", "--set", f"evaluator.params.env={env}"]
    assert main(args) == 0
    import bomix

    trials = bomix.load_study(study).trials
    assert [t.state.value for t in trials] == ["completed", "completed"], [t.error for t in trials]
    for t in trials:
        if trainer in ("megatron", "olmo-core", "levanter"):  # one loss per domain
            tol = 1e-6 if trainer == "megatron" else 5e-4  # printed with 3 decimals
            assert t.losses == pytest.approx({d: 3 + t.weights[d] for d in DOMAINS}, abs=tol)
        else:  # one validation loss on a fixed set (here: 3 + the books weight)
            assert list(t.losses) == [{"litgpt": "val"}.get(trainer, "validation")]
            assert next(iter(t.losses.values())) == pytest.approx(3 + t.weights["books"], abs=5e-4)
    if trainer == "megatron":
        assert trials[0].curves["books"][0][0] == 50 and len(trials[0].curves["books"]) == 2


@pytest.mark.parametrize("trainer", TRAINERS)
def test_template_files_a_user_needs(trainer, monkeypatch):
    """Config loads, its runner settings are valid submitit parameters, the README names each step."""
    import submitit
    from submitit.slurm import slurm

    from bomix.config import load_config

    folder = TEMPLATES / trainer
    config = load_config(folder / "campaign.toml")
    params = config.evaluator.params
    assert params["command"][:2] == ["bash", f"experiments/integrations/{trainer}/run_trial.sh"]
    assert f"{{mixture:{trainer}}}" in params["command"] and (ROOT / params["mapping"]).is_file()
    assert params["domains"] == config.space.domains == DOMAINS
    assert tomllib.loads((ROOT / params["mapping"]).read_text())["domains"].keys() == set(DOMAINS)
    runner = config.study.runner
    assert runner["name"] == "slurm"
    monkeypatch.setattr(slurm.SlurmExecutor, "affinity", staticmethod(lambda: 1))  # no srun here
    executor = submitit.AutoExecutor(folder=str(folder / "never-written"), cluster="slurm")
    executor.update_parameters(**runner["params"]["parameters"])  # unknown names raise
    assert executor._executor.parameters["gpus_per_node"] >= 1
    readme = (folder / "README.md").read_text()
    for needed in ("data.toml", "bomix data tokens" if trainer in ("megatron", "gpt-neox", "olmo-core") else "tokens",
                   "run_trial.sh", "bomix run", "bomix mixture export", "[study.runner.params.parameters]"):
        assert needed in readme, needed


LOGS = {
    "megatron": (" validation loss at iteration 10 | lm loss value: 3.600000E+00 | lm loss PPL: 33.1 |\n"
                 " validation loss at iteration 10 | lm loss value: 3.500000E+00 | lm loss PPL: 33.1 |\n"
                 " validation-1 loss at iteration 10 | lm loss value: 2.5E+00 |", {"validation": 3.5, "validation-1": 2.5}),
    "gpt-neox": (" validation results at iteration 7 | lm_loss value: 2.250000E+00 | lm_loss_ppl value: 9.4 |",
                 {"validation": 2.25}),
    "litgpt": ("iter 5: val loss 4.0000, val time: 3.00 ms\nFinal evaluation | val loss: 3.125 | val ppl: 22.7",
               {"val": 3.125}),
    "torchtitan": ("\x1b[33mvalidate step:  5  \x1b[32mloss:  3.7500  \x1b[36mmemory:  1.00GiB(2.00%)", {"validation": 3.75}),
    "olmo-core": ("[step=5/10,epoch=0]\nFinished lm evals in 1.0 seconds. Metrics:\n    books/CE loss=3.214\n"
                  "    books/PPL=24.9\n    web news/CE loss=2.5", {"books": 3.214, "web news": 2.5}),
    "levanter": ("INFO - eval loss: 3.000\nINFO - books loss: 2.900\nINFO - web macro loss: 3.3\nINFO - cc loss: 3.100",
                 {"books": 2.9, "cc": 3.1}),
}


@pytest.mark.parametrize("fmt", sorted(LOGS))
def test_log_reader_knows_each_trainers_lines(fmt):
    log = LossLog(fmt)
    for line in LOGS[fmt][0].splitlines():
        log.feed(line + "\n")
    assert log.metrics()["losses"] == LOGS[fmt][1]
    steps = {"megatron": ("validation", 10), "gpt-neox": ("validation", 7), "torchtitan": ("validation", 5),
             "olmo-core": ("books", 5)}  # litgpt's final line and levanter's lines carry no step
    if fmt in steps:
        name, step = steps[fmt]
        assert log.metrics()["curves"][name][-1] == [step, LOGS[fmt][1][name]]
    if fmt == "megatron":  # the final evaluation at an eval-interval step: one point, the last value
        assert log.metrics()["curves"]["validation"] == [[10, 3.5]]


def test_run_trainer_passes_failures_on_and_writes_nothing(tmp_path, capsys):
    metrics = tmp_path / "m.json"
    code = "import sys; print(' validation loss at iteration 1 | lm loss value: 3.0 |'); sys.exit(3)"
    assert run([sys.executable, "-c", code], "megatron", metrics) == 3 and not metrics.exists()
    assert run([sys.executable, "-c", "print('step 1 loss 3.0')"], "megatron", metrics) == 1 and not metrics.exists()
    assert "printed no validation loss; expected a line like" in capsys.readouterr().err
    code = "print(' validation-0 loss at iteration 1 | lm loss value: 3.0 |')"
    assert run([sys.executable, "-c", code], "megatron", metrics, {"validation-0": "books"}) == 0
    assert json.loads(metrics.read_text())["losses"] == {"books": 3.0}
