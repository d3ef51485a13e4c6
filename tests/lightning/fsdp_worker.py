"""One sharded training run for the FSDP2 tests: ``python fsdp_worker.py CASE OUT_DIR [resume]``.

Lightning's launcher re-runs this command for rank 1. Each rank trains on its own half of the data and saves
to ``OUT_DIR/<case>[_resumed]_rank<r>.pt``: the full (gathered) parameters at the end, the number of
reduce-scatters each iteration ran, and the size of its shard of every parameter.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

HERE = Path(__file__).resolve().parent
EXAMPLE_GAN = HERE.parents[1] / "examples" / "gan"
sys.path[:0] = [str(HERE), str(HERE.parent), str(EXAMPLE_GAN)]

from ddp_worker import ShardData  # noqa: E402
from gan import GAN_OPTIM, GAN_SCHEDULERS, make_gan_class, ring_dataset  # noqa: E402
from models import Net, net_data  # noqa: E402

from mm2lightning import MMFSDPStrategy, MMLightningModule  # noqa: E402
from mm2lightning.model import BaseModel  # noqa: E402

NET_OPTIM = dict(
    optimizer=dict(type="SGD", lr=0.05, momentum=0.9), accumulative_counts=3, clip_grad=dict(max_norm=0.5)
)
NET_SCHEDULER = dict(type="MultiStepLR", milestones=[4], gamma=0.5, by_epoch=False)
AMP_OPTIM = dict(type="AmpOptimWrapper", dtype="float16", optimizer=dict(type="SGD", lr=0.05))


class _InfInGrad(torch.autograd.Function):
    """Identity, whose backward puts inf into one element of the gradient."""

    @staticmethod
    def forward(ctx, tensor, index):
        ctx.index = index
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        grad[ctx.index] = float("inf")
        return grad, None


class SpikyLinear(nn.Linear):
    """A linear layer that can put inf into one element of its bias gradient (a float16 overflow on one rank)."""

    spike_at: int | None = None

    def forward(self, x):
        bias = self.bias if self.spike_at is None else _InfInGrad.apply(self.bias, self.spike_at)
        return F.linear(x, self.weight, bias)


class SpikyNet(Net):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(SpikyLinear(4, 16), nn.Tanh(), nn.Linear(16, 1))


class SpikeOnRank0(L.Callback):
    """At iteration 2, rank 0's gradient of the last bias element overflows: after the reduce-scatter, only
    rank 1's shard holds the inf."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        spike = 15 if trainer.global_rank == 0 and trainer.global_step == 2 else None
        pl_module.model.body[0].spike_at = spike


def gathered(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full parameters (gathered from every rank's shard: a collective, so every rank calls it)."""
    return {k: v.full_tensor() if hasattr(v, "full_tensor") else v.detach().clone() for k, v in model.state_dict().items()}


class EpochWeights(L.Callback):
    def __init__(self) -> None:
        self.weights: list[dict[str, torch.Tensor]] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.weights.append(gathered(pl_module.model))


class ReduceScatterCounter(L.Callback):
    """Counts the reduce-scatters FSDP runs in each iteration (``dist.reduce_scatter_single``)."""

    def __init__(self) -> None:
        self.calls = 0
        self.per_iteration: list[int] = []
        self.grad_norms: list = []
        self.scales: list[float] = []
        original = dist.reduce_scatter_single

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        dist.reduce_scatter_single = counted

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.per_iteration.append(self.calls)
        self.calls = 0
        norm = getattr(pl_module.optim_wrapper, "grad_norm", None)
        self.grad_norms.append(None if norm is None else (type(norm).__name__, float(norm)))
        scaler = getattr(pl_module.optim_wrapper, "loss_scaler", None)
        if scaler is not None:
            self.scales.append(scaler.get_scale())


def build(case: str) -> tuple[MMLightningModule, ShardData, object]:
    rank = int(os.environ.get("LOCAL_RANK", 0))
    if case in ("net_fsdp", "net_ddp", "net_ckpt", "net_hsdp"):
        module = MMLightningModule(Net(), optim_wrapper=NET_OPTIM, param_scheduler=NET_SCHEDULER)
        # net_hsdp: one replica per node (2 nodes of 1 process: each shards over itself, the nodes all-reduce)
        replicate = "auto" if case == "net_hsdp" else 1
        strategy = "ddp" if case == "net_ddp" else MMFSDPStrategy(auto_wrap_policy={nn.Linear}, replicate_size=replicate)
        return module, ShardData(net_data()), strategy
    if case.startswith("amp_"):  # float16 with an overflow on one rank at iteration 2
        # amp_fsdp_use_fsdp: MMEngine's use_fsdp=True (a ShardedGradScaler) agrees the same way
        optim = dict(AMP_OPTIM, use_fsdp=True) if case == "amp_fsdp_use_fsdp" else AMP_OPTIM
        module = MMLightningModule(SpikyNet(), optim_wrapper=optim)
        strategy = "ddp" if case == "amp_ddp" else MMFSDPStrategy(auto_wrap_policy={nn.Linear})
        return module, ShardData(net_data()), strategy
    if case == "gan_fsdp":
        # each rank initialises differently: training starts from rank 0's weights, as under DDP
        model = make_gan_class(BaseModel)(seed=rank, noise_seeds=[1 + rank])
        module = MMLightningModule(model, optim_wrapper=GAN_OPTIM, param_scheduler=GAN_SCHEDULERS)
        return module, ShardData(ring_dataset(48)), "fsdp_mm"
    if case == "gan_example_fsdp":  # examples/gan's model and optim wrappers, as its train.py builds them
        from gan_model import GAN as ExampleGAN, RingDataset
        from train import PARAM_SCHEDULER, optim_wrapper_cfg

        torch.manual_seed(0)  # as the example's train() seeds the weights
        module = MMLightningModule(ExampleGAN(seed=0), optim_wrapper=optim_wrapper_cfg(), param_scheduler=PARAM_SCHEDULER)
        return module, ShardData(list(RingDataset(48, seed=0))), "fsdp_mm"
    raise ValueError(case)


def first_linear(module: nn.Module, recurse: bool, nonwrapped_numel: int) -> bool:
    """An FSDP1-style policy: only Net's first Linear is a unit (body.2 is left to the model's own unit)."""
    return recurse or module.__class__ is nn.Linear and module.in_features == 4


def all_gathers_per_iteration(reshard_after_forward) -> list[int]:
    """All-gathers FSDP runs in each of 3 iterations (``dist.all_gather_single``), units body.0 and the model."""
    counts, original = [], dist.all_gather_single

    def counted(*args, **kwargs):
        counts[-1] += 1
        return original(*args, **kwargs)

    class PerIteration(L.Callback):
        def on_train_batch_start(self, *args) -> None:
            counts.append(0)

    module = MMLightningModule(Net(), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)))
    strategy = MMFSDPStrategy(auto_wrap_policy=first_linear, reshard_after_forward=reshard_after_forward)
    trainer = L.Trainer(accelerator="cpu", devices=2, max_steps=3, logger=False, enable_checkpointing=False,
                        strategy=strategy, callbacks=[PerIteration()], enable_progress_bar=False)
    dist.all_gather_single = counted
    try:
        trainer.fit(module, ShardData(net_data()))
    finally:
        dist.all_gather_single = original
    return counts


def misuse(out: Path) -> None:
    """One process: each misuse in its own Trainer; the errors go to ``OUT_DIR/misuse.pt``."""
    from lightning.pytorch.demos.boring_classes import BoringModel

    attempts = dict(
        not_mm_module=(BoringModel(), "fsdp_mm"),
        policy_matches_nothing=(MMLightningModule(Net(), optim_wrapper=NET_OPTIM), MMFSDPStrategy(auto_wrap_policy={nn.Conv2d})),
    )
    errors = {}
    for name, (module, strategy) in attempts.items():
        trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=1, strategy=strategy,
                            logger=False, enable_checkpointing=False, enable_progress_bar=False)
        data = DataLoader(net_data(8), batch_size=4) if isinstance(module, MMLightningModule) else None
        try:
            trainer.fit(module, data)
            errors[name] = None
        except Exception as exc:
            errors[name] = (type(exc).__name__, str(exc))
    # leftover parameters (body.2 is not in a unit): the model itself becomes a unit, gathered by its forward
    module = MMLightningModule(Net(), optim_wrapper=NET_OPTIM)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=2, strategy=MMFSDPStrategy(auto_wrap_policy=first_linear),
                        use_distributed_sampler=False, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(module, DataLoader(net_data(), batch_size=8))
    errors["root_unit"] = (sorted(trainer.strategy.shard_units), gathered(module.model))
    module = MMLightningModule(Net(), optim_wrapper=NET_OPTIM)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=False, enable_checkpointing=False,
                        strategy=MMFSDPStrategy(auto_wrap_policy={nn.Linear}, cpu_offload=True),
                        use_distributed_sampler=False, enable_progress_bar=False)
    trainer.fit(module, DataLoader(net_data(), batch_size=8))
    errors["cpu_offload"] = gathered(module.model)
    # bfloat16 compute through mp_policy: the units see bfloat16 weights and inputs, the shards stay float32
    module = MMLightningModule(Net(), optim_wrapper=NET_OPTIM)
    seen = []
    module.model.body[0].register_forward_hook(lambda m, inputs, out: seen.append((m.weight.dtype, out.dtype)))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=False, enable_checkpointing=False,
                        strategy=MMFSDPStrategy(auto_wrap_policy={nn.Linear}, mp_policy=dict(param_dtype="bfloat16")),
                        use_distributed_sampler=False, enable_progress_bar=False)
    trainer.fit(module, DataLoader(net_data(), batch_size=8))
    errors["bfloat16"] = (sorted(set(seen)), {k: v.dtype for k, v in module.model.state_dict().items()},
                          gathered(module.model))
    torch.save(errors, out / "misuse.pt")


def main() -> None:
    case, out = sys.argv[1], Path(sys.argv[2])
    if case == "misuse":
        misuse(out)
        return
    if case == "reshard":  # three runs in the same two processes
        counts = {str(value): all_gathers_per_iteration(value) for value in (None, True, False)}
        torch.save(counts, out / f"reshard_rank{int(os.environ.get('LOCAL_RANK', 0))}.pt")
        return
    resume = "resume" in sys.argv[3:]
    module, data, strategy = build(case)
    counter = ReduceScatterCounter()
    epochs = EpochWeights()
    callbacks = [counter, epochs, *([SpikeOnRank0()] if case.startswith("amp_") else [])]
    if case == "net_ckpt":
        callbacks.append(ModelCheckpoint(dirpath=out / "ckpt", save_top_k=-1, every_n_epochs=1, filename="{epoch}"))
    trainer = L.Trainer(
        accelerator="cpu", devices=int(os.environ.get("DEVICES", 2)), num_nodes=int(os.environ.get("NUM_NODES", 1)),
        max_epochs=2, use_distributed_sampler=False, logger=False,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=case == "net_ckpt",
        callbacks=callbacks, strategy=strategy,
    )
    trainer.fit(module, datamodule=data, ckpt_path=out / "ckpt" / "epoch=0.ckpt" if resume else None)
    params = module.model.state_dict()
    full_state = trainer.strategy.full_state_dict() if isinstance(trainer.strategy, MMFSDPStrategy) else None
    record = dict(
        global_step=trainer.global_step,
        reduce_scatters=counter.per_iteration,
        grad_norms=counter.grad_norms,
        scales=counter.scales,
        scaler=(lambda s: None if s is None else (type(s).__name__, s.get_scale()))(
            getattr(module.optim_wrapper, "loss_scaler", None)
        ),
        params=gathered(module.model),
        epoch_weights=epochs.weights,
        full_state_dict=full_state,
        local_numel={k: (v.to_local() if hasattr(v, "to_local") else v).numel() for k, v in params.items()},
        units=sorted(getattr(trainer.strategy, "shard_units", {})),
        mesh=getattr(trainer.strategy, "device_mesh", None) and trainer.strategy.device_mesh.mesh_dim_names,
    )
    torch.save(record, out / f"{case}{'_resumed' if resume else ''}_rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main()
    if torch.distributed.is_initialized():  # before the interpreter exits (gloo's threads could abort the exit)
        torch.distributed.destroy_process_group()
