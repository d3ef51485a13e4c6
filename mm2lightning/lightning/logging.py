"""The per-iteration log path: hand ``train_step``'s ``log_vars`` to Lightning only when they are written.

Each ``LightningModule.log`` call costs about half a millisecond on a CPU, more
than a whole iteration of a small model. Lightning writes step values to its
loggers only every ``log_every_n_steps`` batches, so :class:`TrainLogPath` calls
``log`` on exactly those batches (and when training stops), with the values of
that batch: what the loggers receive is the same as logging every step, for a
per-step cost of one integer check. The optional epoch means are kept as
on-device running sums (no host sync).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch

from mm2lightning.optim import OptimWrapper, OptimWrapperDict


def batch_size(batch: Any) -> int:
    """The number of samples in an MMEngine-style batch (dict with ``inputs``, or a collated tuple)."""
    if isinstance(batch, Mapping):
        batch = batch.get("inputs", next(iter(batch.values()), None))
    elif isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        batch = batch[0]
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, (list, tuple)):
        return len(batch)
    return 1


def _wrappers(optim_wrapper: OptimWrapper) -> list[tuple[str, OptimWrapper]]:
    if isinstance(optim_wrapper, OptimWrapperDict):
        return [(f"{name}.", wrapper) for name, wrapper in optim_wrapper.items()]
    return [("", optim_wrapper)]


class TrainLogPath:
    """Logs ``log_vars``, the learning rates and ``grad_norm`` from ``training_step``, cheaply.

    Keys: every ``log_vars`` key (``loss`` also on the progress bar), the first
    group's rate of each wrapper as ``lr`` (``<name>.lr`` for an
    ``OptimWrapperDict``, plus ``base_lr`` where there are several groups), and
    ``grad_norm`` (``<name>.grad_norm``) for wrappers that clip by norm. With
    ``epoch_means``, each ``log_vars`` key's mean over the epoch is logged as
    ``<key>_epoch`` at the end of the epoch. Values are rank-local, as in MMEngine.

    Args:
        module: The LightningModule that logs.
        epoch_means: Also log epoch means.
    """

    def __init__(self, module: pl.LightningModule, epoch_means: bool = False) -> None:
        self._module = module
        self._epoch_means = epoch_means
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def on_train_start(self) -> None:
        """Cache what the per-iteration check reads."""
        self._trainer = self._module.trainer
        self._epoch_loop = self._trainer.fit_loop.epoch_loop

    def _should_log(self) -> bool:
        """Whether Lightning writes this batch's step logs (its ``should_update_logs``, for the fit loop)."""
        every_n = self._trainer.log_every_n_steps
        return bool(every_n) and ((self._epoch_loop._batches_that_stepped + 1) % every_n == 0 or self._trainer.should_stop)

    def after_train_iter(self, log_vars: Mapping[str, torch.Tensor], batch: Any, optim_wrapper: OptimWrapper) -> None:
        """Called once per iteration with ``train_step``'s output."""
        if self._epoch_means:
            for key, value in log_vars.items():
                value = value.detach()
                self._sums[key] = self._sums[key] + value if key in self._sums else value.clone()
                self._counts[key] = self._counts.get(key, 0) + 1
        if not self._should_log():
            return
        values = {key: value.detach() for key, value in log_vars.items()}
        for prefix, wrapper in _wrappers(optim_wrapper):
            values.update({f"{prefix}{key}": rates[0] for key, rates in wrapper.get_lr().items()})
            if wrapper.grad_norm is not None:
                values[f"{prefix}grad_norm"] = wrapper.grad_norm
        size = batch_size(batch)
        if "loss" in values:
            self._module.log("loss", values.pop("loss"), prog_bar=True, batch_size=size)
        self._module.log_dict(values, batch_size=size)

    def on_train_epoch_end(self) -> None:
        """Log and reset the epoch means (when enabled)."""
        if not self._sums:
            return
        means = {f"{key}_epoch": total / self._counts[key] for key, total in self._sums.items()}
        self._sums.clear()
        self._counts.clear()
        self._module.log_dict(means, on_step=False, on_epoch=True, batch_size=1)
