"""Run a trainer's command, read its validation losses from its log, write bomix's metrics file.

    python -m bomix.integrations.run_trainer --log-format megatron --metrics "$BOMIX_METRICS" \\
        [--rename validation-0=books ...] -- torchrun ... pretrain_gpt.py ... --data-args-path MIX

The templates in experiments/integrations/ end with this line. The trainer's output (stdout and
stderr together) is copied to this process's stdout line by line, so it lands in the trial's
stdout.log, and each line (ANSI colours removed) is matched against the trainer's own log format:

    format      line (as the trainer prints it)                                   loss name
    megatron    validation loss at iteration N | lm loss value: X | ...          validation
                validation-K loss at ... (--multiple-validation-sets)            validation-K
    gpt-neox    validation results at iteration N | lm_loss value: X | ...      validation
    litgpt      iter N: val loss X, ...   and   Final evaluation | val loss: X   val
    torchtitan  validate step: N  loss: X                                        validation
    olmo-core   (the LM evaluator's metrics block)   LABEL/CE loss=X             LABEL
    levanter    TAG loss: X   (one per tagged validation set; "eval loss" is     TAG (eval when
                the micro average of all)                                          untagged)

The last value of each name is its loss (the final evaluation); values with a step make the
curves. --rename OLD=NEW names a loss the way the study expects (e.g. a Megatron validation set
by its domain). The metrics file is {"losses": {...}, "curves": {...}, "extra": {"log_format"}},
written atomically once the trainer exits with status 0. A trainer that fails passes its exit
status on (bomix records a FAILED trial with the log tail); one that printed no validation loss
exits 1 with a message naming the line it waited for, since a run without one is no evidence.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STEP_MARK = re.compile(r"\[step=(?P<step>\d+)")  # OLMo-core's progress marker, before its eval metrics

# (pattern, name when the pattern has no name group). Patterns search anywhere in a line.
LOG_FORMATS = {
    "megatron": [(re.compile(rf"\b(?P<name>validation(?:-\d+)?) loss at iteration (?P<step>\d+)[^|]*\|"
                             rf".*?\b(?:lm )?loss value: (?P<loss>{NUM})"), None)],
    "gpt-neox": [(re.compile(rf"\bvalidation results at iteration (?P<step>\d+)[^|]*\|.*?\blm_loss value: "
                             rf"(?P<loss>{NUM})"), "validation")],
    "litgpt": [(re.compile(rf"\biter (?P<step>\d+): val loss (?P<loss>{NUM})"), "val"),
               (re.compile(rf"\bFinal evaluation \| val loss: (?P<loss>{NUM})"), "val")],
    "torchtitan": [(re.compile(rf"\bvalidate step:\s*(?P<step>\d+)\s+loss:\s*(?P<loss>{NUM})"), "validation")],
    "olmo-core": [(re.compile(rf"^\s+(?P<name>\S(?:.*\S)?)/CE loss=(?P<loss>{NUM})\s*$"), None)],
    "levanter": [(re.compile(rf"(?:^|\s)(?P<name>[^\s:]+) loss: (?P<loss>{NUM})\s*$"), None)],
}
EXPECTED = {  # the line each format waits for, in error messages
    "megatron": "' validation loss at iteration N | lm loss value: X |'",
    "gpt-neox": "' validation results at iteration N | lm_loss value: X |'",
    "litgpt": "'iter N: val loss X' or 'Final evaluation | val loss: X'",
    "torchtitan": "'validate step: N  loss: X' (enable the validator: validator.enable)",
    "olmo-core": "'    LABEL/CE loss=X' after 'Finished ... evals' (an LMEvaluatorCallback)",
    "levanter": "'TAG loss: X' (set data validation sets; levanter logs one per tag)",
}


class LossLog:
    """Validation losses collected from a trainer's log lines, in its format."""

    def __init__(self, log_format: str):
        if log_format not in LOG_FORMATS:
            raise ValueError(f"log_format must be one of {sorted(LOG_FORMATS)}, got {log_format!r}")
        self.log_format = log_format
        self.losses: dict[str, float] = {}
        self.curves: dict[str, list[list[float]]] = {}
        self._step: int | None = None  # the last progress marker seen (OLMo-core)

    def feed(self, line: str) -> None:
        line = ANSI.sub("", line).rstrip("\r\n")
        mark = STEP_MARK.search(line)
        if mark:
            self._step = int(mark.group("step"))
        for pattern, default in LOG_FORMATS[self.log_format]:
            m = pattern.search(line)
            if not m:
                continue
            groups = m.groupdict()
            name = groups.get("name") or default
            if self.log_format == "levanter" and name in ("macro", "micro"):
                continue  # "TAG macro loss" / "TAG micro loss": averages over a tag hierarchy
            loss = float(groups["loss"])
            step = groups.get("step")
            step = int(step) if step is not None else (self._step if self.log_format == "olmo-core" else None)
            self.losses[name] = loss
            if step is not None:
                curve = self.curves.setdefault(name, [])
                if curve and curve[-1][0] == step:
                    curve[-1][1] = loss
                else:
                    curve.append([step, loss])
            return

    def metrics(self, rename: dict[str, str] | None = None) -> dict:
        """The metrics object bomix reads (bomix.evaluators.command.parse_metrics)."""
        rename = rename or {}
        losses = dict(self.losses)
        if self.log_format == "levanter" and len(losses) > 1:
            losses.pop("eval", None)  # the micro average of the tagged sets, not a set of its own
        out = {"losses": {rename.get(k, k): v for k, v in losses.items()}, "extra": {"log_format": self.log_format}}
        curves = {rename.get(k, k): v for k, v in self.curves.items() if k in losses}
        if curves:
            out["curves"] = curves
        return out


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def run(argv: list[str], log_format: str, metrics: str | Path, rename: dict[str, str] | None = None) -> int:
    """Run `argv`, echo its output, parse it, write `metrics`; returns the exit status to use."""
    collected = LossLog(log_format)
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, errors="replace", bufsize=1)
    except OSError as e:
        print(f"run_trainer: the trainer command must be a program that can be started, but {argv[0]!r} failed: "
              f"{e.strerror or e}", file=sys.stderr)
        return 127
    with proc:
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            collected.feed(line)
    if proc.returncode != 0:
        code = proc.returncode if proc.returncode > 0 else 128 - proc.returncode
        print(f"run_trainer: the trainer exited with status {proc.returncode}: {' '.join(argv)}", file=sys.stderr)
        return code
    if not collected.losses:
        print(f"run_trainer: the trainer exited with status 0 but printed no validation loss; expected a line like "
              f"{EXPECTED[log_format]} ({log_format} log format)", file=sys.stderr)
        return 1
    _write_json(Path(metrics), collected.metrics(rename))
    return 0


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bomix.integrations.run_trainer", description=__doc__.split("\n")[0])
    parser.add_argument("--log-format", required=True, choices=sorted(LOG_FORMATS), help="the trainer's log format")
    parser.add_argument("--metrics", required=True, help="bomix's metrics file to write ($BOMIX_METRICS)")
    parser.add_argument("--rename", action="append", default=[], metavar="OLD=NEW", help="rename a loss")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the trainer's command and arguments")
    opts = parser.parse_args(args)
    command = opts.command[1:] if opts.command[:1] == ["--"] else opts.command
    if not command:
        parser.error("give the trainer's command after --")
    rename = {}
    for item in opts.rename:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            parser.error(f"--rename takes OLD=NEW, got {item!r}")
        rename[old] = new
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # bomix's SIGTERM stops us like Ctrl-C
    return run(command, opts.log_format, opts.metrics, rename)


if __name__ == "__main__":
    raise SystemExit(main())
