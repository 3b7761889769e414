"""``python -m lensml.inspect_maps maps=<file or dir> out_dir=<dir>``: quality summary of MaNGA MAPS files.

Exit status: 0 when every file was read (usable or not: that is the table's verdict); 1 when any file is
unreadable (the summary still lists every file, the bad ones with status ``error``); 2 for a bad config value.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from lensml.cli import clean_errors
from lensml.data.maps_reader import resolve_maps_target
from lensml.data.quality import UsableCriteria, quality_row, write_quality_summary
from lensml.errors import LensmlError


def run(cfg: DictConfig) -> int:
    """Inspect every file of ``cfg.maps``; returns the exit status (1 if any file is unreadable)."""
    try:
        files = resolve_maps_target(cfg.maps)
        criteria = UsableCriteria(**OmegaConf.to_container(cfg.criteria, resolve=True))
    except (LensmlError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows = [
        quality_row(p, line=cfg.line, velocity=cfg.velocity, criteria=criteria)
        for p in tqdm(files, desc="inspect_maps", unit="file")
    ]
    csv_path, index_path = write_quality_summary(rows, cfg.out_dir)
    bad = [r for r in rows if r["status"] != "ok"]
    if len(files) == 1 and bad:
        print(f"error: {bad[0]['error']}", file=sys.stderr)
        return 1
    for r in bad:
        print(f"bad file: {r['error']}", file=sys.stderr)
    n_usable = sum(r["usable"] is True for r in rows)
    print(f"inspect_maps: {len(rows)} files, {n_usable} usable, {len(bad)} unreadable")
    print(f"  {csv_path}\n  {index_path}")
    return 1 if bad else 0


@hydra.main(version_base="1.3", config_path="../conf", config_name="inspect_maps")
@clean_errors
def main(cfg: DictConfig) -> int:
    return run(cfg)  # 1 when some files failed: the process's exit code


if __name__ == "__main__":
    main()
