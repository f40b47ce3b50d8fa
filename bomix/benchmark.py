"""Fixed-budget benchmarks: every method x seeds x budget on one evaluator and objective.

    [benchmark]
    methods = ["bo", "sobol", "uniform"]       # or a table: label -> {name = "bo", params = {...}}
    seeds = 10                                 # seeds 0..9, or a list of seeds
    budget = 64                                # finished trials per study
    n_workers = 1                              # studies run at once (processes)
    # fixed = ["uniform"]                      # labels evaluated once (default: fixed-mixture optimizers)
    # references = true                        # add the trivial reference rules (see below)
    # replicate_top = 3                        # then re-evaluate each study's 3 best mixtures ...
    # replicate_repeats = 2                    # ... twice more each, with fresh seeds

    [study]
    objective = "mean"                         # the only [study] key a benchmark takes

    [space] and [evaluator]: as in a campaign config (bomix.config). An empty space.domains takes
    the evaluator's domains.

OUT/benchmark.json                  the resolved benchmark, written once; a rerun must match it
OUT/studies/<label>/seed-<s>/       one ordinary, resumable study per (method, seed)
OUT/runs.jsonl                      one line per study run: summary values, seconds, error
OUT/summary.csv                     the latest summary per study: label, method, seed, n_trials,
                                    best_value, best_trial, recommended_value, recommended_source,
                                    recommended_trial, seconds (all runs of the study), error

Study seed s gives every method the same trial seeds (paired comparisons) and is the optimizer's
seed. Fixed mixtures (uniform, llama) cost one trial: their natural cost, shown as reference lines.

Trivial reference rules join every benchmark unless references = false, so an easy benchmark shows
as easy: "uniform" (on a pool: the run nearest uniform), "prior" (the space's prior, when it has
one) and "focus" (equal weight on the training domains the objective reads, when it names any:
for a one-domain target, on a pool, the run with the largest weight on that domain). Each is a
fixed mixture (one trial), added under its own name unless a method of that name is there.

Fairness is the harness's job, not each config's: every method gets the same space (floors, caps
and the space's `prior`), the same seeds, and the budget (each study runs study.optimize with
n_trials = budget, which hands it to every method as History.budget; a method's own `budget` or
`prior` parameter is refused when it differs). On an evaluator with a pool of logged runs, every
study searches that pool (bomix.optimizers.pool) and recommends a run it evaluated. The summary
keeps the noise-free value (`*_true`) of the best observed and the recommended mixture where the
evaluator knows it (landscapes, replay pools and surrogates).
This module imports no numpy at load, so worker processes limit BLAS threads before it loads.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from bomix.config import ComponentConfig, SpaceConfig, check_section, read_toml
from bomix.errors import ConfigError, SpecMismatchError

FORMAT = "bomix.benchmark/1"
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SUMMARY_COLUMNS = ["label", "method", "seed", "n_trials", "best_value", "best_true", "best_trial",
                   "recommended_value", "recommended_true", "recommended_source", "recommended_trial", "seconds",
                   "error"]


@dataclass(frozen=True)
class BenchmarkSection:
    methods: dict | list = field(default_factory=dict)  # label -> {name, params}; or optimizer names
    seeds: int | list = 10                              # n (seeds 0..n-1) or a list of seeds
    budget: int = 64                                    # finished trials per study (fixed methods: 1)
    n_workers: int = 1                                  # studies run at once, one process each
    fixed: list | None = None                           # labels run for 1 trial; None: fixed mixtures
    replicate_top: int = 0                              # after the budget, re-evaluate the m best ...
    replicate_repeats: int = 2                          # ... this many more times each
    references: bool = True                             # add the trivial reference rules (module docstring)

    def __post_init__(self):
        object.__setattr__(self, "methods", _methods(self.methods))
        object.__setattr__(self, "seeds", _seeds(self.seeds))
        for key, low in (("budget", 1), ("n_workers", 1), ("replicate_top", 0), ("replicate_repeats", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"benchmark.{key} must be an integer >= {low}, got {value!r}")
        if self.fixed is not None:
            bad = [f for f in self.fixed if f not in self.methods]
            if bad:
                raise ConfigError(f"benchmark.fixed must name labels of benchmark.methods {list(self.methods)}, "
                                  f"got unknown {bad}")


@dataclass(frozen=True)
class ObjectiveSection:
    objective: str | dict = "mean"  # what to minimise, from per-domain losses (see bomix.objective)


@dataclass(frozen=True)
class BenchmarkConfig:
    benchmark: BenchmarkSection                          # required: a benchmark names its methods
    study: ObjectiveSection = field(default_factory=ObjectiveSection)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    evaluator: ComponentConfig = field(default_factory=lambda: ComponentConfig("landscape"))


SECTIONS = {"benchmark": BenchmarkSection, "study": ObjectiveSection, "space": SpaceConfig,
            "evaluator": ComponentConfig}
DEFAULTS = {"evaluator": {"name": "landscape"}}


def _methods(raw) -> dict[str, ComponentConfig]:
    from bomix.optimizers import OPTIMIZERS

    if isinstance(raw, list):
        if not all(isinstance(name, str) for name in raw):
            raise ConfigError(f"benchmark.methods as a list must hold optimizer names, got {raw!r}")
        dupes = sorted({n for n in raw if raw.count(n) > 1})
        if dupes:
            raise ConfigError(f"benchmark.methods must not repeat a name (use a table to label variants), "
                              f"got {dupes} twice")
        raw = {name: {"name": name} for name in raw}
    if not raw:
        raise ConfigError("benchmark.methods must name at least one method, got none")
    out = {}
    for label, spec in raw.items():
        where = f"benchmark.methods.{label}"
        if not LABEL.match(label):
            raise ConfigError(f"{where}: a label must be letters, digits, '_', '.' or '-' (it names a folder), "
                              f"got {label!r}")
        if isinstance(spec, ComponentConfig):
            spec = dataclasses.asdict(spec)
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, dict):
            raise ConfigError(f"{where} must be an optimizer name or a table {{name, params}}, got {spec!r}")
        bad = sorted(set(spec) - {"name", "params"})
        if bad:
            raise ConfigError(f"{where} keys must be among ['name', 'params'], got unknown {bad}")
        name, params = spec.get("name", label), spec.get("params", {})
        if name not in OPTIMIZERS:
            raise ConfigError(f"{where}.name must be one of {sorted(OPTIMIZERS)}, got {name!r}")
        if not isinstance(params, dict):
            raise ConfigError(f"{where}.params must be a table, got {params!r}")
        if "seed" in params:
            raise ConfigError(f"{where}.params.seed must be left out: each study's optimizer gets its benchmark "
                              f"seed, got seed = {params['seed']!r}")
        out[label] = ComponentConfig(name, dict(params))
    return out


def _seeds(raw) -> list[int]:
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw < 1:
            raise ConfigError(f"benchmark.seeds must be >= 1 (or a list of seeds), got {raw}")
        return list(range(raw))
    if (not isinstance(raw, list) or not raw
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in raw)):
        raise ConfigError(f"benchmark.seeds must be a count or a non-empty list of integers >= 0, got {raw!r}")
    if len(set(raw)) != len(raw):
        raise ConfigError(f"benchmark.seeds must not repeat a seed, got {raw}")
    return list(raw)


def config_from_dict(raw: dict) -> BenchmarkConfig:
    """A BenchmarkConfig from nested dicts; unknown sections/keys and wrong types raise ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a benchmark config must be a table of sections, got {raw!r}")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"benchmark config sections must be among {sorted(SECTIONS)}, got unknown {unknown}")
    if "benchmark" not in raw:
        raise ConfigError("a benchmark config needs a [benchmark] section naming its methods, got none")
    sections = {}
    for name, cls in SECTIONS.items():
        values = check_section(name, cls, raw.get(name, {}))
        sections[name] = cls(**{**DEFAULTS.get(name, {}), **values})
    return BenchmarkConfig(**sections)


def load_benchmark_config(path=None, overrides=()) -> BenchmarkConfig:
    """Read a benchmark TOML (or start from defaults when `path` is None), then apply `--set` overrides."""
    return config_from_dict(read_toml(path, overrides, example="benchmark.seeds=3"))


def resolve(config: BenchmarkConfig) -> dict:
    """The benchmark.json content: methods, seeds, budget, fixed, objective, space, evaluator, version.
    Builds every component once, so bad names and parameters fail before anything is written."""
    from bomix import __version__
    from bomix.evaluators import get_evaluator
    from bomix.objective import Objective
    from bomix.optimizers import get_optimizer
    from bomix.study_spec import jsonable

    b = config.benchmark
    evaluator = get_evaluator(config.evaluator.name, **config.evaluator.params)
    space_config = config.space
    if not space_config.domains and space_config.tokens is None:
        if getattr(evaluator, "domains", None) is None:
            raise ConfigError(f"space.domains must be given: evaluator {config.evaluator.name!r} does not name its "
                              "domains")
        space_config = dataclasses.replace(space_config, domains=list(evaluator.domains))
    space = space_config.build()
    objective = Objective.parse(config.study.objective)
    methods = {**b.methods, **(_references(b.methods, space, objective) if b.references else {})}
    fixed = []
    for label, m in methods.items():
        _check_fair(label, m, b.budget)
        optimizer = get_optimizer(m.name, seed=b.seeds[0], **m.params)
        if (label in b.fixed or label not in b.methods) if b.fixed is not None else not optimizer.proposes_distinct:
            fixed.append(label)
    return jsonable({
        "format": FORMAT,
        "methods": {label: {"name": m.name, "params": m.params} for label, m in methods.items()},
        "seeds": b.seeds, "budget": b.budget, "fixed": fixed,
        "replicate_top": b.replicate_top, "replicate_repeats": b.replicate_repeats,
        "objective": objective.to_dict(),
        "space": space.to_dict(),
        "evaluator": {"name": config.evaluator.name, "params": config.evaluator.params},
        "bomix": __version__,
    })


def _references(methods: dict, space, objective) -> dict:
    """The trivial reference rules this benchmark lacks: label -> ComponentConfig (module docstring)."""
    names = {m.name for m in methods.values()}
    out = {"uniform": ComponentConfig("uniform")}
    if space.prior is not None:
        out["prior"] = ComponentConfig("prior")
    if any(d in space.domains for d in objective.named()):
        out["focus"] = ComponentConfig("focus")
    return {label: m for label, m in out.items() if m.name not in names and label not in methods}


def _check_fair(label: str, method: ComponentConfig, budget: int) -> None:
    """ConfigError when a method's parameters would give it another budget or prior than the rest."""
    given = method.params.get("budget")
    if given is not None and given != budget:
        raise ConfigError(f"benchmark.methods.{label}.params.budget must be left out or equal benchmark.budget "
                          f"({budget}): every method plans for the same budget, got {given!r}")
    if method.params.get("prior") is not None:
        raise ConfigError(f"benchmark.methods.{label}.params.prior must be left out: give the prior once, as "
                          f"space.prior, so every method and reference rule uses the same one; got "
                          f"{method.params['prior']!r}")


def _write_or_check(out: Path, resolved: dict) -> None:
    from bomix.study_spec import spec_diff

    path = out / "benchmark.json"
    if path.exists():
        stored = json.loads(path.read_text())
        diffs = [d for key in sorted((set(stored) | set(resolved)) - {"bomix"})
                 for d in spec_diff(stored.get(key), resolved.get(key), key)]
        if diffs:
            raise SpecMismatchError(f"resuming the benchmark in {out} needs the config it was started with; "
                                    "differences: " + "; ".join(diffs))
        return
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(resolved, indent=2) + "\n")
    tmp.replace(path)


def study_dir(out, label: str, seed: int) -> Path:
    return Path(out) / "studies" / label / f"seed-{seed}"


# -- one study (runs in a worker process, or inline when n_workers is 1) --------------------------
def _init_worker() -> None:
    """Worker initializer: one BLAS/OpenMP/torch thread per process, so n_workers share the cores;
    and the worker dies with the benchmark process, so a killed benchmark leaves no study running
    (and locked) behind it."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    from bomix.runners.base import die_with_parent

    die_with_parent()
    from threadpoolctl import threadpool_limits

    global _LIMITS
    _LIMITS = threadpool_limits(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def run_one(task: dict) -> dict:
    """Create or resume one (method, seed) study, run it to its budget, and summarise it.
    Never raises an Exception: an error comes back in the row's `error`."""
    start = time.perf_counter()
    row = {"label": task["label"], "method": task["name"], "seed": task["seed"], "error": None}
    try:
        import bomix
        from bomix.evaluators import get_evaluator

        space = bomix.MixtureSpace.from_dict(task["space"])
        optimizer = bomix.get_optimizer(task["name"], **{"seed": task["seed"], **task["params"]})
        evaluator = get_evaluator(task["evaluator"]["name"], **task["evaluator"]["params"])
        study = bomix.create_study(task["directory"], space=space, optimizer=optimizer, objective=task["objective"],
                                   seed=task["seed"], load_if_exists=True, pool=evaluator.pool)
        try:
            before = study.n_finished
            study.optimize(evaluator, n_trials=task["n_trials"], show_progress=False)
            if task["replicate_top"]:
                study.replicate(evaluator, top=task["replicate_top"], repeats=task["replicate_repeats"],
                                show_progress=False)
            row.update(_summarise(study, evaluator), new_trials=study.n_finished - before)
        finally:
            study.close()
        row["journal_bytes"] = os.path.getsize(Path(task["directory"]) / "journal.jsonl")
    except Exception as e:
        row["error"] = f"{type(e).__name__}: {e}"
        row["traceback"] = "".join(traceback.format_exception(e))[-4000:]
    row["seconds"] = time.perf_counter() - start
    return row


def _summarise(study, evaluator=None) -> dict:
    """Best observed among the budget's trials (replicates excluded) and the optimizer's
    recommendation, each with its noise-free value when the evaluator knows it (`true_value`).
    Computed once by the report's study summary (<study>/summary.json), so `bomix report` on a
    finished benchmark refits no model."""
    from bomix.report.cache import study_summary
    from bomix.trial import TrialState

    summary = study_summary(study, evaluator)
    rec, best, truth = summary.get("recommendation"), summary.get("best_observed"), summary.get("truth") or {}
    budget = [t for t in study.trials if t.state in (TrialState.COMPLETED, TrialState.FAILED)
              and "replicate_of" not in t.extra]
    true = lambda part: None if not truth.get(part) else truth[part].get("value")  # noqa: E731
    return {"n_trials": len(budget), "best_value": None if best is None else best["value"],
            "best_true": true("best_observed"), "best_trial": None if best is None else best["trial"],
            "recommended_value": None if rec is None else rec["value"], "recommended_true": true("recommended"),
            "recommended_source": None if rec is None else rec["source"],
            "recommended_trial": None if rec is None else rec["trial"]}


# -- the benchmark --------------------------------------------------------------------------------
@dataclass
class BenchmarkResult:
    """What run_benchmark did: the output folder, one summary row per study, and the failures."""

    out: Path
    summary: list[dict]
    failed: list[dict]


def _tasks(out: Path, resolved: dict) -> list[dict]:
    """One task per (seed, method), seed by seed: a benchmark stopped early (for time, or killed)
    leaves every method on the same seeds, so its partial table is still paired by seed."""
    return [{"label": label, "name": m["name"], "params": m["params"], "seed": seed,
             "directory": str(study_dir(out, label, seed)),
             "n_trials": 1 if label in resolved["fixed"] else resolved["budget"],
             "replicate_top": 0 if label in resolved["fixed"] else resolved["replicate_top"],
             "replicate_repeats": resolved["replicate_repeats"], "space": resolved["space"],
             "objective": resolved["objective"], "evaluator": resolved["evaluator"]}
            for seed in resolved["seeds"] for label, m in resolved["methods"].items()]


def _read_runs(out: Path) -> list[dict]:
    path = out / "runs.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # a line torn by a crash: its study simply runs again
            continue
    return rows


def finished_studies(out) -> set[tuple[str, int]] | None:
    """(label, seed) of the studies a benchmark finished without error and whose journal has not
    changed since (the rule a resume skips a study by), from its runs.jsonl; None without one."""
    out = Path(out)
    if not (out / "runs.jsonl").is_file():
        return None
    return _finished(out, _latest_runs(out))


def _latest_runs(out: Path) -> dict[tuple[str, int], dict]:
    """(label, seed) -> the last runs.jsonl row of that study."""
    return {(r["label"], r["seed"]): r for r in _read_runs(out)}


def _finished(out: Path, latest: dict) -> set[tuple[str, int]]:
    return {key for key, row in latest.items() if _is_done({"directory": str(study_dir(out, *key))}, row)}


def status_lines(out) -> list[str]:
    """What `bomix status BENCHMARK_DIR` prints: studies finished, failed and still to run, per
    method; the seeds every method has finished (a paired table can use them now); and, from the
    finished studies' mean seconds per method, the study time left (one worker)."""
    out = Path(out)
    spec = json.loads((out / "benchmark.json").read_text())
    labels, seeds = list(spec["methods"]), list(spec["seeds"])
    latest = _latest_runs(out)  # runs.jsonl read once
    done = _finished(out, latest)
    failed = {k for k, r in latest.items() if r.get("error")}
    lines = [f"benchmark {out}: {len(labels)} methods x {len(seeds)} seeds, budget {spec['budget']}; "
             f"{len(done)} of {len(labels) * len(seeds)} studies finished, {len(failed)} failed"]
    left_seconds = 0.0
    for label in labels:
        mine = [s for s in seeds if (label, s) in done]
        secs = [latest[(label, s)].get("seconds") or 0.0 for s in mine]
        mean = sum(secs) / len(secs) if secs else None
        todo = len(seeds) - len(mine)
        if mean is not None:
            left_seconds += mean * todo
        bad = sorted(s for s in seeds if (label, s) in failed)
        lines.append(f"  {label:<16} {len(mine):>4} / {len(seeds)} seeds"
                     + ("" if mean is None else f", {mean:.1f} s per study")
                     + (f", failed: seeds {bad}" if bad else ""))
    paired = [s for s in seeds if all((label, s) in done for label in labels)]
    lines.append(f"seeds finished by every method (a paired table can use them): {len(paired)}"
                 + (f" ({_ranges(paired)})" if paired else ""))
    if len(done) < len(labels) * len(seeds):
        unknown = [label for label in labels if not any((label, s) in done for s in seeds)]
        lines.append(f"study time left, one worker: about {left_seconds / 60:.0f} min"
                     + (f" plus {', '.join(unknown)} (none finished yet)" if unknown else "")
                     + "; rerun the benchmark command to resume")
    return lines


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(f"{start}" if start == v else f"{start}-{v}")
            start = None
    return ", ".join(parts)


def _is_done(task: dict, last: dict | None) -> bool:
    """A study whose last run finished without error and whose journal has not changed since."""
    if last is None or last.get("error") or "journal_bytes" not in last:
        return False
    journal = Path(task["directory"]) / "journal.jsonl"
    return journal.exists() and journal.stat().st_size == last["journal_bytes"]


def _line(row: dict) -> str:
    head = f"  {row['label']:<16} seed {row['seed']:<3}"
    if row["error"]:
        return f"{head} FAILED after {row['seconds']:.1f} s: {row['error']}"
    best = "-" if row["best_value"] is None else f"{row['best_value']:.4f} (trial {row['best_trial']})"
    return f"{head} best {best}, {row['n_trials']} trials, {row['seconds']:.1f} s"


def run_benchmark(config, out, *, n_workers: int | None = None, show_progress: bool | None = None) -> BenchmarkResult:
    """Run (or resume) a benchmark into `out`; see the module docstring for the layout.

    config: a BenchmarkConfig, a dict of sections, or the path of a TOML file.
    n_workers: studies at once (default benchmark.n_workers); 1 runs them in this process.
    show_progress: print one line per finished study (default True).
    Returns a BenchmarkResult; a study that raises is reported in `failed` and the others go on.
    KeyboardInterrupt stops the benchmark: every finished trial is kept, and a rerun resumes.
    """
    if isinstance(config, (str, Path)):
        config = load_benchmark_config(config)
    elif isinstance(config, dict):
        config = config_from_dict(config)
    out = Path(out)
    n_workers = config.benchmark.n_workers if n_workers is None else n_workers
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ConfigError(f"n_workers must be an integer >= 1, got {n_workers!r}")
    say = (lambda s: print(s, flush=True)) if show_progress is not False else (lambda s: None)
    resolved = resolve(config)
    _write_or_check(out, resolved)
    tasks = _tasks(out, resolved)
    runs = _read_runs(out)
    latest = {(r["label"], r["seed"]): r for r in runs}
    todo = [t for t in tasks if not _is_done(t, latest.get((t["label"], t["seed"])))]
    fixed = f" ({', '.join(resolved['fixed'])}: 1 trial)" if resolved["fixed"] else ""
    say(f"benchmark: {len(resolved['methods'])} methods x {len(resolved['seeds'])} seeds, budget "
        f"{resolved['budget']}{fixed}; {len(tasks) - len(todo)} studies done, {len(todo)} to run "
        f"on {min(n_workers, max(len(todo), 1))} workers -> {out}")
    with (out / "runs.jsonl").open("a") as log:
        def record(row):
            row = {**row, "time": time.time()}
            log.write(json.dumps(row) + "\n")
            log.flush()
            runs.append(row)
            say(_line(row))
            if row.get("traceback"):
                print(row["traceback"], file=sys.stderr, flush=True)

        try:
            if n_workers == 1 or len(todo) <= 1:
                for task in todo:
                    record(run_one(task))
            else:
                _run_pool(todo, n_workers, record)
        except KeyboardInterrupt:
            say(f"interrupted: finished trials are saved under {out / 'studies'}; run the same benchmark again to "
                "resume")
            raise
    result = _summary(out, tasks, runs)
    say(_table(result.summary) + f"\nwrote {out / 'summary.csv'}"
        + (f"; {len(result.failed)} studies FAILED" if result.failed else ""))
    return result


def _run_pool(todo: list[dict], n_workers: int, record) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: thread limits precede numpy and torch
    with ProcessPoolExecutor(min(n_workers, len(todo)), mp_context=ctx, initializer=_init_worker) as pool:
        futures = {pool.submit(run_one, task): task for task in todo}
        try:
            for future in as_completed(futures):
                task = futures[future]
                try:
                    row = future.result()
                except BrokenProcessPool as e:  # a worker died (killed, out of memory)
                    row = {"label": task["label"], "method": task["name"], "seed": task["seed"],
                           "error": f"worker process died: {e}", "seconds": 0.0}
                record(row)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _summary(out: Path, tasks: list[dict], runs: list[dict]) -> BenchmarkResult:
    rows, failed = [], []
    for task in tasks:
        key = (task["label"], task["seed"])
        mine = [r for r in runs if (r["label"], r["seed"]) == key]
        if not mine:
            continue
        last = mine[-1]
        row = {c: last.get(c) for c in SUMMARY_COLUMNS}
        row["seconds"] = round(sum(r.get("seconds") or 0.0 for r in mine), 3)
        rows.append(row)
        if last.get("error"):
            failed.append(row)
    import csv

    tmp = out / "summary.csv.tmp"
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    tmp.replace(out / "summary.csv")
    return BenchmarkResult(out, rows, failed)


def _table(rows: list[dict]) -> str:
    """Per label: seeds, mean best observed and mean recommended value (noise-free where the
    evaluator knows it), total seconds."""
    lines = [f"{'method':<16} {'seeds':>5} {'trials':>6} {'best observed':>14} {'(true)':>8} {'recommended':>12} "
             f"{'(true)':>8} {'seconds':>8}"]
    for label in dict.fromkeys(r["label"] for r in rows):
        ok = [r for r in rows if r["label"] == label and not r["error"]]
        mean = lambda key: (lambda v: f"{sum(v) / len(v):.4f}" if v else "-")(  # noqa: E731
            [r[key] for r in ok if r.get(key) is not None])
        trials = max((r["n_trials"] for r in ok), default=0)
        lines.append(f"{label:<16} {len(ok):>5} {trials:>6} {mean('best_value'):>14} {mean('best_true'):>8} "
                     f"{mean('recommended_value'):>12} {mean('recommended_true'):>8} "
                     f"{sum(r['seconds'] for r in rows if r['label'] == label):>8.1f}")
    return "\n".join(lines)
