"""Report figures: a variant's colour is the same in every process (a regenerated figure is the same file)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_a_variant_colour_does_not_depend_on_the_process_hash_seed() -> None:
    code = "from lensml.analysis.plots import color; print(color('some_new_variant'), color('flux_velocity'))"
    out = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2", "3")}
    assert len(out) == 1 and out.pop().split()[1] == "tab:orange"
