"""The mixture simplex: ordered domains with per-domain floors and caps.

A mixture is a vector r of k weights with lo_i <= r_i <= hi_i and sum(r) = 1. Arrays are
(k,) or (n, k), columns in `space.domains` order. Dicts map domain name -> weight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from bomix import _simplex
from bomix.errors import InvalidSpaceError, InvalidWeightsError

SUM_ATOL = 1e-6  # |sum(r) - 1| and floor/cap violations tolerated by `validate`


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in np.asarray(values, dtype=float).ravel()) + "]"


def _not_a_number(value) -> bool:
    """Strings and booleans, which float() would silently turn into weights ("0.5" -> 0.5, True -> 1)."""
    return isinstance(value, (str, bytes, bool, np.bool_))


def _entries(weights) -> list:
    """The entries of a (k,) or (n, k) sequence of weights, one level of nesting unpacked."""
    if isinstance(weights, (str, bytes)):
        return [weights]
    try:
        items = weights.ravel().tolist() if isinstance(weights, np.ndarray) else list(weights)
    except TypeError:  # not a sequence: as_array reports it
        return []
    out = []
    for v in items:
        out.extend(v if isinstance(v, (list, tuple, np.ndarray)) else [v])
    return out


class MixtureSpace:
    """The feasible set of mixtures over `domains`.

    Args:
        domains: ordered, unique domain names (at least 2).
        floors: minimum weight per domain: None (0), one number for all, a sequence in domain
            order, or a dict {domain: floor} (missing domains get 0).
        caps: maximum weight per domain, same forms (missing domains get 1). Caps above 1 mean
            "no cap" and are stored as 1.
        prior: None, or the domains' natural shares (e.g. their token shares in the corpus): a dict
            {domain: share} (every domain named) or a sequence in domain order, numbers >= 0 with a
            positive sum, normalised here. Designs and regularisers that centre on the corpus
            (RegMix, olmix) and the "nearest the prior" reference rule read it; the space itself
            does not constrain by it. Part of to_dict/from_dict and equality.

    A space is plain vocabulary: a finite set of logged runs belongs to the evaluator that can
    answer for them (`Evaluator.pool`), not to the space.
    """

    def __init__(self, domains: Sequence[str], *, floors=None, caps=None, prior=None):
        domains = list(domains) if not isinstance(domains, str) else [domains]
        if not domains:
            raise InvalidSpaceError("a mixture space needs at least 2 domains, got none")
        bad = [d for d in domains if not isinstance(d, str) or not d.strip()]
        if bad:
            raise InvalidSpaceError(f"domain names must be non-empty strings, got {bad!r}")
        dupes = sorted({d for d in domains if domains.count(d) > 1})
        if dupes:
            raise InvalidSpaceError(f"domain names must be unique, got duplicates {dupes}")
        if len(domains) < 2:
            raise InvalidSpaceError(f"a mixture space needs at least 2 domains, got {domains}")
        self.domains: tuple[str, ...] = tuple(domains)
        self.floors = self._bound_vector(floors, 0.0, "floors")
        self.caps = np.minimum(self._bound_vector(caps, 1.0, "caps"), 1.0)
        self.floors.flags.writeable = False
        self.caps.flags.writeable = False
        crossed = [d for d, lo, hi in zip(self.domains, self.floors, self.caps) if lo > hi]
        if crossed:
            pairs = {d: (float(self.floors[self.index(d)]), float(self.caps[self.index(d)])) for d in crossed}
            raise InvalidSpaceError(f"each floor must be <= its cap, got (floor, cap) {pairs}")
        if self.floors.sum() > 1 + SUM_ATOL:
            raise InvalidSpaceError(f"floors must sum to at most 1, got {self.floors.sum():.6g} for {_fmt(self.floors)}")
        if self.caps.sum() < 1 - SUM_ATOL:
            raise InvalidSpaceError(
                f"caps must sum to at least 1 (else no mixture fits), got {self.caps.sum():.6g} for {_fmt(self.caps)}"
            )
        self.prior: np.ndarray | None = None if prior is None else self._check_prior(prior)

    def _check_prior(self, prior) -> np.ndarray:
        if isinstance(prior, Mapping):
            missing = [d for d in self.domains if d not in prior]
            if missing:
                raise InvalidSpaceError(f"prior must give every domain a share, missing {missing}")
        bad = [v for v in (prior.values() if isinstance(prior, Mapping) else _entries(prior)) if _not_a_number(v)]
        if bad:
            raise InvalidSpaceError(f"prior shares must be numbers, got {bad[0]!r}")
        p = self._bound_vector(prior, 0.0, "prior")
        if p.sum() <= 0:
            raise InvalidSpaceError(f"prior shares must have a positive sum, got {_fmt(p)}")
        p = p / p.sum()
        p.flags.writeable = False
        return p

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_tokens(
        cls,
        tokens: Mapping[str, float],
        *,
        target_tokens: float,
        repetition_factor: float = 1.0,
        floors=None,
        prior=None,
    ) -> MixtureSpace:
        """Caps from token availability: hi_i = repetition_factor * tokens_i / target_tokens.

        `tokens` maps domain -> available tokens; `target_tokens` is the token budget of the run the
        mixture is for; `repetition_factor` is how many epochs of a domain are allowed.
        """
        for name, value in (("target_tokens", target_tokens), ("repetition_factor", repetition_factor)):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise InvalidSpaceError(f"{name} must be a positive number, got {value!r}")
        bad = {d: t for d, t in tokens.items() if not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0}
        if bad:
            raise InvalidSpaceError(f"token counts must be finite and >= 0, got {bad}")
        caps = {d: repetition_factor * t / target_tokens for d, t in tokens.items()}
        return cls(list(tokens), floors=floors, caps=caps, prior=prior)

    def _bound_vector(self, value, default: float, what: str) -> np.ndarray:
        k = len(self.domains)
        if value is None:
            out = np.full(k, default)
        elif isinstance(value, Mapping):
            unknown = [d for d in value if d not in self.domains]
            if unknown:
                raise InvalidSpaceError(f"{what} name unknown domains {unknown}; the domains are {list(self.domains)}")
            out = np.array([value.get(d, default) for d in self.domains], dtype=float)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out = np.full(k, float(value))
        else:
            out = np.asarray(value, dtype=float).ravel()
            if out.shape != (k,):
                raise InvalidSpaceError(f"{what} must have one value per domain ({k}), got {len(out)}")
        if not np.all(np.isfinite(out)):
            raise InvalidSpaceError(f"{what} must be finite numbers, got {_fmt(out)}")
        if np.any(out < 0):
            raise InvalidSpaceError(f"{what} must be >= 0, got {_fmt(out)}")
        if what == "floors" and np.any(out > 1):
            raise InvalidSpaceError(f"floors must be <= 1, got {_fmt(out)}")
        return out

    # -- basic facts --------------------------------------------------------------------------
    @property
    def k(self) -> int:
        return len(self.domains)

    def index(self, domain: str) -> int:
        return self.domains.index(domain)

    def __len__(self) -> int:
        return self.k

    def __eq__(self, other) -> bool:
        return isinstance(other, MixtureSpace) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        extra = ""
        if self.floors.any():
            extra += f", floors={_fmt(self.floors)}"
        if (self.caps < 1).any():
            extra += f", caps={_fmt(self.caps)}"
        if self.prior is not None:
            extra += f", prior={_fmt(self.prior)}"
        return f"MixtureSpace({list(self.domains)}{extra})"

    def to_dict(self) -> dict:
        """A JSON-ready description, the inverse of `from_dict`."""
        d = {
            "domains": list(self.domains),
            "floors": [float(v) for v in self.floors],
            "caps": [float(v) for v in self.caps],
        }
        if self.prior is not None:
            d["prior"] = [float(v) for v in self.prior]
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> MixtureSpace:
        if "pool" in d:
            raise InvalidSpaceError("a space must not carry a pool: the logged runs belong to the evaluator, and a study "
                                    "stores them as its own `pool` (this study.json predates that); re-create the study")
        return cls(d["domains"], floors=d.get("floors"), caps=d.get("caps"), prior=d.get("prior"))

    # -- checking and converting mixtures -----------------------------------------------------
    def as_array(self, weights) -> np.ndarray:
        """Weights as a float array in domain order, from a dict or a sequence; shape checked only."""
        if isinstance(weights, Mapping):
            unknown = [d for d in weights if d not in self.domains]
            if unknown:
                raise InvalidWeightsError(f"weights name unknown domains {unknown}; the domains are {list(self.domains)}")
            missing = [d for d in self.domains if d not in weights]
            if missing:
                raise InvalidWeightsError(f"weights must give every domain, missing {missing}")
            bad = {d: weights[d] for d in self.domains if _not_a_number(weights[d])}
            if bad:
                raise InvalidWeightsError(f"weights must be numbers (not strings or booleans), got {bad}")
            weights = [weights[d] for d in self.domains]
        elif not isinstance(weights, np.ndarray) or weights.dtype.kind in "OUSb":
            bad = [v for v in _entries(weights) if _not_a_number(v)]
            if bad:
                raise InvalidWeightsError(f"weights must be numbers (not strings or booleans), got {bad[0]!r} in "
                                          f"{weights!r}")
        try:
            x = np.asarray(weights, dtype=float)
        except (TypeError, ValueError) as e:
            raise InvalidWeightsError(f"weights must be numbers, got {weights!r}") from e
        if x.shape[-1:] != (self.k,) or x.ndim not in (1, 2):
            raise InvalidWeightsError(f"weights must have one value per domain ({self.k}), got shape {x.shape}")
        return x

    def validate(self, weights, *, atol: float = SUM_ATOL) -> np.ndarray:
        """Return `weights` as a (k,) array, or raise InvalidWeightsError naming the rule broken."""
        x = self.as_array(weights)
        if x.ndim != 1:
            raise InvalidWeightsError(f"expected one mixture of {self.k} weights, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise InvalidWeightsError(f"weights must be finite, got {_fmt(x)} for {list(self.domains)}")
        if np.any(x < -atol):
            raise InvalidWeightsError(f"weights must be >= 0, got {_fmt(x)} for {list(self.domains)}")
        if abs(x.sum() - 1) > atol:
            raise InvalidWeightsError(f"weights must sum to 1, got {x.sum():.6g} for {list(self.domains)} = {_fmt(x)}")
        low = [d for d, v, lo in zip(self.domains, x, self.floors) if v < lo - atol]
        if low:
            raise InvalidWeightsError(f"weights must be >= their floors, got {low} below floors {_fmt(self.floors)}: {_fmt(x)}")
        high = [d for d, v, hi in zip(self.domains, x, self.caps) if v > hi + atol]
        if high:
            raise InvalidWeightsError(f"weights must be <= their caps, got {high} above caps {_fmt(self.caps)}: {_fmt(x)}")
        return x

    def clean(self, weights, *, atol: float = SUM_ATOL) -> np.ndarray:
        """Snap numerically-almost-feasible weights exactly onto the simplex, then validate.

        Clips tiny negatives and tiny floor/cap violations (within `atol`) and renormalises, so
        optimizer output is exactly on the simplex; anything further off raises.
        """
        x = self.validate(weights, atol=atol)
        x = np.clip(x, self.floors, self.caps)
        return self.validate(self._renormalize(x))

    def clean_rows(self, X, *, atol: float = SUM_ATOL, what: str = "row") -> np.ndarray:
        """`clean` for an (n, k) array of mixtures at once; InvalidWeightsError names the first bad
        row ("{what} i: ...")."""
        X = np.array(X, dtype=float).reshape(-1, self.k)
        ok = (np.isfinite(X).all(axis=1) & (X >= -atol).all(axis=1) & (np.abs(X.sum(axis=1) - 1) <= atol)
              & (X >= self.floors - atol).all(axis=1) & (X <= self.caps + atol).all(axis=1))
        for i in np.flatnonzero(~ok)[:1]:
            try:
                self.validate(X[i], atol=atol)
            except InvalidWeightsError as e:
                raise InvalidWeightsError(f"{what} {i}: {e}") from None
        return self._renormalize(np.clip(X, self.floors, self.caps))

    def _renormalize(self, x: np.ndarray) -> np.ndarray:
        """Spread the rounding residue 1 - sum(x) over coordinates with slack; (k,) or (n, k)."""
        x = np.array(x, dtype=float)
        for _ in range(4):
            residue = 1.0 - x.sum(axis=-1, keepdims=True)
            slack = np.where(residue > 0, self.caps - x, x - self.floors)
            total = slack.sum(axis=-1, keepdims=True)
            step = np.divide(residue * slack, total, out=np.zeros_like(x), where=total > 0)
            x = np.clip(x + step, self.floors, self.caps)
        return x

    def to_mixture(self, x) -> dict[str, float]:
        """A (k,) array as an ordered {domain: weight} dict."""
        return {d: float(v) for d, v in zip(self.domains, np.asarray(x, dtype=float))}

    def contains(self, weights, *, atol: float = SUM_ATOL) -> bool:
        try:
            self.validate(weights, atol=atol)
        except InvalidWeightsError:
            return False
        return True

    def project(self, weights) -> np.ndarray:
        """The feasible mixture closest (Euclidean) to `weights`, any (k,) vector of finite numbers."""
        x = self.as_array(weights)
        if x.ndim != 1 or not np.all(np.isfinite(x)):
            raise InvalidWeightsError(f"can only project one finite vector of {self.k} numbers, got {x!r}")
        # x_i(tau) = clip(y_i - tau, lo_i, hi_i) is monotone in tau; bisect for sum = 1.
        lo_tau, hi_tau = float((x - self.caps).min()) - 1, float((x - self.floors).max()) + 1
        for _ in range(200):
            tau = 0.5 * (lo_tau + hi_tau)
            if np.clip(x - tau, self.floors, self.caps).sum() > 1:
                lo_tau = tau
            else:
                hi_tau = tau
        return self.clean(np.clip(x - 0.5 * (lo_tau + hi_tau), self.floors, self.caps))

    @property
    def center(self) -> np.ndarray:
        """The feasible mixture closest to uniform 1/k (uniform itself when it is feasible)."""
        return self.project(np.full(self.k, 1.0 / self.k))

    # -- sampling -----------------------------------------------------------------------------
    def sample(self, n: int, *, method: str = "random", seed: int = 0, skip: int = 0) -> np.ndarray:
        """Draw n feasible mixtures, an (n, k) array.

        method="random": uniform on the feasible set (the flat Dirichlet when there are no caps).
        method="sobol": scrambled Sobol points (scipy) mapped onto the feasible set by the
        conditional inverse-CDF (Rosenblatt) transform, so they keep their low discrepancy.
        `skip` continues a Sobol sequence after `skip` points already drawn with the same seed.
        Works without rejection for any k and any floors/caps (see bomix/_simplex.py).
        """
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be an integer >= 0, got {n!r}")
        if method not in ("random", "sobol"):
            raise ValueError(f"method must be 'random' or 'sobol', got {method!r}")
        free = self.caps - self.floors
        mass = 1.0 - self.floors.sum()
        active = free > 0  # domains whose weight is not fixed by floor == cap
        d = int(active.sum())
        x = np.tile(self.floors, (n, 1))
        if n and d and mass > 0:
            u = _simplex.unit_cube(n, max(d - 1, 1), method=method, seed=seed, skip=skip)[:, : d - 1]
            x[:, active] += mass * _simplex.capped_simplex(u, np.minimum(free[active] / mass, 1.0))
        return self._renormalize(x)
