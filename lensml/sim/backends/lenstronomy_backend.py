"""Reference backend: one image at a time with lenstronomy's ``LensModel.ray_shooting`` and numpy.

Same conventions and outputs as ``lensml.sim.render`` (see its docstring); slow but simple to check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np

from lensml.sim.backends.numpy_observe import observe_numpy
from lensml.sim.instrument import Instrument, image_coordinates
from lensml.source_grid import SourceGrids, bilinear_sample, grid_units


@lru_cache(maxsize=16)
def lens_model(lens_model_list: tuple[str, ...]):  # noqa: ANN201 - lenstronomy LensModel
    """A cached ``lenstronomy.LensModel`` for a tuple of profile names."""
    from lenstronomy.LensModel.lens_model import LensModel

    return LensModel(lens_model_list=list(lens_model_list))


def sample_kwargs(kwargs_lens: Sequence[Mapping[str, object]], b: int) -> list[dict[str, float]]:
    """The lenstronomy kwargs of sample ``b`` from batch-first kwargs (floats or (B,) arrays)."""
    out = []
    for kw in kwargs_lens:
        out.append(
            {k: float(np.asarray(v).reshape(-1)[b]) if np.ndim(v) else float(v) for k, v in kw.items()}
        )
    return out


def ray_shoot_numpy(
    x: np.ndarray, y: np.ndarray, lens_model_list: Sequence[str], kwargs: list[dict[str, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """Source-plane positions (arcsec) of image-plane positions for one sample, via lenstronomy."""
    bx, by = lens_model(tuple(lens_model_list)).ray_shooting(x, y, kwargs)
    return np.asarray(bx), np.asarray(by)


def render_lenstronomy(
    sources: SourceGrids,
    lens_model_list: Sequence[str],
    kwargs_lens: Sequence[Mapping[str, object]],
    instrument: Instrument,
    mask_frac_of_peak: float = 0.05,
) -> dict[str, np.ndarray]:
    """Noiseless (flux, velocity, mask) of a batch, one sample at a time (float64)."""
    coords = image_coordinates(
        instrument.n_pix, instrument.pixel_scale_arcsec, instrument.supersample, instrument.margin_pix
    )
    xx, yy = np.meshgrid(coords, coords)  # rows follow y, columns follow x
    n, b_total = instrument.n_pix, len(sources)
    flux = np.zeros((b_total, n, n), dtype=np.float32)
    velocity = np.zeros((b_total, n, n), dtype=np.float32)
    mask = np.zeros((b_total, n, n), dtype=bool)
    for b in range(b_total):
        bx, by = ray_shoot_numpy(xx.ravel(), yy.ravel(), lens_model_list, sample_kwargs(kwargs_lens, b))
        gx, gy = grid_units(
            bx,
            by,
            sources.center_x[b],
            sources.center_y[b],
            sources.half_size_arcsec[b],
            sources.rotation_deg[b],
            bool(sources.flip[b]),
        )
        src_f = np.asarray(sources.flux[b], dtype=np.float64)
        src_fv = src_f * np.asarray(sources.velocity_kms[b], dtype=np.float64)
        f_sub = bilinear_sample(src_f, gx, gy).reshape(xx.shape)
        fv_sub = bilinear_sample(src_fv, gx, gy).reshape(xx.shape)
        flux[b], velocity[b], mask[b] = observe_numpy(f_sub, fv_sub, instrument, mask_frac_of_peak)
    return {"flux": flux, "velocity": velocity, "mask": mask}


def tracer_image_model(
    instrument: Instrument, lens_model_list: Sequence[str], source_light: object, tracer_light: object
):  # noqa: ANN201 - lenstronomy TracerModelSource
    """lenstronomy's own image simulation of the same physics: a ``TracerModelSource`` on the detector grid.

    ``image(kwargs_lens=..., kwargs_source=...)`` gives the flux per pixel, ``tracer_model(...)`` the
    flux-weighted tracer (velocity) through the PSF; ``source_light`` and ``tracer_light`` are lenstronomy
    ``LightModel`` objects; the grid (``instrument.n_pix`` pixels of ``pixel_scale_arcsec``, centred on 0),
    PSF kernel and supersampling come from ``instrument``. The independent reference of the velocity tests
    and the "ImSim loop" of ``benchmarks/bench_sim.py``.
    """
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.tracer_model import TracerModelSource
    from lenstronomy.LensModel.lens_model import LensModel

    n, pix = instrument.n_pix, instrument.pixel_scale_arcsec
    data = ImageData(
        image_data=np.zeros((n, n)),
        ra_at_xy_0=-(n - 1) / 2 * pix,
        dec_at_xy_0=-(n - 1) / 2 * pix,
        transform_pix2angle=np.diag([pix, pix]),
    )
    return TracerModelSource(
        data,
        PSF(psf_type="PIXEL", kernel_point_source=instrument.psf_kernel),
        lens_model_class=LensModel(list(lens_model_list)),
        source_model_class=source_light,
        tracer_source_class=tracer_light,
        kwargs_numerics=dict(supersampling_factor=instrument.supersample, supersampling_convolution=False),
    )
