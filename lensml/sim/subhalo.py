"""Subhalo mass (M_sun) -> lenstronomy angular lens parameters (arcsec).

Mass definition (all profiles): ``mass_msun`` is **M200**, the mass inside r200, the radius within which the
mean density is 200 times the critical density of the universe at the lens redshift, rho_crit(z_lens), in
physical M_sun (no little h): M200 = 200 rho_crit(z_l) 4/3 pi r200^3.

- 'NFW' / 'TNFW': Navarro-Frenk-White halo with concentration c = r200 / r_s (``CONCENTRATIONS``):
  'duffy08', Duffy et al. (2008, MNRAS 390, L64), Table 1, NFW, M200 (critical), full sample, 0 < z < 2:
  c = 5.71 (M200 / (2e12 M_sun/h))^-0.084 (1 + z_l)^-0.47, fitted to haloes of 1e11-1e15 M_sun/h (so an
  extrapolation at subhalo masses); 'moline17', the subhalo relation of Moliné et al. (2017), which depends on
  the subhalo's 3D distance from the host's centre; or a number. Conversion to (Rs, alpha_Rs) as
  ``lenstronomy.Cosmo.lens_cosmo.LensCosmo.nfw_physical2angle``.
- 'TNFW': the same NFW halo truncated as in Baltz, Marshall & Oguri (2009), rho_NFW r_t^2 / (r^2 + r_t^2),
  with r_trunc = tau * Rs: truncation 'fixed' (tau = ``tau_trunc``, 5 by default) or 'tidal' (the Jacobi
  radius in the host, ``lensml.sim.subhalo_tidal``). alpha_Rs keeps the untruncated NFW normalisation
  (lenstronomy). The config defaults and why: docs/lens_physics.md.
- 'SIS': singular isothermal sphere with the same M200: r200 from M200 = 200 rho_crit(z_l) 4/3 pi r200^3,
  M(<r) = 2 sigma_v^2 r / G  =>  sigma_v^2 = G M200 / (2 r200), and theta_E = 4 pi (sigma_v / c)^2 D_ls / D_s
  (as ``LensCosmo.sis_sigma_v2theta_E``).

Mass 0 encodes "no subhalo": it gives zero-strength kwargs (theta_E = 0 or alpha_Rs = 0) with a finite Rs and
r_trunc (those of a 1e8 M_sun halo), i.e. exactly zero deflection. Physical constants follow lenstronomy's
(see ``lensml.sim.cosmology``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from lenstronomy.Util import constants as const

from lensml.errors import ConfigError
from lensml.sim.cosmology import DEFAULT_COSMOLOGY, LensDistances, lens_distances
from lensml.sim.profiles import names_with_role

#: Subhalo profiles: those of role "subhalo" in the registry (``lensml.sim.profiles``).
SUBHALO_PROFILES: tuple[str, ...] = names_with_role("subhalo")
#: Per-sample metadata of ``subhalo_masses`` (beside M200, ``mass_msun``).
MASS_KEYS: tuple[str, ...] = (
    "m_trunc_msun",
    "m_proj_1kpc_msun",
    "m_proj_0p1arcsec_msun",
    "tau_trunc",
    "c200",
)
DEFAULT_TAU_TRUNC = 5.0
DEFAULT_CONCENTRATION = "duffy08"
_PLACEHOLDER_MASS_MSUN = 1e8  # sets the (irrelevant) Rs of a zero-mass subhalo

# Duffy et al. (2008) Table 1, NFW, M200 (critical), full sample, z = 0-2
_DUFFY08 = dict(A=5.71, B=-0.084, C=-0.47, M_pivot_msun_h=2e12)
# Moliné et al. (2017) eq. 6 and its fitted parameters (c200 of subhaloes at z = 0)
_MOLINE17 = dict(c0=19.9, a=(-0.195, 0.089, 0.089), b=-0.54, M_pivot_msun_h=1e8)
_X_SUB_MIN = 1e-3  # x_sub below this (r3D < 0.3 kpc) is clipped: the fit ends well above it
CONCENTRATIONS: tuple[str, ...] = ("duffy08", "moline17")


#: Tidal tau = r_t / r_s is rounded to this many steps per decade (a factor 1.037, +-1.8 %): the compiled
#: kernels tabulate each TNFW by its tau, so a continuous tau would build (and keep) one table per subhalo.
TAU_STEPS_PER_DEX = 64


def quantise_tau(tau: np.ndarray) -> np.ndarray:
    """``tau`` rounded to the grid 10^(k / TAU_STEPS_PER_DEX) (the tidal radius is not known better)."""
    t = np.asarray(tau, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = 10.0 ** (np.round(np.log10(t) * TAU_STEPS_PER_DEX) / TAU_STEPS_PER_DEX)
    return np.where(np.isfinite(t) & (t > 0), q, t)


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


def concentration_moline17(mass_msun: float | np.ndarray, x_sub: float | np.ndarray, h: float) -> np.ndarray:
    """Moliné et al. (2017, MNRAS 466, 4974) eq. 6, subhalo c200(M200, x_sub) at z = 0 (VL-II + ELVIS fit):
    c0 [1 + sum_{i=1..3} (a_i log10(M200 / (1e8 M_sun/h)))^i] [1 + b log10 x_sub], x_sub = r3D / R_host,
    clipped to [1e-3, 1] (the fit covers subhaloes inside the host; beyond, c keeps its x_sub = 1 value)."""
    p = _MOLINE17
    log_m = np.log10(np.asarray(mass_msun, dtype=np.float64) * h / p["M_pivot_msun_h"])
    series = 1.0 + sum((a * log_m) ** (i + 1) for i, a in enumerate(p["a"]))
    x = np.clip(np.asarray(x_sub, dtype=np.float64), _X_SUB_MIN, 1.0)
    return p["c0"] * series * (1.0 + p["b"] * np.log10(x))


def _concentration(
    concentration: float | str | np.ndarray,
    mass_msun: np.ndarray,
    dist: LensDistances,
    x_sub: np.ndarray | None = None,
) -> np.ndarray:
    if isinstance(concentration, str):
        name = concentration.lower()
        if name == "duffy08":
            return concentration_duffy08(mass_msun, dist.z_lens, dist.h)
        if name == "moline17":
            if x_sub is None:
                raise ConfigError(
                    "subhalo.concentration='moline17' needs the subhalo's 3D distance from the host "
                    "(r3d_kpc and host_theta_e); use 'duffy08' or a number without them."
                )
            return concentration_moline17(mass_msun, x_sub, dist.h)
        raise ConfigError(
            f"Unknown concentration relation {concentration!r} (config key subhalo.concentration); "
            f"use one of {list(CONCENTRATIONS)} or a positive number."
        )
    c = np.asarray(concentration, dtype=np.float64)
    if not np.all(np.isfinite(c)) or np.any(c <= 0):
        raise ConfigError(
            f"subhalo.concentration = {concentration!r} must be > 0 (c = r200 / r_s); "
            "use e.g. 10, 'duffy08' or 'moline17'."
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


def nfw_rho0_rs(
    mass_msun: float | np.ndarray, c: float | np.ndarray, dist: LensDistances
) -> tuple[np.ndarray, np.ndarray]:
    """(rho0 in M_sun/Mpc^3, r_s in Mpc) of an NFW halo of M200 ``mass_msun`` (M_sun) and concentration c."""
    c = np.asarray(c, dtype=np.float64)
    rs_mpc = r200_mpc(mass_msun, dist) / c
    rho0 = 200.0 / 3.0 * dist.rho_crit_lens_msun_mpc3 * c**3 / (np.log1p(c) - c / (1.0 + c))
    return rho0, rs_mpc


def nfw_angles(
    mass_msun: float | np.ndarray, c: float | np.ndarray, dist: LensDistances
) -> tuple[np.ndarray, np.ndarray]:
    """(Rs, alpha_Rs) in arcsec of an NFW halo of M200 ``mass_msun`` (M_sun) and concentration ``c``."""
    rho0, rs_mpc = nfw_rho0_rs(mass_msun, c, dist)
    alpha_rs_phys = rho0 * 4.0 * rs_mpc**2 * (1.0 + math.log(0.5))  # M_sun / Mpc
    to_arcsec = 1.0 / dist.d_l_mpc / const.arcsec
    return rs_mpc * to_arcsec, alpha_rs_phys / sigma_crit_msun_mpc2(dist) * to_arcsec


def _out(a: np.ndarray, scalar: bool) -> float | np.ndarray:
    return float(a) if scalar else a


def _check_positive(value: float | np.ndarray, key: str, example: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
        ok = bool(np.all(np.isfinite(arr)) and np.all(arr > 0))
    except (TypeError, ValueError):
        arr, ok = np.zeros(()), False
    if not ok:
        raise ConfigError(f"{key} = {value!r} must be > 0; use e.g. {example}.")
    return arr


@dataclass(frozen=True)
class SubhaloStructure:
    """Per-sample structure of NFW/TNFW subhaloes (arrays of the mass's shape).

    c200: concentration; tau: r_trunc / r_s (TNFW; inf for NFW); rho0 (M_sun/Mpc^3) and rs_mpc of the NFW;
    live: mass > 0 (zero-mass samples carry the structure of a ``_PLACEHOLDER_MASS_MSUN`` halo).
    """

    c200: np.ndarray
    tau: np.ndarray
    rho0: np.ndarray
    rs_mpc: np.ndarray
    live: np.ndarray


def subhalo_structure(
    profile: str,
    mass: np.ndarray,
    dist: LensDistances,
    concentration: float | str | np.ndarray = DEFAULT_CONCENTRATION,
    truncation: str = "fixed",
    tau_trunc: float | np.ndarray = DEFAULT_TAU_TRUNC,
    r3d_kpc: np.ndarray | None = None,
    host_theta_e: np.ndarray | None = None,
) -> SubhaloStructure:
    """Concentration and truncation of NFW/TNFW subhaloes of M200 ``mass`` (M_sun, >= 0), vectorised.

    ``truncation``: 'fixed' (tau = ``tau_trunc``) or 'tidal' (tau = Jacobi radius / r_s at ``r3d_kpc`` in the
    SIS host of Einstein radius ``host_theta_e`` arcsec; ``lensml.sim.subhalo_tidal``). 'moline17' and
    'tidal' need ``r3d_kpc`` and ``host_theta_e``.
    """
    from lensml.sim import subhalo_tidal as tidal

    if truncation not in tidal.TRUNCATIONS:
        raise ConfigError(
            f"subhalo.truncation={truncation!r} is unknown; use one of {list(tidal.TRUNCATIONS)}."
        )
    live = mass > 0
    mass_for_shape = np.where(live, mass, _PLACEHOLDER_MASS_MSUN)
    need_host = truncation == "tidal" or (
        isinstance(concentration, str) and concentration.lower() == "moline17"
    )
    x_sub = sigma_host = r3d = None
    if need_host:
        if r3d_kpc is None or host_theta_e is None:
            raise ConfigError(
                "subhalo.truncation='tidal' and subhalo.concentration='moline17' need the subhalo's 3D "
                "position (r3d_kpc) and the host's theta_E; pass them or use 'fixed' / 'duffy08'."
            )
        r3d = np.broadcast_to(np.asarray(r3d_kpc, dtype=np.float64), mass.shape)
        sigma_host = tidal.host_sigma_v_kms(np.broadcast_to(host_theta_e, mass.shape), dist)
        x_sub = r3d / tidal.host_r200_kpc(sigma_host, dist)
    c = _concentration(concentration, mass_for_shape, dist, x_sub)
    rho0, rs_mpc = nfw_rho0_rs(mass_for_shape, c, dist)
    if profile != "TNFW":
        tau = np.full(mass.shape, np.inf)
    elif truncation == "fixed":
        tau = _check_positive(tau_trunc, "subhalo.tau_trunc", str(DEFAULT_TAU_TRUNC))
        tau = np.broadcast_to(tau, mass.shape).astype(np.float64)
    else:
        kpc3 = tidal.KPC_PER_MPC**3
        r_t = tidal.jacobi_radius_kpc(rho0 / kpc3, rs_mpc * tidal.KPC_PER_MPC, r3d, sigma_host)
        tau = quantise_tau(np.minimum(r_t / (rs_mpc * tidal.KPC_PER_MPC), c))  # r_t <= r200 of the subhalo
    return SubhaloStructure(c, tau, rho0, rs_mpc, live)


def subhalo_kwargs(
    profile: str,
    mass_msun: float | np.ndarray,
    z_lens: float,
    z_source: float,
    cosmology: str = DEFAULT_COSMOLOGY,
    concentration: float | str | np.ndarray = DEFAULT_CONCENTRATION,
    tau_trunc: float | np.ndarray = DEFAULT_TAU_TRUNC,
    center_x: float | np.ndarray = 0.0,
    center_y: float | np.ndarray = 0.0,
    truncation: str = "fixed",
    r3d_kpc: float | np.ndarray | None = None,
    host_theta_e: float | np.ndarray | None = None,
) -> dict[str, float | np.ndarray]:
    """lenstronomy kwargs (arcsec) of a subhalo of M200 ``mass_msun`` (M_sun) for 'SIS', 'NFW' or 'TNFW'.

    ``mass_msun`` may be an array (a batch): then every value is an array of its shape; centres broadcast.
    'SIS' -> {theta_E, center_x, center_y}; 'NFW' -> {Rs, alpha_Rs, center_x, center_y};
    'TNFW' -> {Rs, alpha_Rs, r_trunc, center_x, center_y}. Mass 0 -> zero-strength, finite kwargs.
    ``truncation``, ``r3d_kpc`` (kpc) and ``host_theta_e`` (arcsec): see ``subhalo_structure``.
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
    st = subhalo_structure(
        profile, mass, dist, concentration, truncation, tau_trunc, r3d_kpc, host_theta_e
    )
    rs, alpha_rs = nfw_angles(np.where(st.live, mass, _PLACEHOLDER_MASS_MSUN), st.c200, dist)
    alpha_rs = np.where(st.live, alpha_rs, 0.0)
    out = {"Rs": _out(rs, scalar), "alpha_Rs": _out(alpha_rs, scalar)}
    if profile == "TNFW":
        out["r_trunc"] = _out(st.tau * rs, scalar)
    out.update(center_x=_out(cx, scalar), center_y=_out(cy, scalar))
    return out


def subhalo_masses(
    profile: str,
    mass_msun: np.ndarray,
    z_lens: float,
    z_source: float,
    cosmology: str = DEFAULT_COSMOLOGY,
    concentration: float | str | np.ndarray = DEFAULT_CONCENTRATION,
    tau_trunc: float | np.ndarray = DEFAULT_TAU_TRUNC,
    truncation: str = "fixed",
    r3d_kpc: np.ndarray | None = None,
    host_theta_e: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-sample metadata (float64, shape of ``mass_msun``) of the subhaloes as rendered (``MASS_KEYS``).

    ``m_trunc_msun``: 3D mass inside the truncation radius (TNFW: BMO09 profile inside r_t = tau r_s; NFW and
    SIS, untruncated: M200, their mass inside r200); ``m_proj_1kpc_msun`` / ``m_proj_0p1arcsec_msun``:
    projected mass in a cylinder of radius 1 kpc / 0.1 arcsec (NFW/TNFW along the whole line of sight; SIS
    untruncated, pi Sigma_crit theta_E R); ``tau_trunc``: r_t / r_s (TNFW; NaN for NFW and SIS);
    ``c200``: r200 / r_s (NaN for SIS). Samples with mass 0 (no subhalo): masses 0, tau and c NaN.
    """
    from lensml.sim import subhalo_tidal as tidal

    mass = _check_mass(mass_msun)
    dist = lens_distances(float(z_lens), float(z_source), cosmology)
    live = mass > 0
    kpc = tidal.KPC_PER_MPC
    radii_kpc = {
        "m_proj_1kpc_msun": tidal.M_PROJ_RADIUS_KPC,
        "m_proj_0p1arcsec_msun": tidal.M_PROJ_RADIUS_ARCSEC * tidal.kpc_per_arcsec(dist),
    }
    out: dict[str, np.ndarray] = {}
    if profile == "SIS":
        theta_e_kpc = sis_theta_e_arcsec(sis_sigma_v_kms(mass, dist), dist) * tidal.kpc_per_arcsec(dist)
        sigma_crit_kpc2 = sigma_crit_msun_mpc2(dist) / kpc**2
        out["m_trunc_msun"] = mass.copy()
        for key, r in radii_kpc.items():
            out[key] = math.pi * sigma_crit_kpc2 * theta_e_kpc * r
        out["tau_trunc"] = np.full(mass.shape, np.nan)
        out["c200"] = np.full(mass.shape, np.nan)
    else:
        st = subhalo_structure(
            profile, mass, dist, concentration, truncation, tau_trunc, r3d_kpc, host_theta_e
        )
        unit = 4.0 * math.pi * st.rho0 * st.rs_mpc**3  # M_sun
        rs_kpc = st.rs_mpc * kpc
        if profile == "TNFW":
            out["m_trunc_msun"] = unit * tidal.tnfw_mass_3d_unit(st.tau, st.tau)
            for key, r in radii_kpc.items():
                out[key] = unit * tidal.tnfw_mass_2d_unit(r / rs_kpc, st.tau)
            out["tau_trunc"] = st.tau.copy()
        else:
            out["m_trunc_msun"] = mass.copy()
            for key, r in radii_kpc.items():
                out[key] = unit * tidal.nfw_mass_2d_unit(r / rs_kpc)
            out["tau_trunc"] = np.full(mass.shape, np.nan)
        out["c200"] = st.c200.copy()
    for key in MASS_KEYS:
        absent = 0.0 if key.endswith("_msun") else np.nan
        out[key] = np.where(live, np.broadcast_to(out[key], mass.shape), absent).astype(np.float64)
    return out
