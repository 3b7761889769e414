"""Cost of the atomic writer's fsync: one cache shard and one checkpoint, with and without fsync.

    python benchmarks/bench_atomic_write.py [--folder data/bench_fsync] [--repeats 3]

Not a test: it prints seconds per write. A shard is one ``save_npz`` of ~70 MB (1024 samples of five 64x64
float32 maps, what ``make_dataset`` writes per 1024 samples); a checkpoint one ``torch.save`` of ~10 MB.
Compare the shard's fsync cost with the time to render it (``python benchmarks/bench_sim.py``: 1024 divided
by its samples/s). Run it on the filesystem the caches live on (``--folder``): the cost is the disk's.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch

import lensml.atomic_io as aio


def _time(write, repeats: int, fsync: bool) -> float:
    saved = aio._fsync_file, aio._fsync_dir
    if not fsync:
        aio._fsync_file = aio._fsync_dir = lambda path: None
    try:
        t0 = time.perf_counter()
        for _ in range(repeats):
            write()
        return (time.perf_counter() - t0) / repeats
    finally:
        aio._fsync_file, aio._fsync_dir = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", default="data/bench_fsync", help="scratch folder (removed afterwards)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shard = {k: rng.random((1024, 64, 64), dtype=np.float32) for k in ("f", "v", "m", "sv", "sf")}
    ckpt = {"state_dict": {f"w{i}": torch.randn(256, 1024) for i in range(10)}}

    def save_ckpt() -> None:
        with aio.atomic_path(folder / "last.ckpt") as tmp:
            torch.save(ckpt, tmp)

    try:
        for name, write in (("shard ~70 MB", lambda: aio.save_npz(folder / "s.npz", **shard)),
                            ("checkpoint ~10 MB", save_ckpt)):
            off, on = _time(write, args.repeats, False), _time(write, args.repeats, True)
            print(f"{name:18s} no fsync {off:6.3f} s   fsync {on:6.3f} s   (+{on - off:.3f} s per write)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
