"""Pool search with fidelities: any optimizer, choosing (logged run, scale) pairs.

A multi-fidelity replay (bomix.evaluators.replay_scales) logged every run of its pool at every
scale, so a run is *free at scale f* when no trial of the history (nor an earlier pick of the same
call) holds it at f: a run tried at 1M may still be run at 60M. A multi-fidelity study with a
pool wraps its optimizer in `MultiFidelityPoolSearch` (bomix.optimizers.pool.PoolSearch is the
single-fidelity case). Each pick, in turn:

  1. ranked   when the optimizer is a FidelityScorer and `score_fidelities` returns values, the
              free (run, scale) pair it scores highest;
  2. design   otherwise its own next proposal, at the proposal's fidelity (None: the target):
              a design point (`Proposal.design`) takes, once the scale holds a run, the free run
              farthest (L1) from the runs held there (maximin), else the free run nearest the point;
  3. snapped  any other proposal becomes the free run nearest to it at its scale.

Recommendation: the best evaluated run *at the target scale*, by its logged value. A replayed pool
is deterministic, so a logged target value is all there is to know about that run there, and the
honest claim is a measured one; a run seen only at a cheaper scale has no measured target value.
With no target run yet, the optimizer's own (model) recommendation is passed on, marked as such.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod

import numpy as np

from bomix.optimizers.base import History, Proposal, Recommendation
from bomix.optimizers.pool import PoolSearch, as_proposal, nearest_rows, with_pending


class FidelityScorer(ABC):
    """An optimizer that can rank (mixture, fidelity) pairs: declared by inheriting this."""

    @abstractmethod
    def score_fidelities(self, history: History, X: np.ndarray) -> dict[str, np.ndarray] | None:
        """{fidelity: (p,) how much it wants each of the (p, k) mixtures X run at that fidelity},
        higher = sooner, comparable across fidelities (cost included); or None when it cannot rank."""


class MultiFidelityPoolSearch(PoolSearch):
    """`optimizer`, searching the (N, k) logged mixtures `pool` at every fidelity of the history.

    A PoolSearch (its constructor, parameters, score and predict) whose picks are (run, scale)
    pairs and whose recommendation is measured at the target scale.
    """

    def _held(self, history: History) -> dict[str, set[int]]:
        """{fidelity: pool rows a trial holds at it}."""
        held: dict[str, set[int]] = {f: set() for f in history.fidelities}
        trials = list(history.trials)
        for t, row in zip(trials, nearest_rows(self.pool, history.X(trials)).tolist()):
            held[history.fidelity_of(t)].add(row)
        return held

    def suggest(self, history: History, n: int = 1) -> list[Proposal]:
        held = self._held(history)
        picks: list[Proposal] = []
        for _ in range(n):
            now = with_pending(history, picks, self.name)
            pick = self._pick_pair(now, held)
            if pick.info.get("pool_row") is not None:
                held[pick.fidelity].add(pick.info["pool_row"])
            picks.append(pick)
        return picks

    def _free(self, held: dict[str, set[int]], fidelity: str) -> np.ndarray:
        return np.array([i for i in range(len(self.pool)) if i not in held[fidelity]], dtype=int)

    def _pick_pair(self, history: History, held: dict[str, set[int]]) -> Proposal:
        if isinstance(self.optimizer, FidelityScorer):
            scores = self.optimizer.score_fidelities(history, self.pool)
            if scores is not None:
                best = (-np.inf, None, None)
                for fidelity in history.fidelities:  # fixed order: ties go to the first fidelity
                    s = np.asarray(scores[fidelity], dtype=float).reshape(-1)
                    free = self._free(held, fidelity)
                    if len(free):
                        vals = np.where(np.isfinite(s[free]), s[free], -np.inf)
                        i = int(np.argmax(vals))
                        if best[1] is None or vals[i] > best[0]:
                            best = (float(vals[i]), fidelity, int(free[i]))
                if best[1] is not None:
                    return self._row(best[2], f"{self.name}/ranked", {"score": best[0]}, fidelity=best[1])
        proposal = as_proposal(self.optimizer.suggest(history, 1)[0])
        fidelity = proposal.fidelity or history.target_fidelity
        free = self._free(held, fidelity)
        if not len(free):  # every run is taken at this scale: the evaluator answers with the nearest
            return dataclasses.replace(proposal, fidelity=fidelity)
        if proposal.design and held[fidelity]:
            taken = self.pool[sorted(held[fidelity])]
            row, rule = int(free[int(np.abs(self.pool[free][:, None] - taken[None]).sum(2).min(1).argmax())]), "maximin"
        else:
            row, rule = int(free[int(np.abs(self.pool[free] - proposal.weights).sum(axis=1).argmin())]), "nearest"
        return self._row(row, proposal.source or self.name,
                         {**proposal.info, "pool_rule": rule, "proposed": [float(v) for v in proposal.weights]},
                         proposal.design, fidelity)

    def recommend(self, history: History) -> Recommendation | None:
        """The best run evaluated at the target scale, by its logged value (see the module docstring)."""
        done = history.at(history.target_fidelity)
        if not done:
            rec = self.optimizer.recommend(history)
            return None if rec is None else dataclasses.replace(rec, source=f"{rec.source} (no run at the target yet)")
        values = np.array([history.objective(t.losses) for t in done])
        best = done[int(np.argmin(values))]
        return Recommendation(dict(best.weights), float(values.min()), None, "best evaluated logged run at the target",
                              best.number)
