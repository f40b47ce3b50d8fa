"""Bayesian optimisation over the mixture simplex: BoTorch GPs and qLogNoisyExpectedImprovement.

All k weights are model inputs; the simplex is the equality constraint sum(r) = 1 handed to
BoTorch's optimize_acqf, and floors/caps are plain bounds, so no domain is an implied "last" one.

    initial design   the space's center (uniform, or the closest feasible point; center=False
                     leaves it out), the space's prior when it has one, then scrambled Sobol
                     points on the capped simplex (MixtureSpace.sample), n_init in all (default
                     min(max(6, k + 2), 10), at most a quarter of the campaign's budget)
    model            "auto" (default): "per_domain" up to 8 losses, else "lowrank" while its
                     components keep the objective (R^2 >= 0.99 over the history), else
                     "per_domain" up to 16 losses and "scalar" beyond;
                     "per_domain": one GP per validation loss the objective reads (log losses,
                     batched independent GPs), composed into the study's objective (mean /
                     weighted / families / worst / target) through an MC objective;
                     "lowrank": GPs on the leading principal components of those log losses;
                     "scalar": one GP on the objective value (bomix.optimizers.bo_models)
    prior mean       "constant" (default) or "law": a fitted data mixing law per loss, the GPs
                     modelling its residual
    GP               BoTorch's SingleTaskGP defaults: RBF-ARD kernel with the dimension-scaled
                     lengthscale prior, learned homoskedastic noise, standardised outcomes;
                     `inputs` "sqrt" or "warp" changes what the kernel sees (bo_models);
                     `kernel="additive"`: BoTorch's OrthogonalAdditiveKernel instead (first order:
                     a sum of one-weight RBF terms, each with its lengthscale and coefficient)
    fit              L-BFGS on the marginal likelihood: 50 iterations up to 8 domains, 100 beyond
                     and for the additive kernel or the warp at any k (FIT_MAXITER)
    acquisition      qLogNoisyExpectedImprovement; RUNNING trials are pending points, and so are
                     FAILED ones, so a mixture that failed is not proposed again and again
    batches          n > 1: greedy sequential q=1 optimisations, each seeing the earlier picks
                     as pending
    optimisation     SLSQP from the best of `raw_samples` Sobol mixtures (no hit-and-run sampler):
                     2 of them up to 8 domains, 4 beyond (RESTARTS)
    scoring          `score(history, X)`: the acquisition value of each candidate, pending
                     trials included; a pool search (bomix.optimizers.pool) ranks logged runs by it

`suggest` is a pure function of (constructor arguments, history, n): torch's RNG, the QMC
sampler and the start points are all seeded from `seed` and the history's length, and torch runs
on `n_threads` threads while it works (1 by default: fast and reproducible on a busy host).
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np

from bomix.errors import ConfigError
from bomix.optimizers import bo_models
from bomix.optimizers.base import History, Optimizer, Proposal, Recommendation

log = logging.getLogger("bomix")

MODELS = ("auto", "per_domain", "lowrank", "scalar")
PRIOR_MEANS = ("constant", "law")
SCORE_BATCH = 256  # candidates scored per acquisition call
INIT_MAX = 10     # the initial design stops growing with k here: a GP learns from 10 points at k = 64
INIT_SHARE = 0.25  # ... and takes at most this share of the campaign's budget (a quarter, not the
                   # DESIGN_SHARE half the harness allows), so bo models most of its trials
RESTARTS = ((8, 2), (None, 4))  # (up to k domains, SLSQP restarts): at k = 5 two restarts deploy what four
                                # did (seedlike, 50 seeds paired: -0.0003, p = 0.47; experiments/README.md)
                                # in 0.6x the campaign's time; larger k keeps the four it was measured with
FIT_MAXITER = ((8, 50), (None, 100))  # (up to k domains, L-BFGS iterations of the GP fit): 100 is where
                   # the marginal likelihood has converged at k = 5, n = 64 (the value it has with no
                   # limit) in half the time; at k = 5, 50 deploy what 100 did (seedlike, 50 seeds paired:
                   # +0.0003, p = 0.9; experiments/README.md) with half the fit's time; larger k, with
                   # more hyperparameters to fit, keeps the 100 it was measured with


@contextlib.contextmanager
def _torch_threads(n: int):
    """Run torch on n threads (restored afterwards), with BoTorch's numerical warnings silenced."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.set_num_threads(before)


def _box_and_simplex(space):
    """optimize_acqf's bounds (floors, caps) and the equality constraint sum(r) = 1."""
    import torch

    bounds = torch.as_tensor(np.vstack([space.floors, space.caps]), dtype=torch.double)
    return bounds, [(torch.arange(space.k), torch.ones(space.k, dtype=torch.double), 1.0)]


class BayesOpt(Optimizer):
    """GP-based Bayesian optimisation of the mixture (see the module docstring).

    seed: seeds the initial design and every random choice of the acquisition step.
    n_init: size of the initial design (center, prior, Sobol); None: min(max(6, k + 2), INIT_MAX)
        and at most INIT_SHARE (1/4) of the campaign's budget (History.budget).
    center: start the design at the space's center; False: Sobol points only.
    model: what the GPs model: "auto" (default), "per_domain", "lowrank" or "scalar" (see
        bomix.optimizers.bo_models: auto = one GP per loss up to 8 losses, else low rank where
        it keeps the objective, else one GP per loss up to 16 losses or one on the objective).
    prior_mean: "constant" (BoTorch's default) or "law": the GPs model what a fitted data mixing
        law leaves (bo_models.fit_law).
    inputs: what the kernel sees of a mixture: "auto" (default: sqrt from 11 domains up, else raw),
        "raw", "sqrt", "log" or "warp" (bo_models).
    kernel: "rbf" (default: BoTorch's RBF-ARD over all weights at once) or "additive" (BoTorch's
        first-order OrthogonalAdditiveKernel: the modelled output is a sum of one-weight terms, the
        form of BiMix's per-domain laws; bo_models.covar_module).
    log_losses: model log(loss) per loss (not "scalar"): losses blow up as a weight -> 0.
    num_restarts: SLSQP restarts of each acquisition optimisation; None: RESTARTS (2 up to 8
        domains, 4 beyond).
    raw_samples, mc_samples: acquisition start points scored, and MC samples.
    fit_maxiter: L-BFGS iterations of each GP fit; None: FIT_MAXITER (50 up to 8 domains, 100
        beyond, and 100 for the additive kernel or the warp). Fewer are faster and move the
        proposals (experiments/suggest_levers.py).
    recommend_over: "evaluated" (best posterior mean among evaluated mixtures) or "simplex"
        (best posterior mean anywhere in the space).
    n_threads: torch threads while suggesting.
    """

    name = "bo"

    def __init__(self, *, seed: int = 0, n_init: int | None = None, center: bool = True, model: str = "auto",
                 prior_mean: str = "constant", inputs: str = "auto", kernel: str = "rbf", log_losses: bool = True,
                 num_restarts: int | None = None, raw_samples: int = 256, mc_samples: int = 64,
                 recommend_over: str = "evaluated", n_threads: int = 1, fit_maxiter: int | None = None):
        if model not in MODELS:
            raise ConfigError(f"bo model must be one of {list(MODELS)}, got {model!r}")
        if prior_mean not in PRIOR_MEANS:
            raise ConfigError(f"bo prior_mean must be one of {list(PRIOR_MEANS)}, got {prior_mean!r}")
        if inputs not in bo_models.INPUTS:
            raise ConfigError(f"bo inputs must be one of {list(bo_models.INPUTS)}, got {inputs!r}")
        if kernel not in bo_models.KERNELS:
            raise ConfigError(f"bo kernel must be one of {list(bo_models.KERNELS)}, got {kernel!r}")
        if recommend_over not in ("evaluated", "simplex"):
            raise ConfigError(f"bo recommend_over must be 'evaluated' or 'simplex', got {recommend_over!r}")
        if not isinstance(center, bool):
            raise ConfigError(f"bo center must be true or false, got {center!r}")
        if n_init is not None and (not isinstance(n_init, int) or n_init < 1):
            raise ConfigError(f"bo n_init must be an integer >= 1 or None, got {n_init!r}")
        if num_restarts is not None and (not isinstance(num_restarts, int) or num_restarts < 1):
            raise ConfigError(f"bo num_restarts must be an integer >= 1 or None, got {num_restarts!r}")
        if fit_maxiter is not None and (not isinstance(fit_maxiter, int) or fit_maxiter < 1):
            raise ConfigError(f"bo fit_maxiter must be an integer >= 1 or None, got {fit_maxiter!r}")
        for what, v in (("raw_samples", raw_samples), ("mc_samples", mc_samples), ("n_threads", n_threads)):
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"bo {what} must be an integer >= 1, got {v!r}")
        self.seed = seed
        self.n_init = n_init
        self.center = center
        self.model = model
        self.prior_mean = prior_mean
        self.inputs = inputs
        self.kernel = kernel
        self.log_losses = log_losses
        self.num_restarts = num_restarts
        self.raw_samples = raw_samples
        self.mc_samples = mc_samples
        self.recommend_over = recommend_over
        self.n_threads = n_threads
        self.fit_maxiter = fit_maxiter
        self._fitted: tuple | None = None  # (what the fit read, (model, objective)): the last fit, reused

    # -- suggestions --------------------------------------------------------------------------
    def init_size(self, k: int, budget: int | None = None) -> int:
        """The initial design's size for k domains and a campaign of `budget` trials (None: unknown)."""
        if self.n_init is not None:
            return self.n_init
        size = min(max(6, k + 2), INIT_MAX)
        return size if budget is None else min(size, max(2, int(budget * INIT_SHARE)))

    def initial_design(self, space, size: int) -> np.ndarray:
        """(size, k): the space's center (unless center=False), its prior (natural token shares,
        when the space has one), then scrambled Sobol points (a pure function of seed)."""
        anchors = [space.center] if self.center else []
        if space.prior is not None:
            prior = space.project(space.prior)
            if not anchors or np.abs(prior - anchors[0]).max() > 1e-6:
                anchors.append(prior)
        rest = space.sample(max(size - len(anchors), 0), method="sobol", seed=self.seed)
        return np.vstack([*(a[None] for a in anchors), rest])[:size]

    def suggest(self, history: History, n: int = 1) -> list[Proposal]:
        space = history.space
        # Every trial in the history (imported and enqueued ones too) counts towards the initial
        # design; the design's own points are taken in order, so a resumed study continues it.
        remaining = self._design_left(history)
        done_init = history.count("bo/init")
        design = self.initial_design(space, done_init + min(n, remaining))
        proposals = [Proposal(x, "bo/init", design=True) for x in design[done_init:]]
        need = n - len(proposals)
        if need and len(history.completed) < 2:  # nothing to model yet: keep exploring
            extra = space.sample(need, method="sobol", seed=self.seed + 1, skip=history.count("bo/explore"))
            proposals += [Proposal(x, "bo/explore", design=True) for x in extra]
            need = 0
        if need:
            pending = [p.weights for p in proposals]
            with _torch_threads(self.n_threads):
                proposals += self._acquire(history, need, pending)
        return proposals

    def fit_iterations(self, k: int) -> int:
        """L-BFGS iterations of each GP fit at k domains. The additive kernel and the warp have more
        hyperparameters than the RBF kernel the fewer iterations were measured with: they keep the most."""
        if self.fit_maxiter is not None:
            return self.fit_maxiter
        if self.kernel != "rbf" or self.inputs == "warp":
            return FIT_MAXITER[-1][1]
        return next(n for limit, n in FIT_MAXITER if limit is None or k <= limit)

    def restarts(self, k: int) -> int:
        """SLSQP restarts of each acquisition optimisation at k domains."""
        if self.num_restarts is not None:
            return self.num_restarts
        return next(n for limit, n in RESTARTS if limit is None or k <= limit)

    def _design_left(self, history: History) -> int:
        return max(0, self.init_size(history.space.k, history.budget) - len(history.trials))

    def score(self, history: History, X: np.ndarray) -> np.ndarray | None:
        """(p,) log expected improvement of each (p, k) candidate given the history (RUNNING and
        FAILED trials pending); None during the initial design or with fewer than 2 completed."""
        import torch

        if self._design_left(history) or len(history.completed) < 2:
            return None
        with _torch_threads(self.n_threads):
            torch.manual_seed(self._step_seed(history))
            model, objective = self._fit(history)
            X_base = torch.as_tensor(history.X(), dtype=torch.double)
            acqf = self._acquisition(model, objective, X_base, [t.x for t in history.pending + history.failed],
                                     history, 0)
            C = torch.as_tensor(np.atleast_2d(X), dtype=torch.double).unsqueeze(1)
            with torch.no_grad():
                return torch.cat([acqf(C[i:i + SCORE_BATCH]) for i in range(0, len(C), SCORE_BATCH)]).numpy()

    def _acquire(self, history: History, n: int, pending_extra: list) -> list[Proposal]:
        import torch
        from botorch.optim import optimize_acqf
        from botorch.optim.initializers import initialize_q_batch

        space = history.space
        torch.manual_seed(self._step_seed(history))
        model, objective = self._fit(history)
        X_base = torch.as_tensor(history.X(), dtype=torch.double)
        blocked = [t.x for t in history.pending + history.failed] + list(pending_extra)
        bounds, eq = _box_and_simplex(space)
        chosen: list[Proposal] = []
        for j in range(n):
            X_pending = [*blocked, *[p.weights for p in chosen]]
            acqf = self._acquisition(model, objective, X_base, X_pending, history, j)
            raw = torch.as_tensor(space.sample(self.raw_samples, method="sobol", seed=self._step_seed(history) + j),
                                  dtype=torch.double).unsqueeze(1)
            with torch.no_grad():
                values = acqf(raw)
            ics, _ = initialize_q_batch(raw, values, n=min(self.restarts(space.k), self.raw_samples))
            try:
                x, value = optimize_acqf(acqf, bounds=bounds, q=1, num_restarts=len(ics), batch_initial_conditions=ics,
                                         equality_constraints=eq, options={"maxiter": 200, "batch_limit": 1})
                x = space.project(x.detach().numpy().reshape(-1))
            except Exception as e:  # a failed optimisation must not stop a campaign: use the best raw point
                log.warning("bo: acquisition optimisation failed (%s); using the best start point", e)
                x = space.project(raw[int(values.argmax())].numpy().reshape(-1))
            if any(np.abs(x - np.asarray(p)).max() < 1e-6 for p in X_pending):
                x = space.sample(1, method="sobol", seed=self._step_seed(history) + 1000 + j)[0]
                chosen.append(Proposal(x, "bo/dedup", design=True))
            else:
                chosen.append(Proposal(x, "bo/gp", {"log_ei": float(value)}))
        return chosen

    def _step_seed(self, history: History) -> int:
        return (self.seed * 7919 + len(history.trials)) % 2**31

    # -- the model ----------------------------------------------------------------------------
    def _fit(self, history: History):
        """Fit the GP(s); return (model, MC objective or None). See bomix.optimizers.bo_models for
        what is modelled (per loss, low rank, scalar) and the law prior mean. The fit is a pure
        function of the completed trials and the objective, so the last one is kept and reused
        when they are unchanged (recommend, then which_wins, on one study fit once)."""
        key = _fit_key(history)
        if self._fitted is not None and self._fitted[0] == key:
            return self._fitted[1]
        fitted = self._fit_new(history)
        self._fitted = (key, fitted)
        return fitted

    def _fit_new(self, history: History):
        import torch
        from botorch.acquisition.objective import GenericMCObjective
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from gpytorch.mlls import ExactMarginalLogLikelihood

        done = history.completed
        X = history.X()
        names = history.objective.required(done[0].losses)
        kind = bo_models.resolve(self.model, len(names))
        L = np.array([[t.losses[name] for name in names] for t in done], dtype=float)
        Y = np.log(L) if self.log_losses else L  # the modelled outputs
        law = bo_models.fit_law(X, np.log(L)) if self.prior_mean == "law" else None
        compose = _composer(history.objective, names, self.log_losses)

        def law_outputs(Xq):  # the law's prediction of the modelled outputs at Xq (torch)
            logl = law.log_losses(Xq)
            return logl if self.log_losses else logl.exp()

        law_Y = None if law is None else law_outputs(torch.as_tensor(X, dtype=torch.double)).numpy()
        lowrank = None
        if kind == "lowrank":  # auto: only if its components keep the objective (else another kind)
            outputs = Y if law is None else Y - law_Y
            kind, lowrank = bo_models.choose_lowrank(
                self.model, outputs, lambda O: compose(torch.as_tensor(O if law is None else O + law_Y)).numpy())
        if kind == "scalar":  # one GP on -objective, less the law's -objective
            target = -history.y()[:, None]
            if law is not None:
                target = target + compose(torch.as_tensor(law_Y)).numpy()[:, None]
        else:
            target = Y if law is None else Y - law_Y
            if lowrank is not None:
                target = lowrank.encode(target)
        Xt = torch.as_tensor(X, dtype=torch.double)
        Yt = torch.as_tensor(target, dtype=torch.double)
        Yt = Yt + 1e-9 * torch.arange(len(Yt), dtype=torch.double).unsqueeze(-1)  # constant data: keep std > 0
        inputs = bo_models.resolve_inputs(self.inputs, history.space.k)
        transform = bo_models.input_transform(inputs, history.space.k, unit=self.kernel == "additive")
        model = SingleTaskGP(Xt, Yt, input_transform=transform,
                             covar_module=bo_models.covar_module(self.kernel, history.space.k, Yt.shape[-1]))
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        shared = (inputs == "warp" or self.kernel == "additive") and Yt.shape[-1] > 1  # shared parameters
        try:
            fit_gpytorch_mll(mll, closure=bo_models.joint_fit_closure(mll) if shared else None,
                             optimizer_kwargs={"options": {"maxiter": self.fit_iterations(history.space.k)}})
        except Exception as e:  # keep the prior-initialised hyperparameters
            log.warning("bo: GP fit failed (%s); using default hyperparameters", e)
        if kind == "scalar":
            if law is None:
                return model, None
            return model, GenericMCObjective(lambda samples, X: samples[..., 0] - compose(law_outputs(X)))

        def outputs(samples, Xq):  # GP samples -> modelled outputs (log losses) at Xq
            out = lowrank.decode(samples) if lowrank is not None else samples
            return out if law is None else out + law_outputs(Xq)

        return model, GenericMCObjective(lambda samples, X: -compose(outputs(samples, X)))

    def _acquisition(self, model, objective, X_base, X_pending, history: History, j: int):
        import torch
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.sampling import SobolQMCNormalSampler

        sampler = SobolQMCNormalSampler(sample_shape=torch.Size([self.mc_samples]), seed=self._step_seed(history) + j)
        pending = torch.as_tensor(np.array(X_pending), dtype=torch.double) if X_pending else None
        return qLogNoisyExpectedImprovement(model, X_baseline=X_base, sampler=sampler, objective=objective,
                                            X_pending=pending, prune_baseline=True)

    # -- recommendation -----------------------------------------------------------------------
    def predict(self, history: History, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and sd of the objective at (p, k) mixtures X, from a model of `history`."""
        import torch

        with _torch_threads(self.n_threads):
            model, objective = self._fit(history)
            torch.manual_seed(self._step_seed(history))  # after the fit: the draws never depend on a reused fit
            Xt = torch.as_tensor(np.atleast_2d(X), dtype=torch.double)
            with torch.no_grad():
                post = model.posterior(Xt)
                if objective is None:
                    return -post.mean[:, 0].numpy(), post.variance[:, 0].sqrt().numpy()
                samples = post.rsample(torch.Size([512]))  # (S, p, m): marginal draws per point
                values = -objective(samples, Xt)
                return values.mean(0).numpy(), values.std(0).numpy()

    def sample_objective(self, history: History, X: np.ndarray, n_samples: int = 1024) -> np.ndarray:
        """(n_samples, p) draws of the noise-free objective at (p, k) mixtures X from the model's
        joint posterior (lower is better): the draws of two mixtures are correlated as the model
        says, so they answer "how likely is this mixture the best of these?". A pure function of
        the history, X and the seed."""
        import torch

        with _torch_threads(self.n_threads):
            model, objective = self._fit(history)
            torch.manual_seed(self._step_seed(history))
            Xt = torch.as_tensor(np.atleast_2d(X), dtype=torch.double)
            with torch.no_grad():
                samples = model.posterior(Xt).rsample(torch.Size([n_samples]))  # (S, p, m), joint over the p
                values = -samples[..., 0] if objective is None else -objective(samples, Xt)
        return values.numpy()

    def recommend(self, history: History) -> Recommendation | None:
        """Best posterior mean among evaluated mixtures (or over the space), with its sd."""
        done = history.completed
        if len(done) < 2:
            return super().recommend(history)
        X = history.X()
        source = "posterior mean, evaluated"
        if self.recommend_over == "simplex":
            X = np.vstack([X, self._maximise_mean(history)])
            source = "posterior mean, space"
        mean, sd = self.predict(history, X)
        i = int(np.argmin(mean))
        trial = done[i].number if i < len(done) else None
        return Recommendation(history.space.to_mixture(X[i]), float(mean[i]), float(sd[i]), source, trial)

    def _maximise_mean(self, history: History) -> np.ndarray:
        import torch
        from botorch.acquisition import qSimpleRegret
        from botorch.optim import optimize_acqf
        from botorch.sampling import SobolQMCNormalSampler

        space = history.space
        with _torch_threads(self.n_threads):
            torch.manual_seed(self._step_seed(history))
            model, objective = self._fit(history)
            sampler = SobolQMCNormalSampler(sample_shape=torch.Size([256]), seed=self.seed)
            acqf = qSimpleRegret(model, sampler=sampler, objective=objective)
            ics = torch.as_tensor(space.sample(self.restarts(space.k), method="sobol", seed=self.seed),
                                  dtype=torch.double).unsqueeze(1)
            bounds, eq = _box_and_simplex(space)
            x, _ = optimize_acqf(acqf, bounds=bounds, q=1, num_restarts=len(ics), batch_initial_conditions=ics,
                                 equality_constraints=eq)
        return space.project(x.detach().numpy().reshape(-1))


def _fit_key(history: History) -> tuple:
    """What bo's fit reads of a history: the objective and each completed trial's weights and losses."""
    return (repr(history.objective), history.space.domains,
            tuple((tuple(t.x), tuple(sorted(t.losses.items()))) for t in history.completed))


def _composer(objective, names: list[str], log_losses: bool):
    """A torch function mapping (..., m) modelled outputs to the objective's value (..., ): the
    objective's linear weights over the losses (mean, weighted, target, families), or their max."""
    import torch

    weights = objective.linear_weights(names)
    w = None if weights is None else torch.as_tensor(weights, dtype=torch.double)

    def compose(Y):
        L = Y.exp() if log_losses else Y
        return L.max(-1).values if w is None else (L * w.to(L.dtype)).sum(-1)

    return compose
