"""Rendering both channels: explicit source grids through explicit lens parameters -> flux, velocity, mask.

This is the documented Python API (``docs/simulator.md``); the simulator and the dataset code call
``render_lensed`` with either backend (the one place that dispatches to them; the backends import nothing from
here: ``SourceGrids`` lives in ``lensml.source_grid``, the numpy operations in ``backends.numpy_observe``).
Conventions, stated once here:

- **Image plane**: ``n_pix x n_pix`` detector pixels of ``pixel_scale_arcsec``, centred on (0, 0); arrays are
  indexed ``[row, col]`` with the row following +y and the column following +x (``imshow(origin="lower")``).
  Each pixel is split into ``supersample x supersample`` sub-pixels; one ray is shot per sub-pixel and serves
  both channels.
- **Source grids**: ``flux`` and ``velocity_kms`` of shape (B, M, M), same row/column convention, covering the
  square ``[center - half_size, center + half_size]`` in both axes (pixel *edges* on the bounds, i.e.
  ``torch.nn.functional.grid_sample(align_corners=False)``); values are sampled by bilinear interpolation and
  are 0 outside the grid. A source-plane position ``beta`` is mapped to grid coordinates by
  ``u = R(-rotation) (beta - center)``, then ``u_x -> -u_x`` if ``flip``: rotating or flipping a template
  moves both channels identically.
- **Velocity**: the intensity-weighted line-of-sight mean. Bilinear sampling, block-averaging and the PSF act
  on ``flux * velocity`` and on ``flux``; ``v_obs = K*(f v) / K*(f)``. With ``velocity_grid`` set, both are
  block-averaged to that coarser grid, resampled bilinearly back to ``n_pix`` and divided.
- **PSF**: convolution at the detector pixel scale. The image is ray-traced with a margin of (at least) the
  kernel half-width and the valid part is kept, so flux from just outside the field is blurred in correctly.
- **Mask**: noiseless observed flux above ``mask_frac_of_peak`` times the peak of that image. The velocity is
  rendered wherever the flux is positive (0 only where it is not), *not* cut by this mask: noise is added
  separately (``lensml.sim.instrument.add_noise``), which then sets the velocity to 0 outside the final mask
  (observed or noiseless, ``noise.mask_from``). Cutting before the noise leaked the noiseless isophote.
- **Lens**: ``lens_model_list`` holds lenstronomy profile names, ``kwargs_lens`` one dict per profile whose
  values are floats or (B,) arrays in lenstronomy's conventions (arcsec).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lensml.errors import ConfigError
from lensml.sim.backends.lenstronomy_backend import render_lenstronomy
from lensml.sim.backends.numpy_observe import (  # noqa: F401 - the documented numpy API
    block_average,
    convolve_valid,
    observe_numpy,
    upsample_bilinear,
)
from lensml.sim.backends.torch_backend import render_torch
from lensml.sim.instrument import Instrument
from lensml.source_grid import SourceGrids, bilinear_sample, grid_units  # noqa: F401

BACKENDS: tuple[str, ...] = ("torch", "lenstronomy")


def render_lensed(
    sources: SourceGrids,
    lens_model_list: Sequence[str],
    kwargs_lens: Sequence[Mapping[str, object]],
    instrument: Instrument,
    mask_frac_of_peak: float = 0.05,
    backend: str = "torch",
    **backend_options: object,
) -> dict[str, np.ndarray]:
    """Noiseless observed ``flux`` (B, N, N), ``velocity`` (km/s, 0 where the flux is 0) and ``mask`` (bool).

    ``backend="lenstronomy"`` loops over samples with ``LensModel.ray_shooting`` and numpy (the reference);
    ``backend="torch"`` renders the batch at once (options ``device``, ``dtype``, ``cpu_kernels``) and, with
    ``instrument.n_velocity_channels`` > 0, the IFU ``cube`` (B, N_v, N, N) too (option ``sigma_line_kms``:
    the samples' line dispersions; ``lensml.sim.cube``).
    """
    if backend != "torch" and instrument.n_velocity_channels:
        raise ConfigError(
            f"instrument.n_velocity_channels={instrument.n_velocity_channels}: the IFU cube is rendered by "
            f"the torch backend only; use sim.backend=torch (not {backend!r}) or "
            "instrument.n_velocity_channels=0."
        )
    if backend == "torch":
        return render_torch(
            sources, lens_model_list, kwargs_lens, instrument, mask_frac_of_peak, **backend_options
        )
    if backend == "lenstronomy":
        return render_lenstronomy(sources, lens_model_list, kwargs_lens, instrument, mask_frac_of_peak)
    raise ConfigError(f"sim.backend: unknown backend {backend!r}; use one of {list(BACKENDS)}.")
