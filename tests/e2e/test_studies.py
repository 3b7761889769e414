"""Every study of ``experiments/study/`` runs its one command at ``scale=tiny`` (real simulator, training).

The headline goes through the real CLI (``python -m lensml.study``), the studies without training through one
multirun of it (``-m study=signal,mask_leak``); the other studies re-use the headline's runs in-process
through the same ``run_study`` the CLI calls.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from study_runs import run_tiny

from lensml import run_identity
from lensml.analysis.scoring import compose_train_config
from lensml.errors import ConfigError
from lensml.paths import CONF_DIR
from lensml.study import train_jobs, training_overrides
from lensml.study_config import load_study

REPO = CONF_DIR.parent


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("studies")
    cmd = [
        sys.executable,
        "-m",
        "lensml.study",
        "study=headline",
        "scale=tiny",
        f"out_root={out}",
        f"summary_dir={out}/summaries",
        "n_boot=200",
    ]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def no_training(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One multirun of the real CLI over the two studies without training (~20 s on 2 cores)."""
    out = tmp_path_factory.mktemp("multirun")
    cmd = [sys.executable, "-m", "lensml.study", "-m", "study=signal,mask_leak", "scale=tiny"]
    cmd.append(f"out_root={out}")
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def test_headline(root: Path) -> None:
    s = json.loads((root / "summaries" / "headline.json").read_text())
    assert list(s["conditions"]) == ["m1e7", "m1e8", "m1e9", "m1e10", "m1e11"]
    for c in s["conditions"].values():
        assert set(c["variants"]) == {"baseline", "dual_stream"}
        comp = c["comparisons"][0]
        a, b = c["variants"]["baseline"]["auc"], c["variants"]["dual_stream"]["auc"]
        assert comp["auc"]["value"] == pytest.approx(b["value"] - a["value"])
        for m in (a, b, comp["auc"]):
            assert m["ci"][0] <= m["value"] + 1e-9 and m["value"] - 1e-9 <= m["ci"][1]
    # the test sets of one mass bin are identical for both models; positives lie in the bin
    z = np.load(root / "summaries" / "headline_predictions.npz")
    mass = z["m1e9__mass_msun"][z["m1e9__label"] == 1]
    assert np.all((mass >= 10**8.5) & (mass < 10**9.5))
    sens = s["sensitivity"]["variants"]["baseline"]["vs_mass"]
    assert sum(sens["n"]) == sum(int(z[f"{c}__label"].sum()) for c in s["conditions"])
    assert (root / "summaries" / "examples.npz").exists()


def test_velocity_degradation_leaves_the_flux_baseline_unchanged(root: Path) -> None:
    s = run_tiny("velocity_degradation", root)
    base = [c["variants"]["baseline"]["auc"]["value"] for c in s["conditions"].values()]
    assert base == pytest.approx([base[0]] * len(base), abs=1e-12)  # flux is not re-rendered coarser
    z = np.load(root / "summaries" / "velocity_degradation_predictions.npz")
    dual = [z[f"{c}__dual_stream_s0__probs"] for c in s["conditions"]]
    assert not np.array_equal(dual[0], dual[-1])  # the velocity input did change


def test_instrument_shift(root: Path) -> None:
    s = run_tiny("instrument_shift", root)
    assert "m1e11_psf0.2_low_snr" in s["conditions"]
    assert s["conditions"]["m1e11_low_snr"]["overrides"] == ["subhalo.mass_bin=1e11", "noise=low_snr"]


def test_ablations(root: Path) -> None:
    s = run_tiny("ablations", root)
    c = s["conditions"]["m1e11"]
    assert set(c["variants"]) == {"baseline", "dual_stream", "dual_shuffled", "velocity_only"}
    pairs = {(x["a"], x["b"]) for x in c["comparisons"]}
    assert ("baseline", "dual_shuffled") in pairs and ("baseline", "velocity_only") in pairs
    assert s["runs"]["dual_shuffled_s0"]["channels"] == "flux_shuffled_velocity"


def test_domain_shift_tests_on_the_real_manga_galaxy(root: Path, real_maps_path: Path) -> None:
    s = run_tiny("domain_shift", root)
    assert set(s["conditions"]) == {"m1e11_incl20-50", "m1e11_incl60-85", "m1e11_manga"}
    ev = sorted((root / "domain_shift" / "runs" / "baseline_s0" / "eval").glob("m1e11_manga-*.npz"))
    ids = set(np.load(ev[0])["source_id"].tolist())
    assert ids == {"7815-3702"}
    ev = sorted((root / "domain_shift" / "runs" / "baseline_s0" / "eval").glob("m1e11_incl20-50-*.npz"))
    assert set(np.load(ev[0])["source_id"].tolist()) == {"disk"}


def test_near_real(root: Path, real_maps_path: Path) -> None:
    s = run_tiny("near_real", root)
    g = s["near_real"]["galaxies"]["7815-3702"]
    for v in ("baseline", "dual_stream"):
        for case in s["near_real"]["cases"]:
            assert 0.0 <= g["variants"][v][case]["mean"] <= 1.0
    z = np.load(root / "summaries" / "near_real_7815-3702.npz")
    occ = z["occ__dual_stream__on_arc_1e+11__velocity"]
    assert occ.shape == (15, 15) and np.isfinite(occ.astype(float)).all()
    on = g["subhalo_positions_arcsec"]["on_arc"]
    assert np.hypot(on["x"], on["y"]) == pytest.approx(1.0, abs=0.2)  # on the Einstein ring (theta_E = 1")


def test_signal_grows_with_mass(no_training: Path) -> None:
    s = json.loads((no_training / "summaries" / "signal.json").read_text())
    assert s["command"] == "python -m lensml.study study=signal scale=tiny" and s["scale"] == {}
    bins = s["signal"]["noise"]["nominal"]["bins"]
    snr = [b["flux_snr"]["median"] for b in bins]
    assert all(b > a for a, b in zip(snr, snr[1:]))
    low = s["signal"]["noise"]["low_snr"]["bins"]
    assert all(lo["flux_snr"]["median"] < b["flux_snr"]["median"] for lo, b in zip(low, bins))
    # the velocity floor sweep: a lower floor never gives a smaller velocity S/N
    for b in bins:
        v = b["velocity"]
        assert set(v) == {"3", "10", "25"}
        assert v["3"]["velocity_snr"]["median"] >= v["10"]["velocity_snr"]["median"]
        assert v["10"]["velocity_snr"]["median"] >= v["25"]["velocity_snr"]["median"]
        assert v["3"]["gain"]["median"] >= 1.0


def test_evaluate_cli_scores_checkpoints_under_a_condition(root: Path, tmp_path: Path) -> None:
    runs = [root / "headline" / "runs" / "baseline_s0", root / "headline" / "runs" / "dual_stream_s0"]
    out = tmp_path / "ev"
    cmd = [
        sys.executable,
        "-m",
        "lensml.evaluate",
        f"runs=[{runs[0]},{runs[1]}]",
        "condition=['subhalo.mass_bin=1e10','noise=low_snr']",
        "n_test=32",
        "n_boot=100",
        "name=low",
        f"out_dir={out}",
    ]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "dual_stream - baseline: dAUC" in res.stdout
    m = json.loads((out / "eval_metrics.json").read_text())
    assert m["condition"] == ["subhalo.mass_bin=1e10", "noise=low_snr"]
    assert set(m["variants"]) == {"baseline", "dual_stream"} and m["n"] == 32
    comp = m["comparisons"][0]
    assert (comp["a"], comp["b"]) == ("baseline", "dual_stream")
    a, b = m["variants"]["baseline"]["auc"]["value"], m["variants"]["dual_stream"]["auc"]["value"]
    assert comp["auc"]["value"] == pytest.approx(b - a)
    z = np.load(out / "predictions.npz")
    mass = z["baseline_s0__mass_msun"][z["baseline_s0__label"] == 1]
    assert np.all((mass >= 10**9.5) & (mass < 10**10.5))
    assert np.array_equal(z["baseline_s0__label"], z["dual_stream_s0__label"])
    assert (out / "roc.png").stat().st_size > 1000


def test_control_and_its_ablations(tmp_path: Path) -> None:
    s = run_tiny("control", tmp_path)
    assert set(s["conditions"]) == {"m1e8", "m1e9", "m1e10"}
    a = run_tiny("control_ablations", tmp_path)
    c = a["conditions"]["m1e10"]
    assert set(c["variants"]) == {"baseline", "dual_stream", "dual_shuffled", "velocity_only"}
    # the control's own evaluations are re-used (same condition name and overrides), not re-rendered
    ours, theirs = c["variants"]["baseline"]["auc"], s["conditions"]["m1e10"]["variants"]["baseline"]["auc"]
    assert ours["seed_values"] == theirs["seed_values"]


def test_mask_leak(no_training: Path) -> None:
    s = json.loads((no_training / "summaries" / "mask_leak.json").read_text())["mask_leak"]
    assert s["version"] == 2
    c = s["conditions"]
    assert set(c) == {"m1e8", "m1e9", "m1e10", "m1e10_noiseless_mask"}
    # positive control: the noiseless mask is a noise-free isophote that gives a 1e10 subhalo away
    assert c["m1e10_noiseless_mask"]["mask_hamming"]["value"] > 0.9
    for e in c.values():
        assert {"mask_bayes", "velocity_chi2_shuffled", "flux_chi2"} <= set(e)
        assert e["velocity_chi2_shuffled"]["ci"][0] < 0.5 + 0.25  # tiny scale: only a loose bound


def test_control_with_the_observed_mask(tmp_path: Path) -> None:
    s = run_tiny("control_observed_mask", tmp_path)
    assert "noise.mask_from=observed" in s["common"]
    c = s["conditions"]["m1e10"]
    assert set(c["variants"]) == {"baseline", "dual_stream", "dual_shuffled"}
    pairs = {(x["a"], x["b"]) for x in c["comparisons"]}
    assert pairs >= {("baseline", "dual_stream"), ("baseline", "dual_shuffled")}
    assert s["runs"]["dual_shuffled_s0"]["channels"] == "flux_shuffled_velocity"


def test_hard_negatives(tmp_path: Path) -> None:
    s = run_tiny("hard_negatives", tmp_path)
    fp = s["false_positives"]
    assert fp["reference"] == "clean_m1e10"
    assert set(fp["conditions"]) == set(s["conditions"])
    for e in fp["conditions"].values():
        assert set(e["variants"]) == {"flux_clean", "fv_clean", "flux_hard", "fv_hard"}
        assert all(0.0 <= v["value"] <= 1.0 and v["ci"][0] <= v["ci"][1] for v in e["variants"].values())
        assert len(e["comparisons"]) == 4
    # the reference condition's FPR is at most the operating 5 % (threshold from those very negatives)
    assert all(v["value"] <= 0.05 + 1e-9 for v in fp["conditions"]["clean_m1e10"]["variants"].values())
    assert s["runs"]["fv_hard_s0"]["channels"] == "flux_velocity_weight"


def test_a_finished_run_is_reused_only_with_the_config_it_was_trained_with(root: Path) -> None:
    """Resuming: the headline's finished runs are skipped when their config is unchanged; a changed study
    config is one error naming the run dir and the fix; a run's resolved_config.yaml (all a run made before
    the record has) gives the recorded identity."""
    study = load_study("headline", "tiny")
    for job in train_jobs(study, root):
        rd = Path(job["run_dir"])
        cfg = compose_train_config(training_overrides(job, root), rd)
        recorded = json.loads((rd / run_identity.RECORD).read_text())
        assert recorded["hash"] == run_identity.run_hash(cfg)
        legacy = run_identity.run_identity(OmegaConf.load(rd / "resolved_config.yaml"))
        assert json.loads(json.dumps(legacy)) == recorded["identity"]
    before = {p: p.stat().st_mtime for p in (root / "headline" / "runs").glob("*/metrics.json")}
    run_tiny("headline", root, "stage=train")  # unchanged: nothing trained
    assert {p: p.stat().st_mtime for p in before} == before
    with pytest.raises(ConfigError, match=r"baseline_s0 was trained with other .*on_mismatch=rerun"):
        run_tiny("headline", root, "stage=train", "scale.epochs=2")


def test_study_files_read_numbers_as_numbers() -> None:
    """``1.0e8`` in a study file is a float (PyYAML's YAML 1.1 resolver reads it as a string, which the
    forecast study rejected: 'forecast.mass_bins=['1.0e8', ...] must be ... masses > 0')."""
    from lensml.study import load_study

    assert all(isinstance(m, float) for m in load_study("forecast")["forecast"]["mass_bins"])
    assert all(isinstance(m, float) for m in load_study("signal")["signal"]["mass_bins"])
