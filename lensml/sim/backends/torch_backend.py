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

from lensml.sim.backends.grid_terms import STRENGTH, tau_key
from lensml.sim.backends.torch_deflections import _epl_series_terms
from lensml.sim.backends.torch_grid import LN_X_LO, PAD, source_grid_coordinates, table_lookup
from lensml.sim.backends.torch_lens import PROFILES
from lensml.sim.instrument import Instrument, image_coordinates
from lensml.sim.render import SourceGrids

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: Radial profiles whose deflection is interpolated from exact tables (``radial_alpha``).
RADIAL_TABLE_PROFILES: tuple[str, ...] = ("NFW", "TNFW")


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    return _DTYPES[dtype] if isinstance(dtype, str) else dtype


def _t(a: object, dtype: torch.dtype, device: torch.device | str) -> Tensor:
    if isinstance(a, Tensor):
        return a.to(dtype=dtype, device=device)
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


def radial_alpha(name: str, x: Tensor, y: Tensor, kw: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Deflection of a circular profile (NFW, TNFW) at positions (B, H, W) from the universal tables.

    |alpha|(R) / R = alpha_Rs / Rs h(R / Rs), h interpolated in (ln x, ln h) from exact float64 tables
    (``torch_grid.table_lookup``; relative error ~1e-5 of the deflection). One table per r_trunc / Rs.
    """
    b = kw["center_x"].shape[0]
    kwn = {k: v.detach().to(torch.float64).cpu().numpy().reshape(b) for k, v in kw.items()}
    rs = np.maximum(kwn["Rs"], 1e-7)
    cx, cy = (kw[k].reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype) for k in ("center_x", "center_y"))
    dx, dy = x - cx, y - cy
    scale = torch.as_tensor(1.0 / (rs * np.exp(LN_X_LO)) ** 2, dtype=x.dtype, device=x.device)
    q2 = torch.addcmul(dx * dx, dy, dy).mul_(scale.reshape(-1, *([1] * (x.ndim - 1))))
    h = torch.empty_like(q2)
    taus = tau_key(kwn)
    for tau in np.unique(taus):
        rows = torch.as_tensor(np.flatnonzero(taus == tau), device=x.device)
        part = q2.index_select(0, rows).reshape(-1)
        flat = torch.zeros(-(-part.numel() // PAD) * PAD, dtype=x.dtype, device=x.device)
        flat[: part.numel()] = part
        h[rows] = table_lookup(name, float(tau), flat)[: part.numel()].view(-1, *q2.shape[1:])
    factor = torch.as_tensor(kwn["alpha_Rs"] / rs, dtype=x.dtype, device=x.device)
    h.mul_(factor.reshape(-1, *([1] * (x.ndim - 1))))
    return h * dx, h.mul_(dy)


#: Profiles that apply atan2 / pow to their parameters: evaluated through ``_call_lane_aligned``.
_LANE_ALIGNED = ("SIE", "EPL")
#: torch's CPU loops handle 2 SIMD registers at a time (32 float32 with AVX-512); the leftover elements of a
#: tensor go through scalar routines that, for atan2, atanh and pow, may differ from the vector ones in the
#: last bit. A sample's value would then depend on where it sits in its batch.
_SIMD_BLOCK = 32


def _call_lane_aligned(
    name: str, x: Tensor, y: Tensor, kw: Mapping[str, Tensor]
) -> tuple[Tensor, Tensor]:
    """Deflection of profile ``name`` with per-sample values that do not depend on the rest of the batch.

    (B,) parameters are given as contiguous (B, 1, W) rows and the batch is padded (repeating its first
    sample) so that B * W is a multiple of ``_SIMD_BLOCK``: every element then takes the vector path.
    """
    b = max((v.shape[0] for v in kw.values() if v.ndim >= 1), default=1)
    w = x.shape[-1]
    pad = 0
    while ((b + pad) * w) % _SIMD_BLOCK and pad < _SIMD_BLOCK:
        pad += 1

    def rows(v: Tensor) -> Tensor:
        v = v.reshape(-1, 1, 1).expand(-1, 1, w)
        return torch.cat((v, v[:1].expand(pad, -1, -1))).contiguous() if pad else v.contiguous()

    kw2 = {k: rows(v) if v.ndim == 1 else v for k, v in kw.items()}
    if x.shape[0] != 1 and pad:
        x = torch.cat((x, x[:1].expand(pad, -1, -1)))
        y = torch.cat((y, y[:1].expand(pad, -1, -1)))
    ax, ay = PROFILES[name](x, y, **kw2)
    return ax[:b], ay[:b]


def _alpha_epl_grouped(x: Tensor, y: Tensor, kw: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """EPL deflections, evaluated together only for samples that need the same number of series terms.

    ``alpha_epl`` sums its series to the precision the largest ellipticity of the batch needs; grouping by
    term count makes every sample's value independent of the rest of its batch.
    """
    e = torch.clamp(torch.sqrt(kw["e1"] * kw["e1"] + kw["e2"] * kw["e2"]), max=0.9999)
    if e.ndim == 0:
        return PROFILES["EPL"](x, y, **kw)
    terms = [_epl_series_terms(float(c), x.dtype) for c in e.cpu()]
    b = e.shape[0]
    ax = torch.empty((b, *x.shape[1:]), dtype=x.dtype, device=x.device)
    ay = torch.empty_like(ax)
    for n in sorted(set(terms)):
        rows = torch.tensor([i for i, t in enumerate(terms) if t == n], device=x.device)
        xs = x if x.shape[0] == 1 else x[rows]
        ys = y if y.shape[0] == 1 else y[rows]
        dax, day = _call_lane_aligned(
            "EPL", xs, ys, {k: v[rows] if v.ndim else v for k, v in kw.items()}
        )
        ax[rows], ay[rows] = dax, day
    return ax, ay


def ray_shoot_sparse(
    x: Tensor,
    y: Tensor,
    lens_model_list: Sequence[str],
    kwargs_list: Sequence[Mapping[str, Tensor]],
    radial_table: bool = True,
) -> tuple[Tensor, Tensor]:
    """beta = theta - alpha(theta) for a batch; x, y of shape (1, H, W) (shared grid) or (B, H, W).

    A profile is evaluated only on the samples where its strength is non-zero (e.g. a subhalo of mass 0
    contributes exactly 0), which changes no value but saves the time of the absent subhaloes. With
    ``radial_table`` the NFW/TNFW deflections are interpolated from exact tables (radial_alpha).
    """
    ax, ay = deflection_sparse(x, y, lens_model_list, kwargs_list, radial_table)
    b = max((v.shape[0] for kw in kwargs_list for v in kw.values() if v.ndim >= 1), default=x.shape[0])
    if ax is None:
        return x.expand(b, *x.shape[1:]).clone(), y.expand(b, *x.shape[1:]).clone()
    return torch.sub(x, ax, out=ax), torch.sub(y, ay, out=ay)


def deflection_sparse(
    x: Tensor,
    y: Tensor,
    lens_model_list: Sequence[str],
    kwargs_list: Sequence[Mapping[str, Tensor]],
    radial_table: bool = True,
) -> tuple[Tensor | None, Tensor | None]:
    """Summed deflection (B, H, W) of the profiles (None if there is none), see ``ray_shoot_sparse``."""
    b = max((v.shape[0] for kw in kwargs_list for v in kw.values() if v.ndim >= 1), default=x.shape[0])
    shape = (b, *x.shape[1:])
    ax = ay = None  # the summed deflection, accumulated in place
    for name, kw in zip(lens_model_list, kwargs_list):
        strength = kw.get(STRENGTH.get(name, ""))
        rows = None
        if strength is not None and not bool((strength != 0).all()):
            rows = torch.nonzero(strength != 0).flatten()
            if rows.numel() == 0:
                continue
            kw = {k: v[rows] if v.ndim else v for k, v in kw.items()}
        if name == "SHEAR" and ax is not None and rows is None:
            _add_shear(ax, ay, x, y, kw)
            continue
        xs = x if x.shape[0] == 1 or rows is None else x[rows]
        ys = y if y.shape[0] == 1 or rows is None else y[rows]
        if name == "EPL":
            dax, day = _alpha_epl_grouped(xs, ys, kw)
        elif name in _LANE_ALIGNED:
            dax, day = _call_lane_aligned(name, xs, ys, kw)
        elif radial_table and name in RADIAL_TABLE_PROFILES:
            kw = {
                k: v.expand(xs.shape[0] if rows is None else rows.numel()) if v.ndim == 0 else v
                for k, v in {"center_x": torch.zeros(()), "center_y": torch.zeros(()), **kw}.items()
            }
            dax, day = radial_alpha(name, xs, ys, kw)
        else:
            dax, day = PROFILES[name](xs, ys, **kw)
        if ax is None:
            ax = torch.zeros(shape, dtype=x.dtype, device=x.device)
            ay = torch.zeros(shape, dtype=x.dtype, device=x.device)
        if rows is None:
            ax.add_(dax)
            ay.add_(day)
        else:
            n_rows = rows.numel()
            ax.index_add_(0, rows, dax.expand(n_rows, *x.shape[1:]))
            ay.index_add_(0, rows, day.expand(n_rows, *x.shape[1:]))
    return ax, ay


def _add_shear(ax: Tensor, ay: Tensor, x: Tensor, y: Tensor, kw: Mapping[str, Tensor]) -> None:
    """ax, ay += the external shear deflection (lenstronomy 'SHEAR', see ``alpha_shear``), in place."""
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    g1 = _t(kw["gamma1"], x.dtype, x.device).reshape(-1, *([1] * (x.ndim - 1)))
    g2 = _t(kw["gamma2"], x.dtype, x.device).reshape(-1, *([1] * (x.ndim - 1)))
    ra = _t(kw.get("ra_0", zero), x.dtype, x.device).reshape(-1, *([1] * (x.ndim - 1)))
    dec = _t(kw.get("dec_0", zero), x.dtype, x.device).reshape(-1, *([1] * (x.ndim - 1)))
    dx = x - ra if bool((ra != 0).any()) else x
    dy = y - dec if bool((dec != 0).any()) else y
    ax.addcmul_(dx, g1).addcmul_(dy, g2)
    ay.addcmul_(dx, g2).addcmul_(dy, -g1)


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
    img = block_average(sub, instrument.supersample)
    if instrument.psf_kernel is not None:
        img = _convolve_valid(img, instrument.psf_kernel)
    crop = instrument.margin_pix - instrument.psf_half
    if crop:
        img = img[..., crop:-crop, crop:-crop]
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


def render_torch(
    sources: SourceGrids,
    lens_model_list: Sequence[str],
    kwargs_lens: Sequence[Mapping[str, object]],
    instrument: Instrument,
    mask_frac_of_peak: float = 0.05,
    device: str = "cpu",
    dtype: str | torch.dtype = "float32",
    cpu_kernels: bool = True,
) -> dict[str, np.ndarray]:
    """Noiseless (flux, velocity, mask) of a batch in one pass; returned as numpy arrays.

    The rays go straight to source-grid coordinates, ``grid_sample`` reads both channels, then the block
    average, the PSF and the mask. On the CPU in float32 (unless ``cpu_kernels=False``) compiled kernels do
    all of it where they support the lens list and the instrument: ``cpu_rays`` traces, samples and
    block-averages each row of rays at once, ``cpu_observe`` convolves and masks. Otherwise torch
    operations do (``torch_grid.source_grid_coordinates``; batches that put the samples with a subhalo
    first, as the simulator does, skip a copy per subhalo term; ``grid_sample``; ``observe_torch``).
    """
    dt = resolve_dtype(dtype)
    coords64 = image_coordinates(
        instrument.n_pix, instrument.pixel_scale_arcsec, instrument.supersample, instrument.margin_pix
    )
    a, c = _grid_affine(sources)
    terms = None
    if cpu_kernels and dt == torch.float32 and torch.device(device).type == "cpu":
        from lensml.sim.backends import cpu_observe, cpu_rays, cpu_terms

        terms = cpu_terms.ray_terms(lens_model_list, kwargs_lens, a, c)
        if terms is not None and cpu_observe.supports(instrument):
            source = cpu_rays.pack_sources(np.asarray(sources.flux), np.asarray(sources.velocity_kms))
            blocks = cpu_rays.render_blocks_cpu(coords64, terms, source, instrument.supersample)
            f, v, m = cpu_observe.observe_cpu(blocks, instrument, mask_frac_of_peak)
            return {"flux": f, "velocity": v, "mask": m}
    with torch.inference_mode():
        src_f = _t(sources.flux, dt, device)
        src = torch.stack((src_f, src_f * _t(sources.velocity_kms, dt, device)), dim=1)
        if terms is None:
            coords = torch.as_tensor(coords64, dtype=dt, device=device)
            grid = source_grid_coordinates(coords, lens_model_list, kwargs_lens, a, c)
        else:
            from lensml.sim.backends.cpu_rays import coordinates_from_terms

            grid = torch.from_numpy(coordinates_from_terms(coords64, terms))  # the terms packed above
        sub = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        f, v, m = observe_torch(sub, instrument, mask_frac_of_peak)
    return {
        "flux": f.to(torch.float32).cpu().numpy(),
        "velocity": v.to(torch.float32).cpu().numpy(),
        "mask": m.cpu().numpy(),
    }
