"""Philox4x32-10 counter-based random numbers (Salmon, Moraes, Dror & Shaw 2011, "Parallel random numbers:
as easy as 1, 2, 3"), compiled with numba.

A counter-based generator is a keyed bijection: four 32-bit output words are a pure function of a 128-bit
counter and a 64-bit key. Every pixel of every sample can draw its own numbers (key = the sample's noise
seed, counter = (pixel, stream, attempt, 0)) in any order, in a SIMD loop, and get the same values whatever
the batch, the loop order or the machine. It is the generator of JAX, cuRAND and TensorFlow's stateless ops;
the implementation is checked against the Random123 known-answer vectors (tests/sim/test_philox.py).

Integers are carried in uint64 lanes holding 32-bit values (numba turns mixed signed / unsigned 64-bit
arithmetic into float64, so every constant here is an explicit uint64).
"""

from __future__ import annotations

import numpy as np

from lensml.jit import inline, kernel

_U64 = np.uint64
_MASK32 = _U64(0xFFFFFFFF)
_SHIFT32 = _U64(32)
_M0, _M1 = _U64(0xD2511F53), _U64(0xCD9E8D57)  # round multipliers
_W0, _W1 = _U64(0x9E3779B9), _U64(0xBB67AE85)  # Weyl key increments
ROUNDS = 10
#: Scale of a 32-bit word to a uniform in (0, 1): (w + 0.5) 2^-32 is never 0 or 1.
UNIT = 2.0**-32
#: The same for a 53-bit integer made of two words.
UNIT53 = 2.0**-53


@inline
def philox4x32(
    c0: np.uint64, c1: np.uint64, c2: np.uint64, c3: np.uint64, k0: np.uint64, k1: np.uint64
) -> tuple[np.uint64, np.uint64, np.uint64, np.uint64]:
    """The four 32-bit words (as uint64) of Philox4x32-10 for counter (c0..c3) and key (k0, k1)."""
    for _ in range(ROUNDS):
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = (
            (p1 >> _SHIFT32) ^ c1 ^ k0,
            p1 & _MASK32,
            (p0 >> _SHIFT32) ^ c3 ^ k1,
            p0 & _MASK32,
        )
        k0 = (k0 + _W0) & _MASK32
        k1 = (k1 + _W1) & _MASK32
    return c0, c1, c2, c3


@kernel
def philox_block(counter: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Philox4x32-10 of one counter (4,) and key (2,) (uint64 arrays holding 32-bit values): (4,) uint64."""
    w = philox4x32(counter[0], counter[1], counter[2], counter[3], key[0], key[1])
    return np.array([w[0], w[1], w[2], w[3]], dtype=np.uint64)


def split_key(seed: int) -> tuple[int, int]:
    """A 64-bit seed as the (low, high) 32-bit halves of a Philox key."""
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    return seed & 0xFFFFFFFF, seed >> 32


@kernel
def _uniforms_kernel(
    k0: np.uint64, k1: np.uint64, tag: np.uint64, indices: np.ndarray, out: np.ndarray
) -> None:
    """out[b, s] for s < out.shape[1]: two 53-bit uniforms per Philox block (index, 0, tag, block)."""
    n = out.shape[1]
    for b in range(indices.shape[0]):
        idx = _U64(indices[b])
        for blk in range((n + 1) // 2):
            w0, w1, w2, w3 = philox4x32(idx & _MASK32, idx >> _SHIFT32, tag, _U64(blk), k0, k1)
            a = float((w0 >> _U64(5)) * _U64(67108864) + (w1 >> _U64(6)))  # 27 + 26 bits
            out[b, 2 * blk] = (a + 0.5) * UNIT53
            if 2 * blk + 1 < n:
                c = float((w2 >> _U64(5)) * _U64(67108864) + (w3 >> _U64(6)))
                out[b, 2 * blk + 1] = (c + 0.5) * UNIT53


def uniforms(seed: int, tag: int, indices: np.ndarray, n: int) -> np.ndarray:
    """(len(indices), n) float64 uniforms in (0, 1), 53 bits, a pure function of (seed, tag, index, slot).

    Philox key = the 64-bit ``seed``; counter = (index low, index high, ``tag``, slot // 2), two uniforms per
    block. ``tag`` (< 2^32) separates independent streams (e.g. split and parameter group).
    """
    k0, k1 = split_key(seed)
    idx = np.ascontiguousarray(indices, dtype=np.int64)
    if idx.size and int(idx.min()) < 0:
        raise ValueError(f"uniforms: sample indices must be >= 0, got {int(idx.min())}.")
    out = np.empty((idx.size, n), np.float64)
    _uniforms_kernel(_U64(k0), _U64(k1), _U64(tag), idx, out)
    return out


@kernel
def _words_kernel(k0: np.uint64, k1: np.uint64, tag: np.uint64, indices: np.ndarray, out: np.ndarray) -> None:
    for b in range(indices.shape[0]):
        idx = _U64(indices[b])
        w0, w1, _, _ = philox4x32(idx & _MASK32, idx >> _SHIFT32, tag, _U64(0), k0, k1)
        out[b] = w0 | (w1 << _SHIFT32)


def words64(seed: int, tag: int, indices: np.ndarray) -> np.ndarray:
    """(len(indices),) uint64: a 64-bit word per index, block 0 of stream ``tag`` (e.g. a noise seed)."""
    k0, k1 = split_key(seed)
    idx = np.ascontiguousarray(indices, dtype=np.int64)
    out = np.empty(idx.size, np.uint64)
    _words_kernel(_U64(k0), _U64(k1), _U64(tag), idx, out)
    return out
