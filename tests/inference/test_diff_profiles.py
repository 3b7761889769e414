"""The differentiable deflections equal lenstronomy's (the physics reference) to float64 precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lenstronomy.LensModel.lens_model import LensModel

from lensml.inference.profiles import PROFILE_PARAMS, deflection, epl_terms

CASES = {
    "SIS": {"theta_E": 1.0, "center_x": 0.02, "center_y": -0.03},
    "SIE": {"theta_E": 1.05, "e1": 0.12, "e2": -0.07, "center_x": 0.02, "center_y": -0.03},
    "EPL": {"theta_E": 0.95, "gamma": 2.15, "e1": -0.1, "e2": 0.15, "center_x": 0.01, "center_y": 0.04},
    "SHEAR": {"gamma1": 0.03, "gamma2": -0.05},
    "NFW": {"Rs": 0.08, "alpha_Rs": 0.004, "center_x": 0.7, "center_y": 0.6},
    "TNFW": {"Rs": 0.08, "alpha_Rs": 0.004, "r_trunc": 0.3, "center_x": 0.7, "center_y": 0.6},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_deflection_matches_lenstronomy(name: str) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-1.6, 1.6, (2, 400))
    kw = CASES[name]
    ref_x, ref_y = LensModel([name]).alpha(x, y, [kw])
    n_terms = epl_terms(kw.get("e1", 0.0), kw.get("e2", 0.0))
    args = [torch.tensor(kw[k], dtype=torch.float64) for k in PROFILE_PARAMS[name]]
    ax, ay = deflection(name, n_terms)(torch.as_tensor(x), torch.as_tensor(y), *args)
    scale = np.abs(ref_x).max() + np.abs(ref_y).max()
    np.testing.assert_allclose(ax.numpy(), ref_x, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(ay.numpy(), ref_y, rtol=0, atol=1e-9 * scale)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_multipole_matches_lenstronomy(m: int) -> None:
    from lensml.inference.profiles import alpha_multipole

    rng = np.random.default_rng(m)
    x, y = rng.uniform(-1.6, 1.6, (2, 400))
    kw = {"m": m, "a_m": 0.01, "phi_m": 0.3, "center_x": 0.02, "center_y": -0.01}
    ref_x, ref_y = LensModel(["MULTIPOLE"]).alpha(x, y, [kw])
    t = {k: torch.tensor(float(v), dtype=torch.float64) for k, v in kw.items() if k != "m"}
    ax, ay = alpha_multipole(torch.as_tensor(x), torch.as_tensor(y), m, **t)
    np.testing.assert_allclose(ax.numpy(), ref_x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ay.numpy(), ref_y, rtol=0, atol=1e-12)


def test_profiles_are_jacfwd_safe() -> None:
    """Every profile can be differentiated by jacfwd w.r.t. all its parameters at once."""
    x = torch.linspace(-1, 1, 50, dtype=torch.float64)
    for name, kw in CASES.items():
        fn = deflection(name, epl_terms(kw.get("e1", 0.0), kw.get("e2", 0.0)))
        t0 = torch.tensor([kw[k] for k in PROFILE_PARAMS[name]], dtype=torch.float64)
        jac = torch.func.jacfwd(lambda t, fn=fn: torch.stack(fn(x, 0.3 * x + 0.1, *t)))(t0)
        assert jac.shape == (2, 50, len(t0)) and torch.isfinite(jac).all(), name
