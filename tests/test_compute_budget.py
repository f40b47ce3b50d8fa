"""study.optimize(..., compute_budget=C): a multi-fidelity campaign that stops when its compute is spent."""

import pytest

import bomix
from bomix.cli import main
from bomix.errors import ConfigError
from bomix.evaluators.landscapes import landscape
from bomix.optimizers import get_optimizer

FAST = {"raw_samples": 32, "num_restarts": 1, "mc_samples": 16}


def mf_study(path, optimizer):
    land = landscape("multiscale", k=3, seed=0, noise_sd=0.005)  # scales 1m (cost 1) and 60m (cost 60)
    study = bomix.create_study(path, space=bomix.MixtureSpace(land.domains), seed=0, optimizer=optimizer,
                               fidelities=land.fidelities, target_fidelity="60m")
    return study, land


def test_a_campaign_spends_its_compute_budget_and_bo_mf_keeps_the_last_run_for_the_target(tmp_path):
    study, land = mf_study(tmp_path / "s", get_optimizer("bo_mf", seed=0, n_init=6, **FAST))
    # 6 cheap design runs + 1 target design run = 66; 70 more: cheap runs while a target run and a
    # cheap one still fit, then the exploiting target run bo_mf only knows to keep from the study
    study.optimize(land, n_trials=1000, compute_budget=136, show_progress=False)
    fids = [t.fidelity for t in study.trials]
    assert study.compute_spent() == 136
    assert fids == ["1m"] * 6 + ["60m"] + ["1m"] * 10 + ["60m"]
    assert study.trials[-1].proposed_by == "bo_mf/final"
    # the budget is the campaign's total: rerunning the same call adds nothing
    study.close()
    again = bomix.load_study(tmp_path / "s")
    again.optimize(land, n_trials=1000, compute_budget=136, show_progress=False)
    assert len(again.trials) == len(fids)
    # and n_trials still caps the trials
    capped, _ = mf_study(tmp_path / "c", get_optimizer("bo_mf", seed=0, n_init=6, **FAST))
    capped.optimize(land, n_trials=3, compute_budget=10_000, show_progress=False)
    assert len(capped.trials) == 3


def test_a_trial_the_budget_cannot_pay_for_is_not_run(tmp_path):
    # sobol knows nothing of compute: each of its trials runs at the target, cost 60
    study, land = mf_study(tmp_path / "s", get_optimizer("sobol", seed=0))
    study.optimize(land, compute_budget=150, show_progress=False)  # no n_trials: the compute alone bounds it
    assert [t.state.value for t in study.trials] == ["completed", "completed", "abandoned"]
    assert "not run: at 60m it costs 60, more than the 30 the compute budget had left" in study.trials[-1].error
    assert study.compute_spent() == 120 and len(study.queued) == 1  # first in line if the budget is raised
    assert study.next_queued_cost() == 60
    study.optimize(land, compute_budget=150, show_progress=False)  # a resume with the same budget adds nothing
    assert len(study.trials) == 3
    study.optimize(land, n_trials=10, compute_budget=180, show_progress=False)
    assert study.compute_spent() == 180 and study.trials[-1].weights == study.trials[2].weights
    assert study.next_queued_cost() is None  # the queue is empty: the next ask is the optimizer's


def test_bad_compute_budgets_are_refused(tmp_path):
    study, land = mf_study(tmp_path / "s", get_optimizer("sobol", seed=0))
    with pytest.raises(ConfigError, match="compute_budget must be a finite number > 0, got 0"):
        study.optimize(land, n_trials=4, compute_budget=0)
    with pytest.raises(ConfigError, match="optimize needs n_trials .* or, for a multi-fidelity study, "
                                          "compute_budget; got neither"):
        study.optimize(land)
    single = landscape("seedlike")
    flat = bomix.create_study(tmp_path / "f", space=bomix.MixtureSpace(single.domains), optimizer="sobol")
    with pytest.raises(ConfigError, match="compute_budget needs a multi-fidelity study .* \\(got compute_budget=100\\)"):
        flat.optimize(single, n_trials=4, compute_budget=100)
    assert study.trials == [] and flat.trials == []


def test_the_config_carries_the_compute_budget(tmp_path, capsys):
    config = tmp_path / "mf.toml"
    config.write_text(f"""
[study]
dir = "{tmp_path / 'run'}"
compute_budget = 130          # no n_trials: the compute bounds the campaign

[space]
domains = ["d0", "d1", "d2"]

[optimizer]
name = "bo_mf"
params = {{ n_init = 4, raw_samples = 32, num_restarts = 1, mc_samples = 16 }}

[evaluator]
name = "landscape"
params = {{ name = "multiscale", k = 3, seed = 0 }}
""")
    assert main(["run", str(config), "--no-progress"]) == 0
    study = bomix.load_study(tmp_path / "run")
    assert study.compute_spent() <= 130 and [t.fidelity for t in study.trials].count("60m") == 2
    assert main(["status", str(tmp_path / "run")]) == 0
    assert f"compute spent (completed, failed and running trials): {study.compute_spent():g}" in capsys.readouterr().out
    assert main(["run", str(config), "--set", "study.compute_budget=-1"]) == 2
    assert "study.compute_budget must be a number > 0, got -1" in capsys.readouterr().err


def test_a_config_without_n_trials_or_compute_budget_runs_64_trials():
    from bomix.config import StudyConfig

    assert StudyConfig().trials == 64 and StudyConfig(n_trials=10).trials == 10
    assert StudyConfig(compute_budget=240).trials is None
