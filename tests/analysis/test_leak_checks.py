"""The leak-check classifiers find information where it is planted and none where it is not."""

from __future__ import annotations

import numpy as np

from lensml.analysis.bootstrap import auc_rows
from lensml.analysis.leak_checks import at_chance, gaussian_bayes, mask_bayes, mask_hamming, pixel_chi2


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(auc_rows(scores[None, :], labels)[0])


def _masks(rng: np.random.Generator, n: int, planted: bool) -> tuple[np.ndarray, np.ndarray]:
    y = (np.arange(n) % 2).astype(int)
    m = rng.random((n, 12, 12)) < 0.3
    if planted:  # positives: a 3 x 3 block always on; negatives: always off
        m[:, 3:6, 4:7] = (y == 1)[:, None, None]
    return m, y


def test_mask_classifiers_find_a_planted_pixel_and_nothing_in_noise() -> None:
    rng = np.random.default_rng(1)
    tm, ty = _masks(rng, 400, True)
    m, y = _masks(rng, 400, True)
    assert roc_auc(mask_bayes(tm, ty, m), y) > 0.95
    assert roc_auc(mask_hamming(tm, ty, m), y) > 0.7  # ~+6 pixels against binomial noise of ~5.5 pixels
    tm, ty = _masks(rng, 400, False)
    m, y = _masks(rng, 400, False)
    assert abs(roc_auc(mask_bayes(tm, ty, m), y) - 0.5) < 0.08
    assert abs(roc_auc(mask_hamming(tm, ty, m), y) - 0.5) < 0.08


def test_pixel_chi2_is_one_per_pixel_for_negatives_and_grows_with_a_perturbation() -> None:
    rng = np.random.default_rng(2)
    train = rng.normal(5.0, 2.0, (2000, 8, 8))
    everywhere = np.ones((2000, 8, 8), bool)
    test = rng.normal(5.0, 2.0, (500, 8, 8))
    chi = pixel_chi2(train, everywhere, test, everywhere[:500])
    assert abs(chi.mean() - 1.0) < 0.05
    test[:, 2, 2] += 20.0
    assert pixel_chi2(train, everywhere, test, everywhere[:500]).mean() > 1.5
    none = np.zeros((500, 8, 8), bool)
    assert np.all(pixel_chi2(train, everywhere, test, none) == 0.0)


def test_at_chance() -> None:
    assert at_chance({"value": 0.51, "ci": [0.47, 0.55]})
    assert not at_chance({"value": 0.56, "ci": [0.51, 0.6]})
    assert not at_chance({"value": 0.54, "ci": [0.51, 0.57]})


def test_gaussian_bayes_finds_a_planted_mean_shift_and_nothing_in_noise() -> None:
    rng = np.random.default_rng(3)
    y = (np.arange(600) % 2).astype(int)
    train, test = rng.normal(0, 1, (600, 6, 6)), rng.normal(0, 1, (600, 6, 6))
    assert abs(roc_auc(gaussian_bayes(train, y, test), y) - 0.5) < 0.08
    train[y == 1, 2, 3] += 2.0
    test[y == 1, 2, 3] += 2.0
    assert roc_auc(gaussian_bayes(train, y, test), y) > 0.85
