"""The simulator seam: composed config -> batches of rendered two-channel lensed samples.

THIS IS THE CONTRACT between the simulator (Layers 2-3) and the ML layer (Layer 4). Keep it stable.

- ``build_simulator(cfg)`` takes the whole composed Hydra config and reads only the groups
  ``cfg.source``, ``cfg.lens``, ``cfg.subhalo``, ``cfg.noise``, ``cfg.instrument`` and ``cfg.sim``.
  It validates them (``ConfigError`` naming the key, e.g. ``subhalo.mass_bin``) and returns a ``Simulator``.
- ``Simulator.sample_batch(seed, split, indices)`` renders the samples ``indices`` of ``split``.
  Sample ``i`` is a pure function of ``(seed, split, i)`` (``numpy.random.SeedSequence([seed, SPLIT_CODES[split], i])``),
  whatever the batch it is rendered in, the process or the worker.

Returned dict (B = len(indices), N = cfg.instrument.n_pix):

=================  =============  ==========================================================================
key                dtype, shape   meaning
=================  =============  ==========================================================================
``flux``           float32 B,N,N  observed surface brightness, arbitrary units, noise included (not normalised)
``velocity``       float32 B,N,N  observed line-of-sight velocity in km/s relative to systemic; 0 outside mask
``mask``           bool    B,N,N  validity mask (observed noiseless flux > cfg.noise.mask_frac_of_peak * peak)
``label``          int64   B      1 = subhalo present, 0 = none (drawn with P = cfg.subhalo.p_present)
``mass_msun``      float64 B      subhalo mass in M_sun (definition in ``lensml.sim.subhalo``); 0.0 if none
``sub_x_arcsec``   float64 B      subhalo position in the image plane (arcsec); NaN if none
``sub_y_arcsec``   float64 B      idem
``source_id``      str     B      ``"disk"`` for analytic sources, the plateifu for MaNGA templates
=================  =============  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPLIT_CODES: dict[str, int] = {"train": 0, "val": 1, "test": 2}

SAMPLE_KEYS: tuple[str, ...] = (
    "flux", "velocity", "mask", "label", "mass_msun", "sub_x_arcsec", "sub_y_arcsec", "source_id",
)


def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random generator of sample ``index`` of ``split``: a pure function of (seed, split, index)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLIT_CODES[split], int(index)]))


class Simulator:
    """Renders lensed flux + velocity samples. Built by ``build_simulator``; see the module docstring."""

    n_pix: int
    pixel_scale_arcsec: float

    def sample_batch(self, seed: int, split: str, indices: Sequence[int]) -> dict[str, np.ndarray]:
        raise NotImplementedError  # filled in by the simulator implementation


def build_simulator(cfg) -> Simulator:  # noqa: ANN001 - DictConfig
    """Validate the physics groups of ``cfg`` and build the simulator."""
    raise NotImplementedError  # filled in by the simulator implementation
