"""`bomix report`: tables, figures and a self-contained report.html from benchmark and study directories."""

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

import bomix
from bomix.cli import main
from bomix.errors import ConfigError
from bomix.report import collect, report

LANDSCAPE = {"name": "seedlike", "noise_sd": 0.017, "seed": 0}
SEEDS = (0, 1)
BUDGET = 8
METHODS = {  # label -> (optimizer, params, trials)
    "bo": ("bo", {"n_init": 4, "num_restarts": 2, "raw_samples": 32, "mc_samples": 16}, BUDGET),
    "sobol": ("sobol", {}, BUDGET),
    "random": ("random", {}, BUDGET),
    "uniform": ("uniform", {}, 1),
}


def make_benchmark(out, methods=METHODS, seeds=SEEDS, budget=BUDGET):
    """A benchmark directory as `bomix benchmark` writes it: benchmark.json + studies/<label>/seed-<s>/."""
    ev = bomix.get_evaluator("landscape", **LANDSCAPE)
    space = bomix.MixtureSpace(list(ev.domains))
    for label, (name, params, n) in methods.items():
        for s in seeds:
            study = bomix.create_study(out / "studies" / label / f"seed-{s}", space=space,
                                       optimizer=bomix.get_optimizer(name, seed=s, **params), seed=s)
            study.optimize(ev, n_trials=n, show_progress=False)
            if label == "sobol" and s == 0:
                study.replicate(ev, top=1, repeats=2, show_progress=False)
            study.close()
    (out / "benchmark.json").write_text(json.dumps({
        "methods": {label: {"name": n, "params": p} for label, (n, p, _) in methods.items()},
        "seeds": list(seeds), "budget": budget, "fixed": [lb for lb, (_, _, n) in methods.items() if n < budget],
        "objective": "mean", "space": space.to_dict(), "evaluator": {"name": "landscape", "params": LANDSCAPE},
        "bomix": bomix.__version__}))
    return out


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return make_benchmark(tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def built(bench, tmp_path_factory):
    """The report of `bench`, written by the command line."""
    out = tmp_path_factory.mktemp("report")
    assert main(["report", str(bench), "-o", str(out)]) == 0
    return out


def test_files_exist(built):
    for name in ("report.html", "report.md", "trials.csv", "final_summary.csv", "finals_by_seed.csv",
                 "paired_tests.csv", "trials_to_reach.csv", "recommended_mixtures.csv", "domain_losses.csv",
                 "recommendations.csv", "replicates.csv", "surrogate.csv", "surrogate_scores.csv", "verdict.csv"):
        assert (built / name).is_file(), name
    for stem in ("best_so_far", "best_so_far_cost", "final_values", "recommended_mixtures", "domain_losses",
                 "trajectory", "predicted_vs_actual"):
        assert (built / "figures" / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", stem


def test_trials_table(built):
    df = pd.read_csv(built / "trials.csv")
    assert set(df["label"]) == set(METHODS) and set(df["seed"]) == set(SEEDS)
    for (label, seed), g in df.groupby(["label", "seed"]):
        best = g["best_so_far"].dropna().to_numpy()
        assert np.all(np.diff(best) <= 0), (label, seed)  # running minimum
        done = g[(g["state"] == "completed") & g["replicate_of"].isna()]
        assert best[-1] == pytest.approx(done["value"].min())
    assert df["true_value"].notna().all()  # a landscape knows its truth
    assert {"w_books", "loss_books", "cost_seconds", "proposed_by"} <= set(df.columns)
    assert (df["replicate_of"].notna()).sum() == 2  # the sobol seed-0 replicates


def test_final_values_and_tests(built):
    fs = pd.read_csv(built / "final_summary.csv", dtype={"kind": str})
    assert {"deployed", "best_observed", "true_of_best_observed", "replicated"} <= set(fs["metric"])
    assert set(fs.loc[fs["metric"] == "deployed", "kind"]) == {"true"}  # a landscape: the headline is noise-free
    ci = fs.dropna(subset=["ci_low"])
    assert len(ci) and ((ci["ci_low"] <= ci["mean"]) & (ci["mean"] <= ci["ci_high"])).all()
    finals = pd.read_csv(built / "finals_by_seed.csv")
    bo = finals[finals["label"] == "bo"]
    assert bo["best_observed"].mean() == pytest.approx(
        fs.query("label == 'bo' and metric == 'best_observed'")["mean"].item())
    assert (finals["deployed"] == finals["true_of_recommended"]).all()
    paired = pd.read_csv(built / "paired_tests.csv", keep_default_na=False, na_values=[""])
    for metric in ("deployed", "best_observed"):
        row = paired.query(f"label == 'bo' and reference == 'sobol' and metric == '{metric}'")
        assert len(row) == 1 and row["n_pairs"].item() == len(SEEDS)
        assert row[["wins", "ties", "losses"]].sum(axis=1).item() == len(SEEDS)
    assert len(paired) == 2 * len(METHODS) * (len(METHODS) - 1)  # every ordered pair, on both values
    assert (paired["role"].str.contains("best baseline")).any()
    assert (paired.query("reference == 'uniform' and label != 'uniform'")["role"].str.contains("best reference")).all()
    at = pd.read_csv(built / "at_budgets.csv")
    assert set(at["metric"]) == {"best_so_far", "true_of_best_so_far"}
    at = at[at["metric"] == "best_so_far"]
    trials = pd.read_csv(built / "trials.csv")
    for (label, budget), row in at.set_index(["label", "budget"]).iterrows():
        firsts = trials[(trials["label"] == label) & (trials["trial_index"] <= budget)]
        per_seed = firsts.groupby("seed")["best_so_far"].last()
        assert row["median"] == pytest.approx(per_seed.median()) and row["n"] == len(per_seed), (label, budget)
    assert sorted(set(at["budget"])) == sorted({max(1, round(f * BUDGET)) for f in (0.25, 0.5, 1)})
    reach = pd.read_csv(built / "trials_to_reach.csv")
    assert set(reach["label"]) == set(METHODS) and (reach["median_trials"].dropna() <= BUDGET).all()
    mix = pd.read_csv(built / "recommended_mixtures.csv")
    assert mix.groupby("label")["weight"].sum().to_numpy() == pytest.approx(1.0)
    losses = pd.read_csv(built / "domain_losses.csv", dtype={"kind": str})
    assert set(losses["domain"]) == {"books", "cc", "stack", "pes2o", "reddit"} and set(losses["kind"]) == {"true"}


def test_html_is_self_contained(built):
    page = (built / "report.html").read_text()
    assert "<title>bomix report</title>" in page
    srcs = re.findall(r"""\bsrc\s*=\s*["']([^"']*)""", page)
    assert len(srcs) == 7 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page
    for word in ("Paired tests", "Trials needed", "smaller budgets", "Configuration and versions", "botorch", "python",
                 "Protocol: per input"):
        assert word in page
    assert page.index("<h2>Verdict</h2>") < page.index("<h2>Final values at the budget</h2>")  # it answers first
    md = (built / "report.md").read_text()
    assert "![best_so_far](figures/best_so_far.png)" in md and "| label |" in md
    assert md.index("## Verdict") < md.index("## Final values at the budget") and "deploys the best mixture" in md


def test_python_api_on_a_single_study(bench, tmp_path):
    study_dir = bench / "studies" / "sobol" / "seed-1"
    lines = []
    path = report([study_dir], tmp_path / "one", log=lines.append)
    assert path == tmp_path / "one" / "report.html" and path.is_file()
    assert lines and all(line.startswith("report: ") for line in lines)  # progress, one line per step
    df = pd.read_csv(tmp_path / "one" / "trials.csv")
    assert set(df["label"]) == {"sobol"} and set(df["seed"]) == {1} and df["true_value"].isna().all()
    page = path.read_text()
    assert "Not drawn: no bo study" in page  # a figure without its data is a note, not a failure
    assert all(s.startswith("data:") for s in re.findall(r"""\bsrc="([^"]*)""", page))


def test_collect_mixes_benchmark_and_study(bench):
    df = collect([bench / "studies" / "random" / "seed-0"])
    assert list(df["label"].unique()) == ["random"] and df["number"].tolist() == list(range(BUDGET))


@pytest.mark.parametrize("make", [lambda p: p / "missing", lambda p: p])
def test_bad_input_names_the_path(tmp_path, capsys, make):
    bad = make(tmp_path)
    with pytest.raises(ConfigError, match=re.escape(str(bad))):
        collect([bad])
    assert main(["report", str(bad), "-o", str(tmp_path / "out")]) == 2
    assert str(bad) in capsys.readouterr().err


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="no chromium or chromium-browser on PATH")
def test_report_renders_in_headless_chromium(built, tmp_path):
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
           (built / "report.html").resolve().as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    assert "<title>bomix report</title>" in dom
    assert 'data-images-ok="true"' in dom and 'data-images="7"' in dom


def test_single_fidelity_report_has_no_scale_transfer(built):
    assert not list(built.glob("transfer_*.csv")) and not (built / "figures" / "scale_transfer.png").exists()
    assert "Scale transfer" not in (built / "report.md").read_text()
    assert "fidelity" not in pd.read_csv(built / "trials.csv").columns


def make_replay_benchmark(out, csvs, unit, seeds=(0, 1)):
    """A small benchmark (sobol and uniform) on the toy logged runs, replayed with `unit`."""
    params = {"ratios": str(csvs[0]), "metrics": str(csvs[1]), "unit": unit}
    ev = bomix.get_evaluator("replay", **params)
    space = bomix.MixtureSpace(list(ev.domains))
    methods = {"sobol": ("sobol", 4), "uniform": ("uniform", 1)}
    for label, (name, n) in methods.items():
        for s in seeds:
            study = bomix.create_study(out / "studies" / label / f"seed-{s}", space=space, optimizer=name, seed=s,
                                       pool=ev.pool)
            study.optimize(ev, n_trials=n, show_progress=False)
            study.close()
    (out / "benchmark.json").write_text(json.dumps({
        "methods": {label: {"name": name, "params": {}} for label, (name, _) in methods.items()},
        "seeds": list(seeds), "budget": 4, "fixed": ["uniform"], "objective": "mean", "space": space.to_dict(),
        "evaluator": {"name": "replay", "params": params}, "bomix": bomix.__version__}))
    return out


def test_report_prints_the_evaluators_unit(tmp_path, csvs):
    bench = make_replay_benchmark(tmp_path / "bits", csvs, "bits/byte")
    report([bench], tmp_path / "out", log=False)
    for page in ("report.md", "report.html"):
        text = (tmp_path / "out" / page).read_text()
        assert "objective in bits/byte" in text and "nats/token" not in text, page
    other = make_replay_benchmark(tmp_path / "nats", csvs, "nats/token", seeds=(0,))
    with pytest.raises(ConfigError, match="must share one unit.*bits/byte.*nats/token"):
        collect([bench, other])  # values in different units do not compare


def test_a_campaigns_report_says_how_sure_its_winner_is(bench, built, tmp_path):
    path = report([bench / "studies" / "bo" / "seed-0"], tmp_path / "one", log=False)
    wins = pd.read_csv(tmp_path / "one" / "which_wins.csv")
    assert list(wins["rank"]) == [1, 2, 3, 4, 5] and set(wins["basis"]) == {"independent normals"}
    assert wins["p_best"].sum() == pytest.approx(1.0)
    assert "How sure (bo, seed 0): the model's probability that each of the top 5 evaluated mixtures is the best" \
        in path.with_suffix(".md").read_text()
    assert len(pd.read_csv(built / "which_wins.csv")) == 0  # a benchmark's studies: compared by seed, not this


def test_a_method_that_never_leaves_its_design_is_named(tmp_path):
    """A method whose every trial is a design point (here bo with n_init = the budget: its GP never
    chooses a trial) is counted in design_use.csv and named in the verdict; a method that models
    part of its budget is counted but not named, and one without a design phase has no row."""
    methods = {"bo": METHODS["bo"], "bo_all_design": ("bo", {**METHODS["bo"][1], "n_init": BUDGET}, BUDGET),
               "sobol": METHODS["sobol"], "uniform": METHODS["uniform"]}
    bench = make_benchmark(tmp_path / "bench", methods=methods)
    out = tmp_path / "report"
    assert main(["report", str(bench), "-o", str(out)]) == 0
    use = pd.read_csv(out / "design_use.csv").set_index("label")
    assert set(use.index) == {"bo", "bo_all_design"}
    assert use.loc["bo_all_design", "design_only"] == len(SEEDS)
    assert use.loc["bo_all_design", "model_trials"] == 0 and use.loc["bo_all_design", "design_trials"] == BUDGET
    assert use.loc["bo", "design_only"] == 0 and use.loc["bo", "design_trials"] == 4
    assert use.loc["bo", "model_trials"] == BUDGET - 4
    md = (out / "report.md").read_text()
    assert f"bo_all_design never got past its design in all {len(SEEDS)} studies" in md
    assert "bo never got past" not in md


def _per_domain_tables(k, labels=("bo", "sobol", "regmix", "olmix", "uniform")):
    rng = np.random.default_rng(0)
    domains = [f"d{i}" for i in range(k)]
    mixes, losses = [], []
    for label in labels:
        w = rng.dirichlet(np.full(k, 0.3))
        mixes += [{"label": label, "domain": d, "weight": x, "sd": 0.0, "n": 2} for d, x in zip(domains, w)]
        losses += [{"label": label, "domain": d, "loss": 3 + rng.random(), "sd": 0.01, "n": 2, "kind": "true"}
                   for d in domains]
    data = type("Data", (), {"domains": domains, "unit": "nats"})()
    return data, {"recommended_mixtures": pd.DataFrame(mixes), "domain_losses": pd.DataFrame(losses)}


@pytest.mark.parametrize("k", [5, 64])
def test_per_domain_figures_stay_readable_at_many_domains(tmp_path, k):
    """At 64 domains the mixture legend names at most MAX_NAMED_DOMAINS blocks plus 'other', and the
    per-domain loss figure stays a screen wide (grouped bars at k = 64 were 23,000 pixels wide)."""
    import matplotlib.image

    from bomix.report import figures

    data, tables = _per_domain_tables(k)
    caption = figures.recommended_mixtures(data, tables, tmp_path / "mix.png")
    assert ("pooled in grey" in caption) == (k > figures.MAX_NAMED_DOMAINS)
    caption = figures.domain_losses(data, tables, tmp_path / "loss.png")
    assert ("gap to the best method" in caption) == (k > figures.MAX_BAR_DOMAINS)
    for name in ("mix.png", "loss.png"):
        height, width = matplotlib.image.imread(tmp_path / name).shape[:2]
        assert width <= 16 * figures.DPI and height <= 8 * figures.DPI, (name, width, height)


def test_legend_of_a_64_domain_mixture_names_the_largest_domains(monkeypatch, tmp_path):
    from bomix.report import figures

    data, tables = _per_domain_tables(64)
    rm = tables["recommended_mixtures"]
    rm.loc[rm.domain == "d63", "weight"] = 0.9  # the largest everywhere: must be named
    seen = {}
    plt = figures._plt()
    real_legend = plt.Axes.legend

    def spy(ax, *args, **kwargs):
        seen["labels"] = [t for t in ax.get_legend_handles_labels()[1]]
        return real_legend(ax, *args, **kwargs)

    monkeypatch.setattr(plt.Axes, "legend", spy)
    figures.recommended_mixtures(data, tables, tmp_path / "mix.png")
    assert len(seen["labels"]) == figures.MAX_NAMED_DOMAINS + 1
    assert "d63" in seen["labels"] and seen["labels"][-1] == "other (49 domains)"


@pytest.mark.parametrize("k", [5, 64])
def test_per_domain_tables_read_down_the_page_at_many_domains(k):
    from bomix.report.document import _per_domain_view

    _, tables = _per_domain_tables(k)
    view = _per_domain_view(tables["domain_losses"], "loss")
    assert view.shape == ((k, 6) if k > 12 else (5, k + 1))


def test_final_values_say_how_many_seeds_each_method_ran(tmp_path):
    """Benchmarks stopped for time report methods on different numbers of seeds (olmix on 5, bo on
    50): the final-values table shows each method's count beside its interval."""
    few = make_benchmark(tmp_path / "few", methods={"random": METHODS["random"]}, seeds=(0,), budget=4)
    many = make_benchmark(tmp_path / "many", methods={"sobol": METHODS["sobol"], "uniform": METHODS["uniform"]},
                          seeds=(0, 1, 2), budget=4)
    out = tmp_path / "report"
    assert main(["report", str(few), str(many), "-o", str(out)]) == 0
    md = (out / "report.md").read_text()
    table = md[md.index("## Final values at the budget"):]
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in table.splitlines()[6:9]
            if line.startswith("| ")}
    assert table.splitlines()[4].startswith("| label | seeds | deployed |"), table.splitlines()[4]
    assert rows == {"random": "1", "sobol": "3", "uniform": "3"}, rows
