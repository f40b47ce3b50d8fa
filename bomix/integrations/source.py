"""Which mixture to export: a study's recommended or best-observed one, one of its trials, or a
mixture JSON file.

"recommended" is study.recommend() (model-based where the optimizer has a model, the best observed
otherwise), the mixture to train at scale; "best" is study.best_trial, the lowest value observed,
as `bomix best` prints it. The two are kept apart because with noisy proxies they often differ.
"""

from __future__ import annotations

import json
from pathlib import Path

from bomix.errors import ConfigError, InvalidWeightsError

WHICH = ("recommended", "best")


def read_mixture_json(path) -> dict[str, float]:
    """{domain: weight} from a mixture JSON file: the command evaluator's mixture.json
    ({"weights": {...}, "seed", "trial"}) or a plain {domain: weight} object."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"the mixture file {path} must be readable: {e}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"the mixture file {path} must be JSON: {e.msg} at line {e.lineno}") from None
    if isinstance(data, dict) and isinstance(data.get("weights"), dict):
        data = data["weights"]
    if not isinstance(data, dict) or not data:
        raise InvalidWeightsError(f"the mixture file {path} must hold {{domain: weight}} or {{\"weights\": {{...}}}}, "
                                  f"got {str(data)[:200]}")
    return data


def mixture_from(source, *, trial: int | None = None, which: str = "recommended") -> tuple[dict, str]:
    """(weights, what they are) from a study directory or a mixture JSON file.

    trial: take this trial's mixture (any state). which: "recommended" or "best" (see the module
    docstring), when no trial is given. The description names the choice, e.g. "trial 12 (best
    observed, value 3.2104)".
    """
    if which not in WHICH:
        raise ConfigError(f"which must be one of {list(WHICH)}, got {which!r}")
    path = Path(source)
    if path.is_dir():
        import bomix

        if not (path / "study.json").is_file():
            raise ConfigError(f"a study directory must hold study.json, got none in {str(path)!r}")
        study = bomix.load_study(path)
        if trial is not None:
            found = [t for t in study.trials if t.number == trial]
            if not found:
                raise ConfigError(f"--trial must be one of the study's trials 0..{len(study.trials) - 1}, got {trial}")
            t = found[0]
            return dict(t.weights), f"trial {t.number} ({t.state.value}) of {path}"
        best = study.best_trial
        if best is None:
            raise ConfigError(f"{path} has no completed trial yet, so it has no best or recommended mixture")
        if which == "best":
            return dict(best.weights), f"trial {best.number} of {path} (best observed, value {best.value:.4f})"
        rec = study.recommend()
        where = "" if rec.trial is None else f"trial {rec.trial}, "
        value = "" if rec.value is None else f", value {rec.value:.4f}"
        return dict(rec.weights), f"the recommended mixture of {path} ({where}{rec.source}{value})"
    if trial is not None:
        raise ConfigError(f"--trial picks a trial of a study directory, but {str(path)!r} is not a directory")
    if not path.is_file():
        raise ConfigError(f"the source must be a study directory or a mixture JSON file, got {str(path)!r}")
    return read_mixture_json(path), f"the mixture in {path}"
