"""Subhalo mass (M_sun) -> lenstronomy angular lens parameters (arcsec).

Mass definition (all profiles): ``mass_msun`` is **M200**, the mass inside r200, the radius within which the
mean density is 200 times the critical density of the universe at the lens redshift, rho_crit(z_lens), in
physical M_sun (no little h): M200 = 200 rho_crit(z_l) 4/3 pi r200^3.

- 'NFW' / 'TNFW': Navarro-Frenk-White halo with concentration c = r200 / r_s. Default relation: Duffy et al.
  (2008, MNRAS 390, L64), Table 1, NFW, M200 (critical), full sample, 0 < z < 2:
  c = 5.71 (M200 / (2e12 M_sun/h))^-0.084 (1 + z_l)^-0.47. It was fitted to haloes of 1e11-1e15 M_sun/h, so at
  subhalo masses (1e7-1e10 M_sun) it is an extrapolation; pass a number to fix c instead. Conversion to
  (Rs, alpha_Rs) as ``lenstronomy.Cosmo.lens_cosmo.LensCosmo.nfw_physical2angle``.
- 'TNFW': the same NFW halo truncated as in Baltz, Marshall & Oguri (2009), rho_NFW r_t^2 / (r^2 + r_t^2),
  with r_trunc = tau * Rs. Default tau = 5 (a modelling choice: tidally stripped subhaloes are truncated at a
  few scale radii; tune with ``subhalo.tau_trunc``). alpha_Rs keeps the untruncated NFW normalisation
  (lenstronomy).
- 'SIS': singular isothermal sphere with the same M200: r200 from M200 = 200 rho_crit(z_l) 4/3 pi r200^3,
  M(<r) = 2 sigma_v^2 r / G  =>  sigma_v^2 = G M200 / (2 r200), and theta_E = 4 pi (sigma_v / c)^2 D_ls / D_s
  (as ``LensCosmo.sis_sigma_v2theta_E``).

Mass 0 encodes "no subhalo": it gives zero-strength kwargs (theta_E = 0 or alpha_Rs = 0) with a finite Rs and
r_trunc (those of a 1e8 M_sun halo), i.e. exactly zero deflection. Physical constants follow lenstronomy's
(see ``lensml.sim.cosmology``).
"""

from __future__ import annotations

import math

import numpy as np
from lenstronomy.Util import constants as const

from lensml.errors import ConfigError
from lensml.sim.cosmology import DEFAULT_COSMOLOGY, LensDistances, lens_distances

SUBHALO_PROFILES: tuple[str, ...] = ("SIS", "NFW", "TNFW")
DEFAULT_TAU_TRUNC = 5.0
DEFAULT_CONCENTRATION = "duffy08"
_PLACEHOLDER_MASS_MSUN = 1e8  # sets the (irrelevant) Rs of a zero-mass subhalo

# Duffy et al. (2008) Table 1, NFW, M200 (critical), full sample, z = 0-2
_DUFFY08 = dict(A=5.71, B=-0.084, C=-0.47, M_pivot_msun_h=2e12)


def _check_mass(mass_msun: float | np.ndarray) -> np.ndarray:
    mass = np.asarray(mass_msun, dtype=np.float64)
    if not np.all(np.isfinite(mass)) or np.any(mass < 0):
        raise ConfigError(
            f"Subhalo mass must be finite and >= 0 M_sun, got {mass_msun!r} (config key subhalo.mass_msun / "
            "subhalo.mass_bin); use a positive M200 in M_sun such as 1e8, or 0 for no subhalo."
        )
    return mass


def concentration_duffy08(mass_msun: float | np.ndarray, z_lens: float, h: float) -> np.ndarray:
    """Duffy et al. (2008) c200(M200, z) (full sample, critical overdensity 200); mass in M_sun (no h)."""
    p = _DUFFY08
    return p["A"] * (np.asarray(mass_msun) * h / p["M_pivot_msun_h"]) ** p["B"] * (1.0 + z_lens) ** p["C"]


def _concentration(
    concentration: float | str, mass_msun: np.ndarray, dist: LensDistances
) -> np.ndarray:
    if isinstance(concentration, str):
        if concentration.lower() != DEFAULT_CONCENTRATION:
            raise ConfigError(
                f"Unknown concentration relation {concentration!r} (config key subhalo.concentration); "
                f"use '{DEFAULT_CONCENTRATION}' or a positive number."
            )
        return concentration_duffy08(mass_msun, dist.z_lens, dist.h)
    c = np.asarray(concentration, dtype=np.float64)
    if not np.all(np.isfinite(c)) or np.any(c <= 0):
        raise ConfigError(
            f"subhalo.concentration = {concentration!r} must be > 0 (c = r200 / r_s); "
            "use e.g. 10 or 'duffy08'."
        )
    return np.broadcast_to(c, mass_msun.shape).astype(np.float64)


def r200_mpc(mass_msun: float | np.ndarray, dist: LensDistances) -> np.ndarray:
    """Physical r200 (Mpc) of M200 (M_sun) w.r.t. rho_crit(z_lens)."""
    volume_mpc3 = 3.0 * np.asarray(mass_msun) / (4.0 * math.pi * 200.0 * dist.rho_crit_lens_msun_mpc3)
    return volume_mpc3 ** (1.0 / 3.0)


def sigma_crit_msun_mpc2(dist: LensDistances) -> float:
    """Critical surface density Sigma_crit = c^2 D_s / (4 pi G D_l D_ls) in M_sun / Mpc^2."""
    factor = const.c**2 / (4.0 * math.pi * const.G) * const.Mpc / const.M_sun  # [M_sun / Mpc]
    return dist.d_s_mpc / (dist.d_l_mpc * dist.d_ls_mpc) * factor


def sis_sigma_v_kms(mass_msun: float | np.ndarray, dist: LensDistances) -> np.ndarray:
    """Velocity dispersion (km/s) of the SIS whose M200 is ``mass_msun``: sigma_v^2 = G M200 / (2 r200)."""
    mass = np.asarray(mass_msun, dtype=np.float64)
    r200_m = r200_mpc(mass, dist) * const.Mpc
    safe_r = np.where(r200_m > 0, r200_m, 1.0)
    return np.sqrt(const.G * mass * const.M_sun / (2.0 * safe_r)) / 1000.0


def sis_theta_e_arcsec(sigma_v_kms: float | np.ndarray, dist: LensDistances) -> np.ndarray:
    """SIS Einstein radius (arcsec): theta_E = 4 pi (sigma_v / c)^2 D_ls / D_s."""
    v = np.asarray(sigma_v_kms, dtype=np.float64) * 1000.0
    return 4.0 * math.pi * (v / const.c) ** 2 * dist.d_ls_mpc / dist.d_s_mpc / const.arcsec


def nfw_angles(
    mass_msun: float | np.ndarray, c: float | np.ndarray, dist: LensDistances
) -> tuple[np.ndarray, np.ndarray]:
    """(Rs, alpha_Rs) in arcsec of an NFW halo of M200 ``mass_msun`` (M_sun) and concentration ``c``."""
    c = np.asarray(c, dtype=np.float64)
    rs_mpc = r200_mpc(mass_msun, dist) / c
    rho0 = 200.0 / 3.0 * dist.rho_crit_lens_msun_mpc3 * c**3 / (np.log1p(c) - c / (1.0 + c))  # M_sun/Mpc^3
    alpha_rs_phys = rho0 * 4.0 * rs_mpc**2 * (1.0 + math.log(0.5))  # M_sun / Mpc
    to_arcsec = 1.0 / dist.d_l_mpc / const.arcsec
    return rs_mpc * to_arcsec, alpha_rs_phys / sigma_crit_msun_mpc2(dist) * to_arcsec


def _out(a: np.ndarray, scalar: bool) -> float | np.ndarray:
    return float(a) if scalar else a


def subhalo_kwargs(
    profile: str,
    mass_msun: float | np.ndarray,
    z_lens: float,
    z_source: float,
    cosmology: str = DEFAULT_COSMOLOGY,
    concentration: float | str = DEFAULT_CONCENTRATION,
    tau_trunc: float = DEFAULT_TAU_TRUNC,
    center_x: float | np.ndarray = 0.0,
    center_y: float | np.ndarray = 0.0,
) -> dict[str, float | np.ndarray]:
    """lenstronomy kwargs (arcsec) of a subhalo of M200 ``mass_msun`` (M_sun) for 'SIS', 'NFW' or 'TNFW'.

    ``mass_msun`` may be an array (a batch): then every value is an array of its shape; centres broadcast.
    'SIS' -> {theta_E, center_x, center_y}; 'NFW' -> {Rs, alpha_Rs, center_x, center_y};
    'TNFW' -> {Rs, alpha_Rs, r_trunc, center_x, center_y}. Mass 0 -> zero-strength, finite kwargs.
    """
    if profile not in SUBHALO_PROFILES:
        raise ConfigError(
            f"Unknown subhalo profile {profile!r} (config key subhalo.profile); "
            f"use one of {list(SUBHALO_PROFILES)}."
        )
    mass = _check_mass(mass_msun)
    scalar = mass.ndim == 0
    dist = lens_distances(float(z_lens), float(z_source), cosmology)
    cx = np.broadcast_to(np.asarray(center_x, dtype=np.float64), mass.shape).copy()
    cy = np.broadcast_to(np.asarray(center_y, dtype=np.float64), mass.shape).copy()
    if profile == "SIS":
        theta_e = sis_theta_e_arcsec(sis_sigma_v_kms(mass, dist), dist)
        return {"theta_E": _out(theta_e, scalar), "center_x": _out(cx, scalar), "center_y": _out(cy, scalar)}
    try:
        tau_ok = math.isfinite(float(tau_trunc)) and float(tau_trunc) > 0
    except (TypeError, ValueError):
        tau_ok = False
    if not tau_ok:
        raise ConfigError(
            f"subhalo.tau_trunc = {tau_trunc!r} must be > 0 (r_trunc = tau * Rs); "
            f"use e.g. {DEFAULT_TAU_TRUNC}."
        )
    live = mass > 0
    mass_for_shape = np.where(live, mass, _PLACEHOLDER_MASS_MSUN)
    c = _concentration(concentration, mass_for_shape, dist)
    rs, alpha_rs = nfw_angles(mass_for_shape, c, dist)
    alpha_rs = np.where(live, alpha_rs, 0.0)
    out = {"Rs": _out(rs, scalar), "alpha_Rs": _out(alpha_rs, scalar)}
    if profile == "TNFW":
        out["r_trunc"] = _out(float(tau_trunc) * rs, scalar)
    out.update(center_x=_out(cx, scalar), center_y=_out(cy, scalar))
    return out
