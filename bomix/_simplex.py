"""Map points of the unit cube onto the capped simplex {s : sum s = 1, 0 <= s_i <= u_i}.

The uniform distribution on that polytope is the law of independent U_i ~ Uniform[0, u_i]
conditioned on sum U = 1. Its Rosenblatt transform draws s_1, s_2, ... one after another from
their exact conditional laws given what is left to share out, t = 1 - s_1 - ... - s_{i-1}:

    P(s_i <= a | t) = (F_{i+1}(t) - F_{i+1}(t - a)) / (F_{i+1}(t) - F_{i+1}(t - u_i))

where F_{i+1} is the CDF of U_{i+1} + ... + U_k. Fed uniform random numbers this is an exact
uniform sampler; fed scrambled Sobol points it keeps their low discrepancy (the standard way to
carry QMC points through a change of measure). Unlike rejection from the flat Dirichlet, whose
acceptance rate falls like the volume ratio of the capped to the full simplex, it never discards
a draw: cost is O(n k log G).

Without active caps F has a closed form and the transform is stick-breaking with Beta(1, m)
conditionals. With caps, F_{i+1} is built on a grid of G points by the recursion
F_j(t) = (Phi_{j+1}(t) - Phi_{j+1}(t - u_j)) / u_j, Phi the running integral of F_{j+1}.
"""

from __future__ import annotations

import warnings

import numpy as np

GRID = 1 << 14  # grid points on [0, 1] for the capped-case CDFs


def unit_cube(n: int, d: int, *, method: str, seed: int, skip: int = 0) -> np.ndarray:
    """(n, d) points in [0, 1): scrambled Sobol (`skip` points fast-forwarded) or uniform random."""
    if method == "sobol":
        from scipy.stats import qmc

        sampler = qmc.Sobol(d=d, scramble=True, seed=np.random.default_rng(seed))
        if skip:
            sampler.fast_forward(skip)
        with warnings.catch_warnings():  # balance warning for n not a power of 2: expected here
            warnings.simplefilter("ignore", UserWarning)
            return sampler.random(n)
    rng = np.random.default_rng([seed, skip])
    return rng.random((n, d))


def capped_simplex(v: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Map v, an (n, k-1) array in [0, 1), to (n, k) points on the simplex with s_i <= caps[i].

    caps: (k,) values in (0, 1] with caps.sum() >= 1.
    """
    n, k = v.shape[0], len(caps)
    v = np.clip(v, 0.0, 1.0 - 1e-12)
    s = np.empty((n, k))
    left = np.ones(n)
    if np.all(caps >= 1.0):  # plain simplex: s_i | t ~ t * Beta(1, k - 1 - i)
        for i in range(k - 1):
            s[:, i] = left * (1.0 - (1.0 - v[:, i]) ** (1.0 / (k - 1 - i)))
            left = left - s[:, i]
        s[:, -1] = left
        return np.clip(s, 0.0, None)

    grid = np.linspace(0.0, 1.0, GRID)
    cdfs = _suffix_cdfs(grid, caps)  # cdfs[i] = CDF of U_i + ... + U_{k-1} on the grid
    tail_cap = np.concatenate([np.cumsum(caps[::-1])[::-1][1:], [0.0]])  # sum of caps after i
    for i in range(k - 1):
        F = cdfs[i + 1]
        f_t = np.interp(left, grid, F)
        f_lo = np.interp(left - caps[i], grid, F, left=0.0)
        target = f_t - v[:, i] * (f_t - f_lo)
        a = left - _inverse(target, grid, F)
        a = np.clip(a, np.maximum(0.0, left - tail_cap[i]), np.minimum(caps[i], left))
        s[:, i] = a
        left = left - a
    s[:, -1] = np.clip(left, 0.0, caps[-1])
    return s


def _suffix_cdfs(grid: np.ndarray, caps: np.ndarray) -> list[np.ndarray]:
    """CDFs on `grid` of the sums U_i + ... + U_{k-1}, U_j ~ Uniform[0, caps[j]], for every i."""
    k = len(caps)
    dt = grid[1] - grid[0]
    cdfs = [None] * (k + 1)
    cdfs[k] = np.ones_like(grid)  # the empty sum is 0: CDF 1 on t >= 0
    for j in range(k - 1, -1, -1):
        F = cdfs[j + 1]
        phi = np.concatenate([[0.0], np.cumsum(0.5 * (F[1:] + F[:-1]) * dt)])
        shifted = np.interp(grid - caps[j], grid, phi, left=0.0)
        cdfs[j] = np.clip((phi - shifted) / caps[j], 0.0, 1.0)
    return cdfs


def _inverse(y: np.ndarray, grid: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Generalised inverse of a non-decreasing grid CDF F: smallest t with F(t) >= y."""
    idx = np.clip(np.searchsorted(F, y, side="left"), 1, len(F) - 1)
    f0, f1 = F[idx - 1], F[idx]
    w = np.where(f1 > f0, (y - f0) / np.where(f1 > f0, f1 - f0, 1.0), 1.0)
    return grid[idx - 1] + np.clip(w, 0.0, 1.0) * (grid[idx] - grid[idx - 1])
