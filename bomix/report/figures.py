"""The report's figures, drawn from the tables (matplotlib, Agg backend, PNG files).

Each function takes the tables (and ReportData), writes one PNG and returns a caption, or raises
Skip with the reason when its data is missing; the document then shows the reason instead.
"""

from __future__ import annotations

import numpy as np

DPI = 110


class Skip(Exception):
    """A figure that cannot be drawn from this data; the message says why."""


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _colors(labels):
    plt = _plt()
    cycle = plt.get_cmap("tab10").colors
    return {label: cycle[i % len(cycle)] for i, label in enumerate(labels)}


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    _plt().close(fig)


def _band(curves):
    """mean, lower, upper of a (seeds, points) array with NaNs, 95% t-interval per point."""
    from scipy.stats import t

    import warnings

    n = np.sum(np.isfinite(curves), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(curves, axis=0) if curves.size else np.array([])
        sd = np.nanstd(curves, axis=0, ddof=1) if curves.shape[0] > 1 else np.full(curves.shape[1], np.nan)
        half = t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
    return mean, mean - half, mean + half


def best_so_far(data, tables, path, *, by: str = "trials"):
    """Best-so-far curves per method, mean and 95% band over seeds; fixed methods as dashed lines.

    by="trials": x = trials finished. by="cost": x = cumulative cost seconds (each seed's step
    curve read on a common grid up to the median of the seeds' total cost).
    """
    plt = _plt()
    df = tables["trials"]
    df = df[df["trial_index"].notna() & (df["trial_index"] <= max(data.budget, 1))]
    if df["best_so_far"].notna().sum() == 0:
        raise Skip("no completed trials")
    if by == "cost" and not (df["cum_cost_seconds"] > 0).any():
        raise Skip("the trials record no cost in seconds")
    panels = [("best_so_far", "best observed value so far")]
    if df["true_of_best_so_far"].notna().any():
        panels.append(("true_of_best_so_far", "true value of the best observed mixture"))
    labels = list(dict.fromkeys(df["label"]))
    colors = _colors(labels)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.2), squeeze=False)
    for ax, (column, title) in zip(axes[0], panels):
        span = [np.inf, -np.inf]  # y range: bands and curves after their first fifth
        for label in labels:
            g = df[df["label"] == label]
            if label in data.fixed:
                ax.axhline(g.groupby("seed")[column].last().mean(), color=colors[label], ls="--", lw=1.2,
                           label=f"{label} (fixed)")
                continue
            if by == "trials":
                grid = np.arange(1, int(g["trial_index"].max()) + 1)
                curves = np.array([s.set_index("trial_index")[column].reindex(grid).to_numpy(dtype=float)
                                   for _, s in g.groupby("seed")])
            else:
                ends = g.groupby("seed")["cum_cost_seconds"].max()
                grid = np.linspace(0, float(ends.median()), 100)
                curves = np.array([_step(s["cum_cost_seconds"].to_numpy(), s[column].to_numpy(), grid)
                                   for _, s in g.groupby("seed")])
            mean, lo, hi = _band(curves)
            late = mean[len(mean) // 5:]
            low = lo[len(lo) // 5:]
            span[0] = np.nanmin([span[0], *low[np.isfinite(low)], *mean[np.isfinite(mean)]])
            span[1] = np.nanmax([span[1], *late[np.isfinite(late)]])
            ax.plot(grid, mean, color=colors[label], lw=1.8, label=f"{label} (n={len(curves)})")
            ax.fill_between(grid, lo, hi, color=colors[label], alpha=0.18, lw=0)
        if np.isfinite(span).all() and span[1] > span[0]:
            pad = 0.08 * (span[1] - span[0])
            ax.set_ylim(span[0] - pad, span[1] + 3 * pad)
        ax.set_xlabel("trials" if by == "trials" else "cumulative cost (seconds)")
        ax.set_ylabel(f"objective ({data.unit}), lower is better")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    _save(fig, path)
    x = "trials" if by == "trials" else "cumulative cost in seconds"
    return (f"Best so far against {x}: mean over seeds with 95% t-bands; dashed lines are methods run at their "
            "natural cost (one trial).")


def _step(x, y, grid):
    """A right-continuous step function through (x, y) read at grid (NaN before the first point
    and after the last)."""
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) == 0:
        return np.full(len(grid), np.nan)
    i = np.searchsorted(x, grid, side="right") - 1
    out = np.where(i >= 0, y[np.clip(i, 0, None)], np.nan)
    return np.where(grid <= x[-1] * (1 + 1e-9), out, np.nan)


def final_values(data, tables, path):
    """Final values as points with 95% CI bars, one colour per metric, methods on the y axis."""
    plt = _plt()
    fs = tables["final_summary"]
    if fs.empty:
        raise Skip("no final values")
    metrics = list(dict.fromkeys(fs["metric"]))
    labels = list(dict.fromkeys(fs["label"]))
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(labels) + 1.6))
    colors = _colors(metrics)
    for j, metric in enumerate(metrics):
        g = fs[fs["metric"] == metric].set_index("label")
        ys = [labels.index(label) + (j - (len(metrics) - 1) / 2) * 0.18 for label in g.index]
        err = np.vstack([g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]]).astype(float)
        ax.errorbar(g["mean"], ys, xerr=np.nan_to_num(err), fmt="o", color=colors[metric], capsize=3,
                    label=metric.replace("_", " "))
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"objective at the budget ({data.unit}), lower is better")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="best")
    _save(fig, path)
    return ("Final values at the budget: mean over seeds with 95% t-intervals; 'deployed' (the recommended mixture, "
            "noise-free where known) is the headline, best observed (noisy) beside it.")


# Past these many domains a legend entry or a bar group per domain stops being readable: the mixture
# figure names the largest domains and pools the rest, the loss figure becomes a heat map.
MAX_NAMED_DOMAINS = 15
MAX_BAR_DOMAINS = 12


def recommended_mixtures(data, tables, path):
    """Stacked bars: each method's recommended mixture, mean over seeds.

    With more than MAX_NAMED_DOMAINS domains, the ones with the largest weight in any method's
    mixture are drawn and named and the rest are pooled into one grey "other" block.
    """
    plt = _plt()
    rm = tables["recommended_mixtures"]
    if rm.empty:
        raise Skip("no recommendations")
    wide = rm.pivot_table(index="label", columns="domain", values="weight", sort=False)
    wide = wide[[d for d in data.domains if d in wide.columns]].fillna(0.0)
    colors = list(plt.get_cmap("tab20").colors)
    pooled = ""
    if wide.shape[1] > MAX_NAMED_DOMAINS:
        keep = set(wide.max(axis=0).sort_values(ascending=False).index[:MAX_NAMED_DOMAINS])
        rest = [d for d in wide.columns if d not in keep]
        named = wide[[d for d in wide.columns if d in keep]]
        wide = named.assign(**{f"other ({len(rest)} domains)": wide[rest].sum(axis=1)})
        colors = colors[:MAX_NAMED_DOMAINS] + [(0.75, 0.75, 0.75)]
        pooled = (f" The {MAX_NAMED_DOMAINS} domains with the largest weight in any method's mixture are named; "
                  f"the other {len(rest)} are pooled in grey (every weight is in recommended_mixtures.csv).")
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(wide) + 2.5), 4.2))
    bottom = np.zeros(len(wide))
    for domain, color in zip(wide.columns, colors * 5):
        ax.bar(wide.index, wide[domain], bottom=bottom, color=color, label=domain)
        bottom += wide[domain].to_numpy()
    ax.set_ylabel("weight (mean over seeds)")
    ax.set_ylim(0, 1)
    ax.tick_params(axis="x", rotation=30)
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    _save(fig, path)
    return "Recommended mixtures, mean over seeds (each bar sums to 1)." + pooled


def domain_losses(data, tables, path):
    """Per-domain losses of each method's recommended mixture.

    Grouped bars up to MAX_BAR_DOMAINS domains; past that a heat map of each method's gap to the
    best method on each domain, one column per domain, at a width that stays on a screen.
    """
    plt = _plt()
    dl = tables["domain_losses"]
    if dl.empty:
        raise Skip("no per-domain losses of recommended mixtures")
    wide = dl.pivot_table(index="domain", columns="label", values="loss", sort=False)
    kind = "/".join(sorted(set(dl["kind"].astype(str))))
    if len(wide) > MAX_BAR_DOMAINS:
        gap = (wide - wide.min(axis=1).to_numpy()[:, None]).T  # methods x domains, 0 = best on that domain
        fig, ax = plt.subplots(figsize=(min(16.0, 3.0 + 0.2 * len(wide)), 1.2 + 0.35 * len(gap)))
        image = ax.imshow(gap.to_numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_yticks(np.arange(len(gap)), gap.index)
        ax.set_xticks(np.arange(len(wide)), wide.index, rotation=90, fontsize=6)
        fig.colorbar(image, ax=ax, label=f"loss above the best method ({data.unit})")
        _save(fig, path)
        return (f"Per-domain losses ({kind}) of each method's recommended mixture, mean over seeds, as the gap to "
                f"the best method on each of the {len(wide)} domains (0 = best there); the losses and their sd "
                "are in domain_losses.csv.")
    err = dl.pivot_table(index="domain", columns="label", values="sd", sort=False).reindex_like(wide)
    labels, colors = list(wide.columns), _colors(list(wide.columns))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(wide) * max(1, len(labels)) / 3 + 3), 4.2))
    width = 0.8 / len(labels)
    x = np.arange(len(wide))
    for j, label in enumerate(labels):
        ax.bar(x + (j - (len(labels) - 1) / 2) * width, wide[label], width, yerr=err[label].fillna(0),
               color=colors[label], label=label, capsize=2)
    lo, hi = np.nanmin(wide.to_numpy()), np.nanmax(wide.to_numpy())
    ax.set_ylim(lo - 0.1 * (hi - lo + 1e-9), hi + 0.1 * (hi - lo + 1e-9))
    ax.set_xticks(x, wide.index, rotation=30)
    ax.set_ylabel(f"loss ({data.unit})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    _save(fig, path)
    return f"Per-domain losses ({kind}) of each method's recommended mixture: mean over seeds, bars one sd."


def trajectory(data, tables, path, *, n_clusters: int = 4):
    """The BO trajectory of one study, coloured by k-means clusters of its mixtures: a 2-D PCA of
    the weights (left) and the objective over trials (right)."""
    plt = _plt()
    from scipy.cluster.vq import kmeans2

    names = {label: s.optimizer.name for (label, _), s in data.studies.items()}
    bo = [label for label in dict.fromkeys(names) if names[label] == "bo"]
    if not bo:
        raise Skip("no bo study among the inputs")
    label = bo[0]
    df = tables["trials"]
    g = df[(df["label"] == label) & df["value"].notna() & df["trial_index"].notna()]
    seed = sorted(g["seed"])[0] if len(g) else None
    g = g[g["seed"] == seed]
    cols = [f"w_{d}" for d in data.domains]
    if len(g) < 3:
        raise Skip(f"{label} has fewer than 3 completed trials")
    W = g[cols].to_numpy(dtype=float)
    k = min(n_clusters, len(g))
    _, cluster = kmeans2(W, k, seed=np.random.default_rng(0), minit="++")
    C = W - W.mean(0)
    _, s, vt = np.linalg.svd(C, full_matrices=False)
    P = C @ vt[:2].T
    explained = (s[:2] ** 2).sum() / max((s ** 2).sum(), 1e-300)
    colors = _plt().get_cmap("tab10").colors
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.3))
    a.plot(P[:, 0], P[:, 1], color="0.7", lw=0.8, zorder=1)
    for c in range(k):
        m = cluster == c
        a.scatter(P[m, 0], P[m, 1] if P.shape[1] > 1 else np.zeros(m.sum()), s=18 + 60 * g["trial_index"][m] /
                  g["trial_index"].max(), color=colors[c % 10], label=f"cluster {c + 1} ({m.sum()})", zorder=2)
        b.scatter(g["trial_index"][m], g["value"][m], color=colors[c % 10], s=22)
    b.plot(g["trial_index"], g["best_so_far"], color="k", lw=1, label="best so far")
    a.set_xlabel("PC 1")
    a.set_ylabel("PC 2")
    a.set_title(f"{label}, seed {seed}: mixtures (PCA, {explained:.0%} of variance; larger = later)")
    a.legend(fontsize=8)
    b.set_xlabel("trial")
    b.set_ylabel(f"objective ({data.unit})")
    b.set_title("value of each trial, coloured by cluster")
    b.legend(fontsize=8)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    _save(fig, path)
    return (f"The {label} trajectory (seed {seed}): mixtures clustered with k-means (k={k}) on the weights; "
            "where it explores and where it settles.")


def predicted_vs_actual(data, tables, path):
    """One panel per method with a model (GP, each fitted law): its predictions of the common
    held-out trials (surrogate.py's protocol) against their observed values."""
    plt = _plt()
    sp = tables.get("surrogate")
    if sp is None or sp.empty:
        raise Skip("no method with a model (bo or a fitted law) among the inputs, or too few trials to fit one")
    sc = tables["surrogate_scores"].set_index(["label", "model"])
    groups = list(sp.groupby(["label", "model"], sort=False))
    lo = float(np.nanmin([sp["actual"].min(), sp["predicted"].min()]))
    hi = float(np.nanmax([sp["actual"].max(), sp["predicted"].max()]))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 4.2), squeeze=False, sharex=True,
                             sharey=True)
    for ax, ((label, model), g) in zip(axes[0], groups):
        ax.errorbar(g["actual"], g["predicted"], yerr=g["sd"].fillna(0), fmt="o", ms=3, alpha=0.6, capsize=2)
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--")
        s = sc.loc[(label, model)]
        true = f", vs truth {s['rmse_true']:.4f}" if np.isfinite(s["rmse_true"]) else ""
        ax.set_title(f"{label}: {model} ({int(s['n_studies'])} studies)\nRMSE {s['rmse']:.4f}{true}, "
                     f"Spearman {s['spearman']:.2f}, {int(s['n_heldout'])} held-out trials", fontsize=9)
        ax.set_xlabel(f"observed value ({data.unit})")
        ax.set_ylabel("predicted")
        ax.grid(alpha=0.3)
    _save(fig, path)
    n = int(tables["surrogate_scores"]["n_heldout"].max())
    return (f"Predicted against observed values of one common set of {n} held-out trial(s) per input, drawn with a "
            "fixed seed from the pooled completed trials of every method: each model is refitted on its own "
            "study's trials minus the held-out ones and predicts all of them (bars: GP posterior sd). Every "
            "panel answers the same questions.")


FIGURES = [  # (file stem, title, function, keyword arguments)
    ("best_so_far", "Best so far by trials", best_so_far, {"by": "trials"}),
    ("best_so_far_cost", "Best so far by cumulative cost", best_so_far, {"by": "cost"}),
    ("final_values", "Final values", final_values, {}),
    ("recommended_mixtures", "Recommended mixtures", recommended_mixtures, {}),
    ("domain_losses", "Per-domain losses of the recommended mixtures", domain_losses, {}),
    ("trajectory", "The BO trajectory", trajectory, {}),
    ("predicted_vs_actual", "Predicted vs actual", predicted_vs_actual, {}),
]
