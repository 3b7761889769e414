"""Check of the linearisation: a full nonlinear refit of the smooth model (``scipy.optimize.least_squares``).

The noiseless data with the subhalo (the "Asimov" data set) are fitted by the smooth model (nuisance set
free, the rest at its true value) under the same whitening as the forecast. The smooth model's best
chi-square is the nonlinear Delta chi^2 (the model with the subhalo fits exactly, chi^2 = 0); its square
root is compared with the linearised significance. The fit starts at the linearised best fit (one
Gauss-Newton step from the truth) if that is better than the truth, then iterates (trust region, analytic
Jacobian) inside physical bounds (``BOUNDS``: positive amplitudes, widths and radii, inclination below 89
deg); ``linear_step_sigma`` is the nonlinear chi at that linear optimum.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import least_squares

from lensml.inference.renderer import DTYPE, Scene, jacobian, render

#: Physical bounds of refitted parameters (by name suffix); others are free.
BOUNDS: dict[str, tuple[float, float]] = {
    "inclination_deg": (0.0, 89.0),
    "scale_radius_arcsec": (1e-3, np.inf),
    "r_turn_arcsec": (1e-3, np.inf),
    "v_max_kms": (0.0, np.inf),
    "amplitude": (0.0, np.inf),
    "bulge_amp": (0.0, np.inf),
    "bulge_r_eff_arcsec": (1e-3, np.inf),
    "bulge_sersic_n": (0.5, 10.0),
    "clump_amp": (0.0, np.inf),
    "clump_sigma_arcsec": (1e-3, np.inf),
    "clump_r_arcsec": (0.0, np.inf),
    "theta_E": (1e-3, np.inf),
    "gamma": (1.05, 2.95),
}


def bounds(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) bounds of parameters ``names`` (``BOUNDS`` by the name's field, clumps by kind)."""
    lo, hi = [], []
    for name in names:
        field = name.split(".")[1]
        a, b = BOUNDS.get(field, (-np.inf, np.inf))
        lo.append(a)
        hi.append(b)
    return np.asarray(lo), np.asarray(hi)


def refit_significance(
    scene: Scene,
    theta_smooth: np.ndarray,
    free: Sequence[str],
    data_f: np.ndarray,
    data_v: np.ndarray | None,
    sig_f: np.ndarray,
    sig_v: np.ndarray | None,
    vmask: np.ndarray | None,
    max_nfev: int = 30,
) -> dict[str, float]:
    """sqrt(min chi^2) of the smooth model (parameters ``free``) against (flux, velocity) data (N, N).

    ``data_v`` None: flux only. ``vmask``: pixels with velocity data.
    """
    idx = scene.index(free)

    def full(t: np.ndarray) -> np.ndarray:
        th = theta_smooth.copy()
        th[idx] = t
        return th

    def resid(t: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            f, v = (a.numpy() for a in render(scene, torch.as_tensor(full(t), dtype=DTYPE), False))
        r = [((f - data_f) / sig_f).ravel()]
        if data_v is not None:
            r.append(((v - data_v) / sig_v)[vmask])
        return np.concatenate(r)

    def jac(t: np.ndarray) -> np.ndarray:
        _, j = jacobian(scene, full(t), free, with_subhalo=False)
        j = j.numpy()
        rows = [(j[0] / sig_f[..., None]).reshape(-1, len(free))]
        if data_v is not None:
            rows.append((j[1] / sig_v[..., None])[vmask])
        return np.vstack(rows)

    t0 = theta_smooth[idx]
    r0 = resid(t0)
    chi2_0 = float(r0 @ r0)
    # start at the linearised best fit (one Gauss-Newton step from the truth) when it is better
    step, *_ = np.linalg.lstsq(jac(t0), -r0, rcond=None)
    r_lin = resid(t0 + step)
    chi2_lin = float(r_lin @ r_lin)
    lo, hi = bounds(free)
    inside = bool(np.all(t0 + step > lo) and np.all(t0 + step < hi))
    start = t0 + step if inside and chi2_lin < chi2_0 else np.clip(t0, lo, hi)
    res = least_squares(
        resid, start, jac=jac, bounds=(lo, hi), method="trf", x_scale="jac", max_nfev=max_nfev
    )
    chi2 = min(float(np.sum(res.fun**2)), chi2_lin if inside else np.inf, chi2_0)
    return {
        "nonlinear_sigma": float(np.sqrt(chi2)),
        "start_sigma": float(np.sqrt(chi2_0)),
        "linear_step_sigma": float(np.sqrt(chi2_lin)),
        "nfev": int(res.nfev),
        "converged": bool(res.status > 0),
    }
