"""`ax_default`: Ax's Client with its default generation strategy, on the encoding practitioners use.

The reference that shows what bomix's own choices add. The mixture is encoded as k-1 free weights
in [floor_i, cap_i] with sum <= 1 - floor_k (and >= 1 - cap_k when the last domain is capped), and
the last weight is derived as 1 - sum (Ax's DerivedParameterConfig): the common k-1 encoding,
since Ax's Client does not accept equality constraints. Generation strategy: whatever
`Client.configure_generation_strategy()` picks by default (Center + Sobol + MBM with Ax 1.3).

A Client is rebuilt from the history on every call (that keeps `suggest` a pure function of the
history): trials are attached with their outcomes, failed ones marked failed, running ones left
running (Ax treats them as pending). Two consequences, both documented differences from one
long-lived Client: the Sobol stage draws each point from a fresh scramble seeded by
(seed, number of trials), and the strategy is advanced past initialisation explicitly once the
attached trials satisfy Ax's own transition criteria (a fresh Client otherwise stops one step
early on attached trials).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from bomix.optimizers.base import History, Optimizer, Proposal
from bomix.trial import TrialState


def _quiet_ax() -> None:
    """Ax logs a line per trial at INFO on its own loggers; keep only warnings and errors."""
    import ax  # noqa: F401  (creates Ax's loggers)

    for name in list(logging.root.manager.loggerDict):
        if name == "ax" or name.startswith("ax."):
            logging.getLogger(name).setLevel(logging.WARNING)


class AxDefault(Optimizer):
    """Ax's default Bayesian optimisation on k-1 free weights (see the module docstring)."""

    name = "ax_default"

    def __init__(self, *, seed: int = 0):
        self.seed = seed

    def _client(self, history: History):
        from ax.api import Client, RangeParameterConfig
        from ax.api.configs import DerivedParameterConfig

        space, k = history.space, history.space.k
        free = [f"w{i}" for i in range(k - 1)]
        constraints = [" + ".join(free) + f" <= {float(1.0 - space.floors[-1])!r}"]
        if space.caps[-1] < 1:
            constraints.append(" + ".join(free) + f" >= {float(1.0 - space.caps[-1])!r}")
        client = Client(random_seed=(self.seed * 7919 + len(history.trials)) % 2**31)
        client.configure_experiment(
            name="mixture",
            parameters=[RangeParameterConfig(name=n, bounds=(float(space.floors[i]), float(space.caps[i])),
                                             parameter_type="float") for i, n in enumerate(free)]
            + [DerivedParameterConfig(name=f"w{k - 1}", expression_str="1.0 - " + " - ".join(free),
                                      parameter_type="float")],
            parameter_constraints=constraints,
        )
        client.configure_optimization(objective="-loss")
        client.configure_generation_strategy()
        return client

    def suggest(self, history: History, n: int = 1) -> list[Proposal]:
        _quiet_ax()
        space, k = history.space, history.space.k
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client = self._client(history)
            for t in history.trials:
                params = {f"w{i}": float(v) for i, v in enumerate(t.x)}
                idx = client.attach_trial(parameters=params)
                if t.state is TrialState.COMPLETED:
                    client.complete_trial(idx, raw_data={"loss": history.objective(t.losses)})
                elif t.state is TrialState.FAILED:
                    client.mark_trial_failed(idx)
            gs = client._generation_strategy  # noqa: SLF001 - see the module docstring
            if gs is not None and history.trials:
                gs._maybe_transition_to_next_node(raise_data_required_error=False)  # noqa: SLF001
            out: list[Proposal] = []
            for _ in range(4 * n):  # Ax may hand out fewer than asked at a node boundary: ask again
                from ax.exceptions.core import DataRequiredError

                try:
                    batch = client.get_next_trials(max_trials=n - len(out))
                except DataRequiredError:
                    break
                for idx, params in batch.items():
                    x = np.array([params[f"w{i}"] for i in range(k)], dtype=float)
                    node = client._experiment.trials[idx].generator_runs[0]._generation_node_name  # noqa: SLF001
                    out.append(Proposal(space.project(np.clip(x, 0.0, None)), f"ax_default/{node}"))
                if len(out) >= n:
                    break
        while len(out) < n:  # Ax could not generate (e.g. waiting for data): fall back to random
            out.append(Proposal(space.sample(1, seed=self.seed, skip=len(history.trials) + len(out))[0],
                                "ax_default/random"))
        return out[:n]
