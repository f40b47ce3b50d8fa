"""The report's statistics and verdict: t-intervals and Wilcoxon p against hand-computed numbers, the
verdict on constructed benchmarks, and a headline that ranks by true values, not lucky noise."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import bomix
from bomix.optimizers import Recommendation
from bomix.optimizers.builtin import RandomSearch
from bomix.report import load, tables, verdict
from bomix.report.stats import paired, separation, t_ci, wilcoxon_p

# Student t quantiles t_{0.975, df}, copied from a printed table (not computed by scipy).
T975 = {2: 4.3027, 4: 2.7764, 5: 2.5706, 7: 2.3646}


def hand_ci(values):
    """mean ± t_{0.975,n-1}·sd/√n, from the formula and the table above."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T975[n - 1] * sd / math.sqrt(n)
    return mean, mean - half, mean + half


@pytest.mark.parametrize("values", [[1.0, 2.0, 3.0, 4.0, 5.0], [4.40, 4.42, 4.47]])
def test_t_interval_matches_the_formula(values):
    mean, lo, hi, n = t_ci(values)
    want = hand_ci(values)
    assert n == len(values)
    assert (mean, lo, hi) == pytest.approx(want, rel=1e-4)
    assert t_ci([1.0, 2.0, 3.0, 4.0, 5.0])[1:3] == pytest.approx((3 - 1.96324, 3 + 1.96324), abs=1e-4)


def test_t_interval_edge_cases():
    assert t_ci([])[3] == 0 and math.isnan(t_ci([])[0])
    mean, lo, hi, n = t_ci([4.2, float("nan"), None])
    assert (mean, n) == (4.2, 1) and math.isnan(lo) and math.isnan(hi)


def test_wilcoxon_against_the_exact_null_by_hand():
    # n = 6, no ties: W- = 6 (rank of |-6|). Subsets of {1..6} with rank sum <= 6: {}, {1}, {2}, {3},
    # {4}, {5}, {6}, {1,2}, {1,3}, {1,4}, {1,5}, {2,3}, {2,4}, {1,2,3} = 14 of 2^6 = 64 sign patterns,
    # so the two-sided p = 2 * 14 / 64.
    assert wilcoxon_p([1, 2, 3, 4, 5, -6]) == pytest.approx(2 * 14 / 64)
    # every difference positive: W- = 0 and only the empty subset reaches it: p = 2 / 64.
    assert wilcoxon_p([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) == pytest.approx(2 / 64)
    # zeros (ties) are dropped before ranking: the same p as the six nonzero differences alone
    assert wilcoxon_p([0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) == pytest.approx(2 / 64)
    assert wilcoxon_p([0.0, 0.0, 0.0]) == 1.0  # all ties: no evidence of a difference
    assert math.isnan(wilcoxon_p([]))


def test_paired_counts_interval_and_p():
    a = np.array([4.40, 4.41, 4.43, 4.385, 4.45, 4.42])
    d = np.array([-0.01, -0.02, 0.0, 0.005, -0.03, -0.04])
    b = a - d  # a - b == d
    got = paired(a, b)
    assert (got["n_pairs"], got["wins"], got["ties"], got["losses"]) == (6, 4, 1, 1)
    mean, lo, hi = hand_ci(list(a - b))
    assert got["mean_diff"] == pytest.approx(d.mean())
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((lo, hi), rel=1e-4)
    # the tie is dropped; ranks of |d| for the other five: 0.005 -> 1 (+), the rest 2..5 (-):
    # W+ = 1; rank sums <= 1 under the null: {} and {1}, 2 of 2^5 = 32; two-sided p = 2 * 2 / 32
    assert got["wilcoxon_p"] == pytest.approx(2 * 2 / 32)
    assert separation(got) == "within"  # the interval includes 0 and p = 0.125
    nan_pair = paired([1.0, np.nan, 3.0], [2.0, 2.0, np.nan])
    assert nan_pair["n_pairs"] == 1 and nan_pair["wins"] == 1


# -- the verdict on constructed benchmarks ---------------------------------------------------------
def fake(values: dict, fixed=("uniform",), kind="true"):
    """(finals, data) for methods {label: [deployed value per seed]}; best observed = deployed - 0.01."""
    rows = [{"label": label, "seed": s, "deployed": v, "deployed_kind": kind, "best_observed": v - 0.01}
            for label, vs in values.items() for s, v in enumerate(vs)]
    names = {"bo": "bo", "sobol": "sobol", "uniform": "uniform"}
    studies = {(label, s): SimpleNamespace(optimizer=SimpleNamespace(name=names.get(label, label),
                                                                     proposes_distinct=label != "uniform"))
               for label, vs in values.items() for s in range(len(vs))}
    return pd.DataFrame(rows), SimpleNamespace(studies=studies, fixed=set(fixed))


def run_verdict(values, **kw):
    finals, data = fake(values, **kw)
    tests = tables.paired_tests(finals, data)
    v = verdict.compute(finals, tests, tables.references(data))
    return v, " ".join(verdict.sentences(v))


NOISE = np.array([0.003, -0.002, 0.001, -0.001, 0.002, -0.0025, 0.0015, -0.0005])


def test_verdict_names_the_winner_and_its_margins():
    v, text = run_verdict({"sobol": list(4.35 + NOISE), "bo": list(4.30 + NOISE[::-1]), "uniform": [4.45] * 8})
    rows = v.set_index("role")
    assert rows.loc["winner", "label"] == "bo" and rows.loc["runner-up", "label"] == "sobol"
    assert rows.loc["best reference", "label"] == "uniform"
    bo_mean = (4.30 + NOISE[::-1]).mean()
    assert rows.loc["winner", "mean"] == pytest.approx(bo_mean)
    assert rows.loc["best reference", "advantage"] == pytest.approx(4.45 - bo_mean)
    assert rows.loc["best reference", "wins"] == 8
    assert rows.loc["best reference", "wilcoxon_p"] == pytest.approx(2 / 256)  # exact: 2 of 2^8 sign patterns
    assert rows.loc["runner-up", "separation"] == rows.loc["best reference", "separation"] == "beyond"
    assert text.startswith(f"bo deploys the best mixture: {bo_mean:.4f} nats/token")
    assert "noise-free value of its recommended mixture" in text
    assert f"better by {4.45 - bo_mean:.4f} nats/token" in text and "better on 8 of 8 paired seeds" in text
    assert "bo beats every other method beyond the noise, uniform included." in text
    assert "easy" not in text


def test_verdict_says_easy_when_uniform_ties_the_winner():
    v, text = run_verdict({"bo": list(4.40 + NOISE - 0.0002), "sobol": [4.42] * 8, "uniform": [4.40] * 8})
    rows = v.set_index("role")
    assert rows.loc["winner", "label"] == "bo" and rows.loc["best reference", "label"] == "uniform"
    assert rows.loc["best reference", "separation"] == "within"
    assert "uniform is within the noise of the winner: this benchmark is easy" in text


def test_verdict_says_tied_when_every_seed_ties():
    v, text = run_verdict({"bo": [4.30] * 8, "olmix": [4.30] * 8, "uniform": [4.45] * 8})
    assert "ties in all 8 paired seeds" in text
    assert "better by 0.0000" not in text and "worse by 0.0000" not in text


def test_verdict_when_the_reference_wins():
    v, text = run_verdict({"bo": list(4.41 + NOISE), "uniform": [4.40] * 8})
    assert v.set_index("role").loc["winner", "label"] == "uniform"
    assert "The winner is a trivial reference" in text and "This benchmark is easy." in text


def test_separation_has_three_states():
    assert separation({"ci_low": -0.2, "ci_high": -0.1, "wilcoxon_p": 0.01}) == "beyond"
    assert separation({"ci_low": -0.2, "ci_high": 0.1, "wilcoxon_p": 0.40}) == "within"
    assert separation({"ci_low": -0.2, "ci_high": -0.1, "wilcoxon_p": 0.25}) == "unsettled"  # tests disagree
    assert separation({"ci_low": -0.2, "ci_high": 0.1, "wilcoxon_p": 0.01}) == "unsettled"
    assert separation({"ci_low": math.nan, "ci_high": math.nan, "wilcoxon_p": 1.0}) == "unsettled"


def test_verdict_says_when_seeds_are_too_few():
    # bo is better on both seeds by 0.09-0.10 (the t-interval excludes 0), but 2 seeds cannot give p < 0.05
    _, text = run_verdict({"bo": [4.30, 4.31], "uniform": [4.40, 4.40]})
    assert "With 2 paired seeds no two-sided Wilcoxon test can reach p < 0.05" in text
    assert ("Whether bo beats uniform is not settled: the 95% CI of the difference excludes 0 but the Wilcoxon p "
            "is 0.50 over 2 paired seeds") in text
    assert "this benchmark is easy" not in text and "beyond the noise" not in text  # neither: not settled


def test_verdict_labels_observed_values_when_no_truth_is_known():
    _, text = run_verdict({"bo": list(4.30 + NOISE), "uniform": [4.40] * 8}, kind="observed")
    assert "the observed (noisy) value of its recommended trial; no noise-free value is known here" in text


# -- the headline uses true values ------------------------------------------------------------------
LANDSCAPE = {"name": "seedlike", "noise_sd": 0.017, "seed": 0}
SEEDS = range(6)


@pytest.fixture(scope="module")
def lucky_bench(tmp_path_factory):
    """Three methods whose trials are added by hand on the seedlike landscape, 6 seeds:
    "lucky" (sobol: recommends its best observed) saw a far-off mixture B with a very lucky draw:
        its best observed is the lowest of all, its truth the worst;
    "honest" (random, with a stand-in model that recommends its first trial, the optimum G) saw G
        with an unlucky draw and the uniform mixture C with a lucky one: best observed C, deployed G;
    "uniform" is the fixed uniform mixture C.
    The summaries (recommendations) are computed here, under the stand-in model, and cached."""
    out = tmp_path_factory.mktemp("lucky")
    ev = bomix.get_evaluator("landscape", **LANDSCAPE)
    space = bomix.MixtureSpace(list(ev.domains))
    good, bad = ev.optimum, dict(zip(ev.domains, [0.8, 0.05, 0.05, 0.05, 0.05]))
    center = dict(zip(ev.domains, space.center))
    assert ev.true_value(good) < ev.true_value(center) < ev.true_value(bad)

    def shifted(weights, to):  # the true losses of `weights`, shifted so that their mean is `to`
        return {n: v + to - ev.true_value(weights) for n, v in ev.true_losses(weights).items()}

    g = ev.true_value(good)
    plan = {"lucky": ("sobol", [(bad, g - 0.05), (good, g + 0.05)]),
            "honest": ("random", [(good, g + 0.02), (center, g + 0.01)]),
            "uniform": ("uniform", [(center, ev.true_value(center) + 0.01)])}
    for label, (name, trials) in plan.items():
        for s in SEEDS:
            study = bomix.create_study(out / "studies" / label / f"seed-{s}", space=space,
                                       optimizer=bomix.get_optimizer(name, seed=s), seed=s)
            for weights, to in trials:
                study.add_trial(weights, shifted(weights, to + 0.001 * s))
            study.close()
    (out / "benchmark.json").write_text(json.dumps({
        "methods": {label: {"name": n, "params": {}} for label, (n, _) in plan.items()}, "seeds": list(SEEDS),
        "budget": 2, "fixed": ["uniform"], "objective": "mean", "space": space.to_dict(),
        "evaluator": {"name": "landscape", "params": LANDSCAPE}, "bomix": bomix.__version__}))

    def model_pick(self, history):
        t = history.completed[0]
        return Recommendation(dict(t.weights), t.value, 0.01, "stand-in model", t.number)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RandomSearch, "recommend", model_pick)
        load([out])  # computes and caches every study's summary
    return out, ev, good, bad, center


def test_headline_ranks_by_true_values_not_lucky_noise(lucky_bench):
    out, ev, good, bad, center = lucky_bench
    t = tables.compute(load([out]))
    finals = t["finals_by_seed"].set_index(["label", "seed"])
    assert (finals["deployed_kind"] == "true").all()
    for s in SEEDS:  # noisy best observed says lucky; the deployed (true) value says honest
        assert finals.loc[("lucky", s), "best_observed"] < finals.loc[("honest", s), "best_observed"]
        assert finals.loc[("lucky", s), "deployed"] == pytest.approx(ev.true_value(bad))
        assert finals.loc[("honest", s), "deployed"] == pytest.approx(ev.true_value(good))  # what it deploys ...
        assert finals.loc[("honest", s), "true_of_best_observed"] == pytest.approx(ev.true_value(center))  # not C
    fs = t["final_summary"].set_index(["label", "metric"])["mean"]
    assert fs[("honest", "deployed")] < fs[("uniform", "deployed")] < fs[("lucky", "deployed")]
    tests = t["paired_tests"].set_index(["label", "reference", "metric"])
    row = tests.loc[("honest", "lucky", "deployed")]
    assert row["mean_diff"] == pytest.approx(ev.true_value(good) - ev.true_value(bad))
    assert (row["wins"], row["ties"], row["losses"]) == (6, 0, 0)
    assert tests.loc[("honest", "lucky", "best_observed"), "losses"] == 6  # the noisy view says the opposite
    v = t["verdict"].set_index("role")
    assert v.loc["winner", "label"] == "honest" and v.loc["best observed leader", "label"] == "lucky"
    text = " ".join(verdict.sentences(t["verdict"]))
    assert text.startswith("honest deploys the best mixture") and "lucky would look best" in text
    assert "The runner-up, uniform, is also the best trivial reference" in text


def test_without_a_truth_the_headline_is_the_observed_value(lucky_bench):
    out, ev, good, bad, center = lucky_bench
    study_dir = out / "studies" / "honest" / "seed-2"  # a single study: no evaluator named, no truth
    finals = tables.compute(load([study_dir]))["finals_by_seed"]
    assert finals["deployed_kind"].tolist() == ["observed"]
    g = ev.true_value(good)
    assert finals["deployed"].item() == pytest.approx(g + 0.02 + 0.002)  # the recommended trial (G), observed
    assert finals["best_observed"].item() == pytest.approx(g + 0.01 + 0.002)  # not the best observed one (C)
    assert math.isnan(finals["true_of_recommended"].item())
