"""Start-of-run config checks: unknown keys and a renamed model are refused with one line naming the key."""

from __future__ import annotations

import pytest

from lensml.config_checks import check_train_config
from lensml.errors import ConfigError


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+data.n_trian=5", r"data\.n_trian is not a key of data .*did you mean data\.n_train\?"),
        ("+trainer.max_epoch=3", r"trainer\.max_epoch is not a key .*did you mean trainer\.max_epochs\?"),
        ("+model.net.widht=[8]", r"model\.net\.widht is not a key of model\.net"),
        ("+callbacks.checkpoint.monitr=val/auc", r"callbacks\.checkpoint\.monitr .*did you mean"),
    ],
)
def test_unknown_keys_are_named(compose_train, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_train_config(compose_train(override))


@pytest.mark.parametrize(
    ("overrides", "choices"),
    [
        (["model.name=foo"], None),  # outside Hydra: the name must be a conf/model config ...
        (["model.name=baseline"], None),  # ... of the network being trained (dual_stream here)
        (["model=baseline", "model.name=foo"], {"model": "baseline"}),  # under Hydra: the group's choice
    ],
)
def test_a_renamed_model_is_refused(compose_train, overrides: list[str], choices: dict | None) -> None:
    with pytest.raises(ConfigError, match=r"model\.name=.*model=<name>"):
        check_train_config(compose_train(*overrides), choices)


@pytest.mark.parametrize("model", ["baseline", "dual_stream"])
@pytest.mark.parametrize("trainer", ["default", "ddp_cpu"])
@pytest.mark.parametrize("logger", ["csv", "wandb"])
def test_shipped_configs_pass(compose_train, model: str, trainer: str, logger: str) -> None:
    cfg = compose_train(f"model={model}", f"trainer={trainer}", f"logger={logger}", "data=cache")
    check_train_config(cfg, {"model": model})
    check_train_config(cfg)


@pytest.mark.parametrize(
    ("overrides", "refused"),
    [
        (["data.flux_norm=snr", "noise.peak_snr=null", "noise.background_sigma_frac=0"], True),
        (["data.flux_norm=snr", "noise.peak_snr=inf", "noise.background_sigma_frac=0.0"], True),
        (["data.flux_norm=snr", "noise.peak_snr=null", "noise.background_sigma_frac=0.01"], False),
        (["data.flux_norm=snr", "noise.peak_snr=30", "noise.background_sigma_frac=0"], False),
        (["data.flux_norm=peak", "noise.peak_snr=null", "noise.background_sigma_frac=0"], False),
        (["data.flux_norm=snr", "noise.peak_snr=null", "noise.background_sigma_frac=0",
          "data.channels=velocity", "model=baseline"], False),  # no flux channel: nothing divided
    ],
)
def test_snr_flux_norm_without_noise_is_refused_at_start(compose_train, overrides, refused: bool) -> None:
    """A noiseless flux in S/N units would fail inside a DataLoader worker; refused before, in one line."""
    cfg = compose_train(*overrides)
    if refused:
        with pytest.raises(ConfigError, match=r"data\.flux_norm=snr needs flux noise.*noise\.peak_snr"):
            check_train_config(cfg)
    else:
        check_train_config(cfg)
