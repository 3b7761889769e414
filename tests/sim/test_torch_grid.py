"""Regular-grid ray shooting straight to source-grid coordinates (lensml.sim.backends.torch_grid)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lensml.sim.backends.torch_grid import source_grid_coordinates
from lensml.sim.backends.torch_lens import ray_shoot
from lensml.sim.subhalo import subhalo_kwargs

B = 5


def _lens(macro: str, sub: str, masses: np.ndarray) -> tuple[list[str], list[dict]]:
    rng = np.random.default_rng(4)
    kw_macro = {
        "theta_E": rng.uniform(0.8, 1.4, B),
        "e1": rng.uniform(-0.2, 0.2, B),
        "e2": rng.uniform(-0.2, 0.2, B),
        "center_x": rng.uniform(-0.1, 0.1, B),
        "center_y": rng.uniform(-0.1, 0.1, B),
    }
    kw_macro["e1"][0] = kw_macro["e2"][0] = 0.0  # circular: the small-ellipticity series branch
    if macro == "EPL":
        kw_macro["gamma"] = rng.uniform(1.8, 2.2, B)
    kw_shear = {
        "gamma1": rng.uniform(-0.05, 0.05, B),
        "gamma2": rng.uniform(-0.05, 0.05, B),
        "ra_0": np.full(B, 0.3),
        "dec_0": np.full(B, -0.2),
    }
    pos = {"center_x": rng.uniform(-1.2, 1.2, B), "center_y": rng.uniform(-1.2, 1.2, B)}
    if sub == "SIS":
        kw_sub = {"theta_E": np.where(masses > 0, 0.02, 0.0), **pos}
    else:
        kw_sub = subhalo_kwargs(sub, masses, 0.5, 2.0, **pos)
    return [macro, "SHEAR", sub], [kw_macro, kw_shear, {k: np.asarray(v) for k, v in kw_sub.items()}]


@pytest.mark.parametrize(
    "macro, sub", [("SIE", "TNFW"), ("SIE", "NFW"), ("EPL", "TNFW"), ("SIE", "SIS")]
)
@pytest.mark.parametrize("masses", [[1e9, 1e10, 0, 0, 0], [0, 3e9, 0, 1e10, 0]], ids=["prefix", "scattered"])
def test_grid_coordinates_match_closed_form_ray_shooting(macro, sub, masses):
    """g = A (theta - alpha(theta)) + c against lenstronomy-convention closed forms, float64."""
    names, kw = _lens(macro, sub, np.array(masses, dtype=float))
    n = 50  # n^2 = 2500 rays: not a multiple of the SIMD block
    coords = torch.linspace(-1.6, 1.6, n, dtype=torch.float64)
    rng = np.random.default_rng(5)
    affine = rng.normal(0, 2.0, (B, 2, 2))
    offset = rng.normal(0, 0.5, (B, 2))
    g = source_grid_coordinates(coords, names, kw, affine, offset)

    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    kw_t = [{k: torch.as_tensor(v) for k, v in d.items()} for d in kw]
    bx, by = ray_shoot(xx.expand(B, -1, -1), yy.expand(B, -1, -1), names, kw_t)
    a, c = torch.as_tensor(affine), torch.as_tensor(offset)
    ref = torch.stack(
        [a[:, j, 0, None, None] * bx + a[:, j, 1, None, None] * by + c[:, j, None, None] for j in range(2)],
        dim=-1,
    )
    assert g.shape == (B, n, n, 2) and g.dtype == torch.float64
    # closed forms to rounding; tabulated NFW / TNFW to ~1e-5 of the subhalo deflection: within the
    # 1e-6 arcsec the deflections must meet in float64 (|A| ~ 1 here)
    atol = 1e-6 if sub in ("NFW", "TNFW") else 1e-10
    torch.testing.assert_close(g, ref, rtol=0, atol=atol)


def test_absent_subhalo_leaves_the_macro_coordinates_unchanged():
    names, kw = _lens("SIE", "TNFW", np.array([0, 1e10, 0, 0, 1e9]))
    coords = torch.linspace(-1.6, 1.6, 40)
    affine, offset = np.tile(np.eye(2), (B, 1, 1)), np.zeros((B, 2))
    with_sub = source_grid_coordinates(coords, names, kw, affine, offset)
    macro = source_grid_coordinates(coords, names[:2], kw[:2], affine, offset)
    for i in (0, 2, 3):
        assert torch.equal(with_sub[i], macro[i])
    assert (with_sub[1] - macro[1]).abs().max() > 1e-3
