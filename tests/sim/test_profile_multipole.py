"""MULTIPOLE (m = 2-5; the simulator draws 3 and 4) against lenstronomy through the shared check (torch,
torch grid, compiled kernels)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lensml.errors import ConfigError
from lensml.sim.profiles.multipole import PROFILE, alpha_multipole
from tests.sim.lenstronomy_check import check_profile


@pytest.mark.parametrize("m", [2, 3, 4, 5])
@pytest.mark.parametrize("phi_m", [0.0, 0.7, -2.1])
def test_multipole_matches_lenstronomy(m, phi_m):
    check_profile("MULTIPOLE", {"m": m, "a_m": 0.01, "phi_m": phi_m, "center_x": 0.02, "center_y": -0.03})


def test_two_multipoles_beside_the_macro_lens_in_the_kernels():
    from lenstronomy.LensModel.lens_model import LensModel

    from lensml.sim.backends.cpu_rays import source_grid_coordinates_cpu

    names = ["EPL", "SHEAR", "MULTIPOLE", "MULTIPOLE", "TNFW"]
    kw = [
        {"theta_E": 1.0, "gamma": 2.1, "e1": 0.1, "e2": 0.0, "center_x": 0.0, "center_y": 0.0},
        {"gamma1": 0.02, "gamma2": 0.01},
        {"m": 3, "a_m": 0.008, "phi_m": 0.3},
        {"m": 4, "a_m": 0.01, "phi_m": -0.2},
        {"Rs": 0.2, "alpha_Rs": 0.01, "r_trunc": 0.4, "center_x": 0.9, "center_y": 0.3},
    ]
    coords = np.linspace(-1.5, 1.5, 16) + 0.011
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    bx, by = LensModel(names).ray_shooting(xx.ravel(), yy.ravel(), kw)
    batch = [{k: np.array([v]) for k, v in d.items()} for d in kw]
    got = source_grid_coordinates_cpu(coords, names, batch, np.eye(2)[None], np.zeros((1, 2)))
    np.testing.assert_allclose(got[0, ..., 0], bx.reshape(xx.shape), atol=3e-5)
    np.testing.assert_allclose(got[0, ..., 1], by.reshape(xx.shape), atol=3e-5)


def test_the_convergence_has_the_order_m_pattern():
    """kappa = a_m / (2 r) cos m (phi - phi_m): half the divergence of alpha, by finite differences."""
    r, phi = 0.8, np.linspace(0, 2 * np.pi, 7, endpoint=False)
    x, y = torch.as_tensor(r * np.cos(phi)), torch.as_tensor(r * np.sin(phi))
    h = 1e-6
    kw = {"m": 4, "a_m": 0.02, "phi_m": 0.25}
    div = (alpha_multipole(x + h, y, **kw)[0] - alpha_multipole(x - h, y, **kw)[0]) / (2 * h)
    div += (alpha_multipole(x, y + h, **kw)[1] - alpha_multipole(x, y - h, **kw)[1]) / (2 * h)
    np.testing.assert_allclose(div.numpy() / 2, 0.02 / (2 * r) * np.cos(4 * (phi - 0.25)), rtol=1e-5)


def test_bad_order_is_refused():
    with pytest.raises(ConfigError, match=r"lens\.multipole\.m"):
        PROFILE.check({"m": 2.5, "a_m": 0.01, "phi_m": 0.0}, "lens.multipole")
