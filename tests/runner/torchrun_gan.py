"""A GAN through Runner(launcher='pytorch', cfg=dict(model_wrapper_cfg=...)), started by torchrun (2 processes).

Usage: python -m torch.distributed.run --nproc_per_node=2 torchrun_gan.py OUT_DIR [WRAPPER_TYPE]
Each rank saves its final parameters and what it observed to OUT_DIR/rank<R>.pt.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lightning"))
from gan import GAN_OPTIM, make_gan_class, ring_dataset  # noqa: E402

from mm2lightning.model import BaseModel, MMSeparateDistributedDataParallel  # noqa: E402
from mm2lightning.registry import DATASETS, MODEL_WRAPPERS  # noqa: E402
from mm2lightning.runner import Runner  # noqa: E402

GAN = make_gan_class(BaseModel)
BATCH_PER_RANK = 4


@DATASETS.register_module(name="TorchrunRingSet", force=True)
class RingSet(torch.utils.data.Dataset):
    def __init__(self) -> None:
        self.items = ring_dataset(48)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@MODEL_WRAPPERS.register_module(force=True)
class TwiceSeparateDDP(MMSeparateDistributedDataParallel):
    """The migration guide's CustomDistributedDataParallel pattern: its own train_step updates each batch twice."""

    def train_step(self, data, optim_wrapper):
        super().train_step(data, optim_wrapper)
        return super().train_step(data, optim_wrapper)


class SeenWrapper(pl.Callback):
    """Records the model wrapper that ran train_step."""

    def __init__(self) -> None:
        self.wrapper = None

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        self.wrapper = type(pl_module._step_model).__name__


def runner(work_dir: str, noise_seeds: list[int], batch_size: int, launcher: str, wrapper_type: str, seen=None):
    return Runner(
        model=GAN(seed=0, noise_seeds=noise_seeds),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=dict(type="TorchrunRingSet"),
            sampler=dict(type="DefaultSampler", shuffle=True),
            collate_fn=dict(type="default_collate"),
            batch_size=batch_size,
        ),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=GAN_OPTIM,
        launcher=launcher,
        randomness=dict(seed=11),
        default_hooks=dict(checkpoint=None),
        custom_hooks=[seen] if seen else None,
        cfg=dict(model_wrapper_cfg=dict(type=wrapper_type)),
        trainer_cfg=dict(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, logger=False),
    )


def main() -> None:
    out = Path(sys.argv[1])
    wrapper_type = sys.argv[2] if len(sys.argv) > 2 else "MMSeparateDistributedDataParallel"
    rank = int(os.environ["RANK"])
    seen = SeenWrapper()
    run = runner(str(out / "work_dir"), [100 + rank], BATCH_PER_RANK, "pytorch", wrapper_type, seen)
    run.train()
    torch.save(
        dict(
            params=[p.detach() for p in run.model.parameters()],
            strategy=type(run.trainer.strategy).__name__,
            world_size=run.trainer.world_size,
            global_step=run.trainer.global_step,
            wrapper=seen.wrapper,
            generator_steps=int(next(iter(run.module.optim_wrapper["generator"].optimizer.state.values()))["step"]),
            plain_after_fit=not any(isinstance(m, MMSeparateDistributedDataParallel) for m in run.model.modules())
            and all(type(c).__name__ == "Sequential" for c in (run.model.generator, run.model.discriminator)),
        ),
        out / f"rank{rank}.pt",
    )


if __name__ == "__main__":
    main()
