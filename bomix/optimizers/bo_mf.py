"""Multi-fidelity Bayesian optimisation: which mixture to run at which scale.

For a multi-fidelity study (History.fidelities = {name: relative cost}, one of them the target):

    model          BoTorch's MultiTaskGP over (mixture, fidelity): the fidelity is the task, an
                   ICM kernel (RBF-ARD on the k weights x a learned task covariance) on minus the
                   objective value of every completed trial, whatever its scale; standardised
                   outcomes, learned noise. Its target output is the model of the target scale;
                   what the cheap scale says about it flows through the learned task correlation.
                   The kernel reads the weights as bo does (`inputs`, default sqrt from 11
                   domains up): on the RegMix 1M/60M pool (k = 17, seed 1) raw weights left most
                   of the 1M runs' spread to the noise term, and the target mean ranked the 1M
                   runs unlike their measured values (Spearman 0.91; through sqrt, 0.995).
    initial design `n_init` points at the cheapest scale (the space's center, its prior, Sobol,
                   as bo's design), then `n_target_init` points at the target: the mixtures the
                   first `n_target_init` cheap design trials ran, so the model, and the report's
                   scale-transfer check, see them at both scales. In pool mode those first cheap
                   points take the logged run nearest the design point (not a maximin run), so
                   the target reruns the run nearest the center, the prior, ...
    acquisition    cost-aware, after Huang et al.'s augmented EI (2006): the value of running x
                   at fidelity f is
                       log EI_target(x) + log rho_f(x) + log(cost_target / cost_f)
                   where EI_target is qLogNoisyExpectedImprovement on the target output (pending
                   and failed trials pending) and rho_f(x) the model's posterior correlation
                   between the objective at (x, f) and at (x, target) (1 at the target). The
                   (x, f) with the highest value is run: a cheap run where it is informative
                   about the target is worth its cost ratio, a weakly correlated one is not.
    target share   optionally (`target_share` > 0), at least that share of the compute (the sum of
                   the trials' fidelity costs, pending and failed ones included) is spent at the
                   target: a pick is forced there while less is (a count of trials would not do:
                   with a 60x cost ratio, 1 target run in 5 trials is already 94% of the compute).
                   Default 0 with one target design run: on the RegMix 1M/60M pool at 4 target
                   runs of compute (seeds 0 and 1) the old default (a share of 0.5, two target
                   design runs) left 60M regret 0.128 and 0.050, this one 0.036 and 0.039:
                   cheap runs are where a 60x cost ratio buys information (experiments/README.md,
                   "Scale transfer", has the landscape too).
                   With a compute budget (the campaign's total, in the fidelities' cost units:
                   `compute_budget`, or the study's, from study.optimize(..., compute_budget=C))
                   the last `n_final` affordable picks (1 or 2 by default, see _n_final) go to
                   the target too: once one more cheap run would leave less than their cost, the
                   pick is forced there, so
                   cheap runs are followed by target runs that turn what they taught into
                   measurements; no earlier pick, at any scale, may leave less than their cost;
                   and no pick costs more than the compute left. Each of those last runs
                   exploits: of the mixtures measured at a cheap scale and not yet at the target
                   (nor running there), the one with the best posterior mean at the target (no
                   later run can use what exploring would teach, and a measured mixture is no
                   extrapolation). n_final = 2 measures the model's two best, which helps where
                   its target ranking of the cheap scale's best few is unsure and cheap runs are
                   plentiful, and costs a target run's worth of cheap runs elsewhere
                   (experiments/README.md, "Scale transfer", has both).
    transfer check optionally (`transfer_check=True`), one target run right after the design tests
                   whether the cheap scale's ranking holds: the probe runs, at the target, the
                   mixture measured cheaply with the best posterior mean there (the cheap
                   design's best, through the task correlation). If its target value is no better
                   than the best target design run's, the cheap scale misleads: every later pick
                   is at the target, by bo on the target trials alone (bo's own model), and
                   the recommendation is that model's. Otherwise the search goes on as above.
                   The probe runs only when the whole budget affords it beside the design and
                   the exploiting last runs; otherwise the first exploiting run serves as it.
                   Off by default: on the multiscale landscape, where the optimum drifts with
                   scale, it detects the drift and beats the default at 8 target runs of compute,
                   but on the RegMix 1M/60M pool, where the 1M ranking of good runs holds, the
                   cheap design's best loses to the center at 60M in every seed (a false alarm:
                   the design's runs are far apart), and its regret rises from 0.008 to 0.097.
                   `probe_after` = 0.5 lets half the cheap search run first and probes its best
                   so far, which asks where the ranking matters and leaves less compute to the
                   fallback (both measured in experiments/README.md, "Scale transfer: a
                   transfer check").
    recommend      among the mixtures measured at the target, the one with the best posterior mean
                   there, with that mean and its sd (before any target run: every evaluated
                   mixture, through the task correlation). A cheap-only mixture is never deployed
                   untested. (In pool mode the study's MultiFidelityPoolSearch recommends the
                   best *measured* target run.)

Cost accounting: a study's `n_trials` counts trials, whatever their scale; each evaluator
reports cost["compute"] (its fidelity's relative cost), and experiments/bench_multifidelity.py
compares methods at equal total compute. In a single-fidelity study (History.fidelities None),
bo_mf is bo with a scalar GP (bomix.optimizers.bo.BayesOpt, model="scalar").
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from bomix.errors import ConfigError
from bomix.optimizers.base import History, Optimizer, Proposal, Recommendation
from bomix.optimizers import bo_models
from bomix.optimizers.bo import BayesOpt, _torch_threads
from bomix.optimizers.pool import with_pending
from bomix.optimizers.pool_mf import FidelityScorer
from bomix.trial import TrialState

FIT_MAXITER = 100
AUTO_GUIDED_PER_DIM = 2  # n_final="auto": a second exploiting run needs 2 (k + 2) guided cheap runs left
RHO_MIN = 1e-6  # correlations below this (or negative) count as this: a useless cheap run


class MultiFidelityBO(Optimizer, FidelityScorer):
    """Multi-fidelity BO over (mixture, fidelity) (see the module docstring).

    seed: seeds the design and every random choice. n_init: the cheap design's size (None: bo's
    rule, min(max(6, k + 2), 10) and at most a quarter of the budget). n_target_init: design points
    at the target (>= 1). target_share: the least share of the compute spent at the target, in [0, 1].
    compute_budget: the campaign's total compute in the fidelities' cost units, or None: then the
    study's (study.optimize(..., compute_budget=C) hands it over), else unknown.
    n_final: with a compute budget, how many last target runs exploit (>= 1), or "auto": 2 when
    holding back a second one still leaves the cheap search AUTO_GUIDED_PER_DIM * (k + 2) runs
    after its design, else 1 (see _n_final).
    transfer_check: run one target probe after the design and fall back to bo at the target alone
    when the cheap scale's best does not beat the target design there (see the module docstring).
    probe_after: the share of the cheap search's compute (beside the design, the probe and the last
    runs) spent before the probe, in [0, 1): 0 probes the cheap design's best, 0.5 the best the
    cheap search has found half way.
    inputs: what the kernel sees of the weights, as bo's: "auto" (sqrt(r + 1e-4) from 11 domains
    up, raw below), "raw", "sqrt" or "log"; the task index passes unchanged.
    num_restarts, raw_samples, mc_samples, n_threads: as bo's.
    """

    name = "bo_mf"

    def __init__(self, *, seed: int = 0, n_init: int | None = None, n_target_init: int = 1,
                 target_share: float = 0.0, compute_budget: float | None = None, n_final: int | str = "auto",
                 transfer_check: bool = False, probe_after: float = 0.0, inputs: str = "auto",
                 num_restarts: int = 2, raw_samples: int = 128, mc_samples: int = 64, n_threads: int = 1):
        if n_init is not None and (isinstance(n_init, bool) or not isinstance(n_init, int) or n_init < 1):
            raise ConfigError(f"bo_mf n_init must be an integer >= 1 or None, got {n_init!r}")
        if isinstance(n_target_init, bool) or not isinstance(n_target_init, int) or n_target_init < 1:
            raise ConfigError(f"bo_mf n_target_init must be an integer >= 1, got {n_target_init!r}")
        if isinstance(target_share, bool) or not isinstance(target_share, (int, float)) \
                or not 0 <= target_share <= 1:
            raise ConfigError(f"bo_mf target_share must be a number in [0, 1], got {target_share!r}")
        if compute_budget is not None and (isinstance(compute_budget, bool) or not isinstance(compute_budget, (int, float))
                                           or not math.isfinite(compute_budget) or compute_budget <= 0):
            raise ConfigError(f"bo_mf compute_budget must be a finite number > 0 or None, got {compute_budget!r}")
        if n_final != "auto" and (isinstance(n_final, bool) or not isinstance(n_final, int) or n_final < 1):
            raise ConfigError(f"bo_mf n_final must be an integer >= 1 or 'auto', got {n_final!r}")
        if not isinstance(transfer_check, bool):
            raise ConfigError(f"bo_mf transfer_check must be true or false, got {transfer_check!r}")
        if isinstance(probe_after, bool) or not isinstance(probe_after, (int, float)) or not 0 <= probe_after < 1:
            raise ConfigError(f"bo_mf probe_after must be a number in [0, 1), got {probe_after!r}")
        if inputs not in ("auto", "raw", "sqrt", "log"):
            raise ConfigError(f"bo_mf inputs must be one of ['auto', 'raw', 'sqrt', 'log'], got {inputs!r}")
        for what, v in (("num_restarts", num_restarts), ("raw_samples", raw_samples), ("mc_samples", mc_samples),
                        ("n_threads", n_threads)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"bo_mf {what} must be an integer >= 1, got {v!r}")
        self.seed = seed
        self.n_init = n_init
        self.n_target_init = n_target_init
        self.target_share = target_share
        self.compute_budget = compute_budget
        self.n_final = n_final
        self.transfer_check = transfer_check
        self.probe_after = probe_after
        self.inputs = inputs
        self.num_restarts = num_restarts
        self.raw_samples = raw_samples
        self.mc_samples = mc_samples
        self.n_threads = n_threads

    def _single(self) -> BayesOpt:
        """The single-fidelity method: bo with a scalar GP and these settings."""
        return BayesOpt(seed=self.seed, n_init=self.n_init, model="scalar", inputs=self.inputs,
                        num_restarts=self.num_restarts,
                        raw_samples=self.raw_samples, mc_samples=self.mc_samples, n_threads=self.n_threads)

    def _target_only(self) -> BayesOpt:
        """bo on the target trials alone, once the transfer check failed: its design is the target
        runs already made (n_init=1); bo's own model (one GP per loss the objective reads, `auto`),
        as bo run at the target would have; these settings."""
        return BayesOpt(seed=self.seed, n_init=1, inputs=self.inputs, num_restarts=self.num_restarts,
                        raw_samples=self.raw_samples, mc_samples=self.mc_samples, n_threads=self.n_threads)

    @staticmethod
    def _at_target(history: History) -> History:
        """The target trials (any state) as a single-fidelity history."""
        target = history.target_fidelity
        return dataclasses.replace(history, trials=tuple(t for t in history.trials if history.fidelity_of(t) == target),
                                   fidelities=None, target_fidelity=None, compute_budget=None)

    # -- the transfer check -------------------------------------------------------------------
    def _design_cost(self, history: History) -> float:
        """The compute of the design: the cheap design's runs and the target design's."""
        cheap, target = history.fidelities[self._cheapest(history)], history.fidelities[history.target_fidelity]
        return self._single().init_size(history.space.k, history.budget) * cheap + self.n_target_init * target

    def _guided_beside_probe(self, history: History) -> float | None:
        """The compute the whole budget leaves the cheap search beside the design, the probe and
        the exploiting last runs; None without a compute budget."""
        whole = self._left(dataclasses.replace(history, trials=()))
        if whole is None:
            return None
        target = history.fidelities[history.target_fidelity]
        return whole - self._design_cost(history) - (1 + self._n_final(history)) * target

    def _probes(self, history: History) -> bool:
        """Whether this campaign runs the transfer probe: transfer_check, a compute budget, and the
        whole budget affords the cheap design, the target design, the probe and the exploiting last
        runs (a pure function of the budget, so the probe is never displaced by a later pick)."""
        if not self.transfer_check:
            return False
        guided = self._guided_beside_probe(history)
        return guided is not None and guided >= -1e-9 * history.fidelities[history.target_fidelity]

    def _awaiting_probe(self, history: History) -> bool:
        """True while this campaign's probe has not been picked: the target holds only its design
        runs (the probe is the first target trial after them, whatever proposed it, so a pool
        search, which renames its picks, keeps the count). Until then, picks stay cheap."""
        target = history.target_fidelity
        at_target = sum(history.fidelity_of(t) == target for t in history.trials)
        return self._probes(history) and at_target == self.n_target_init

    def _probe_due(self, history: History) -> bool:
        """True when the next pick is the probe: the design is done, and the cheap search has spent
        `probe_after` of the compute it has beside the design, the probe and the last runs."""
        if not self._awaiting_probe(history):
            return False
        cheap = history.fidelities[self._cheapest(history)]
        return history.compute_spent() - self._design_cost(history) \
            >= self.probe_after * self._guided_beside_probe(history) - 1e-9 * cheap

    def _transfer_failed(self, history: History) -> bool:
        """True once the completed probe's target value is no better than the best target design
        run's: the cheap scale's choice does not hold at the target. The probe is the first target
        trial after the target design (where the budget affords no separate probe, the first
        exploiting last run, chosen by the same rule, serves as it); this needs no compute budget,
        so a finished study's recommendation reads the same check. A probe that FAILED (a crashed
        run) decides nothing: the campaign goes on as without the check."""
        if not self.transfer_check:
            return False
        target = history.target_fidelity
        runs = [t for t in history.trials if history.fidelity_of(t) == target]
        if len(runs) <= self.n_target_init:
            return False
        done = TrialState.COMPLETED
        probe, design = runs[self.n_target_init], [t for t in runs[:self.n_target_init] if t.state is done]
        if probe.state is not done or not design:
            return False
        return history.objective(probe.losses) >= min(history.objective(t.losses) for t in design)

    def transfer_check_failed(self, history: History) -> bool | None:
        """Whether the transfer check found that the cheap scale misleads (None when it is off)."""
        return self._transfer_failed(history) if self.transfer_check and history.fidelities is not None else None

    # -- suggestions --------------------------------------------------------------------------
    def suggest(self, history: History, n: int = 1) -> list[Proposal]:
        if history.fidelities is None:
            return self._single().suggest(history, n)
        picks: list[Proposal] = []
        for _ in range(n):  # greedy: each pick sees the earlier ones as pending trials
            picks.append(self._next(with_pending(history, picks, self.name)))
        return picks

    def _cheapest(self, history: History) -> str:
        return min(history.fidelities, key=lambda f: history.fidelities[f])

    def _design(self, history: History) -> Proposal | None:
        """The next design point, or None once the design is done."""
        bo = self._single()
        size = bo.init_size(history.space.k, history.budget)
        design = bo.initial_design(history.space, max(size, self.n_target_init))
        done = history.count("bo_mf/init")
        if done < size:  # the points the target's design reruns are not space-filling picks: in a pool
            # search they take the run nearest the point (e.g. the prior), not a maximin run
            return Proposal(design[done], "bo_mf/init", design=done >= self.n_target_init,
                            fidelity=self._cheapest(history))
        done_t = history.count("bo_mf/init_target")
        if done_t < self.n_target_init:
            # the mixtures the cheap design ran (in a pool search, the logged runs it picked), so
            # that they are run at both scales
            cheap = [t.x for t in history.trials if t.proposed_by == "bo_mf/init"]
            x = cheap[done_t] if done_t < len(cheap) else design[done_t]
            return Proposal(x, "bo_mf/init_target", fidelity=history.target_fidelity)
        return None

    def _forced(self, history: History) -> bool:
        """True while less than target_share of the compute so far was spent at the target, and
        for the last target run the budget affords (see _final)."""
        target = history.target_fidelity  # every trial there, pending and failed ones included
        at_target = history.fidelities[target] * sum(history.fidelity_of(t) == target for t in history.trials)
        left = self._left(history)
        affordable = left is None or left >= history.fidelities[target] * (1 - 1e-9)
        return (at_target < self.target_share * history.compute_spent() and affordable) or self._final(history)

    def _left(self, history: History) -> float | None:
        """The compute the budget has left after every trial so far (pending and failed ones
        included), in the fidelities' cost units; None without a compute budget."""
        budget = self.compute_budget if self.compute_budget is not None else history.compute_budget
        if budget is None:
            return None
        return budget - history.compute_spent()

    def _reserved(self, history: History) -> int:
        """How many exploiting last target runs the budget still holds back: n_final, or as many as
        the compute left affords (0 without a compute budget). No count of the finals already run
        is needed: each one spends a target run, so the next sees one fewer affordable."""
        left = self._left(history)
        if left is None:
            return 0
        return max(0, min(self._n_final(history), math.floor(left / history.fidelities[history.target_fidelity] + 1e-9)))

    def _n_final(self, history: History) -> int:
        """n_final, or for "auto" a pure function of the budget and the space: 2 when, after the
        design (cheap and target) and two exploiting target runs, the compute still buys the
        cheap search AUTO_GUIDED_PER_DIM * (k + 2) model-guided cheap runs; else 1. A second
        exploiting run measures the model's runner-up at the target, which matters where its
        target ranking of the cheap scale's best few is unsure (RegMix 1M/60M, k = 17: the 1M
        runner-up was ranked first in 4 of 13 seeds); it costs a target run's worth of cheap
        runs, which a small cheap search cannot spare (the multiscale landscape at a cost ratio
        of 10: 3 guided cheap runs would be left, and its regret rose from 0.0056 to 0.0067)."""
        if self.n_final != "auto":
            return self.n_final
        left = self._left(dataclasses.replace(history, trials=()))  # the whole budget
        if left is None:
            return 1
        cheap, target = history.fidelities[self._cheapest(history)], history.fidelities[history.target_fidelity]
        probe = 1 if self.transfer_check else 0
        guided = (left - self._design_cost(history) - (probe + 2) * target) / cheap
        return 2 if guided >= AUTO_GUIDED_PER_DIM * (history.space.k + 2) else 1

    def _final(self, history: History) -> bool:
        """True when the compute left affords the reserved target runs but not a cheap run beside
        them: the campaign's last measurements, which exploit (best posterior mean at the target)."""
        reserved = self._reserved(history)
        if not reserved:
            return False
        cheap, target = history.fidelities[self._cheapest(history)], history.fidelities[history.target_fidelity]
        return self._left(history) < cheap + reserved * target

    def _keeps_final(self, history: History) -> list[str]:
        """The fidelities a pick other than the last target runs may take: those that leave the
        reserved target runs affordable (all of them without a compute budget). A cost-aware pick
        at the target with less than two target runs of compute left would otherwise spend the
        budget the exploiting last run needs (on the RegMix 1M/60M pool, seeds 1 and 2, that
        left 0.35 target runs of compute unspent and no exploit)."""
        reserved, target, left = self._reserved(history), history.fidelities[history.target_fidelity], self._left(history)
        if left is None:
            return list(history.fidelities)
        keep = [f for f, cost in history.fidelities.items() if left - cost >= reserved * target - 1e-9 * cost]
        return keep or list(history.fidelities)  # none affordable: the study stops before running the pick

    def _untested(self, history: History) -> np.ndarray:
        """(p, k) mixtures completed at a cheaper scale and not run (nor running) at the target."""
        target = history.target_fidelity
        ran = np.array([t.x for t in history.trials if history.fidelity_of(t) == target]).reshape(-1, history.space.k)
        out = []
        for t in history.completed:
            if history.fidelity_of(t) != target and not (len(ran) and np.abs(ran - t.x).max(axis=1).min() < 1e-9) \
                    and not any(np.abs(t.x - x).max() < 1e-9 for x in out):
                out.append(t.x)
        return np.array(out).reshape(-1, history.space.k)

    def _next(self, history: History) -> Proposal:
        design = self._design(history)
        if design is not None:
            return design
        if self._transfer_failed(history):  # the cheap scale misleads: bo at the target alone
            pick = self._target_only().suggest(self._at_target(history), 1)[0]
            return Proposal(pick.weights, "bo_mf/target_only", pick.info, design=pick.design,
                            fidelity=history.target_fidelity)
        if len(history.completed) < 2:  # nothing to model yet: explore at the cheapest scale
            x = history.space.sample(1, method="sobol", seed=self.seed + 1, skip=history.count("bo_mf/explore"))[0]
            return Proposal(x, "bo_mf/explore", design=True, fidelity=self._cheapest(history))
        import torch
        from botorch.optim import optimize_acqf
        from botorch.optim.initializers import initialize_q_batch

        space = history.space
        with _torch_threads(self.n_threads):
            acqfs = self._acquisitions(history)
            final = acqfs.get(history.target_fidelity)
            if hasattr(final, "allowed"):  # the last target run: the measured mixture predicted best there
                with torch.no_grad():
                    values = final(final.allowed.unsqueeze(1))
                i = int(values.argmax())
                source = "bo_mf/probe" if self._probe_due(history) else "bo_mf/final"
                return Proposal(final.allowed[i].numpy(), source, {"log_value": float(values[i])},
                                fidelity=history.target_fidelity)
            bounds = torch.as_tensor(np.vstack([space.floors, space.caps]), dtype=torch.double)
            eq = [(torch.arange(space.k), torch.ones(space.k, dtype=torch.double), 1.0)]
            raw = torch.as_tensor(space.sample(self.raw_samples, method="sobol", seed=self._step_seed(history)),
                                  dtype=torch.double).unsqueeze(1)
            best = None
            for fidelity, acqf in acqfs.items():
                with torch.no_grad():
                    values = acqf(raw)
                ics, _ = initialize_q_batch(raw, values, n=min(self.num_restarts, self.raw_samples))
                try:
                    x, value = optimize_acqf(acqf, bounds=bounds, q=1, num_restarts=len(ics),
                                             batch_initial_conditions=ics, equality_constraints=eq,
                                             options={"maxiter": 100, "batch_limit": 1})
                    x, value = space.project(x.detach().numpy().reshape(-1)), float(value)
                except Exception:  # a failed optimisation must not stop a campaign: the best raw point
                    i = int(values.argmax())
                    x, value = space.project(raw[i].numpy().reshape(-1)), float(values[i])
                if best is None or value > best[0]:
                    best = (value, fidelity, x)
        value, fidelity, x = best
        return Proposal(x, "bo_mf/gp", {"log_value": value}, fidelity=fidelity)

    def _step_seed(self, history: History) -> int:
        return (self.seed * 7919 + len(history.trials)) % 2**31

    # -- the model ----------------------------------------------------------------------------
    def _fit(self, history: History):
        """The MultiTaskGP on (mixture, fidelity index) -> -objective, target output; and the
        fidelity order (task i = names[i])."""
        import torch
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import MultiTaskGP
        from gpytorch.mlls import ExactMarginalLogLikelihood

        torch.manual_seed(self._step_seed(history))
        names = list(history.fidelities)
        done = history.completed
        tasks = np.array([names.index(history.fidelity_of(t)) for t in done], dtype=float)[:, None]
        X = torch.as_tensor(np.hstack([history.X(done), tasks]), dtype=torch.double)
        Y = torch.as_tensor(-history.y()[:, None], dtype=torch.double)
        Y = Y + 1e-9 * torch.arange(len(Y), dtype=torch.double).unsqueeze(-1)  # constant data: keep std > 0
        k = history.space.k
        model = MultiTaskGP(X, Y, task_feature=-1, output_tasks=[names.index(history.target_fidelity)],
                            all_tasks=list(range(len(names))), validate_task_values=False,
                            input_transform=bo_models.input_transform(self.inputs, k, trailing=1))
        try:
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model),
                             optimizer_kwargs={"options": {"maxiter": FIT_MAXITER}})
        except Exception:  # keep the prior-initialised hyperparameters
            pass
        return model, names

    def _acquisitions(self, history: History) -> dict:
        """{fidelity: acquisition function of (b, 1, k) mixtures}: the cost-aware value of running
        there (only the target while the target share is not met)."""
        import torch
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.sampling import SobolQMCNormalSampler

        model, names = self._fit(history)
        target, costs = history.target_fidelity, history.fidelities
        if self._final(history) or self._probe_due(history):  # no later run can use what it teaches
            # (or the probe: does the cheap scale's best hold at the target?): run the best predicted
            from botorch.acquisition import PosteriorMean

            untested = self._untested(history)
            return {target: PosteriorMean(model) if not len(untested) else _Exploit(model, untested)}
        blocked = [t.x for t in history.pending + history.failed]
        sampler = SobolQMCNormalSampler(sample_shape=torch.Size([self.mc_samples]), seed=self._step_seed(history))
        base = qLogNoisyExpectedImprovement(
            model, X_baseline=torch.as_tensor(history.X(), dtype=torch.double), sampler=sampler, prune_baseline=True,
            X_pending=torch.as_tensor(np.array(blocked), dtype=torch.double) if blocked else None)
        if self._awaiting_probe(history):  # the probe is the first target run after the design
            chosen = [self._cheapest(history)]
        else:
            chosen = [target] if self._forced(history) else self._keeps_final(history)
        return {f: _CostAware(base, model, names.index(f), names.index(target), math.log(costs[target] / costs[f]))
                for f in chosen}

    # -- what the optimizer knows -------------------------------------------------------------
    def _ready(self, history: History) -> bool:
        return history.fidelities is not None and self._design(history) is None and len(history.completed) >= 2

    def score_fidelities(self, history: History, X: np.ndarray) -> dict[str, np.ndarray] | None:
        """{fidelity: (p,) cost-aware value of running each (p, k) mixture there}; -inf for a scale
        barred while the target share is unmet; None in the design or single-fidelity."""
        import torch

        if not self._ready(history):
            return None
        if self._transfer_failed(history):
            s = self._target_only().score(self._at_target(history), np.atleast_2d(X))
            if s is None:
                return None
            return {f: s if f == history.target_fidelity else np.full(len(s), -np.inf) for f in history.fidelities}
        with _torch_threads(self.n_threads):
            acqfs = self._acquisitions(history)
            C = torch.as_tensor(np.atleast_2d(X), dtype=torch.double).unsqueeze(1)
            with torch.no_grad():
                out = {f: torch.cat([a(C[i:i + 256]) for i in range(0, len(C), 256)]).numpy() for f, a in acqfs.items()}
        return {f: out.get(f, np.full(len(C), -np.inf)) for f in history.fidelities}

    def score(self, history: History, X: np.ndarray) -> np.ndarray | None:
        """Single-fidelity: bo's score. Multi-fidelity: the cost-aware value at the target."""
        if history.fidelities is None:
            return self._single().score(history, X)
        scores = self.score_fidelities(history, X)
        return None if scores is None else scores[history.target_fidelity]

    def predict(self, history: History, X: np.ndarray):
        """Posterior mean and sd of the objective at the target fidelity at (p, k) mixtures X."""
        import torch

        if history.fidelities is None:
            return self._single().predict(history, X)
        if len(history.completed) < 2:
            return None
        with _torch_threads(self.n_threads):
            model, _ = self._fit(history)
            with torch.no_grad():
                post = model.posterior(torch.as_tensor(np.atleast_2d(X), dtype=torch.double))
                return -post.mean[:, 0].numpy(), post.variance[:, 0].clamp_min(0).sqrt().numpy()

    def recommend(self, history: History) -> Recommendation | None:
        """The mixture measured at the target with the best posterior mean there, with that mean
        and sd (every evaluated mixture while none is measured at the target).

        Only mixtures run at the target compete once there is one: a mixture seen only at a cheap
        scale is a prediction through the learned task correlation, and deploying it untested is
        the very transfer failure multi-fidelity search is for (on the multiscale landscape, seed
        0, the cheap scale's best design point was predicted 0.04 below the measured uniform
        mixture at the target and is in truth 0.009 worse)."""
        if history.fidelities is None:
            return self._single().recommend(history)
        if self._transfer_failed(history):
            rec = self._target_only().recommend(self._at_target(history))
            return dataclasses.replace(rec, source=f"{rec.source} at the target (target-only model: the transfer "
                                                   f"check failed)")
        done = history.completed
        if len(done) < 2:
            at_target = history.at(history.target_fidelity)
            return Optimizer.recommend(self, dataclasses.replace(history, trials=tuple(at_target)))
        candidates = history.at(history.target_fidelity) or done
        mean, sd = self.predict(history, history.X(candidates))
        i = int(np.argmin(mean))
        where = "mixtures measured at the target" if candidates is not done else "evaluated mixtures"
        return Recommendation(dict(candidates[i].weights), float(mean[i]), float(sd[i]),
                              f"posterior mean at the target, {where}", candidates[i].number)


def _exploit_class():
    from botorch.acquisition import AcquisitionFunction, PosteriorMean

    class Exploit(AcquisitionFunction):
        """The posterior mean at the target for (b, 1, k) mixtures among `allowed` (p, k), and a
        value below every mean elsewhere: the last target run goes to a mixture measured at a
        cheap scale, not to an extrapolation."""

        def __init__(self, model, allowed):
            import torch

            super().__init__(model)
            self.mean = PosteriorMean(model)
            self.allowed = torch.as_tensor(np.asarray(allowed), dtype=torch.double)

        def forward(self, X):
            import torch

            x = X[..., 0, :]
            near = (x.unsqueeze(-2) - self.allowed).abs().amax(-1).amin(-1) < 1e-9
            return torch.where(near, self.mean(X), torch.full_like(x[..., 0], -1e12))

    return Exploit


def _Exploit(model, allowed):
    return _exploit_class()(model, allowed)


def _cost_aware_class():
    from botorch.acquisition import AcquisitionFunction

    class CostAware(AcquisitionFunction):
        """log EI_target(x) + log rho_f(x) + log(cost_target / cost_f), for (b, 1, k) mixtures."""

        def __init__(self, base, model, fidelity: int, target: int, log_ratio: float):
            super().__init__(model)
            self.base, self.fidelity, self.target, self.log_ratio = base, fidelity, target, log_ratio

        def forward(self, X):
            import torch

            value = self.base(X)
            if self.fidelity == self.target:
                return value
            x = X[..., 0, :]
            col = lambda i: torch.full_like(x[..., :1], float(i))  # noqa: E731
            pair = torch.stack([torch.cat([x, col(self.fidelity)], -1), torch.cat([x, col(self.target)], -1)], -2)
            cov = self.model.posterior(pair).mvn.covariance_matrix
            rho = cov[..., 0, 1] / (cov[..., 0, 0] * cov[..., 1, 1]).clamp_min(1e-18).sqrt()
            return value + torch.log(rho.clamp_min(RHO_MIN)) + self.log_ratio

    return CostAware


def _CostAware(base, model, fidelity: int, target: int, log_ratio: float):
    return _cost_aware_class()(base, model, fidelity, target, log_ratio)
