"""The report's statistics: Student-t intervals over seeds and paired comparisons of two methods.

Every value is an objective value, in the unit its evaluator declares (lower is better). A paired comparison looks at
two methods on the same seeds (a benchmark gives every method of seed s the same trial seeds), so
the per-seed difference removes what the seed did to both.
"""

from __future__ import annotations

import math

import numpy as np

TIE = 1e-12  # |difference| at or under this many objective units is a tie (the same mixture, or the same value)


def t_ci(values, level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, lower, upper, n) of the finite `values`: mean ± t_{(1+level)/2, n-1} · sd / √n, with the
    sample sd (ddof=1). NaN bounds when n < 2; NaN mean when n == 0."""
    from scipy.stats import t

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if n < 2:
        return mean, math.nan, math.nan, 1
    half = float(t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


EXACT_MAX = 50  # up to this many untied pairs the exact null distribution; beyond, or with tied ranks,
                # the normal approximation with its tie correction


def wilcoxon_p(diff) -> float:
    """Two-sided Wilcoxon signed-rank p of the (n,) paired differences `diff`.

    Ties (|d| <= TIE) are dropped (Wilcoxon's own rule); all ties give p = 1 (no evidence of a
    difference); no pairs give NaN. scipy's exact null distribution is used for small samples
    without tied ranks, the normal approximation otherwise.
    """
    from scipy.stats import wilcoxon

    d = np.asarray(diff, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return math.nan
    d = d[np.abs(d) > TIE]
    if len(d) == 0:
        return 1.0
    tied = len(np.unique(np.round(np.abs(d), 12))) < len(d)
    method = "exact" if len(d) <= EXACT_MAX and not tied else "approx"  # scipy's "auto" would run a slow
    try:                                                                # permutation test on tied ranks
        return float(wilcoxon(d, method=method).pvalue)
    except ValueError:
        return math.nan


def paired(a, b, level: float = 0.95) -> dict:
    """Method a against method b on the same seeds.

    a, b: (n,) values per seed, aligned (a[i] and b[i] come from seed i); pairs with a NaN are
    dropped. Returns {"n_pairs", "mean_diff" (mean of a - b: negative means a is better),
    "ci_low", "ci_high" (t-interval of the mean difference), "wins" (seeds where a is lower by more
    than TIE), "ties", "losses", "wilcoxon_p"}.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    diff = a[ok] - b[ok]
    mean, lo, hi, n = t_ci(diff, level)
    return {"n_pairs": n, "mean_diff": mean, "ci_low": lo, "ci_high": hi,
            "wins": int((diff < -TIE).sum()), "ties": int((np.abs(diff) <= TIE).sum()),
            "losses": int((diff > TIE).sum()), "wilcoxon_p": wilcoxon_p(diff)}


def separation(row, alpha: float = 0.05) -> str:
    """What a paired comparison (a row of `paired`) shows:
    "beyond"     a difference beyond the noise: the t-interval excludes 0 and the Wilcoxon p < alpha;
    "within"     no difference beyond the noise: the t-interval includes 0 and p >= alpha;
    "unsettled"  the two tests disagree (typically too few seeds for Wilcoxon), or one is missing."""
    lo, hi, p = row["ci_low"], row["ci_high"], row["wilcoxon_p"]
    if any(v is None or not np.isfinite(v) for v in (lo, hi, p)):
        return "unsettled"
    excludes = hi < 0 or lo > 0
    if excludes and p < alpha:
        return "beyond"
    return "within" if not excludes and p >= alpha else "unsettled"
