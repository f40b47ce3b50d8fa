"""bo_mf: multi-fidelity BO with a MultiTaskGP and a cost-aware acquisition."""

import math

import numpy as np
import pytest

import bomix
from bomix import testing
from bomix.errors import ConfigError
from bomix.evaluators.base import TrialContext
from bomix.evaluators.landscapes import landscape
from bomix.evaluators.replay_scales import ReplayScales
from bomix.objective import Objective
from bomix.optimizers import History, get_optimizer
from bomix.trial import Trial, TrialState

FAST = {"raw_samples": 32, "num_restarts": 1, "mc_samples": 16}


def mf_history(land, X, fidelities, pending=(), sources=None):
    """A history of completed trials of `land` at the given fidelities (noise-free)."""
    trials = []
    for i, (x, f) in enumerate(zip(X, fidelities)):
        losses = dict(zip(land.loss_names, land.loss_matrix_at(np.asarray(x)[None], f)[0].tolist()))
        source = "test" if sources is None else sources[i]
        trials.append(Trial(i, land._space.to_mixture(x), TrialState.COMPLETED, source, i, losses, fidelity=f))
    for j, (x, f) in enumerate(pending):
        trials.append(Trial(len(trials), land._space.to_mixture(x), TrialState.RUNNING, "test", 99 + j, fidelity=f))
    return History(land._space, Objective("mean"), tuple(trials), None, land.fidelities, land.target_fidelity)


def test_single_fidelity_contract():
    testing.check_optimizer(lambda space, seed: get_optimizer("bo_mf", seed=seed, **FAST))


def test_design_is_cheap_then_the_same_mixtures_at_the_target():
    land = landscape("multiscale", k=3, seed=0)
    opt = get_optimizer("bo_mf", seed=0, n_init=3, n_target_init=2, **FAST)
    history = mf_history(land, [], [])
    seen, flags = [], []
    for _ in range(5):
        (p,) = opt.suggest(history, 1)
        seen.append((p.source, p.fidelity, p.weights))
        flags.append(p.design)
        history = mf_history(land, [w for _, _, w in seen], [f for _, f, _ in seen], sources=[s for s, _, _ in seen])
    assert [(s, f) for s, f, _ in seen] == [("bo_mf/init", "1m")] * 3 + [("bo_mf/init_target", "60m")] * 2
    assert np.allclose(seen[3][2], seen[0][2]) and np.allclose(seen[4][2], seen[1][2])
    assert np.allclose(seen[0][2], land._space.center)
    # the cheap points the target reruns are no space-filling picks (a pool takes the run nearest them)
    assert flags == [False, False, True, False, False]


def test_the_target_design_reruns_what_the_cheap_design_ran():
    """In a pool the cheap design may run other mixtures than its points: the target reruns those."""
    land = landscape("multiscale", k=3, seed=0)
    opt = get_optimizer("bo_mf", seed=0, n_init=3, n_target_init=2, **FAST)
    ran = land._space.sample(3, method="sobol", seed=11)  # not the design points
    history = mf_history(land, ran, ["1m"] * 3, sources=["bo_mf/init"] * 3)
    (p,) = opt.suggest(history, 1)
    assert (p.source, p.fidelity) == ("bo_mf/init_target", "60m") and np.allclose(p.weights, ran[0])
    history = mf_history(land, [*ran, ran[0]], ["1m"] * 3 + ["60m"], sources=["bo_mf/init"] * 3 + ["bo_mf/init_target"])
    assert np.allclose(opt.suggest(history, 1)[0].weights, ran[1])


def design_history(land, n_cheap=6, targets=(0, 1), pending=()):
    """A finished design: n_cheap Sobol mixtures at 1m, then some of them again at 60m."""
    X = land._space.sample(n_cheap, method="sobol", seed=3)
    sources = ["bo_mf/init"] * n_cheap + ["bo_mf/init_target"] * len(targets)
    return mf_history(land, [*X, *X[list(targets)]], ["1m"] * n_cheap + ["60m"] * len(targets), pending, sources)


def test_acquisition_weighs_cost_against_the_task_correlation():
    land = landscape("multiscale", k=3, seed=0)
    opt = get_optimizer("bo_mf", seed=0, n_init=6, n_target_init=2, target_share=0.0, **FAST)
    history = design_history(land)
    X = land._space.sample(20, method="random", seed=5)
    scores = opt.score_fidelities(history, X)
    gap = scores["1m"] - scores["60m"]  # = log rho(x) + log(60), rho <= 1
    assert np.all(gap <= math.log(60) + 1e-6)
    assert np.all(gap > 0)  # the scales agree, so a 60x cheaper run is worth more
    assert np.allclose(opt.score_fidelities(history, X)["1m"], scores["1m"])  # deterministic
    (p,) = opt.suggest(history, 1)
    assert (p.source, p.fidelity) == ("bo_mf/gp", "1m")


def test_a_cheap_scale_that_disagrees_with_the_target_is_not_worth_its_low_cost():
    land = landscape("multiscale", k=3, seed=0)
    X = land._space.sample(8, method="sobol", seed=3)
    target = land.true_loss_matrix(X)
    trials = [Trial(i, land._space.to_mixture(x), TrialState.COMPLETED, "bo_mf/init", i,
                    dict(zip(land.loss_names, (7.0 - row).tolist())), fidelity="1m")  # the mirror image
              for i, (x, row) in enumerate(zip(X, target))]
    trials += [Trial(8 + i, land._space.to_mixture(X[i]), TrialState.COMPLETED, "bo_mf/init_target", 8 + i,
                     dict(zip(land.loss_names, target[i].tolist())), fidelity="60m") for i in range(4)]
    mirrored = History(land._space, Objective("mean"), tuple(trials), None, land.fidelities, "60m")
    agreeing = mf_history(land, [*X, *X[:4]], ["1m"] * 8 + ["60m"] * 4, (), [t.proposed_by for t in trials])
    opt = get_optimizer("bo_mf", seed=0, n_init=8, n_target_init=4, target_share=0.0, **FAST)
    C = land._space.sample(20, method="random", seed=5)
    gap = {name: s["1m"] - s["60m"] for name, h in (("mirrored", mirrored), ("agreeing", agreeing))
           for s in [opt.score_fidelities(h, C)]}  # log rho(x) + log 60 each
    assert np.all(gap["mirrored"] < gap["agreeing"])  # a cheap run is worth less when the scales disagree
    assert (gap["agreeing"] - gap["mirrored"]).mean() > 1.0
    assert np.all(gap["agreeing"] > 0)


def test_the_target_share_forces_runs_at_the_target():
    land = landscape("multiscale", k=3, seed=0)
    history = design_history(land, n_cheap=6, targets=(0,))  # 60 of 66 compute units at the target
    opt = get_optimizer("bo_mf", seed=0, n_init=6, n_target_init=1, target_share=0.95, **FAST)
    scores = opt.score_fidelities(history, land._space.sample(4, method="random", seed=1))
    assert np.all(scores["1m"] == -np.inf) and np.all(np.isfinite(scores["60m"]))
    picks = opt.suggest(history, 2)  # 60/66 < 0.95: forced; then 120/126 >= 0.95: free, and 1m is worth more
    assert [p.fidelity for p in picks] == ["60m", "1m"]
    assert np.abs(picks[0].weights - picks[1].weights).max() > 1e-6


def test_a_compute_budget_keeps_the_last_affordable_pick_for_the_target():
    land = landscape("multiscale", k=3, seed=0)
    history = design_history(land, n_cheap=6, targets=(0, 1))  # 126 compute units spent
    for budget, expected in ((126 + 60.5, "60m"), (126 + 59.5, "1m"), (126 + 200, "1m")):
        opt = get_optimizer("bo_mf", seed=0, target_share=0.0, compute_budget=budget, **FAST)
        assert opt.suggest(history, 1)[0].fidelity == expected, budget


def test_no_earlier_pick_spends_what_the_last_target_run_needs():
    land = landscape("multiscale", k=3, seed=0)
    history = design_history(land, n_cheap=6, targets=(0, 1))  # 126 compute units spent
    C = land._space.sample(6, method="random", seed=2)
    # 100 left: a target run now (60) would leave 40, less than the last target run needs; 1m runs may
    tight = get_optimizer("bo_mf", seed=0, compute_budget=126 + 100, **FAST).score_fidelities(history, C)
    assert np.all(tight["60m"] == -np.inf) and np.all(np.isfinite(tight["1m"]))
    assert get_optimizer("bo_mf", seed=0, compute_budget=126 + 100, **FAST).suggest(history, 1)[0].fidelity == "1m"
    roomy = get_optimizer("bo_mf", seed=0, compute_budget=126 + 200, **FAST).score_fidelities(history, C)
    assert np.all(np.isfinite(roomy["60m"])) and np.all(np.isfinite(roomy["1m"]))


def test_the_last_affordable_target_run_exploits():
    land = landscape("multiscale", k=3, seed=0)
    history = design_history(land)  # 126 compute units spent; 60.5 more afford one target run, no more
    opt = get_optimizer("bo_mf", seed=0, target_share=0.0, compute_budget=126 + 60.5, **FAST)
    (p,) = opt.suggest(history, 1)
    assert p.fidelity == "60m" and p.source == "bo_mf/final"
    # of the mixtures measured at 1m only (design_history reran 0 and 1 at 60m), the best
    # posterior mean at the target: no EI pick, no extrapolation
    untested = history.X()[2:6]
    mean, _ = opt.predict(history, untested)
    np.testing.assert_allclose(p.weights, untested[int(np.argmin(mean))])
    C = np.vstack([untested, land._space.sample(8, method="random", seed=4)])
    scores = opt.score_fidelities(history, C)  # and a pool search ranks the same runs the same way
    assert np.all(scores["1m"] == -np.inf) and np.all(scores["60m"][4:] < -1e11)
    np.testing.assert_allclose(scores["60m"][:4], -mean, rtol=1e-6)


def test_n_final_keeps_that_many_last_target_runs_and_each_exploits():
    land = landscape("multiscale", k=3, seed=0)
    history = design_history(land)  # 126 compute units spent
    untested = history.X()[2:6]  # measured at 1m only
    # 120.5 left: one target run is all n_final=1 holds back, so a 1m pick is still allowed; n_final=2
    # holds back two, and the pick is the first of them
    one = get_optimizer("bo_mf", seed=0, compute_budget=126 + 120.5, n_final=1, **FAST)
    two = get_optimizer("bo_mf", seed=0, compute_budget=126 + 120.5, n_final=2, **FAST)
    assert np.all(np.isfinite(one.score_fidelities(history, untested)["1m"]))
    (first,) = two.suggest(history, 1)
    mean, _ = two.predict(history, untested)
    order = np.argsort(mean)
    assert first.fidelity == "60m" and first.source == "bo_mf/final"
    np.testing.assert_allclose(first.weights, untested[order[0]])
    # with the first still running, the second is the next-best untested mixture, again at the target
    second = two.suggest(design_history(land, pending=[(first.weights, "60m")]), 1)[0]
    assert second.fidelity == "60m" and second.source == "bo_mf/final"
    np.testing.assert_allclose(second.weights, untested[order[1]])


def test_n_final_auto_keeps_a_second_target_run_only_where_the_cheap_search_can_spare_it():
    land = landscape("multiscale", k=3, seed=0)
    history = design_history(land)  # 126 spent: bo_mf's design at k = 3, 6 cheap runs and 2 target runs
    C = land._space.sample(6, method="random", seed=2)
    # auto: 2 when budget - 6 - 2 * 60 - 2 * 60 leaves >= 2 (k + 2) = 10 guided cheap runs: budget >= 256.
    # Holding back two target runs bars a target pick now (130 - 60 < 120); holding back one does not
    scores = {budget: get_optimizer("bo_mf", seed=0, n_target_init=2, compute_budget=budget, **FAST)
              .score_fidelities(history, C) for budget in (255, 256)}
    assert np.all(np.isfinite(scores[255]["60m"])) and np.all(scores[256]["60m"] == -np.inf)
    assert np.all(np.isfinite(scores[256]["1m"]))


def probe_history(land, probe):
    """bo_mf's finished design at k = 3 (6 cheap runs, the first again at the target), then the
    mixture `probe` measured at the target."""
    design = design_history(land, targets=(0,))
    X = [*design.X(), probe]
    sources = [t.proposed_by for t in design.trials] + ["bo_mf/probe"]
    return mf_history(land, X, ["1m"] * 6 + ["60m", "60m"], sources=sources)


def test_the_transfer_check_probes_the_cheap_best_right_after_the_design():
    land = landscape("multiscale", k=3, seed=0)
    history = design_history(land, targets=(0,))
    check = get_optimizer("bo_mf", seed=0, transfer_check=True, compute_budget=1000, **FAST)
    (probe,) = check.suggest(history, 1)
    untested = history.X()[1:6]
    mean, _ = check.predict(history, untested)
    assert (probe.source, probe.fidelity) == ("bo_mf/probe", "60m")
    np.testing.assert_allclose(probe.weights, untested[int(np.argmin(mean))])
    # without the check, or where the budget cannot pay for a probe beside the finals, no probe
    plain = get_optimizer("bo_mf", seed=0, compute_budget=1000, **FAST).suggest(history, 1)[0]
    short = get_optimizer("bo_mf", seed=0, transfer_check=True, compute_budget=6 + 60 * 3 - 1, n_final=1,
                          **FAST).suggest(history, 1)[0]
    assert plain.source != "bo_mf/probe" and short.source != "bo_mf/probe"


def test_probe_after_lets_the_cheap_search_run_first_and_stay_cheap():
    land = landscape("multiscale", k=3, seed=0)
    design = design_history(land, targets=(0,))  # 66 spent: 6 cheap runs, one target run
    # budget 206 with one last run: 206 - 66 - 60 (probe) - 60 (last run) = 20 cheap runs to guide,
    # so probe_after=0.5 probes once 10 of them are spent
    opt = get_optimizer("bo_mf", seed=0, transfer_check=True, probe_after=0.5, n_final=1, compute_budget=206, **FAST)
    extra = land._space.sample(10, method="sobol", seed=7)

    def after(n):
        X = [*design.X(), *extra[:n]]
        sources = [t.proposed_by for t in design.trials] + ["bo_mf/gp"] * n
        return mf_history(land, X, ["1m"] * 6 + ["60m"] + ["1m"] * n, sources=sources)

    early = after(0)
    pick = opt.suggest(early, 1)[0]
    assert pick.fidelity == "1m" and pick.source == "bo_mf/gp"
    assert np.all(opt.score_fidelities(early, extra)["60m"] == -np.inf)  # no target run before the probe
    assert opt.suggest(after(9), 1)[0].fidelity == "1m"
    probe = opt.suggest(after(10), 1)[0]
    assert (probe.source, probe.fidelity) == ("bo_mf/probe", "60m")
    with pytest.raises(ConfigError, match="probe_after must be a number in \\[0, 1\\), got 1"):
        get_optimizer("bo_mf", probe_after=1)


def test_a_failed_transfer_check_spends_the_rest_at_the_target_with_a_target_only_model():
    land = landscape("multiscale", k=3, seed=0)
    target = land  # the landscape's true_value is its target scale's
    center = land._space.center
    X = land._space.sample(256, method="random", seed=1)
    truth = np.array([target.true_value(land._space.to_mixture(x)) for x in X])
    worse, better = X[int(np.argmax(truth))], X[int(np.argmin(truth))]
    assert truth.max() > target.true_value(land._space.to_mixture(center)) > truth.min()
    opt = get_optimizer("bo_mf", seed=0, transfer_check=True, compute_budget=1000, **FAST)
    C = land._space.sample(8, method="random", seed=2)
    failed = probe_history(land, worse)  # the cheap scale's pick is worse than the center at the target
    (pick,) = opt.suggest(failed, 1)
    assert (pick.source, pick.fidelity) == ("bo_mf/target_only", "60m")
    scores = opt.score_fidelities(failed, C)
    assert np.all(scores["1m"] == -np.inf) and np.all(np.isfinite(scores["60m"]))
    rec = opt.recommend(failed)
    assert "transfer check failed" in rec.source and rec.trial in [t.number for t in failed.at("60m")]
    assert opt.transfer_check_failed(failed) is True
    assert get_optimizer("bo_mf", seed=0, **FAST).transfer_check_failed(failed) is None
    held = probe_history(land, better)  # it beats the center there: the multi-fidelity search goes on
    assert opt.suggest(held, 1)[0].source != "bo_mf/target_only"
    assert np.all(np.isfinite(opt.score_fidelities(held, C)["1m"]))
    assert "transfer check" not in opt.recommend(held).source
    assert opt.transfer_check_failed(held) is False
    # a probe still running decides nothing yet
    running = mf_history(land, design_history(land, targets=(0,)).X(), ["1m"] * 6 + ["60m"],
                         pending=[(worse, "60m")], sources=["bo_mf/init"] * 6 + ["bo_mf/init_target"])
    assert opt.suggest(running, 1)[0].source != "bo_mf/target_only"


def test_recommendation_is_the_target_prediction_with_its_sd():
    land = landscape("multiscale", k=3, seed=0)
    opt = get_optimizer("bo_mf", seed=0, **FAST)
    history = design_history(land)
    rec = opt.recommend(history)
    measured = history.at("60m")
    mean, sd = opt.predict(history, history.X(measured))
    i = int(np.argmin(mean))
    assert rec.value == pytest.approx(mean[i]) and rec.sd == pytest.approx(sd[i]) and rec.sd > 0
    assert rec.source == "posterior mean at the target, mixtures measured at the target"
    assert rec.weights == measured[i].weights and rec.trial == measured[i].number
    # the target prediction follows the target scale, not the cheap one
    assert abs(rec.value - land.true_value(rec.weights)) < abs(rec.value - land.at("1m").true_value(rec.weights))


def test_a_mixture_seen_only_at_the_cheap_scale_is_never_recommended():
    land = landscape("multiscale", k=3, seed=0)
    opt = get_optimizer("bo_mf", seed=0, **FAST)
    history = design_history(land, targets=(0,))  # one mixture measured at the target
    mean, _ = opt.predict(history, history.X())
    assert int(np.argmin(mean)) != 0  # the model prefers a cheap-only mixture ...
    rec = opt.recommend(history)  # ... yet the deployed one was measured at the target
    assert rec.trial == history.at("60m")[0].number and rec.weights == history.completed[0].weights
    # before any target run, every evaluated mixture competes through the task correlation
    cheap_only = design_history(land, targets=())
    mean, _ = opt.predict(cheap_only, cheap_only.X())
    assert opt.recommend(cheap_only).trial == cheap_only.completed[int(np.argmin(mean))].number


def test_a_study_runs_bo_mf_over_a_multiscale_landscape(tmp_path):
    land = landscape("multiscale", k=3, seed=1, noise_sd=0.005)
    study = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(land.domains), seed=0,
                               optimizer=get_optimizer("bo_mf", seed=0, n_init=4, n_target_init=1, target_share=0.5,
                                                       **FAST),
                               fidelities=land.fidelities)
    for _ in range(8):
        (t,) = study.ask()
        study.tell(t, land.evaluate(t.weights, TrialContext(t.number, t.seed, fidelity=t.fidelity)))
    fids = [t.fidelity for t in study.trials]
    assert fids[:5] == ["1m"] * 4 + ["60m"] and set(fids) <= {"1m", "60m"}
    compute = [land.fidelities[f] for f in fids]
    assert sum(c for c, f in zip(compute, fids) if f == "60m") >= 0.5 * (sum(compute) - 60)  # target share
    again = bomix.load_study(tmp_path / "s")
    assert again.recommend() == study.recommend() and study.recommend().sd is not None


def test_pool_mode_picks_run_scale_pairs_and_recommends_a_measured_target_run(tmp_path):
    from test_fidelity import toy_scales  # tests/ is on sys.path (rootdir-relative test modules)

    ev = ReplayScales(scales=toy_scales(n=14, small_level=1.0))  # the small scale's losses are the lowest
    opt = get_optimizer("bo_mf", seed=0, n_init=4, n_target_init=2, **FAST)
    study = bomix.create_study(tmp_path / "p", space=ev.space, optimizer=opt, pool=ev.pool,
                               fidelities=ev.fidelities)
    for _ in range(9):
        (t,) = study.ask()
        study.tell(t, ev.evaluate(t.weights, TrialContext(t.number, t.seed, fidelity=t.fidelity)))
    pairs = [(ev.nearest(t.weights), t.fidelity) for t in study.trials]
    assert len(set(pairs)) == len(pairs)  # no (run, scale) twice
    assert {r for r, f in pairs if f == "small"} & {r for r, f in pairs if f == "big"}  # a run at both scales
    # the target's design reruns the runs the cheap design picked (by maximin, not nearest its points)
    runs = {s: [ev.nearest(t.weights) for t in study.trials if t.proposed_by == s]
            for s in ("bo_mf/init", "bo_mf/init_target")}
    assert runs["bo_mf/init_target"] == runs["bo_mf/init"][:2]
    rec = study.recommend()
    at_target = [t for t in study.trials if t.fidelity == "big"]
    best = min(at_target, key=lambda t: t.value)
    assert (rec.trial, rec.value, rec.source) == (best.number, best.value, "best evaluated logged run at the target")


def test_bad_parameters_are_refused():
    with pytest.raises(ConfigError, match="target_share must be a number in \\[0, 1\\], got 1.5"):
        get_optimizer("bo_mf", target_share=1.5)
    with pytest.raises(ConfigError, match="n_target_init must be an integer >= 1, got 0"):
        get_optimizer("bo_mf", n_target_init=0)
    with pytest.raises(ConfigError, match="n_final must be an integer >= 1 or 'auto', got 0"):
        get_optimizer("bo_mf", n_final=0)
    with pytest.raises(ConfigError, match="transfer_check must be true or false, got 'yes'"):
        get_optimizer("bo_mf", transfer_check="yes")


@pytest.mark.parametrize("k, kernel_sees", [(5, None), (12, "Sqrt")])
def test_the_multi_task_gp_reads_many_domains_through_sqrt(k, kernel_sees):
    """As bo: sqrt(r) from 11 domains up (auto), the task index unchanged."""
    land = landscape("multiscale", k=k, seed=0)
    X = land._space.sample(8, method="sobol", seed=3)
    history = mf_history(land, [*X, X[0]], ["1m"] * 8 + ["60m"])
    model, names = get_optimizer("bo_mf", seed=0, **FAST)._fit(history)
    transform = getattr(model, "input_transform", None)
    assert (None if transform is None else type(transform).__name__) == kernel_sees
    if transform is not None:
        Xt = transform.transform(model.train_inputs[0][:0].new_tensor(np.hstack([X[:2], [[0.0], [1.0]]])))
        np.testing.assert_array_equal(Xt[:, -1].numpy(), [0.0, 1.0])
    raw, _ = get_optimizer("bo_mf", seed=0, inputs="raw", **FAST)._fit(history)
    assert getattr(raw, "input_transform", None) is None
