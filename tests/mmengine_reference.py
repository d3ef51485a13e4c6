"""Reference runs with real mmengine's Runner, for parity tests (import only when mmengine is installed)."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel as MMBaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import DataLoader


class MMToyModel(MMBaseModel):
    """The migration guide's toy model, written against mmengine."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, img, label, mode="tensor"):
        feat = self.linear(img)
        if mode == "loss":
            return dict(loss1=(feat - label).pow(2), loss2=(feat - label).abs())
        return [f for f in feat]


class _RecordLogVars(Hook):
    priority = "VERY_LOW"

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.history.append({k: float(v.detach()) for k, v in outputs.items()})


def run_runner(
    model: nn.Module,
    dataset: list,
    work_dir: Path,
    optim_wrapper: Any,
    max_epochs: int = 5,
    param_scheduler: list | dict | None = None,
    batch_size: int = 2,
) -> list[dict[str, float]]:
    """Train ``model`` in place with mmengine's Runner; return the per-iteration ``train_step`` outputs."""
    record = _RecordLogVars()
    runner = Runner(
        model=model,
        work_dir=str(work_dir),
        train_dataloader=DataLoader(dataset, batch_size=batch_size),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=copy.deepcopy(optim_wrapper) if isinstance(optim_wrapper, dict) else optim_wrapper,
        param_scheduler=copy.deepcopy(param_scheduler),
        default_hooks=dict(checkpoint=None),
        custom_hooks=[record],
        log_level="WARNING",
    )
    runner.train()
    logging.getLogger("mmengine").handlers.clear()
    return record.history


def run_toy(work_dir: Path, optim_wrapper: dict, param_scheduler=None, seed: int = 0) -> tuple[nn.Module, list]:
    torch.manual_seed(seed)
    model = MMToyModel()
    history = run_runner(model, [(torch.ones(1, 1), torch.ones(1, 1))] * 50, work_dir, optim_wrapper, 5, param_scheduler)
    return model, history
