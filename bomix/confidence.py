"""Which evaluated mixture wins, and how sure: `study.which_wins(top=5)`.

A campaign ends with a recommendation, but a user choosing what to train at scale also asks how
sure that is: is the runner-up as likely to be the best, given the noise? `which_wins` takes the
`top` best evaluated mixtures at the target scale (`study.top_trials`: by the model's posterior
mean where the optimizer has a model) and gives each the probability that its noise-free
objective is the lowest of the `top`:

- basis "independent normals" (the default): draws from a normal per mixture with the model's
  predicted mean and sd (`predict`), independent of each other;
- basis "joint posterior" (`basis="joint"`, where the optimizer has `sample_objective`, as bo
  does): correlated draws from the GP's joint posterior, the model's own answer;
- basis "observed only": no model, or a pool search over logged runs (the study deploys its best
  evaluated run, whose replayed value is the logged one); p_best is empty and the observed values
  are all there is (replicate the top mixtures, `study.replicate`, to learn how much of their
  order is noise).

Why independent by default: measured against the truth of the `seedlike` landscape over 50 bo
campaigns (experiments/which_wins_calibration.py; experiments/README.md), both are overconfident
about the rank-1 mixture, the joint posterior more so (after 16, 32 and 64 trials it gives it
p_best 0.62, 0.37, 0.29 where it is truly best 40%, 26%, 18% of the time; independent draws 0.53,
0.30, 0.25), and the joint's expected regret is about half the true one where the independent
draws' is close or above it. The top mixtures are picked by the same model's mean, so their
predicted gaps are biased wide; ignoring the positive correlation between nearby mixtures widens
the draws' gaps back. Read p_best as an upper bound either way.

    table = study.which_wins(top=5)                  # basis="joint": the GP's correlated draws
    table[["rank", "trial", "observed", "predicted", "sd", "p_best", "expected_regret"]]

The table also has each mixture's weights (w_<domain>) and observed losses (loss_<name>), so the
per-domain picture is beside the average.
"""

from __future__ import annotations

import numpy as np

from bomix.errors import ConfigError
from bomix.replicates import ranked

BASES = ("joint posterior", "independent normals", "observed only")


def which_wins(study, top: int = 5, n_samples: int = 4096, basis: str = "independent"):
    """A DataFrame, one row per mixture, best first: rank, trial, observed, predicted, sd, p_best
    (the probability its noise-free objective is the lowest of these; NaN without a model),
    expected_regret (the mean, over the same draws, of its objective minus the lowest of these:
    what deploying it costs against the best of them), basis (one of BASES), w_<domain>,
    loss_<name>. Empty (with those columns) before any completed trial. basis: "independent"
    (default) or "joint" draws. A pure function of the study's trials and its optimizer's seed."""
    if study.pool is not None:  # replayed logged runs: their values are what a run gives, nothing to model
        return which_wins_in(None, study.search_history(), top, n_samples, seed=study.seed, basis=basis)
    return which_wins_in(study.optimizer, study.search_history(), top, n_samples, seed=study.seed, basis=basis)


def which_wins_in(optimizer, history, top: int = 5, n_samples: int = 4096, seed: int = 0,
                  basis: str = "independent"):
    """`which_wins` for an optimizer and a History (e.g. the first n trials of a study): its `top`
    best completed first-time trials at the target scale, ranked by the optimizer's predicted
    objective where it has a model (`predict`), else by observed value (optimizer None: observed
    only). seed: the independent normals' draws (bo's joint draws follow its own seed)."""
    import pandas as pd

    if basis not in ("independent", "joint"):
        raise ConfigError(f"basis must be 'independent' or 'joint', got {basis!r}")
    for name, value, low in (("top", top, 1), ("n_samples", n_samples, 2)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    columns = ["rank", "trial", "observed", "predicted", "sd", "p_best", "expected_regret", "basis"]
    trials, pred = ranked(optimizer, history, int(top))  # the ranking study.top_trials uses
    if not trials:
        return pd.DataFrame(columns=columns)
    X = np.array([t.x for t in trials])
    predicted = sd = p_best = regret = None
    wanted, basis = basis, "observed only"
    if pred is not None:
        predicted, sd = pred
        sampler = getattr(optimizer, "sample_objective", None)
        if wanted == "joint" and sampler is not None:
            draws = np.asarray(sampler(history, X, int(n_samples)), dtype=float)
            basis = "joint posterior"
        elif sd is not None:
            rng = np.random.default_rng(seed)
            draws = predicted[None, :] + sd[None, :] * rng.standard_normal((int(n_samples), len(X)))
            basis = "independent normals"
        if basis != "observed only":
            p_best = np.bincount(np.argmin(draws, axis=1), minlength=len(X)) / len(draws)
            regret = (draws - draws.min(axis=1, keepdims=True)).mean(axis=0)
    rows = []
    for i, t in enumerate(trials):
        rows.append({"rank": i + 1, "trial": t.number, "observed": t.value,
                     "predicted": np.nan if predicted is None else float(predicted[i]),
                     "sd": np.nan if sd is None else float(sd[i]),
                     "p_best": np.nan if p_best is None else float(p_best[i]),
                     "expected_regret": np.nan if regret is None else float(regret[i]), "basis": basis,
                     **{f"w_{d}": w for d, w in t.weights.items()},
                     **{f"loss_{n}": v for n, v in (t.losses or {}).items()}})
    return pd.DataFrame(rows)


def summary_line(table, unit: str = "") -> str | None:
    """One sentence on `which_wins`'s table for a terminal or a report; None when it has no p_best."""
    if table is None or len(table) < 2 or table["p_best"].isna().all():
        return None
    first, second = table.iloc[0], table.iloc[1]
    unit = f" {unit}" if unit else ""
    leader = table.loc[table["p_best"].idxmax()]
    text = (f"the model's probability that each of the top {len(table)} evaluated mixtures is the best "
            f"({table['basis'].iloc[0]}): trial {int(first['trial'])} {first['p_best']:.2f}, trial "
            f"{int(second['trial'])} {second['p_best']:.2f}"
            + ("" if len(table) == 2 else f", the other {len(table) - 2} {table['p_best'].iloc[2:].sum():.2f}"))
    if int(leader["trial"]) != int(first["trial"]):
        text += f" (trial {int(leader['trial'])} is the likeliest best)"
    gap = second["predicted"] - first["predicted"]
    if np.isfinite(gap):
        text += f"; the runner-up is predicted {gap:.4f}{unit} worse"
    if np.isfinite(first.get("expected_regret", np.nan)):
        text += (f"; deploying trial {int(first['trial'])} costs an expected {first['expected_regret']:.4f}{unit} "
                 f"against the best of these")
    return text
