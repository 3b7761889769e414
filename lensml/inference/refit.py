"""Check of the linearisation: a full nonlinear refit of the smooth model (``scipy.optimize.least_squares``).

The noiseless data with the subhalo (the "Asimov" data set) are fitted by the smooth model (nuisance set
free, the rest at its true value) under the same whitening as the forecast. The smooth model's best
chi-square is the nonlinear Delta chi^2 (the model with the subhalo fits exactly, chi^2 = 0); its square
root is compared with the linearised significance. Starts at the true parameters (the refit can only find
a better smooth fit than the linear one, or a worse one where the linearisation overshoots).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import least_squares

from lensml.inference.renderer import DTYPE, Scene, jacobian, render


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
    chi2_0 = float(np.sum(resid(t0) ** 2))
    res = least_squares(resid, t0, jac=jac, method="trf", x_scale="jac", max_nfev=max_nfev)
    chi2 = float(np.sum(res.fun**2))
    return {
        "nonlinear_sigma": float(np.sqrt(chi2)),
        "start_sigma": float(np.sqrt(chi2_0)),
        "nfev": int(res.nfev),
    }
