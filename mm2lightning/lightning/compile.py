"""MMEngine's ``cfg.compile``: ``torch.compile`` of the model's ``train_step`` when training starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch

from mm2lightning.errors import AssertTypeError


def compile_options(compile_cfg: bool | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``torch.compile`` keyword arguments for ``cfg.compile`` (``None``: no compilation), as MMEngine reads it."""
    if compile_cfg is None or compile_cfg is False:
        return None
    if compile_cfg is True:
        return {}
    if not isinstance(compile_cfg, Mapping):
        raise AssertTypeError(f"`compile` should be a dict or bool, got {type(compile_cfg)}")
    return {k: v for k, v in compile_cfg.items() if k != "_scope_"}


class CompileTrainStep(pl.Callback):
    """Replaces the model's ``train_step`` (its wrapper's under DDP, as MMEngine's ``_maybe_compile``) by
    ``torch.compile(train_step, **options)`` once the strategy has set the model up, before the first batch.

    Args:
        options: ``torch.compile`` keyword arguments (``backend``, ``mode``, ``dynamic``, ...).
    """

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        model = pl_module._step_model
        if "train_step" not in vars(model):  # compiled once per model, as MMEngine's Runner.train()
            model.train_step = torch.compile(model.train_step, **self.options)
