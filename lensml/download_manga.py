"""``python -m lensml.download_manga [plateifus=[...]] [out_dir=data/maps]``: fetch DR17 MaNGA MAPS files."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, ListConfig
from tqdm import tqdm

from lensml.cli import clean_errors
from lensml.data.download import CANONICAL_LIST, download_maps, read_plateifu_list
from lensml.errors import LensmlError


def _plateifus(cfg: DictConfig) -> list[str]:
    value = cfg.plateifus
    if value is None:
        return read_plateifu_list(cfg.list_file or CANONICAL_LIST)
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    if isinstance(value, ListConfig | list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def run(cfg: DictConfig) -> int:
    """Download the requested files; returns the exit status (1 if any file is missing at the end)."""
    try:
        plateifus = _plateifus(cfg)
        paths, errors = download_maps(
            plateifus, cfg.out_dir, base_url=cfg.base_url, daptype=cfg.daptype,
            timeout_s=float(cfg.timeout_s), retries=int(cfg.retries), backoff_s=float(cfg.backoff_s),
            reporter=lambda total, desc: tqdm(total=total, desc=desc, unit="B", unit_scale=True, leave=False),
        )
    except LensmlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for exc in errors:
        print(f"error: {exc}", file=sys.stderr)
    untried = len(plateifus) - len(paths) - len(errors)
    if untried > 0:
        print(f"stopped: the archive is unreachable; {untried} more file(s) not tried", file=sys.stderr)
    print(f"download_manga: {len(paths)}/{len(plateifus)} MAPS files in {cfg.out_dir}")
    return 1 if errors or len(paths) < len(plateifus) else 0


@hydra.main(version_base="1.3", config_path="../conf", config_name="download_manga")
@clean_errors
def main(cfg: DictConfig) -> int:
    return run(cfg)  # 1 when some files failed: the process's exit code


if __name__ == "__main__":
    main()
