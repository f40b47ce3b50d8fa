import pytest

from bomix.config import load_config
from bomix.errors import ConfigError

EXAMPLE = "experiments/configs/seedlike_sobol.toml"


def test_example_config_loads(repo_root):
    cfg = load_config(repo_root / EXAMPLE)
    assert cfg.study.n_trials == 40 and cfg.optimizer.name == "sobol"
    assert cfg.evaluator.params == {"name": "seedlike", "noise_sd": 0.017, "seed": 0}
    assert cfg.space.build().domains == ("books", "cc", "stack", "pes2o", "reddit")


def test_overrides(repo_root):
    cfg = load_config(repo_root / EXAMPLE, ["study.n_trials=64", "optimizer.name=random",
                                             "evaluator.params.noise_sd=0.0", "study.objective=target:pes2o"])
    assert (cfg.study.n_trials, cfg.optimizer.name, cfg.evaluator.params["noise_sd"]) == (64, "random", 0.0)
    assert cfg.study.objective == "target:pes2o"


@pytest.mark.parametrize("text, overrides, match", [
    ("[study]\nn_trial = 3\n", [], "keys must be among .* got unknown \\['n_trial'\\]"),
    ("[studies]\n", [], "sections must be among .* unknown \\['studies'\\]"),
    ('[study]\nn_trials = "40"\n', [], "study.n_trials must be int, got '40' \\(str\\)"),
    ("[study]\nn_trials = -1\n", [], "n_trials must be >= 0, got -1"),
    ("[study]\nseed = 1.5\n", [], "study.seed must be int, got 1.5"),
    ("[study]\nshow_progress = 1\n", [], "study.show_progress must be bool, got 1"),
    ("[space]\ndomains = 'abc'\n", [], "space.domains must be list"),
    ("[space]\ncaps = {a = 0.5}\ntokens = {a = 1.0}\ntarget_tokens = 1.0\n", [], "caps or tokens"),
    ("study = 3\n", [], "\\[study\\] must be a table"),
    ("[study\n", [], "must be valid TOML"),
    ("", ["n_trials=3"], "section.key"),
    ("", ["study.n_trials"], "key=value"),
    ("", ["study.n_trials=true"], "must be int, got True"),
])
def test_bad_configs_are_refused_clearly(tmp_path, text, overrides, match):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path, overrides)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file must exist"):
        load_config(tmp_path / "nope.toml")
