"""Data-driven starts of the smooth fit: the ring radius of the flux image, then a coarse source grid.

What the start uses (no truth): the observed flux (and velocity for ``flux_velocity``) and its reported
sigmas only.

1. Lens: centred on the image centre (the lens galaxy's light; the prior is +-0.05"), round, no shear, no
   multipoles; theta_E = the flux-weighted median radius of the pixels brighter than 20 % of the image's
   99.9th flux percentile (the ring / arcs lie near the Einstein radius).
2. Source: a coarse grid over theta_E (0.9, 1, 1.1 x the ring estimate), the disk's centre (5 x 5 over
   +-0.2"), scale radius, inclination and position angle (mod 180 deg); at each node the amplitude (and,
   with velocity data, v_max and v_sys: the velocity map is linear in them) is solved by linear least
   squares; a negative v_max flips the position angle by 180 deg. The ``n`` nodes of lowest chi-square
   are the multi-start points.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch

from lensml.inference.fit_model import Observed, Problem, neutral_theta
from lensml.inference.renderer import DTYPE, Scene, render

#: the coarse source grid (arcsec, deg)
GRID: dict[str, tuple[float, ...]] = {
    "theta_e_factor": (0.9, 1.0, 1.1),  # x the ring estimate
    "offset_arcsec": (-0.2, -0.1, 0.0, 0.1, 0.2),
    "scale_radius_arcsec": (0.13, 0.21),
    "inclination_deg": (35.0, 60.0),
    "position_angle_deg": (0.0, 45.0, 90.0, 135.0),
}


def ring_theta_e(flux: np.ndarray, pixel_scale_arcsec: float, frac: float = 0.2) -> float:
    """Flux-weighted median radius (arcsec, from the image centre) of pixels above ``frac`` x the 99.9th
    flux percentile."""
    n = flux.shape[-1]
    c = (np.arange(n) - (n - 1) / 2.0) * pixel_scale_arcsec
    yy, xx = np.meshgrid(c, c, indexing="ij")
    r = np.hypot(xx, yy)
    sel = flux > frac * np.quantile(flux, 0.999)
    if not sel.any():
        return 1.0
    order = np.argsort(r[sel])
    w = np.cumsum(flux[sel][order])
    return float(r[sel][order][np.searchsorted(w, 0.5 * w[-1])])


def _linear_source(scene: Scene, obs: Observed, theta: np.ndarray) -> tuple[np.ndarray, float]:
    """``theta`` with the amplitude (and v_max, v_sys) solved linearly; its chi-square."""
    th = theta.copy()
    names = scene.names
    ia, iv, isys = (names.index(k) for k in ("src.amplitude", "src.v_max_kms", "src.v_sys_kms"))
    th[ia], th[iv], th[isys] = 1.0, 1.0, 0.0
    with torch.no_grad():
        f1, u = (a.numpy() for a in render(scene, torch.as_tensor(th, dtype=DTYPE), False))
    wf = 1.0 / obs.sigma_f**2
    amp = max(float((f1 * obs.flux * wf).sum() / max((f1 * f1 * wf).sum(), 1e-300)), 0.0)
    th[ia] = amp
    chi2 = float((((amp * f1 - obs.flux) ** 2) * wf).sum())
    if obs.use_velocity:
        m = obs.vmask & (f1 > 0)
        w = 1.0 / obs.sigma_v[m]
        a = np.stack([u[m] * w, w], axis=1)
        (vmax, vsys), *_ = np.linalg.lstsq(a, obs.velocity[m] * w, rcond=None)
        if vmax < 0:  # the receding side is the other one: position angle + 180 deg
            th[names.index("src.position_angle_deg")] += 180.0
            vmax = -vmax
        th[iv], th[isys] = vmax, vsys
        v_model = np.where(f1 > 0, vmax * u + vsys, 0.0)
        chi2 += float((((v_model - obs.velocity) / obs.sigma_v)[obs.vmask] ** 2).sum())
    else:
        th[iv] = theta[iv]
    return th, chi2


def grid_starts(
    scene: Scene, obs: Observed, pixel_scale_arcsec: float, n: int, grid: dict | None = None
) -> tuple[list[np.ndarray], dict]:
    """The ``n`` best nodes of the coarse grid (full parameter vectors, best first) and what was used."""
    grid = grid or GRID
    base = neutral_theta(scene)
    theta_e = ring_theta_e(obs.flux, pixel_scale_arcsec)
    shape = ("scale_radius_arcsec", "inclination_deg", "position_angle_deg")
    idx = {k: scene.names.index(f"src.{k}") for k in ("center_x", "center_y", *shape)}
    i_te = scene.names.index("macro.theta_E")
    nodes = []
    off = grid["offset_arcsec"]
    for fe, cx, cy, rs, inc, pa in itertools.product(
        grid["theta_e_factor"], off, off, *(grid[k] for k in shape)
    ):
        th = base.copy()
        th[i_te] = fe * theta_e
        th[idx["center_x"]], th[idx["center_y"]] = cx, cy
        th[idx["scale_radius_arcsec"]], th[idx["inclination_deg"]] = rs, inc
        th[idx["position_angle_deg"]] = pa
        nodes.append(_linear_source(scene, obs, th))
    nodes.sort(key=lambda t: t[1])
    info = {"theta_E_ring_arcsec": theta_e, "n_grid": len(nodes), "grid_chi2_best": nodes[0][1]}
    return [t for t, _ in nodes[:n]], info


def oracle_start(truth: np.ndarray) -> list[np.ndarray]:
    """The true parameters (clumps dropped): ``fit.start=oracle`` only (a truth-leaking bound)."""
    return [truth.copy()]


def free_values(problem: Problem, thetas: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The fitted entries of full parameter vectors."""
    return [np.asarray(t)[problem.idx] for t in thetas]
