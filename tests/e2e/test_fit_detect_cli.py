"""``python -m lensml.fit_detect`` at a tiny scale (real CLI): metrics written, a rerun refits nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TINY = [
    "condition=['experiment=headline_resnet','source.n_clumps=0','source.p_bulge=0','instrument.n_pix=12',"
    "'instrument.pixel_scale_arcsec=0.27','lens.multipoles.orders=[]','sim.cpu_kernels=false']",
    "n_test=5",  # samples 0-4 of the test split: 4 with a subhalo, 1 without
    "fit.n_starts=1",
    "fit.grid={offset_arcsec:[-0.1,0.1],scale_radius_arcsec:[0.17],inclination_deg:[45],position_angle_deg:[0,90]}",
    "fit.start_nfev=2",
    "fit.final_nfev=2",
    "fit.n_angles=4",
    "fit.radii_offsets_arcsec=[0.0]",
    "fit.scan_log10_mass=[10.5]",
    "fit.n_refine=1",
    "fit.refine_nfev=2",
    "fit.joint_nfev=2",
    "n_boot=20",
]


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lensml.fit_detect", *TINY, *extra, f"out_dir={out}"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_fit_detect_cli_writes_metrics_and_a_rerun_skips_cached_fits(tmp_path: Path) -> None:
    out = tmp_path / "fd"
    proc = _run(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["datasets"]) == {"fit_detect:flux", "fit_detect:flux_velocity"}
    for name, sm in m["datasets"].items():
        assert sm["n"] == 5 and sm["n_pos"] == 4 and 0.0 <= sm["auc"] <= 1.0, name
        iv = m["intervals"][name]["overall"]
        assert set(iv) >= {"auc", "recall_at_fpr1", "recall_at_fpr5", "recall_at_fpr10"}
        assert iv["auc"]["ci"][0] <= iv["auc"]["value"] <= iv["auc"]["ci"][1]
    assert m["cost"]["fits_this_run"] == 10 and m["cost"]["images_per_minute"] > 0
    fits = sorted((out / "fits" / m["cache_key"]).rglob("*.json"))
    assert len(fits) == 10
    one = json.loads(fits[0].read_text())
    assert one["delta_chi2"] == max(one["chi2_smooth"] - one["chi2_sub"], 0.0)
    ev = json.loads((out / "eval_metrics.json").read_text())
    assert set(ev["variants"]) == set(m["datasets"]) and ev["comparisons"][0]["a"] == "fit_detect:flux"
    stamp = fits[0].stat().st_mtime_ns
    from hydra import compose, initialize_config_dir

    from lensml.fit_detect import fit_detect
    from lensml.paths import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):  # the rerun, in-process
        cfg = compose("fit_detect", overrides=[*TINY, f"out_dir={out}"])
    m2 = fit_detect(cfg)
    assert m2["cost"]["fits_this_run"] == 0 and fits[0].stat().st_mtime_ns == stamp
    assert m2["datasets"] == m["datasets"]


def test_fit_detect_cli_bad_dataset_is_one_config_error(tmp_path: Path) -> None:
    proc = _run(tmp_path / "fd", "datasets=[cube]")
    assert proc.returncode == 2
    assert "datasets" in proc.stderr and "Traceback" not in proc.stderr
