"""The make_dataset command a run prints to (re-)render its cache must render the cache the run accepts."""

from __future__ import annotations

import shlex

import pytest
from hydra import compose, initialize_config_dir

from lensml.data.cache import cache_config, config_hash, physics_config
from lensml.make_dataset import make_dataset_command
from lensml.paths import CONF_DIR


def _cache_hash(cfg) -> str:
    return config_hash(cache_config(physics_config(cfg), int(cfg.data.seed)))


@pytest.mark.parametrize(
    "overrides",
    [
        ["experiment=quickstart", "instrument.n_pix=32"],  # the experiment sets lens, source, subhalo, noise
        ["experiment=gpu_large", "noise=low_snr", "seed=3"],  # sizes from the experiment, a group, the seed
        ["instrument.n_pix=32", "data.n_train=64"],
    ],
)
def test_the_printed_command_renders_the_cache_the_run_accepts(compose_train, overrides: list[str]) -> None:
    run_cfg = compose_train("data=cache", *overrides)
    cmd = make_dataset_command(run_cfg, ["data=cache", *overrides])
    argv = shlex.split(cmd)
    assert argv[:3] == ["python", "-m", "lensml.make_dataset"] and "experiment=" not in cmd
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        made = compose("make_dataset", overrides=argv[3:])
    assert _cache_hash(made) == _cache_hash(run_cfg), cmd
    for key in ("n_train", "n_val", "n_test"):
        assert made.data[key] == run_cfg.data[key], (key, cmd)
    assert made.data.cache_dir == run_cfg.data.cache_dir
