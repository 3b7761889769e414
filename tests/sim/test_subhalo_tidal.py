"""Subhalo concentration, tidal truncation and masses (lensml.sim.subhalo_tidal, subhalo.subhalo_masses):
against lenstronomy (LensCosmo, NFW/TNFW masses and deflections) and analytic limits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LensModel.Profiles.nfw import NFW
from lenstronomy.LensModel.Profiles.tnfw import TNFW
from lenstronomy.Util import constants as const
from scipy.integrate import quad
from scipy.optimize import brentq

from lensml.errors import ConfigError
from lensml.sim import subhalo_tidal as tidal
from lensml.sim.cosmology import get_cosmology, lens_cosmo, lens_distances
from lensml.sim.subhalo import (
    MASS_KEYS,
    TAU_STEPS_PER_DEX,
    concentration_duffy08,
    concentration_moline17,
    r200_mpc,
    subhalo_kwargs,
    subhalo_masses,
    subhalo_structure,
)

Z_L, Z_S = 0.5, 2.0
MASSES = np.array([1e7, 1e8, 1e9, 1e10])


def _dist():
    return lens_distances(Z_L, Z_S)


def test_host_sis_matches_lenscosmo_and_r200_definition() -> None:
    dist = _dist()
    theta = np.array([0.5, 1.0, 1.7])
    sigma = tidal.host_sigma_v_kms(theta, dist)
    np.testing.assert_allclose(sigma, lens_cosmo(Z_L, Z_S).sis_theta_E2sigma_v(theta), rtol=1e-8)
    r200 = tidal.host_r200_kpc(sigma, dist)
    mean_density = tidal.host_mass_3d_msun(r200, sigma) / (4 / 3 * math.pi * (r200 / 1e3) ** 3)
    np.testing.assert_allclose(mean_density, 200 * dist.rho_crit_lens_msun_mpc3, rtol=1e-10)
    assert 300 < float(r200[1]) < 450  # a theta_E = 1" lens at z = 0.5 is a ~1e13 M_sun, ~370 kpc host
    # the kpc scale of the lens plane is astropy's
    kpc = get_cosmology().angular_diameter_distance(Z_L).to_value("kpc") * math.pi / 180 / 3600
    assert tidal.kpc_per_arcsec(dist) == pytest.approx(kpc, rel=1e-6)


@pytest.mark.parametrize("slope, factor", [(1.0, 2.0), (0.0, 3.0)])
def test_jacobi_radius_point_mass_limit(slope: float, factor: float) -> None:
    r3d = np.array([5.0, 20.0, 150.0])
    m_host = np.array([3e11, 1e12, 8e12])
    m_sub = np.array([1e8, 1e9, 3e7])
    r_t = tidal.solve_jacobi_radius_kpc(r3d, m_host, lambda r: m_sub * np.ones_like(r), slope_host=slope)
    np.testing.assert_allclose(r_t, r3d * (m_sub / (factor * m_host)) ** (1 / 3), rtol=1e-12)


def test_jacobi_radius_of_nfw_in_isothermal_host_from_the_force_balance() -> None:
    """Independent route: G m(<r_t) / r_t^3 = Omega^2 - d2Phi/dr2, both from finite differences of the
    host's radial force, m(<r) from lenstronomy's NFW.mass_3d, root by brentq."""
    g_kpc = const.G * const.M_sun / (const.Mpc / 1e3) / 1e6  # G in kpc (km/s)^2 / M_sun
    sigma = 234.0
    force = lambda r: g_kpc * tidal.host_mass_3d_msun(r, sigma) / r**2  # noqa: E731
    rho0, rs = 2.3e7, 0.4  # M_sun / kpc^3, kpc
    for r3d in (6.0, 40.0, 250.0):
        h = 1e-4 * r3d
        omega2 = force(r3d) / r3d
        dphi2 = (force(r3d + h) - force(r3d - h)) / (2 * h)  # d2Phi/dr2 = d(force)/dr
        target = omega2 - dphi2
        balance = lambda r, t=target: g_kpc * NFW().mass_3d(r, rs, rho0) / r**3 - t  # noqa: E731
        expected = brentq(balance, 1e-5, 1e4, xtol=1e-12, rtol=1e-12)
        got = tidal.jacobi_radius_kpc(np.array([rho0]), np.array([rs]), np.array([r3d]), np.array([sigma]))
        assert got[0] == pytest.approx(expected, rel=1e-6)


def test_moline17_values_and_trends() -> None:
    h = get_cosmology().h
    pivot = 1e8 / h  # M200 = 1e8 M_sun/h
    assert concentration_moline17(pivot, 1.0, h) == pytest.approx(19.9)
    assert concentration_moline17(pivot, 0.1, h) == pytest.approx(19.9 * 1.54)
    # 1e10 M_sun/h at x_sub = 1: 19.9 (1 - 0.39 + 0.089^2 2^2 + 0.089^3 2^3)
    expected = 19.9 * (1 - 0.39 + 0.031684 + 0.005639)
    assert concentration_moline17(1e10 / h, 1.0, h) == pytest.approx(expected, rel=1e-4)
    c = concentration_moline17(MASSES, 0.5, h)
    assert np.all(np.diff(c) < 0)  # lighter subhaloes are more concentrated
    assert np.all(concentration_moline17(MASSES, 0.1, h) > c)  # inner subhaloes are more concentrated
    # subhaloes are more concentrated than Duffy's (extrapolated) field haloes at these masses
    assert np.all(c > concentration_duffy08(MASSES, Z_L, h))


def test_depth_priors_inverse_cdf() -> None:
    u = (np.arange(2001) + 0.5) / 2001
    r, r_max = np.full(u.shape, 7.0), np.full(u.shape, 370.0)
    z_max = math.sqrt(370.0**2 - 49.0)
    z = tidal.depth_kpc(u, r, r_max, "uniform")
    np.testing.assert_allclose(z, z_max * (2 * u - 1), rtol=1e-12)
    z = tidal.depth_kpc(u, r, r_max, "isothermal")
    assert np.all(np.diff(z) > 0) and np.all(np.abs(z) <= z_max)
    # CDF of p(z) ~ 1 / (R^2 + z^2) on [-Z, Z]: (arctan(z/R) / arctan(Z/R) + 1) / 2 = u
    np.testing.assert_allclose((np.arctan(z / 7.0) / np.arctan(z_max / 7.0) + 1) / 2, u, rtol=1e-10)
    # by numerical integration of the density: half the subhaloes lie within |z| < z(3/4)
    z34 = float(tidal.depth_kpc(np.array([0.75]), 7.0, 370.0, "isothermal")[0])
    num = quad(lambda t: 1 / (49 + t**2), 0, z34)[0] / quad(lambda t: 1 / (49 + t**2), 0, z_max)[0]
    assert num == pytest.approx(0.5, rel=1e-8)
    with pytest.raises(ConfigError, match="subhalo.depth.prior"):
        tidal.depth_kpc(u, r, r_max, "nfw")


def _lenstronomy_masses(kw: dict, profile: str, r_arcsec: float, i: int) -> tuple[float, float]:
    """(projected mass within r_arcsec, 3D mass inside r_trunc) of sample i from lenstronomy, in M_sun."""
    sc = lens_cosmo(Z_L, Z_S).sigma_crit_angle  # M_sun / arcsec^2
    rs, alpha = kw["Rs"][i], kw["alpha_Rs"][i]
    rho0 = NFW.alpha2rho0(alpha, rs)
    if profile == "NFW":
        return NFW().mass_2d(r_arcsec, rs, rho0) * sc, math.nan
    rt = kw["r_trunc"][i]
    m3d = quad(lambda r: 4 * math.pi * r**2 * TNFW().density(r, rs, rho0, rt), 0, rt, limit=200)[0]
    return TNFW().mass_2d(r_arcsec, rs, rho0, rt) * sc, m3d * sc


@pytest.mark.parametrize(
    "profile, options",
    [
        ("TNFW", dict(concentration="duffy08", truncation="fixed", tau_trunc=5.0)),
        ("TNFW", dict(concentration="moline17", truncation="tidal")),
        ("TNFW", dict(concentration=12.0, tau_trunc=np.array([0.3, 1.0, 1.0 + 1e-9, 40.0]))),
        ("NFW", dict(concentration="moline17", truncation="tidal")),
    ],
)
def test_masses_match_lenstronomy(profile: str, options: dict) -> None:
    r3d, theta = np.array([6.0, 15.0, 60.0, 300.0]), np.full(4, 1.1)
    kw = subhalo_kwargs(profile, MASSES, Z_L, Z_S, r3d_kpc=r3d, host_theta_e=theta, **options)
    meta = subhalo_masses(profile, MASSES, Z_L, Z_S, r3d_kpc=r3d, host_theta_e=theta, **options)
    assert set(meta) == set(MASS_KEYS) and all(v.dtype == np.float64 for v in meta.values())
    kpc = tidal.kpc_per_arcsec(_dist())
    for i in range(len(MASSES)):
        for key, r in (("m_proj_1kpc_msun", 1.0 / kpc), ("m_proj_0p1arcsec_msun", 0.1)):
            m2d, m3d = _lenstronomy_masses(kw, profile, r, i)
            assert meta[key][i] == pytest.approx(m2d, rel=1e-7)
            # the deflection as rendered: alpha(R) = M_2D(<R) / (pi Sigma_crit R) for a round lens
            ax, _ = LensModel([profile]).alpha(kw["center_x"][i] + r, 0.0, [{k: v[i] for k, v in kw.items()}])
            sc = lens_cosmo(Z_L, Z_S).sigma_crit_angle
            assert meta[key][i] == pytest.approx(float(ax) * math.pi * r * sc, rel=1e-5)
        if profile == "TNFW":
            assert meta["m_trunc_msun"][i] == pytest.approx(m3d, rel=1e-7)
            assert meta["tau_trunc"][i] == pytest.approx(kw["r_trunc"][i] / kw["Rs"][i], rel=1e-12)
        else:
            # untruncated NFW: M200, which is lenstronomy's 3D mass inside r200
            r200 = r200_mpc(MASSES[i], _dist()) * 1e3 / kpc
            m200 = NFW().mass_3d_lens(r200, kw["Rs"][i], kw["alpha_Rs"][i]) * sc
            assert meta["m_trunc_msun"][i] == MASSES[i] and m200 == pytest.approx(MASSES[i], rel=1e-7)
            assert np.isnan(meta["tau_trunc"][i])
    rs_kpc = kw["Rs"] * kpc
    np.testing.assert_allclose(meta["c200"], r200_mpc(MASSES, _dist()) * 1e3 / rs_kpc, rtol=1e-10)


def test_sis_masses_and_absent_subhaloes() -> None:
    mass = np.array([0.0, 1e9])
    meta = subhalo_masses("SIS", mass, Z_L, Z_S)
    kw = subhalo_kwargs("SIS", mass, Z_L, Z_S)
    sc = lens_cosmo(Z_L, Z_S).sigma_crit_angle
    assert meta["m_proj_0p1arcsec_msun"][1] == pytest.approx(math.pi * sc * kw["theta_E"][1] * 0.1, rel=1e-10)
    assert meta["m_trunc_msun"][1] == 1e9 and np.isnan(meta["tau_trunc"][1]) and np.isnan(meta["c200"][1])
    for profile in ("SIS", "NFW", "TNFW"):
        meta = subhalo_masses(profile, mass, Z_L, Z_S)
        for key in ("m_trunc_msun", "m_proj_1kpc_msun", "m_proj_0p1arcsec_msun"):
            assert meta[key][0] == 0.0 and meta[key][1] > 0
        assert np.isnan(meta["tau_trunc"][0]) and np.isnan(meta["c200"][0])


def test_tidal_truncation_numbers_and_cap() -> None:
    """A theta_E = 1" host: tau ~ 1-3 for 1e8-1e9 M_sun Moline subhaloes at r3D = 10-20 kpc (issue 10),
    growing with r3D; far out the truncation radius stops at the subhalo's r200 (tau <= c)."""
    dist = _dist()
    r3d = np.array([10.0, 20.0, 100.0, 1e5])
    st = subhalo_structure(
        "TNFW", np.full(4, 1e8), dist, "moline17", "tidal", r3d_kpc=r3d, host_theta_e=np.ones(4)
    )
    assert 0.8 < st.tau[0] < st.tau[1] < 3.0 < st.tau[2] < st.tau[3]
    assert st.tau[3] == pytest.approx(st.c200[3], rel=0.02)  # tau is quantised to 64 steps per decade
    steps = np.log10(st.tau) * TAU_STEPS_PER_DEX
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)  # on the grid (one kernel table each)
    assert st.c200[3] == pytest.approx(float(concentration_moline17(1e8, 1.0, dist.h)))  # x_sub > 1: clipped


def test_errors_name_the_keys() -> None:
    dist = _dist()
    with pytest.raises(ConfigError, match="subhalo.truncation"):
        subhalo_structure("TNFW", MASSES, dist, truncation="king")
    with pytest.raises(ConfigError, match="subhalo.concentration"):
        subhalo_structure("TNFW", MASSES, dist, concentration="diemer19")
    with pytest.raises(ConfigError, match="r3d_kpc"):
        subhalo_kwargs("TNFW", MASSES, Z_L, Z_S, concentration="moline17")
    with pytest.raises(ConfigError, match="subhalo.tau_trunc"):
        subhalo_kwargs("TNFW", MASSES, Z_L, Z_S, tau_trunc=np.array([1.0, -1.0, 1.0, 1.0]))


def test_strongly_truncated_tnfw_deflection_matches_lenstronomy() -> None:
    """tau from 0.03 to 2 (the isothermal depth prior gives tau < 1): the torch TNFW against lenstronomy."""
    import torch

    from lensml.sim.backends.torch_lens import PROFILES

    tau = np.array([0.03, 0.3, 1.0, 2.0])
    kw = subhalo_kwargs("TNFW", MASSES, Z_L, Z_S, tau_trunc=tau, center_x=0.1, center_y=-0.2)
    g = np.linspace(-1.0, 1.0, 41)
    x, y = np.meshgrid(g, g)
    ax, ay = PROFILES["TNFW"](
        torch.as_tensor(x)[None].expand(4, 41, 41),
        torch.as_tensor(y)[None].expand(4, 41, 41),
        **{k: torch.as_tensor(v) for k, v in kw.items()},
    )
    for i in range(4):
        rx, ry = LensModel(["TNFW"]).alpha(x, y, [{k: float(v[i]) for k, v in kw.items()}])
        np.testing.assert_allclose(ax[i].numpy(), rx, atol=1e-10, rtol=1e-7)
        np.testing.assert_allclose(ay[i].numpy(), ry, atol=1e-10, rtol=1e-7)
