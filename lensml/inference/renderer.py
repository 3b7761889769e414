"""Differentiable renderer (float64, ``torch.func``): parameters of one sample -> noiseless flux, velocity.

The production pipeline (``lensml.sim.render``, conventions stated there), written as a pure function of a
flat parameter vector so that ``torch.func.jacfwd`` gives the Jacobian of the data w.r.t. every lens,
subhalo and source parameter:

  rays (supersampled detector grid + PSF margin) -> beta = theta - alpha(theta) (macro + SHEAR + subhalo
  + lens multipoles, ``lensml.inference.profiles``) -> source flux f and f v at beta -> block average ->
  PSF (true convolution, 'valid') -> flux f_obs, velocity v_obs = K*(f v) / K*(f) (0 where f_obs <= 0).

Source modes: ``grid`` (default; as production: the analytic disk is evaluated on the sample's source grid,
``source.grid_npix`` pixels over ``disk_extent_arcsec``, and sampled bilinearly: agrees with the production
renderer to float64 rounding) or ``analytic`` (the disk evaluated at the traced positions: the continuous
model). MaNGA templates are always sampled from their grid (only the lens and ``src.amplitude`` are then
parameters). Parameter names: ``macro.<kw>``, ``shear.gamma1/2``, ``sub.<kw>`` (lenstronomy kwargs,
arcsec), ``src.<disk param>`` (``lensml.sources.disk``; clumps ``src.clump_amp.<k>``), ``src.amplitude``.
Batched use (issue 15's fitter): ``torch.func.vmap`` over parameter vectors of scenes of equal shape, or one
``Scene`` per image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from lensml.errors import ConfigError
from lensml.inference import physics
from lensml.inference.profiles import PROFILE_PARAMS, alpha_multipole_cartesian, deflection, epl_terms
from lensml.inference.source_torch import bilinear, disk_flux_fv, grid_units

DTYPE = torch.float64
#: Disk parameters that are fitted / marginalised (sigma0 does not move the first moment).
DISK_FREE: tuple[str, ...] = (
    "center_x",
    "center_y",
    "inclination_deg",
    "position_angle_deg",
    "scale_radius_arcsec",
    "v_max_kms",
    "r_turn_arcsec",
    "v_sys_kms",
)
BULGE_FREE: tuple[str, ...] = ("bulge_amp", "bulge_r_eff_arcsec", "bulge_sersic_n")
CLUMP_FREE: tuple[str, ...] = (
    "clump_r_arcsec",
    "clump_phi_deg",
    "clump_amp",
    "clump_sigma_arcsec",
    "clump_dv_kms",  # where the source model has it (lensml.sources.disk.CLUMP_PARAMS)
)


@dataclass
class Scene:
    """Everything about one sample that is not a parameter: rays, instrument, source kind and grid."""

    x: Tensor  # (H, W) sub-pixel ray positions, arcsec (detector field + PSF margin)
    y: Tensor
    n_pix: int
    supersample: int
    psf: Tensor | None  # (k, k) PSF kernel (true convolution, 'valid' part, by FFT)
    crop: int
    macro_model: str
    subhalo_profile: str
    n_epl_terms: int
    source_kind: str  # "disk" | "template"
    source_mode: str  # "grid" | "analytic"
    grid: tuple[float, float, float, float, bool]  # centre x, y, half-size, rotation (deg), flip
    grid_xy: tuple[Tensor, Tensor] | None = None  # (m, m) disk grid positions (grid mode)
    template: tuple[Tensor, Tensor] | None = None  # (m, m) template flux and f v
    n_clumps: int = 0
    multipole_orders: tuple[
        int, ...
    ] = ()  # lens multipoles (centred on the macro lens): mpole<j>.a_cos/a_sin
    names: list[str] = field(default_factory=list)  # the parameter vector's names
    mask_frac_of_peak: float = 0.05

    def index(self, names: Sequence[str]) -> list[int]:
        return [self.names.index(n) for n in names]


def build_scene(
    sim: physics.LensSimulator,
    draws: physics.DrawBatch,
    i: int,
    split: str = "test",
    source_mode: str = "grid",
) -> tuple[Scene, np.ndarray]:
    """The ``Scene`` and true parameter vector (float64; subhalo kwargs of its drawn mass) of sample ``i``."""
    if source_mode not in ("grid", "analytic"):
        raise ConfigError(f"forecast.source_mode={source_mode!r} is unknown; use 'grid' or 'analytic'.")
    inst = sim.instrument
    if inst.velocity_grid:
        raise ConfigError(
            "instrument.velocity_grid is not supported by the differentiable renderer; set it to null."
        )
    coords = physics.image_coordinates(inst.n_pix, inst.pixel_scale_arcsec, inst.supersample, inst.margin_pix)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    psf = None
    if inst.psf_kernel is not None:
        psf = torch.as_tensor(np.asarray(inst.psf_kernel), dtype=DTYPE)
    lens_kw = sim.lens_kwargs(draws.take(np.array([i])))
    mass = float(draws.mass_msun[i]) if draws.present[i] else 0.0
    sub = physics.subhalo_kwargs_at(
        sim, draws, i, max(mass, 0.0), float(draws.sub_x[i]), float(draws.sub_y[i])
    )
    names: list[str] = []
    values: list[float] = []
    for group, kw in (("macro", lens_kw[0]), ("shear", lens_kw[1])):
        for name in PROFILE_PARAMS[sim.macro_model if group == "macro" else "SHEAR"]:
            names.append(f"{group}.{name}")
            values.append(float(np.asarray(kw[name]).reshape(-1)[0]))
    for name in PROFILE_PARAMS[sim.subhalo.profile]:
        names.append(f"sub.{name}")
        values.append(sub[name])
    orders = []
    for j, kw in enumerate(lens_kw[3:]):  # 'MULTIPOLE' entries after the subhalo (lens.multipoles)
        m = int(round(float(np.asarray(kw["m"]).reshape(-1)[0])))
        a_m, phi_m = (float(np.asarray(kw[k]).reshape(-1)[0]) for k in ("a_m", "phi_m"))
        orders.append(m)
        names += [f"mpole{j}.a_cos", f"mpole{j}.a_sin"]  # a_m cos / sin (m phi_m): linear in the deflection
        values += [a_m * np.cos(m * phi_m), a_m * np.sin(m * phi_m)]
    src = draws.source
    kind = str(src.kind[i])
    n_clumps = 0
    grid_xy = template = None
    if kind == "disk":
        for name in physics.DISK_PARAMS:
            names.append(f"src.{name}")
            values.append(float(src.disk[name][i]))
        amps = np.asarray(src.disk["clump_amp"][i])
        n_clumps = int((amps > 0).sum())
        for k in range(n_clumps):
            for name in physics.CLUMP_PARAMS:
                names.append(f"src.{name}.{k}")
                values.append(float(src.disk[name][i][k]))
        cx, cy, half, m = physics.disk_grid_geometry(sim, draws, i)
        grid = (cx, cy, half, 0.0, False)
        u = (np.arange(m) + 0.5) / m * 2.0 - 1.0
        gy, gx = np.meshgrid(cy + half * u, cx + half * u, indexing="ij")
        grid_xy = (torch.as_tensor(gx, dtype=DTYPE), torch.as_tensor(gy, dtype=DTYPE))
    else:
        t = physics.template_grid(sim, draws, i, split)
        grid = (t["center_x"], t["center_y"], t["half_size_arcsec"], t["rotation_deg"], t["flip"])
        f = torch.as_tensor(t["flux"], dtype=DTYPE)
        template = (f, f * torch.as_tensor(t["velocity_kms"], dtype=DTYPE))
    names.append("src.amplitude")
    values.append(1.0)
    macro = lens_kw[0]
    n_terms = epl_terms(
        float(np.asarray(macro["e1"]).reshape(-1)[0]), float(np.asarray(macro["e2"]).reshape(-1)[0])
    )
    scene = Scene(
        x=torch.as_tensor(xx, dtype=DTYPE),
        y=torch.as_tensor(yy, dtype=DTYPE),
        n_pix=inst.n_pix,
        supersample=inst.supersample,
        psf=psf,
        crop=inst.margin_pix - inst.psf_half,
        macro_model=sim.macro_model,
        subhalo_profile=sim.subhalo.profile,
        n_epl_terms=n_terms if sim.macro_model == "EPL" else 1,
        source_kind=kind,
        source_mode=source_mode,
        grid=grid,
        grid_xy=grid_xy,
        template=template,
        n_clumps=n_clumps,
        multipole_orders=tuple(orders),
        names=names,
        mask_frac_of_peak=sim.noise.mask_frac_of_peak,
    )
    return scene, np.asarray(values, dtype=np.float64)


def ray_shoot(scene: Scene, p: dict[str, Tensor], with_subhalo: bool = True) -> tuple[Tensor, Tensor]:
    """Source-plane positions (arcsec) of the scene's rays."""
    x, y = scene.x, scene.y
    parts = [("macro", scene.macro_model), ("shear", "SHEAR")]
    if with_subhalo:
        parts.append(("sub", scene.subhalo_profile))
    ax = torch.zeros_like(x)
    ay = torch.zeros_like(y)
    for group, name in parts:
        fn = deflection(name, scene.n_epl_terms)
        dax, day = fn(x, y, *(p[f"{group}.{k}"] for k in PROFILE_PARAMS[name]))
        ax, ay = ax + dax, ay + day
    for j, m in enumerate(scene.multipole_orders):
        dax, day = alpha_multipole_cartesian(
            x, y, m, p[f"mpole{j}.a_cos"], p[f"mpole{j}.a_sin"], p["macro.center_x"], p["macro.center_y"]
        )
        ax, ay = ax + dax, ay + day
    return x - ax, y - ay


def _disk_params(scene: Scene, p: dict[str, Tensor]) -> dict[str, Tensor]:
    out = {name: p[f"src.{name}"] for name in physics.DISK_PARAMS}
    if scene.n_clumps:
        for name in physics.CLUMP_PARAMS:
            out[name] = torch.stack([p[f"src.{name}.{k}"] for k in range(scene.n_clumps)])
    out["amplitude"] = p["src.amplitude"]
    return out


def source_at(scene: Scene, p: dict[str, Tensor], bx: Tensor, by: Tensor) -> tuple[Tensor, Tensor]:
    """Source flux and f v at source-plane positions (the scene's source mode)."""
    if scene.source_kind == "disk" and scene.source_mode == "analytic":
        return disk_flux_fv(bx, by, _disk_params(scene, p))
    gx, gy = grid_units(bx, by, *scene.grid)
    if scene.source_kind == "disk":
        sf, sfv = disk_flux_fv(scene.grid_xy[0], scene.grid_xy[1], _disk_params(scene, p))
    else:
        sf, sfv = (p["src.amplitude"] * t for t in scene.template)
    return bilinear(sf, gx, gy), bilinear(sfv, gx, gy)


def convolve_valid(img: Tensor, kernel: Tensor | None) -> Tensor:
    """True 2-D convolution of (..., H, W) with a (k, k) kernel, 'valid' part (H - k + 1), by FFT."""
    if kernel is None:
        return img
    k = kernel.shape[-1]
    h, w = img.shape[-2:]
    size = (h + k - 1, w + k - 1)
    full = torch.fft.irfft2(torch.fft.rfft2(img, s=size) * torch.fft.rfft2(kernel, s=size), s=size)
    return full[..., k - 1 : h, k - 1 : w]


def block_average(img: Tensor, factor: int) -> Tensor:
    """Mean over factor x factor blocks of the last two axes."""
    if factor == 1:
        return img
    *lead, h, w = img.shape
    return img.reshape(*lead, h // factor, factor, w // factor, factor).mean(dim=(-3, -1))


def observe(scene: Scene, f_sub: Tensor, fv_sub: Tensor) -> tuple[Tensor, Tensor]:
    """Supersampled f and f v (..., H, W) -> observed flux and f v (..., N, N): block average, PSF, crop."""
    out = []
    c = scene.crop
    for img in (f_sub, fv_sub):
        img = convolve_valid(block_average(img, scene.supersample), scene.psf)
        out.append(img[..., c:-c, c:-c] if c else img)
    return out[0], out[1]


def velocity(f: Tensor, fv: Tensor) -> Tensor:
    """Flux-weighted velocity (km/s), 0 where the flux is not positive."""
    pos = f > 0
    return torch.where(pos, fv / torch.where(pos, f, torch.ones_like(f)), torch.zeros_like(f))


def render(scene: Scene, theta: Tensor, with_subhalo: bool = True) -> tuple[Tensor, Tensor]:
    """Noiseless observed (flux, velocity km/s), each (N, N), of parameter vector ``theta`` (float64)."""
    p = {name: theta[j] for j, name in enumerate(scene.names)}
    bx, by = ray_shoot(scene, p, with_subhalo)
    f, fv = observe(scene, *source_at(scene, p, bx, by))
    return f, velocity(f, fv)


def data_function(
    scene: Scene, theta0: np.ndarray | Tensor, free: Sequence[str], with_subhalo: bool = True
) -> Callable[[Tensor], Tensor]:
    """``g(t) -> (2, N, N)`` stacked (flux, velocity) with the parameters ``free`` set to ``t`` and the others
    at ``theta0``: the function ``jacfwd`` differentiates."""
    base = torch.as_tensor(np.asarray(theta0), dtype=DTYPE)
    idx = scene.index(free)
    sel = torch.zeros(len(scene.names), len(idx), dtype=DTYPE)
    sel[idx, torch.arange(len(idx))] = 1.0
    base_free = base[idx]

    def g(t: Tensor) -> Tensor:
        theta = base + sel @ (t - base_free)
        f, v = render(scene, theta, with_subhalo)
        return torch.stack([f, v])

    return g


def jacobian(
    scene: Scene, theta0: np.ndarray, free: Sequence[str], with_subhalo: bool = True
) -> tuple[Tensor, Tensor]:
    """(data (2, N, N), Jacobian (2, N, N, len(free))) at ``theta0`` by forward-mode AD (``jacfwd``).

    Lens and subhalo parameters are differentiated through the whole pipeline; source parameters on the
    fixed rays of ``theta0`` (they do not move the rays), which carries far fewer tangents through the
    ray shooting.
    """
    theta = torch.as_tensor(np.asarray(theta0), dtype=DTYPE)
    lens = [n for n in free if not n.startswith("src.")]
    src = [n for n in free if n.startswith("src.")]
    with torch.no_grad():
        f, v = render(scene, theta, with_subhalo)
    out = torch.stack([f, v])
    cols: dict[str, Tensor] = {}
    if lens:
        g = data_function(scene, theta0, lens, with_subhalo)
        jac = torch.func.jacfwd(g)(theta[scene.index(lens)])
        cols.update({n: jac[..., j] for j, n in enumerate(lens)})
    if src:
        p0 = {name: theta[j] for j, name in enumerate(scene.names)}
        with torch.no_grad():
            bx, by = ray_shoot(scene, p0, with_subhalo)
        idx = scene.index(src)

        def g_src(t: Tensor) -> Tensor:
            p = dict(p0)
            p.update({n: t[j] for j, n in enumerate(src)})
            f_obs, fv_obs = observe(scene, *source_at(scene, p, bx, by))
            return torch.stack([f_obs, velocity(f_obs, fv_obs)])

        jac = torch.func.jacfwd(g_src)(theta[idx])
        cols.update({n: jac[..., j] for j, n in enumerate(src)})
    if not free:
        return out, out.new_zeros(*out.shape, 0)
    return out, torch.stack([cols[n] for n in free], dim=-1)


def nuisance_names(scene: Scene, groups: Sequence[str]) -> list[str]:
    """Parameter names of the groups ``macro`` (macro lens + shear + multipoles), ``source`` (parametric
    source: disk, amplitude; templates: amplitude), ``bulge``, ``clumps`` (used ones) and ``subhalo``."""
    out: list[str] = []
    for group in groups:
        if group == "macro":
            out += [n for n in scene.names if n.startswith(("macro.", "shear.", "mpole"))]
        elif group == "subhalo":
            out += [n for n in scene.names if n.startswith("sub.")]
        elif group == "source":
            if scene.source_kind == "disk":
                out += [f"src.{n}" for n in DISK_FREE]
            out.append("src.amplitude")
        elif group == "bulge":
            out += [f"src.{n}" for n in BULGE_FREE]
        elif group == "clumps":
            out += [
                f"src.{n}.{k}"
                for k in range(scene.n_clumps)
                for n in CLUMP_FREE
                if f"src.{n}.{k}" in scene.names
            ]
        else:
            raise ConfigError(
                f"unknown parameter group {group!r}; use macro, source, bulge, clumps, subhalo."
            )
    return out
