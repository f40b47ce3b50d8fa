"""olmix's published swarms read as they are, and olmix's task-family objective.

The shipped files (../shared/data/olmix-swarms, skipped when absent) start with pandas' unnamed
index column; read_runs, the replay evaluator and import_runs must drop it. The "families"
objective is checked by hand against pandas on the DCLM swarm; the kind-by-kind checks of
`linear_weights` need no data.
"""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bomix
from bomix.errors import ConfigError, EvaluationError
from bomix.evaluators.replay import ReplayEvaluator
from bomix.export import read_runs
from bomix.objective import Objective

OLMIX = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "olmix-swarms"
SWARMS = {  # prefix: (runs, domains, metrics)
    "dclm": (127, 24, 110),
    "full_reuse_update_5_seed_0": (64, 22, 110),
}
NOISY = ["qasper_yesno:rc::olmes", "sciriff_yesno:rc::olmes", "lab_bench_dbqa", "lab_bench_protocolqa",
         "medqa_en:rc::none"]  # olmix's drop_metrics that the swarms report (the other two, *_masked_ppl, they lack)


@pytest.fixture
def olmix() -> Path:
    if not OLMIX.exists():
        pytest.skip("../shared/data/olmix-swarms is not beside this checkout")
    return OLMIX


def _pair(root: Path, prefix: str) -> tuple[Path, Path]:
    return root / f"{prefix}_ratios.csv", root / f"{prefix}_metrics.csv"


def _header(path: Path) -> list[str]:
    return path.read_text().splitlines()[0].split(",")


# -- reading the files as published ---------------------------------------------------------
QUIET = pytest.mark.filterwarnings("error::pandas.errors.PerformanceWarning")  # 110 columns: no "fragmented" warning


@QUIET
@pytest.mark.parametrize("prefix", list(SWARMS))
def test_read_runs_drops_the_leading_pandas_index_column(olmix, prefix):
    ratios, metrics = _pair(olmix, prefix)
    assert _header(ratios)[:4] == ["", "run", "name", "index"]  # the file really has the unnamed column
    key, r, m, domains, loss_names = read_runs(ratios, metrics)
    n, k, n_metrics = SWARMS[prefix]
    assert key == "run" and len(r) == len(m) == n
    assert domains == _header(ratios)[4:] and len(domains) == k
    assert loss_names == _header(metrics)[4:] and len(loss_names) == n_metrics
    assert list(m["run"]) == list(r["run"])


@QUIET
@pytest.mark.parametrize("prefix", list(SWARMS))
def test_replay_pool_loads_both_swarms(olmix, prefix):
    ratios, metrics = _pair(olmix, prefix)
    ev = ReplayEvaluator(ratios=ratios, metrics=metrics, mode="pool")
    n, k, n_metrics = SWARMS[prefix]
    assert ev.domains == tuple(_header(ratios)[4:]) and "Unnamed: 0" not in ev.domains
    assert ev.loss_names == tuple(_header(metrics)[4:])
    assert ev.logged.shape == (n, k) and ev.logged_losses.shape == (n, n_metrics)
    assert ev.pool is not None and np.array_equal(ev.pool, ev.logged)
    raw_r, raw_m = pd.read_csv(ratios, index_col=0), pd.read_csv(metrics, index_col=0).set_index("run")
    assert np.allclose(ev.logged.sum(axis=1), 1, atol=1e-12)  # olmix rows sum to 1 up to float rounding
    assert np.allclose(ev.logged, raw_r[list(ev.domains)].to_numpy(), atol=1e-12)
    assert np.array_equal(ev.logged_losses, raw_m.loc[ev.runs, list(ev.loss_names)].to_numpy())


def test_import_runs_takes_the_shipped_files(olmix, tmp_path):
    ratios, metrics = _pair(olmix, "full_reuse_update_5_seed_0")
    domains = _header(ratios)[4:]
    study = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(domains))
    trials = study.import_runs(ratios, metrics)
    assert len(trials) == 64 and all(len(t.losses) == 110 for t in trials)
    assert list(trials[0].weights) == domains and trials[0].extra["imported_from"] == "hi7doihy"
    raw = pd.read_csv(ratios, index_col=0).set_index("run")
    assert np.allclose([list(t.weights.values()) for t in trials], raw.loc[[t.extra["imported_from"] for t in trials],
                                                                          domains].to_numpy(), atol=1e-12)


def test_a_leading_unnamed_column_is_dropped_from_a_dataframe_too(tmp_path):
    """pd.read_csv of a file written with index=True gives "Unnamed: 0" first: dropped, in either table."""
    keys = {"run": ["r0", "r1"], "name": "toy", "index": [0, 1]}
    r = pd.DataFrame({**keys, "a": [0.5, 0.2], "b": [0.5, 0.8]})
    m = pd.DataFrame({**keys, "a": [3.1, 3.2], "b": [3.3, 3.0]})
    r.to_csv(tmp_path / "r.csv")  # index=True: the olmix shape
    m.to_csv(tmp_path / "m.csv", index=False)
    for ratios in (tmp_path / "r.csv", pd.read_csv(tmp_path / "r.csv")):
        _, _, _, domains, loss_names = read_runs(ratios, tmp_path / "m.csv")
        assert domains == ["a", "b"] and loss_names == ["a", "b"]


# -- olmix's task-family objective ----------------------------------------------------------
def _by_hand(row: pd.Series) -> float:
    """The DCLM config's objective computed from the column names alone: math = minerva_math_*,
    code = HumanEval and the MBPPs, qa = the rest less the noisy five; weights 7 : 19 : 26."""
    math = [c for c in row.index if c.startswith("minerva_math_")]
    code = [c for c in row.index if c.startswith(("codex_humaneval", "mbpp", "mt_mbpp"))]
    qa = [c for c in row.index if c not in math + code + NOISY]
    assert (len(math), len(code), len(qa)) == (7, 19, 79)
    return (7 * row[math].mean() + 19 * row[code].mean() + 26 * row[qa].mean()) / 52


@pytest.fixture
def dclm(olmix):
    """(the objective built from olmix's config, the DCLM metrics indexed by run, their metric names)."""
    objective = Objective.from_olmix_config(olmix / "dclm_fit_config.yaml")
    metrics = pd.read_csv(olmix / "dclm_metrics.csv", index_col=0).set_index("run").drop(columns=["name", "index"])
    return objective, metrics, list(metrics.columns)


def test_the_olmix_config_gives_its_families_weights_and_drops(dclm):
    objective, _, names = dclm
    assert objective.kind == "families"
    assert {f: len(v) for f, v in objective.families.items()} == {"math": 7, "code": 19, "qa": 84}
    assert objective.weights == pytest.approx({"math": 7 / 52, "code": 19 / 52, "qa": 26 / 52})
    assert len(objective.drop) == 7 and set(NOISY) < set(objective.drop)
    read = objective.required(dict.fromkeys(names))
    assert len(read) == 105 and not set(read) & set(NOISY)


def test_the_family_objective_matches_pandas_by_hand(dclm, olmix):
    objective, metrics, names = dclm
    ev = ReplayEvaluator(ratios=olmix / "dclm_ratios.csv", metrics=olmix / "dclm_metrics.csv")
    values = ev.logged_values(objective)
    for run in [metrics.index[0], metrics.index[77], ev.runs[int(values.argmin())]]:
        row = metrics.loc[run]
        assert objective(row.to_dict()) == pytest.approx(_by_hand(row), rel=1e-12)
        assert values[ev.runs.index(run)] == pytest.approx(_by_hand(row), rel=1e-12)
    read = objective.required(dict.fromkeys(names))
    assert np.allclose(objective.of_rows(read, metrics[read].to_numpy()), values, rtol=1e-12)


def test_dropped_metrics_do_not_move_the_objective(dclm):
    objective, metrics, _ = dclm
    losses = metrics.iloc[5].to_dict()
    base = objective(losses)
    for name in NOISY:
        assert objective({**losses, name: losses[name] + 100.0}) == base
    kept = "arc_easy:rc::olmes"  # one of the 79 qa tasks kept: moves it by 26/52 / 79 per unit
    assert objective({**losses, kept: losses[kept] + 1.0}) - base == pytest.approx(26 / 52 / 79)


def test_the_family_objective_round_trips_through_study_json(dclm, tmp_path):
    objective, metrics, names = dclm
    stored = json.loads(json.dumps(objective.to_dict()))
    assert stored == {"kind": "families", "families": objective.families, "weights": objective.weights,
                      "drop": objective.drop}
    assert Objective.parse(stored) == objective
    space = bomix.MixtureSpace(["a", "b"])
    bomix.create_study(tmp_path / "s", space=space, objective=objective).close()
    reloaded = bomix.load_study(tmp_path / "s").objective
    assert reloaded == objective
    assert reloaded.required(dict.fromkeys(names)) == objective.required(dict.fromkeys(names))
    losses = metrics.iloc[0].to_dict()
    assert reloaded(losses) == objective(losses)


# -- linear weights, kind by kind (no data needed) ------------------------------------------
NAMES = ["web", "code", "mmlu_a", "mmlu_b", "math_x", "noisy"]
LINEAR = {
    "mean": Objective("mean"),
    "mean-over-domains": Objective("mean", domains=["code", "web"]),
    "weighted": Objective("weighted", weights={"web": 1, "code": 3, "noisy": 0}),
    "target": Objective("target:mmlu_b"),
    "families": Objective.parse({"kind": "families", "weights": {"qa": 2, "code": 1, "all": 1},
                                 "families": {"qa": ["mmlu_*", "web"], "code": ["code"], "all": ["*"]},
                                 "drop": ["noisy", "absent_metric"]}),
}


@pytest.mark.parametrize("objective", list(LINEAR.values()), ids=list(LINEAR))
def test_linear_weights_reproduce_the_objective(objective):
    rng = np.random.default_rng(0)
    read = objective.required(dict.fromkeys(NAMES))
    for names in (read, NAMES, NAMES[::-1]):
        w = objective.linear_weights(names)
        assert w.shape == (len(names),) and w.sum() == pytest.approx(1) and (w >= 0).all()
        rows = rng.uniform(2, 4, (5, len(names)))
        for row in rows:
            assert w @ row == pytest.approx(objective(dict(zip(names, row))), rel=1e-12)
    L = rng.uniform(2, 4, (5, len(read)))
    assert np.allclose(objective.of_rows(read, L), L @ objective.linear_weights(read), rtol=1e-12)
    assert objective.linear_weights(read).astype(bool).sum() >= 1


def test_family_weights_spread_each_family_over_its_members():
    w = dict(zip(NAMES, LINEAR["families"].linear_weights(NAMES)))
    # qa (1/2): mmlu_a, mmlu_b, web; code (1/4): code; all (1/4): every name but noisy (5)
    assert w["mmlu_a"] == pytest.approx(1 / 2 / 3 + 1 / 4 / 5)
    assert w["code"] == pytest.approx(1 / 4 + 1 / 4 / 5)
    assert w["math_x"] == pytest.approx(1 / 4 / 5) and w["noisy"] == 0


def test_worst_has_no_linear_weights_and_a_missing_loss_is_named():
    assert Objective("worst").linear_weights(NAMES) is None
    with pytest.raises(EvaluationError, match=re.escape("the target objective needs losses for ['mmlu_b'], got")):
        LINEAR["target"].linear_weights(["web", "code"])


def test_a_trial_the_family_objective_cannot_read_has_no_value_in_the_table(tmp_path):
    """trials_dataframe re-scores under another objective; a family pattern that matches none of a
    trial's losses leaves its value empty instead of failing the whole table."""
    study = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(["a", "b"]), objective="target:arc")
    study.add_trial([0.5, 0.5], {"mmlu_x": 3.0, "arc": 2.0})
    study.add_trial([0.2, 0.8], {"arc": 2.5, "code": 1.0})
    other = {"kind": "families", "families": {"qa": ["mmlu_*"], "all": ["*"]}}
    df = study.trials_dataframe(objective=other)
    assert df["value"].iloc[0] == pytest.approx((3.0 + (3.0 + 2.0) / 2) / 2) and pd.isna(df["value"].iloc[1])
    study.close()


def test_a_config_names_olmix_fit_config_and_the_study_keeps_the_resolved_families(olmix):
    spec = {"olmix_config": str(olmix / "dclm_fit_config.yaml")}
    objective = Objective.parse(spec)
    assert objective == Objective.from_olmix_config(olmix / "dclm_fit_config.yaml") and objective.kind == "families"
    assert Objective.parse(objective.to_dict()) == objective and "olmix_config" not in objective.to_dict()
    with pytest.raises(ConfigError, match="olmix_config must stand alone"):
        Objective.parse({**spec, "kind": "mean"})
