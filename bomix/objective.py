"""Objectives: one number to minimise, computed from a trial's per-domain losses.

Because trials keep every per-domain loss, a study can be re-scored under another objective
without rerunning anything: `Objective("worst")(trial.losses)`. The losses may be any metrics
where lower is better (nats/token, or olmix's bits-per-byte of downstream tasks).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np

from bomix.errors import ConfigError, EvaluationError

KINDS = ("mean", "weighted", "worst", "target", "families")
KEYS = ("kind", "weights", "domains", "target", "families", "drop")
GLOB = "*?["  # a family or drop entry holding one of these is an fnmatch pattern, else a metric name


class Objective:
    """A function of per-domain losses, minimised.

    kind="mean": average loss (over `domains`, default every reported loss); the seed study's
        average log-perplexity.
    kind="weighted": sum_i w_i * loss_i / sum_i w_i over the domains named in `weights`.
    kind="worst": the largest loss over `domains` (default all).
    kind="target": the loss of one named validation set, `target` (e.g. "pile_cc").
    kind="families": olmix's task-family objective. `families` {family: [entries]} groups the
        metrics; an entry is a metric name, or an fnmatch glob pattern (case-sensitive) when it holds
        one of * ? [ (e.g. "mmlu_*"). Each family scores the plain mean of its metrics, and the
        objective is sum_f w_f * mean_f / sum_f w_f with `weights` {family: w_f} (default 1 each;
        olmix's DCLM config: math 7, code 19, qa 26). `drop` lists names or patterns removed from
        every family (olmix's noisy tasks); a drop entry that matches nothing is ignored, since
        olmix's lists name metrics some swarms lack. A metric in two families counts in both.
        Resolved against the reported losses: every pattern must match at least one loss that is
        not dropped, and every named (non-pattern) metric must be reported.
    A string "target:NAME" is read as kind="target", target=NAME.
    """

    def __init__(self, kind: str = "mean", *, weights: Mapping[str, float] | None = None,
                 domains: list[str] | None = None, target: str | None = None,
                 families: Mapping[str, list[str]] | None = None, drop: list[str] | None = None):
        if isinstance(kind, str) and kind.startswith("target:"):
            kind, target = "target", kind.split(":", 1)[1]
        if kind not in KINDS:
            raise ConfigError(f"objective must be one of {list(KINDS)}, got {kind!r}")
        if kind == "families":
            _check_families(families, weights, drop, domains, target)
        elif families or drop:
            raise ConfigError(f"objective families and drop are only for kind 'families', got kind {kind!r}")
        elif kind == "weighted":
            if not weights:
                raise ConfigError("objective 'weighted' needs weights {domain: weight}, got none")
            bad = {d: w for d, w in weights.items() if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0}
            if bad or sum(weights.values()) <= 0:
                raise ConfigError(f"objective weights must be finite, >= 0 and not all 0, got {dict(weights)}")
        elif weights:
            raise ConfigError(f"objective weights are only for kinds 'weighted' and 'families', got kind {kind!r}")
        if kind == "target" and not target:
            raise ConfigError("objective 'target' needs the name of the target validation set, got none")
        self.kind = kind
        self.weights = {d: float(w) for d, w in weights.items()} if weights else None
        self.domains = list(domains) if domains else None
        self.target = target
        self.families = {f: list(entries) for f, entries in families.items()} if families else None
        self.drop = list(drop) if drop else None

    @classmethod
    def parse(cls, spec) -> Objective:
        """An Objective from an Objective, a string ("mean", "worst", "target:NAME") or a dict; the
        dict {"olmix_config": PATH} reads olmix's fit config (from_olmix_config), so a TOML config
        can name it instead of listing 110 metrics (study.json keeps the resolved families)."""
        if isinstance(spec, Objective):
            return spec
        if isinstance(spec, str):
            return cls(spec)
        if isinstance(spec, Mapping) and "olmix_config" in spec:
            if set(spec) != {"olmix_config"}:
                raise ConfigError(f"objective olmix_config must stand alone (the config gives families, weights and "
                                  f"drop), got also {sorted(set(spec) - {'olmix_config'})}")
            return cls.from_olmix_config(spec["olmix_config"])
        if isinstance(spec, Mapping):
            unknown = set(spec) - set(KEYS)
            if unknown:
                raise ConfigError(f"objective keys must be among {', '.join(KEYS)}; got {sorted(unknown)}")
            return cls(spec.get("kind", "mean"), weights=spec.get("weights"), domains=spec.get("domains"),
                       target=spec.get("target"), families=spec.get("families"), drop=spec.get("drop"))
        raise ConfigError(f"objective must be a name, a dict or an Objective, got {spec!r}")

    @classmethod
    def from_olmix_config(cls, path) -> Objective:
        """The "families" objective of an olmix fit config (YAML, as `olmix fit --config` reads it):
        families from eval.tasks ({family: [metric]}, or in-loop {family: {task_id: metric}}),
        weights from filtering.obj_weights (numbers or fraction strings such as "7/52.0"; a family
        without one weighs 1, as in olmix), drop from filtering.drop_metrics. The config must set
        regression.aggregate_task_families: true (else olmix's objective is not per family).

        This is the objective the config states. olmix's own fit code differs in two ways: it
        first replaces the mmlu_* columns by four weighted MMLU-category columns that are in no
        family (so its qa family averages the non-MMLU tasks only), and it applies drop_metrics
        after averaging, to family names, so the listed tasks stay in its family means.
        """
        return cls.parse(_olmix_spec(path))

    def named(self) -> list[str]:
        """The loss names the objective names itself (its target, its weighted losses, its `domains`),
        in its own order; [] when it reads every reported loss or task families."""
        if self.kind == "target":
            return [self.target]
        if self.kind == "weighted":
            return list(self.weights or {})
        return [] if self.kind == "families" else list(self.domains or [])

    def required(self, losses: Mapping[str, float]) -> list[str]:
        """The loss names this objective reads, in a stable order. `losses`: the reported losses (only
        their names are used); "mean"/"worst" without domains read them all, "families" resolves
        its patterns against them (EvaluationError when a pattern matches no loss left after drop)."""
        if self.kind == "target":
            return [self.target]
        if self.kind == "weighted":
            return list(self.weights)
        if self.kind == "families":
            return list(dict.fromkeys(n for members in self._members(losses).values() for n in members))
        return self.domains or list(losses)

    def _members(self, losses) -> dict[str, list[str]]:
        """{family: the metric names it averages}, patterns expanded in `losses` order, drop applied."""
        names = list(losses)
        out = {}
        for family, entries in self.families.items():
            members = []
            for entry in entries:
                if not _is_pattern(entry):
                    hits = [] if self._dropped(entry) else [entry]
                else:
                    hits = [n for n in names if fnmatchcase(n, entry) and not self._dropped(n)]
                    if not hits:
                        raise EvaluationError(
                            f"objective family {family!r}: each pattern must match at least one loss that is not "
                            f"dropped, got {entry!r} for losses {_show(names)}")
                members += [n for n in hits if n not in members]
            out[family] = members  # never empty: a family of dropped names only is refused at construction
        return out

    def _dropped(self, name: str) -> bool:
        return _matches(name, self.drop or ())

    def _shares(self) -> dict[str, float]:
        """{family: weight}, normalised to sum 1 (kind "families")."""
        w = self.weights or dict.fromkeys(self.families, 1.0)
        total = sum(w.values())
        return {f: w[f] / total for f in self.families}

    def linear_weights(self, names) -> np.ndarray | None:
        """(m,) weights, summing to 1, such that objective = weights @ losses[names] for any losses
        over the m loss `names`; None when the objective is not a fixed linear combination of them
        ("worst"). A name the objective does not read gets 0. For the "mean" kind without domains,
        the mean over `names`. EvaluationError when the objective reads a loss not in `names`."""
        if self.kind == "worst":
            return None
        names = list(names)
        if len(set(names)) != len(names):
            raise ConfigError(f"linear_weights needs unique loss names, got {names}")
        read = self.required(dict.fromkeys(names))
        missing = [n for n in dict.fromkeys(read) if n not in names]
        if missing:
            raise EvaluationError(f"the {self.kind} objective needs losses for {missing}, got {_show(names)}")
        w = dict.fromkeys(names, 0.0)
        if self.kind == "weighted":
            total = sum(self.weights.values())
            for n, v in self.weights.items():
                w[n] += v / total
        elif self.kind == "families":
            shares = self._shares()
            for family, members in self._members(names).items():
                for n in members:
                    w[n] += shares[family] / len(members)
        else:  # mean, target
            for n in read:
                w[n] += 1 / len(read)
        return np.array([w[n] for n in names])

    def __call__(self, losses: Mapping[str, float]) -> float:
        names = self.required(losses)
        missing = [n for n in names if n not in losses]
        if missing:
            raise EvaluationError(f"the {self.kind} objective needs losses for {missing}, got {_show(sorted(losses))}")
        if self.kind == "weighted":
            total = sum(self.weights.values())
            return sum(w * losses[d] for d, w in self.weights.items()) / total
        if self.kind == "families":
            shares = self._shares()
            return sum(shares[f] * sum(losses[n] for n in m) / len(m) for f, m in self._members(losses).items())
        if self.kind == "worst":
            return max(losses[n] for n in names)
        return sum(losses[n] for n in names) / len(names)

    def of_rows(self, names: list[str], L) -> np.ndarray:
        """(p,) the objective of each row of (p, m) losses L, columns in `names` order (the names
        `required` gives): the vectorised form of calling it on a dict, for fitted models."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        if self.kind == "families":
            return L @ self.linear_weights(names)
        if self.kind == "weighted":
            w = np.array([self.weights[n] for n in names], dtype=float)
            return L @ w / w.sum()
        if self.kind == "worst":
            return L.max(axis=1)
        return L.mean(axis=1)  # mean, or target (one column)

    def to_dict(self) -> dict:
        d = {"kind": self.kind}
        if self.weights:
            d["weights"] = self.weights
        if self.domains:
            d["domains"] = self.domains
        if self.target:
            d["target"] = self.target
        if self.families:
            d["families"] = self.families
        if self.drop:
            d["drop"] = self.drop
        return d

    def __eq__(self, other) -> bool:
        return isinstance(other, Objective) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "kind")
        return f"Objective({self.kind!r}{', ' + args if args else ''})"


def _is_pattern(entry: str) -> bool:
    return any(c in entry for c in GLOB)


def _matches(name: str, entries) -> bool:
    """Whether `name` is one of `entries` (metric names or patterns)."""
    return any(name == e or (_is_pattern(e) and fnmatchcase(name, e)) for e in entries)


def _show(names: list[str], head: int = 8) -> str:
    """A list of names for a message, cut after `head` of them."""
    names = list(names)
    return str(names) if len(names) <= head else f"{names[:head]} ... ({len(names)} names)"


def _check_families(families, weights, drop, domains, target) -> None:
    """The rules of kind "families" (see Objective), each error naming the offending value."""
    if domains or target:
        raise ConfigError(f"objective 'families' reads the metrics its families name; domains and target are not "
                          f"for it, got domains={domains!r}, target={target!r}")
    if not isinstance(families, Mapping) or not families:
        raise ConfigError(f"objective 'families' needs families {{family: [metric names or patterns]}}, got "
                          f"{families!r}")
    for family, entries in families.items():
        if not isinstance(family, str) or not family:
            raise ConfigError(f"objective family names must be non-empty strings, got {family!r}")
        if isinstance(entries, str) or not isinstance(entries, (list, tuple)) or not entries \
                or not all(isinstance(e, str) and e for e in entries):
            raise ConfigError(f"objective family {family!r} must be a non-empty list of metric names or patterns, "
                              f"got {entries!r}")
    if drop is not None and (isinstance(drop, str) or not isinstance(drop, (list, tuple))
                             or not all(isinstance(e, str) and e for e in drop)):
        raise ConfigError(f"objective drop must be a list of metric names or patterns, got {drop!r}")
    if weights is not None:
        if not isinstance(weights, Mapping):
            raise ConfigError(f"objective weights must be a dict {{family: weight}}, got {weights!r}")
        missing, unknown = [f for f in families if f not in weights], [f for f in weights if f not in families]
        if missing or unknown:
            raise ConfigError(f"objective weights must give each family a weight; missing {missing}, unknown "
                              f"{unknown}")
        bad = {f: w for f, w in weights.items() if isinstance(w, bool) or not isinstance(w, (int, float))
               or not math.isfinite(w) or w < 0}
        if bad or sum(weights.values()) <= 0:
            raise ConfigError(f"objective family weights must be finite numbers >= 0, not all 0, got {dict(weights)}")
    for family, entries in families.items():
        if all(not _is_pattern(e) and _matches(e, drop or ()) for e in entries):
            raise ConfigError(f"objective family {family!r} must keep at least one metric after drop, got all of "
                              f"{list(entries)} dropped")


def _olmix_spec(path) -> dict:
    """{kind: "families", families, weights, drop} from an olmix fit-config YAML file (see
    Objective.from_olmix_config). PyYAML loads on use; it is not a declared dependency of bomix."""
    try:
        import yaml
    except ImportError:
        raise ConfigError("reading an olmix config needs PyYAML (pip install pyyaml), which is not installed") from None

    where = f"olmix config {str(path)!r}"
    try:
        cfg = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"olmix config must be a readable file, got {str(path)!r}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"olmix config must be valid YAML, got {str(path)!r}: {e}") from None
    cfg = cfg if isinstance(cfg, Mapping) else {}
    regression, filtering, ev = (cfg.get(k) if isinstance(cfg.get(k), Mapping) else {}
                                 for k in ("regression", "filtering", "eval"))
    if regression.get("aggregate_task_families") is not True:
        raise ConfigError(f"{where} must set regression.aggregate_task_families: true (its objective is then per "
                          f"task family), got {regression.get('aggregate_task_families')!r}")
    tasks = ev.get("tasks")
    if not isinstance(tasks, Mapping) or not tasks:
        raise ConfigError(f"{where} must have eval.tasks {{family: [metric names]}}, got {tasks!r}")
    families = {f: list(t.values()) if isinstance(t, Mapping) else t for f, t in tasks.items()}  # in-loop: ids -> names
    raw = filtering.get("obj_weights") or {}
    unknown = [f for f in raw if f not in families] if isinstance(raw, Mapping) else raw
    if unknown:
        raise ConfigError(f"{where}: filtering.obj_weights must name task families {list(families)}, got {unknown}")
    weights = {f: _fraction(raw.get(f, 1), f"{where}: filtering.obj_weights.{f}") for f in families}
    drop = filtering.get("drop_metrics") or []
    spec = {"kind": "families", "families": families, "weights": weights}
    return {**spec, "drop": drop} if drop else spec  # as read: Objective checks it is a list


def _fraction(value, what: str) -> float:
    """A number, or a string "a/b" or "a" (olmix writes weights as "7/52.0"), as a float."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        top, _, bottom = str(value).partition("/")
        return float(top) / float(bottom) if bottom else float(top)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"{what} must be a number or a fraction 'a/b', got {value!r}") from None
