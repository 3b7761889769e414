"""Leak checks of the velocity channel: classifiers that see only what must carry no label information.

In the control setting (lens and source fixed) two kinds of input must be at chance:

- ``mask``: the validity mask alone. With ``noise.mask_from=observed`` it is a threshold of the *noisy*
  flux, so it carries at most what the flux channel carries (a massive subhalo that moves the isophote is
  visible in it, as in the flux); with the idealised ``noiseless`` mask it is a noise-free isophote of the
  lensed image and detects subhalos (the v1 leak). The ``noiseless`` condition is the positive control: it
  shows the classifiers can find a leak.
- ``shuffled velocity``: the velocity map and mask of *another* sample of the split (the
  ``flux_shuffled_velocity`` pairing, ``lensml.data.channels.shuffle_permutation``). Its label information
  must be zero by construction; a score above chance means the shuffle or the renderer leaks.

Classifiers, each fitted on ``n_train`` training-split samples and scored on ``n`` test-split samples:

- ``mask_hamming``: number of pixels whose mask differs from the per-pixel majority mask of the training
  negatives (no fitted weights; the v1 statistic, generalised to noisy masks).
- ``mask_bayes``: Bernoulli naive-Bayes log-likelihood ratio of the mask pixels (Laplace smoothing), fitted
  on both training classes.
- ``mask_bayes_shuffled``: the same on the shuffled sample's mask (must be at chance).
- ``velocity_chi2``: chi-square of the velocity inside the mask against the per-pixel mean and variance of
  the training negatives (the no-learning detector of a known smooth velocity field); on the sample's own
  velocity (``paired``: the reference that shows the statistic has power) and on the shuffled sample's
  velocity and mask (``shuffled``: must be at chance).
- ``flux_chi2``, ``flux_bayes``: the chi-square and a Gaussian naive Bayes (per-pixel class means and
  variances) on the flux, every pixel: what the flux channel itself tells. The observed mask is a
  threshold of the observed flux, so it can tell no more than the flux; where the subhalo's flux signal
  crosses the isophote, a mask-only classifier is above chance *without* a leak.

AUCs carry stratified bootstrap 95 % intervals (``lensml.analysis.bootstrap``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from omegaconf import DictConfig

#: The chance band the issue asks the mask-only and shuffled-velocity classifiers to fall in.
CHANCE_BAND = (0.45, 0.55)


def render_split(cfg: DictConfig, split: str, n: int, batch: int = 256) -> dict[str, np.ndarray]:
    """Samples ``0 .. n-1`` of ``split`` of ``cfg`` (physics + ``data.seed``)."""
    from lensml.data.cache import physics_config
    from lensml.sim.simulator import build_simulator

    sim = build_simulator(physics_config(cfg))
    parts = [
        sim.sample_batch(int(cfg.data.seed), split, list(range(i, min(i + batch, n))))
        for i in range(0, n, batch)
    ]
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}


def mask_hamming(train_mask: np.ndarray, train_y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pixels differing from the majority mask of the training negatives, per sample (float)."""
    ref = train_mask[train_y == 0].mean(axis=0) > 0.5
    return (mask != ref).reshape(len(mask), -1).sum(axis=1).astype(float)


def mask_bayes(train_mask: np.ndarray, train_y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Bernoulli naive-Bayes log-likelihood ratio log P(mask | 1) / P(mask | 0), Laplace-smoothed."""
    m = train_mask.reshape(len(train_mask), -1).astype(float)
    p = [(m[train_y == c].sum(axis=0) + 1.0) / ((train_y == c).sum() + 2.0) for c in (0, 1)]
    w = np.log(p[1] / p[0]) - np.log((1 - p[1]) / (1 - p[0]))
    x = mask.reshape(len(mask), -1).astype(float)
    return x @ w


def gaussian_bayes(train_maps: np.ndarray, train_y: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Gaussian naive-Bayes log-likelihood ratio of the pixels of ``maps``: per-pixel class means and
    variances fitted on the training samples (the flux-side counterpart of ``mask_bayes``)."""
    x = train_maps.reshape(len(train_maps), -1).astype(np.float64)
    mu = [x[train_y == c].mean(axis=0) for c in (0, 1)]
    var = [np.maximum(x[train_y == c].var(axis=0), 1e-12 * x.var() + 1e-300) for c in (0, 1)]
    z = maps.reshape(len(maps), -1).astype(np.float64)
    ll = [-0.5 * ((z - mu[c]) ** 2 / var[c] + np.log(var[c])) for c in (0, 1)]
    return (ll[1] - ll[0]).sum(axis=1)


def pixel_chi2(
    train_maps: np.ndarray,
    train_mask: np.ndarray,
    maps: np.ndarray,
    mask: np.ndarray,
    min_count: int = 8,
) -> np.ndarray:
    """Mean chi-square per pixel of ``maps`` inside ``mask`` against the per-pixel mean and variance of the
    training negatives ``train_maps`` (each pixel over the negatives whose ``train_mask`` holds it; pixels
    held by fewer than ``min_count`` negatives are skipped); 0 where no pixel is left."""
    v, m = train_maps.astype(np.float64), train_mask
    count = m.sum(axis=0)
    safe = np.maximum(count, 1)
    mean = (v * m).sum(axis=0) / safe
    var = np.maximum(((v - mean) ** 2 * m).sum(axis=0) / np.maximum(count - 1, 1), 1e-12)
    use = mask & (count >= min_count)
    z2 = np.where(use, (maps - mean) ** 2 / var, 0.0)
    n_pix = use.reshape(len(use), -1).sum(axis=1)
    return z2.reshape(len(z2), -1).sum(axis=1) / np.maximum(n_pix, 1)


def leak_check(cfg: DictConfig, n: int, n_train: int, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """AUCs (bootstrap 95 % CIs) of the module's classifiers on ``n`` test samples of ``cfg``."""
    from lensml.analysis.bootstrap import bootstrap_metric
    from lensml.data.channels import shuffle_permutation

    train = render_split(cfg, "train", n_train)
    test = render_split(cfg, "test", n)
    ty, y = train["label"], test["label"]
    perm = shuffle_permutation(int(cfg.data.seed), "test", n)
    neg = ty == 0
    v0, m0 = train["velocity"][neg], train["mask"][neg]
    f0, everywhere = train["flux"][neg], np.ones_like(test["mask"])
    scores = {
        "mask_hamming": mask_hamming(train["mask"], ty, test["mask"]),
        "mask_bayes": mask_bayes(train["mask"], ty, test["mask"]),
        "mask_bayes_shuffled": mask_bayes(train["mask"], ty, test["mask"][perm]),
        "velocity_chi2_paired": pixel_chi2(v0, m0, test["velocity"], test["mask"]),
        "velocity_chi2_shuffled": pixel_chi2(v0, m0, test["velocity"][perm], test["mask"][perm]),
        "flux_chi2": pixel_chi2(f0, np.ones_like(m0), test["flux"], everywhere),
        "flux_bayes": gaussian_bayes(train["flux"], ty, test["flux"]),
    }
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {
        name: bootstrap_metric(s, y, "auc", n_boot=n_boot, rng=rng) for name, s in scores.items()
    }
    out["n"], out["n_train"] = int(n), int(n_train)
    out["mask_fraction"] = float(test["mask"].mean())
    return out


def at_chance(auc: dict[str, Any], band: tuple[float, float] = CHANCE_BAND) -> bool:
    """Whether the AUC's value lies in ``band`` (the issue's criterion) and its interval covers 0.5."""
    lo, hi = auc["ci"]
    return band[0] <= auc["value"] <= band[1] and lo <= 0.5 <= hi


def run_leak_checks(spec: dict[str, Any], common: list[str], scale: str) -> dict[str, Any]:
    """``spec``: ``conditions`` (name -> overrides), ``n`` / ``n_tiny`` test and ``n_train`` /
    ``n_train_tiny`` training samples. Returns ``{"version": 2, "conditions": {name: leak_check(...)}}``."""
    from lensml.analysis.scoring import compose_train_config

    tiny = scale == "tiny"
    n = int(spec.get("n_tiny" if tiny else "n", 512))
    n_train = int(spec.get("n_train_tiny" if tiny else "n_train", n))
    return {
        "version": 2,
        "conditions": {
            name: leak_check(compose_train_config([*common, *cond]), n, n_train)
            for name, cond in spec["conditions"].items()
        },
    }
