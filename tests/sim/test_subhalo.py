"""Subhalo mass (M200, M_sun) -> angular lens parameters, against lenstronomy's LensCosmo and astropy."""

from __future__ import annotations

import astropy.constants as ac
import astropy.units as u
import numpy as np
import pytest
import torch

from lensml.errors import ConfigError
from lensml.sim.backends.torch_lens import PROFILES
from lensml.sim.cosmology import get_cosmology, lens_cosmo, lens_distances
from lensml.sim.subhalo import concentration_duffy08, sis_sigma_v_kms, subhalo_kwargs

Z_L, Z_S = 0.5, 2.0
MASSES = np.array([1e7, 3e7, 1e8, 1e9, 1e10, 1e11])


@pytest.mark.parametrize("profile", ["NFW", "TNFW"])
def test_nfw_angles_match_lenscosmo(profile: str) -> None:
    kw = subhalo_kwargs(profile, MASSES, Z_L, Z_S, tau_trunc=7.0)
    ref = lens_cosmo(Z_L, Z_S)
    c = concentration_duffy08(MASSES, Z_L, get_cosmology().h)
    rs_ref, alpha_ref = ref.nfw_physical2angle(MASSES, c)
    np.testing.assert_allclose(kw["Rs"], rs_ref, rtol=1e-6, atol=0)
    np.testing.assert_allclose(kw["alpha_Rs"], alpha_ref, rtol=1e-6, atol=0)
    if profile == "TNFW":
        np.testing.assert_allclose(kw["r_trunc"], 7.0 * rs_ref, rtol=1e-6)
    # fixed concentration, another cosmology and redshift pair
    kw = subhalo_kwargs(profile, 1e9, 0.3, 1.2, cosmology="WMAP9", concentration=15.0)
    rs_ref, alpha_ref = lens_cosmo(0.3, 1.2, "WMAP9").nfw_physical2angle(1e9, 15.0)
    assert kw["Rs"] == pytest.approx(rs_ref, rel=1e-6)
    assert kw["alpha_Rs"] == pytest.approx(alpha_ref, rel=1e-6)


def test_duffy08_relation_values() -> None:
    h = get_cosmology().h
    # at the pivot mass 2e12 M_sun/h and z = 0 the relation returns A
    assert concentration_duffy08(2e12 / h, 0.0, h) == pytest.approx(5.71)
    assert concentration_duffy08(2e12 / h, 1.0, h) == pytest.approx(5.71 * 2.0**-0.47)


def test_sis_theta_e_matches_lenscosmo_and_independent_formula() -> None:
    dist = lens_distances(Z_L, Z_S)
    kw = subhalo_kwargs("SIS", MASSES, Z_L, Z_S)
    sigma_v = sis_sigma_v_kms(MASSES, dist)
    np.testing.assert_allclose(kw["theta_E"], lens_cosmo(Z_L, Z_S).sis_sigma_v2theta_E(sigma_v), rtol=1e-6)
    # independently: astropy distances, theta_E = 4 pi (sigma_v / c)^2 D_ls / D_s
    cosmo = get_cosmology("Planck18")
    d_s = cosmo.angular_diameter_distance(Z_S)
    d_ls = cosmo.angular_diameter_distance(Z_L, Z_S)
    theta = (4 * np.pi * (sigma_v * u.km / u.s / ac.c) ** 2 * d_ls / d_s).decompose() * u.rad
    np.testing.assert_allclose(kw["theta_E"], theta.to_value(u.arcsec), rtol=1e-6)
    # sigma_v from M200 with astropy's own constants and rho_crit (lenstronomy constants differ by < 4e-4)
    rho_c = cosmo.critical_density(Z_L)
    r200 = ((3 * MASSES * u.M_sun / (800 * np.pi * rho_c)) ** (1 / 3)).to(u.m)
    sigma_astropy = np.sqrt(ac.G * MASSES * u.M_sun / (2 * r200)).to_value(u.km / u.s)
    np.testing.assert_allclose(sigma_v, sigma_astropy, rtol=1e-3)
    # a Milky-Way-like 1e12 M_sun halo has sigma_v ~ 100-200 km/s
    assert 80 < float(sis_sigma_v_kms(1e12, dist)) < 250


@pytest.mark.parametrize("profile", ["SIS", "NFW", "TNFW"])
def test_strength_grows_with_mass(profile: str) -> None:
    kw = subhalo_kwargs(profile, MASSES, Z_L, Z_S)
    strength = kw["theta_E"] if profile == "SIS" else kw["alpha_Rs"]
    assert np.all(np.diff(strength) > 0)
    if profile != "SIS":
        assert np.all(np.diff(kw["Rs"]) > 0)
    # deflection one arcsec away grows with mass too
    x = torch.tensor([[1.0]], dtype=torch.float64).expand(len(MASSES), 1)
    batch = {k: torch.as_tensor(v) for k, v in kw.items()}
    ax, _ = PROFILES[profile](x, torch.zeros_like(x), **batch)
    assert torch.all(torch.diff(ax[:, 0]) > 0)


@pytest.mark.parametrize("profile", ["SIS", "NFW", "TNFW"])
def test_zero_mass_gives_finite_zero_strength(profile: str) -> None:
    kw = subhalo_kwargs(profile, np.array([0.0, 1e9]), Z_L, Z_S, center_x=0.3, center_y=np.array([0.1, -0.1]))
    for v in kw.values():
        assert np.all(np.isfinite(v)) and np.shape(v) == (2,)
    assert kw["center_x"].tolist() == [0.3, 0.3] and kw["center_y"].tolist() == [0.1, -0.1]
    if profile == "SIS":
        assert kw["theta_E"][0] == 0.0
    else:
        assert kw["alpha_Rs"][0] == 0.0 and kw["Rs"][0] > 0
    grid = torch.linspace(-1, 1, 9, dtype=torch.float64)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    ax, ay = PROFILES[profile](gx.expand(2, 9, 9), gy.expand(2, 9, 9), **kw)
    assert torch.equal(ax[0], torch.zeros_like(ax[0])) and torch.equal(ay[0], torch.zeros_like(ay[0]))
    assert ax[1].abs().max() > 0
    scalar = subhalo_kwargs(profile, 0.0, Z_L, Z_S)
    assert all(isinstance(v, float) for v in scalar.values())


def test_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="subhalo.mass"):
        subhalo_kwargs("NFW", -1e8, Z_L, Z_S)
    with pytest.raises(ConfigError, match="subhalo.mass"):
        subhalo_kwargs("SIS", np.array([1e8, np.nan]), Z_L, Z_S)
    with pytest.raises(ConfigError, match="lens.z_source"):
        subhalo_kwargs("NFW", 1e8, 1.0, 1.0)
    with pytest.raises(ConfigError, match="lens.z_source"):
        subhalo_kwargs("SIS", 1e8, 1.0, 0.5)
    with pytest.raises(ConfigError, match="subhalo.profile.*TNFW"):
        subhalo_kwargs("PJAFFE", 1e8, Z_L, Z_S)
    with pytest.raises(ConfigError, match="subhalo.tau_trunc"):
        subhalo_kwargs("TNFW", 1e8, Z_L, Z_S, tau_trunc=0.0)
    with pytest.raises(ConfigError, match="subhalo.concentration"):
        subhalo_kwargs("NFW", 1e8, Z_L, Z_S, concentration=-3.0)
    with pytest.raises(ConfigError, match="subhalo.concentration"):
        subhalo_kwargs("NFW", 1e8, Z_L, Z_S, concentration="ludlow16")
    with pytest.raises(ConfigError, match="Planck18"):
        get_cosmology("Planck99")
