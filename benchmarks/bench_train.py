"""Training throughput of each model and the on-the-fly data rate (samples/s).

    python benchmarks/bench_train.py [--threads 2] [--batches 20] [key=value overrides ...]

Prints: data rate in the main process (one sample_batch per batch), through a DataLoader with 1 worker
(worker_threads=1, as data=onthefly does), and the optimisation-step rate of every model (baseline,
dual_stream, resnet, resnet_dual; or --models) on random inputs (forward + backward + optimiser step), in fp32
(contiguous) and in bf16 autocast + channels_last, and which of the two ``trainer.precision=auto`` picks on
this machine (``lensml.models.hardware``). Data keeps up with training when its rate exceeds the model's.
A model that trains below ~150 samples/s on 2 cores is too big for a laptop.
"""

from __future__ import annotations

import argparse
import time

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from lensml.data.cache import physics_config
from lensml.data.channels import n_channels
from lensml.models.hardware import describe, resolve_channels_last, resolve_precision
from lensml.paths import CONF_DIR

MODELS = ("baseline", "dual_stream", "resnet", "resnet_dual")


def data_rate(cfg, n_batches: int, num_workers: int) -> float:  # noqa: ANN001
    factory = instantiate(
        cfg.data, _partial_=True, _convert_="all", num_workers=num_workers, memory_cache=False
    )
    dm = factory(sim_cfg=physics_config(cfg))
    dm.setup("fit")
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)  # warm-up: worker start, simulator build
    t0 = time.perf_counter()
    n = 0
    for _ in range(n_batches):
        n += len(next(it)["label"])
    return n / (time.perf_counter() - t0)


def train_rate(
    overrides: list[str], model: str, n_batches: int, repeats: int = 3, bf16: bool = False
) -> float:
    """Training samples/s of ``model``: fp32, or bf16 autocast + channels_last (``bf16=True``)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        mcfg = compose("train", overrides=[f"model={model}", "run_dir=.", *overrides])
    bs = int(mcfg.data.batch_size)
    c = n_channels(mcfg.data.channels)
    net = instantiate(mcfg.model.net, in_channels=c, _convert_="all")
    opt = instantiate(mcfg.model.optimizer)(net.parameters())
    n_pix = int(mcfg.instrument.n_pix)
    x = torch.randn(bs, c, n_pix, n_pix)
    if bf16:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (bs,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    best = float("inf")
    for _ in range(repeats):  # best of several: the machine is shared, the minimum is the least disturbed
        t0 = time.perf_counter()
        for _ in range(n_batches):
            step()
        best = min(best, time.perf_counter() - t0)
    return n_batches * bs / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the main process")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3, help="train-step timings repeated, best reported")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated model configs")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["run_dir=.", *args.overrides])
    print(f"torch threads={args.threads}, batch={cfg.data.batch_size}, n_pix={cfg.instrument.n_pix}, "
          f"sim backend={cfg.sim.backend}, overrides={args.overrides}")
    print(f"data on the fly, main process      : {data_rate(cfg, args.batches, 0):8.0f} samples/s")
    print(f"data on the fly, DataLoader 1 worker: {data_rate(cfg, args.batches, 1):8.0f} samples/s")
    prec, cl = resolve_precision("auto", "cpu"), resolve_channels_last("auto", "cpu")
    print(f"trainer.precision=auto / model.channels_last=auto on this CPU: {describe(prec, cl)}")
    for model in args.models.split(","):
        fp32 = train_rate(args.overrides, model, args.batches, args.repeats)
        bf16 = train_rate(args.overrides, model, args.batches, args.repeats, bf16=True)
        pick = "bf16" if prec == "bf16-mixed" else "fp32"
        print(f"train step {model:12s}: fp32 {fp32:8.0f}   bf16+channels_last {bf16:8.0f} samples/s "
              f"(x{bf16 / fp32:.2f}; auto -> {pick})")


if __name__ == "__main__":
    main()
