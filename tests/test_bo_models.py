"""What bo models (bomix.optimizers.bo_models): the law prior mean, the low-rank model, the auto
rule, and the budget-aware initial design."""

import numpy as np
import pytest

import bomix
from bomix.errors import ConfigError
from bomix.evaluators import get_evaluator
from bomix.optimizers import bo_models
from bomix.optimizers.bo import INIT_MAX, BayesOpt
from bomix.trial import Trial, TrialState

FAST = dict(num_restarts=2, raw_samples=64, mc_samples=32)


def history(space, X, loss_matrix, names, objective="mean", budget=None):
    trials = tuple(Trial(i, space.to_mixture(x), state=TrialState.COMPLETED, proposed_by="bo/init", seed=i,
                         losses=dict(zip(names, row))) for i, (x, row) in enumerate(zip(X, loss_matrix.tolist())))
    return bomix.History(space, bomix.Objective.parse(objective), trials, budget=budget)


@pytest.fixture(scope="module")
def law_landscape():
    """A k = 6 mixing-law landscape (exactly the law's form), 30 trials and 200 held-out mixtures."""
    ev = get_evaluator("landscape", name="mixing_law", k=6, seed=3)
    space = bomix.MixtureSpace(ev.domains)
    X = space.sample(30, method="random", seed=1)
    held = space.sample(200, method="random", seed=2)
    return ev, space, X, held


def test_fit_law_recovers_a_mixing_law(law_landscape):
    ev, _, X, held = law_landscape
    law = bo_models.fit_law(X, np.log(ev.true_loss_matrix(X)))
    err = np.abs(law.log_losses(held) - np.log(ev.true_loss_matrix(held))).max()
    assert err < 0.01  # measured 1e-4; a constant per loss is off by 0.3
    np.testing.assert_allclose(law.c, ev.c_, rtol=0.05)


def test_law_amplitudes_stay_non_negative():
    """Where unconstrained least squares wants c < 0 (or k < 0), the fit takes the bound: a mixing
    law's floor c and scale k are losses, never negative, however few or odd the trials."""
    import torch

    E = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], dtype=torch.double)
    Y = torch.stack([2.0 * E[:, 0] - 0.5, 3.0 - 0.5 * E[:, 1]], 1)  # exact fits: c = -0.5; k = -0.5
    c, k = bo_models._amplitudes(E, Y, torch.ones_like(Y))
    assert (c >= 0).all() and (k >= 0).all()
    assert c[0] == 0 and k[1] == 0


def test_fit_law_from_fewer_trials_than_parameters_is_finite():
    ev = get_evaluator("landscape", name="mixing_law", k=64, metrics=20, seed=0)
    space = bomix.MixtureSpace(ev.domains)
    X = space.sample(30, method="random", seed=1)
    law = bo_models.fit_law(X, np.log(ev.true_loss_matrix(X)))
    assert np.isfinite(law.log_losses(space.sample(100, method="random", seed=2))).all()


def test_law_prior_mean_predicts_held_out_mixtures_better(law_landscape):
    ev, space, X, held = law_landscape
    h = history(space, X[:14], ev.true_loss_matrix(X[:14]), ev.loss_names)
    truth = np.array([ev.true_value(x) for x in held])
    errors = {}
    for prior_mean in ("constant", "law"):
        mean, _ = BayesOpt(seed=0, model="per_domain", prior_mean=prior_mean, **FAST).predict(h, held)
        errors[prior_mean] = np.abs(mean - truth).mean()
    assert errors["law"] < 0.5 * errors["constant"], errors  # measured 0.004 vs 0.05


def test_lowrank_keeps_few_components_and_round_trips():
    rng = np.random.default_rng(0)
    factors = rng.normal(size=(40, 3))
    Y = factors @ rng.normal(size=(3, 50)) + 5.0  # rank 3 over 50 outputs
    lr = bo_models.LowRank.fit(Y)
    assert lr.basis.shape == (3, 50)
    import torch

    back = lr.decode(torch.as_tensor(lr.encode(Y))).numpy()
    np.testing.assert_allclose(back, Y, atol=1e-8)
    full = bo_models.LowRank.fit(rng.normal(size=(40, 50)))  # no structure: capped
    assert full.basis.shape[0] == bo_models.LOWRANK_MAX


def test_auto_models_many_metrics_with_a_few_gps():
    assert bo_models.resolve("auto", bo_models.AUTO_MAX_OUTPUTS) == "per_domain"
    assert bo_models.resolve("auto", bo_models.AUTO_MAX_OUTPUTS + 1) == "lowrank"
    assert bo_models.resolve("scalar", 100) == "scalar"
    ev = get_evaluator("landscape", name="mixing_law", k=6, metrics=40, seed=1)
    space = bomix.MixtureSpace(ev.domains)
    X = space.sample(16, method="random", seed=1)
    h = history(space, X, ev.true_loss_matrix(X), ev.loss_names)
    model, _ = BayesOpt(seed=0, **FAST)._fit(h)
    assert model.num_outputs <= bo_models.LOWRANK_MAX
    proposal = BayesOpt(seed=0, **FAST).suggest(h, 1)[0]
    assert proposal.source == "bo/gp"
    space.validate(proposal.weights)


@pytest.mark.parametrize("k,budget,size", [(5, 64, 7), (17, 64, INIT_MAX), (64, 64, INIT_MAX), (64, 16, 4),
                                           (17, 32, 8), (64, None, INIT_MAX)])
def test_initial_design_is_small_and_budget_aware(k, budget, size):
    assert BayesOpt().init_size(k, budget) == size


def test_initial_design_starts_at_center_then_prior():
    space = bomix.MixtureSpace(list("abcd"), prior=[0.5, 0.3, 0.1, 0.1])
    design = BayesOpt(seed=0).initial_design(space, 4)
    np.testing.assert_allclose(design[0], [0.25] * 4)
    np.testing.assert_allclose(design[1], [0.5, 0.3, 0.1, 0.1])
    plain = BayesOpt(seed=0).initial_design(bomix.MixtureSpace(list("abcd")), 4)  # no prior: Sobol next
    assert np.abs(plain[1] - [0.5, 0.3, 0.1, 0.1]).max() > 0.05


def test_fit_law_survives_a_diverged_search(law_landscape, monkeypatch):
    """A search that ends in NaN (seen on a 17-domain pool) must not poison the GP: each such loss
    falls back to the linearised law it started from."""
    import torch

    def diverge(self, closure):
        for group in self.param_groups:
            for p in group["params"]:
                p.data.fill_(float("nan"))

    ev, _, X, held = law_landscape
    monkeypatch.setattr(torch.optim.LBFGS, "step", diverge)
    law = bo_models.fit_law(X, np.log(ev.true_loss_matrix(X)))
    pred = law.log_losses(held)
    assert np.isfinite(pred).all()
    flat = np.abs(np.log(ev.true_loss_matrix(X)).mean(0) - np.log(ev.true_loss_matrix(held))).mean()
    assert np.abs(pred - np.log(ev.true_loss_matrix(held))).mean() < flat  # the start, not the flat law


def sparse_sqrt_problem(n_train=24, k=8):
    """Sparse mixtures (Dirichlet 0.2) and a loss that moves like sqrt of each weight: the small
    weights matter, which is what the sqrt inputs are for."""
    rng = np.random.default_rng(0)
    space = bomix.MixtureSpace([f"d{i}" for i in range(k)])
    X = rng.dirichlet(np.full(k, 0.2), n_train + 200)
    A = rng.uniform(0.2, 1.0, (k, 2))
    L = 3.0 - np.sqrt(X) @ A
    return space, X[:n_train], L[:n_train], X[n_train:], L[n_train:].mean(1)


def test_sqrt_inputs_model_sparse_mixtures_better():
    space, X, L, held, truth = sparse_sqrt_problem()
    h = history(space, X, L, ["a", "b"])
    errors = {inputs: np.abs(BayesOpt(seed=0, model="per_domain", inputs=inputs, **FAST).predict(h, held)[0]
                             - truth).mean() for inputs in ("raw", "sqrt")}
    assert errors["sqrt"] < 0.85 * errors["raw"], errors  # measured 0.087 vs 0.113


@pytest.mark.parametrize("model", ["per_domain", "scalar"])  # a batch of 2 GPs, and one GP
def test_warp_inputs_learn_a_warping(model, caplog):
    space, X, L, _, _ = sparse_sqrt_problem()
    model, _ = BayesOpt(seed=0, model=model, inputs="warp", **FAST)._fit(history(space, X, L, ["a", "b"]))
    assert "fit failed" not in caplog.text
    warp = model.input_transform
    assert type(warp).__name__ == "Warp"
    learned = np.concatenate([warp.concentration0.detach().numpy().ravel(), warp.concentration1.detach().numpy().ravel()])
    assert np.abs(learned - 1.0).max() > 0.05  # fitted with the GP, not left at the identity


@pytest.mark.parametrize("k, kernel_sees", [(bo_models.AUTO_SQRT_MIN_K - 1, None), (bo_models.AUTO_SQRT_MIN_K, "Sqrt"),
                                             (24, "Sqrt")])
def test_auto_inputs_are_sqrt_from_many_domains_up(k, kernel_sees):
    """The default reads sparse many-domain mixtures through sqrt, few-domain ones as they are."""
    space, X, L, _, _ = sparse_sqrt_problem(n_train=12, k=k)
    model, _ = BayesOpt(seed=0, model="scalar", **FAST)._fit(history(space, X, L, ["a", "b"]))
    transform = getattr(model, "input_transform", None)
    assert (None if transform is None else type(transform).__name__) == kernel_sees


def test_inputs_must_be_known():
    with pytest.raises(ConfigError, match=r"bo inputs must be one of \['auto', 'raw', 'sqrt', 'log', 'warp'\], "
                                          r"got 'logit'"):
        BayesOpt(inputs="logit")


def test_log_inputs_model_power_law_losses_of_sparse_mixtures_better():
    """Losses that fall as a power of each domain's weight (BiMix's form), on sparse mixtures as
    swarms draw them (2 to 6 domains present, the rest exactly 0): what matters is how many times
    larger a weight is, which log inputs give the kernel (measured 0.0091 against sqrt's 0.0184)."""
    rng = np.random.default_rng(1)
    k, n_train = 12, 32
    space = bomix.MixtureSpace([f"d{i}" for i in range(k)])
    X = np.zeros((n_train + 200, k))
    for row in X:
        support = rng.choice(k, rng.integers(2, 7), replace=False)
        row[support] = rng.dirichlet(np.ones(len(support)))
    B = rng.uniform(0.05, 0.2, (k, 2))
    L = 2.0 + (X + 0.01) ** -0.3 @ B / k
    h = history(space, X[:n_train], L[:n_train], ["a", "b"])
    truth = L[n_train:].mean(1)
    errors = {inputs: np.abs(BayesOpt(seed=0, model="per_domain", inputs=inputs, **FAST).predict(h, X[n_train:])[0]
                             - truth).mean() for inputs in ("sqrt", "log")}
    assert errors["log"] < 0.7 * errors["sqrt"], errors


def test_log_inputs_map_the_unit_interval_onto_itself_and_leave_trailing_columns_alone():
    import torch

    X = torch.tensor([[0.0, 0.001, 1.0, 1.0], [0.5, 0.5, 0.0, 0.0]], dtype=torch.double)
    out = bo_models.input_transform("log", 3, trailing=1).transform(X)
    eps = bo_models.LOG_EPS
    expected = (np.log(X[:, :3].numpy() + eps) - np.log(eps)) / (np.log(1 + eps) - np.log(eps))
    np.testing.assert_allclose(out[:, :3].numpy(), expected)
    np.testing.assert_allclose(out[0, [0, 2]].numpy(), [0.0, 1.0])
    np.testing.assert_array_equal(out[:, 3].numpy(), [1.0, 0.0])
    np.testing.assert_allclose(bo_models.input_transform("log", 3).transform(X[:, :3]).numpy(), expected)


def test_sqrt_inputs_leave_trailing_columns_alone():
    """A multi-task GP's task index rides after the weights: sqrt must not touch it."""
    import torch

    X = torch.tensor([[0.25, 0.25, 0.5, 1.0], [1.0, 0.0, 0.0, 0.0]], dtype=torch.double)
    out = bo_models.input_transform("sqrt", 3, trailing=1).transform(X)
    np.testing.assert_allclose(out[:, :3].numpy(), np.sqrt(X[:, :3].numpy() + bo_models.SQRT_EPS))
    np.testing.assert_array_equal(out[:, 3].numpy(), [1.0, 0.0])
    with pytest.raises(ConfigError, match="inputs with trailing columns must be 'raw', 'sqrt' or 'log', got 'warp'"):
        bo_models.input_transform("warp", 3, trailing=1)


def _mean_of_exp(O):
    return np.exp(O).mean(1)


def test_auto_keeps_lowrank_only_while_its_components_keep_the_objective():
    rng = np.random.default_rng(0)
    together = rng.normal(size=(40, 2)) @ rng.normal(size=(2, 12)) * 0.1 + 1.0  # 12 losses, 2 directions
    kind, lowrank = bo_models.choose_lowrank("auto", together, _mean_of_exp)
    assert kind == "lowrank" and lowrank.basis.shape[0] <= 3
    apart = rng.normal(size=(40, 12)) * 0.1 + 1.0  # 12 losses that move independently: 8 components lose the mean
    assert bo_models.LowRank.fit(apart).objective_r2(apart, _mean_of_exp) < bo_models.LOWRANK_MIN_R2
    assert bo_models.choose_lowrank("auto", apart, _mean_of_exp) == ("per_domain", None)
    many = rng.normal(size=(40, bo_models.AUTO_MAX_PER_DOMAIN + 1)) * 0.1 + 1.0
    assert bo_models.choose_lowrank("auto", many, _mean_of_exp) == ("scalar", None)
    assert bo_models.choose_lowrank("lowrank", apart, _mean_of_exp)[0] == "lowrank"  # asked for: kept


def test_auto_models_independent_losses_one_gp_each():
    # the mixing_law landscape's 10 losses move independently: low rank lost the mean objective there
    # (R^2 0.5-0.8) and bo deployed worse than uniform; auto now fits one GP per loss
    ev = get_evaluator("landscape", name="mixing_law", k=10, seed=0)
    space = bomix.MixtureSpace(ev.domains)
    X = space.sample(32, method="random", seed=1)
    h = history(space, X, ev.true_loss_matrix(X), ev.loss_names)
    model, _ = BayesOpt(seed=0, **FAST)._fit(h)
    assert model.num_outputs == 10
    held = space.sample(20, method="random", seed=2)
    truth = np.array([ev.true_value(x) for x in held])
    errors = {m: np.abs(BayesOpt(seed=0, model=m, **FAST).predict(h, held)[0] - truth).mean()
              for m in ("auto", "lowrank")}
    assert errors["auto"] < 0.5 * errors["lowrank"], errors  # measured 0.005 vs 0.035


@pytest.mark.parametrize("model", ["per_domain", "scalar"])  # 2 outputs sharing the kernel, and one GP
def test_additive_kernel_models_a_sum_of_one_weight_terms(model, caplog):
    """kernel="additive": the posterior mean of every modelled output is a sum of one-weight terms,
    so its mixed difference over two weights is zero (an RBF kernel's is not)."""
    import torch

    space, X, L, _, _ = sparse_sqrt_problem()
    fitted, _ = BayesOpt(seed=0, model=model, kernel="additive", **FAST)._fit(history(space, X, L, ["a", "b"]))
    assert "fit failed" not in caplog.text  # batched per output, the kernel was not PSD and the fit failed
    assert type(fitted.covar_module).__name__ == "OrthogonalAdditiveKernel"
    base, k = X[0].copy(), space.k
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    corners = []  # for each pair of weights (i, j): base, +0.3 on j, +0.3 on i, +0.3 on both
    for i, j in pairs:
        for di in (0.0, 0.3):
            for dj in (0.0, 0.3):
                x = base.copy()
                x[i] += di
                x[j] += dj
                corners.append(x)
    with torch.no_grad():
        mean = fitted.posterior(torch.as_tensor(np.array(corners))).mean.numpy().reshape(len(pairs), 4, -1)
    mixed = mean[:, 3] - mean[:, 2] - mean[:, 1] + mean[:, 0]
    assert np.abs(mixed).max() < 1e-6, mixed
    # ... and the weights matter (which ones depends on the fit: one of this fit's eight terms is
    # nearly flat, so no single weight is checked)
    assert np.abs(mean[:, 2] - mean[:, 0]).max() > 1e-2


def test_additive_kernel_predicts_an_additive_loss_better():
    space, X, L, held, truth = sparse_sqrt_problem()
    h = history(space, X, L, ["a", "b"])
    errors = {kernel: np.abs(BayesOpt(seed=0, model="per_domain", inputs="sqrt", kernel=kernel, **FAST)
                             .predict(h, held)[0] - truth).mean() for kernel in ("rbf", "additive")}
    assert errors["additive"] < 0.85 * errors["rbf"], errors  # measured 0.068 vs 0.087


def test_kernel_must_be_known():
    with pytest.raises(ConfigError, match=r"kernel must be one of \['rbf', 'additive'\], got 'oak'"):
        BayesOpt(kernel="oak")
