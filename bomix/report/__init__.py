"""`bomix report DIR... -o OUT`: compare studies with tables, figures and one self-contained page.

    from bomix.report import report, collect
    report(["runs/bench"], "runs/bench-report")   # OUT/report.html, report.md, *.csv, figures/*.png
    collect(["runs/bench"])                        # the tidy per-trial DataFrame alone

Inputs are benchmark directories (benchmark.json + studies/<label>/seed-<s>/) or single study
directories. The work runs in three steps, each finished before the next starts: tidy tables
(pandas, written as CSV), figures (matplotlib, PNG), then report.html (PNGs embedded as data URIs,
no external request) and report.md (images as relative files). Both open with the verdict
(verdict.py). What costs a model fit per study (the recommendation, the held-out predictions) and
the true values come from each study's summary.json (cache.py), computed once and reused.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from bomix.report.cache import study_summary
from bomix.report.data import ReportData, collect, load

__all__ = ["ReportData", "collect", "load", "report", "study_summary"]


def report(dirs, out, *, title: str = "bomix report", log=None) -> Path:
    """Write the report of the studies under `dirs` into folder `out`; returns out/report.html.

    log: a function taking one progress line (default: print to stderr); log=False is silent.
    """
    from bomix.report import document, figures, scale_transfer, surrogate, tables

    say = (lambda line: None) if log is False else log or (lambda line: print(line, file=sys.stderr, flush=True))
    start = time.perf_counter()

    def step(text):
        say(f"report: [{time.perf_counter() - start:6.1f}s] {text}")

    out = Path(out)
    dirs = [Path(d) for d in ([dirs] if isinstance(dirs, (str, Path)) else dirs)]
    step(f"reading {len(dirs)} input(s) (studies; recommendations and true values from each summary.json)")
    data = load(dirs)
    step(f"{len(data.studies)} studies, {len(data.trials)} trials; computing tables")
    out.mkdir(parents=True, exist_ok=True)
    t = tables.compute(data)
    step("predicted vs actual: models on the common held-out trials (cached per study)")
    t["surrogate"] = surrogate.predictions(data)
    t["surrogate_scores"] = surrogate.scores(t["surrogate"])
    multi_fidelity = scale_transfer.multi_fidelity(data)  # else nothing below changes
    if multi_fidelity:
        step("scale transfer: mixtures run at both scales, one-step-ahead predictions at the target (cached)")
        t.update(scale_transfer.tables(data))
    for stem, df in t.items():
        tmp = out / f"{stem}.csv.tmp"
        df.to_csv(tmp, index=False)
        os.replace(tmp, out / f"{stem}.csv")
    step(f"wrote {len(t)} tables; drawing figures")
    figure_dir = out / "figures"
    figure_dir.mkdir(exist_ok=True)
    results = {}
    order = figures.FIGURES + ([("scale_transfer", "Scale transfer", scale_transfer.figure, {})]
                               if multi_fidelity else [])
    for stem, name, func, kwargs in order:
        path = figure_dir / f"{stem}.png"
        try:
            results[stem] = (func(data, t, path, **kwargs), None)
            step(f"figure {stem}.png")
        except figures.Skip as e:
            path.unlink(missing_ok=True)
            results[stem] = (None, str(e))
            step(f"figure {stem}.png skipped: {e}")
    blocks = document.sections(data, t, {"order": order, "results": results})
    document.write_html(out / "report.html", blocks, figure_dir, title)
    document.write_markdown(out / "report.md", blocks, figure_dir, title)
    step(f"wrote {out / 'report.html'} and {out / 'report.md'}")
    return out / "report.html"
