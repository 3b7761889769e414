"""Moved to ``lensml.numerics.philox`` (kept importable here)."""

from lensml.numerics.philox import (  # noqa: F401
    ROUNDS,
    UNIT,
    philox4x32,
    philox_block,
    split_key,
    uniforms,
    words64,
)
