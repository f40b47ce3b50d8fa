"""The olmix baseline: contract, swarm design, log-linear fit recovery, the convex proposer, protocols."""

import numpy as np
import pytest
from scipy.optimize import minimize

import bomix
from baselines import olmix
from baselines._law import LawFitError
from baselines.olmix import STRENGTHS, OlMix, log_linear, prior_of, propose
from bomix import testing
from bomix.errors import ConfigError
from bomix.trial import Trial, TrialState

PRIOR4 = [0.4, 0.3, 0.2, 0.1]


def history(space, X, losses, objective="mean"):
    """A History of the mixtures X, row i completed with losses[i] ({name: value})."""
    trials = tuple(Trial(i, space.to_mixture(x), state=TrialState.COMPLETED, proposed_by="test", seed=i,
                         losses=dict(loss)) for i, (x, loss) in enumerate(zip(X, losses)))
    return bomix.History(space, bomix.Objective.parse(objective), trials)


def law_history(space, thetas, X, names, noise=0.0, seed=0, objective="mean"):
    """X evaluated on the log-linear landscape L_j(r) = exp(c_j) + exp(t_j . r) (plus noise)."""
    L = log_linear(thetas, X) + np.random.default_rng(seed).normal(0.0, noise, (len(X), len(names)))
    return history(space, X, [dict(zip(names, row)) for row in L], objective)


@pytest.fixture(scope="module")
def landscape():
    """A known log-linear landscape: 5 domains with a prior and a cap, 3 metrics (one per the
    first three domains), and 40 swarm mixtures evaluated on it with 0.002 noise."""
    space = bomix.MixtureSpace(list("abcde"), prior=[0.35, 0.25, 0.2, 0.1, 0.1], caps={"a": 0.5})
    rng = np.random.default_rng(7)
    T = rng.uniform(-0.5, 0.3, (3, 5))
    T[np.arange(3), np.arange(3)] = [-1.5, -1.2, -1.0]  # each metric improves with its own domain
    thetas = np.column_stack([np.log([2.0, 1.5, 1.8]), T])
    names = ["a", "b", "c"]
    return space, thetas, names, law_history(space, thetas, OlMix(seed=0).design(space, 40), names, noise=0.002)


# -- contract ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["sequential", "one_shot"])
def test_contract(protocol):
    # budget 8: both protocols fit the law on the contract's 8- and 10-trial histories (k <= 5)
    testing.check_optimizer(lambda space, seed: bomix.get_optimizer("olmix", seed=seed, protocol=protocol, budget=8,
                                                                    n_starts=2))


def test_contract_with_defaults_as_registered():
    testing.check_optimizer(lambda space, seed: bomix.get_optimizer("olmix", seed=seed))


# -- the swarm ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("space", testing.contract_spaces(), ids=lambda s: f"k{s.k}")
def test_design_is_feasible_distinct_deterministic_and_prefix_stable(space):
    D = OlMix(seed=3).design(space, 40)
    for x in D:
        space.validate(x)
    gaps = np.abs(D[:, None, :] - D[None, :, :]).max(axis=2) + np.eye(len(D))
    assert gaps.min() > olmix.DEDUP_ATOL
    assert np.array_equal(OlMix(seed=3).design(space, 40), D)
    for n in (1, 7, 39):
        assert np.array_equal(OlMix(seed=3).design(space, n), D[:n])
    assert not np.allclose(OlMix(seed=4).design(space, 40), D)


def test_design_centres_on_the_prior_and_its_temperature():
    p = np.array(PRIOR4)
    space = bomix.MixtureSpace(list("abcd"), prior=p)
    mean = OlMix(seed=1).design(space, 1500).mean(axis=0)
    assert np.abs(mean - p).max() < 0.025
    tempered = np.sqrt(p) / np.sqrt(p).sum()
    mean_t = OlMix(seed=1, temperature=0.5).design(space, 1500).mean(axis=0)
    assert np.abs(mean_t - tempered).max() < 0.025 and np.abs(mean_t - p).max() > 0.05
    # no prior: uniform
    uniform = OlMix(seed=1).design(bomix.MixtureSpace(list("abcd")), 1500).mean(axis=0)
    assert np.abs(uniform - 0.25).max() < 0.025


def test_design_is_sparse_rounded_and_spread():
    space = bomix.MixtureSpace([f"d{i}" for i in range(8)])
    D = OlMix(seed=0).design(space, 300)
    # olmix rounds to multiples of min_weight (2e-3), then renormalises: row * M is integral for
    # M = (sum of the rounded weights) / 2e-3, which is within a few units of 500
    M = np.arange(480, 521)
    integral = [np.abs(row[None, :] * M[:, None] - np.round(row[None, :] * M[:, None])).max(axis=1).min() < 1e-6
                for row in D]
    assert all(integral) and D[D > 1e-12].min() > 1.9e-3  # (space.clean may leave 1e-17 for 0)
    zeros = (D < 1e-12).sum(axis=1)
    assert (zeros >= 4).mean() > 0.2 and (zeros == 0).mean() > 0.05  # low strengths and high strengths
    assert STRENGTHS[0] == pytest.approx(0.1) and STRENGTHS[-1] == pytest.approx(5.0) and len(STRENGTHS) == 15
    raw = OlMix(seed=0, min_weight=0).design(space, 50)
    assert (raw[raw > 1e-12] < 1.9e-3).any()


def test_design_respects_caps_and_floors():
    space = bomix.MixtureSpace(["web", "code", "math", "books"], floors={"books": 0.05}, caps={"web": 0.4},
                               prior=[0.8, 0.1, 0.05, 0.05])
    D = OlMix(seed=0).design(space, 200)
    assert D[:, 0].max() <= 0.4 + 1e-9 and D[:, 3].min() >= 0.05 - 1e-9
    assert D[:, 0].max() > 0.35  # the cap is reached for, the draws are not merely rescaled


def test_design_falls_back_to_sobol_when_caps_reject_almost_every_draw():
    space = testing.contract_spaces()[2]  # 12 domains, caps 0.05 .. 0.2, sparse draws: almost none fit
    D = OlMix(seed=0).design(space, 12)
    sobol = space.sample(12, method="sobol", seed=0)
    assert sum(any(np.allclose(x, s) for s in sobol) for x in D) >= 3


def test_candidates_are_feasible_fixed_and_around_the_prior():
    space = bomix.MixtureSpace(list("abcd"), prior=PRIOR4, floors={"d": 0.02}, caps={"a": 0.45})
    C = OlMix(seed=2).candidates(space)
    assert C.shape == (olmix.N_CANDIDATES, 4)
    assert C[:, 0].max() <= 0.45 + 1e-9 and C[:, 3].min() >= 0.02 - 1e-9 and np.allclose(C.sum(axis=1), 1)
    assert np.array_equal(OlMix(seed=2).candidates(space), C)
    assert np.abs(np.median(C, axis=0) - np.array(PRIOR4)).max() < 0.06


# -- the log-linear law ----------------------------------------------------------------------------
def test_fit_recovers_the_law_and_its_optimum(landscape):
    space, thetas, names, hist = landscape
    law = OlMix(seed=0).fit(hist)
    fitted = np.array([[law.params["losses"][n]["log_c"], *law.params["losses"][n]["t"].values()] for n in names])
    np.testing.assert_allclose(fitted[:, 0], thetas[:, 0], atol=0.03)
    np.testing.assert_allclose(fitted[:, 1:], thetas[:, 1:], atol=0.15)
    test = space.sample(200, method="sobol", seed=5)
    truth = log_linear(thetas, test).mean(axis=1)
    assert np.abs(law.predict(test) - truth).max() < 0.01
    # the optimum of the fitted law's program is that of the true law's program
    q = prior_of(space)
    true_x, _ = propose(thetas, np.full(3, 1 / 3), q, 0.05, space)
    assert np.abs(law.optimum - true_x).sum() < 0.03
    true_f = olmix.regularised(thetas, np.full(3, 1 / 3), q, 0.05)
    assert true_f(law.optimum) - true_f(true_x) < 1e-3
    assert law.optimal_value == pytest.approx(float(law.predict(law.optimum)[0]))
    assert law.params["solver"] == "clarabel" and law.params["kl_weight"] == 0.05


def test_fit_is_seeded_and_needs_k_plus_2_positive_trials(landscape):
    space, thetas, names, hist = landscape
    a, b = OlMix(seed=1).fit(hist), OlMix(seed=1).fit(hist)
    assert a.params == b.params and np.array_equal(a.optimum, b.optimum)
    short = bomix.History(space, hist.objective, hist.trials[:6])
    with pytest.raises(LawFitError, match=r"min\(k \+ 2, its design\) = 7 completed trials, got 6"):
        OlMix().fit(short)
    negative = history(space, hist.X(), [{n: -1.0 for n in names}] * len(hist.trials))
    with pytest.raises(LawFitError, match="positive losses"):
        OlMix().fit(negative)


def test_own_domain_slope_starts_negative(monkeypatch):
    import scipy.optimize  # the fit imports minimize from here when it runs

    starts, original = [], scipy.optimize.minimize

    def spy(fun, x0, *args, **kwargs):
        starts.append(np.array(x0))
        return original(fun, x0, *args, **kwargs)

    monkeypatch.setattr(scipy.optimize, "minimize", spy)
    X = bomix.MixtureSpace(list("abc")).sample(12, seed=0)
    y = 1.5 + np.exp(-X[:, 1])
    olmix.fit_log_linear(X, y, 1, np.random.default_rng(0), n_starts=3, delta=0.02)
    olmix.fit_log_linear(X, y, None, np.random.default_rng(0), n_starts=3, delta=0.02)
    assert len(starts) == 6
    assert all(s[2] <= 0 and s[1] >= 0 and s[3] >= 0 for s in starts[:3])  # t_own ~ -U(0, 1)
    assert all((s[1:] >= 0).all() for s in starts[3:])


def test_weighted_and_target_objectives_compose_the_metric_laws(landscape):
    space, thetas, names, hist = landscape
    weights = {"a": 3.0, "b": 1.0, "c": 0.0}
    weighted = bomix.History(space, bomix.Objective("weighted", weights=weights), hist.trials)
    law = OlMix(seed=0).fit(weighted)
    assert law.params["objective_weights"] == {"a": 0.75, "b": 0.25, "c": 0.0}
    test = space.sample(50, seed=1)
    truth = log_linear(thetas, test) @ np.array([0.75, 0.25, 0.0])
    assert np.abs(law.predict(test) - truth).max() < 0.01
    true_x, _ = propose(thetas, np.array([0.75, 0.25, 0.0]), prior_of(space), 0.05, space)
    assert np.abs(law.optimum - true_x).sum() < 0.03
    target = OlMix(seed=0).fit(bomix.History(space, bomix.Objective("target:b"), hist.trials))
    assert list(target.params["losses"]) == ["b"]
    assert np.abs(target.predict(test) - log_linear(thetas[1:2], test)[:, 0]).max() < 0.01


def test_task_family_objective_gives_olmix_family_weights(landscape):
    space, thetas, names, hist = landscape
    families = bomix.Objective.parse({"kind": "families", "families": {"x": ["a", "b"], "y": ["c"]},
                                      "weights": {"x": 1, "y": 3}})
    law = OlMix(seed=0).fit(bomix.History(space, families, hist.trials))
    assert law.params["objective_weights"] == pytest.approx({"a": 0.125, "b": 0.125, "c": 0.75})
    test = space.sample(50, seed=1)
    assert np.abs(law.predict(test) - log_linear(thetas, test) @ np.array([0.125, 0.125, 0.75])).max() < 0.01


def test_worst_objective_minimises_the_largest_predicted_metric(landscape):
    space, thetas, names, hist = landscape
    law = OlMix(seed=0).fit(bomix.History(space, bomix.Objective("worst"), hist.trials))
    assert law.params["objective_weights"] is None and law.params["solver"] == "clarabel"
    test = space.sample(50, seed=1)
    assert np.abs(law.predict(test) - log_linear(thetas, test).max(axis=1)).max() < 0.01
    true_x, _ = propose(thetas, None, prior_of(space), 0.05, space)
    assert np.abs(law.optimum - true_x).sum() < 0.05


# -- the convex proposer ------------------------------------------------------------------------------
def slsqp_optimum(thetas, weights, q, kl, space, starts):
    """An independent optimum of sum_j w_j L_j(r) + kl KL(r || q) (or max_j L_j via its epigraph) by
    multi-start SLSQP with analytic gradients: the brute-force reference for the cvxpy solution."""
    c, T, k = np.exp(thetas[:, 0]), thetas[:, 1:], space.k

    def kl_and_grad(r):
        r = np.maximum(r, 1e-12)
        return kl * float(np.sum(r * np.log(r / q))), kl * (np.log(r / q) + 1.0)

    best_x, best_f = None, np.inf
    for x0 in starts:
        if weights is not None:
            def f(r):
                e = np.exp(T @ r)
                v, g = kl_and_grad(r)
                return float(weights @ (c + e)) + v, (weights * e) @ T + g

            res = minimize(f, x0, jac=True, method="SLSQP", bounds=list(zip(space.floors, space.caps)),
                           constraints=[{"type": "eq", "fun": lambda r: r.sum() - 1}],
                           options={"maxiter": 500, "ftol": 1e-14})
            x = res.x
        else:  # min s + KL subject to s >= L_j(r)
            res = minimize(lambda z: (z[k] + kl_and_grad(z[:k])[0], np.r_[kl_and_grad(z[:k])[1], 1.0]),
                           np.r_[x0, (c + np.exp(T @ x0)).max()], jac=True, method="SLSQP",
                           bounds=list(zip(space.floors, space.caps)) + [(None, None)],
                           constraints=[{"type": "eq", "fun": lambda z: z[:k].sum() - 1},
                                        {"type": "ineq", "fun": lambda z: z[k] - c - np.exp(T @ z[:k])}],
                           options={"maxiter": 500, "ftol": 1e-14})
            x = res.x[:k]
        x = space.project(x)
        value = olmix.regularised(thetas, weights, q, kl)(x)
        if value < best_f:
            best_x, best_f = x, value
    return best_x, best_f


@pytest.mark.parametrize("kind", ["mean", "weighted", "worst"])
def test_convex_optimum_matches_multistart_slsqp(kind):
    rng = np.random.default_rng(3)
    space = bomix.MixtureSpace(list("abcde"), prior=[0.3, 0.3, 0.2, 0.15, 0.05], floors={"e": 0.02},
                               caps={"a": 0.35, "b": 0.5})
    thetas = np.column_stack([np.log(rng.uniform(1.0, 2.0, 4)), rng.normal(0.0, 1.0, (4, 5))])
    weights = {"mean": np.full(4, 0.25), "weighted": np.array([0.5, 0.3, 0.2, 0.0]), "worst": None}[kind]
    q = prior_of(space)
    x, solver = propose(thetas, weights, q, 0.05, space)
    assert solver == "clarabel"
    ref_x, ref_f = slsqp_optimum(thetas, weights, q, 0.05, space, space.sample(40, method="sobol", seed=1))
    f = olmix.regularised(thetas, weights, q, 0.05)
    assert f(x) <= ref_f + 1e-6  # cvxpy is at least as good as the best of 40 SLSQP runs
    assert np.abs(x - ref_x).sum() < 1e-3  # the program is strictly convex: one optimum
    space.validate(x)


def test_kl_weight_pulls_the_optimum_to_the_prior_and_caps_bind(landscape):
    space, thetas, names, hist = landscape
    q = prior_of(space)
    w = np.full(3, 1 / 3)
    near = propose(thetas, w, q, 100.0, space)[0]
    mid = propose(thetas, w, q, 0.05, space)[0]
    free = propose(thetas, w, q, 0.0, space)[0]
    assert np.abs(near - q).sum() < 0.05
    kl = [olmix.kl_divergence(x, q) for x in (near, mid, free)]
    assert kl[0] < kl[1] < kl[2]
    law_value = [float(log_linear(thetas, x).mean()) for x in (near, mid, free)]
    assert law_value[0] > law_value[1] > law_value[2]
    assert free[0] == pytest.approx(0.5, abs=1e-6)  # the law wants more of "a" than its cap allows
    assert OlMix(seed=0, kl_weight=0.0).fit(hist).params["at_bounds"][:1] == ["a"]


def test_solver_fallbacks(landscape, monkeypatch):
    space, thetas, names, hist = landscape
    w, q = np.full(3, 1 / 3), prior_of(space)
    exact = propose(thetas, w, q, 0.05, space)[0]
    monkeypatch.setattr(olmix, "SOLVERS", ("NO_SUCH_SOLVER", "SCS"))
    x, solver = propose(thetas, w, q, 0.05, space)
    assert solver == "scs" and np.abs(x - exact).sum() < 1e-3
    monkeypatch.setattr(olmix, "SOLVERS", ("NO_SUCH_SOLVER",))
    x, solver = propose(thetas, w, q, 0.05, space, starts=hist.X()[:1])
    assert solver == "slsqp" and np.abs(x - exact).sum() < 0.01


# -- protocols ---------------------------------------------------------------------------------------
def study(opt, space, thetas, names, n):
    hist = bomix.History(space, bomix.Objective("mean"))
    for i in range(n):
        p = opt.suggest(hist, 1)[0]
        losses = dict(zip(names, log_linear(thetas, p.weights)[0]))
        trial = Trial(i, space.to_mixture(p.weights), state=TrialState.COMPLETED, proposed_by=p.source, seed=i,
                      losses=losses)
        hist = bomix.History(space, hist.objective, hist.trials + (trial,))
    return hist


def test_one_shot_runs_a_swarm_of_budget_minus_one_then_the_optimum(landscape):
    space, thetas, names, _ = landscape
    opt = OlMix(protocol="one_shot", budget=16)
    hist = study(opt, space, thetas, names, 16)
    assert [t.proposed_by for t in hist.trials] == ["olmix/design"] * 15 + ["olmix/optimum"]
    np.testing.assert_allclose(hist.X()[:15], opt.design(space, 15))
    first = bomix.History(space, hist.objective, hist.trials[:15])
    np.testing.assert_allclose(hist.X()[15], space.project(opt.fit(first).optimum))


def test_sequential_designs_n0_then_exploits(landscape):
    space, thetas, names, _ = landscape
    assert OlMix().default_n0(space) == 12 and OlMix().default_n0(bomix.MixtureSpace(["a", "b"])) == 8
    hist = study(OlMix(n0=8, budget=20), space, thetas, names, 12)
    sources = [t.proposed_by for t in hist.trials]
    assert sources[:8] == ["olmix/design"] * 8
    assert set(sources[8:]) <= {"olmix/optimum", "olmix/candidate"} and "olmix/optimum" in sources


# -- arguments ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, value", [("kl_weight", -0.1), ("kl_weight", float("nan")), ("n_starts", 0),
                                         ("n_starts", 301), ("n_starts", 2.0), ("huber_delta", 0),
                                         ("temperature", -1), ("min_weight", 0.5), ("min_weight", True),
                                         ("seed", -1), ("protocol", "greedy"), ("budget", 1)])
def test_bad_arguments_name_the_rule_and_value(name, value):
    with pytest.raises(ConfigError, match=rf"olmix {name} must .*got {value!r}"):
        bomix.get_optimizer("olmix", **{name: value})


def test_params_are_stored_unchanged():
    params = {"seed": 3, "protocol": "one_shot", "budget": 20, "n0": None, "min_distance": 0.05, "kl_weight": 0.1,
              "n_starts": 4, "huber_delta": 0.01, "temperature": 0.5, "min_weight": 1e-3}
    opt = bomix.get_optimizer("olmix", **params)
    assert opt.get_params() == params and OlMix(**params).get_params() == params
