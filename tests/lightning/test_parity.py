"""MMLightningModule under lightning.Trainer equals MMEngine's Runner (same model, seed and data)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from mm2lightning import MMLightningModule
from mm2lightning.model import BaseModel

from gan import GAN_OPTIM, GAN_SCHEDULERS, make_gan_class, mmengine_optim_wrapper_dict, ring_dataset


class Recorder(L.Callback):
    def __init__(self) -> None:
        self.log_vars: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.log_vars.append({k: float(v) for k, v in outputs.items()})


def fit(module: MMLightningModule, dataset, max_epochs: int, batch_size: int = 8) -> list[dict[str, float]]:
    recorder = Recorder()
    trainer = L.Trainer(
        max_epochs=max_epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[recorder],
    )
    trainer.fit(module, DataLoader(dataset, batch_size=batch_size))
    assert trainer.global_step == len(recorder.log_vars)  # one global_step per iteration
    return recorder.log_vars


def assert_same_run(ours, ref, model, ref_model):
    assert len(ours) == len(ref)
    for i, (a, b) in enumerate(zip(ours, ref)):
        assert a.keys() == b.keys(), i
        assert max(abs(a[k] - b[k]) for k in a) <= 1e-6, (i, a, b)
    for (name, p), q in zip(model.named_parameters(), ref_model.parameters()):
        assert (p - q).abs().max().item() <= 1e-6, name


@pytest.mark.parametrize("schedulers", [None, GAN_SCHEDULERS], ids=["plain", "per-name-schedulers"])
def test_gan_with_optim_wrapper_dict_matches_runner(mmengine, tmp_path, schedulers):
    from mmengine.model import BaseModel as MMBaseModel

    from mmengine_reference import run_runner

    dataset = ring_dataset()
    ref_model = make_gan_class(MMBaseModel)()
    ref = run_runner(ref_model, dataset, tmp_path, mmengine_optim_wrapper_dict(ref_model), 3, schedulers, batch_size=8)
    model = make_gan_class(BaseModel)()
    ours = fit(MMLightningModule(model, optim_wrapper=GAN_OPTIM, param_scheduler=schedulers), dataset, 3)
    assert_same_run(ours, ref, model, ref_model)


def test_mmengine_basemodel_subclass_trains(mmengine, tmp_path):
    from mmengine_reference import MMToyModel, run_toy

    ref_model, ref = run_toy(tmp_path, dict(optimizer=dict(type="SGD", lr=0.01), accumulative_counts=3))
    torch.manual_seed(0)
    model = MMToyModel()
    ours = fit(
        MMLightningModule(model, optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01), accumulative_counts=3)),
        [(torch.ones(1, 1), torch.ones(1, 1))] * 50,
        5,
        batch_size=2,
    )
    assert_same_run(ours, ref, model, ref_model)
