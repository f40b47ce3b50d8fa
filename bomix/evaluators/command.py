"""Evaluate a mixture by running a command: your own training script, one process per trial.

The protocol, for a trial numbered n whose directory is D (the study's trials/<n>/):

    D/mixture.json    written before the command starts:
                      {"weights": {domain: weight, ...}, "seed": int, "trial": n, "fidelity": name}
                      ("fidelity" only when the evaluator has fidelities)
    environment       BOMIX_MIXTURE = D/mixture.json     BOMIX_METRICS = D/<metrics_name>
                      BOMIX_SEED, BOMIX_TRIAL, BOMIX_TRIAL_DIR = D, BOMIX_FIDELITY (when it has)
                      BOMIX_WEIGHT_<NAME> = the weight of each domain (NAME upper-cased, every
                      character other than A-Z and 0-9 replaced by "_": "web:news" -> WEB_NEWS)
    placeholders      {mixture} {metrics} {seed} {trial} {trial_dir} {python} in any argument are
                      replaced by the same paths and numbers ({python}: this interpreter);
                      {fidelity} by the scale the trial runs at (see "Fidelities" below)
    {mixture:FORMAT}  the mixture in a trainer's own form (olmo-core, torchtitan, megatron, litgpt,
                      levanter, gpt-neox, json, yaml), written to D/mixture-FORMAT.EXT through the
                      evaluator's `mapping` (domain -> data); the placeholder becomes that path and
                      BOMIX_MIXTURE_<FORMAT> holds it too (bomix/integrations/placeholders.py)
    D/stdout.log, D/stderr.log    what the command prints; D/command.json the argv, cwd and env it got
    D/<metrics_name>  written by the command before it exits with status 0 (default metrics.json):
                      {"losses": {name: nats/token, ...},                    required, non-empty
                       "curves": {name: [[step, loss], ...]},                optional
                       "cost":   {name: number},   e.g. {"tokens": 5e8}      optional
                       "extra":  {...}}                                       optional, any JSON
                      (null counts as absent for the optional keys)

Fidelities: with `fidelities = {name: relative cost}` (e.g. {"20m" = 1, "150m" = 18}: parameters
x tokens, in any unit) the command is a multi-fidelity evaluator: each trial runs at one of those
scales, named by {fidelity} and BOMIX_FIDELITY, and the trial's cost gets "compute" = that
scale's relative cost unless the command reports its own. `target` is the scale recommendations
are for (default: the costliest). A {fidelity} placeholder without fidelities is refused.

Loss names need not be training domains (a held-out target set is fine). Wall time is added as
cost "seconds" unless the command reports it. The command runs without a shell, in its own process
group; on timeout or Ctrl-C the whole group gets SIGTERM, then SIGKILL after KILL_GRACE_S, and
whatever is left of the group after a normal exit is killed too (no stray workers holding a GPU).
A non-zero exit, a timeout or a missing or malformed metrics file raises EvaluationError saying
what to fix, with the last lines of stderr; the study records the trial as FAILED and goes on.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from bomix.errors import ConfigError, EvaluationError
from bomix.evaluators.base import Evaluator, TrialContext
from bomix.fidelity import check_fidelities, check_fidelity
from bomix.integrations.placeholders import env_name, placeholder_formats, prepare, write_trial_files
from bomix.trial import Evaluation

KILL_GRACE_S = 10.0  # seconds between SIGTERM and SIGKILL when a command is stopped
TAIL_LINES = 20  # lines of stderr (or stdout when stderr is empty) quoted in an error
TAIL_LINE_CHARS = 300  # longer lines are cut (progress bars)
PLACEHOLDERS = ("mixture", "metrics", "seed", "trial", "trial_dir", "python", "fidelity")
METRICS_KEYS = ("losses", "curves", "cost", "extra")
RESERVED_NAMES = ("mixture.json", "command.json", "stdout.log", "stderr.log")


def weight_variable(domain: str) -> str:
    """The environment variable carrying a domain's weight: "web:news" -> BOMIX_WEIGHT_WEB_NEWS."""
    return "BOMIX_WEIGHT_" + re.sub(r"[^A-Z0-9]", "_", domain.upper())


def _split_command(command) -> list[str]:
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as e:
            raise ConfigError(f"command must be a shell-like string or a list of arguments, got {command!r}: "
                              f"{e}") from None
    elif isinstance(command, (list, tuple)):
        argv = list(command)
        bad = [a for a in argv if not isinstance(a, str)]
        if bad:
            raise ConfigError(f"command arguments must all be strings (quote numbers: \"100\"), got {bad!r} in "
                              f"{argv!r}")
    else:
        raise ConfigError(f"command must be a list of arguments or a string, got {command!r}")
    if not argv or not argv[0]:
        raise ConfigError(f"command must name a program to run, got {command!r}")
    return argv


def _check_domains(domains) -> tuple[str, ...]:
    names = (domains,) if isinstance(domains, str) else tuple(domains)
    if not names or not all(isinstance(d, str) and d for d in names) or len(set(names)) != len(names):
        raise ConfigError(f"domains must be distinct non-empty names, got {domains!r}")
    _weight_variables(names)
    return names


def _weight_variables(domains) -> dict[str, str]:
    """{domain: BOMIX_WEIGHT_<NAME>}, refusing two domains that share a variable."""
    out, seen = {}, {}
    for d in domains:
        var = weight_variable(d)
        if var in seen:
            raise ConfigError(f"domains must map to distinct {var[:13]}* variables, but {seen[var]!r} and {d!r} "
                              f"both give {var}")
        seen[var] = d
        out[d] = var
    return out


def _check_positive(what: str, value, *, integer: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0
    if ok and integer:
        ok = float(value).is_integer()
    if not ok:
        kind = "a positive integer" if integer else "a finite number > 0"
        raise ConfigError(f"{what} must be None or {kind}, got {value!r}")


def _tail(directory: Path) -> str:
    """The last TAIL_LINES lines of stderr.log (of stdout.log when stderr is empty), as a quote."""
    for name in ("stderr.log", "stdout.log"):
        path = directory / name
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        lines = [ln[-TAIL_LINE_CHARS:] for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
        if lines:
            lines = lines[-TAIL_LINES:]
            return f"\nlast {len(lines)} lines of {path}:\n" + "\n".join(lines)
    return f"\n(the command printed nothing; logs are in {directory})"


def _write_json(path: Path, data) -> None:
    """Write JSON atomically: a reader sees the old file or the whole new one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def parse_metrics(data, where: str = "metrics") -> dict:
    """Check a metrics object and return Evaluation keyword arguments; EvaluationError names the
    first problem (key and value). `where` names the source in messages (a file path)."""
    if not isinstance(data, dict):
        raise EvaluationError(f"{where} must hold a JSON object {{\"losses\": {{name: loss, ...}}}}, got "
                              f"{type(data).__name__}: {_short(data)}")
    unknown = sorted(set(data) - set(METRICS_KEYS))
    if unknown:
        raise EvaluationError(f"{where} keys must be among {list(METRICS_KEYS)} (put anything else under \"extra\"), "
                              f"got unknown {unknown}")
    if "losses" not in data:
        raise EvaluationError(f"{where} must have \"losses\": {{validation set: loss in nats/token}}, got keys "
                              f"{sorted(data)}")
    losses = data["losses"]
    if not isinstance(losses, dict) or not losses:
        raise EvaluationError(f"{where} \"losses\" must be a non-empty object {{name: loss}}, got {_short(losses)}")
    for name, value in losses.items():
        if not isinstance(name, str) or not name:
            raise EvaluationError(f"{where} loss names must be non-empty strings, got {name!r}")
        if not _is_number(value):
            raise EvaluationError(f"{where} losses must be finite numbers (nats/token), got {name!r}: {value!r}")
    cost = {} if data.get("cost") is None else data["cost"]
    if not isinstance(cost, dict):
        raise EvaluationError(f"{where} \"cost\" must be an object {{name: number}}, got {_short(cost)}")
    for name, value in cost.items():
        if not _is_number(value):
            raise EvaluationError(f"{where} cost values must be finite numbers, got {name!r}: {value!r}")
    extra = {} if data.get("extra") is None else data["extra"]
    if not isinstance(extra, dict):
        raise EvaluationError(f"{where} \"extra\" must be an object, got {_short(extra)}")
    curves = data.get("curves")
    if curves is not None:
        if not isinstance(curves, dict):
            raise EvaluationError(f"{where} \"curves\" must be an object {{name: [[step, loss], ...]}}, got "
                                  f"{_short(curves)}")
        clean = {}
        for name, points in curves.items():
            if not isinstance(points, list) or not points:
                raise EvaluationError(f"{where} curves[{name!r}] must be a non-empty list of [step, loss] pairs, "
                                      f"got {_short(points)}")
            pairs = []
            for i, point in enumerate(points):
                ok = isinstance(point, list) and len(point) == 2 and _is_number(point[0]) and _is_number(point[1])
                if not ok or not float(point[0]).is_integer() or point[0] < 0:
                    raise EvaluationError(f"{where} curves[{name!r}][{i}] must be [step, loss] with an integer "
                                          f"step >= 0 and a finite loss, got {_short(point)}")
                pairs.append((int(point[0]), float(point[1])))
            clean[name] = pairs
        curves = clean
    return {"losses": dict(losses), "cost": dict(cost), "curves": curves, "extra": dict(extra)}


def _short(value, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def read_metrics(path) -> Evaluation:
    """The Evaluation a metrics file describes (see the module docstring for the schema)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise EvaluationError(f"the command must write its metrics to {path} (also in $BOMIX_METRICS and the "
                              "{metrics} placeholder), but that file does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise EvaluationError(f"the metrics file {path} must be readable UTF-8 text: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise EvaluationError(f"the metrics file {path} must be valid JSON: {e.msg} at line {e.lineno} column "
                              f"{e.colno}") from None
    return Evaluation(**parse_metrics(data, str(path)))


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the command's process group, SIGKILL it after KILL_GRACE_S (or a second Ctrl-C)."""
    _kill_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=KILL_GRACE_S)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
    finally:
        _kill_group(proc.pid, signal.SIGKILL)
        proc.wait()


class CommandEvaluator(Evaluator):
    """Runs `command` once per trial and reads the losses it writes (the protocol above).

    command: the program and its arguments, a list of strings or one string split like a shell
        would (no shell runs it: no pipes, globs or $VARS); placeholders {mixture} {metrics}
        {seed} {trial} {trial_dir} {python} are substituted in each argument, and
        {mixture:FORMAT} by the trial's mixture written in that trainer's form.
    mapping: the data mapping {mixture:FORMAT} needs (a TOML file path or a table; see
        bomix/integrations/mapping.py), checked here: its paths must exist and its domains match
        `domains` when both are given.
    domains: the training domains the command expects, in order (the study checks them), or None
        for any.
    timeout_s: wall-clock limit per trial in seconds, or None for none; past it the trial FAILS.
    env: extra environment variables {name: value} on top of this process's environment.
    cwd: the working directory of the command (default: this process's).
    metrics_name: the metrics file's name inside the trial directory.
    fidelities: {scale name: relative cost} the command can train at (named by {fidelity} and
        BOMIX_FIDELITY), or None for one scale. target: the scale recommendations are for (default:
        the costliest).
    """

    name = "command"

    def __init__(self, *, command, domains=None, timeout_s: float | None = None, env: Mapping | None = None,
                 cwd: str | os.PathLike | None = None, metrics_name: str = "metrics.json", mapping=None,
                 fidelities: Mapping | None = None, target: str | None = None):
        self._argv = _split_command(command)
        self.fidelities, self.target_fidelity = check_fidelities(
            None if fidelities is None else dict(fidelities), target)
        if self.fidelities is None and any("{fidelity}" in arg for arg in self._argv):
            raise ConfigError(f"the {{fidelity}} placeholder needs fidelities = {{name: relative cost}} (the scales "
                              f"the command can train at), got fidelities None for command {self._argv!r}")
        if timeout_s is not None:
            _check_positive("timeout_s", timeout_s)
        if env is not None:
            if not isinstance(env, Mapping):
                raise ConfigError(f"env must be a table {{NAME: value}}, got {env!r}")
            for key, value in env.items():
                if not isinstance(key, str) or not key or "=" in key:
                    raise ConfigError(f"env names must be non-empty strings without '=', got {key!r}")
                if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                    raise ConfigError(f"env values must be strings or numbers, got {key}={value!r}")
        if cwd is not None and not isinstance(cwd, (str, os.PathLike)):
            raise ConfigError(f"cwd must be None or a directory path, got {cwd!r}")
        bad_name = (not isinstance(metrics_name, str) or not metrics_name or Path(metrics_name).is_absolute()
                    or ".." in Path(metrics_name).parts or metrics_name in RESERVED_NAMES)
        if bad_name:
            raise ConfigError(f"metrics_name must be a relative file name inside the trial directory, other than "
                              f"{list(RESERVED_NAMES)}, got {metrics_name!r}")
        self.command = command
        self.domains = None if domains is None else _check_domains(domains)
        self.timeout_s = timeout_s
        self.env = env
        self.cwd = cwd
        self.metrics_name = metrics_name
        self.mapping = mapping
        self._formats = placeholder_formats(self._argv)
        self._mapping = prepare(mapping, self._formats, self.domains)  # a bad mapping launches nothing

    @property
    def argv(self) -> list[str]:
        """The command as a list of arguments, placeholders not yet substituted."""
        return list(self._argv)

    def get_params(self) -> dict:
        params = super().get_params()
        if self.fidelities is not None:
            params.update({"fidelities": dict(self.fidelities), "target": self.target_fidelity})
        return params

    def evaluate(self, weights: Mapping[str, float], context: TrialContext | None = None) -> Evaluation:
        context = context or TrialContext()
        try:
            check_fidelity(context.fidelity, self.fidelities)
        except ConfigError as e:
            raise EvaluationError(str(e)) from None
        weights = {str(d): float(w) for d, w in weights.items()}
        if self.domains is not None and set(weights) != set(self.domains):
            raise EvaluationError(f"this command evaluator takes mixtures over {list(self.domains)}, got "
                                  f"{list(weights)}")
        if context.directory is None:
            directory = Path(tempfile.mkdtemp(prefix=f"bomix-trial{context.number}-"))
            evaluation = self._run(weights, context, directory)  # a failure keeps the logs for its message
            shutil.rmtree(directory, ignore_errors=True)
            return evaluation
        directory = Path(context.directory).absolute()
        directory.mkdir(parents=True, exist_ok=True)
        return self._run(weights, context, directory)

    def _run(self, weights: dict[str, float], context: TrialContext, directory: Path) -> Evaluation:
        mixture, metrics = directory / "mixture.json", directory / self.metrics_name
        metrics.parent.mkdir(parents=True, exist_ok=True)
        metrics.unlink(missing_ok=True)  # a stale file from an earlier attempt must not pass for this one's
        fidelity = None if self.fidelities is None else (context.fidelity or self.target_fidelity)
        scale = {} if fidelity is None else {"fidelity": fidelity}
        _write_json(mixture, {"weights": weights, "seed": context.seed, "trial": context.number, **scale})
        values = {"mixture": str(mixture), "metrics": str(metrics), "seed": str(context.seed),
                  "trial": str(context.number), "trial_dir": str(directory), "python": sys.executable, **scale}
        files = write_trial_files(weights, self._formats, self._mapping, directory)
        values.update({f"mixture:{fmt}": path for fmt, path in files.items()})
        argv = []
        for arg in self._argv:
            for key, value in values.items():
                arg = arg.replace("{" + key + "}", value)
            argv.append(arg)
        added = {k: str(v) for k, v in (self.env or {}).items()}
        added.update({"BOMIX_MIXTURE": str(mixture), "BOMIX_METRICS": str(metrics), "BOMIX_SEED": str(context.seed),
                      "BOMIX_TRIAL": str(context.number), "BOMIX_TRIAL_DIR": str(directory)})
        if fidelity is not None:
            added["BOMIX_FIDELITY"] = fidelity
        added.update({var: repr(weights[d]) for d, var in _weight_variables(weights).items()})
        added.update({env_name(fmt): path for fmt, path in files.items()})
        env = {**os.environ, **added}
        env.setdefault("PYTHONUNBUFFERED", "1")  # Python trainers' prints reach stdout.log as they happen
        cwd = None if self.cwd is None else Path(self.cwd).expanduser()
        if cwd is not None and not cwd.is_dir():
            raise EvaluationError(f"the command's cwd must be an existing directory, got {str(cwd)!r}")
        _write_json(directory / "command.json", {"argv": argv, "cwd": str((cwd or Path.cwd()).absolute()),
                                                 "env": added, "timeout_s": self.timeout_s})
        who = f"trial {context.number}'s command"
        start = time.monotonic()
        with open(directory / "stdout.log", "wb") as out, open(directory / "stderr.log", "wb") as err:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd,
                                        start_new_session=True)
            except OSError as e:
                raise EvaluationError(f"{who} must be a program that can be started, but {argv[0]!r} failed: "
                                      f"{e.strerror or e} (cwd {str((cwd or Path.cwd()).absolute())!r})") from None
            try:
                returncode = proc.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                _stop(proc)
                raise EvaluationError(f"{who} must finish within timeout_s={self.timeout_s:g} s; it was stopped "
                                      f"after {time.monotonic() - start:.1f} s (SIGTERM, then SIGKILL to its process "
                                      f"group){_tail(directory)}") from None
            except BaseException:  # Ctrl-C: no orphaned training left behind, then the study abandons the trial
                _stop(proc)
                raise
            finally:
                _kill_group(proc.pid, signal.SIGKILL)  # whatever the command left running in its group
        seconds = time.monotonic() - start
        if returncode != 0:
            if returncode < 0:
                name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else -returncode
                why = f"it was killed by signal {name}"
                if returncode == -signal.SIGKILL:
                    why += " (often the out-of-memory killer)"
            else:
                why = f"it exited with status {returncode}"
            raise EvaluationError(f"{who} must exit with status 0, but {why}: {shlex.join(argv)}{_tail(directory)}")
        try:
            evaluation = read_metrics(metrics)
        except EvaluationError as e:
            raise EvaluationError(f"{e}{_tail(directory)}") from None
        cost = {"seconds": seconds, **({} if fidelity is None else {"compute": self.fidelities[fidelity]}),
                **evaluation.cost}  # what the command reports wins
        return Evaluation(losses=evaluation.losses, cost=cost, curves=evaluation.curves, extra=evaluation.extra)
