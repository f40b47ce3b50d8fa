"""Scale-transfer diagnostics on a toy table whose answers are known by hand."""

import numpy as np
import pytest

from bomix.errors import ConfigError
from bomix.report.transfer import best_transfer, predicted_vs_actual, rank_transfer

SMALL = np.array([[1.0, 5.0], [2.0, 4.0], [3.0, 3.0], [4.0, 2.0], [5.0, 1.0]])
BIG = np.array([[1.5, 1.0], [1.0, 2.0], [3.0, 3.0], [4.0, 4.0], [5.0, 5.0]])  # a: one swap; b: reversed


def test_rank_transfer_per_loss_and_objective():
    table = rank_transfer(SMALL, BIG, ["a", "b"], SMALL.mean(1) + [0, 0, 0, 0, -1], BIG.mean(1), "mean")
    assert table["name"].tolist() == ["a", "b", "mean"]
    a, b = table.iloc[0], table.iloc[1]
    assert a["spearman"] == pytest.approx(0.9) and a["kendall"] == pytest.approx(0.8)  # one adjacent swap of 5
    assert b["spearman"] == pytest.approx(-1.0) and b["kendall"] == pytest.approx(-1.0)
    assert (table["n"] == 5).all()


def test_best_transfer_ranks_the_small_best_at_the_big_scale():
    small_values = np.array([3.0, 1.0, 2.0, 4.0])
    big_values = np.array([2.0, 2.5, 1.0, 3.0])
    out = best_transfer(small_values, big_values)
    assert out == {"n": 4, "small_best": 1, "small_best_rank_at_big": 3, "small_best_at_big": 2.5,
                   "big_best": 2, "big_best_value": 1.0, "regret": 1.5}


def test_predicted_vs_actual():
    out = predicted_vs_actual([1.0, 2.0, 3.0, 4.0], [1.0, 2.5, 3.0, 3.0], sd=[0.1, 0.1, 0.1, 0.6])
    assert out["mae"] == pytest.approx(0.375) and out["within_2sd"] == pytest.approx(0.75)
    assert predicted_vs_actual([1, 2, 3], [1, 2, 3])["within_2sd"] is None


def test_mismatched_tables_are_refused():
    with pytest.raises(ConfigError, match="same mixtures at both scales .* shapes \\(5, 2\\) and \\(4, 2\\)"):
        rank_transfer(SMALL, BIG[:4], ["a", "b"])
    with pytest.raises(ConfigError, match="one column per name"):
        rank_transfer(SMALL, BIG, ["a"])
