"""Float32 elementary functions written for numba kernels that LLVM can vectorise (SIMD).

numba compiles ``math.atan2`` / ``math.log`` / ... to scalar libm calls, which stop LLVM from vectorising a
loop (~20 ns per call here, against ~1 ns per element for a vectorised loop). The functions below use only
arithmetic, comparisons, selects, ``sqrt``, ``floor`` and float <-> int bit casts, so a loop that calls them
becomes SIMD code. They follow the Cephes single-precision algorithms (S. L. Moshier): range reduction, then
a minimax polynomial; accuracy is a few float32 ulp over the stated domains (tested against numpy float64).

Every result depends only on its argument: no fused multiply-add contraction is allowed (numba does not set
LLVM's fast-math flags here), so the vector body and the scalar remainder of a loop give the same bits and a
sample's value does not depend on its position in the batch.

They are compiled into the kernels that call them (``lensml.jit.inline``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from lensml.jit import inline

F32 = np.float32

_LOG2E = F32(1.4426950408889634)
_EXP_C1 = F32(0.693359375)  # ln 2 = C1 + C2 (Cody-Waite split: n * C1 is exact)
_EXP_C2 = F32(-2.12194440e-4)
_EXP_MAX = F32(88.0)  # 2^n stays finite
_EXP_MIN = F32(-87.33654)  # exp(_EXP_MIN) ~ 1.2e-38, the smallest normal float32
_PI_2 = F32(1.5707963267948966)
_PI_4 = F32(0.7853981633974483)


def _bit_cast(src: types.Type, dst: types.Type, llvm_type: ir.Type, doc: str) -> Any:
    """A numba intrinsic reinterpreting the bits of a ``src`` value as ``dst`` (no conversion)."""

    @intrinsic
    def cast(typingctx, x):  # noqa: ANN001, ANN202 - numba intrinsic
        def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
            return builder.bitcast(args[0], llvm_type)

        return dst(src), codegen

    cast.__doc__ = doc
    return cast


f32_bits = _bit_cast(types.float32, types.int32, ir.IntType(32), "The IEEE-754 bits of a float32, as int32.")
bits_f32 = _bit_cast(types.int32, types.float32, ir.FloatType(), "The float32 of IEEE-754 bits (int32).")
f64_bits = _bit_cast(types.float64, types.int64, ir.IntType(64), "The IEEE-754 bits of a float64, as int64.")
bits_f64 = _bit_cast(types.int64, types.float64, ir.DoubleType(), "The float64 of IEEE-754 bits (int64).")


@inline
def atan_f32(z: float) -> float:
    """arctan(z) for any float32 z (radians); Cephes atanf, |error| <= 2e-7."""
    x = abs(z)
    big = x > F32(2.414213562373095)  # tan(3 pi / 8)
    mid = x > F32(0.4142135623730950)  # tan(pi / 8)
    num = F32(-1.0) if big else (x - F32(1.0) if mid else x)
    den = x if big else (x + F32(1.0) if mid else F32(1.0))
    y0 = _PI_2 if big else (_PI_4 if mid else F32(0.0))
    t = num / den
    t2 = t * t
    p = ((F32(8.05374449538e-2) * t2 - F32(1.38776856032e-1)) * t2 + F32(1.99777106478e-1)) * t2
    y = y0 + ((p - F32(3.33329491539e-1)) * t2 * t + t)
    return y if z >= F32(0.0) else -y


@inline
def log_f32(x: float) -> float:
    """Natural log of a positive normal float32; Cephes logf, relative error <= 2e-7 (|log x| > 0.1)."""
    bits = f32_bits(x)
    e = ((bits >> 23) & 0xFF) - 127
    m = bits_f32((bits & 0x007FFFFF) | 0x3F800000)  # mantissa in [1, 2)
    hi = m > F32(1.4142135623730951)
    m = m * F32(0.5) if hi else m
    e = e + 1 if hi else e
    f = m - F32(1.0)  # in [-0.293, 0.414]
    f2 = f * f
    p = F32(7.0376836292e-2) * f - F32(1.1514610310e-1)
    p = p * f + F32(1.1676998740e-1)
    p = p * f - F32(1.2420140846e-1)
    p = p * f + F32(1.4249322787e-1)
    p = p * f - F32(1.6668057665e-1)
    p = p * f + F32(2.0000714765e-1)
    p = p * f - F32(2.4999993993e-1)
    p = p * f + F32(3.3333331174e-1)
    fe = F32(e)
    y = p * f * f2 + fe * _EXP_C2  # e ln 2 = e C1 + e C2, added in two parts (Cody-Waite)
    y = y - F32(0.5) * f2
    return (f + y) + fe * _EXP_C1


@inline
def atanh_f32(w: float) -> float:
    """artanh(w) for |w| < 1; Cephes atanhf (odd polynomial below 0.5, else log), rel. error <= 3e-7."""
    x = abs(w)
    w2 = w * w
    p = F32(1.81740078349e-1) * w2 + F32(8.24370301058e-2)
    p = p * w2 + F32(1.46691431730e-1)
    p = p * w2 + F32(1.99782164500e-1)
    p = p * w2 + F32(3.33337300303e-1)
    small = p * w2 * w + w
    large = F32(0.5) * log_f32((F32(1.0) + x) / (F32(1.0) - x))
    large = large if w >= F32(0.0) else -large
    return small if x < F32(0.5) else large


@inline
def exp_f32(x: float) -> float:
    """e^x, x clamped to [-87.33, 88.0] (normal, finite float32 results); Cephes expf, rel. error <= 2e-7."""
    x = min(max(x, _EXP_MIN), _EXP_MAX)
    n = np.floor(x * _LOG2E + F32(0.5))
    r = x - n * _EXP_C1
    r = r - n * _EXP_C2
    r2 = r * r
    p = F32(1.9875691500e-4) * r + F32(1.3981999507e-3)
    p = p * r + F32(8.3334519073e-3)
    p = p * r + F32(4.1665795894e-2)
    p = p * r + F32(1.6666665459e-1)
    p = p * r + F32(5.0000001201e-1)
    y = p * r2 + r + F32(1.0)
    return y * bits_f32((np.int32(n) + 127) << 23)


@inline
def sincos_2pi_f32(u: float) -> tuple[float, float]:
    """(sin 2 pi u, cos 2 pi u) for float32 u (turns); Cephes sinf/cosf polynomials on [-pi/4, pi/4]."""
    t = u * F32(4.0)
    q = np.floor(t + F32(0.5))  # nearest quarter turn
    x = (t - q) * _PI_2  # in [-pi/4, pi/4]
    quad = np.int32(q) & 3
    x2 = x * x
    s = ((F32(-1.9515295891e-4) * x2 + F32(8.3321608736e-3)) * x2 - F32(1.6666654611e-1)) * x2 * x + x
    c = (F32(2.443315711809948e-5) * x2 - F32(1.388731625493765e-3)) * x2 + F32(4.166664568298827e-2)
    c = c * x2 * x2 - F32(0.5) * x2 + F32(1.0)
    odd = (quad & 1) == 1  # quarter turns 1, 3 swap sin and cos; signs by quadrant, as multiplications
    sin = (c if odd else s) * F32(1 - (quad & 2))
    cos = (s if odd else c) * F32(1 - ((quad + 1) & 2))
    return sin, cos


_LN2_HI = 6.93147180369123816490e-01  # ln 2 = _LN2_HI + _LN2_LO, _LN2_HI with 32 trailing zero bits
_LN2_LO = 1.90821492927058770002e-10
_HALF_LN_2PI = 0.9189385332046727418
#: Stirling series of ln Gamma: coefficients of x^-1, x^-3, ..., x^-11 (B_2k / (2k (2k - 1))).
_STIRLING = (
    8.333333333333333e-02,
    -2.777777777777778e-03,
    7.936507936507937e-04,
    -5.952380952380952e-04,
    8.417508417508418e-04,
    -1.917526917526918e-03,
)


@inline
def log_f64(x: float) -> float:
    """Natural log of a positive normal float64 (fdlibm's e_log.c algorithm), error < 1 ulp."""
    bits = f64_bits(x)
    e = ((bits >> 52) & 0x7FF) - 1023
    m = bits_f64((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)  # mantissa in [1, 2)
    hi = m > 1.4142135623730951
    m = m * 0.5 if hi else m
    k = float(e + 1 if hi else e)
    f = m - 1.0  # in [-0.293, 0.414]
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01 + w * 1.531383769920937332e-01))
    t2 = z * (
        6.666666666666735130e-01
        + w * (2.857142874366239149e-01 + w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01))
    )
    r = t2 + t1
    hfsq = 0.5 * f * f
    return k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)


@inline
def exp_f64(x: float) -> float:
    """e^x for float64 x in [-708, 709] (fdlibm's e_exp.c algorithm), error < 1 ulp."""
    k = np.floor(x * 1.4426950408889634 + 0.5)
    hi = x - k * _LN2_HI
    lo = k * _LN2_LO
    r = hi - lo
    t = r * r
    p = 4.13813679705723846039e-08
    p = p * t - 1.65339022054652515390e-06
    p = p * t + 6.61375632143793436117e-05
    p = p * t - 2.77777777770155933842e-03
    p = p * t + 1.66666666666666019037e-01
    c = r - t * p
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    return y * bits_f64((np.int64(k) + 1023) << 52)


@inline
def lgamma_f64(x: float) -> float:
    """ln Gamma(x) for 1 <= x < ~1e38: Stirling's series at x + 8, shifted back by ln(x (x+1) ... (x+7)).

    Relative error ~1e-15 (tested against ``math.lgamma``); no branches, so it vectorises.
    """
    prod = x * (x + 1.0) * (x + 2.0) * (x + 3.0) * (x + 4.0) * (x + 5.0) * (x + 6.0) * (x + 7.0)
    y = x + 8.0
    inv = 1.0 / y
    inv2 = inv * inv
    series = _STIRLING[5]
    series = series * inv2 + _STIRLING[4]
    series = series * inv2 + _STIRLING[3]
    series = series * inv2 + _STIRLING[2]
    series = series * inv2 + _STIRLING[1]
    series = series * inv2 + _STIRLING[0]
    return (y - 0.5) * log_f64(y) - y + _HALF_LN_2PI + series * inv - log_f64(prod)
