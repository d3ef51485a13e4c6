"""One distributed training run for the DDP tests: ``python ddp_worker.py CASE OUT_DIR``.

Lightning's DDP launcher re-runs this command once per extra rank, so each rank
runs the same case and saves what it saw to ``OUT_DIR/<case>_rank<r>.pt``:
the gradients at every optimizer step (after sync) and at the end of every
iteration that is inside an accumulation window (before sync), the final
parameters, and case-specific observations. Different ranks see different data.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from gan import GAN_OPTIM, make_gan_class, ring_dataset  # noqa: E402
from models import Net, net_data  # noqa: E402

from mm2lightning import MMDDPStrategy, MMLightningModule, SeparateDDPStrategy  # noqa: E402
from mm2lightning.dist import master_only  # noqa: E402
from mm2lightning.hooks import Hook  # noqa: E402
from mm2lightning.model import BaseDataPreprocessor, BaseModel, MMDistributedDataParallel  # noqa: E402
from mm2lightning.model import MMSeparateDistributedDataParallel  # noqa: E402
from mm2lightning.optim import OptimWrapperDict  # noqa: E402
from mm2lightning.registry import MODEL_WRAPPERS  # noqa: E402

BATCH = 4  # per rank
NET_OPTIM = dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9), accumulative_counts=2)
GAN_ACC_OPTIM = dict(
    generator=GAN_OPTIM["generator"],
    discriminator={**GAN_OPTIM["discriminator"], "accumulative_counts": 2},
)


class RecordingPreprocessor(BaseDataPreprocessor):
    """Remembers the ``training`` flag of every call (batch augmentation on or off)."""

    def __init__(self) -> None:
        super().__init__()
        self.flags: list[bool] = []

    def forward(self, data, training=False):
        self.flags.append(training)
        return super().forward(data, training)


def _twice(model: BaseModel, data, optim_wrapper, forward) -> dict:
    """The migration guide's custom step: the same batch twice, batch augmentation on, then off."""
    for training in (True, False):
        batch = model.data_preprocessor(data, training)
        with optim_wrapper.optim_context(model):
            losses = forward(batch)
        loss, log_vars = model.parse_losses(losses)
        optim_wrapper.update_params(loss)
    return log_vars


@MODEL_WRAPPERS.register_module()
class CustomDistributedDataParallel(MMSeparateDistributedDataParallel):
    def train_step(self, data, optim_wrapper):
        return _twice(self.module, data, optim_wrapper, lambda batch: self.module(*batch, mode="loss"))


class CustomWholeModelDDP(MMDistributedDataParallel):
    def train_step(self, data, optim_wrapper):
        return _twice(self.module, data, optim_wrapper, lambda batch: self(*batch, mode="loss"))


NET_EMA = dict(type="EMAHook", momentum=0.1)


class RunnerViewOfRank(Hook):
    """Records what the runner view says about the process group, and writes one line from rank 0 only."""

    def before_train(self, runner) -> None:
        self.seen = (runner.rank, runner.world_size, runner.distributed)
        self.write(Path(sys.argv[2]) / "master_only.txt", runner.rank)

    @staticmethod
    @master_only
    def write(path: Path, rank: int) -> None:
        with open(path, "a") as f:
            f.write(f"rank {rank}\n")


class ShardData(L.LightningDataModule):
    """Rank r trains on samples r, r + world, r + 2 world, ... (no shuffling)."""

    def __init__(self, data: list) -> None:
        super().__init__()
        self.data = data

    def train_dataloader(self) -> DataLoader:
        rank, world = self.trainer.global_rank, self.trainer.world_size
        return DataLoader(self.data[rank::world], batch_size=BATCH)


class GradRecorder(L.Callback):
    def __init__(self) -> None:
        self.records: list[tuple[int, str, torch.Tensor]] = []
        self.wrapped: dict[str, tuple[str, bool]] = {}

    def on_train_start(self, trainer, pl_module) -> None:
        for name, child in pl_module.model.named_children():
            self.wrapped[name] = (type(child).__name__, getattr(child, "gradient_as_bucket_view", None))

    @staticmethod
    def _flat(params) -> torch.Tensor:
        return torch.cat([p.grad.detach().flatten().clone() for p in params if p.grad is not None])

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        params = [p for g in optimizer.param_groups for p in g["params"]]
        self.records.append((trainer.global_step, "synced", self._flat(params)))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        wrapper = pl_module.optim_wrapper
        for w in wrapper.values() if isinstance(wrapper, OptimWrapperDict) else [wrapper]:
            if w.inner_count % w._accumulative_counts:  # inside an accumulation window: not synced yet
                params = [p for g in w.optimizer.param_groups for p in g["params"]]
                self.records.append((trainer.global_step, "local", self._flat(params)))


def build(case: str) -> tuple[MMLightningModule, L.LightningDataModule | DataLoader, dict]:
    rank = int(os.environ.get("NODE_RANK", 0)) + int(os.environ.get("LOCAL_RANK", 0))
    if case == "net_ddp":  # with hooks: what the runner view says on each rank, and EMA
        module = MMLightningModule(Net(), optim_wrapper=NET_OPTIM, hooks=[RunnerViewOfRank(), NET_EMA])
        return module, ShardData(net_data()), dict(strategy="ddp")
    if case == "gan_separate":
        model = make_gan_class(BaseModel)(noise_seeds=[1 + rank])
        if "resume" in sys.argv:  # the noise generator is the model's own state, not in checkpoints:
            for _ in range(len(ring_dataset(48)) // 2 // BATCH):  # advance it past epoch 0, as the checkpoint is
                torch.randn(BATCH, 2, generator=model.noise)
        return MMLightningModule(model, optim_wrapper=GAN_ACC_OPTIM), ShardData(ring_dataset(48)), dict(
            strategy=SeparateDDPStrategy(gradient_as_bucket_view=True)  # a DDP kwarg that must reach every child
        )
    if case in ("gan_ddp_unused", "gan_ddp_find_unused"):
        model = make_gan_class(BaseModel)(noise_seeds=[1 + rank])
        optim = GAN_OPTIM if case == "gan_ddp_unused" else GAN_ACC_OPTIM
        strategy = "ddp" if case == "gan_ddp_unused" else "ddp_find_unused_parameters_true"
        return MMLightningModule(model, optim_wrapper=optim), ShardData(ring_dataset(48)), dict(strategy=strategy)
    if case in ("custom_separate", "custom_whole"):
        module = MMLightningModule(Net(RecordingPreprocessor()), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05)))
        strategy = (
            SeparateDDPStrategy(model_wrapper_cfg=dict(type="CustomDistributedDataParallel"))
            if case == "custom_separate"
            else MMDDPStrategy(model_wrapper=CustomWholeModelDDP)
        )
        return module, ShardData(net_data(16)), dict(strategy=strategy)
    raise ValueError(case)


def main() -> None:
    case, out = sys.argv[1], Path(sys.argv[2])
    module, data, trainer_kwargs = build(case)
    recorder = GradRecorder()
    callbacks = [recorder]
    resume = len(sys.argv) > 3 and sys.argv[3] == "resume"
    if case == "gan_separate":
        callbacks.append(ModelCheckpoint(dirpath=out / "ckpt", save_top_k=-1, every_n_epochs=1, filename="{epoch}"))
    trainer = L.Trainer(
        accelerator="cpu", devices=int(os.environ.get("DEVICES", 2)), num_nodes=int(os.environ.get("NUM_NODES", 1)),
        max_epochs=2, use_distributed_sampler=False, logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=case == "gan_separate", callbacks=callbacks, **trainer_kwargs,
    )
    error = None
    try:
        trainer.fit(module, datamodule=data if isinstance(data, L.LightningDataModule) else None,
                    ckpt_path=out / "ckpt" / "epoch=0.ckpt" if resume else None)
    except Exception as exc:  # the test checks the message
        error = f"{type(exc).__name__}: {exc}"
    predicted = None
    if case == "gan_separate" and error is None:  # predict after fit, with the same strategy
        outputs = trainer.predict(module, DataLoader(ring_dataset(16), batch_size=BATCH))
        predicted = sum(len(batch) for batch in outputs)
    record = dict(
        error=error,
        rank=trainer.global_rank,
        world_size=trainer.world_size,
        global_step=trainer.global_step,
        grads=recorder.records,
        params={k: v.detach().clone() for k, v in module.model.state_dict().items()},
        child_types={name: type(child).__name__ for name, child in module.model.named_children()},
        children_during_fit=recorder.wrapped,
        predicted=predicted,
    )
    if module.hook_driver is not None:
        view_hook, ema_hook = module.hook_driver.hooks
        record["view"] = view_hook.seen
        record["ema"] = {k: v.detach().clone() for k, v in ema_hook.ema_model.state_dict().items()}
    if case.startswith("custom"):
        record["flags"] = module.model.data_preprocessor.flags
        record["inner_count"] = module.optim_wrapper.inner_count
        record["iterations"] = trainer.global_step
    suffix = "_resumed" if resume else ""
    torch.save(record, out / f"{case}{suffix}_rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main()
    if torch.distributed.is_initialized():  # before the interpreter exits (gloo's threads could abort the exit)
        torch.distributed.destroy_process_group()
