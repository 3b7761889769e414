"""Torch backend internals: tabulated radial deflections and sparse (zero-strength) profile evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lensml.sim.backends.torch_backend import radial_alpha, ray_shoot_sparse
from lensml.sim.backends.torch_lens import PROFILES, ray_shoot
from lensml.sim.subhalo import subhalo_kwargs


@pytest.mark.parametrize("profile", ["NFW", "TNFW"])
def test_tabulated_radial_deflection_matches_the_closed_form(profile):
    c = torch.linspace(-1.9, 1.9, 97, dtype=torch.float64)
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    kw = subhalo_kwargs(
        profile,
        np.array([1e7, 1e8, 1e9, 1e10]),
        0.5,
        2.0,
        center_x=np.array([0.3, 1.0, -0.9, 0.013]),
        center_y=np.array([0.0, 0.5, 0.2, -0.031]),
    )
    kw = {k: torch.as_tensor(v) for k, v in kw.items()}
    ex, ey = PROFILES[profile](xx[None], yy[None], **kw)
    tx, ty = radial_alpha(profile, xx[None], yy[None], kw)
    err = torch.hypot(tx - ex, ty - ey).amax(dim=(1, 2))
    scale = torch.hypot(ex, ey).amax(dim=(1, 2))
    assert torch.all(err <= 1e-4 * scale), err / scale
    assert torch.all(scale > 1e-5)


def test_sparse_ray_shooting_equals_full_evaluation():
    c = torch.linspace(-1.6, 1.6, 40)
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    b = 5
    kw = [
        dict(
            theta_E=torch.full((b,), 1.0),
            e1=torch.linspace(-0.1, 0.2, b),
            e2=torch.full((b,), 0.05),
            center_x=torch.zeros(b),
            center_y=torch.zeros(b),
        ),
        dict(gamma1=torch.full((b,), 0.02), gamma2=torch.full((b,), -0.01)),
        dict(
            theta_E=torch.tensor([0.0, 0.01, 0.0, 0.02, 0.0]),
            center_x=torch.full((b,), 0.9),
            center_y=torch.full((b,), 0.2),
        ),
    ]
    names = ["SIE", "SHEAR", "SIS"]
    bx, by = ray_shoot_sparse(xx[None], yy[None], names, kw)
    rx, ry = ray_shoot(xx.expand(b, -1, -1), yy.expand(b, -1, -1), names, kw)
    torch.testing.assert_close(bx, rx, rtol=0, atol=1e-6)
    torch.testing.assert_close(by, ry, rtol=0, atol=1e-6)
    mx, _ = ray_shoot_sparse(xx[None], yy[None], names[:2], kw[:2])
    assert torch.equal(bx[0], mx[0])  # no subhalo: exactly the macro lens
    assert (bx[1] - mx[1]).abs().max() > 1e-3  # the subhalo of sample 1 was applied
