"""Train the GAN of MMEngine's "train a GAN" tutorial on a ring of 8 Gaussians with ``lightning.Trainer``.

The model (``examples/gan/gan_model.py``) keeps the tutorial's hand-written
``train_step``: a discriminator update, then a generator update with the
discriminator frozen, each through its own optim wrapper of an ``OptimWrapperDict``
built from a dict of per-submodule configs. ``MMLightningModule`` runs it under
Lightning's manual optimization. The data is a ring of 8 Gaussians (radius 2,
std 0.05) generated from a seed; no download. ``--devices 2 --strategy ddp_separate``
trains in two processes, generator and discriminator each in its own DDP
(``mm2lightning.SeparateDDPStrategy``, as MMEngine's ``MMSeparateDistributedDataParallel``);
``--strategy fsdp_mm`` shards each of them over the processes instead (``mm2lightning.MMFSDPStrategy``).

At the end it samples 2000 points from fixed noise, prints the quality figures on
one line, e.g. ``modes_covered=8/8 within_3std=0.860 iterations=10240 time=23.3s``, and writes real against
generated samples as an SVG scatter plot (``--out``, default
``work_dirs/gan/samples.svg``). See ``examples/gan/README.md``.

Run:
    python examples/gan/train.py [--epochs 80] [--seed 0] [--out work_dirs/gan/samples.svg]
    python examples/gan/train.py --devices 2 --strategy ddp_separate
    python examples/gan/train.py --devices 2 --strategy fsdp_mm
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gan_model import GAN, RingDataset, ring_quality, ring_samples, write_svg  # noqa: E402

from mm2lightning import MMLightningModule  # noqa: E402 - also registers strategy='ddp_separate' with Lightning

# One process: 80 epochs x 128 batches = 10240 iterations (two optimizer steps each), about 24 s on 2 CPU cores.
EPOCHS = 80
NUM_SAMPLES = 32768
BATCH_SIZE = 256
GEN_LR = DISC_LR = 1e-3
NUM_EVAL_SAMPLES = 2000
EVAL_SEED = 1234
NUM_REAL_PLOTTED = 500
DEFAULT_OUT = Path("work_dirs/gan/samples.svg")  # relative to the working directory, as MMEngine's work_dir

# The DataLoader has no worker processes on purpose: a batch of 256 2-D points costs less than starting one.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")


def optim_wrapper_cfg(gen_lr: float = GEN_LR, disc_lr: float = DISC_LR) -> dict:
    """One optim wrapper per submodule, as a dict of configs (MMEngine's Runner would need an OptimWrapperDict)."""
    return dict(
        generator=dict(optimizer=dict(type="Adam", lr=gen_lr, betas=(0.5, 0.999))),
        discriminator=dict(optimizer=dict(type="Adam", lr=disc_lr, betas=(0.5, 0.999))),
    )


# Cosine decay to 0 over the whole run, per iteration, for each wrapper (``end`` defaults to the run's last iteration):
# the last iterations refine the modes instead of oscillating around them.
PARAM_SCHEDULER = dict(type="CosineAnnealingLR", by_epoch=False, eta_min=0.0)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` intra-op threads (``None``: leave them alone), then restore the previous number."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train(
    max_epochs: int = EPOCHS,
    seed: int = 0,
    devices: int = 1,
    strategy: Any = "auto",
    num_samples: int = NUM_SAMPLES,
    batch_size: int = BATCH_SIZE,
    gen_lr: float = GEN_LR,
    disc_lr: float = DISC_LR,
    threads: int | None = 1,
    **trainer_kwargs: Any,
) -> tuple[MMLightningModule, L.Trainer]:
    """Train the GAN; return the module and the trainer.

    ``seed`` seeds the weights, the model's noise generator, the data set and the
    shuffling. With ``devices=2`` each process trains on its half of every epoch
    (Lightning's DistributedSampler), so an epoch has half the iterations.
    ``threads``: torch's intra-op threads while training (restored afterwards).
    Layers of 64 units gain nothing from a second thread, and while another
    process kept this 2-core machine busy, two threads made training more than 10x
    slower.
    """
    with torch_threads(threads):
        torch.manual_seed(seed)
        module = MMLightningModule(
            GAN(seed=seed), optim_wrapper=optim_wrapper_cfg(gen_lr, disc_lr), param_scheduler=PARAM_SCHEDULER
        )
        loader = DataLoader(
            RingDataset(num_samples, seed=seed),
            batch_size=batch_size,
            shuffle=True,
            drop_last=True,  # full batches: the discriminator judges samples in pairs
            generator=torch.Generator().manual_seed(seed),
        )
        trainer_kwargs = dict(
            dict(max_epochs=max_epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                 enable_model_summary=False, accelerator="cpu", devices=devices, strategy=strategy),
            **trainer_kwargs,
        )
        trainer = L.Trainer(**trainer_kwargs)
        trainer.fit(module, loader)
    return module, trainer


def evaluate(model: GAN, num: int = NUM_EVAL_SAMPLES, seed: int = EVAL_SEED) -> tuple[torch.Tensor, dict[str, Any]]:
    """``num`` samples from fixed noise and their :func:`ring_quality`."""
    samples = model.sample(num, seed=seed)
    return samples, ring_quality(samples)


def format_quality(quality: dict[str, Any]) -> str:
    """The quality figures on one line, e.g. ``modes_covered=8/8 within_3std=0.860``."""
    return f"modes_covered={quality['modes_covered']}/8 within_3std={quality['within_3std']:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--devices", type=int, default=1, help="processes (CPU), 1 or 2")
    parser.add_argument("--strategy", choices=["auto", "ddp_separate", "fsdp_mm"], default="auto")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="SVG scatter plot of real and generated samples")
    args = parser.parse_args()
    start = time.perf_counter()
    module, trainer = train(args.epochs, args.seed, args.devices, args.strategy)
    samples, quality = evaluate(module.model)  # on every rank: a sharded generator gathers its weights to sample
    if not trainer.is_global_zero:  # every rank holds the same weights: rank 0 reports
        return
    print(f"{format_quality(quality)} iterations={trainer.global_step} time={time.perf_counter() - start:.1f}s")
    path = write_svg(
        args.out, ring_samples(NUM_REAL_PLOTTED, seed=10_000 + args.seed), samples, quality,
        title=f"GAN on a ring of 8 Gaussians (seed {args.seed}, {trainer.global_step} iterations)",
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
