"""Precision and memory format chosen by what the hardware supports (``trainer.precision`` /
``model.channels_last`` = ``auto``).

On CPUs with native bf16 arithmetic (x86 flags ``amx_bf16`` or ``avx512_bf16`` in ``/proc/cpuinfo``) bf16
autocast (Lightning ``precision="bf16-mixed"``) plus the ``channels_last`` memory format made CNN training
steps 2-3x faster (issue 13; ``benchmarks/bench_train.py`` measures both); without them bf16 is emulated and
can be slower, so ``auto`` keeps fp32 (``32-true``) and the default layout there. On a CUDA GPU ``auto`` picks
``bf16-mixed`` when the GPU supports bf16 (Ampere and newer), and ``channels_last`` with it.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

from lensml.errors import ConfigError

log = logging.getLogger(__name__)

#: x86 CPU flags that mean native bf16 matrix / vector arithmetic
BF16_CPU_FLAGS: tuple[str, ...] = ("amx_bf16", "avx512_bf16")


@functools.cache
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags of the first ``flags`` line of ``cpuinfo`` (empty if unreadable, e.g. macOS)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16(accelerator: str = "cpu", flags: frozenset[str] | None = None) -> bool:
    """True if ``accelerator`` (``cpu``, ``gpu``/``cuda``, ``auto``) computes bf16 natively."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in BF16_CPU_FLAGS)


def resolve_precision(
    value: str | int, accelerator: str = "cpu", flags: frozenset[str] | None = None
) -> str:
    """``trainer.precision``: ``auto`` -> ``bf16-mixed`` with native bf16, else ``32-true``; others as is."""
    if str(value) != "auto":
        return str(value)
    return "bf16-mixed" if native_bf16(accelerator, flags) else "32-true"


def resolve_channels_last(
    value: bool | str, accelerator: str = "cpu", flags: frozenset[str] | None = None
) -> bool:
    """``model.channels_last``: ``auto`` -> True with native bf16 (where it pays), else False; or a bool."""
    if value == "auto":
        return native_bf16(accelerator, flags)
    if not isinstance(value, bool):
        raise ConfigError(f"model.channels_last={value!r} must be auto, true or false")
    return value


def describe(precision: str, channels_last: bool, accelerator: str = "cpu") -> str:
    """One log line: the choice and why."""
    why = ("native bf16: " + ",".join(f for f in BF16_CPU_FLAGS if f in cpu_flags())
           if accelerator == "cpu" and native_bf16("cpu") else
           "no native bf16 on this CPU" if accelerator == "cpu" else f"accelerator={accelerator}")
    return f"precision={precision} channels_last={channels_last} ({why})"
