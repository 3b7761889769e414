"""Named prior distributions read from the config: every random quantity is one of these.

A prior is either a plain number (fixed value) or a mapping with a ``dist`` key:

==============  ==============================  =====================================================
``dist``        keys                            draw
==============  ==============================  =====================================================
``fixed``       ``value``                       ``value``
``uniform``     ``low``, ``high``               uniform in [low, high)
``loguniform``  ``low``, ``high`` (both > 0)    log10 uniform in [log10 low, log10 high)
``normal``      ``mean``, ``sigma``,            normal, truncated to [low, high] when bounds are
                optional ``low``, ``high``      given
``randint``     ``low``, ``high``               integer uniform in [low, high] (both included)
``choice``      ``values``, optional ``probs``  one of ``values``
==============  ==============================  =====================================================

A draw is the prior's inverse CDF at one uniform (``quantile``): the simulator gives every named quantity
its own uniform (``lensml.sim.simulator``), vectorised over the batch. ``support(spec)`` gives the closed
range a prior can reach, which the simulator checks against the physical bounds at build time
(``ConfigError`` naming the key).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from lensml.errors import ConfigError

DISTRIBUTIONS: tuple[str, ...] = ("fixed", "uniform", "loguniform", "normal", "randint", "choice")

_REQUIRED: dict[str, tuple[str, ...]] = {
    "fixed": ("value",),
    "uniform": ("low", "high"),
    "loguniform": ("low", "high"),
    "normal": ("mean", "sigma"),
    "randint": ("low", "high"),
    "choice": ("values",),
}


def validate_prior(spec: Any, key: str) -> None:
    """Raise ``ConfigError`` naming ``key`` if ``spec`` is not a well-formed prior."""
    if _is_number(spec):
        return
    if not isinstance(spec, Mapping) or "dist" not in spec:
        raise ConfigError(
            f"{key}: expected a number or a prior like {{dist: uniform, low: ..., high: ...}}, got {spec!r}."
        )
    dist = spec["dist"]
    if dist not in _REQUIRED:
        raise ConfigError(
            f"{key}.dist: unknown distribution {dist!r}; use one of {list(DISTRIBUTIONS)}."
        )
    for name in _REQUIRED[dist]:
        if spec.get(name) is None:
            raise ConfigError(f"{key}.{name}: missing for a {dist} prior; set {key}.{name}=<value>.")
    if dist in ("uniform", "loguniform", "randint") and float(spec["low"]) > float(spec["high"]):
        raise ConfigError(f"{key}: low={spec['low']} > high={spec['high']}; swap them.")
    if dist == "loguniform" and float(spec["low"]) <= 0:
        raise ConfigError(f"{key}.low: a loguniform prior needs low > 0, got {spec['low']}.")
    if dist == "normal":
        if float(spec["sigma"]) < 0:
            raise ConfigError(f"{key}.sigma: must be >= 0, got {spec['sigma']}.")
        lo, hi = spec.get("low"), spec.get("high")
        if lo is not None and hi is not None and float(lo) > float(hi):
            raise ConfigError(f"{key}: low={lo} > high={hi}; swap them.")
    if dist == "choice":
        values, probs = list(spec["values"]), spec.get("probs")
        if not values:
            raise ConfigError(f"{key}.values: empty; give at least one value.")
        if probs is not None and (len(probs) != len(values) or min(probs) < 0 or sum(probs) <= 0):
            raise ConfigError(f"{key}.probs: need {len(values)} non-negative weights, got {probs!r}.")


def support(spec: Any) -> tuple[float, float]:
    """Closed range ``(low, high)`` the prior can produce (``-inf``/``inf`` when unbounded)."""
    if _is_number(spec):
        return float(spec), float(spec)
    dist = spec["dist"]
    if dist == "fixed":
        return float(spec["value"]), float(spec["value"])
    if dist in ("uniform", "loguniform", "randint"):
        return float(spec["low"]), float(spec["high"])
    if dist == "normal":
        lo, hi = spec.get("low"), spec.get("high")
        return (-math.inf if lo is None else float(lo)), (math.inf if hi is None else float(hi))
    values = [float(v) for v in spec["values"]]
    return min(values), max(values)


def check_range(
    spec: Any,
    key: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    what: str = "",
) -> None:
    """Raise ``ConfigError`` naming ``key`` if the prior can leave [low, high] (open ends when asked)."""
    validate_prior(spec, key)
    lo, hi = support(spec)
    bad_low = low is not None and (lo < low or (low_open and lo <= low))
    bad_high = high is not None and (hi > high or (high_open and hi >= high))
    if bad_low or bad_high:
        lo_b = "(" if low_open else "["
        hi_b = ")" if high_open else "]"
        allowed = f"{lo_b}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi_b}"
        raise ConfigError(
            f"{key}: the prior reaches [{lo}, {hi}] but {what or 'the value'} must lie in {allowed}; "
            f"change {key} (for a normal prior add low/high bounds)."
        )


def quantile(spec: Any, u: np.ndarray | float) -> np.ndarray:
    """The prior ``spec`` (already validated) at cumulative probabilities ``u`` in (0, 1): inverse-CDF draws.

    One uniform per draw whatever the distribution, so a sample's parameters are a fixed set of uniforms
    (``lensml.numerics.philox.uniforms``) pushed through their priors, vectorised over the batch.
    """
    u = np.asarray(u, dtype=np.float64)
    if _is_number(spec):
        return np.full(u.shape, float(spec))
    dist = spec["dist"]
    if dist == "fixed":
        return np.full(u.shape, float(spec["value"]))
    if dist == "uniform":
        low, high = float(spec["low"]), float(spec["high"])
        return low + (high - low) * u
    if dist == "loguniform":
        lo, hi = math.log10(float(spec["low"])), math.log10(float(spec["high"]))
        return 10.0 ** (lo + (hi - lo) * u)
    if dist == "normal":
        return _truncated_normal(spec, u)
    if dist == "randint":
        low, high = int(spec["low"]), int(spec["high"])
        return np.minimum(low + np.floor(u * (high - low + 1)), high)
    values = np.asarray([float(v) for v in spec["values"]])
    probs = spec.get("probs")
    p = np.ones(values.size) if probs is None else np.asarray(probs, dtype=float)
    cdf = np.cumsum(p) / p.sum()
    return values[np.minimum(np.searchsorted(cdf, u, side="right"), values.size - 1)]


def _truncated_normal(spec: Mapping[str, Any], u: np.ndarray) -> np.ndarray:
    """Normal(mean, sigma) truncated to [low, high] at probabilities u (exact inverse CDF)."""
    from scipy.special import ndtr, ndtri

    mean, sigma = float(spec["mean"]), float(spec["sigma"])
    lo = -math.inf if spec.get("low") is None else float(spec["low"])
    hi = math.inf if spec.get("high") is None else float(spec["high"])
    if sigma == 0:
        return np.full(u.shape, min(max(mean, lo), hi))
    a, b = (lo - mean) / sigma, (hi - mean) / sigma
    if a > 0:  # both bounds above the mean: work in the upper tail, where ndtr keeps its precision
        p_a, p_b = ndtr(-a), ndtr(-b)
        z = -ndtri(p_a - u * (p_a - p_b))
    else:
        p_a, p_b = ndtr(a), ndtr(b)
        z = ndtri(p_a + u * (p_b - p_a))
    return np.clip(mean + sigma * z, lo, hi)


def draw(spec: Any, rng: np.random.Generator) -> float:
    """One draw from the prior ``spec`` with ``rng``: ``quantile`` at one uniform."""
    return float(quantile(spec, rng.random()))


def _is_number(spec: Any) -> bool:
    return isinstance(spec, int | float | np.number) and not isinstance(spec, bool)
