"""Linearised (Fisher / profile-likelihood) detection significance with analytic marginalisation.

Whitened data: ``z = d / sigma`` (d = the subhalo's perturbation of the noiseless data, sigma the per-pixel
noise), nuisance directions ``G = J / sigma`` (J = Jacobian of the data w.r.t. the nuisance parameters at
the smooth model), optional Gaussian prior precision ``P`` on the nuisance (a regularised pixelated source).
The best linear nuisance fit removes what it can explain; what is left is the significance:

    Delta chi^2 = z^T z - b^T (G^T G + P)^+ b,   b = G^T z        (the Schur complement of the Fisher matrix)

which equals ``min_delta |z - G delta|^2 + delta^T P delta`` (``brute_force_delta_chi2``, the test's
reference). With P = 0 it is the squared norm of z's component orthogonal to the span of G; a subhalo of
mass M is detected at ``sqrt(Delta chi^2)`` sigma. Pixelated sources are linear in their pixels, so this is
exactly the analytic marginalisation of semilinear inversion (Warren & Dye 2003; Koopmans 2005; Vegetti &
Koopmans 2009) with a curvature (or gradient) regularisation ``P = lambda D^T D``.
"""

from __future__ import annotations

import numpy as np

_RCOND = 1e-10


def solve_psd(h: np.ndarray, b: np.ndarray, rcond: float = _RCOND) -> np.ndarray:
    """``H^+ b`` for a symmetric positive semi-definite H (eigenvalues below rcond x max dropped)."""
    if h.shape[0] == 0:
        return np.zeros_like(b)
    w, v = np.linalg.eigh(h)
    keep = w > rcond * max(float(w.max()), 1e-300)
    return v[:, keep] @ ((v[:, keep].T @ b) / w[keep, None] if b.ndim == 2 else (v[:, keep].T @ b) / w[keep])


def delta_chi2(z: np.ndarray, g: np.ndarray, prior: np.ndarray | None = None) -> float:
    """``z^T z - b^T (G^T G + P)^+ b`` (module docstring); ``z`` (n,), ``g`` (n, p), ``prior`` (p, p)."""
    total = float(z @ z)
    if g.shape[1] == 0:
        return total
    b = g.T @ z
    h = g.T @ g if prior is None else g.T @ g + prior
    return max(total - float(b @ solve_psd(h, b)), 0.0)


def delta_chi2_from_normal(zz: float, b: np.ndarray, h: np.ndarray, prior: np.ndarray | None = None) -> float:
    """``delta_chi2`` from precomputed ``z^T z``, ``b = G^T z`` and ``H = G^T G`` (reused across masses)."""
    if h.shape[0] == 0:
        return zz
    hh = h if prior is None else h + prior
    return max(zz - float(b @ solve_psd(hh, b)), 0.0)


def delta_chi2_many(
    zz: np.ndarray, b: np.ndarray, h: np.ndarray, prior: np.ndarray | None = None
) -> np.ndarray:
    """``delta_chi2`` of several data vectors sharing G: ``zz`` (k,) = z^T z, ``b`` (p, k) = G^T z, ``h`` =
    G^T G. One Cholesky factorisation (zero columns dropped, a 1e-12 relative ridge), eigen fallback."""
    import scipy.linalg

    if h.shape[0] == 0:
        return np.asarray(zz, dtype=float).copy()
    hh = h if prior is None else h + prior
    diag = np.diag(hh)
    live = diag > 1e-300
    hh, b = hh[np.ix_(live, live)], b[live]
    try:
        scale = np.sqrt(np.diag(hh))
        hs = hh / scale[:, None] / scale[None, :]  # unit diagonal: the ridge is relative per parameter
        c = scipy.linalg.cho_factor(hs + 1e-12 * np.eye(hs.shape[0]), check_finite=False)
        x = scipy.linalg.cho_solve(c, b / scale[:, None], check_finite=False) / scale[:, None]
    except np.linalg.LinAlgError:
        x = solve_psd(hh, b)
    return np.maximum(zz - np.einsum("pk,pk->k", b, x), 0.0)


def brute_force_delta_chi2(z: np.ndarray, g: np.ndarray, prior: np.ndarray | None = None) -> float:
    """The same by explicit least squares on the augmented system [G; sqrt(P)] delta = [z; 0]."""
    if prior is not None:
        w, v = np.linalg.eigh(prior)
        root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
        g = np.vstack([g, root])
        z = np.concatenate([z, np.zeros(prior.shape[0])])
    delta, *_ = np.linalg.lstsq(g, z, rcond=None)
    r = z - g @ delta
    return float(r @ r)


def difference_operator(n: int, kind: str = "curvature") -> np.ndarray:
    """Finite-difference operator D on an n x n pixel grid (rows: all x then all y differences).

    ``gradient``: first differences; ``curvature``: second differences (Suyu et al. 2006 forms). Zero
    beyond the edges (the source is 0 outside its grid).
    """
    if kind == "gradient":
        one = np.eye(n) - np.eye(n, k=1)
    elif kind == "curvature":
        one = 2.0 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    else:
        from lensml.errors import ConfigError

        raise ConfigError(
            f"forecast.pixelated.regularisation={kind!r} is unknown; use gradient or curvature."
        )
    eye = np.eye(n)
    return np.vstack([np.kron(eye, one), np.kron(one, eye)])


def regularisation_lambda(d: np.ndarray, s_true: np.ndarray, scale: float = 1.0) -> float:
    """Strength lambda of the prior ``lambda |D s|^2 / 2`` that the true source favours: the maximum-
    likelihood value ``n / |D s_true|^2`` of a Gaussian prior (as the evidence optimisation of Vegetti &
    Koopmans 2009 picks lambda from the data), times ``scale``."""
    ds = d @ s_true
    return float(scale * s_true.size / max(float(ds @ ds), 1e-300))


def significance(dchi2: np.ndarray | float) -> np.ndarray:
    """sqrt(Delta chi^2): the linearised detection significance (sigma)."""
    return np.sqrt(np.clip(np.asarray(dchi2, dtype=float), 0.0, None))
