"""Simulator rate in samples per CPU-second (process time, 1 torch thread), robust to a shared machine.

    python benchmarks/bench_sim_cputime.py [--checkout PATH] [key=value overrides ...]

``Simulator.sample_batch`` at the default config (64^2, torch backend with the compiled kernels), best of 7
blocks of 1024 samples after a warm-up. Wall-clock rates (``bench_sim.py``) move with other jobs on the
machine; process time moves much less, so two checkouts can be compared on a busy machine (A/B, run
alternately). ``--checkout`` measures another checkout of lensml (e.g. a ``git archive`` of an older
commit): run this script with ``PYTHONPATH=PATH`` so that its ``lensml`` is imported.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkout", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument("--block", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(args.checkout) / "benchmarks"))
    import bench_sim  # the checkout's own config composition

    from lensml.sim.simulator import build_simulator

    sim = build_simulator(bench_sim._cfg(args.overrides))
    sim.sample_batch(0, "train", range(10**7, 10**7 + 8))  # warm-up: kernels, tables
    best, start = 0.0, 0
    for _ in range(args.repeats):
        t0 = time.process_time()
        sim.sample_batch(0, "train", range(start, start + args.block))
        best = max(best, args.block / (time.process_time() - t0))
        start += args.block
    print(f"{args.checkout}: {best:.0f} samples per CPU-second (best of {args.repeats} x {args.block})")


if __name__ == "__main__":
    main()
