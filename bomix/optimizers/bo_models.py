"""What bo's GPs model, and how samples of it become the objective: outputs, low rank, law mean.

bo never asks a GP for the objective directly unless told to ("scalar"). It models the losses the
objective reads, in log space (losses blow up as a weight -> 0), and maps posterior samples of them
to the objective through an MC objective. This module holds the two ways to keep that cheap and
the one way to make it smarter:

    per_domain   one GP per loss the objective reads (batched independent GPs)
    lowrank      the losses' standardised log values projected on their leading principal
                 components (enough for LOWRANK_VARIANCE of the variance, at most LOWRANK_MAX):
                 p GPs instead of m, so 110 task metrics cost about as much as 8
    scalar       one GP on the objective value
    auto         per_domain for up to AUTO_MAX_OUTPUTS losses, else lowrank if its components keep
                 the objective (the objective of the outputs rebuilt from them explains at least
                 LOWRANK_MIN_R2 of the objective's variance over the history), else per_domain up
                 to AUTO_MAX_PER_DOMAIN losses and scalar beyond (the documented rule, decided at
                 each fit; experiments/README.md "Which model auto picks" measures it). Losses of a
                 real model move together and a few components keep their objective (R^2 0.991-0.999
                 on the RegMix and olmix runs); losses that move independently (the mixing_law
                 landscape's) do not (R^2 0.19 at worst, median 0.77), and there low rank modelled noise.

    prior mean "law"   a data mixing law per loss, L_j(r) = c_j + k_j exp(t_j . r) (Ye et al.'s
                 explicit law; olmix's log-linear exp(c) + exp(t . r) is the same family), fitted
                 to the history by relative least squares; the GPs model the log losses minus the
                 law's, and the law is added back before the objective. Where the law is right bo
                 is as good as the law; where it is wrong the GP corrects it.

And what the kernel sees of a mixture (`inputs`):

    auto         (default) sqrt from AUTO_SQRT_MIN_K domains up, raw below: the measured rule
                 (experiments/README.md, "Many domains: what the kernel sees")
    raw          the weights themselves
    sqrt         sqrt(r + SQRT_EPS): the Hellinger embedding of the simplex on the sphere, which
                 stretches the small weights of sparse many-domain mixtures
    log          log(r + LOG_EPS), scaled into [0, 1]: how many times larger a weight is, so a
                 domain left out (r = 0) and one at 1% are as far apart as 1% and 100%; the
                 power laws of loss in a domain's weight (BiMix) are about log r
    warp         BoTorch's Warp: a learned Kumaraswamy CDF per weight (Snoek et al.'s input
                 warping), fitted with the GP

Everything is a pure function of the history: the law's fit starts from a deterministic point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bomix.errors import ConfigError

AUTO_MAX_OUTPUTS = 8     # auto: per-loss GPs up to this many losses, a low-rank model beyond
LOWRANK_VARIANCE = 0.99  # lowrank keeps the fewest components that explain this share of variance
LOWRANK_MAX = 8          # ... but never more than this many GPs
LOWRANK_MIN_R2 = 0.99    # auto: lowrank only if its rebuilt outputs keep this share of the objective's variance
AUTO_MAX_PER_DOMAIN = 16  # auto, when lowrank does not keep the objective: per-loss GPs up to here, else scalar
LAW_MAXITER = 200        # L-BFGS iterations of the law's fit (all losses at once)
INPUTS = ("auto", "raw", "sqrt", "log", "warp")
KERNELS = ("rbf", "additive")
AUTO_SQRT_MIN_K = 11     # auto inputs: sqrt at k >= 11. Measured better or equal at k = 17-24 (four pools);
                         # raw at k = 5 and 10, where the landscapes were measured with raw inputs
SQRT_EPS = 1e-4          # sqrt(r + eps): finite gradients at r = 0, where sparse mixtures sit
LOG_EPS = 1e-3           # log(r + eps): a weight of 0 sits log(10) below one of 1e-3 (a 0.1% share)


def resolve(model: str, m: int) -> str:
    """The model kind `auto` stands for with m modelled losses (other kinds unchanged)."""
    if model != "auto":
        return model
    return "per_domain" if m <= AUTO_MAX_OUTPUTS else "lowrank"


def choose_lowrank(model: str, outputs: np.ndarray, objective_of) -> tuple[str, LowRank | None]:
    """For a "lowrank" (or auto-resolved lowrank) fit of (n, m) `outputs`: ("lowrank", its LowRank),
    or, under auto, another kind when the components lose the objective. objective_of maps (n, m)
    outputs to (n,) objective values."""
    lowrank = LowRank.fit(outputs)
    if model != "auto" or lowrank.objective_r2(outputs, objective_of) >= LOWRANK_MIN_R2:
        return "lowrank", lowrank
    return ("per_domain" if outputs.shape[1] <= AUTO_MAX_PER_DOMAIN else "scalar"), None


def resolve_inputs(inputs: str, k: int) -> str:
    """The inputs kind `auto` stands for over k domains (other kinds unchanged)."""
    if inputs != "auto":
        return inputs
    return "sqrt" if k >= AUTO_SQRT_MIN_K else "raw"


def input_transform(inputs: str, k: int, *, trailing: int = 0, unit: bool = False):
    """The BoTorch input transform for `inputs` over k weights (None for "raw"). A warp is shared
    by every output of a multi-output GP (fit it with `joint_fit_closure`). `trailing` columns after
    the weights (a multi-task GP's task index) pass unchanged (sqrt only). `unit`: sqrt is scaled
    into [0, 1] (the additive kernel integrates over the unit interval)."""
    inputs = resolve_inputs(inputs, k)
    if inputs == "raw":
        return None
    if trailing and inputs not in ("sqrt", "log"):
        raise ConfigError(f"inputs with trailing columns must be 'raw', 'sqrt' or 'log', got {inputs!r}")
    if inputs == "warp":
        import torch
        from botorch.models.transforms.input import Warp

        return Warp(d=k, indices=list(range(k)), bounds=torch.stack([torch.zeros(k), torch.ones(k)]).double())
    if inputs == "log":
        return _log_transform(k if trailing else None)
    return _sqrt_transform(k if trailing else None, unit=unit)


def covar_module(kernel: str, k: int, m: int):
    """The kernel of a SingleTaskGP over k weights with m outputs: None (BoTorch's default, RBF-ARD
    with the dimension-scaled lengthscale prior) for "rbf"; for "additive" BoTorch's first-order
    OrthogonalAdditiveKernel, a constant plus one RBF term per weight, each with its own
    lengthscale and a learned non-negative coefficient (Lu et al., 2022). Its hyperparameters are
    shared by the m outputs (fit them with `joint_fit_closure`): batched per output, BoTorch 0.18's
    kernel gave covariance matrices with eigenvalues down to -1 at its initial values."""
    if kernel == "rbf":  # BayesOpt checked the name
        return None
    import torch
    from botorch.models.kernels.orthogonal_additive_kernel import OrthogonalAdditiveKernel

    return OrthogonalAdditiveKernel(dim=k, second_order=False, dtype=torch.double)


def joint_fit_closure(mll):
    """A loss closure over all of mll's parameters at once. BoTorch fits a multi-output GP's
    outputs one by one, which needs every parameter batched per output; a shared warp is not."""
    from botorch.optim.closures import get_loss_closure_with_grads

    return get_loss_closure_with_grads(mll, parameters={n: p for n, p in mll.named_parameters() if p.requires_grad})


def _sqrt_transform(k: int | None = None, unit: bool = False):
    from botorch.models.transforms.input import InputTransform
    from torch.nn import Module

    class Sqrt(InputTransform, Module):
        """r -> sqrt(r + SQRT_EPS), on training and test inputs alike; with k, only the first k
        columns (the rest, e.g. a task index, pass unchanged); with unit, divided by
        sqrt(1 + SQRT_EPS) so that it stays in [0, 1]."""

        def __init__(self):
            super().__init__()
            self.transform_on_train = self.transform_on_eval = self.transform_on_fantasize = True

        def transform(self, X):
            W = X if k is None else X[..., :k]
            W = ((W.clamp(0, 1) if unit else W.clamp_min(0)) + SQRT_EPS).sqrt()
            if unit:
                W = W / (1 + SQRT_EPS) ** 0.5
            if k is None:
                return W
            import torch

            return torch.cat([W, X[..., k:]], dim=-1)

    return Sqrt()


def _log_transform(k: int | None = None):
    from botorch.models.transforms.input import InputTransform
    from torch.nn import Module

    low, span = float(np.log(LOG_EPS)), float(np.log1p(LOG_EPS) - np.log(LOG_EPS))

    class Log(InputTransform, Module):
        """r -> (log(r + LOG_EPS) - log(LOG_EPS)) / (log(1 + LOG_EPS) - log(LOG_EPS)), in [0, 1] for r
        in [0, 1], on training and test inputs alike; with k, only the first k columns (the rest,
        e.g. a task index, pass unchanged)."""

        def __init__(self):
            super().__init__()
            self.transform_on_train = self.transform_on_eval = self.transform_on_fantasize = True

        def transform(self, X):
            W = X if k is None else X[..., :k]
            W = ((W.clamp(0, 1) + LOG_EPS).log() - low) / span
            if k is None:
                return W
            import torch

            return torch.cat([W, X[..., k:]], dim=-1)

    return Log()


@dataclass(frozen=True)
class Law:
    """A fitted mixing law per loss: L_j(r) = c_j + k_j exp(t_j . r), with c_j, k_j >= 0."""

    c: np.ndarray  # (m,)
    k: np.ndarray  # (m,)
    T: np.ndarray  # (m, k)

    def log_losses(self, X):
        """(..., m) predicted log losses at (..., k) mixtures; torch in, torch out (numpy too)."""
        import torch

        if isinstance(X, np.ndarray):
            return self.log_losses(torch.as_tensor(X, dtype=torch.double)).numpy()
        c, k, T = (torch.as_tensor(v, dtype=X.dtype) for v in (self.c, self.k, self.T))
        return torch.log(c + k * torch.exp(X @ T.T))


def _amplitudes(E, Y, W):
    """Per loss, the (c, k) >= 0 minimising sum_n W (c + k E - Y)^2 for fixed exponentials E (n, m):
    the two-variable linear least squares in closed form, then the bound each violates, if any."""
    import torch

    s0, s1, s2 = W.sum(0), (W * E).sum(0), (W * E * E).sum(0)
    y0, y1 = (W * Y).sum(0), (W * E * Y).sum(0)
    det = torch.clamp(s0 * s2 - s1 * s1, min=1e-300)
    c, k = (s2 * y0 - s1 * y1) / det, (s0 * y1 - s1 * y0) / det
    only_k, only_c = torch.clamp(y1 / s2, min=0.0), torch.clamp(y0 / s0, min=0.0)
    c, k = torch.where(c < 0, 0.0, c), torch.where(c < 0, only_k, k)
    c, k = torch.where(k < 0, only_c, c), torch.where(k < 0, 0.0, k)
    return torch.where(c + k > 0, c, y0 / s0), k


def _unusable(X, T, c, k):
    """(m,) True for each loss whose law has a non-finite parameter or a non-positive or
    non-finite prediction at the trials X."""
    import torch

    pred = c + k * torch.exp(X @ T.T)
    return ~(torch.isfinite(T).all(1) & torch.isfinite(c) & torch.isfinite(k) & torch.isfinite(pred).all(0)
             & (pred > 0).all(0))


def fit_law(X: np.ndarray, logL: np.ndarray) -> Law:
    """Fit the law to (n, k) mixtures and their (n, m) log losses, every loss at once.

    Variable projection: for fixed transfers T the law is linear in (c, k), solved exactly with
    c, k >= 0 (`_amplitudes`), so L-BFGS searches T alone. The error is relative (L - L_hat) / L,
    about the error in log L. T starts from the linearised law, the regression of
    log(L - 0.9 min L) on r; starting from T = 0 cannot work, since exp(t . r) is constant on the
    simplex when t is. Deterministic: a pure function of (X, logL)."""
    import torch

    Xt = torch.as_tensor(X, dtype=torch.double)
    Y = torch.as_tensor(logL, dtype=torch.double).exp()
    k = Xt.shape[1]
    W = Y ** -2.0
    Z = torch.log(torch.clamp(Y - 0.9 * Y.min(0).values, min=1e-9))
    Xc, Zc = Xt - Xt.mean(0), Z - Z.mean(0)
    start = torch.linalg.solve(Xc.T @ Xc + 1e-3 * torch.eye(k, dtype=torch.double), Xc.T @ Zc).T
    T = start.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([T], max_iter=LAW_MAXITER, line_search_fn="strong_wolfe", tolerance_grad=1e-10,
                            tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        E = torch.exp(Xt @ T.T)
        c, kk = _amplitudes(E, Y, W)
        total = (W * (c + kk * E - Y) ** 2).mean(0).sum()
        total.backward()
        return total

    try:
        opt.step(closure)
    except RuntimeError:  # a diverged search keeps the linearised start
        pass
    with torch.no_grad():
        T = T.detach().clone()
        # A loss whose search diverged (non-finite parameters or predictions) keeps its linearised
        # start, and if that too is unusable gets the flat law (its weighted mean): the GP then
        # models it alone, as with a constant prior mean.
        for fallback in (start, torch.zeros_like(T)):
            c, kk = _amplitudes(torch.exp(Xt @ T.T), Y, W)
            bad = _unusable(Xt, T, c, kk)
            if not bad.any():
                break
            T[bad] = fallback[bad]
        c, kk = _amplitudes(torch.exp(Xt @ T.T), Y, W)
        bad = _unusable(Xt, T, c, kk)
        c, kk = torch.where(bad, (W * Y).sum(0) / W.sum(0), c), torch.where(bad, 0.0, kk)
    return Law(c.numpy().copy(), kk.numpy().copy(), T.numpy().copy())


@dataclass(frozen=True)
class LowRank:
    """Standardised outputs projected on their leading principal components."""

    mean: np.ndarray   # (m,)
    scale: np.ndarray  # (m,)
    basis: np.ndarray  # (p, m), orthonormal rows

    @classmethod
    def fit(cls, Y: np.ndarray) -> LowRank:
        mean = Y.mean(0)
        scale = Y.std(0)
        scale = np.where(scale > 1e-12, scale, 1.0)
        Z = (Y - mean) / scale
        _, s, Vt = np.linalg.svd(Z, full_matrices=False)
        share = np.cumsum(s ** 2) / max(float((s ** 2).sum()), 1e-300)
        p = int(min(LOWRANK_MAX, np.searchsorted(share, LOWRANK_VARIANCE) + 1, len(s)))
        return cls(mean, scale, Vt[:p])

    def objective_r2(self, Y: np.ndarray, objective_of) -> float:
        """The share of the objective's variance over (n, m) outputs Y kept when Y is rebuilt from
        the components: 1 - SS(objective(Y) - objective(rebuilt)) / SS(objective(Y) - mean)."""
        import torch

        y = np.asarray(objective_of(Y), dtype=float)
        rebuilt = np.asarray(objective_of(self.decode(torch.as_tensor(self.encode(Y), dtype=torch.double)).numpy()),
                             dtype=float)
        total = float(((y - y.mean()) ** 2).sum())
        return 1.0 if total <= 1e-300 else 1.0 - float(((y - rebuilt) ** 2).sum()) / total

    def encode(self, Y: np.ndarray) -> np.ndarray:
        """(n, m) -> (n, p) component scores."""
        return ((Y - self.mean) / self.scale) @ self.basis.T

    def decode(self, S):
        """(..., p) torch scores -> (..., m) outputs."""
        import torch

        basis, mean, scale = (torch.as_tensor(v, dtype=S.dtype) for v in (self.basis, self.mean, self.scale))
        return mean + (S @ basis) * scale
