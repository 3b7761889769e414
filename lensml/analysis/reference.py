"""Reference detectors (no learning): the chi-square test against the true smooth image, the CNNs' yardstick.

For each test sample (the same ``(data.seed, "test", i)``, i < ``data.n_test``, that the CNNs are scored on),
the residuals about its true smooth model in units of the noise sigma (``lensml.data.oracle``) give

- ``flux``: ``T_f = sum z_f^2`` over all N^2 pixels; under "no subhalo" (and Gaussian noise) T_f ~ chi2(N^2);
- ``velocity``: ``T_v = sum z_v^2`` over the ``n_v`` pixels inside the observed and the smooth mask;
- ``flux_velocity``: ``T_f + T_v`` ~ chi2(N^2 + n_v).

The score is the test's significance ``-ln p`` (``scipy.stats.chi2.logsf``): samples with different numbers of
velocity pixels are ranked on one scale. With the smooth model known exactly this is the matched (ideal)
detector of "anything but the smooth model": an upper bound for the control task (fixed macro model and
source), and the ceiling that the oracle-residual CNN (``data.oracle_residual=true``) approaches. Scored with
``lensml.models.metrics.split_metrics``: overall and per mass bin, as the CNN runs.

    python -m lensml.analysis.reference [--out FILE.json] [train overrides ...]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from lensml.data.cache import physics_config
from lensml.data.oracle import smooth_residuals
from lensml.models.metrics import split_metrics

DETECTORS: tuple[str, ...] = ("flux", "velocity", "flux_velocity")


def chi2_scores(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-sample statistics and scores of the chi-square detectors from ``smooth_residuals`` output.

    Returns ``t_flux``, ``n_flux``, ``t_velocity``, ``n_velocity`` and, per detector, ``-ln p`` under
    "no subhalo".
    """
    from scipy.stats import chi2

    zf = np.asarray(data["flux_resid_z"], np.float64)
    zv = np.asarray(data["velocity_resid_z"], np.float64)
    b = zf.shape[0]
    t_f, n_f = (zf**2).reshape(b, -1).sum(axis=1), np.full(b, zf[0].size, np.float64)
    t_v = (zv**2).reshape(b, -1).sum(axis=1)
    n_v = np.asarray(data["resid_mask"], bool).reshape(b, -1).sum(axis=1).astype(np.float64)
    out = {"t_flux": t_f, "n_flux": n_f, "t_velocity": t_v, "n_velocity": n_v}
    out["flux"] = -chi2.logsf(t_f, n_f)
    out["velocity"] = np.where(n_v > 0, -chi2.logsf(t_v, np.maximum(n_v, 1)), 0.0)
    out["flux_velocity"] = -chi2.logsf(t_f + t_v, n_f + n_v)
    return out


def reference_scores(cfg: DictConfig, n: int | None = None, batch: int = 256) -> dict[str, np.ndarray]:
    """Scores of every detector on the first ``n`` (default ``data.n_test``) test samples of ``cfg``, with
    ``label``, ``mass_msun`` and the subhalo metadata of each sample."""
    from lensml.sim.simulator import SUBHALO_METADATA_KEYS, build_simulator

    sim = build_simulator(physics_config(cfg))
    n = int(cfg.data.n_test if n is None else n)
    seed = int(cfg.data.seed)
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, n, batch):
        data = smooth_residuals(sim, seed, "test", np.arange(start, min(n, start + batch)))
        scores = chi2_scores(data)
        for key in ("label", "mass_msun", *SUBHALO_METADATA_KEYS):
            scores[key] = np.asarray(data[key])
        parts.append(scores)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def reference_metrics(cfg: DictConfig, n: int | None = None) -> dict[str, Any]:
    """``split_metrics`` of each detector (``DETECTORS``) on the run's test set, binned like the CNN runs."""
    s = reference_scores(cfg, n)
    mass_key = str(OmegaConf.select(cfg, "metrics.mass_key", default="mass_msun"))
    edges = [float(e) for e in cfg.metrics.mass_edges_log10]
    from scipy.stats import rankdata

    # the scores are -ln p (up to ~1e4): their ranks / (n + 1), exact in the float32 metric code (AUCs and
    # recalls depend on the order only; the accuracy at 0.5 means nothing here)
    out: dict[str, Any] = {"n": int(len(s["label"])), "data_seed": int(cfg.data.seed)}
    for det in DETECTORS:
        prob = rankdata(s[det]) / (len(s[det]) + 1.0)
        out[det] = split_metrics(prob, s["label"], s[mass_key], edges, mass_key=mass_key)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    from lensml.analysis.scoring import compose_train_config

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="write the metrics as JSON here")
    ap.add_argument("overrides", nargs="*", help="train config overrides (the CNN run's physics and data)")
    args = ap.parse_args(argv)
    res = reference_metrics(compose_train_config(args.overrides))
    for det in DETECTORS:
        m = res[det]
        bins = ", ".join(f"{k}: {v['auc']:.3f}" for k, v in m["per_mass_bin"].items() if v["auc"] is not None)
        print(f"chi2 {det:14s} test AUC = {m['auc']:.3f}  recall@FPR5% = {m['recall_at_fpr5']:.3f}  [{bins}]")
    if args.out:
        from lensml.atomic_io import write_json

        write_json(args.out, res)


if __name__ == "__main__":
    main()
