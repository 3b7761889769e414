"""The look-elsewhere conversion of the unknown-position scan, and M_min's interpolation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lensml.inference.position_scan import global_sigma, grid_positions
from lensml.inference.summary import m_min, summarise


def test_global_sigma_of_independent_trials() -> None:
    """Null maxima of N independent N(0, 1): N_eff ~ N, and the global p-value is 1 - Phi(s)^N."""
    rng = np.random.default_rng(0)
    null = rng.standard_normal((20000, 20)).max(axis=1)
    sig, p, n_eff = global_sigma(4.0, null)
    assert n_eff == pytest.approx(20, rel=0.1)
    from scipy.stats import norm

    assert p == pytest.approx(1 - norm.cdf(4.0) ** 20, rel=0.15)
    assert sig < 4.0  # looking elsewhere costs significance
    one = rng.standard_normal(20000)  # a single trial: global = local
    assert global_sigma(3.0, one)[0] == pytest.approx(3.0, abs=0.05)


def test_grid_positions_on_rings() -> None:
    pos = grid_positions(1.0, 0.1, -0.2, 0.2, 3, 8)
    r = np.hypot(pos[:, 0] - 0.1, pos[:, 1] + 0.2)
    assert pos.shape == (24, 2) and np.allclose(sorted(set(np.round(r, 9))), [0.8, 1.0, 1.2])


def test_m_min_interpolates_in_log_log() -> None:
    log_m = np.array([9.0, 10.0, 11.0])
    assert m_min(log_m, np.array([1.0, 10.0, 100.0]), 5.0) == pytest.approx(10 ** (9 + math.log10(5)))
    assert m_min(log_m, np.array([6.0, 10.0, 100.0]), 5.0) is None  # already above: a bound, not a value


def test_summarise_bootstrap_brackets_the_median() -> None:
    rng = np.random.default_rng(1)
    s = np.exp(rng.normal(size=(200, 3))) * np.array([1.0, 10.0, 100.0])
    masses = np.tile([1e9, 1e10, 1e11], (200, 1))
    out = summarise({"flux": {"none": s}}, masses, 5.0, 200)
    r = out["results"]["flux"]["none"]
    for med, (lo, hi) in zip(r["median"], r["median_ci95"]):
        assert lo <= med <= hi
    assert r["m_min_ci95"][0] <= r["m_min_msun"] <= r["m_min_ci95"][1]
