"""SIMD-friendly elementary functions (lensml.numerics.simd_math) against numpy / math in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from lensml.numerics import simd_math as sm

RNG = np.random.default_rng(11)
F32_ULP = 2.0**-23


def _vectorised(fn):  # noqa: ANN001, ANN202
    """fn applied elementwise in a numba loop (the way the kernels call it: vector body + scalar tail)."""

    @njit(error_model="numpy")
    def run(x, out):  # noqa: ANN001, ANN202
        for i in range(x.size):
            out[i] = fn(x[i])

    def call(x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        run(x, out)
        return out

    return call


F32_CASES = {
    "atan": (
        sm.atan_f32,
        np.arctan,
        np.concatenate(
            [RNG.uniform(-3, 3, 200_001), np.exp(RNG.uniform(-30, 30, 50_000)) * RNG.choice([-1, 1], 50_000)]
        ),
        2.0 * F32_ULP,
    ),
    "atanh": (
        sm.atanh_f32,
        np.arctanh,
        np.concatenate(
            [
                RNG.uniform(-1, 1, 200_001),
                1 - np.exp(RNG.uniform(-16, -1, 50_000)),
                RNG.uniform(-1e-3, 1e-3, 5_000),
            ]
        ),
        2.0 * F32_ULP,
    ),
    "log": (sm.log_f32, np.log, np.exp(RNG.uniform(-87, 88, 200_001)), 1.0 * F32_ULP),
    "exp": (sm.exp_f32, np.exp, RNG.uniform(-87.3, 88.0, 200_001), 1.0 * F32_ULP),
}


@pytest.mark.parametrize("name", sorted(F32_CASES))
def test_float32_functions_are_accurate_to_a_few_ulp(name):
    fn, ref, x, rel = F32_CASES[name]
    x = x[np.abs(x) < 1] if name == "atanh" else x
    x = x.astype(np.float32)
    got = _vectorised(fn)(x).astype(np.float64)
    want = ref(x.astype(np.float64))
    err = np.abs(got - want) / np.maximum(np.abs(want), 1e-30)
    assert err.max() <= rel, (name, err.max(), x[err.argmax()])


def test_sincos_of_turns_is_accurate():
    u = np.concatenate([RNG.uniform(0, 1, 200_001), [0.0, 0.25, 0.5, 0.75, 0.125, 0.999999]]).astype(
        np.float32
    )

    @njit(error_model="numpy")
    def run(u, s, c):  # noqa: ANN001, ANN202
        for i in range(u.size):
            s[i], c[i] = sm.sincos_2pi_f32(u[i])

    s, c = np.empty_like(u), np.empty_like(u)
    run(u, s, c)
    angle = 2 * np.pi * u.astype(np.float64)
    assert np.abs(s - np.sin(angle)).max() < 1.5e-7
    assert np.abs(c - np.cos(angle)).max() < 1.5e-7


def test_float64_log_exp_lgamma():
    x = np.concatenate([np.exp(RNG.uniform(-700, 700, 100_001)), RNG.uniform(0.5, 2.0, 100_000)])
    np.testing.assert_allclose(_vectorised(sm.log_f64)(x), np.log(x), rtol=2.3e-16, atol=2.3e-16)
    e = RNG.uniform(-708, 709, 100_001)
    np.testing.assert_allclose(_vectorised(sm.exp_f64)(e), np.exp(e), rtol=2.3e-16, atol=0)
    g = np.concatenate([np.arange(1.0, 5000.0), np.exp(RNG.uniform(0, 60, 10_000))])
    want = np.array([math.lgamma(v) for v in g])
    got = _vectorised(sm.lgamma_f64)(g)
    assert (np.abs(got - want) / np.maximum(np.abs(want), 1.0)).max() < 1e-14


@pytest.mark.parametrize("fn", [sm.atan_f32, sm.atanh_f32, sm.log_f32, sm.exp_f32], ids=lambda f: f.__name__)
def test_vector_body_and_scalar_tail_give_the_same_bits(fn):
    """A value must not depend on where it sits in a loop (SIMD body vs scalar remainder): odd lengths."""
    x = RNG.uniform(0.01, 0.99, 1001).astype(np.float32)
    whole = _vectorised(fn)(x)
    for start in (0, 1, 3, 17, 500, 997):
        part = _vectorised(fn)(x[start : start + 7].copy())
        np.testing.assert_array_equal(part, whole[start : start + 7])
