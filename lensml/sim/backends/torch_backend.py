"""Batched PyTorch backend: the whole batch at once (ray shooting, grid_sample, block average, PSF conv).

Same conventions and outputs as ``lensml.sim.render`` (see its docstring) and as the lenstronomy backend;
deflections come from ``lensml.sim.backends.torch_lens`` (lenstronomy's profile conventions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lensml.sim.backends.torch_lens import ray_shoot
from lensml.sim.instrument import Instrument, image_coordinates
from lensml.sim.render import SourceGrids

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    return _DTYPES[dtype] if isinstance(dtype, str) else dtype


def _t(a: object, dtype: torch.dtype, device: torch.device | str) -> Tensor:
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


def lens_kwargs_torch(
    kwargs_lens: Sequence[Mapping[str, object]], dtype: torch.dtype, device: torch.device | str
) -> list[dict[str, Tensor]]:
    """Batch-first lenstronomy kwargs (floats or (B,) arrays) as tensors."""
    return [{k: _t(v, dtype, device) for k, v in kw.items()} for kw in kwargs_lens]


def sample_sources(
    bx: Tensor, by: Tensor, sources: SourceGrids, src_f: Tensor, src_fv: Tensor
) -> Tensor:
    """Bilinear samples (B, 2, H, W) of (f, f v) at source-plane positions (B, H, W); 0 outside the grids."""
    dtype, device = bx.dtype, bx.device
    cx = _t(sources.center_x, dtype, device)[:, None, None]
    cy = _t(sources.center_y, dtype, device)[:, None, None]
    half = _t(sources.half_size_arcsec, dtype, device)[:, None, None]
    th = _t(np.deg2rad(sources.rotation_deg), dtype, device)[:, None, None]
    sign = _t(np.where(sources.flip, -1.0, 1.0), dtype, device)[:, None, None]
    dx, dy = bx - cx, by - cy
    cos, sin = torch.cos(th), torch.sin(th)
    gx = sign * (dx * cos + dy * sin) / half
    gy = (-dx * sin + dy * cos) / half
    grid = torch.stack((gx, gy), dim=-1)
    src = torch.stack((src_f, src_fv), dim=1)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def observe_torch(
    sub: Tensor, instrument: Instrument, mask_frac_of_peak: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Supersampled (B, 2, H, W) f and f v (with PSF margin) -> observed flux, velocity, mask (B, N, N)."""
    img = F.avg_pool2d(sub, instrument.supersample) if instrument.supersample > 1 else sub
    if instrument.psf_kernel is not None:
        # conv2d is a correlation: flip the kernel for a true convolution
        k = torch.as_tensor(
            np.ascontiguousarray(instrument.psf_kernel[::-1, ::-1]), dtype=sub.dtype, device=sub.device
        )[None, None]
        b2 = img.shape[0] * 2
        img = F.conv2d(img.reshape(b2, 1, *img.shape[-2:]), k).reshape(
            -1, 2, instrument.n_pix, instrument.n_pix
        )
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
    ok = mask & (f_v > 0)
    velocity = torch.where(
        ok, fv / torch.where(f_v > 0, f_v, torch.ones_like(f_v)), torch.zeros_like(fv)
    )
    return f, velocity, mask


def render_torch(
    sources: SourceGrids,
    lens_model_list: Sequence[str],
    kwargs_lens: Sequence[Mapping[str, object]],
    instrument: Instrument,
    mask_frac_of_peak: float = 0.05,
    device: str = "cpu",
    dtype: str | torch.dtype = "float32",
) -> dict[str, np.ndarray]:
    """Noiseless (flux, velocity, mask) of a batch in one pass; returned as numpy arrays."""
    dt = resolve_dtype(dtype)
    coords = torch.as_tensor(
        image_coordinates(
            instrument.n_pix, instrument.pixel_scale_arcsec, instrument.supersample, instrument.psf_half
        ),
        dtype=dt,
        device=device,
    )
    b = len(sources)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    xx = xx.expand(b, -1, -1)
    yy = yy.expand(b, -1, -1)
    with torch.no_grad():
        bx, by = ray_shoot(xx, yy, list(lens_model_list), lens_kwargs_torch(kwargs_lens, dt, device))
        src_f = _t(sources.flux, dt, device)
        src_fv = src_f * _t(sources.velocity_kms, dt, device)
        sub = sample_sources(bx, by, sources, src_f, src_fv)
        f, v, m = observe_torch(sub, instrument, mask_frac_of_peak)
    return {
        "flux": f.to(torch.float32).cpu().numpy(),
        "velocity": v.to(torch.float32).cpu().numpy(),
        "mask": m.cpu().numpy(),
    }
