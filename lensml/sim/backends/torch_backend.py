"""Batched PyTorch backend: the whole batch at once (ray shooting, grid_sample, block average, PSF conv).

Same conventions and outputs as ``lensml.sim.render`` (see its docstring) and as the lenstronomy backend;
deflections come from ``torch_grid`` / ``torch_sparse`` (the profiles of ``lensml.sim.profiles``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lensml.sim.backends import cpu_observe, cpu_rays, cpu_terms
from lensml.sim.backends.torch_grid import source_grid_coordinates
from lensml.sim.backends.torch_sparse import (  # noqa: F401 - part of this backend's API
    _t,
    deflection_sparse,
    radial_alpha,
    ray_shoot_sparse,
)
from lensml.sim.cube import channel_weights
from lensml.sim.instrument import Instrument, image_coordinates
from lensml.source_grid import SourceGrids

log = logging.getLogger(__name__)
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


_FALLBACKS_LOGGED: set[str] = set()


def log_fallback(why: str) -> None:
    """Log, once per reason and process, that rendering falls back from the compiled kernels to torch ops."""
    if why not in _FALLBACKS_LOGGED:
        _FALLBACKS_LOGGED.add(why)
        log.info("compiled CPU kernels not used for %s; rendering with torch operations (slower).", why)


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    return _DTYPES[dtype] if isinstance(dtype, str) else dtype


def _grid_affine(sources: SourceGrids) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample affine map beta (arcsec) -> grid units g = A beta + c: A (B, 2, 2), c (B, 2), float64."""
    th = np.deg2rad(np.asarray(sources.rotation_deg, dtype=float))
    sign = np.where(sources.flip, -1.0, 1.0)
    half = np.asarray(sources.half_size_arcsec, dtype=float)
    cos, sin = np.cos(th) / half, np.sin(th) / half
    a = np.stack([np.stack([sign * cos, sign * sin], -1), np.stack([-sin, cos], -1)], -2)
    centre = np.stack([np.asarray(sources.center_x, float), np.asarray(sources.center_y, float)], -1)
    return a, -np.einsum("bij,bj->bi", a, centre)


def _convolve_valid(img: Tensor, kernel: np.ndarray) -> Tensor:
    """True 2-D convolution ('valid' part) of (B, C, H, W); two 1-D passes if the kernel is separable."""
    u, sv, vt = np.linalg.svd(kernel)
    if sv[0] > 0 and sv[1:].sum() <= 1e-12 * sv[0]:  # rank 1 (e.g. Gaussian): K = outer(col, row)
        col, row = u[:, 0] * np.sqrt(sv[0]), vt[0] * np.sqrt(sv[0])
        return _conv1d_valid(_conv1d_valid(img, col, dim=-2), row, dim=-1)
    b, c, h, w = img.shape
    flipped = kernel[::-1, ::-1]  # conv2d is a correlation: flip for a true convolution
    k = torch.as_tensor(flipped.copy(), dtype=img.dtype, device=img.device)[None, None]
    out = F.conv2d(img.reshape(b * c, 1, h, w), k)
    return out.reshape(b, c, out.shape[-2], out.shape[-1])


def _conv1d_valid(img: Tensor, taps: np.ndarray, dim: int) -> Tensor:
    """1-D true convolution along ``dim`` ('valid'), as a sum of shifted slices (fast for short kernels)."""
    n_out = img.shape[dim] - len(taps) + 1
    rev = taps[::-1]
    out = img.narrow(dim, 0, n_out) * float(rev[0])
    for j in range(1, len(rev)):
        out.add_(img.narrow(dim, j, n_out), alpha=float(rev[j]))  # one pass per tap
    return out


def block_average(img: Tensor, factor: int) -> Tensor:
    """Mean over ``factor x factor`` blocks of (B, C, H, W), as sums of strided slices (beats avg_pool2d)."""
    if factor == 1:
        return img
    b, c, h, w = img.shape
    rows = img.reshape(b, c, h // factor, factor, w)
    acc = rows[:, :, :, 0] + rows[:, :, :, 1]
    for j in range(2, factor):
        acc.add_(rows[:, :, :, j])
    cols = acc.reshape(b, c, h // factor, w // factor, factor)
    out = cols[..., 0] + cols[..., 1]
    for j in range(2, factor):
        out.add_(cols[..., j])
    return out.mul_(1.0 / (factor * factor))


def observe_torch(
    sub: Tensor, instrument: Instrument, mask_frac_of_peak: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Supersampled (B, 2, H, W) f and f v (with PSF margin) -> observed flux, velocity, mask (B, N, N).

    The velocity is ``K*(f v) / K*(f)`` wherever the flux is positive (not only inside the mask: the mask is
    applied after the noise, ``lensml.sim.instrument.add_noise``).
    """
    img = to_pixels(sub, instrument)
    f = img[:, 0]
    if instrument.velocity_grid:
        factor = instrument.n_pix // instrument.velocity_grid
        coarse = F.avg_pool2d(img, factor)
        up = F.interpolate(
            coarse, size=(instrument.n_pix, instrument.n_pix), mode="bilinear", align_corners=False
        )
        f_v, fv = up[:, 0], up[:, 1]
    else:
        f_v, fv = f, img[:, 1]
    peak = f.amax(dim=(-2, -1), keepdim=True)
    mask = (f > mask_frac_of_peak * peak) & (f > 0)
    ok = (f > 0) & (f_v > 0)
    velocity = torch.where(
        ok, fv / torch.where(f_v > 0, f_v, torch.ones_like(f_v)), torch.zeros_like(fv)
    )
    return f, velocity, mask


def to_pixels(sub: Tensor, instrument: Instrument) -> Tensor:
    """Supersampled (B, C, H, W) planes with PSF margin -> (B, C, N, N): block average, PSF, crop of the
    margin (the same for the maps and every cube slice)."""
    img = block_average(sub, instrument.supersample)
    if instrument.psf_kernel is not None:
        img = _convolve_valid(img, instrument.psf_kernel)
    crop = instrument.margin_pix - instrument.psf_half
    if crop:
        img = img[..., crop:-crop, crop:-crop]
    return img


#: samples per pass of ``observe_cube_torch`` (bounds its memory: N_v supersampled slices per sample)
CUBE_CHUNK = 16


def observe_cube_torch(sub: Tensor, sigma_line_kms: np.ndarray, instrument: Instrument) -> np.ndarray:
    """Supersampled (B, 2, H, W) per-ray f and f v (with PSF margin) -> noiseless cube (B, N_v, N, N)
    float32: each ray's line (velocity f v / f, dispersion ``sigma_line_kms`` (B,)) spread over the
    channels (``lensml.sim.cube``), then per slice the block average, the PSF and the crop of the flux map."""
    edges = instrument.channel_edges_kms
    out = []
    for start in range(0, sub.shape[0], CUBE_CHUNK):
        part = sub[start : start + CUBE_CHUNK]
        f, fv = part[:, 0], part[:, 1]
        pos = f > 0
        v = torch.where(pos, fv / torch.where(pos, f, torch.ones_like(f)), torch.zeros_like(f))
        s = torch.as_tensor(np.asarray(sigma_line_kms)[start : start + CUBE_CHUNK], dtype=f.dtype)
        img = f.unsqueeze(1) * channel_weights(v, s.to(f.device).reshape(-1, 1, 1), edges)
        img = to_pixels(img, instrument)
        out.append(img.to(torch.float32).cpu().numpy())
    return np.concatenate(out)


def render_torch(
    sources: SourceGrids,
    lens_model_list: Sequence[str],
    kwargs_lens: Sequence[Mapping[str, object]],
    instrument: Instrument,
    mask_frac_of_peak: float = 0.05,
    device: str = "cpu",
    dtype: str | torch.dtype = "float32",
    cpu_kernels: bool = True,
    sigma_line_kms: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Noiseless (flux, velocity, mask) of a batch in one pass; returned as numpy arrays; with
    ``instrument.n_velocity_channels`` also the noiseless ``cube`` (B, N_v, N, N) of the same rays
    (``observe_cube_torch``; needs the samples' line dispersions ``sigma_line_kms`` (B,), km/s).

    The rays go straight to source-grid coordinates, ``grid_sample`` reads both channels, then the block
    average, the PSF and the mask. On the CPU in float32 (unless ``cpu_kernels=False``) compiled kernels do
    all of it where they support the lens list and the instrument: ``cpu_rays`` traces, samples and
    block-averages each row of rays at once, ``cpu_observe`` convolves and masks. Otherwise torch
    operations do (``torch_grid.source_grid_coordinates``; batches that put the samples with a subhalo
    first, as the simulator does, skip a copy per subhalo term; ``grid_sample``; ``observe_torch``).
    """
    dt = resolve_dtype(dtype)
    cube = instrument.n_velocity_channels > 0
    if cube and sigma_line_kms is None:
        raise ValueError("render_torch: instrument.n_velocity_channels > 0 needs sigma_line_kms (B,).")
    coords64 = image_coordinates(
        instrument.n_pix, instrument.pixel_scale_arcsec, instrument.supersample, instrument.margin_pix
    )
    a, c = _grid_affine(sources)
    terms = None
    if cpu_kernels and dt == torch.float32 and torch.device(device).type == "cpu":
        terms = cpu_terms.ray_terms(lens_model_list, kwargs_lens, a, c)
        if terms is None:
            why = cpu_terms.unsupported_reason(lens_model_list)
            log_fallback(f"the lens list {list(lens_model_list)}: {why}")
        elif not cpu_observe.supports(instrument):
            log_fallback(
                "the instrument: the compiled observation handles a separable (or no) PSF and no "
                "instrument.velocity_grid; the rays still use the kernels"
            )
        if terms is not None and cpu_observe.supports(instrument):
            source = cpu_rays.pack_sources(np.asarray(sources.flux), np.asarray(sources.velocity_kms))
            blocks = cpu_rays.render_blocks_cpu(coords64, terms, source, instrument.supersample)
            f, v, m = cpu_observe.observe_cpu(blocks, instrument, mask_frac_of_peak)
            out = {"flux": f, "velocity": v, "mask": m}
            if cube:  # the same rays (terms), sampled per ray by grid_sample
                log_fallback("the IFU cube (instrument.n_velocity_channels); its rays and the maps still "
                             "use the kernels")
                with torch.inference_mode():
                    grid = torch.from_numpy(cpu_rays.coordinates_from_terms(coords64, terms))
                    sub = F.grid_sample(_source_stack(sources, dt, device), grid, mode="bilinear",
                                        padding_mode="zeros", align_corners=False)
                    out["cube"] = observe_cube_torch(sub, sigma_line_kms, instrument)
            return out
    elif cpu_kernels:
        log_fallback(f"sim.dtype={dt} on sim.device={device}: the kernels run float32 on the CPU only")
    with torch.inference_mode():
        src = _source_stack(sources, dt, device)
        if terms is None:
            coords = torch.as_tensor(coords64, dtype=dt, device=device)
            grid = source_grid_coordinates(coords, lens_model_list, kwargs_lens, a, c)
        else:
            grid = torch.from_numpy(cpu_rays.coordinates_from_terms(coords64, terms))  # terms packed above
        sub = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        f, v, m = observe_torch(sub, instrument, mask_frac_of_peak)
        out = {
            "flux": f.to(torch.float32).cpu().numpy(),
            "velocity": v.to(torch.float32).cpu().numpy(),
            "mask": m.cpu().numpy(),
        }
        if cube:
            out["cube"] = observe_cube_torch(sub, sigma_line_kms, instrument)
    return out


def _source_stack(sources: SourceGrids, dt: torch.dtype, device: str) -> Tensor:
    """(B, 2, M, M) source grids f and f v of ``sources`` (what ``grid_sample`` reads)."""
    src_f = _t(sources.flux, dt, device)
    return torch.stack((src_f, src_f * _t(sources.velocity_kms, dt, device)), dim=1)
