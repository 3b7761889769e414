"""The torch backend says (once, and why) when a configuration falls back from the compiled kernels."""

from __future__ import annotations

import logging

import numpy as np

from lensml.sim.backends import cpu_terms, torch_backend
from lensml.sim.instrument import Instrument
from lensml.source_grid import SourceGrids


def _render(**options: object) -> None:
    rng = np.random.default_rng(0)
    src = SourceGrids(rng.random((2, 16, 16)), rng.random((2, 16, 16)), 0.0, 0.0, 1.0)
    lens = [{"theta_E": np.full(2, 1.0), "e1": np.zeros(2), "e2": np.full(2, 0.1)}]
    torch_backend.render_torch(src, ["SIE"], lens, Instrument(16, 0.1, 1, None, None), **options)


def test_a_fallback_is_logged_once_with_its_reason(caplog, monkeypatch):
    monkeypatch.setattr(torch_backend, "_FALLBACKS_LOGGED", set())
    with caplog.at_level(logging.INFO, logger="lensml.sim.backends.torch_backend"):
        _render(dtype="float32")  # the kernels apply: nothing to say
        assert not caplog.records
        _render(dtype="float64")
        _render(dtype="float64")
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "float64" in message and "torch operations" in message


def test_the_reason_names_a_profile_without_kernel_packing_or_a_full_section():
    assert cpu_terms.unsupported_reason(["SIE", "SHEAR", "TNFW", "MULTIPOLE", "MULTIPOLE"]) is None
    assert "'PJAFFE'" in cpu_terms.unsupported_reason(["SIE", "PJAFFE"])
    assert "'macro'" in cpu_terms.unsupported_reason(["SIE", "EPL"])
