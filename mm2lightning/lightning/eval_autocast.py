"""MMEngine's ``ValLoop(fp16=True)`` / ``TestLoop(fp16=True)``: ``val_step``/``test_step`` under autocast."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch


class EvalAutocast(pl.Callback):
    """Runs the model's ``val_step`` (validation) and/or ``test_step`` (test) under ``torch.autocast``, as
    MMEngine's loops with ``fp16=True`` do: bfloat16 on CPU devices, the device's autocast dtype (float16) on GPUs.

    The step is replaced on the step model (its wrapper's under DDP) for the evaluation only.

    Args:
        stages: ``'val'`` and/or ``'test'``.
    """

    def __init__(self, stages: tuple[str, ...]) -> None:
        self.stages = stages
        self._wrapped: list[tuple[Any, str]] = []

    def _wrap(self, pl_module: pl.LightningModule, stage: str) -> None:
        if stage not in self.stages:
            return
        model, name = pl_module._step_model, f"{stage}_step"
        device_type = pl_module.device.type
        dtype = torch.bfloat16 if device_type == "cpu" else torch.get_autocast_dtype(device_type)
        setattr(model, name, _under_autocast(getattr(model, name), device_type, dtype))
        self._wrapped.append((model, name))

    def _unwrap(self) -> None:
        while self._wrapped:
            model, name = self._wrapped.pop()
            delattr(model, name)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._wrap(pl_module, "val")

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._wrap(pl_module, "test")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._unwrap()

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._unwrap()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._unwrap()


def _under_autocast(step: Callable[..., Any], device_type: str, dtype: torch.dtype) -> Callable[..., Any]:
    @functools.wraps(step)
    def autocast_step(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type=device_type, dtype=dtype):
            return step(*args, **kwargs)

    return autocast_step
