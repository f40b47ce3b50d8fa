"""Reading benchmark and study directories into tidy tables (one row per trial, per study).

A benchmark directory holds benchmark.json ({"methods", "seeds", "budget", "fixed", "objective",
"space", "evaluator", "bomix"}) and one ordinary study per (method label, seed) under
studies/<label>/seed-<s>/. A single study directory (study.json + journal.jsonl) counts as a
one-study benchmark: its label is the optimizer's name, its seed the study's.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from bomix.errors import ConfigError
from bomix.evaluators.base import DEFAULT_UNIT
from bomix.trial import TrialState

log = logging.getLogger("bomix")


@dataclass
class ReportData:
    """Everything a report is computed from.

    trials: one row per trial (see `collect`). recommendations: one row per study (label, seed,
    source, predicted value and sd, trial, observed (the recommended trial's value), w_<domain>,
    true_value (noise-free value of the recommended mixture, NaN when unknown), loss_<name>,
    loss_kind "true" or "observed").
    replicates: the studies' replicate tables with label and seed. studies: {(label, seed): Study}.
    sources: one dict per input directory (path, kind, config). fixed: labels run at natural cost.
    budget: trials per study (the benchmark's, else the largest count seen).
    unit: the unit of every objective value, as the inputs' evaluators declare it (Evaluator.unit).
    """

    trials: object
    recommendations: object
    replicates: object
    studies: dict = field(default_factory=dict)
    sources: list = field(default_factory=list)
    fixed: set = field(default_factory=set)
    budget: int = 0
    domains: tuple = ()
    evaluators: dict = field(default_factory=dict)  # (label, seed) -> evaluator with true_value, or absent
    source_of: dict = field(default_factory=dict)  # (label, seed) -> index of its input in `sources`
    unit: str = DEFAULT_UNIT


def _study_dirs(directory: Path) -> tuple[dict, list[tuple[str, int | None, Path]]]:
    """(config, [(label, seed, study dir)]) of a benchmark or single-study directory."""
    if (directory / "benchmark.json").is_file():
        try:
            config = json.loads((directory / "benchmark.json").read_text())
        except ValueError as e:
            raise ConfigError(f"{directory / 'benchmark.json'} must be valid JSON: {e}") from None
        root = directory / "studies"
        labels = list((config.get("methods") or {}).keys())
        if root.is_dir():
            labels += sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in labels)
        found, unfinished = [], []
        from bomix.benchmark import finished_studies

        finished = finished_studies(directory)  # None without runs.jsonl: every study as it is
        for label in labels:
            for d in sorted((root / label).glob("seed-*"), key=lambda p: _seed_of(p.name)):
                if not (d / "study.json").is_file():
                    continue
                if finished is not None and (label, _seed_of(d.name)) not in finished:
                    unfinished.append(f"{label} seed {_seed_of(d.name)}")
                    continue
                found.append((label, _seed_of(d.name), d))
        if unfinished:  # part-run studies would enter the paired tests with fewer trials than the budget
            log.warning("report: %s: left out %d unfinished or failed studies (%s); run the benchmark again "
                        "to finish them", directory, len(unfinished), ", ".join(unfinished))
        if not found:
            raise ConfigError(f"a benchmark directory must hold finished studies under studies/<label>/seed-<s>/, "
                              f"but {directory} has none" + (f" ({len(unfinished)} unfinished)" if unfinished else ""))
        return {"kind": "benchmark", **config, **({"unfinished": unfinished} if unfinished else {})}, found
    if (directory / "study.json").is_file():
        config = {"kind": "study"}
        if (directory / "config.json").is_file():  # written by `bomix run`: names the evaluator
            try:
                config.update(json.loads((directory / "config.json").read_text()))
            except ValueError:
                pass
        return config, [(None, None, directory)]
    what = "does not exist" if not directory.exists() else "has neither benchmark.json nor study.json"
    raise ConfigError(f"report inputs must be benchmark directories (benchmark.json) or study directories "
                      f"(study.json), but {directory} {what}")


def _seed_of(name: str) -> int:
    try:
        return int(name.removeprefix("seed-"))
    except ValueError:
        return 10**9


def _evaluator(spec) -> tuple[object | None, str]:
    """(evaluator, unit) of the evaluator a config names. evaluator: it if it can say true values
    (landscapes, replay pools), else None. unit: the unit it declares; when it cannot be rebuilt,
    the `unit` in its params, else "nats/token"."""
    params = (spec.get("params") or {}) if isinstance(spec, dict) else {}
    unit = params.get("unit", DEFAULT_UNIT)
    if not isinstance(spec, dict) or not spec.get("name"):
        return None, unit
    from bomix.evaluators import get_evaluator

    try:
        ev = get_evaluator(spec["name"], **params)
    except Exception as e:  # a report must not fail because an evaluator cannot be rebuilt here
        log.warning("report: cannot rebuild evaluator %r for true values and its unit: %s", spec.get("name"), e)
        return None, unit
    return (ev if callable(getattr(ev, "true_value", None)) else None), getattr(ev, "unit", DEFAULT_UNIT)


def load(dirs) -> ReportData:
    """Open every study under `dirs` (benchmark or study directories) and build the tidy tables.

    The recommendation and the true values of each study come from its cached summary
    (bomix.report.cache.study_summary: computed and stored on first use, read thereafter)."""
    import pandas as pd

    from bomix.report.cache import study_summary
    from bomix.study import load_study

    dirs = [Path(d) for d in ([dirs] if isinstance(dirs, (str, Path)) else dirs)]
    if not dirs:
        raise ConfigError("report needs at least one benchmark or study directory, got none")
    plan, sources, fixed, budgets, units = [], [], set(), [], {}
    for i, d in enumerate(dirs):
        config, found = _study_dirs(d)
        sources.append({"path": str(d), **config})
        fixed |= set(config.get("fixed") or [])
        if config.get("budget"):
            budgets.append(int(config["budget"]))
        ev, units[str(d)] = _evaluator(config.get("evaluator"))  # once per input: a surrogate fits models
        plan += [(label, seed, sd, config, ev, i) for label, seed, sd in found]
    if len(set(units.values())) > 1:
        raise ConfigError(f"report inputs must share one unit (their objective values are compared), got "
                          f"{units}")

    rows, recs, reps, studies, evaluators, source_of, domains = [], [], [], {}, {}, {}, None
    seen: dict[tuple, str] = {}
    for label, seed, sd, config, ev, i in plan:
        study = load_study(sd)
        label = label or study.optimizer.name or study.name
        seed = study.seed if seed is None else seed
        if (label, seed) in seen:  # the same label from two inputs: tell them apart by folder
            label = f"{label} ({sd.parent.parent.parent.name if config['kind'] == 'benchmark' else sd.name})"
        seen[(label, seed)] = str(sd)
        studies[(label, seed)] = study
        source_of[(label, seed)] = i
        domains = domains or study.space.domains
        if ev is not None:
            evaluators[(label, seed)] = ev
        summary = study_summary(study, ev)
        truth = summary.get("truth") if ev is not None else None
        rows += _trial_rows(study, label, seed, truth)
        recs.append(_recommendation(study, label, seed, summary, truth))
        if any("replicate_of" in t.extra for t in study.trials):
            r = study.replicates()
            if len(r):
                reps.append(r.assign(label=label, seed=seed))
    trials = pd.DataFrame(rows)
    budget = max(budgets) if budgets else int(trials.groupby(["label", "seed"])["trial_index"].max().max() or 0)
    replicates = pd.concat(reps, ignore_index=True) if reps else pd.DataFrame(columns=["label", "seed", "number", "mean"])
    return ReportData(trials=trials, recommendations=pd.DataFrame(recs), replicates=replicates, studies=studies,
                      sources=sources, fixed=fixed, budget=budget, domains=tuple(domains or ()),
                      evaluators=evaluators, source_of=source_of, unit=next(iter(units.values())))


def _trial_rows(study, label, seed, truth) -> list[dict]:
    """One study's trials as row dicts: see `collect`. truth: the summary's truth part, or None."""
    rows, best, true_best, index, cum_cost = [], math.inf, math.nan, 0, 0.0
    truths = truth["trials"] if truth is not None else None
    for i, t in enumerate(study.trials):
        replicate = "replicate_of" in t.extra
        finished = t.state in (TrialState.COMPLETED, TrialState.FAILED)
        cost = (t.cost or {}).get("seconds", t.duration if finished else None)
        if finished and not replicate:
            index += 1
            cum_cost += float(cost or 0.0)
        value = t.value if t.state is TrialState.COMPLETED else None
        true_value = _num(truths[i]) if truths is not None and i < len(truths) else math.nan
        fidelity = study.fidelity_of(t)  # None single-fidelity
        # "best" is at the target scale, as study.best_trial's: losses at other scales do not compare
        if value is not None and not replicate and value < best and study.at_target(t):
            best, true_best = value, true_value
        rows.append({"label": label, "seed": seed, "number": t.number, "trial_index": index if finished and not replicate
                     else math.nan, "state": t.state.value, "replicate_of": t.extra.get("replicate_of"),
                     "value": math.nan if value is None else value,
                     "best_so_far": best if math.isfinite(best) else math.nan,
                     "true_value": true_value, "true_of_best_so_far": true_best,
                     "proposed_by": t.proposed_by, "cost_seconds": math.nan if cost is None else float(cost),
                     "cum_cost_seconds": cum_cost,
                     **({"fidelity": fidelity} if study.fidelities is not None else {}),
                     **{f"w_{d}": w for d, w in t.weights.items()},
                     **{f"loss_{n}": v for n, v in (t.losses or {}).items()}})
    return rows


def _num(v) -> float:
    return math.nan if v is None else float(v)


def _recommendation(study, label, seed, summary, truth) -> dict:
    """One row of `recommendations` from the study's summary (see ReportData)."""
    row = {"label": label, "seed": seed, "source": None, "predicted": math.nan, "sd": math.nan, "trial": None,
           "observed": math.nan, "true_value": math.nan}
    rec = summary.get("recommendation")
    if rec is None:
        return row
    row.update({"source": rec["source"], "predicted": _num(rec["value"]), "sd": _num(rec["sd"]),
                "trial": rec["trial"], "observed": _num(rec.get("observed")),
                **{f"w_{d}": w for d, w in rec["weights"].items()}})
    true_rec = (truth or {}).get("recommended") or {}
    row["true_value"] = _num(true_rec.get("value"))
    if true_rec.get("losses"):
        row.update({f"loss_{n}": v for n, v in true_rec["losses"].items()}, loss_kind="true")
    elif rec["trial"] is not None and study.trials[rec["trial"]].losses:
        row.update({f"loss_{n}": v for n, v in study.trials[rec["trial"]].losses.items()}, loss_kind="observed")
    else:
        row["loss_kind"] = None
    return row


def collect(dirs):
    """A tidy DataFrame of every trial of every study under `dirs`, one row per trial.

    Columns: label, seed, number, trial_index (1-based count of finished, non-replicate trials;
    NaN for abandoned, running and replicate trials), state, replicate_of, value (objective, in
    ReportData.unit; NaN unless COMPLETED), best_so_far (running min of value over COMPLETED
    non-replicate trials in trial order), true_value (noise-free objective when the evaluator
    knows it, e.g. a landscape; else NaN), true_of_best_so_far (true value of the best observed
    mixture so far), proposed_by, cost_seconds, cum_cost_seconds, w_<domain>, loss_<name>; and, for
    multi-fidelity studies only, fidelity (the scale the trial ran at; best_so_far then counts only
    the target's trials, as Study.best_trial does).
    """
    return load(dirs).trials

