"""Simulator speed: samples/s of each backend at 64x64 and 128x128, and the ratio to a plain lenstronomy loop.

    python benchmarks/bench_sim.py [--cores 1 2] [--repeats 5] [--n-torch 128] [--n-ref 8] [--quick]
                                   [--cube 8 16] [--set KEY=VALUE ...]

The physics of SAMPLES_VERSION 4 (before the hard negatives: no lens multipoles, 0-3 co-moving clumps of
0.015-0.04"), to compare with figures measured then::

    --set 'lens.multipoles.orders=[]' --set source.n_clumps.high=3 --set source.clump_dv_kms=0
    --set source.clump_sigma_arcsec.low=0.015

Not a test: it prints numbers. Everything is measured in one run, on the same samples (default physics:
analytic disk with 0-6 clumps, SIE + shear + m = 3, 4 multipoles, TNFW subhalo in half the samples, nominal
noise, 3.2" field, 2x supersampling, 0.1" PSF), each way of rendering on 1 core (this process, 1 torch
thread) and on N cores (N worker processes of 1 thread rendering disjoint blocks, as ``data.num_workers``
DataLoader workers do):

- ``torch``: ``Simulator.sample_batch`` with the batched backend as configured by default (on the CPU in
  float32: the compiled kernels of ``lensml/sim/backends/cpu_*.py`` and the noise kernel);
- ``torch ops``: the same backend with ``sim.cpu_kernels=false`` (torch operations only, as on a GPU);
- ``lenstronomy``: the reference backend (per-image ``LensModel.ray_shooting`` + numpy);
- ``ImSim``: a plain per-image loop with lenstronomy's own image simulation (``ImageModel.image`` for the
  flux and ``TracerModelSource.tracer_model`` for the flux-weighted velocity; INTERPOL source grids, same PSF
  kernel and supersampling; model objects built once), plus the same parameter draws, source grids and
  noise.

- ``torch cube N_v``: ``torch`` (and ``torch ops``, without ``--quick``) with the IFU cube on
  (``instrument.n_velocity_channels=N_v``, ``--cube``; ``lensml.sim.cube``): the moment maps plus the cube
  of N_v noisy slices, from the same rays.

Ratios are taken core for core (torch on N cores / ImSim on N cores), and against the plain loop on one core.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from collections.abc import Callable

import torch
from hydra import compose, initialize_config_dir

from lensml.paths import CONF_DIR
from lensml.sim.instrument import add_noise
from lensml.sim.simulator import build_simulator

GRIDS = {
    64: ["instrument.n_pix=64", "instrument.pixel_scale_arcsec=0.05"],
    128: ["instrument.n_pix=128", "instrument.pixel_scale_arcsec=0.025"],
}
#: way of rendering -> extra config overrides
KINDS = {
    "torch": [],
    "torch ops": ["sim.cpu_kernels=false"],
    "lenstronomy": ["sim=lenstronomy"],
    "ImSim": ["sim=lenstronomy"],
}


def _cfg(overrides: list[str]):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("preview", overrides=overrides)


def imsim_loop(sim, seed: int, indices: list[int]) -> None:
    """Plain lenstronomy: per image, ImageModel.image (flux) + TracerModelSource.tracer_model (velocity)."""
    from lenstronomy.LightModel.light_model import LightModel

    from lensml.sim.backends.lenstronomy_backend import tracer_image_model

    pix = sim.instrument.pixel_scale_arcsec
    model = tracer_image_model(
        sim.instrument, sim.lens_model_list, LightModel(["INTERPOL"]), LightModel(["INTERPOL"])
    )
    for i in indices:
        batch = sim.draw_batch(seed, "train", [i])
        draw, key = batch.one(0), batch.noise_key[0]
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
        add_noise(flux[None], vel[None], mask[None], sim.noise, [key], batch.sigma_line_kms, batch.peak_snr)


def renderer(kind: str, overrides: list[str]) -> Callable[[int, int], None]:
    """A function rendering samples [start, start + n) of the train split the ``kind`` way (1 thread)."""
    torch.set_num_threads(1)
    sim = build_simulator(_cfg([*overrides, *KINDS[kind]]))
    if kind == "ImSim":
        imsim_loop(sim, 0, [10**7])  # warm-up: lenstronomy model objects, caches
        return lambda start, n: imsim_loop(sim, 0, list(range(start, start + n)))
    sim.sample_batch(0, "train", range(10**7, 10**7 + 8))  # warm-up: kernels, tables
    return lambda start, n: sim.sample_batch(0, "train", range(start, start + n))


_WORKER: Callable[[int, int], None] | None = None


def _worker_init(kind: str, overrides: list[str]) -> None:
    global _WORKER
    _WORKER = renderer(kind, overrides)


def _worker_block(start_n: tuple[int, int]) -> int:
    start, n = start_n
    _WORKER(start, n)
    return n


def rate(kind: str, overrides: list[str], cores: int, n: int, repeats: int) -> float:
    """Best samples/s (wall clock) over ``repeats`` rounds; each round renders ``cores`` blocks of ``n``
    samples per core (1 core: in this process; more: in as many 1-thread worker processes)."""
    best = 0.0
    if cores == 1:
        render = renderer(kind, overrides)
        for r in range(repeats):
            t0 = time.perf_counter()
            render(r * n, n)
            best = max(best, n / (time.perf_counter() - t0))
        return best
    ctx = mp.get_context("spawn")
    with ctx.Pool(cores, initializer=_worker_init, initargs=(kind, overrides)) as pool:
        pool.map(_worker_block, [(10**6 + k * n, n) for k in range(cores)], chunksize=1)  # all started
        for r in range(repeats):
            blocks = [((r * 2 * cores + k) * n, n) for k in range(2 * cores)]
            t0 = time.perf_counter()
            done = sum(pool.map(_worker_block, blocks, chunksize=1))
            best = max(best, done / (time.perf_counter() - t0))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2], help="core counts to measure")
    parser.add_argument("--n-torch", type=int, default=128, help="samples per torch block at 64x64")
    parser.add_argument("--n-ref", type=int, default=8, help="samples per lenstronomy block at 64x64")
    parser.add_argument("--repeats", type=int, default=5, help="blocks per measurement; the best is kept")
    parser.add_argument("--quick", action="store_true", help="64x64 only, torch and ImSim only")
    parser.add_argument("--cube", type=int, nargs="*", default=[8, 16],
                        help="IFU cube channel counts (instrument.n_velocity_channels); none: skip")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for every way of rendering (repeatable), e.g. --set lens.multipoles.orders=[]",
    )
    args = parser.parse_args()

    kinds = ["torch", "ImSim"] if args.quick else list(KINDS)
    grids = {64: GRIDS[64]} if args.quick else GRIDS
    print(
        f"torch {torch.__version__}, {mp.cpu_count()} CPUs; samples/s = best of {args.repeats} blocks, "
        "wall clock; N cores = N worker processes of 1 thread"
    )
    for n_pix, grid in grids.items():
        rates: dict[tuple[str, int], float] = {}
        heads = " ".join(f"{f'{c} core' + ('s' if c > 1 else ''):>10}" for c in args.cores)
        print(f"\n{f'{n_pix}^2':<19}" + heads)
        for kind in kinds:
            fast = kind.startswith("torch")
            n = args.n_torch if fast else args.n_ref
            n = n if n_pix == 64 else max(n // (4 if fast else 2), 2)
            for cores in args.cores:
                rates[kind, cores] = rate(kind, [*grid, *args.set], cores, n, args.repeats)
            print(f"  {kind:<18}" + " ".join(f"{rates[kind, c]:>10.0f}" for c in args.cores), flush=True)
        for kind in [k for k in kinds if k.startswith("torch")]:
            for nv in args.cube:
                n = args.n_torch if n_pix == 64 else max(args.n_torch // 4, 2)
                cube = [*grid, *args.set, f"instrument.n_velocity_channels={nv}"]
                row = [rate(kind, cube, c, n, args.repeats) for c in args.cores]
                label = f"{kind} cube {nv}"
                print(f"  {label:<18}" + " ".join(f"{r:>10.0f}" for r in row)
                      + f"   ({row[0] / rates[kind, args.cores[0]]:.2f}x the maps alone)", flush=True)
        base = rates["ImSim", 1]
        for kind in ("torch", "torch ops"):
            if kind not in kinds:
                continue
            same = ", ".join(
                f"{c} core{'s' if c > 1 else ''}: {rates[kind, c] / rates['ImSim', c]:.1f}x"
                for c in args.cores
            )
            print(
                f"  {kind} / ImSim, core for core: {same}; on {max(args.cores)} cores vs the plain loop on 1 "
                f"core: {rates[kind, max(args.cores)] / base:.1f}x"
            )


if __name__ == "__main__":
    main()
