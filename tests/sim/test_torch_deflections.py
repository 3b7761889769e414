"""The torch deflection backend against lenstronomy (the reference), profile by profile and composed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lenstronomy.LensModel.lens_model import LensModel

from lensml.errors import ConfigError
from lensml.sim.backends.torch_lens import PROFILES, alpha_total, ray_shoot

N_SETS = 24
TOL = {torch.float64: 1e-6, torch.float32: 1e-4}
TOL_EPL64 = 1e-5


def _points(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points on the lens scale, very close to the centre (and exactly at it), and far out."""
    x = np.concatenate([rng.uniform(-4, 4, 300), rng.normal(0, 1e-3, 20), [0.0], rng.uniform(-40, 40, 30)])
    y = np.concatenate([rng.uniform(-4, 4, 300), rng.normal(0, 1e-3, 20), [0.0], rng.uniform(-40, 40, 30)])
    return x, y


def _random_kwargs(name: str, rng: np.random.Generator, i: int) -> dict[str, float]:
    e1, e2 = (0.0, 0.0) if i == 0 else rng.uniform(-0.35, 0.35, 2)  # i = 0: the round case q = 1
    cx, cy = rng.uniform(-0.5, 0.5, 2)
    if name == "SIS":
        return dict(theta_E=rng.uniform(0.2, 2.0), center_x=cx, center_y=cy)
    if name == "SIE":
        return dict(theta_E=rng.uniform(0.2, 2.0), e1=e1, e2=e2, center_x=cx, center_y=cy)
    if name == "EPL":
        return dict(theta_E=rng.uniform(0.2, 2.0), gamma=rng.uniform(1.4, 2.6), e1=e1, e2=e2, center_x=cx,
                    center_y=cy)
    if name == "SHEAR":
        return dict(gamma1=rng.uniform(-0.1, 0.1), gamma2=rng.uniform(-0.1, 0.1), ra_0=cx, dec_0=cy)
    if name == "NFW":
        return dict(Rs=rng.uniform(0.02, 3.0), alpha_Rs=rng.uniform(0.001, 2.0), center_x=cx, center_y=cy)
    if name == "TNFW":
        return dict(Rs=rng.uniform(0.02, 3.0), alpha_Rs=rng.uniform(0.001, 2.0),
                    r_trunc=rng.uniform(0.05, 30.0), center_x=cx, center_y=cy)
    if name == "MULTIPOLE":
        return dict(m=3 + i % 2, a_m=rng.uniform(0, 0.05), phi_m=rng.uniform(-3, 3), center_x=cx, center_y=cy)
    raise AssertionError(name)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_matches_lenstronomy(name: str, dtype: torch.dtype) -> None:
    rng = np.random.default_rng(1234)
    lens = LensModel([name])
    func = PROFILES[name]
    tol = TOL_EPL64 if (name == "EPL" and dtype == torch.float64) else TOL[dtype]
    worst = 0.0
    for i in range(N_SETS):
        kw = _random_kwargs(name, rng, i)
        x, y = _points(rng)
        ref_x, ref_y = lens.alpha(x.copy(), y.copy(), [kw])
        ax, ay = func(torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype), **kw)
        assert ax.dtype == dtype and ay.dtype == dtype
        assert torch.isfinite(ax).all() and torch.isfinite(ay).all()
        dev = max(np.abs(ax.double().numpy() - ref_x).max(), np.abs(ay.double().numpy() - ref_y).max())
        worst = max(worst, dev)
        assert dev < tol, f"{name} {dtype} parameter set {i} {kw}: max |diff| = {dev:.3g} arcsec"
    assert worst > 0 or name in ("SHEAR", "SIS")  # the comparison really ran through the points


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_batch_of_parameters_equals_each_alone(name: str) -> None:
    rng = np.random.default_rng(7)
    n_batch = 5
    kws = [_random_kwargs(name, rng, i) for i in range(n_batch)]
    grid = torch.linspace(-3, 3, 9, dtype=torch.float64)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    x = gx.expand(n_batch, 9, 9) + 0.01 * torch.arange(n_batch, dtype=torch.float64)[:, None, None]
    y = gy.expand(n_batch, 9, 9)
    batched = {k: torch.tensor([kw[k] for kw in kws], dtype=torch.float64) for k in kws[0]}
    bx, by = PROFILES[name](x, y, **batched)
    assert bx.shape == (n_batch, 9, 9)
    for b, kw in enumerate(kws):
        sx, sy = PROFILES[name](x[b], y[b], **kw)
        torch.testing.assert_close(bx[b], sx, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(by[b], sy, rtol=1e-12, atol=1e-12)


def test_shared_grid_broadcasts_over_batch() -> None:
    grid = torch.linspace(-2, 2, 7)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    theta_e = torch.tensor([0.5, 1.0, 1.5])
    ax, ay = PROFILES["SIE"](gx[None], gy[None], theta_E=theta_e, e1=0.1, e2=torch.tensor([0.0, 0.1, -0.2]))
    assert ax.shape == (3, 7, 7) and ay.shape == (3, 7, 7)


ZERO_STRENGTH = {
    "SIS": dict(theta_E=0.0),
    "SIE": dict(theta_E=0.0, e1=0.2, e2=-0.1),
    "EPL": dict(theta_E=0.0, gamma=1.6, e1=0.2, e2=-0.1),
    "SHEAR": dict(gamma1=0.0, gamma2=0.0),
    "NFW": dict(Rs=0.5, alpha_Rs=0.0),
    "TNFW": dict(Rs=0.5, alpha_Rs=0.0, r_trunc=2.5),
    "MULTIPOLE": dict(m=4, a_m=0.0, phi_m=0.3),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_zero_strength_is_exactly_zero_and_centre_is_finite(name: str, dtype: torch.dtype) -> None:
    grid = torch.linspace(-1, 1, 11, dtype=dtype)  # contains the centre (0, 0) exactly
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    ax, ay = PROFILES[name](gx[None], gy[None], **ZERO_STRENGTH[name])
    assert torch.equal(ax, torch.zeros_like(ax)) and torch.equal(ay, torch.zeros_like(ay))
    # a batch mixing a real profile and a zero-strength one (how "no subhalo" is encoded)
    live = _random_kwargs(name, np.random.default_rng(3), 1)
    mixed = {k: torch.tensor([live[k], ZERO_STRENGTH[name][k]], dtype=dtype) for k in ZERO_STRENGTH[name]}
    bx, by = PROFILES[name](gx.expand(2, 11, 11), gy.expand(2, 11, 11), **mixed)
    assert torch.isfinite(bx).all() and torch.isfinite(by).all()
    assert bx[0].abs().max() > 0
    assert torch.equal(bx[1], torch.zeros_like(bx[1])) and torch.equal(by[1], torch.zeros_like(by[1]))


def test_composite_ray_shooting_matches_lenstronomy() -> None:
    rng = np.random.default_rng(99)
    names = ["SIE", "SHEAR", "TNFW"]
    lens = LensModel(names)
    x, y = _points(rng)
    for _ in range(6):
        kwargs = [_random_kwargs(n, rng, 1) for n in names]
        ref_x, ref_y = lens.ray_shooting(x.copy(), y.copy(), kwargs)
        for dtype in (torch.float64, torch.float32):
            bx, by = ray_shoot(torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype), names, kwargs)
            dev = max(np.abs(bx.double().numpy() - ref_x).max(), np.abs(by.double().numpy() - ref_y).max())
            assert dev < TOL[dtype]
        ax, _ = alpha_total(torch.tensor(x), torch.tensor(y), names, kwargs)
        assert np.abs(ax.numpy() - lens.alpha(x.copy(), y.copy(), kwargs)[0]).max() < 1e-6


def test_epl_gamma_two_equals_sie() -> None:
    x = torch.linspace(-3, 3, 101, dtype=torch.float64)
    y = 0.7 * torch.flip(x, [0]) + 0.1
    kw = dict(theta_E=1.2, e1=0.15, e2=-0.2, center_x=0.1, center_y=-0.2)
    sie = PROFILES["SIE"](x, y, **kw)
    epl = PROFILES["EPL"](x, y, gamma=2.0, **kw)
    torch.testing.assert_close(epl[0], sie[0], rtol=0, atol=1e-8)
    torch.testing.assert_close(epl[1], sie[1], rtol=0, atol=1e-8)


def test_unknown_profile_names_it_and_lists_valid_ones() -> None:
    x = torch.zeros(1, 2)
    with pytest.raises(ConfigError, match=r"'PJAFFE'.*SIE"):
        ray_shoot(x, x, ["SIE", "PJAFFE"], [dict(theta_E=1.0, e1=0.0, e2=0.0), {}])
    with pytest.raises(ConfigError, match="kwargs_list"):
        alpha_total(x, x, ["SIS"], [])


@pytest.mark.parametrize("name", ["NFW", "TNFW"])
def test_halo_profiles_near_the_centre_match_lenstronomy(name: str) -> None:
    """Radii from 1e-7 Rs to 10 Rs: lenstronomy's tiny cores (NFW 1e-6 Rs, TNFW 1e-3 Rs) are reproduced."""
    kw = dict(Rs=0.4, alpha_Rs=0.8, center_x=0.1, center_y=-0.2)
    if name == "TNFW":
        kw["r_trunc"] = 2.0
    r = kw["Rs"] * np.logspace(-7, 1, 400)
    ang = np.linspace(0, 6 * np.pi, 400)
    x, y = kw["center_x"] + r * np.cos(ang), kw["center_y"] + r * np.sin(ang)
    ref_x, ref_y = LensModel([name]).alpha(x.copy(), y.copy(), [kw])
    for dtype in (torch.float64, torch.float32):
        ax, ay = PROFILES[name](torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype), **kw)
        dev = max(np.abs(ax.double().numpy() - ref_x).max(), np.abs(ay.double().numpy() - ref_y).max())
        assert dev < TOL[dtype] / 10


def test_nfw_small_radius_series_is_continuous() -> None:
    """The small-x series of g(x)/x^2 joins the closed form at x = 1e-2 (float64)."""
    from lensml.sim.backends.torch_deflections import _nfw_g_over_x2

    x = torch.tensor([1e-2 * (1 - 1e-12), 1e-2], dtype=torch.float64)
    below, above = _nfw_g_over_x2(x)
    assert abs(float(below / above) - 1) < 1e-9
