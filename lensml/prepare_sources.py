"""``python -m lensml.prepare_sources maps=<file or dir> out_dir=<dir>``: MAPS files -> source tensors.

Exit status: 0 when every file was prepared; 1 when any file failed (a batch still prepares the others and
names each failure on stderr); 2 for a bad config value.
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig
from tqdm import tqdm

from lensml.cli import clean_errors
from lensml.data.maps_reader import resolve_maps_target
from lensml.data.source_tensor import prepare_source
from lensml.errors import LensmlError

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> int:
    """Prepare every file of ``cfg.maps``; returns the exit status (1 if any file failed)."""
    try:
        files = resolve_maps_target(cfg.maps)
    except LensmlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    written, failed = [], []
    for path in tqdm(files, desc="prepare_sources", unit="file", disable=len(files) == 1):
        try:
            written.append(prepare_source(
                path, cfg.out_dir, line=cfg.line, velocity=cfg.velocity, n_pix=int(cfg.n_pix),
                grid_size_arcsec=cfg.grid_size_arcsec, preview=bool(cfg.previews),
            ))
        except LensmlError as exc:
            failed.append(str(exc))
            if len(files) == 1:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        except Exception as exc:  # a batch goes on; a single file shows the traceback
            if len(files) == 1:
                raise
            log.exception("%s: unexpected error", path)
            failed.append(f"{path}: unexpected {type(exc).__name__}: {exc}")
    for msg in failed:
        print(f"skipped: {msg}", file=sys.stderr)
    print(f"prepare_sources: {len(written)} written to {cfg.out_dir}, {len(failed)} failed")
    return 1 if failed or not written else 0


@hydra.main(version_base="1.3", config_path="../conf", config_name="prepare_sources")
@clean_errors
def main(cfg: DictConfig) -> int:
    return run(cfg)  # 1 when some files failed: the process's exit code


if __name__ == "__main__":
    main()
