"""A study's report summary: computed once, stored as <study dir>/summary.json, read thereafter.

What a report needs of a study that costs a model fit or many evaluator calls: the optimizer's
recommendation (a GP or a law refitted by `study.recommend()`), and, when the evaluator knows the
truth (`true_value`: landscapes, replay pools, surrogates), the noise-free values of every trial's
mixture and of the recommended one. The benchmark runner calls `study_summary(study, evaluator)`
as each study finishes, so a report on a finished benchmark refits nothing; the report calls it too
and computes what is missing or stale.

The stored summary is valid while its key matches the study: the journal's size and SHA-1 (a copied
benchmark keeps its summaries; any appended or rewritten event invalidates them), the in-memory
trial counts (a journal that grew after the study was read does not pass for the old one), and the
bomix version. The truth part also names the evaluator it came from (a fingerprint
of its name and parameters), so the same journal under another evaluator recomputes only that part.
Writes go through a temporary file and os.replace; a folder that cannot be written (read-only
inputs) only means the summary is recomputed next time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from pathlib import Path

from bomix.trial import TrialState

log = logging.getLogger("bomix")
FILE = "summary.json"
FORMAT = "bomix.summary/2"  # 2: pool studies recommend their best evaluated run (optimizers/pool.py)


def study_summary(study, evaluator=None) -> dict:
    """The report summary of `study`, from <study dir>/summary.json when it is current, else
    computed (the recommendation refits the optimizer's model) and stored there.

    evaluator: one with `true_value(weights, objective_dict)` adds the truth; None leaves a stored
    truth in place (it was computed for this journal) and computes none.
    Returns a JSON-able dict:
      "format", "key": {"bomix", "journal_bytes", "journal_sha1", "n_trials", "n_finished"}
      "recommendation": {"weights": {domain: weight}, "value": predicted or observed objective
          (objective units) or None, "sd": posterior sd or None, "source": str, "trial": number or None,
          "observed": the recommended trial's observed value or None} or None (no completed trial,
          or recommend() failed: then "recommend_error" says why and nothing is stored)
      "best_observed": {"trial": number, "value": objective value} of the lowest-valued completed
          non-replicate trial, or None
      "truth": None, or {"evaluator": fingerprint, "trials": [noise-free objective of each trial's
          mixture, in study.trials order, None where the evaluator could not say],
          "recommended": {"value", "losses": {name: loss} or None}, "best_observed": {...}}
      "extra" (when `cached` stored something): {name: {"key", "value"}}
    """
    key = _key(study)
    stored = _read(study.directory)
    fresh = stored is None or stored.get("format") != FORMAT or stored.get("key") != key
    summary = {"format": FORMAT, "key": key} if fresh else stored
    changed = fresh
    if fresh:
        summary.update(_recommendation(study))
        changed = "recommend_error" not in summary
    if evaluator is not None:
        fingerprint = evaluator_fingerprint(evaluator)
        truth = summary.get("truth")
        if truth is None or truth.get("evaluator") != fingerprint:
            summary["truth"] = _truth(study, evaluator, fingerprint, summary)
            changed = changed or "recommend_error" not in summary
    summary.setdefault("truth", None)
    if changed:
        _write(study.directory, summary)
    return summary


def cached(study, name: str, key: str, compute):
    """compute() once per (study journal, `key`): a JSON-able result stored under "extra"/`name` in
    the study's summary.json beside its summary (e.g. a model's predictions of held-out trials, keyed
    by a digest of those trials). A stored result for another key or an older journal is replaced;
    without a current summary (none yet, or not writable) nothing is stored. NaN comes back as None."""
    summary, current = _read(study.directory), _key(study)
    valid = summary is not None and summary.get("key") == current
    entry = summary.get("extra", {}).get(name) if valid else None
    if entry is not None and entry.get("key") == key:
        return entry["value"]
    value = _clean(compute())
    if valid:
        summary.setdefault("extra", {})[name] = {"key": key, "value": value}
        _write(study.directory, summary)
    return value


def evaluator_fingerprint(evaluator) -> str:
    """A short digest of the evaluator's class, name and constructor parameters (arrays and tables
    by their bytes), so true values are recomputed when the evaluator differs."""
    def default(obj):
        if hasattr(obj, "to_numpy"):  # pandas
            obj = obj.to_numpy()
        if hasattr(obj, "tobytes"):
            return hashlib.sha1(obj.tobytes()).hexdigest()
        return repr(obj)

    text = json.dumps({"class": type(evaluator).__qualname__, "name": getattr(evaluator, "name", ""),
                       "params": evaluator.get_params()}, sort_keys=True, default=default)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


# -- computing ----------------------------------------------------------------------------------
def _key(study) -> dict:
    """What the summary is valid for: the journal's size and content digest (not its mtime: a copy
    of a benchmark, cp -r or scp, keeps its summaries), the trial counts the in-memory study was
    computed from, and the bomix version."""
    from bomix import __version__

    try:
        data = (Path(study.directory) / "journal.jsonl").read_bytes()
        size, digest = len(data), hashlib.sha1(data).hexdigest()
    except OSError:
        size = digest = None
    return {"bomix": __version__, "journal_bytes": size, "journal_sha1": digest,
            "n_trials": len(study.trials), "n_finished": study.n_finished}


def _budget_trials(study) -> list:
    """Completed non-replicate trials; in a multi-fidelity study, those at the target (as best_trial)."""
    return [t for t in study.trials if t.state is TrialState.COMPLETED and t.value is not None
            and "replicate_of" not in t.extra
            and study.at_target(t)]


def _recommendation(study) -> dict:
    done = _budget_trials(study)
    best = min(done, key=lambda t: (t.value, t.number)) if done else None
    out = {"best_observed": None if best is None else {"trial": best.number, "value": float(best.value)},
           "recommendation": None}
    try:
        rec = study.recommend()
    except Exception as e:  # a model that cannot be refitted here: no recommendation, and retry next time
        log.warning("report: %s: recommend() failed: %s", study.directory, e)
        return {**out, "recommend_error": f"{type(e).__name__}: {e}"}
    if rec is not None:
        trial = study.trials[rec.trial] if rec.trial is not None and 0 <= rec.trial < len(study.trials) else None
        out["recommendation"] = _clean({
            "weights": {d: float(w) for d, w in rec.weights.items()}, "value": rec.value, "sd": rec.sd,
            "source": rec.source, "trial": rec.trial,
            "observed": None if trial is None or trial.state is not TrialState.COMPLETED else trial.value})
    return out


def _truth(study, evaluator, fingerprint: str, summary: dict) -> dict:
    objective = study.objective.to_dict()

    def value(weights):
        try:
            return float(evaluator.true_value(weights, objective))
        except Exception:
            return None

    def losses(weights):
        # Landscapes and replay pools also give per-loss truth (`true_losses`); the Evaluator ABC does
        # not declare it, so the report asks for it here, in this one place.
        fn = getattr(evaluator, "true_losses", None)
        try:
            return {n: float(v) for n, v in fn(weights).items()} if callable(fn) else None
        except Exception:
            return None

    trials = study.trials
    per_trial, seen = [], {}
    for t in trials:
        mix = tuple(t.weights.values())
        if mix not in seen:
            seen[mix] = value(t.weights)
        per_trial.append(seen[mix])
    out = {"evaluator": fingerprint, "trials": per_trial, "recommended": None, "best_observed": None}
    rec, best = summary.get("recommendation"), summary.get("best_observed")
    if rec is not None:
        out["recommended"] = {"value": value(rec["weights"]), "losses": losses(rec["weights"])}
    if best is not None:
        weights = trials[best["trial"]].weights
        out["best_observed"] = {"value": per_trial[best["trial"]], "losses": losses(weights)}
    return _clean(out)


# -- storing ------------------------------------------------------------------------------------
def _clean(obj):
    """obj with NaN and infinite floats as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _read(directory) -> dict | None:
    try:
        data = json.loads((Path(directory) / FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(directory, summary: dict) -> None:
    """Atomically replace <directory>/summary.json; a failure (read-only folder, full disk) is logged
    at debug level and otherwise ignored: the summary is then recomputed by the next report."""
    directory = Path(directory)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=FILE + ".", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "w") as f:
            json.dump(summary, f, indent=1, allow_nan=False)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a summary is as readable as the journal
        os.replace(tmp, directory / FILE)
    except (OSError, ValueError, TypeError) as e:
        log.debug("report: cannot store %s in %s: %s", FILE, directory, e)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
