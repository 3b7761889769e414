"""The unknown-position case: the best subhalo position on a grid, and its look-elsewhere null.

For each grid position p (``n_radii`` radii in theta_E +- ``subhalo.placement.band_arcsec`` about the lens
centre, ``n_angles`` angles) the template ``t_p`` is the whitened perturbation of a subhalo of the sample's
mass at p (its amplitude is free). After the nuisance fit, the matched-filter amplitude significance is

    z_p = t_p^T R x / sqrt(t_p^T R t_p),   R = I - G (G^T G + P)^+ G^T

for whitened data x (the nuisance-fit residual operator; a projection when P = 0). The statistic is
``max_p z_p`` (a subhalo has positive mass): for the signal, x = the true perturbation (the noise-free,
"Asimov", value); under the null, x ~ N(0, I) (``n_null`` noise-only draws). The global significance converts
the null's tail with an effective number of independent trials N_eff (fitted to the null's median,
``P(max < u) = Phi(u)^N_eff``): p = 1 - Phi(s)^N_eff, sigma = Phi^-1(1 - p) (negative when the signal's
maximum is below the null's median: no detection).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import norm

from lensml.inference import physics
from lensml.inference.fisher import solve_psd
from lensml.inference.renderer import DTYPE, render


def grid_positions(
    theta_e: float, cx: float, cy: float, band: float, n_radii: int, n_angles: int
) -> np.ndarray:
    """(n_radii n_angles, 2) image positions (arcsec) on rings about the lens centre."""
    radii = theta_e + (np.linspace(-band, band, n_radii) if n_radii > 1 else np.zeros(1))
    ang = 2 * math.pi * (np.arange(n_angles) + 0.5) / n_angles
    r, a = np.meshgrid(radii, ang, indexing="ij")
    return np.stack([cx + r.ravel() * np.cos(a.ravel()), cy + r.ravel() * np.sin(a.ravel())], axis=1)


def global_sigma(s_obs: float, null_max: np.ndarray) -> tuple[float, float, float]:
    """(global sigma, p-value, N_eff) of an observed maximum ``s_obs`` given null maxima."""
    med = float(np.median(null_max))
    log_phi_med = float(norm.logcdf(med))
    n_eff = math.log(0.5) / log_phi_med if log_phi_med < 0 else 1.0
    p = -math.expm1(n_eff * float(norm.logcdf(s_obs)))
    p = min(max(p, 1e-300), 1.0)
    return float(norm.isf(p)), p, n_eff


def scan(
    sim: physics.LensSimulator,
    draws: physics.DrawBatch,
    i: int,
    model: dict,
    g: np.ndarray,
    prior: np.ndarray | None,
    whiten: callable,
    z_true: np.ndarray,
    n_radii: int,
    n_angles: int,
    n_null: int,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Local and global significance of sample ``i``'s subhalo when its position is unknown.

    ``g``: whitened nuisance columns (n, p); ``whiten(f, v)``: whitened data vector of a rendered (flux,
    velocity) minus the smooth model; ``z_true``: the whitened true perturbation.
    """
    scene, theta = model["scene"], model["theta"]
    lens = draws.lens
    band = float(sim.subhalo.band_arcsec)
    pos = grid_positions(
        float(lens["theta_E"][i]),
        float(lens["center_x"][i]),
        float(lens["center_y"][i]),
        band,
        n_radii,
        n_angles,
    )
    temps = []
    for x, y in pos:
        kw = physics.subhalo_kwargs_at(sim, draws, i, float(draws.mass_msun[i]), float(x), float(y))
        th = theta.copy()
        for k, v in kw.items():
            th[scene.names.index(f"sub.{k}")] = v
        with torch.no_grad():
            f1, v1 = (t.numpy() for t in render(scene, torch.as_tensor(th, dtype=DTYPE)))
        temps.append(whiten(f1, v1))
    t = np.stack(temps, axis=1)  # (n, n_pos)
    if g.shape[1]:
        h = g.T @ g if prior is None else g.T @ g + prior
        rt = t - g @ solve_psd(h, g.T @ t)
    else:
        rt = t
    den = np.sqrt(np.maximum(np.einsum("np,np->p", t, rt), 1e-300))
    s_obs = float(np.max(rt.T @ z_true / den))
    x = rng.standard_normal((t.shape[0], n_null))
    null_max = np.max((rt.T @ x) / den[:, None], axis=0)
    sig, p, n_eff = global_sigma(s_obs, null_max)
    return {
        "local_sigma": s_obs,
        "global_sigma": sig,
        "p_global": p,
        "n_eff": n_eff,
        "null_max_median": float(np.median(null_max)),
        "null_max_p99": float(np.quantile(null_max, 0.99)),
    }
