"""Evaluate a mixture by training bomix's built-in proxy model on it, one process per trial.

Each trial runs

    python -m bomix.train DATA --mixture {mixture} --metrics {metrics} --seed {seed} --preset PRESET
        [--tokens N] [--device DEVICE] [--eval-every N] [--compile | --no-compile] [EXTRA_ARGS...]

through CommandEvaluator, so a crash or an out-of-memory kill fails that trial only, logs land in
trials/<n>/stdout.log and stderr.log, and the files and metrics follow the command protocol
(bomix/evaluators/command.py). DATA is a dataset directory built by `bomix data build`; its
manifest.json names the domains, and the study's space must list its training domains (all but
the validation-only ones) in that order.

With stack=K (K > 1), evaluate_many trains up to K mixtures at once, their models stacked on one
device (bomix.train.stacked.train_many), in the calling process: the process runner's worker, which
is already a process of its own, so a crash or an out-of-memory kill fails that worker's K trials
and no others. The trainer's arguments are the ones the command would get. Each trial keeps its
files: trials/<n>/mixture.json, metrics.json (the trainer's format) and stdout.log (its model's log
lines); a model that diverges, or whose mixture is invalid, fails its trial only. A single mixture
still runs as the command above.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from bomix.errors import ConfigError, EvaluationError
from bomix.evaluators.base import Evaluator, TrialContext
from bomix.evaluators.command import CommandEvaluator, _check_positive, parse_metrics
from bomix.trial import Evaluation


def manifest_domains(data) -> tuple[str, ...]:
    """The training domains of a dataset directory, in its manifest.json's order; validation-only
    sets (val_only, or no train tokens) are left out: the trainer reports their losses too."""
    path = Path(data).expanduser() / "manifest.json"
    if not path.is_file():
        where = "does not exist" if not Path(data).expanduser().is_dir() else "has no manifest.json"
        raise ConfigError(f"the proxy evaluator's data must be a dataset directory built by `bomix data build`, "
                          f"but {str(data)!r} {where} (looked for {path}); build it with `bomix data build`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} must be a readable JSON manifest: {e}; rebuild it with `bomix data build`") from None
    domains = manifest.get("domains") if isinstance(manifest, dict) else None
    if not isinstance(domains, dict) or not domains:
        raise ConfigError(f"{path} must have \"domains\": {{name: {{...}}, ...}} naming at least one domain, got "
                          f"{domains!r}; rebuild it with `bomix data build`")
    train = tuple(d for d, info in domains.items() if not _validation_only(info))
    if not train:
        raise ConfigError(f"{path} must name at least one training domain (with train tokens), got only "
                          f"validation sets {list(domains)}")
    return train


def _validation_only(info) -> bool:
    """Whether a manifest entry is a validation set no training draws from (val_only, or 0 train tokens)."""
    return isinstance(info, dict) and (info.get("val_only") is True or info.get("train_tokens") == 0)


class ProxyEvaluator(Evaluator):
    """Trains the built-in proxy LM (`python -m bomix.train`) on each mixture, in a child process.

    data: the dataset directory (`bomix data build` writes it; manifest.json names the domains).
    preset: the trainer's model/run size preset ("tiny" is the smallest).
    tokens: training tokens per trial, or None for the preset's default.
    device: "auto", "cpu" or "cuda", as the trainer accepts (export CUDA_VISIBLE_DEVICES to pick a GPU).
    eval_every: steps between validation evaluations (the loss curves), or None for the default.
    compile: True/False forces torch.compile on/off; None leaves the trainer's default.
    timeout_s: wall-clock limit per trial in seconds, or None; past it the trial FAILS.
    extra_args: further trainer arguments, a list or a string split like a shell ("--batch-size 16").
    stack: how many trials evaluate_many trains at once, stacked (see the module docstring); 1 (the
        default) trains each in its own process. Worth 4-8 for presets under about 5M parameters on a GPU.
    """

    name = "proxy"

    def __init__(self, *, data, preset: str = "tiny", tokens: int | None = None, device: str = "auto",
                 eval_every: int | None = None, compile: bool | None = None, timeout_s: float | None = None,
                 extra_args=(), stack: int = 1):
        if not isinstance(data, (str, os.PathLike)) or not str(data):
            raise ConfigError(f"data must be a dataset directory path, got {data!r}")
        for what, value in (("preset", preset), ("device", device)):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{what} must be a non-empty string, got {value!r}")
        for what, value in (("tokens", tokens), ("eval_every", eval_every)):
            if value is not None:
                _check_positive(what, value, integer=True)
        _check_positive("stack", stack, integer=True)
        if compile is not None and not isinstance(compile, bool):
            raise ConfigError(f"compile must be true, false or None, got {compile!r}")
        if isinstance(extra_args, str):
            args = shlex.split(extra_args)
        elif isinstance(extra_args, (list, tuple)) and all(isinstance(a, str) for a in extra_args):
            args = list(extra_args)
        else:
            raise ConfigError(f"extra_args must be a list of strings or a string, got {extra_args!r}")
        self.data = data
        self.preset = preset
        self.tokens = tokens
        self.device = device
        self.eval_every = eval_every
        self.compile = compile
        self.timeout_s = timeout_s
        self.extra_args = extra_args
        self.stack = stack
        self.max_batch = int(stack)
        self.domains = manifest_domains(data)
        self._extra = args
        self._command = CommandEvaluator(command=self.argv, domains=self.domains, timeout_s=timeout_s)

    @property
    def argv(self) -> list[str]:
        """The trainer command, with the per-trial placeholders {mixture} {metrics} {seed} unsubstituted."""
        argv = [sys.executable, "-m", "bomix.train", str(Path(self.data).expanduser().absolute()),
                "--mixture", "{mixture}", "--metrics", "{metrics}", "--seed", "{seed}", "--preset", self.preset,
                "--device", self.device]
        if self.tokens is not None:
            argv += ["--tokens", str(int(self.tokens))]
        if self.eval_every is not None:
            argv += ["--eval-every", str(int(self.eval_every))]
        if self.compile is not None:
            argv.append("--compile" if self.compile else "--no-compile")
        return argv + self._extra

    def evaluate(self, weights: Mapping[str, float], context: TrialContext | None = None) -> Evaluation:
        return self._command.evaluate(weights, context)

    def train_config(self):
        """(dataset directory, TrainConfig): what the trainer command would build from argv (seed 0;
        each trial brings its own)."""
        from bomix.train.__main__ import add_arguments, config_from_args

        parser = argparse.ArgumentParser(prog="bomix.train", exit_on_error=False, add_help=False)
        add_arguments(parser)
        fill = {"{mixture}": "-", "{metrics}": "-", "{seed}": "0"}
        try:
            args = parser.parse_args([fill.get(a, a) for a in self.argv[3:]])
            return Path(args.data), config_from_args(args)
        except (argparse.ArgumentError, ValueError, SystemExit) as e:
            raise ConfigError(f"the proxy evaluator's trainer arguments must be valid, got {self.argv[3:]}: "
                              f"{e}") from None

    def evaluate_many(self, weights: Sequence[Mapping[str, float]],
                      contexts: Sequence[TrialContext]) -> list[Evaluation | Exception]:
        """Train the mixtures stacked in this process (more than one), or run the command (one)."""
        if len(weights) <= 1:
            return super().evaluate_many(weights, contexts)
        from bomix.train.stacked import train_many  # torch loads here, in the worker

        data, config = self.train_config()
        contexts = [c or TrialContext() for c in contexts]
        weights = [{str(d): float(w) for d, w in mix.items()} for mix in weights]
        directories = [None if c.directory is None else Path(c.directory).absolute() for c in contexts]
        for mix, context, directory in zip(weights, contexts, directories, strict=True):
            if directory is not None:
                directory.mkdir(parents=True, exist_ok=True)
                (directory / "mixture.json").write_text(json.dumps({"weights": mix, "seed": context.seed,
                                                                    "trial": context.number}) + "\n")
                (directory / "stdout.log").write_text("")

        def log(i: int, line: str) -> None:
            if directories[i] is not None:
                with open(directories[i] / "stdout.log", "a") as f:
                    f.write(line + "\n")

        # as the command evaluator: a mixture must name exactly the dataset's training domains
        out: list[Evaluation | Exception | None] = [
            None if set(mix) == set(self.domains) else
            EvaluationError(f"this proxy evaluator takes mixtures over {list(self.domains)}, got {list(mix)}")
            for mix in weights]
        todo = [i for i, o in enumerate(out) if o is None]
        trained = train_many(data, [weights[i] for i in todo], config, seeds=[contexts[i].seed for i in todo],
                             log=lambda j, line: log(todo[j], line), time_limit_s=self.timeout_s) if todo else []
        for i, result in zip(todo, trained):
            context, directory = contexts[i], directories[i]
            if isinstance(result, Exception):
                out[i] = result
                continue
            metrics = result.to_dict()
            metrics["extra"]["trial"] = context.number
            if directory is not None:
                (directory / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
            try:
                out[i] = Evaluation(**parse_metrics(metrics, f"trial {context.number}'s metrics"))
            except EvaluationError as e:
                out[i] = e
        return out
