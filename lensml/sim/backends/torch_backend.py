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

from lensml.sim.backends.torch_lens import PROFILES
from lensml.sim.instrument import Instrument, image_coordinates
from lensml.sim.render import SourceGrids

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: Keyword that sets a profile's strength: rows where it is 0 deflect by exactly 0 and are skipped.
_STRENGTH = {"SIS": "theta_E", "SIE": "theta_E", "EPL": "theta_E", "NFW": "alpha_Rs", "TNFW": "alpha_Rs"}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    return _DTYPES[dtype] if isinstance(dtype, str) else dtype


def _t(a: object, dtype: torch.dtype, device: torch.device | str) -> Tensor:
    if isinstance(a, Tensor):
        return a.to(dtype=dtype, device=device)
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


def lens_kwargs_torch(
    kwargs_lens: Sequence[Mapping[str, object]], dtype: torch.dtype, device: torch.device | str
) -> list[dict[str, Tensor]]:
    """Batch-first lenstronomy kwargs (floats or (B,) arrays) as tensors."""
    return [{k: _t(v, dtype, device) for k, v in kw.items()} for kw in kwargs_lens]


def ray_shoot_sparse(x: Tensor, y: Tensor, lens_model_list: Sequence[str],
                     kwargs_list: Sequence[Mapping[str, Tensor]]) -> tuple[Tensor, Tensor]:
    """beta = theta - alpha(theta) for a batch; x, y of shape (1, H, W) (shared grid) or (B, H, W).

    A profile is evaluated only on the samples where its strength is non-zero (e.g. a subhalo of mass 0
    contributes exactly 0), which changes no value but saves the time of the absent subhaloes.
    """
    b = max((v.shape[0] for kw in kwargs_list for v in kw.values() if v.ndim >= 1), default=x.shape[0])
    shape = (b, *x.shape[1:])
    ax = torch.zeros(shape, dtype=x.dtype, device=x.device)
    ay = torch.zeros(shape, dtype=x.dtype, device=x.device)
    for name, kw in zip(lens_model_list, kwargs_list):
        func = PROFILES[name]
        strength = kw.get(_STRENGTH.get(name, ""))
        if strength is None or bool((strength != 0).all()):
            dax, day = func(x, y, **kw)
            ax, ay = ax + dax, ay + day
            continue
        rows = torch.nonzero(strength != 0).flatten()
        if rows.numel() == 0:
            continue
        xs = x if x.shape[0] == 1 else x[rows]
        ys = y if y.shape[0] == 1 else y[rows]
        dax, day = func(xs, ys, **{k: v[rows] for k, v in kw.items()})
        ax = ax.index_add(0, rows, dax.expand(rows.numel(), *x.shape[1:]))
        ay = ay.index_add(0, rows, day.expand(rows.numel(), *x.shape[1:]))
    return x - ax, y - ay


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
    out = None
    for j, w in enumerate(taps[::-1]):
        term = img.narrow(dim, j, n_out) * float(w)
        out = term if out is None else out + term
    return out


def observe_torch(
    sub: Tensor, instrument: Instrument, mask_frac_of_peak: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Supersampled (B, 2, H, W) f and f v (with PSF margin) -> observed flux, velocity, mask (B, N, N)."""
    img = F.avg_pool2d(sub, instrument.supersample) if instrument.supersample > 1 else sub
    if instrument.psf_kernel is not None:
        img = _convolve_valid(img, instrument.psf_kernel)
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
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    with torch.inference_mode():
        bx, by = ray_shoot_sparse(xx[None], yy[None], list(lens_model_list),
                                  lens_kwargs_torch(kwargs_lens, dt, device))
        src_f = _t(sources.flux, dt, device)
        src_fv = src_f * _t(sources.velocity_kms, dt, device)
        sub = sample_sources(bx, by, sources, src_f, src_fv)
        f, v, m = observe_torch(sub, instrument, mask_frac_of_peak)
    return {
        "flux": f.to(torch.float32).cpu().numpy(),
        "velocity": v.to(torch.float32).cpu().numpy(),
        "mask": m.cpu().numpy(),
    }
