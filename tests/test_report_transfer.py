"""`bomix report` on multi-fidelity studies: the scale-transfer section, its tables and figure."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

import bomix
from bomix.cli import main
from bomix.report import study_summary
from bomix.report.transfer import best_transfer, rank_transfer

SCALES = {"1m": 1.0, "60m": 60.0}
FAST = {"n_init": 2, "n_target_init": 1, "num_restarts": 2, "raw_samples": 32, "mc_samples": 16}


@pytest.fixture(scope="module")
def mf_study(tmp_path_factory):
    """A multiscale study (noise-free, k=3): 6 mixtures at 1m and at 60m, one more at 1m only."""
    ev = bomix.get_evaluator("landscape", name="multiscale", k=3, scales=SCALES, seed=2)
    d = tmp_path_factory.mktemp("mf") / "study"
    study = bomix.create_study(d, space=bomix.MixtureSpace(list(ev.domains)), seed=0,
                               optimizer=bomix.get_optimizer("bo_mf", seed=0, **FAST),
                               fidelities=ev.fidelities, target_fidelity=ev.target_fidelity)
    X = study.space.sample(7, method="sobol", seed=3)
    for scale, rows in (("1m", X), ("60m", X[:6])):
        for x in rows:
            losses = ev.loss_matrix_at(x[None], scale)[0]
            study.add_trial(x, dict(zip(ev.loss_names, losses.tolist())), fidelity=scale)
    study.close()
    return d, ev, X


def test_report_scale_transfer_matches_transfer_py(mf_study, tmp_path):
    d, ev, X = mf_study
    out = tmp_path / "report"
    assert main(["report", str(d), "-o", str(out)]) == 0
    small, big = ev.loss_matrix_at(X[:6], "1m"), ev.loss_matrix_at(X[:6], "60m")
    expected = rank_transfer(small, big, ev.loss_names, small.mean(1), big.mean(1), "objective (mean)")
    ranks = pd.read_csv(out / "transfer_ranks.csv")
    assert ranks["name"].tolist() == sorted(ev.loss_names) + ["objective (mean)"]
    got = ranks.set_index("name").loc[expected["name"]]
    np.testing.assert_allclose(got["spearman"], expected["spearman"])
    np.testing.assert_allclose(got["kendall"], expected["kendall"])
    assert (ranks["n"] == 6).all() and (ranks["fidelity"] == "1m").all() and (ranks["target"] == "60m").all()
    want = best_transfer(small.mean(1), big.mean(1))
    best = pd.read_csv(out / "transfer_best.csv").iloc[0]
    assert best["small_best_trial"] == want["small_best"] and best["target_best_trial"] == 7 + want["big_best"]
    assert best["small_best_rank_at_target"] == want["small_best_rank_at_big"]
    assert best["regret"] == pytest.approx(want["regret"]) and best["spearman"] == pytest.approx(
        expected["spearman"].iloc[-1])
    # predicted vs actual: each target trial against bo_mf's prediction from the trials before it
    preds = pd.read_csv(out / "transfer_predictions.csv")
    assert preds["trial"].tolist() == list(range(7, 13))
    study = bomix.load_study(d)
    h = study.history()
    before = dataclasses.replace(h, trials=tuple(t for t in h.trials if t.number < 9))
    mean, sd = study.optimizer.predict(before, study.trials[9].x[None])
    row = preds.set_index("trial").loc[9]
    assert row["predicted"] == pytest.approx(mean[0], rel=1e-6) and row["actual"] == study.trials[9].value
    assert (out / "transfer_prediction_scores.csv").is_file()
    assert (out / "figures" / "scale_transfer.png").stat().st_size > 10_000
    page = (out / "report.md").read_text()
    assert "## Scale transfer" in page and "![scale_transfer](figures/scale_transfer.png)" in page
    assert '"costs": {\n        "1m": 1.0,' in page  # the study's fidelities, in the configuration block
    # best so far counts the target's trials only, as Study.best_trial
    trials = pd.read_csv(out / "trials.csv")
    assert trials["best_so_far"].iloc[-1] == pytest.approx(big.mean(1).min())
    assert trials["best_so_far"].iloc[:7].isna().all() and set(trials["fidelity"]) == {"1m", "60m"}
    finals = pd.read_csv(out / "finals_by_seed.csv").iloc[0]
    assert finals["best_observed"] == pytest.approx(big.mean(1).min())
    assert finals["best_number"] == study.best_trial.number


def test_a_reversed_ranking_is_flagged(tmp_path):
    """Losses whose order flips between the scales: the report says the ranking does not hold."""
    space = bomix.MixtureSpace(["a", "b"])
    d = tmp_path / "flip"
    study = bomix.create_study(d, space=space, optimizer="sobol", fidelities=SCALES)
    for i, w in enumerate(np.linspace(0.1, 0.9, 5)):
        study.add_trial([w, 1 - w], {"a": 1.0 + i, "b": 1.0 + i}, fidelity="1m")  # lower than any at 60m
        study.add_trial([w, 1 - w], {"a": 2.0 - 0.1 * i, "b": 2.0 - 0.1 * i}, fidelity="60m")
    study.close()
    out = tmp_path / "report"
    assert main(["report", str(d), "-o", str(out)]) == 0
    best = pd.read_csv(out / "transfer_best.csv").iloc[0]
    assert best["spearman"] == pytest.approx(-1.0) and not best["holds"]
    assert best["small_best_rank_at_target"] == 5  # the 1m best is the 60m worst
    assert (out / "figures" / "scale_transfer.png").is_file()
    # "best" is the target's best (trial 9, 1.6), though a 1m trial has a lower value (trial 0, 1.0)
    finals = pd.read_csv(out / "finals_by_seed.csv").iloc[0]
    assert finals["best_number"] == 9 and finals["best_observed"] == pytest.approx(1.6)
    assert study_summary(bomix.load_study(d))["best_observed"] == {"trial": 9, "value": pytest.approx(1.6)}


def test_too_few_pairs_says_so(tmp_path):
    d = tmp_path / "few"
    study = bomix.create_study(d, space=bomix.MixtureSpace(["a", "b"]), optimizer="sobol", fidelities=SCALES)
    study.add_trial([0.5, 0.5], {"a": 3.0}, fidelity="1m")
    study.add_trial([0.5, 0.5], {"a": 2.0}, fidelity="60m")
    study.close()
    out = tmp_path / "report"
    assert main(["report", str(d), "-o", str(out)]) == 0
    assert "Not drawn: no multi-fidelity study has 3 or more mixtures run at both" in (out / "report.html").read_text()
    assert "sobol seed 0: 1" in (out / "report.md").read_text()
