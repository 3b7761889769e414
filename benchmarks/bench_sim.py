"""Simulator speed: samples/s of each backend at 64x64 and 128x128, and the ratio to plain lenstronomy loops.

    python benchmarks/bench_sim.py [--n-torch 128] [--n-ref 8] [--threads 1 2] [--processes 2]

Not a test: it prints numbers. Everything is measured in one run, on the same samples (default physics:
analytic disk, SIE + shear, TNFW subhalo in half the samples, nominal noise, 3.2" field, 2x supersampling,
0.1" PSF). Three ways of rendering the same flux + velocity samples:

- ``torch``: ``Simulator.sample_batch`` with the batched PyTorch backend (parameters, sources, noise), in
  this process with 1 and 2 torch threads, and in ``--processes`` worker processes of 1 thread each that
  render disjoint blocks of samples (how ``data.num_workers`` DataLoader workers use the cores);
- ``lenstronomy``: the same with the reference backend (per-image ``LensModel.ray_shooting`` + numpy);
- ``lenstronomy ImSim``: a plain per-image loop with lenstronomy's own image simulation (``ImageModel.image``
  for the flux and ``TracerModelSource.tracer_model`` for the flux-weighted velocity; INTERPOL source grids,
  same PSF kernel and supersampling; model objects built once), plus the same noise.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from lensml.paths import CONF_DIR
from lensml.sim.instrument import add_noise
from lensml.sim.simulator import build_simulator

GRIDS = {
    64: ["instrument.n_pix=64", "instrument.pixel_scale_arcsec=0.05"],
    128: ["instrument.n_pix=128", "instrument.pixel_scale_arcsec=0.025"],
}


def _cfg(overrides: list[str]):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("preview", overrides=overrides)


def _rate(fn, n: int, repeats: int = 2) -> tuple[float, float]:
    """Best samples/s over ``repeats`` calls of ``fn`` (n samples each): wall clock and per CPU-second."""
    best_wall = best_cpu = 0.0
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        best_wall = max(best_wall, n / (time.perf_counter() - w0))
        best_cpu = max(best_cpu, n / max(time.process_time() - c0, 1e-9))
    return best_wall, best_cpu


def imsim_loop(sim, seed: int, indices: list[int]) -> None:
    """Plain lenstronomy: per image, ImageModel.image (flux) + TracerModelSource.tracer_model (velocity)."""
    from lenstronomy.LightModel.light_model import LightModel

    from lensml.sim.backends.lenstronomy_backend import tracer_image_model

    pix = sim.instrument.pixel_scale_arcsec
    model = tracer_image_model(
        sim.instrument, sim.lens_model_list, LightModel(["INTERPOL"]), LightModel(["INTERPOL"])
    )
    for i in indices:
        draw, key = sim.draw(seed, "train", i)
        ((idx, grids),) = sim.sources.grids([draw.source], "train")
        kw_lens = [{k: float(v[0]) for k, v in kw.items()} for kw in sim.lens_kwargs([draw])]
        m = grids.flux.shape[-1]
        scale = 2 * float(grids.half_size_arcsec[0]) / m
        common = dict(center_x=float(grids.center_x[0]), center_y=float(grids.center_y[0]), scale=scale)
        kw_src = [dict(image=grids.flux[0], amp=1.0, **common)]
        kw_vel = [dict(image=grids.velocity_kms[0], amp=1.0, **common)]
        flux = model.image(kwargs_lens=kw_lens, kwargs_source=kw_src) / pix**2
        vel = model.tracer_model(kw_vel, kw_lens, kw_src)
        mask = flux > sim.noise.mask_frac_of_peak * flux.max()
        add_noise(flux[None], np.where(mask, vel, 0.0)[None], mask[None], sim.noise, [key])


_WORKER_SIM = None


def _worker_init(overrides: list[str]) -> None:
    global _WORKER_SIM
    torch.set_num_threads(1)
    _WORKER_SIM = build_simulator(_cfg(overrides))
    _WORKER_SIM.sample_batch(0, "train", range(8))  # warm-up


def _worker_block(start_n: tuple[int, int]) -> int:
    start, n = start_n
    _WORKER_SIM.sample_batch(0, "train", range(start, start + n))
    return n


def process_rate(overrides: list[str], processes: int, n: int, repeats: int) -> float:
    """Best samples/s (wall clock) of ``processes`` 1-thread workers rendering 4 blocks of ``n`` each."""
    ctx = mp.get_context("spawn")
    best = 0.0
    with ctx.Pool(processes, initializer=_worker_init, initargs=(overrides,)) as pool:
        pool.map(_worker_block, [(10**6 + k * n, n) for k in range(processes)], chunksize=1)
        for r in range(repeats):
            blocks = [((r * 4 * processes + k) * n, n) for k in range(4 * processes)]
            t0 = time.perf_counter()
            done = sum(pool.map(_worker_block, blocks, chunksize=1))
            best = max(best, done / (time.perf_counter() - t0))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-torch", type=int, default=128, help="samples per torch block (64x64)")
    parser.add_argument("--n-ref", type=int, default=8, help="samples per lenstronomy block (64x64)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="blocks per measurement; the best is kept"
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--processes", type=int, default=2, help="worker processes for the last torch row (0: skip)"
    )
    args = parser.parse_args()

    print(
        f"torch {torch.__version__}; samples/s = best of {args.repeats} blocks, wall clock "
        "[per CPU-second of this process in brackets: robust to other load on a shared machine]"
    )
    print(
        f"{'grid':>7} {'threads':>7} {'torch':>14} {'lenstronomy':>14} {'ImSim':>14} "
        f"{'torch/lenstronomy':>18} {'torch/ImSim':>12}"
    )
    for n_pix, grid in GRIDS.items():
        sim_t = build_simulator(_cfg(grid))
        sim_l = build_simulator(_cfg([*grid, "sim=lenstronomy"]))
        n_torch = args.n_torch if n_pix == 64 else max(args.n_torch // 4, 8)
        n_ref = args.n_ref if n_pix == 64 else max(args.n_ref // 2, 2)
        sim_l.sample_batch(0, "train", range(2))  # warm-up (lenstronomy model objects, caches)
        imsim_loop(sim_l, 0, [0])
        best_imsim = 0.0
        for threads in args.threads:
            torch.set_num_threads(threads)
            sim_t.sample_batch(0, "train", range(8))  # warm-up
            blocks = iter(range(1000))

            def run_torch(sim=sim_t, n=n_torch, blocks=blocks):
                start = next(blocks) * n
                sim.sample_batch(0, "train", range(start, start + n))

            def run_lens(sim=sim_l, n=n_ref, blocks=blocks):
                start = next(blocks) * n
                sim.sample_batch(0, "train", range(start, start + n))

            def run_imsim(sim=sim_l, n=n_ref, blocks=blocks):
                start = next(blocks) * n
                imsim_loop(sim, 0, list(range(start, start + n)))

            r_torch = _rate(run_torch, n_torch, args.repeats)
            r_lens = _rate(run_lens, n_ref, args.repeats)
            r_imsim = _rate(run_imsim, n_ref, args.repeats)
            cells = " ".join(f"{w:>6.0f} [{c:>5.0f}]" for w, c in (r_torch, r_lens, r_imsim))
            vs_lens = f"{r_torch[0] / r_lens[0]:>8.1f}x [{r_torch[1] / r_lens[1]:>4.1f}x]"
            vs_imsim = f"{r_torch[0] / r_imsim[0]:>5.1f}x [{r_torch[1] / r_imsim[1]:>4.1f}x]"
            print(f"{n_pix:>4}^2 {threads:>7} {cells} {vs_lens} {vs_imsim}", flush=True)
            best_imsim = max(best_imsim, r_imsim[0])
        if args.processes:
            rate = process_rate(grid, args.processes, n_torch, args.repeats)
            print(
                f"{n_pix:>4}^2 torch in {args.processes} processes of 1 thread: {rate:>6.0f} samples/s = "
                f"{rate / best_imsim:.1f}x the ImSim loop (its best row above)",
                flush=True,
            )


if __name__ == "__main__":
    main()
