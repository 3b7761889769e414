"""lensml.aggregate on hand-written metrics.json files (mean and spread over seeds, grouping, plot)."""

import json

import pytest

from lensml.aggregate import main


def write_run(root, job, model, mass_bin, seed, auc):
    d = root / str(job)
    d.mkdir(parents=True)
    overrides = [f"model={model}", f"subhalo.mass_bin={mass_bin}", f"seed={seed}", "trainer.max_epochs=1"]
    test = {"auc": auc, "recall_at_fpr5": auc / 2,
            "per_mass_bin": {"1e8": {"auc": auc, "n_pos": 5, "recall_at_fpr5": 0.1}}}
    metrics = {"model": model, "mass_bin": mass_bin, "seed": seed, "overrides": overrides, "val": test,
               "test": test}
    (d / "metrics.json").write_text(json.dumps(metrics))


def test_table_means_and_stds_over_seeds(tmp_path, capsys):
    job = 0
    for model, base in (("baseline", 0.6), ("dual_stream", 0.7)):
        for mass_bin in (1e8, 1e9):
            for seed, delta in enumerate((-0.01, 0.0, 0.01)):
                auc = base + delta + (0.1 if mass_bin == 1e9 else 0)
                write_run(tmp_path, job, model, mass_bin, seed, auc)
                job += 1
    main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "12 runs aggregated" in out and "baseline" in out and "dual_stream" in out
    rows = (tmp_path / "aggregate.csv").read_text().strip().splitlines()
    header = rows[0].split(",")
    assert header[:3] == ["model", "subhalo.mass_bin", "n_runs"] and "trainer.max_epochs" not in header
    table = {(r.split(",")[0], float(r.split(",")[1])): dict(zip(header, r.split(","))) for r in rows[1:]}
    assert len(table) == 4
    row = table[("dual_stream", 1e9)]
    assert row["n_runs"] == "3"
    assert float(row["test_auc_mean"]) == pytest.approx(0.8)
    assert float(row["test_auc_std"]) == pytest.approx(0.01)  # sample std of (-0.01, 0, 0.01)
    assert (tmp_path / "auc_vs_mass.png").stat().st_size > 1000
    assert (tmp_path / "aggregate.md").read_text().startswith("| model |")


def test_missing_dir_is_a_clear_error(tmp_path):
    from lensml.errors import DataError

    with pytest.raises(DataError, match="no metrics.json"):
        main([str(tmp_path)])


def test_mass_axis_names_the_binning_mass():
    from lensml.aggregate import mass_axis_label

    assert "1 kpc" in mass_axis_label({"m_proj_1kpc_msun"})
    assert "M_{200}" in mass_axis_label({"mass_msun"})
    assert mass_axis_label({"mass_msun", "m_trunc_msun"}).startswith("subhalo mass [")
