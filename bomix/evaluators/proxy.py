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

Scales (a multi-fidelity evaluator): `scales = {name: {preset, tokens, cost}}` names the proxy
sizes a trial may train at, e.g. {"tiny" = {preset = "tiny", tokens = 2_000_000}, "small" =
{preset = "small", tokens = 20_000_000}}. A trial at scale s runs the command with s's preset and
token budget (the evaluator's own `preset` and `tokens` are then unused); its cost gets "compute"
= s's relative cost: `cost` if given, else parameters x tokens, from the preset at the dataset's
vocabulary (manifest.json "vocab_size") and the trainer's default of 20 tokens per parameter when
`tokens` is left out. `target` is the scale recommendations are for (default: the costliest).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from bomix.errors import ConfigError, EvaluationError
from bomix.evaluators.base import Evaluator, TrialContext
from bomix.evaluators.command import CommandEvaluator, _check_positive, parse_metrics
from bomix.fidelity import check_fidelities, check_fidelity
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


def _scale_cost(data, name: str, preset: str, tokens: int | None) -> float:
    """Parameters x tokens of a proxy scale: the preset at the dataset's vocabulary, and tokens (or
    the trainer's default for that model)."""
    from bomix.train.model import PRESETS, count_params
    from bomix.train.trainer import TrainConfig, default_tokens, resolve_model

    if preset not in PRESETS:
        raise ConfigError(f"scale {name!r}: preset must be one of {sorted(PRESETS)}, got {preset!r}")
    path = Path(data).expanduser() / "manifest.json"
    vocab = json.loads(path.read_text()).get("vocab_size")
    if isinstance(vocab, bool) or not isinstance(vocab, int) or vocab < 1:
        raise ConfigError(f"scale {name!r} needs a cost: {path} gives no vocab_size to count the preset's "
                          f"parameters by (got {vocab!r}); set cost = parameters x tokens, in any unit")
    model = resolve_model(TrainConfig(preset=preset), vocab)
    return float(count_params(model) * (tokens if tokens is not None else default_tokens(model)))


def check_scales(scales, data) -> dict[str, tuple[str, int | None, float]]:
    """{name: (preset, tokens, relative cost)} of a proxy evaluator's `scales`, checked."""
    if not isinstance(scales, Mapping) or not scales:
        raise ConfigError(f"scales must be a non-empty table {{name: {{preset, tokens, cost}}}}, got {scales!r}")
    out = {}
    for name, spec in scales.items():
        if not isinstance(spec, Mapping) or not set(spec) <= {"preset", "tokens", "cost"} or "preset" not in spec:
            raise ConfigError(f"scale {name!r} must be a table with a preset and optionally tokens and cost, got "
                              f"{spec!r}")
        preset, tokens, cost = spec["preset"], spec.get("tokens"), spec.get("cost")
        if not isinstance(preset, str) or not preset:
            raise ConfigError(f"scale {name!r}: preset must be a non-empty string, got {preset!r}")
        if tokens is not None:
            _check_positive(f"scale {name!r}: tokens", tokens, integer=True)
        if cost is None:
            cost = _scale_cost(data, name, preset, None if tokens is None else int(tokens))
        out[name] = (preset, None if tokens is None else int(tokens), cost)
    return out  # the names and costs are checked as the evaluator's fidelities


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
    scales: {name: {preset, tokens, cost}} for a multi-fidelity evaluator (module docstring), or None.
    target: the scale recommendations are for (default: the costliest).
    """

    name = "proxy"

    def __init__(self, *, data, preset: str = "tiny", tokens: int | None = None, device: str = "auto",
                 eval_every: int | None = None, compile: bool | None = None, timeout_s: float | None = None,
                 extra_args=(), stack: int = 1, scales: Mapping | None = None, target: str | None = None):
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
        self.scales, self.target = scales, target
        self._scales = None if scales is None else check_scales(scales, data)
        self.fidelities, self.target_fidelity = check_fidelities(
            None if self._scales is None else {n: c for n, (_, _, c) in self._scales.items()}, target)
        self._commands = {None: CommandEvaluator(command=self.argv, domains=self.domains, timeout_s=timeout_s)} \
            if self._scales is None else \
            {n: CommandEvaluator(command=self.argv_at(n), domains=self.domains, timeout_s=timeout_s) for n in self._scales}

    @property
    def argv(self) -> list[str]:
        """The trainer command, with the per-trial placeholders {mixture} {metrics} {seed} unsubstituted
        (of a multi-fidelity evaluator: at its target scale)."""
        return self.argv_at(self.target_fidelity)

    def argv_at(self, scale: str | None) -> list[str]:
        """The trainer command at `scale` (None: the evaluator's own preset and tokens)."""
        preset, tokens = (self.preset, self.tokens) if scale is None else self._scales[scale][:2]
        argv = [sys.executable, "-m", "bomix.train", str(Path(self.data).expanduser().absolute()),
                "--mixture", "{mixture}", "--metrics", "{metrics}", "--seed", "{seed}", "--preset", preset,
                "--device", self.device]
        if tokens is not None:
            argv += ["--tokens", str(int(tokens))]
        if self.eval_every is not None:
            argv += ["--eval-every", str(int(self.eval_every))]
        if self.compile is not None:
            argv.append("--compile" if self.compile else "--no-compile")
        return argv + self._extra

    def _scale_of(self, context: TrialContext | None) -> str | None:
        try:
            name = check_fidelity(getattr(context, "fidelity", None), self.fidelities, what="scale")
        except ConfigError as e:
            raise EvaluationError(str(e)) from None
        return name or self.target_fidelity

    def _with_compute(self, evaluation: Evaluation, scale: str | None) -> Evaluation:
        if scale is None:
            return evaluation
        return Evaluation(losses=evaluation.losses, cost={"compute": self.fidelities[scale], **evaluation.cost},
                          curves=evaluation.curves, extra=evaluation.extra)

    def evaluate(self, weights: Mapping[str, float], context: TrialContext | None = None) -> Evaluation:
        scale = self._scale_of(context)
        if context is not None and scale is not None:  # each scale's command is single-fidelity
            context = dataclasses.replace(context, fidelity=None)
        return self._with_compute(self._commands[scale].evaluate(weights, context), scale)

    def train_config(self, scale: str | None = None):
        """(dataset directory, TrainConfig): what the trainer command would build from its argv at
        `scale` (None: argv) (seed 0; each trial brings its own)."""
        from bomix.train.__main__ import add_arguments, config_from_args

        parser = argparse.ArgumentParser(prog="bomix.train", exit_on_error=False, add_help=False)
        add_arguments(parser)
        fill = {"{mixture}": "-", "{metrics}": "-", "{seed}": "0"}
        argv = self.argv if scale is None else self.argv_at(scale)
        try:
            args = parser.parse_args([fill.get(a, a) for a in argv[3:]])
            return Path(args.data), config_from_args(args)
        except (argparse.ArgumentError, ValueError, SystemExit) as e:
            raise ConfigError(f"the proxy evaluator's trainer arguments must be valid, got {argv[3:]}: "
                              f"{e}") from None

    def evaluate_many(self, weights: Sequence[Mapping[str, float]],
                      contexts: Sequence[TrialContext]) -> list[Evaluation | Exception]:
        """Train the mixtures stacked in this process (more than one, all at one scale), or run the
        command for each."""
        contexts = [c or TrialContext() for c in contexts]
        try:
            scales = {self._scale_of(c) for c in contexts}
        except EvaluationError:
            scales = {None, "?"}  # evaluate() fails the trial at the unknown scale alone
        if len(weights) <= 1 or len(scales) > 1:
            return super().evaluate_many(weights, contexts)
        from bomix.train.stacked import train_many  # torch loads here, in the worker

        (scale,) = scales
        data, config = self.train_config(scale)
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
                out[i] = self._with_compute(Evaluation(**parse_metrics(metrics, f"trial {context.number}'s metrics")),
                                            scale)
            except EvaluationError as e:
                out[i] = e
        return out
