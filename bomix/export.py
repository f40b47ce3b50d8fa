"""Tables in and out of a study: a tidy DataFrame, and the olmix/RegMix CSV convention.

olmix's fit step reads two CSVs keyed by run: ratios.csv (run, name, index, one column per
training domain, rows summing to 1) and metrics.csv (run, name, index, one column per metric).
RegMix's public data has the same shape with only an `index` key. bomix writes that shape and
reads it back, so runs move between the tools in both directions. olmix's published CSVs also
start with pandas' unnamed index column (an empty header cell, read as "Unnamed: 0"); the readers
drop it when it is the first column.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from bomix.errors import ConfigError, EvaluationError, InvalidWeightsError
from bomix.trial import TrialState

KEYS = ("run", "name", "index")
FIDELITY = "fidelity"  # the scale column of a multi-fidelity study's export: a key, never a domain or loss


def trials_dataframe(study, objective):
    import pandas as pd

    multi = any(t.fidelity is not None for t in study.trials)  # multi-fidelity: a column for each trial's scale
    rows = []
    for t in study.trials:
        row = {"number": t.number, "state": t.state.value,
               "value": objective(t.losses) if t.losses is not None and _scorable(objective, t.losses) else None,
               "proposed_by": t.proposed_by, "seed": t.seed, "retry_of": t.retry_of}
        if multi:
            row[FIDELITY] = t.fidelity
        row.update({f"w_{d}": w for d, w in t.weights.items()})
        row.update({f"loss_{n}": v for n, v in (t.losses or {}).items()})
        row.update({f"cost_{n}": v for n, v in (t.cost or {}).items()})
        row.update({"error": t.error, "created_at": _ts(t.created_at), "finished_at": _ts(t.finished_at),
                    "duration_s": t.duration})
        rows.append(row)
    columns = ["number", "state", *([FIDELITY] if multi else []), "value", "proposed_by", "seed", "retry_of",
               *[f"w_{d}" for d in study.space.domains]]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=columns)
    return df[columns + [c for c in df.columns if c not in columns]]


def _scorable(objective, losses) -> bool:
    try:
        return all(n in losses for n in objective.required(losses))
    except EvaluationError:  # e.g. a family pattern that matches none of these losses
        return False


def _ts(t):
    import pandas as pd

    return None if t is None else pd.Timestamp(t, unit="s", tz="UTC")


def _write_csv(df, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def export_study(study, directory: Path) -> Path:
    """ratios.csv + metrics.csv (COMPLETED trials, olmix shape) and trials.csv (every trial). In a
    multi-fidelity study both CSVs get a `fidelity` column after the keys (the scale of each run)."""
    import pandas as pd

    done = [t for t in study.trials if t.state is TrialState.COMPLETED]
    reserved = [*KEYS, FIDELITY]
    names = dict.fromkeys([*study.space.domains, *(n for t in done for n in t.losses)])
    if clash := [n for n in names if n in reserved]:  # the row would overwrite its own key
        raise ConfigError(f"domain and loss names must differ from the export's key columns {reserved} to be "
                          f"exported, got {clash}: one CSV column cannot hold both")
    directory.mkdir(parents=True, exist_ok=True)
    keys = [{"run": f"{study.name}-{t.number:04d}", "name": study.name, "index": t.number} for t in done]
    extra_keys = [FIDELITY] if any(t.fidelity is not None for t in study.trials) else []
    if extra_keys:
        keys = [{**k, FIDELITY: t.fidelity} for k, t in zip(keys, done)]
    ratios = pd.DataFrame([{**k, **t.weights} for k, t in zip(keys, done)],
                          columns=[*KEYS, *extra_keys, *study.space.domains])
    metric_names = list(dict.fromkeys(n for t in done for n in t.losses))
    metrics = pd.DataFrame([{**k, **t.losses} for k, t in zip(keys, done)], columns=[*KEYS, *extra_keys, *metric_names])
    _write_csv(ratios, directory / "ratios.csv")
    _write_csv(metrics, directory / "metrics.csv")
    _write_csv(study.trials_dataframe(), directory / "trials.csv")
    return directory


def _is_float(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _renamer(rename) -> Callable[[str], str]:
    if rename is None:
        return lambda c: c
    if isinstance(rename, Mapping):
        return lambda c: rename.get(c, c)
    if callable(rename):
        return rename
    raise ConfigError(f"rename must be a dict, a function or None, got {rename!r}")


def _read(table, what: str):
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        return table.copy()
    try:
        df = pd.read_csv(table)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{what} must be a readable CSV file or a DataFrame, got {table!r}: {e}") from None
    if not isinstance(df.index, pd.RangeIndex):  # pandas took the first column(s) as an index: rows too long
        raise ConfigError(f"{what} rows must have one field per header column {list(df.columns)}, but {table} has "
                          f"rows with more fields than its header (e.g. the row starting {df.index[0]!r})")
    return df.copy()  # consolidated: read_csv may give one block per column, and pandas warns on insert


PANDAS_INDEX = "Unnamed: 0"  # the name pandas gives a first column whose header cell is empty


def _drop_pandas_index(df):
    """`df` without pandas' written-out index: a FIRST column with an empty header (read as
    "Unnamed: 0"), as in olmix's published CSVs (`DataFrame.to_csv` with its default index=True).
    An unnamed column anywhere else is left alone (and read as a domain or a loss, as before)."""
    if len(df.columns) and df.columns[0] == PANDAS_INDEX:
        return df.drop(columns=df.columns[0])
    return df


def read_runs(ratios, metrics, *, rename_domains=None, rename_metrics=None, what: str = ""):
    """A ratios/metrics pair of logged runs, read and checked (shared key, one row per run, every run
    in both, at least one loss): (key, ratios, metrics with rows in the ratios' run order, domains,
    loss names), columns renamed. A leading unnamed pandas index column is dropped from either
    table. `what` prefixes the messages (e.g. "replay")."""
    p = f"{what} " if what else ""
    r = _drop_pandas_index(_read(ratios, f"{p}ratios"))
    m = _drop_pandas_index(_read(metrics, f"{p}metrics"))
    key = next((k for k in ("run", "index") if k in r.columns and k in m.columns), None)
    if key is None:
        raise ConfigError(f"{p}ratios and metrics must share a 'run' or 'index' column, got {list(r.columns)} and "
                          f"{list(m.columns)}")
    for df, table in ((r, "ratios"), (m, "metrics")):
        dup = df[key][df[key].duplicated()].tolist()
        if dup:
            raise ConfigError(f"{p}{table} must have one row per {key}, got duplicates {dup[:5]}")
    unmatched = sorted(set(r[key]) ^ set(m[key]), key=str)
    if unmatched:
        raise ConfigError(f"{p}every run needs both ratios and metrics; unmatched {key} values {unmatched[:5]}")
    r = r.rename(columns={c: _renamer(rename_domains)(c) for c in r.columns if c not in KEYS})
    m = m.rename(columns={c: _renamer(rename_metrics)(c) for c in m.columns if c not in KEYS})
    domains = [c for c in r.columns if c not in KEYS and c != FIDELITY]
    loss_names = [c for c in m.columns if c not in KEYS and c != FIDELITY]
    if not loss_names:
        raise ConfigError(f"{p}metrics must have at least one loss column besides {list(KEYS)}, got {list(m.columns)}")
    m = m.set_index(key).loc[r[key]].reset_index()  # metrics rows in the ratios' run order
    return key, r.reset_index(drop=True), m, domains, loss_names


def import_runs(study, ratios, metrics, *, rename_domains=None, rename_metrics=None, renormalize: bool = False,
                atol: float = 1e-6, source: str = "import") -> list:
    """Add logged runs as COMPLETED trials. Everything is checked before anything is written.

    ratios/metrics: paths or DataFrames; rows are matched on `run` when both have it, else `index`.
    rename_domains / rename_metrics: dict or function mapping column names to domain / loss names
    (e.g. lambda c: c.removeprefix("train_the_pile_") for RegMix's CSVs).
    renormalize: accept weights whose sum is within 0.01 of 1 (rounded logs) and rescale them.
    """
    key, r, m, domains, metric_cols = read_runs(ratios, metrics, rename_domains=rename_domains,
                                                rename_metrics=rename_metrics)
    missing, unknown = [d for d in study.space.domains if d not in domains], [d for d in domains if d not in study.space.domains]
    if missing or unknown:
        raise ConfigError(f"ratios columns must be the study's domains {list(study.space.domains)}; "
                          f"missing {missing}, unknown {unknown}")
    rows = []
    for i, run in enumerate(r[key]):
        row = {key: run, **r.iloc[i][domains].to_dict()}
        try:
            x = np.array([row[d] for d in study.space.domains], dtype=float)
        except (TypeError, ValueError):
            bad = {d: row[d] for d in study.space.domains if not _is_float(row[d])}
            raise InvalidWeightsError(f"ratios row {key}={row[key]!r}: weights must be numbers, got {bad}") from None
        if renormalize and np.all(np.isfinite(x)) and abs(x.sum() - 1) <= 0.01 and x.min() >= 0:
            x = x / x.sum()
        try:
            x = study.space.clean(x, atol=atol)
        except InvalidWeightsError as e:
            raise InvalidWeightsError(f"ratios row {key}={row[key]!r}: {e}") from None
        losses = {}
        for c in metric_cols:
            v = m[c].iloc[i]
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise ConfigError(f"metrics must be numbers, got {c}={v!r} for {key}={row[key]!r}") from None
            if math.isfinite(v):
                losses[c] = v
        if not losses:
            raise ConfigError(f"metrics row {key}={row[key]!r} has no finite loss")
        try:
            study.objective(losses)  # the objective must be computable from what is imported
        except EvaluationError as e:
            raise EvaluationError(f"metrics row {key}={row[key]!r}: {e}") from None
        rows.append((x, losses, row[key]))
    return [study.add_trial(x, losses, source=source, info={"imported_from": str(run)}) for x, losses, run in rows]
