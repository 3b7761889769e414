"""Start-of-run validation of the ML config keys (data, model, trainer, logger, metrics, seed).

Physics groups (source, lens, subhalo, noise, instrument, sim) are validated by
``lensml.sim.simulator.build_simulator``. Every error is a ``ConfigError`` that names the key and the fix.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lensml.data.channels import (
    CHANNEL_LAYOUTS,
    InputNorm,
    check_streams,
    layout,
    n_channels,
    n_velocity_channels_of,
    required_keys,
)
from lensml.errors import ConfigError
from lensml.paths import CONF_DIR

MODELS_STREAMS = {1, 2}


def _get(cfg: DictConfig, key: str) -> Any:
    try:
        value = OmegaConf.select(cfg, key, throw_on_missing=True)
    except Exception as exc:  # missing / interpolation errors
        raise ConfigError(f"config key {key} cannot be read ({exc}); set it, e.g. {key}=...") from exc
    return value


def _int(cfg: DictConfig, key: str, minimum: int) -> int:
    v = _get(cfg, key)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ConfigError(f"{key}={v!r} must be an integer >= {minimum}; e.g. {key}={max(minimum, 1)}")
    return v


def _positive(cfg: DictConfig, key: str) -> float:
    v = _get(cfg, key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
        raise ConfigError(f"{key}={v!r} must be a positive number")
    return float(v)


def check_data(cfg: DictConfig) -> None:
    """``data.*``: mode, sizes, channels, loader settings, normalisation."""
    if _get(cfg, "data") is None:
        raise ConfigError("data group is missing; choose data=onthefly or data=cache")
    mode = _get(cfg, "data.mode")
    if mode not in ("onthefly", "cache"):
        raise ConfigError(f"data.mode={mode!r} is unknown; use data=onthefly or data=cache")
    for split in ("train", "val", "test"):
        _int(cfg, f"data.n_{split}", 1)
    _int(cfg, "data.seed", 0)
    _int(cfg, "data.batch_size", 1)
    if _get(cfg, "data.eval_batch_size") is not None:
        _int(cfg, "data.eval_batch_size", 1)
    _int(cfg, "data.num_workers", 0)
    _int(cfg, "data.worker_threads", 0)
    _positive(cfg, "data.velocity_scale_kms")
    q = _get(cfg, "data.flux_quantile")
    if not isinstance(q, int | float) or not 0 < q <= 1:
        raise ConfigError(f"data.flux_quantile={q!r} must lie in (0, 1], e.g. 0.995")
    ch = _get(cfg, "data.channels")
    if ch not in CHANNEL_LAYOUTS:
        raise ConfigError(f"data.channels={ch!r} is unknown; use one of {sorted(CHANNEL_LAYOUTS)}")
    norm = InputNorm.from_cfg(_get(cfg, "data"))  # data.flux_norm, flux_snr_scale, sigma_v_ref_kms
    n_channels(ch, n_velocity_channels_of(cfg))  # data.channels=cube needs instrument.n_velocity_channels
    required_keys(ch, norm.flux_norm)  # data.flux_norm=snr is not defined for the cube
    check_snr_has_noise(cfg, norm.flux_norm, ch)


def check_snr_has_noise(cfg: DictConfig, flux_norm: str, channels: str) -> None:
    """``data.flux_norm=snr`` divides the flux by its noise sigma: refused when the config has no flux noise.

    No noise = ``noise.peak_snr`` null (or inf) and ``noise.background_sigma_frac`` 0: ``flux_sigma`` is 0.
    """
    if flux_norm != "snr" or "flux" not in layout(channels).channels:
        return
    snr = OmegaConf.select(cfg, "noise.peak_snr", default=None)
    background = OmegaConf.select(cfg, "noise.background_sigma_frac", default=0.0)
    no_poisson = snr is None or (isinstance(snr, int | float) and not math.isfinite(snr))
    if no_poisson and isinstance(background, int | float) and not background > 0:
        raise ConfigError(
            f"data.flux_norm=snr needs flux noise, but noise.peak_snr={snr} and noise.background_sigma_frac="
            f"{background} make the flux noiseless (flux_sigma 0: no S/N units); use data.flux_norm=peak, or "
            "set noise.peak_snr (e.g. 30) or noise.background_sigma_frac > 0"
        )


def check_model(cfg: DictConfig) -> None:
    """``model.*`` and its compatibility with ``data.channels``."""
    name = _get(cfg, "model.name")
    streams = _get(cfg, "model.n_streams")
    if streams not in MODELS_STREAMS:
        raise ConfigError(f"model.n_streams={streams!r} must be 1 or 2 (model={name})")
    for key in ("model.net._target_", "model.optimizer._target_", "model.module._target_"):
        if not isinstance(_get(cfg, key), str):
            raise ConfigError(f"{key} is missing; model configs live in conf/model/ (model=baseline|...)")
    _positive(cfg, "model.optimizer.lr")
    check_streams(_get(cfg, "data.channels"), streams, name)  # 2 streams: flux first, then velocity [...]


def check_trainer(cfg: DictConfig) -> None:
    """``trainer.*`` basics."""
    if not isinstance(_get(cfg, "trainer._target_"), str):
        raise ConfigError("trainer._target_ is missing; choose trainer=default|gpu|ddp|ddp_cpu")
    _int(cfg, "trainer.max_epochs", 1)


def check_logger(cfg: DictConfig) -> None:
    """``logger``: null or an instantiable logger."""
    node = _get(cfg, "logger")
    if node is not None and not isinstance(_get(cfg, "logger._target_"), str):
        raise ConfigError("logger must be null or an option with _target_; choose logger=wandb or logger=csv")


def check_metrics(cfg: DictConfig) -> None:
    """``metrics.mass_edges_log10``: at least two increasing log10 M_sun edges."""
    edges = _get(cfg, "metrics.mass_edges_log10")
    ok = edges is not None and len(edges) >= 2
    ok = ok and all(float(a) < float(b) for a, b in zip(edges[:-1], edges[1:]))
    if not ok:
        raise ConfigError(f"metrics.mass_edges_log10={edges!r} must be >= 2 increasing numbers, e.g. [7,8,9]")


#: config nodes that ``lensml.train`` instantiates with every key as a keyword argument
INSTANTIATED = ("data", "model.net", "model.optimizer", "model.module", "trainer", "logger")


def check_known_keys(cfg: DictConfig, key: str) -> None:
    """Every key of node ``key`` must be a parameter of its ``_target_`` (``+data.n_trian=5`` is refused).

    Nodes whose target takes ``**kwargs``, or that have no importable target, are left alone.
    """
    node = _get(cfg, key)
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    if not isinstance(target, str):
        return
    try:
        from hydra.utils import get_object

        obj = get_object(target)
        params = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj).parameters
    except Exception:  # unknown target / no signature: instantiate reports it
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [name for name in params if name != "self"]
    shown = sorted(n for n in allowed if params[n].default is not inspect.Parameter.empty)
    for k in node:
        if str(k).startswith("_") or k in allowed:
            continue
        close = difflib.get_close_matches(str(k), allowed, n=1)
        hint = f"did you mean {key}.{close[0]}? " if close else ""
        raise ConfigError(
            f"{key}.{k} is not a key of {key} ({target.rsplit('.', 1)[-1]}); {hint}"
            f"remove it or fix its spelling (known: {', '.join(shown)})"
        )


def model_config_names() -> list[str]:
    """Names of the model configs in ``conf/model/``."""
    return sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


def _net_target(name: str) -> str | None:
    """``net._target_`` of ``conf/model/<name>.yaml``, following its defaults (dual_stream -> baseline)."""
    node = OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml")
    target = OmegaConf.select(node, "net._target_")
    if target is None:
        parents = [d for d in node.get("defaults", []) if isinstance(d, str) and d != "_self_"]
        return _net_target(parents[0]) if parents else None
    return str(target)


def check_model_name(cfg: DictConfig, choices: Mapping[str, str] | None = None) -> None:
    """``model.name`` is the model group's choice (metrics and summaries report it); it cannot be renamed.

    Under ``@hydra.main`` it must equal the choice (``model=...``); otherwise one of ``conf/model/``.
    """
    name = _get(cfg, "model.name")
    choice = (choices or {}).get("model")
    if choice is not None and name == choice:
        return
    net = _get(cfg, "model.net._target_")
    if choice is None and name in model_config_names() and _net_target(name) == net:
        return
    what = f"the model config chosen is model={choice}" if choice else f"conf/model/: {model_config_names()}"
    raise ConfigError(
        f"model.name={name!r} does not name the network being trained ({what}); model.name is set by the "
        "model config: choose the network with model=<name> and leave model.name alone"
    )


def check_train_config(cfg: DictConfig, choices: Mapping[str, str] | None = None) -> None:
    """Validate every ML key used by ``lensml.train`` (raises ``ConfigError`` naming the key).

    ``choices``: Hydra's config-group choices of the run (``HydraConfig.get().runtime.choices``), if any.
    """
    _int(cfg, "seed", 0)
    check_data(cfg)
    check_model(cfg)
    check_trainer(cfg)
    check_logger(cfg)
    check_metrics(cfg)
    check_model_name(cfg, choices)
    for key in INSTANTIATED:
        check_known_keys(cfg, key)
    for name in _get(cfg, "callbacks") or {}:
        check_known_keys(cfg, f"callbacks.{name}")
    if _get(cfg, "test_ckpt") not in ("best", "last"):
        raise ConfigError(f"test_ckpt={_get(cfg, 'test_ckpt')!r} must be best or last")
