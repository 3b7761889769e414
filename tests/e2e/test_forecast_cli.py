"""``python -m lensml.forecast`` on a tiny config through the real CLI: JSON, Markdown table and figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TINY = [
    "instrument.n_pix=24",
    "instrument.pixel_scale_arcsec=0.133",
    "forecast.n_draws=3",
    "forecast.mass_bins=[1e10,1e11]",
    "forecast.sigma_v_floors_kms=[10]",
    "forecast.pixelated.n_pix=6",
    "forecast.n_bootstrap=20",
    "forecast.refit.n_draws=1",
    "forecast.refit.bins=[0]",
    "forecast.refit.max_nfev=3",
    "forecast.unknown_position.n_draws=1",
    "forecast.unknown_position.n_angles=4",
    "forecast.unknown_position.n_null=50",
]


def test_forecast_cli_writes_table_json_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "fc"
    proc = subprocess.run(
        [sys.executable, "-m", "lensml.forecast", *TINY, f"out_dir={out}", f"hydra.run.dir={tmp_path}/hydra"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "forecast.json").read_text())
    res = result["summary"]["results"]
    assert set(res) == {"flux", "flux+velocity@10"}
    assert set(res["flux"]) == {"none", "macro", "macro_source", "macro_pixelated"}
    for ds in res:
        none, macro = res[ds]["none"]["median"], res[ds]["macro"]["median"]
        assert all(m <= n + 1e-9 for m, n in zip(macro, none))  # marginalising never gains significance
        assert none[1] > none[0]  # heavier subhaloes are more significant
    assert result["refit"]["rows"] and result["unknown_position"]["results"]["flux"][0]["local"] > 0
    table = (out / "forecast.md").read_text()
    assert "| flux | macro_source |" in table and "M_min" in table
    assert (out / "forecast.png").stat().st_size > 1000


def test_forecast_cli_bad_marginalisation_is_one_config_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lensml.forecast",
            *TINY,
            "+forecast.marginalise.bad=[lens]",
            f"out_dir={tmp_path}/fc",
            f"hydra.run.dir={tmp_path}/hydra",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "forecast.marginalise.bad" in proc.stderr and "Traceback" not in proc.stderr


def test_forecast_study_hook_tiny() -> None:
    """``run_study`` (what ``lensml.study`` calls for a ``forecast:`` block): physics overrides of ``common``
    applied, the others (training keys) ignored; tiny scale caps the checks at one draw."""
    from lensml.forecast import run_study

    spec = {
        "noise": ["nominal"],
        "n": 256,
        "n_tiny": 2,
        "mass_bins": [1e10, 1e11],
        "sigma_v_floors_kms": [10.0],
        "pixelated": {"n_pix": 6},
        "n_bootstrap": 10,
        "refit": {"n_draws": 1, "bins": [0], "max_nfev": 2},
        "unknown_position": {"n_draws": 0},
    }
    common = [
        "instrument.n_pix=24",
        "instrument.pixel_scale_arcsec=0.133",
        "data.n_train=5",
        "trainer.max_epochs=1",
    ]
    out = run_study(spec, common, "tiny")
    res = out["noise"]["nominal"]
    assert out["n_per_bin"] == 2 and res["n_draws"] == 2 and "per_draw" not in res
    assert set(res["summary"]["results"]) == {"flux", "flux+velocity@10"}
    assert res["refit"]["ratio"] and "rows" not in res["refit"]  # merged into the default refit settings
