"""Named prior distributions (lensml.numerics.priors)."""

from __future__ import annotations

import numpy as np
import pytest

from lensml.errors import ConfigError
from lensml.numerics.priors import check_range, draw, support, validate_prior


def _draws(spec, n=2000):
    rng = np.random.default_rng(0)
    return np.array([draw(spec, rng) for _ in range(n)])


def test_distributions_draw_in_their_support():
    u = _draws({"dist": "uniform", "low": 2.0, "high": 3.0})
    assert u.min() >= 2.0 and u.max() < 3.0 and abs(u.mean() - 2.5) < 0.03
    lu = _draws({"dist": "loguniform", "low": 1e7, "high": 1e10})
    assert lu.min() >= 1e7 and lu.max() <= 1e10 and abs(np.log10(lu).mean() - 8.5) < 0.1
    n = _draws({"dist": "normal", "mean": 0.0, "sigma": 1.0, "low": -0.5, "high": 2.0})
    assert n.min() >= -0.5 and n.max() <= 2.0
    ri = _draws({"dist": "randint", "low": 0, "high": 3})
    assert set(ri) == {0, 1, 2, 3}
    assert set(_draws({"dist": "choice", "values": [1, 5], "probs": [0, 1]}, 20)) == {5}
    assert draw(0.7, np.random.default_rng()) == 0.7
    assert draw({"dist": "fixed", "value": 2}, np.random.default_rng()) == 2.0


def test_support_and_range_checks():
    assert support({"dist": "normal", "mean": 0, "sigma": 1}) == (-np.inf, np.inf)
    assert support({"dist": "loguniform", "low": 1, "high": 10}) == (1.0, 10.0)
    check_range({"dist": "uniform", "low": 0.1, "high": 1}, "lens.theta_E", 0.0, None, low_open=True)
    with pytest.raises(ConfigError, match=r"lens\.theta_E"):
        check_range({"dist": "uniform", "low": 0.0, "high": 1}, "lens.theta_E", 0.0, None, low_open=True)
    with pytest.raises(ConfigError, match=r"lens\.theta_E"):
        check_range(
            {"dist": "normal", "mean": 1, "sigma": 0.1}, "lens.theta_E", 0.0, None, low_open=True
        )


@pytest.mark.parametrize(
    "spec",
    [
        {"dist": "uniform", "low": 1.0},
        {"dist": "uniform", "low": 2.0, "high": 1.0},
        {"dist": "loguniform", "low": 0.0, "high": 1.0},
        {"dist": "normal", "mean": 0.0, "sigma": -1.0},
        {"dist": "beta", "a": 1},
        {"dist": "choice", "values": []},
        "wide",
    ],
)
def test_malformed_priors_name_the_key(spec):
    with pytest.raises(ConfigError, match=r"source\.x"):
        validate_prior(spec, "source.x")


def test_same_generator_same_draws():
    spec = {"dist": "uniform", "low": 0, "high": 1}
    a = [draw(spec, np.random.default_rng(5)) for _ in range(3)]
    assert a[0] == a[1] == a[2]


def test_quantile_is_the_inverse_cdf():
    from scipy import stats

    from lensml.numerics.priors import quantile

    u = np.linspace(0.001, 0.999, 999)
    spec = {"dist": "normal", "mean": 1.0, "sigma": 2.0, "low": -0.5, "high": 4.0}
    want = stats.truncnorm.ppf(u, (-0.5 - 1.0) / 2.0, (4.0 - 1.0) / 2.0, loc=1.0, scale=2.0)
    np.testing.assert_allclose(quantile(spec, u), want, rtol=1e-10, atol=1e-10)
    tail = {"dist": "normal", "mean": 0.0, "sigma": 1.0, "low": 8.0, "high": 9.0}  # far upper tail
    want = stats.truncnorm.ppf(u, 8.0, 9.0)
    np.testing.assert_allclose(quantile(tail, u), want, rtol=1e-9)
    np.testing.assert_allclose(quantile({"dist": "normal", "mean": 3.0, "sigma": 0.5}, 0.5), 3.0)
    np.testing.assert_allclose(
        quantile({"dist": "loguniform", "low": 1e7, "high": 1e10}, [0.0, 0.5, 1.0]), [1e7, 10**8.5, 1e10]
    )
    ri = quantile({"dist": "randint", "low": 2, "high": 4}, np.random.default_rng(0).random(30_000))
    assert set(ri) == {2, 3, 4} and np.all(np.abs(np.bincount(ri.astype(int))[2:] / 30_000 - 1 / 3) < 0.01)
    choice = {"dist": "choice", "values": [1, 5, 9], "probs": [1, 0, 3]}
    np.testing.assert_array_equal(quantile(choice, [0.1, 0.24, 0.26, 0.99]), [1, 1, 9, 9])
