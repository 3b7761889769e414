"""Named prior distributions read from the config: every random quantity is one of these.

A prior is either a plain number (fixed value) or a mapping with a ``dist`` key:

==============  ==============================  =====================================================
``dist``        keys                            draw
==============  ==============================  =====================================================
``fixed``       ``value``                       ``value``
``uniform``     ``low``, ``high``               uniform in [low, high)
``loguniform``  ``low``, ``high`` (both > 0)    log10 uniform in [log10 low, log10 high)
``normal``      ``mean``, ``sigma``,            normal, redrawn (rejection) until inside [low, high]
                optional ``low``, ``high``      when bounds are given
``randint``     ``low``, ``high``               integer uniform in [low, high] (both included)
``choice``      ``values``, optional ``probs``  one of ``values``
==============  ==============================  =====================================================

Every draw consumes the generator passed in, so the order of draws defines the sample (see
``lensml.sim.simulator.sample_rng``). ``support(spec)`` gives the closed range a prior can reach, which the
simulator checks against the physical bounds at build time (``ConfigError`` naming the key).
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


def draw(spec: Any, rng: np.random.Generator) -> float:
    """One draw from the prior ``spec`` (already validated) with ``rng``."""
    if spec.__class__ is dict and spec["dist"] == "uniform":  # the common case first (per-sample hot path)
        return float(rng.uniform(spec["low"], spec["high"]))
    if _is_number(spec):
        return float(spec)
    dist = spec["dist"]
    if dist == "fixed":
        return float(spec["value"])
    if dist == "uniform":
        return float(rng.uniform(float(spec["low"]), float(spec["high"])))
    if dist == "loguniform":
        return float(
            10.0 ** rng.uniform(math.log10(float(spec["low"])), math.log10(float(spec["high"])))
        )
    if dist == "normal":
        mean, sigma = float(spec["mean"]), float(spec["sigma"])
        lo = -math.inf if spec.get("low") is None else float(spec["low"])
        hi = math.inf if spec.get("high") is None else float(spec["high"])
        for _ in range(1000):
            value = float(rng.normal(mean, sigma))
            if lo <= value <= hi:
                return value
        return float(min(max(mean, lo), hi))
    if dist == "randint":
        return float(rng.integers(int(spec["low"]), int(spec["high"]) + 1))
    values = list(spec["values"])
    probs = spec.get("probs")
    p = None if probs is None else np.asarray(probs, dtype=float) / float(np.sum(probs))
    return values[int(rng.choice(len(values), p=p))]


def _is_number(spec: Any) -> bool:
    return isinstance(spec, int | float | np.number) and not isinstance(spec, bool)
