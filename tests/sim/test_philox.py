"""Philox4x32-10 (lensml.numerics.philox) against the Random123 known-answer vectors."""

from __future__ import annotations

import numpy as np
import pytest

from lensml.numerics.philox import philox_block, split_key

# Random123 tests/kat_vectors: philox4x32 10 (counter, key) -> output
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize("counter, key, expected", KAT)
def test_known_answer_vectors(counter, key, expected):
    out = philox_block(np.array(counter, dtype=np.uint64), np.array(key, dtype=np.uint64))
    assert [int(w) for w in out] == list(expected)


def test_split_key_is_the_two_32_bit_halves():
    assert split_key(0x0123456789ABCDEF) == (0x89ABCDEF, 0x01234567)
    assert split_key(-1) == (0xFFFFFFFF, 0xFFFFFFFF)


def test_uniforms_are_a_pure_function_of_seed_tag_index_and_slot():
    from lensml.numerics.philox import uniforms, words64

    u = uniforms(7, 3, np.arange(50_000), 5)
    assert u.shape == (50_000, 5) and 0.0 < u.min() and u.max() < 1.0
    assert np.all(np.abs(u.mean(axis=0) - 0.5) < 4 * 0.29 / np.sqrt(50_000))
    np.testing.assert_array_equal(uniforms(7, 3, [12, 40_000], 5), u[[12, 40_000]])  # any batch
    np.testing.assert_array_equal(uniforms(7, 3, [12], 3)[0], u[12, :3])  # slots do not depend on n
    for other in (uniforms(8, 3, [12], 5), uniforms(7, 4, [12], 5)):  # seed, stream
        assert not np.any(other == u[12])
    w = words64(7, 3, np.arange(1000))
    assert w.dtype == np.uint64 and len(set(w.tolist())) == 1000
