"""Where a subhalo sits in its host, how the host truncates it, and its masses (physical units: kpc, M_sun).

Host: the macro lens taken as a singular isothermal sphere (SIS) with the sample's Einstein radius theta_E:
sigma_host^2 = c^2 theta_E D_s / (4 pi D_ls), M_host(<r) = 2 sigma_host^2 r / G, and its r200 w.r.t.
rho_crit(z_lens): r200^2 = 3 sigma_host^2 / (400 pi G rho_crit). Ellipticity, shear and the EPL slope are
ignored here (they change M_host(<r) by tens of per cent at most near theta_E).

3D position: the subhalo's projected distance R (kpc) from the lens centre is the drawn image position; its
line-of-sight offset z is drawn from the 3D number density n(r) of subhaloes given R, inside r_max =
``depth_r_max_r200`` x r200_host (``DEPTH_PRIORS``):

- 'uniform': n = const inside r_max (the cored, anti-biased subhalo distribution of N-body hosts, Springel
  et al. 2008): z uniform in [-Z, Z], Z = sqrt(r_max^2 - R^2);
- 'isothermal': n ~ r^-2 (subhaloes tracing the host's mass): p(z) ~ 1 / (R^2 + z^2) on [-Z, Z], i.e.
  z = R tan((2u - 1) arctan(Z / R)).

r3D = sqrt(R^2 + z^2).

Tidal (Jacobi) radius: for a subhalo on a circular orbit at r3D, the tidal radius r_t is where the
subhalo's own pull equals the tidal plus centrifugal acceleration, G m(<r_t) / r_t^3 = Omega^2 - d2Phi/dr2
(King 1962; Binney & Tremaine 2008, eq. 8.106). With Omega^2 = G M(r)/r^3 and
d2Phi/dr2 = G M(r)/r^3 (dlnM/dlnr - 2):

    r_t = r3D [ m(<r_t) / ((3 - dlnM/dlnr) M_host(<r3D)) ]^(1/3),

i.e. the point-mass Jacobi radius (factor 3) for dlnM/dlnr = 0 and, for the isothermal host (dlnM/dlnr = 1),
r_t^3 = m(<r_t) r3D^3 / (2 M_host(<r3D)) = G m(<r_t) r3D^2 / (4 sigma_host^2). m(<r_t) is the untruncated
NFW mass inside r_t (the subhalo before stripping); the implicit equation has one root, found by bisection
in log r_t (``jacobi_radius_kpc``). r_t is capped at the subhalo's own r200 (tau <= c).

Masses (``subhalo_masses``): M200 (the label mass), the 3D mass inside the truncation radius, and the
projected (cylinder) masses within 1 kpc and within 0.1 arcsec, of the profile exactly as rendered:
TNFW of Baltz, Marshall & Oguri (2009) in closed form (as lenstronomy's ``TNFW.mass_2d`` / ``mass_3d``),
NFW (``NFW.mass_2d``; its line-of-sight integral converges) and the untruncated SIS (M_2D = pi Sigma_crit
theta_E R, consistent with its deflection).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from lenstronomy.Util import constants as const

from lensml.errors import ConfigError
from lensml.sim.cosmology import LensDistances

TRUNCATIONS: tuple[str, ...] = ("fixed", "tidal")
DEPTH_PRIORS: tuple[str, ...] = ("uniform", "isothermal")
KPC_PER_MPC = 1000.0
#: Projected radii of the metadata masses.
M_PROJ_RADIUS_KPC = 1.0
M_PROJ_RADIUS_ARCSEC = 0.1
_BISECT_STEPS = 64


def kpc_per_arcsec(dist: LensDistances) -> float:
    """Physical kpc per arcsec in the lens plane."""
    return dist.d_l_mpc * KPC_PER_MPC * const.arcsec


def host_sigma_v_kms(theta_e_arcsec: float | np.ndarray, dist: LensDistances) -> np.ndarray:
    """Velocity dispersion (km/s) of the SIS of Einstein radius theta_E: c sqrt(theta_E D_s / (4 pi D_ls))."""
    theta = np.asarray(theta_e_arcsec, dtype=np.float64) * const.arcsec
    return const.c * np.sqrt(theta * dist.d_s_mpc / (4.0 * math.pi * dist.d_ls_mpc)) / 1000.0


def host_r200_kpc(sigma_v_kms: float | np.ndarray, dist: LensDistances) -> np.ndarray:
    """r200 (kpc) of an SIS: 2 sigma^2 r / G = 200 rho_c 4/3 pi r^3, so r^2 = 3 sigma^2 / (400 pi G rho_c)."""
    sigma = np.asarray(sigma_v_kms, dtype=np.float64) * 1000.0
    rho_c = dist.rho_crit_lens_msun_mpc3 * const.M_sun / const.Mpc**3  # kg / m^3
    return np.sqrt(3.0 * sigma**2 / (400.0 * math.pi * const.G * rho_c)) / const.Mpc * KPC_PER_MPC


def host_mass_3d_msun(r_kpc: float | np.ndarray, sigma_v_kms: float | np.ndarray) -> np.ndarray:
    """3D mass (M_sun) of the SIS host inside r: 2 sigma^2 r / G."""
    sigma = np.asarray(sigma_v_kms, dtype=np.float64) * 1000.0
    r_m = np.asarray(r_kpc, dtype=np.float64) * const.Mpc / KPC_PER_MPC
    return 2.0 * sigma**2 * r_m / const.G / const.M_sun


def depth_kpc(
    u: np.ndarray, r_proj_kpc: np.ndarray, r_max_kpc: np.ndarray, prior: str
) -> np.ndarray:
    """Line-of-sight offset z (kpc) from a uniform ``u`` in (0, 1) by the inverse CDF of ``prior`` given R."""
    r_proj = np.asarray(r_proj_kpc, dtype=np.float64)
    z_max = np.sqrt(np.clip(np.asarray(r_max_kpc, dtype=np.float64) ** 2 - r_proj**2, 0.0, None))
    s = 2.0 * np.asarray(u, dtype=np.float64) - 1.0
    if prior == "uniform":
        return z_max * s
    if prior == "isothermal":
        safe_r = np.where(r_proj > 0, r_proj, 1.0)
        z = safe_r * np.tan(s * np.arctan(z_max / safe_r))
        return np.where(r_proj > 0, z, z_max * s)  # R = 0: the limit is uniform in z... degenerate anyway
    raise ConfigError(f"subhalo.depth.prior={prior!r} is unknown; use one of {list(DEPTH_PRIORS)}.")


def nfw_mu(x: np.ndarray) -> np.ndarray:
    """ln(1 + x) - x / (1 + x): NFW 3D mass inside x = r / r_s in units of 4 pi rho0 r_s^3."""
    x = np.asarray(x, dtype=np.float64)
    return np.log1p(x) - x / (1.0 + x)


def solve_jacobi_radius_kpc(
    r3d_kpc: np.ndarray,
    m_host_msun: np.ndarray,
    enclosed_msun: Callable[[np.ndarray], np.ndarray],
    slope_host: float = 1.0,
    lo_kpc: float = 1e-7,
    hi_kpc: float = 1e7,
) -> np.ndarray:
    """Root r_t of r_t^3 (3 - slope_host) M_host(<r3D) = enclosed(r_t) r3D^3, by bisection in log r_t.

    ``enclosed`` (kpc -> M_sun, vectorised, non-decreasing with enclosed(r)/r^3 decreasing) is the subhalo's
    mass inside r; ``slope_host`` = dlnM_host/dlnr at r3D (1 for an isothermal host, 0 for a point mass).
    """
    r3d = np.asarray(r3d_kpc, dtype=np.float64)
    scale = r3d**3 / ((3.0 - slope_host) * np.asarray(m_host_msun, dtype=np.float64))
    lo = np.full(r3d.shape, math.log(lo_kpc))
    hi = np.full(r3d.shape, math.log(hi_kpc))
    for _ in range(_BISECT_STEPS):
        mid = 0.5 * (lo + hi)
        r = np.exp(mid)
        inside = r**3 < scale * enclosed_msun(r)  # the subhalo still dominates at r: r_t is further out
        lo = np.where(inside, mid, lo)
        hi = np.where(inside, hi, mid)
    return np.exp(0.5 * (lo + hi))


def jacobi_radius_kpc(
    rho0_msun_kpc3: np.ndarray, rs_kpc: np.ndarray, r3d_kpc: np.ndarray, sigma_host_kms: np.ndarray
) -> np.ndarray:
    """Tidal radius (kpc) of an NFW subhalo (rho0, r_s) at r3D in the SIS host of dispersion sigma_host."""
    m_scale = 4.0 * math.pi * np.asarray(rho0_msun_kpc3) * np.asarray(rs_kpc) ** 3
    rs = np.asarray(rs_kpc, dtype=np.float64)
    return solve_jacobi_radius_kpc(
        r3d_kpc, host_mass_3d_msun(r3d_kpc, sigma_host_kms), lambda r: m_scale * nfw_mu(r / rs)
    )


# ---------------------------------------------------------------------------------------------------------
# enclosed masses (units of 4 pi rho0 r_s^3 for NFW / TNFW; x = r / r_s, tau = r_t / r_s)
# ---------------------------------------------------------------------------------------------------------


def _nfw_f(x: np.ndarray) -> np.ndarray:
    """arccosh(1/x)/sqrt(1-x^2) (x < 1), arccos(1/x)/sqrt(x^2-1) (x > 1), 1 at x = 1 (BMO09 F(x))."""
    x = np.asarray(x, dtype=np.float64)
    out = np.ones_like(x)
    lo, hi = x < 1.0 - 1e-8, x > 1.0 + 1e-8
    out[lo] = np.arccosh(1.0 / x[lo]) / np.sqrt(1.0 - x[lo] ** 2)
    out[hi] = np.arccos(1.0 / x[hi]) / np.sqrt(x[hi] ** 2 - 1.0)
    near = ~(lo | hi)  # F(x) ~ 1 - 2 (x - 1) / 3 around 1
    out[near] = 1.0 - 2.0 * (x[near] - 1.0) / 3.0
    return out


def nfw_mass_2d_unit(x: np.ndarray) -> np.ndarray:
    """NFW projected mass inside R = x r_s over 4 pi rho0 r_s^3: ln(x/2) + F(x)."""
    x = np.asarray(x, dtype=np.float64)
    return np.log(x / 2.0) + _nfw_f(x)


def tnfw_mass_2d_unit(x: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """TNFW (BMO09) projected mass inside R = x r_s over 4 pi rho0 r_s^3 (lenstronomy ``TNFW._g``)."""
    x, t = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(tau, np.float64))
    t2, root = t**2, np.sqrt(t**2 + x**2)
    log_l = np.log(x / (t + root))
    return (
        t2
        / (t2 + 1.0) ** 2
        * (
            (t2 + 1.0 + 2.0 * (x**2 - 1.0)) * _nfw_f(x)
            + t * math.pi
            + (t2 - 1.0) * np.log(t)
            + root * (-math.pi + log_l * (t2 - 1.0) / t)
        )
    )


def tnfw_mass_3d_unit(x: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """TNFW (BMO09, rho_NFW tau^2/(tau^2 + x^2)) 3D mass inside r = x r_s over 4 pi rho0 r_s^3.

    tau^2/(tau^2+1)^2 [2 tau arctan(x/tau) - x (tau^2+1)/(1+x) + (tau^2-1) ln(tau (1+x) / sqrt(tau^2+x^2))];
    tends to ``nfw_mu`` as tau -> infinity.
    """
    x, t = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(tau, np.float64))
    t2 = t**2
    return (
        t2
        / (t2 + 1.0) ** 2
        * (
            2.0 * t * np.arctan(x / t)
            - x * (t2 + 1.0) / (1.0 + x)
            + (t2 - 1.0) * np.log(t * (1.0 + x) / np.sqrt(t2 + x**2))
        )
    )


def median_depth_r3d_kpc(
    r_proj_kpc: float, theta_e_arcsec: float, dist: LensDistances, prior: str, r_max_r200: float
) -> float:
    """r3D (kpc) of a subhalo at projected R whose |z| is the median of the depth prior (u = 3/4)."""
    r_max = r_max_r200 * host_r200_kpc(host_sigma_v_kms(theta_e_arcsec, dist), dist)
    z = depth_kpc(np.array([0.75]), np.array([r_proj_kpc]), np.array([r_max]), prior)
    return float(np.hypot(r_proj_kpc, z[0]))
