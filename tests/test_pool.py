"""Pool search: any optimizer searching a replay evaluator's logged runs (bomix.optimizers.pool)."""

import json
from collections import Counter

import numpy as np
import pytest

import bomix
from bomix.errors import ConfigError, InvalidSpaceError, SpecMismatchError
from bomix.optimizers import History, get_optimizer
from bomix.optimizers.bo import BayesOpt
from bomix.optimizers.pool import PoolSearch, check_pool, nearest_rows
from bomix.trial import Trial, TrialState

FAST_BO = {"n_init": 4, "num_restarts": 2, "raw_samples": 32, "mc_samples": 16}


def rows_of(ev, study):
    return [int(nearest_rows(ev.pool, t.x)[0]) for t in study.trials]


def test_bo_ranks_untried_runs_by_its_acquisition_and_keeps_earlier_picks_pending(pool_ev):
    space, objective = pool_ev.space, bomix.Objective.parse("mean")
    search = PoolSearch(BayesOpt(seed=0, **FAST_BO), pool_ev.pool)
    trials = []
    for number in range(7):
        history = History(space, objective, tuple(trials))
        proposals = search.suggest(history, 2 if number == 5 else 1)  # one batch of two, with a pending trial
        rows = [p.info["pool_row"] for p in proposals]
        assert all(np.array_equal(p.weights, pool_ev.pool[r]) for p, r in zip(proposals, rows))
        taken = set(nearest_rows(pool_ev.pool, np.array([t.x for t in trials])).tolist()) if trials else set()
        assert not taken & set(rows) and len(set(rows)) == len(rows)
        for p in proposals:
            ev = pool_ev.evaluate(space.to_mixture(p.weights))
            state = TrialState.RUNNING if number == 3 else TrialState.COMPLETED  # one stays pending
            trials.append(Trial(len(trials), ev.weights, state=state, proposed_by=p.source or "bo",
                                losses=ev.losses if state is TrialState.COMPLETED else None))
    assert proposals[-1].source == "bo/ranked" and "score" in proposals[-1].info
    history = History(space, objective, tuple(trials))
    assert search.suggest(history, 1)[0].weights.tolist() == search.suggest(history, 1)[0].weights.tolist()


def test_a_study_on_a_pool_never_repeats_a_run_stores_the_pool_and_resumes(tmp_path, pool_ev):
    s = bomix.create_study(tmp_path / "s", space=pool_ev.space, optimizer=BayesOpt(seed=0, **FAST_BO), seed=0,
                           pool=pool_ev.pool)
    s.optimize(pool_ev, 8, show_progress=False)
    assert len(set(rows_of(pool_ev, s))) == 8
    assert all(t.extra["replay_distance"] == 0 for t in s.trials)  # only logged runs were asked for
    s.close()
    spec = json.loads((tmp_path / "s" / "study.json").read_text())
    assert len(spec["pool"]) == 40 and "pool" not in spec["space"]
    again = bomix.load_study(tmp_path / "s")
    assert np.array_equal(again.pool, pool_ev.pool)
    assert [t.weights for t in again.trials] == [t.weights for t in s.trials]
    again.close()
    resumed = bomix.create_study(tmp_path / "s", space=pool_ev.space, optimizer=BayesOpt(seed=0, **FAST_BO), seed=0,
                                 load_if_exists=True)  # pool=None on resume: the stored pool
    assert np.array_equal(resumed.pool, pool_ev.pool)
    resumed.close()
    with pytest.raises(SpecMismatchError, match="pool: stored 40 runs, given 39 runs"):
        bomix.create_study(tmp_path / "s", space=pool_ev.space, optimizer=BayesOpt(seed=0, **FAST_BO), seed=0,
                           load_if_exists=True, pool=pool_ev.pool[:-1])


@pytest.mark.parametrize("method, params", [
    ("random", {}), ("sobol", {}), ("bimix", {"n0": 6}), ("mixing_laws", {"n0": 6}),
    ("regmix", {"regressor": "linear", "n0": 6}), ("olmix", {"n0": 6}), ("uniform", {}),
])
def test_every_method_runs_distinct_logged_runs_and_recommends_one_it_evaluated(tmp_path, pool_ev, method, params):
    optimizer = get_optimizer(method, seed=1, **params)
    s = bomix.create_study(tmp_path / method, space=pool_ev.space, optimizer=optimizer, seed=1, pool=pool_ev.pool)
    s.optimize(pool_ev, 12, show_progress=False)
    assert len(set(rows_of(pool_ev, s))) == 12
    assert all(t.extra["replay_distance"] < 1e-9 for t in s.trials)
    rec = s.recommend()
    evaluated = [t.weights for t in s.trials if t.state is TrialState.COMPLETED]
    assert rec is not None and rec.weights in evaluated and rec.trial is not None
    assert s.trials[rec.trial].weights == rec.weights
    if method in ("bimix", "mixing_laws", "regmix", "olmix"):  # the law ranked runs after its design
        sources = Counter(t.proposed_by for t in s.trials)
        assert sources[f"{method}/design"] == 6 and sources[f"{method}/ranked"] == 6, sources


def test_a_law_whose_optimum_is_an_unevaluated_run_recommends_the_best_evaluated_one(tmp_path, pool_ev):
    law = get_optimizer("regmix", seed=0, regressor="linear", n0=6)
    s = bomix.create_study(tmp_path / "s", space=pool_ev.space, optimizer=law, seed=0, pool=pool_ev.pool)
    s.optimize(pool_ev, 8, show_progress=False)
    own = law.recommend(s.history())  # the law's optimum: a point no trial evaluated
    assert own.trial is None
    rec = s.recommend()
    done = [t for t in s.trials if t.state is TrialState.COMPLETED]
    values = [s.objective(t.losses) for t in done]
    best = done[int(np.argmin(values))]
    assert rec.trial == best.number and rec.weights == best.weights  # the best logged run, not a prediction
    assert rec.value == pytest.approx(min(values)) and rec.sd is None
    assert rec.source == "best evaluated logged run"


def test_random_search_on_a_pool_is_seeded_and_resumes(tmp_path, pool_ev):
    def rows(seed, n, split=None):
        path = tmp_path / f"r{seed}-{split}"
        s = bomix.create_study(path, space=pool_ev.space, optimizer="random", seed=seed, pool=pool_ev.pool)
        s.optimize(pool_ev, split or n, show_progress=False)
        if split:
            s.close()
            s = bomix.load_study(path)
            s.optimize(pool_ev, n, show_progress=False)
        return rows_of(pool_ev, s)

    assert rows(0, 10) == rows(0, 10, split=4) != rows(1, 10)


def test_design_points_spread_over_a_sparse_pool_instead_of_piling_onto_hub_runs():
    """8 domains: 4 dense "hub" runs near the centre and 120 sparse runs (2 domains each). The run
    nearest most interior Sobol points is a hub; the maximin rule spreads the design instead."""
    rng = np.random.default_rng(0)
    k = 8
    hubs = rng.dirichlet(np.full(k, 50.0), 4)
    sparse = np.zeros((120, k))
    for row in sparse:
        pair = rng.choice(k, 2, replace=False)
        row[pair] = rng.dirichlet([1.0, 1.0])
    pool = np.vstack([hubs, sparse])
    space = bomix.MixtureSpace([f"d{i}" for i in range(k)])
    history = History(space, bomix.Objective.parse("mean"))
    for seed in range(4):
        picks = PoolSearch(get_optimizer("sobol", seed=seed), pool).suggest(history, 8)
        rows = [p.info["pool_row"] for p in picks]
        assert len(set(rows)) == 8 and sum(r < 4 for r in rows) <= 1, rows  # at most the first pick is a hub
        assert [p.info["pool_rule"] for p in picks] == ["nearest"] + ["maximin"] * 7
    snapped = [int(nearest_rows(pool, x)[0]) for x in space.sample(8, method="sobol", seed=0)]
    assert sum(r < 4 for r in snapped) >= 4  # what snapping each Sobol point would have done


@pytest.mark.parametrize("n_runs", [40, 64, 300])
def test_seeds_start_from_different_designs_on_a_small_pool_too(n_runs):
    """The maximin design chooses among a seeded random subset of the free runs: on a pool no
    larger than the subset itself (olmix's reuse swarm has 64 runs) seeds must still differ."""
    pool = np.random.default_rng(1).dirichlet(np.full(6, 0.5), n_runs)
    space = bomix.MixtureSpace([f"d{i}" for i in range(6)])
    history = History(space, bomix.Objective.parse("mean"))
    # bo starts at the centre for every seed: only the design rule can tell its seeds apart
    designs = {tuple(p.info["pool_row"] for p in PoolSearch(BayesOpt(seed=seed, **FAST_BO), pool).suggest(history, 4))
               for seed in range(4)}
    assert len(designs) == 4, designs


def test_a_pool_evaluator_needs_a_study_that_searches_its_pool(tmp_path, pool_ev, csvs):
    plain = bomix.create_study(tmp_path / "plain", space=pool_ev.space, seed=0)
    with pytest.raises(ConfigError, match="pool=evaluator.pool"):
        plain.optimize(pool_ev, 2, show_progress=False)
    other = bomix.create_study(tmp_path / "other", space=pool_ev.space, seed=0, pool=pool_ev.pool[:10])
    with pytest.raises(ConfigError, match="must be the study's pool"):
        other.optimize(pool_ev, 2, show_progress=False)
    assert plain.trials == [] and other.trials == []
    with pytest.raises(InvalidSpaceError, match="pool row 1"):
        check_pool(pool_ev.space, [[0.5, 0.5, 0.0], [0.5, 0.6, 0.0]])
    with pytest.raises(InvalidSpaceError, match="shape"):
        check_pool(pool_ev.space, [[0.5, 0.5]])
    # bomix run: the study gets the evaluator's pool
    from bomix.cli import _campaign
    from bomix.config import load_config

    ratios, metrics = csvs
    config = load_config(None, [f'study.dir="{tmp_path / "run"}"', "study.n_trials=3", 'optimizer.name="bo"',
                                f"space.domains={json.dumps(list(pool_ev.domains))}", 'evaluator.name="replay"',
                                f'evaluator.params={{ratios = "{ratios}", metrics = "{metrics}"}}'])
    study, _ = _campaign(config, show_progress=False)
    assert np.array_equal(study.pool, pool_ev.pool) and len(set(rows_of(pool_ev, study))) == 3
