"""Scale-transfer diagnostics: does a cheap scale's ranking of mixtures hold at the target scale?

Computed on the mixtures run at both scales (same rows in both tables). Tidy tables first:

    rank_transfer      per loss, and for the objective: Spearman and Kendall rank correlation of the
                       losses at the two scales over the shared mixtures
    best_transfer      the cheap scale's best mixture at the target: its rank there (1 = best), its
                       target value, and its regret against the target's own best
    predicted_vs_actual a model's predicted target values (with sd) against the measured ones: MAE,
                       rank correlation, share within 2 sd

All values in objective units; lower is better.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bomix.errors import ConfigError


def _pair(small, big, what: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(small, dtype=float), np.asarray(big, dtype=float)
    if a.shape != b.shape or a.ndim not in (1, 2) or len(a) < 3:
        raise ConfigError(f"{what} needs the same mixtures at both scales (equal shapes, at least 3 rows), got "
                          f"shapes {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ConfigError(f"{what} needs finite losses at both scales")
    return a, b


def rank_transfer(small, big, names: Sequence[str], small_values=None, big_values=None,
                  objective_name: str = "objective"):
    """A DataFrame, one row per loss (and one for the objective when its values are given):
    name, n, spearman, kendall. small, big: (n, m) losses of the same n mixtures at the cheap and
    the target scale, columns `names`; small_values, big_values: (n,) objective values."""
    import pandas as pd
    from scipy.stats import kendalltau, spearmanr

    a, b = _pair(small, big, "rank_transfer")
    if a.ndim != 2 or a.shape[1] != len(names):
        raise ConfigError(f"rank_transfer needs one column per name {list(names)}, got shape {a.shape}")
    rows = [(str(n), a[:, j], b[:, j]) for j, n in enumerate(names)]
    if small_values is not None:
        va, vb = _pair(small_values, big_values, "rank_transfer")
        rows.append((objective_name, va, vb))
    return pd.DataFrame([{"name": n, "n": len(x), "spearman": float(spearmanr(x, y)[0]),
                          "kendall": float(kendalltau(x, y)[0])} for n, x, y in rows])


def best_transfer(small_values, big_values) -> dict:
    """How the cheap scale's best mixture does at the target. small_values, big_values: (n,)
    objective values of the same mixtures. Returns {"small_best": row, "small_best_rank_at_big":
    1-based rank at the target, "small_best_at_big": its target value, "big_best": row,
    "big_best_value", "regret": small_best_at_big - big_best_value, "n"}."""
    a, b = _pair(small_values, big_values, "best_transfer")
    i, j = int(np.argmin(a)), int(np.argmin(b))
    return {"n": len(a), "small_best": i, "small_best_rank_at_big": int((b < b[i]).sum()) + 1,
            "small_best_at_big": float(b[i]), "big_best": j, "big_best_value": float(b[j]),
            "regret": float(b[i] - b[j])}


def predicted_vs_actual(predicted, actual, sd=None) -> dict:
    """A model's predicted target values against the measured ones: {"n", "mae", "spearman",
    "within_2sd" (share of |error| <= 2 sd, None without sd)}."""
    from scipy.stats import spearmanr

    p, y = _pair(predicted, actual, "predicted_vs_actual")
    out = {"n": len(p), "mae": float(np.abs(p - y).mean()), "spearman": float(spearmanr(p, y)[0]),
           "within_2sd": None}
    if sd is not None:
        s = np.asarray(sd, dtype=float)
        if s.shape != p.shape or (s < 0).any():
            raise ConfigError(f"sd must be one non-negative number per prediction, got shape {s.shape}")
        out["within_2sd"] = float((np.abs(p - y) <= 2 * s).mean())
    return out
