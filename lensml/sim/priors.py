"""Moved to ``lensml.numerics.priors`` (kept importable here)."""

from lensml.numerics.priors import (  # noqa: F401
    DISTRIBUTIONS,
    check_range,
    draw,
    quantile,
    support,
    validate_prior,
)
