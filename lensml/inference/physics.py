"""The one place where ``lensml.inference`` imports the simulator and the source models.

Everything the differentiable renderer and the forecast need from ``lensml.sim`` / ``lensml.sources`` is
re-exported or wrapped here, so that a move of those modules means one edit (this file).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lensml.sim.cube import channel_edges_kms, channel_weights, voxel_sigma
from lensml.sim.instrument import Instrument, image_coordinates
from lensml.sim.simulator import DrawBatch, LensSimulator, build_simulator
from lensml.sim.velocity_noise import flux_sigma, velocity_sigma_kms
from lensml.sources.disk import CLUMP_PARAMS, DISK_PARAMS, disk_extent_arcsec, disk_maps

__all__ = [
    "CLUMP_PARAMS",
    "DISK_PARAMS",
    "DrawBatch",
    "Instrument",
    "LensSimulator",
    "build_simulator",
    "channel_edges_kms",
    "channel_weights",
    "disk_extent_arcsec",
    "disk_maps",
    "flux_sigma",
    "image_coordinates",
    "velocity_sigma_kms",
    "voxel_sigma",
    "disk_grid_geometry",
    "template_grid",
    "with_subhalo",
    "subhalo_kwargs_at",
    "noise_sigmas",
    "subhalo_kwargs_model",
]


def disk_grid_geometry(sim: LensSimulator, draws: DrawBatch, i: int) -> tuple[float, float, float, int]:
    """(centre x, centre y, half-size arcsec, pixels per side) of the source grid the production renderer
    evaluates sample ``i``'s analytic disk on (``SourceSampler._disk_grids``)."""
    src = draws.source
    prm = {k: np.asarray(v[i : i + 1], dtype=float) for k, v in src.disk.items()}
    scale = float(sim.sources.cfg["train"].get("grid_half_size_scale", 5.0))
    half = float(disk_extent_arcsec(prm, scale)[0])
    return float(src.center_x[i]), float(src.center_y[i]), half, int(sim.sources.grid_npix)


def template_grid(sim: LensSimulator, draws: DrawBatch, i: int, split: str) -> dict[str, Any]:
    """Sample ``i``'s MaNGA template grid: flux, velocity (M, M), centre, half-size, rotation, flip."""
    groups = sim.sources.grids(draws.source.take(np.array([i])), split)
    ((_, grids),) = groups
    return {
        "flux": np.asarray(grids.flux[0], dtype=np.float64),
        "velocity_kms": np.asarray(grids.velocity_kms[0], dtype=np.float64),
        "center_x": float(grids.center_x[0]),
        "center_y": float(grids.center_y[0]),
        "half_size_arcsec": float(grids.half_size_arcsec[0]),
        "rotation_deg": float(grids.rotation_deg[0]),
        "flip": bool(grids.flip[0]),
    }


def with_subhalo(draws: DrawBatch, present: bool | np.ndarray) -> DrawBatch:
    """The same draws with every subhalo switched on or off."""
    return dataclasses.replace(draws, present=np.broadcast_to(present, draws.present.shape).copy())


def subhalo_kwargs_at(
    sim: LensSimulator, draws: DrawBatch, i: int, mass_msun: float, x: float, y: float
) -> dict[str, float]:
    """lenstronomy kwargs of sample ``i``'s subhalo with mass ``mass_msun`` (M200) moved to (x, y) arcsec
    (its concentration and truncation follow the configured model at the new projected radius and the
    drawn line-of-sight depth)."""
    one = draws.take(np.array([i]))
    one = dataclasses.replace(
        one,
        present=np.array([True]),
        mass_msun=np.array([float(mass_msun)]),
        sub_x=np.array([float(x)]),
        sub_y=np.array([float(y)]),
    )
    return {k: float(np.asarray(v).reshape(-1)[0]) for k, v in sim.lens_kwargs(one)[2].items()}


def noise_sigmas(
    sim: LensSimulator, f0: np.ndarray, draws: DrawBatch, i: int, floor_kms: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel flux and velocity noise sigmas of sample ``i`` from its noiseless smooth flux ``f0``
    (N, N), as the ideal observer (``lensml.analysis.signal``): ``flux_sigma``, ``velocity_sigma_kms``."""
    nz = sim.noise
    peak = float(f0.max())
    s_f = flux_sigma(f0, peak, float(draws.peak_snr[i]), nz.background_sigma_frac)
    s_v = velocity_sigma_kms(
        f0,
        peak,
        float(draws.peak_snr[i]),
        nz.background_sigma_frac,
        float(draws.sigma_line_kms[i]),
        nz.kappa,
        floor_kms,
        nz.sigma_v_max_kms,
    )
    return s_f, s_v


def subhalo_kwargs_model(
    sim: LensSimulator,
    mass_msun: np.ndarray,
    x: float,
    y: float,
    host_theta_e: float,
    lens_center: tuple[float, float] = (0.0, 0.0),
) -> dict[str, np.ndarray]:
    """lenstronomy kwargs (arrays over ``mass_msun``, M200) of the configured subhalo profile at (x, y)
    arcsec; its concentration and truncation from the configured model with the given host theta_E (arcsec)
    and the subhalo in the lens plane (r3D = the projected radius from ``lens_center``): no drawn quantity
    is used (the fitter's subhalo model, ``lensml.inference.fit_model``)."""
    m = np.atleast_1d(np.asarray(mass_msun, dtype=float))
    n = m.size
    lens = {"center_x": np.full(n, lens_center[0]), "center_y": np.full(n, lens_center[1])}
    xs, ys = np.full(n, float(x)), np.full(n, float(y))
    r3d = sim._r_proj_kpc(lens, xs, ys)
    kw = sim._subhalo_kwargs(m, r3d, xs, ys, np.full(n, float(host_theta_e)))
    return {k: np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy() for k, v in kw.items()}
