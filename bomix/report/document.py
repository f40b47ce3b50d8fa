"""report.html (one self-contained file: PNGs as data URIs, inline CSS, no external request) and
report.md (the same content, images as relative files)."""

from __future__ import annotations

import base64
import html
import json
import math
import os
import platform
from importlib import metadata

import numpy as np

from bomix.report.figures import MAX_BAR_DOMAINS

PACKAGES = ("bomix", "torch", "botorch", "gpytorch", "ax-platform", "numpy", "pandas", "scipy", "matplotlib")

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.7em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption, .note { color: #555; font-size: 13px; } .skip { color: #a60; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: 12px; }
"""

# Sets <body data-images-ok="true"> once every image has decoded (checked by the headless browser test).
SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.every(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.dataset.imagesOk = ok ? "true" : "false";
  document.body.dataset.images = String(imgs.length);
});
"""


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e-3 and v != 0 else f"{v:.4f}"
    return str(v)


def _md_table(df) -> str:
    if df is None or df.empty:
        return "_(none)_"
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _html_table(df) -> str:
    if df is None or df.empty:
        return '<p class="note">(none)</p>'
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def sections(data, tables, figures) -> list[tuple]:
    """The report as a list of blocks: ("h2", text), ("h3", text), ("p", text), ("list", [text]),
    ("table", df), ("figure", stem, caption or None, skip reason or None), ("pre", text)."""
    import pandas as pd

    from bomix.report import surrogate, tables as tb, verdict

    trials = tables["trials"]
    labels = list(dict.fromkeys(trials["label"]))
    seeds = sorted(set(trials["seed"]))
    wins = tables.get("which_wins")
    how_sure = _how_sure(wins, data.unit) if wins is not None else []
    blocks = [("h2", "Verdict"), ("list", verdict.sentences(tables["verdict"], data.unit)
                                          + verdict.design_sentences(tables.get("design_use")) + how_sure),
              ("p", f"{len(data.studies)} studies: methods {', '.join(labels)}; seeds {', '.join(map(str, seeds))}; "
                    f"budget {data.budget} trials"
                    + (f" ({', '.join(sorted(data.fixed))} run at natural cost)" if data.fixed else "")
                    + (f"; trivial references: {', '.join(tb.references(data))}" if tb.references(data) else "")
                    + f". Values are the objective in {data.unit}, lower is better. Inputs: "
                    + ", ".join(s["path"] for s in data.sources) + "."
                    + "".join(f" Left out of {s['path']}, unfinished or failed (rerun the benchmark to finish "
                              f"them): {', '.join(s['unfinished'])}." for s in data.sources if s.get("unfinished")))]
    if wins is not None and len(wins):
        blocks += [("h2", "Which mixture wins, and how sure"),
                   ("p", "The best evaluated mixtures of each campaign, ranked by the model's predicted value, with "
                         "p_best: the probability, under the model, that a mixture's noise-free objective is the "
                         "lowest of these, and expected_regret, what deploying it costs against the best of them "
                         "(basis 'independent normals': draws with the model's mean and sd per mixture, the "
                         "default, better calibrated than the GP's joint draws on the landscape it was measured "
                         "on, and still overconfident: read p_best as an upper bound; 'observed only': no "
                         "model). "
                         "Observed per-domain losses are in which_wins.csv; to learn how much of the order is "
                         "noise, replicate the top mixtures (study.replicate, replicate_top in a config)."),
                   ("table", wins[[c for c in wins.columns if not c.startswith("loss_")]])]
    fs = tables["final_summary"]
    if not fs.empty:
        fs = fs.assign(cell=[f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]" if not math.isnan(lo) else _fmt(m)
                             for m, lo, hi in zip(fs["mean"], fs["ci_low"], fs["ci_high"])])
        wide = fs.pivot_table(index="label", columns="metric", values="cell", aggfunc="first", sort=False)
        wide = wide[[m for m in tb.METRICS if m in wide.columns]]
        kinds = fs[fs["metric"] == "deployed"].set_index("label")["kind"]
        seeds = fs.groupby("label", sort=False)["n"].max()
        wide = wide.reset_index()
        wide.insert(1, "seeds", [int(seeds[label]) for label in wide["label"]])  # methods may differ
        if "deployed" in wide.columns:
            wide.insert(3, "deployed value is", [kinds.get(label, "") for label in wide["label"]])
        wide = wide.rename(columns=lambda c: str(c).replace("_", " "))
    else:
        wide = fs
    blocks += [("h2", "Final values at the budget"),
               ("p", "Mean over seeds [95% t-interval] ('seeds': how many each method ran). The headline is "
                     "'deployed': the mixture each method would deploy (its recommendation, model-based where it "
                     "has a model), valued noise-free where the evaluator knows the truth (landscapes, replay pools, surrogates; 'deployed value is' = true), "
                     "else by the replicated mean or the observed value of the recommended trial (labelled so). "
                     "'best observed' is the lowest noisy value seen, shown beside it: it is the minimum of noisy "
                     "draws and flatters a method that got lucky; 'true of best observed' is that mixture's "
                     "noise-free value; 'replicated' is the mean of repeated evaluations where the study replicated "
                     "its top mixtures."),
               ("table", wide)]
    ab = tables["at_budgets"]
    if not ab.empty:
        ab = ab.assign(cell=[f"{_fmt(md)} | {_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]" if not math.isnan(lo)
                             else f"{_fmt(md)} | {_fmt(m)}"
                             for md, m, lo, hi in zip(ab["median"], ab["mean"], ab["ci_low"], ab["ci_high"])])
        for metric, g in ab.groupby("metric", sort=False):
            what = "Best observed" if metric == "best_so_far" else "True value of the best observed mixture"
            budgets = sorted(set(g["budget"]))
            blocks += [("h3", f"{what} at smaller budgets"),
                       ("p", f"After the first {', '.join(map(str, budgets))} trials of each study (of a budget of "
                             f"{data.budget}): median | mean [95% t-interval] over seeds."),
                       ("table", g.pivot_table(index="label", columns="budget", values="cell", aggfunc="first",
                                               sort=False).reset_index()
                        .rename(columns=lambda c: f"{c} trials" if isinstance(c, (int, np.integer)) else c))]
    for stem, title, _, _ in figures["order"]:
        caption, skip = figures["results"][stem]
        if stem == "scale_transfer":  # its own section: figure and tables (multi-fidelity studies only)
            from bomix.report import scale_transfer

            blocks += scale_transfer.blocks(tables, (caption, skip))
            continue
        blocks += [("h2", title), ("figure", stem, caption, skip)]
        if stem == "final_values":
            blocks += [("h3", "Paired tests"),
                       ("p", "Each method against sobol, random, the best baseline (the non-BO method with the "
                             "lowest mean) and the best trivial reference, paired over seeds, on the deployed value "
                             "(see above): mean difference (method - reference; negative = method better) with its "
                             "95% t-interval, seeds won/tied/lost, two-sided Wilcoxon signed-rank p (all ties: "
                             "p = 1). 'best observed diff' is the same mean difference on best observed values. "
                             "Every pair of methods, on both values, is in paired_tests.csv."),
                       ("table", _paired_view(tables["paired_tests"])),
                       ("h3", "Trials needed to reach target values"),
                       ("p", "Targets are quantiles of the searching methods' final values of "
                             + ("the true value of the best observed mixture" if tb.progress_metric(data) ==
                                "true_of_best_so_far" else "best observed value")
                             + "; median over seeds of the first trial that reaches the target (blank: half the "
                               "seeds or more never did)."),
                       ("table", tables["trials_to_reach"])]
        if stem in ("recommended_mixtures", "domain_losses"):
            blocks.append(("table", _per_domain_view(tables[stem], "weight" if stem == "recommended_mixtures"
                                                     else "loss")))
        if stem == "predicted_vs_actual":
            blocks += [("p", f"Protocol: per input, the completed trials of every method within the budget are "
                             f"pooled and min({surrogate.MAX_HELDOUT}, a fifth of them) are held out, drawn with "
                             f"numpy seed {surrogate.HOLDOUT_SEED}; the same held-out trials for every model. Each "
                             f"model (bo's GP, each law; the first {surrogate.MAX_SEEDS} seeds of each method) is "
                             "refitted on its own study's trials minus the held-out ones and predicts every held-out "
                             "trial. RMSE against observed values includes the evaluation noise; against the truth "
                             "(where known) it does not."),
                       ("table", tables["surrogate_scores"])]
    if len(tables["replicates"]):
        blocks += [("h2", "Replicates"), ("p", "Top mixtures re-evaluated with fresh seeds; luck = first value - "
                                               "mean of all evaluations."),
                   ("table", tables["replicates"][["label", "seed", "number", "value", "mean", "sd",
                                                   "n_evaluations", "luck"]])]
    configs = []
    for s in data.sources:
        if s["kind"] == "benchmark":
            configs.append({k: v for k, v in s.items() if k != "kind"})
        else:
            study = next(st for st in data.studies.values() if str(st.directory) == str(s["path"]))
            configs.append({"path": s["path"], **{k: study.spec.get(k) for k in ("space", "objective", "optimizer",
                                                                                  "seed", "bomix_version")},
                            **({"fidelities": study.spec["fidelities"]} if study.spec.get("fidelities") else {}),
                            **({"evaluator": s["evaluator"]} if "evaluator" in s else {})})
    blocks += [("h2", "Configuration and versions"),
               ("table", pd.DataFrame(list(versions().items()), columns=["package", "version"])),
               ("pre", json.dumps(configs, indent=2, default=str)),
               ("h2", "Files"), ("p", "Tables as CSV beside this report: "
                                      + ", ".join(f"{stem}.csv" for stem in tables) + ".")]
    return blocks


def _how_sure(wins, unit: str) -> list[str]:
    """One verdict sentence per campaign with a model: how likely its top mixtures are the best."""
    from bomix.confidence import summary_line

    out = []
    for (label, seed), table in wins.groupby(["label", "seed"], sort=False):
        line = summary_line(table.reset_index(drop=True), unit)
        if line:
            out.append(f"How sure ({label}, seed {seed}): {line}.")
    return out


def _per_domain_view(long, value):
    """A method x domain table, turned to a domain per row past MAX_BAR_DOMAINS domains so
    that 64 domains read down the page instead of across it."""
    if long.empty:
        return long
    wide = long.pivot_table(index="label", columns="domain", values=value, sort=False)
    if wide.shape[1] > MAX_BAR_DOMAINS:
        return wide.T.rename_axis(columns=None).reset_index()
    return wide.reset_index()


def _paired_view(tests):
    """The paired tests the page shows: deployed value, named references only, best observed beside."""
    if tests.empty:
        return tests
    main = tests[(tests["metric"] == tests["metric"].iloc[0]) & (tests["role"] != "")]
    other = tests[tests["metric"] == "best_observed"].set_index(["label", "reference"])["mean_diff"]
    view = main.drop(columns=["metric"]).assign(
        best_observed_diff=[other.get((a, b), math.nan) for a, b in zip(main["label"], main["reference"])])
    return view.rename(columns=lambda c: c.replace("_", " "))


def write_html(path, blocks, figure_dir, title: str) -> None:
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for b in blocks:
        if b[0] in ("h2", "h3", "p"):
            parts.append(f"<{b[0]}>{html.escape(b[1])}</{b[0]}>")
        elif b[0] == "list":
            parts.append("<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in b[1]) + "</ul>")
        elif b[0] == "table":
            parts.append(_html_table(b[1]))
        elif b[0] == "pre":
            parts.append(f"<pre>{html.escape(b[1])}</pre>")
        elif b[0] == "figure":
            _, stem, caption, skip = b
            if skip:
                parts.append(f'<p class="skip">Not drawn: {html.escape(skip)}.</p>')
                continue
            data = base64.b64encode((figure_dir / f"{stem}.png").read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{html.escape(stem)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    doc = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
           f"<style>{CSS}</style><script>{SCRIPT}</script></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n")
    _write_atomic(path, doc)


def write_markdown(path, blocks, figure_dir, title: str) -> None:
    parts = [f"# {title}"]
    for b in blocks:
        if b[0] == "h2":
            parts.append(f"## {b[1]}")
        elif b[0] == "h3":
            parts.append(f"### {b[1]}")
        elif b[0] == "p":
            parts.append(b[1])
        elif b[0] == "list":
            parts.append("\n".join(f"- {item}" for item in b[1]))
        elif b[0] == "table":
            parts.append(_md_table(b[1]))
        elif b[0] == "pre":
            parts.append(f"```json\n{b[1]}\n```")
        elif b[0] == "figure":
            _, stem, caption, skip = b
            rel = (figure_dir / f"{stem}.png").relative_to(path.parent).as_posix()
            parts.append(f"_Not drawn: {skip}._" if skip else f"![{stem}]({rel})\n\n_{caption}_")
    _write_atomic(path, "\n\n".join(parts) + "\n")


def _write_atomic(path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it: no half-written report."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
