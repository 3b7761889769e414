"""Rendering both channels: explicit source grids through explicit lens parameters -> flux, velocity, mask.

This is the documented Python API (``docs/simulator.md``); the simulator and the dataset code call
``render_lensed`` with either backend. Conventions, stated once here:

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
from dataclasses import dataclass, field

import numpy as np

from lensml.errors import ConfigError
from lensml.sim.instrument import Instrument

BACKENDS: tuple[str, ...] = ("torch", "lenstronomy")


@dataclass
class SourceGrids:
    """A batch of source-plane maps and where they sit (see the module docstring). Shapes: (B, M, M), (B,)."""

    flux: np.ndarray
    velocity_kms: np.ndarray
    center_x: np.ndarray
    center_y: np.ndarray
    half_size_arcsec: np.ndarray
    rotation_deg: np.ndarray = field(default=None)  # type: ignore[assignment]
    flip: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        b = self.flux.shape[0]
        self.center_x = _batch(self.center_x, b)
        self.center_y = _batch(self.center_y, b)
        self.half_size_arcsec = _batch(self.half_size_arcsec, b)
        self.rotation_deg = _batch(0.0 if self.rotation_deg is None else self.rotation_deg, b)
        self.flip = _batch(False if self.flip is None else self.flip, b).astype(bool)

    def __len__(self) -> int:
        return int(self.flux.shape[0])


def _batch(value: object, b: int) -> np.ndarray:
    arr = np.asarray(value)
    return np.broadcast_to(arr, (b,)).copy() if arr.ndim == 0 else arr.reshape(b)


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
    ``backend="torch"`` renders the batch at once (options ``device``, ``dtype``).
    """
    if backend == "torch":
        from lensml.sim.backends.torch_backend import render_torch

        return render_torch(
            sources, lens_model_list, kwargs_lens, instrument, mask_frac_of_peak, **backend_options
        )
    if backend == "lenstronomy":
        from lensml.sim.backends.lenstronomy_backend import render_lenstronomy

        return render_lenstronomy(sources, lens_model_list, kwargs_lens, instrument, mask_frac_of_peak)
    raise ConfigError(f"sim.backend: unknown backend {backend!r}; use one of {list(BACKENDS)}.")


# ----------------------------------------------------------------------------------------------------------
# numpy reference operations (the lenstronomy backend uses these; the torch backend mirrors them)
# ----------------------------------------------------------------------------------------------------------


def grid_units(
    bx: np.ndarray, by: np.ndarray, cx: float, cy: float, half: float, rotation_deg: float, flip: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Source-plane positions (arcsec) -> normalised grid coordinates in [-1, 1] (see module docstring)."""
    dx, dy = bx - cx, by - cy
    th = np.deg2rad(rotation_deg)
    ux = dx * np.cos(th) + dy * np.sin(th)
    uy = -dx * np.sin(th) + dy * np.cos(th)
    if flip:
        ux = -ux
    return ux / half, uy / half


def bilinear_sample(image: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Bilinear sample of ``image`` (M, M) at normalised coords, zeros outside (grid_sample convention)."""
    m_y, m_x = image.shape
    ix = ((gx + 1.0) * m_x - 1.0) / 2.0
    iy = ((gy + 1.0) * m_y - 1.0) / 2.0
    x0, y0 = np.floor(ix), np.floor(iy)
    wx1, wy1 = ix - x0, iy - y0
    out = np.zeros(np.shape(gx), dtype=image.dtype)
    for xi, wx in ((x0, 1.0 - wx1), (x0 + 1, wx1)):
        for yi, wy in ((y0, 1.0 - wy1), (y0 + 1, wy1)):
            ok = (xi >= 0) & (xi < m_x) & (yi >= 0) & (yi < m_y)
            vals = image[np.clip(yi, 0, m_y - 1).astype(int), np.clip(xi, 0, m_x - 1).astype(int)]
            out = out + np.where(ok, vals, 0.0) * wx * wy
    return out


def block_average(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over non-overlapping ``factor x factor`` blocks of the last two axes."""
    if factor == 1:
        return image
    *lead, h, w = image.shape
    return image.reshape(*lead, h // factor, factor, w // factor, factor).mean(axis=(-3, -1))


def convolve_valid(image: np.ndarray, kernel: np.ndarray | None) -> np.ndarray:
    """True 2-D convolution keeping only the fully overlapped ('valid') part."""
    if kernel is None:
        return image
    from scipy.signal import fftconvolve

    return fftconvolve(image, kernel, mode="valid")


def upsample_bilinear(image: np.ndarray, n_out: int) -> np.ndarray:
    """Bilinear resampling of (n_in, n_in) to (n_out, n_out), half-pixel convention, edges clamped.

    Same as ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``.
    """
    a = _interp_matrix(image.shape[-1], n_out)
    return a @ image @ a.T


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = src - i0
    a = np.zeros((n_out, n_in))
    a[np.arange(n_out), i0] += 1.0 - w1
    a[np.arange(n_out), i1] += w1
    return a


def _crop(image: np.ndarray, n: int) -> np.ndarray:
    return image[..., n:-n, n:-n] if n else image


def observe_numpy(
    f_sub: np.ndarray, fv_sub: np.ndarray, instrument: Instrument, mask_frac_of_peak: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Supersampled f and f*v (with the PSF margin) of one image -> observed (flux, velocity, mask).

    The velocity is the flux-weighted mean wherever the flux is positive (0 elsewhere), inside and outside
    the mask: the simulator sets it to 0 outside the final mask after adding the noise.
    """
    crop = instrument.margin_pix - instrument.psf_half
    f = _crop(convolve_valid(block_average(f_sub, instrument.supersample), instrument.psf_kernel), crop)
    fv = _crop(
        convolve_valid(block_average(fv_sub, instrument.supersample), instrument.psf_kernel), crop
    )
    if instrument.velocity_grid:
        factor = instrument.n_pix // instrument.velocity_grid
        f_v = upsample_bilinear(block_average(f, factor), instrument.n_pix)
        fv = upsample_bilinear(block_average(fv, factor), instrument.n_pix)
    else:
        f_v = f
    peak = f.max()
    mask = (f > mask_frac_of_peak * peak) & (f > 0)
    velocity = np.where((f > 0) & (f_v > 0), fv / np.where(f_v > 0, f_v, 1.0), 0.0)
    return f, velocity, mask
