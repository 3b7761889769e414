"""Compiled CPU ray shooting (lensml.sim.backends.cpu_rays, cpu_terms) against lenstronomy and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lenstronomy.LensModel.lens_model import LensModel

from lensml.sim.backends.cpu_rays import source_grid_coordinates_cpu
from lensml.sim.backends.cpu_terms import supports
from lensml.sim.backends.torch_grid import source_grid_coordinates
from lensml.sim.subhalo import subhalo_kwargs

B = 6


def _lens(
    sub: str, masses: np.ndarray, macro_name: str = "SIE"
) -> tuple[list[str], list[dict[str, np.ndarray]]]:
    rng = np.random.default_rng(8)
    macro = {
        "theta_E": rng.uniform(0.8, 1.4, B),
        "e1": rng.uniform(-0.25, 0.25, B),
        "e2": rng.uniform(-0.25, 0.25, B),
        "center_x": rng.uniform(-0.1, 0.1, B),
        "center_y": rng.uniform(-0.1, 0.1, B),
    }
    macro["e1"][0] = macro["e2"][0] = 0.0  # circular: the series branch
    macro["e1"][1], macro["e2"][1] = 3e-4, -2e-4  # nearly circular: k < 1e-3
    if macro_name == "EPL":
        macro["gamma"] = rng.uniform(1.7, 2.3, B)
        macro["e1"][2], macro["e2"][2] = 0.35, -0.2  # a long series
    shear = {
        "gamma1": rng.uniform(-0.05, 0.05, B),
        "gamma2": rng.uniform(-0.05, 0.05, B),
        "ra_0": np.full(B, 0.3),
        "dec_0": np.full(B, -0.2),
    }
    pos = {"center_x": rng.uniform(-1.2, 1.2, B), "center_y": rng.uniform(-1.2, 1.2, B)}
    if sub == "SIS":
        kw_sub = {"theta_E": np.where(masses > 0, 0.03, 0.0), **pos}
    else:
        kw_sub = {k: np.asarray(v, float) for k, v in subhalo_kwargs(sub, masses, 0.5, 2.0, **pos).items()}
    return [macro_name, "SHEAR", sub], [macro, shear, kw_sub]


@pytest.mark.parametrize("macro, sub", [("SIE", "TNFW"), ("SIE", "NFW"), ("SIE", "SIS"), ("EPL", "TNFW")])
def test_ray_shooting_matches_lenstronomy(macro, sub):
    """With the identity placement, g = beta (arcsec): lenstronomy's ray_shooting to 1e-5 arcsec (float32)."""
    masses = np.array([1e9, 1e10, 0.0, 3e8, 1e7, 0.0])
    names, kw = _lens(sub, masses, macro)
    coords = np.linspace(-1.7, 1.7, 61)  # 61^2 rays: not a multiple of any SIMD width
    g = source_grid_coordinates_cpu(coords, names, kw, np.tile(np.eye(2), (B, 1, 1)), np.zeros((B, 2)))
    assert g.shape == (B, 61, 61, 2) and g.dtype == np.float32
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    model = LensModel(names)
    for b in range(B):
        kw_b = [{k: float(v[b]) for k, v in d.items()} for d in kw]
        bx, by = model.ray_shooting(xx.ravel(), yy.ravel(), kw_b)
        err = np.hypot(g[b, ..., 0].ravel() - bx, g[b, ..., 1].ravel() - by)
        assert err.max() < 1e-5, (b, err.max())


def test_matches_the_float64_torch_path_with_a_general_placement():
    names, kw = _lens("TNFW", np.array([1e9, 0.0, 1e10, 0.0, 2e9, 5e9]))
    rng = np.random.default_rng(2)
    affine, offset = rng.normal(0, 1.5, (B, 2, 2)), rng.normal(0, 0.5, (B, 2))
    coords = np.linspace(-1.6, 1.6, 50)
    ref = source_grid_coordinates(torch.as_tensor(coords), names, kw, affine, offset).numpy()
    got = source_grid_coordinates_cpu(coords, names, kw, affine, offset)
    scale = np.abs(ref).max(axis=(1, 2, 3))  # float32 rounding of coordinates of this size
    assert (np.abs(got - ref).max(axis=(1, 2, 3)) < 4e-7 * scale + 1e-6).all()


def test_a_sample_does_not_depend_on_its_batch_and_absent_subhalo_is_exact():
    names, kw = _lens("TNFW", np.array([1e9, 0.0, 1e10, 0.0, 2e9, 0.0]))
    coords = np.linspace(-1.6, 1.6, 37)
    eye, zero = np.tile(np.eye(2), (B, 1, 1)), np.zeros((B, 2))
    batch = source_grid_coordinates_cpu(coords, names, kw, eye, zero)
    macro = source_grid_coordinates_cpu(coords, names[:2], kw[:2], eye, zero)
    for b in range(B):
        one = [{k: v[b : b + 1] for k, v in d.items()} for d in kw]
        np.testing.assert_array_equal(
            source_grid_coordinates_cpu(coords, names, one, eye[:1], zero[:1])[0], batch[b]
        )
    for b in (1, 3, 5):  # mass 0: exactly the macro lens
        np.testing.assert_array_equal(batch[b], macro[b])
    assert np.abs(batch[0] - macro[0]).max() > 1e-4


def test_unsupported_lens_lists_fall_back():
    assert supports(["SIE", "SHEAR", "TNFW"]) and supports(["SIS"]) and supports(["SHEAR", "SIE"])
    assert supports(["EPL", "SHEAR", "TNFW"]) and not supports(["SIE", "EPL"])
    assert not supports(["SIE", "TNFW", "NFW"])
    out = source_grid_coordinates_cpu(np.zeros(3), ["PJAFFE"], [{}], np.zeros((1, 2, 2)), np.zeros((1, 2)))
    assert out is None


@pytest.mark.parametrize("factor", [1, 2, 3])
def test_fused_sampling_equals_grid_sample_and_block_average(factor):
    import torch.nn.functional as F

    from lensml.sim.backends.cpu_rays import pack_sources, render_blocks_cpu
    from lensml.sim.backends.cpu_terms import ray_terms
    from lensml.sim.backends.torch_backend import block_average

    names, kw = _lens("TNFW", np.array([1e9, 0.0, 1e10, 0.0, 2e9, 5e9]))
    rng = np.random.default_rng(6)
    m = 40
    flux = rng.uniform(0.0, 1.0, (B, m, m)).astype(np.float32)
    vel = rng.normal(0.0, 200.0, (B, m, m)).astype(np.float32)
    affine = np.tile(np.eye(2) / 0.5, (B, 1, 1))  # a source 1" wide: many rays land outside it (zeros)
    offset = rng.normal(0.0, 0.2, (B, 2))
    coords = np.linspace(-1.8, 1.8, 24 * factor)
    terms = ray_terms(names, kw, affine, offset)
    got = render_blocks_cpu(coords, terms, pack_sources(flux, vel), factor)
    grid = torch.from_numpy(source_grid_coordinates_cpu(coords, names, kw, affine, offset))
    src = torch.from_numpy(np.stack([flux, flux * vel], axis=1))
    sub = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    want = block_average(sub, factor).numpy()
    assert got.shape == want.shape == (B, 2, 24, 24)
    # the bilinear weights round differently (float32, ~40 x eps) times neighbour differences of this noise
    for c in range(2):
        np.testing.assert_allclose(got[:, c], want[:, c], rtol=0, atol=1e-5 * np.abs(want[:, c]).max())
    assert (want[:, 0] == 0).mean() > 0.05  # the zero padding is exercised
