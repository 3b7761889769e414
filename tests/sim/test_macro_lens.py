"""Macro-lens ellipticity conventions (against lenstronomy's param_util) and parameter validation."""

from __future__ import annotations

import numpy as np
import pytest
from lenstronomy.Util import param_util

from lensml.errors import ConfigError
from lensml.sim.macro_lens import ellipticity_to_q_phi, q_phi_to_ellipticity, validate_macro_kwargs


def test_round_trip_and_lenstronomy_agreement() -> None:
    rng = np.random.default_rng(5)
    q = rng.uniform(0.2, 1.0, 200)
    phi = rng.uniform(-np.pi / 2, np.pi / 2, 200)
    e1, e2 = q_phi_to_ellipticity(q, phi)
    ref_e1, ref_e2 = param_util.phi_q2_ellipticity(phi, q)
    np.testing.assert_allclose(e1, ref_e1, atol=1e-14)
    np.testing.assert_allclose(e2, ref_e2, atol=1e-14)
    q2, phi2 = ellipticity_to_q_phi(e1, e2)
    ref_phi, ref_q = param_util.ellipticity2phi_q(e1, e2)
    np.testing.assert_allclose(q2, ref_q, atol=1e-14)
    np.testing.assert_allclose(phi2, ref_phi, atol=1e-14)
    np.testing.assert_allclose(q2, q, atol=1e-12)
    # phi is defined modulo pi (and undefined for q = 1)
    dphi = np.angle(np.exp(2j * (phi2 - phi)))
    assert np.all(np.abs(dphi[q < 0.999]) < 1e-9)
    # major axis along +x for e1 > 0, along the diagonal for e2 > 0
    assert ellipticity_to_q_phi(0.2, 0.0)[1] == pytest.approx(0.0)
    assert ellipticity_to_q_phi(0.0, 0.2)[1] == pytest.approx(np.pi / 4)


def test_validate_returns_lenstronomy_kwargs() -> None:
    out = validate_macro_kwargs("EPL", dict(theta_E=1.2, gamma=2.1, q=0.7, phi=0.3))
    assert set(out) == {"theta_E", "gamma", "e1", "e2", "center_x", "center_y"}
    e1, e2 = param_util.phi_q2_ellipticity(0.3, 0.7)
    assert float(out["e1"]) == pytest.approx(e1) and float(out["e2"]) == pytest.approx(e2)
    batch = validate_macro_kwargs(
        "SIE", dict(theta_E=np.array([0.8, 1.5]), e1=np.array([0.1, -0.2]), e2=0.05)
    )
    assert batch["theta_E"].shape == (2,)


@pytest.mark.parametrize(
    ("model", "kwargs", "key"),
    [
        ("SIE", dict(theta_E=0.0, e1=0.1, e2=0.0), "lens.theta_E"),
        ("SIE", dict(theta_E=np.array([1.0, -0.5]), e1=0.1, e2=0.0), "lens.theta_E"),
        ("SIE", dict(theta_E=1.0, e1=0.8, e2=0.7), "lens.e1/e2"),
        ("EPL", dict(theta_E=1.0, gamma=2.0, e1=1.2, e2=0.0), "lens.e1/e2"),
        ("SIE", dict(theta_E=1.0, q=1.3, phi=0.0), "lens.q"),
        ("SIE", dict(theta_E=1.0, q=0.0, phi=0.0), "lens.q"),
        ("EPL", dict(theta_E=1.0, gamma=3.0, e1=0.1, e2=0.0), "lens.gamma"),
        ("EPL", dict(theta_E=1.0, gamma=0.9, e1=0.1, e2=0.0), "lens.gamma"),
        ("EPL", dict(theta_E=1.0, e1=0.1, e2=0.0), "lens.gamma"),
        ("SIE", dict(theta_E=1.0, e1=0.1, e2=0.0, gamma=2.0), "lens"),
        ("SIE", dict(theta_E=float("nan"), e1=0.1, e2=0.0), "lens.theta_E"),
        ("NFW", dict(theta_E=1.0), "lens.model"),
    ],
)
def test_invalid_parameters_name_the_key(model: str, kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_macro_kwargs(model, kwargs)


def test_unknown_model_lists_valid_models() -> None:
    with pytest.raises(ConfigError, match="SIE.*EPL"):
        validate_macro_kwargs("SPEMD", dict(theta_E=1.0), key_prefix="lens")
