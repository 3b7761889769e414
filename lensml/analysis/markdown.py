"""Markdown helpers of the report: a value with its interval, a table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np


def fmt_ci(m: Mapping[str, Any] | None, signed: bool = False) -> str:
    """``value [lo, hi]`` with 3 decimals (``+`` sign if ``signed``); ``n/a`` if missing."""
    if not m or m.get("value") is None or not np.isfinite(m["value"]):
        return "n/a"
    f = "{:+.3f}" if signed else "{:.3f}"
    lo, hi = m["ci"]
    return f"{f.format(m['value'])} [{f.format(lo)}, {f.format(hi)}]"


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table: the header cells, a separator, then one line per row of cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
