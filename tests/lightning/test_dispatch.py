"""Direct calls where Lightning's dispatch would only call no-op hooks (LightningBackend's backward and step,
the module's batch hooks): taken only then, and training is the same either way."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from mm2lightning import MMLightningModule

from models import Net, net_data

OPTIM = dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9), accumulative_counts=3, clip_grad=dict(max_norm=0.5))
ITERATIONS = 10  # 40 samples, batch 4: windows of 3, 3, 3 and a last one of 1


class CountHooks(L.Callback):
    """Overrides the hooks of Lightning's backward and step dispatch (so they must be called)."""

    def __init__(self) -> None:
        self.calls = {"on_before_backward": 0, "on_after_backward": 0, "on_before_optimizer_step": 0}

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.calls["on_before_backward"] += 1

    def on_after_backward(self, trainer, pl_module) -> None:
        self.calls["on_after_backward"] += 1

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.calls["on_before_optimizer_step"] += 1


class AfterBackward(MMLightningModule):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.after_backward = 0

    def on_after_backward(self) -> None:
        self.after_backward += 1


def fit(module: MMLightningModule, datamodule: L.LightningDataModule | None = None, **kwargs) -> L.Trainer:
    trainer = L.Trainer(**{**dict(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                                  enable_progress_bar=False, enable_model_summary=False), **kwargs})
    if datamodule is None:
        trainer.fit(module, DataLoader(net_data(), batch_size=4))
    else:
        trainer.fit(module, datamodule=datamodule)
    return trainer


def weights(module: MMLightningModule) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.model.parameters()])


def test_a_plain_fit_takes_the_direct_route_and_trains_as_through_lightnings_hooks():
    """Accumulation, clipping by norm and momentum: bit-equal on both routes."""
    direct = MMLightningModule(Net(), optim_wrapper=OPTIM)
    fit(direct)
    assert direct._backend._plain and direct._plain_batch_hooks
    counted = CountHooks()
    dispatched = MMLightningModule(Net(), optim_wrapper=OPTIM)
    fit(dispatched, callbacks=[counted])
    assert not dispatched._backend._plain
    assert counted.calls == {"on_before_backward": ITERATIONS, "on_after_backward": ITERATIONS,
                             "on_before_optimizer_step": 4}
    assert torch.equal(weights(direct), weights(dispatched))
    assert direct.optim_wrapper.grad_norm is not None and torch.equal(
        direct.optim_wrapper.grad_norm, dispatched.optim_wrapper.grad_norm
    )  # clipped at the same point, on the same gradients


def test_a_module_hook_runs_through_lightning():
    module = AfterBackward(Net(), optim_wrapper=OPTIM)
    fit(module)
    assert not module._backend._plain and module.after_backward == ITERATIONS


def test_a_profiler_sees_the_hooks():
    module = MMLightningModule(Net(), optim_wrapper=OPTIM)
    trainer = fit(module, profiler="simple")
    assert not module._backend._plain and not module._plain_batch_hooks
    actions = set(trainer.profiler.recorded_durations)
    for hook in ("on_before_optimizer_step", "on_after_backward", "on_before_batch_transfer", "transfer_batch_to_device"):
        assert f"[LightningModule]MMLightningModule.{hook}" in actions


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_a_precision_plugin_runs_through_lightning(precision):
    module = MMLightningModule(Net(), optim_wrapper=OPTIM)
    fit(module, precision=precision)
    assert not module._backend._plain


class TransferringData(L.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        self.transfers = 0

    def train_dataloader(self):
        return DataLoader(net_data(), batch_size=4)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        self.transfers += 1
        return super().transfer_batch_to_device(batch, device, dataloader_idx)


class AfterTransfer(MMLightningModule):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.after_transfer = 0

    def on_after_batch_transfer(self, batch, dataloader_idx):
        self.after_transfer += 1
        return batch


def test_batch_hooks_of_a_datamodule_or_a_subclass_run_through_lightning():
    data = TransferringData()
    module = MMLightningModule(Net(), optim_wrapper=OPTIM)
    fit(module, data)
    assert not module._plain_batch_hooks and data.transfers == ITERATIONS
    fit(module)  # the next run, without that datamodule, calls them directly again
    assert module._plain_batch_hooks
    subclass = AfterTransfer(Net(), optim_wrapper=OPTIM)
    fit(subclass)
    assert not subclass._plain_batch_hooks and subclass.after_transfer == ITERATIONS
