"""``EMAHook``: an exponential moving average of the model during training, as ``mmengine.hooks.EMAHook``."""

from __future__ import annotations

import itertools
import logging
from typing import Any

from torch import nn

from mm2lightning.hooks.hook import DATA_BATCH, Hook
from mm2lightning.logging import print_log
from mm2lightning.model import BaseAveragedModel, is_model_wrapper
from mm2lightning.registry import HOOKS, MODELS
from mm2lightning.runner.checkpoint import load_state_dict


class EMAHookError(ValueError, AssertionError):
    """An invalid ``EMAHook`` argument, or one that does not fit the run.

    An ``AssertionError`` too, because MMEngine asserts on these.
    """


@HOOKS.register_module()
class EMAHook(Hook):
    """Keep an exponential moving average of the model's weights, as ``mmengine.hooks.EMAHook``.

    The averaged model (``ema_type``, built through ``MODELS`` from the unwrapped
    ``runner.model``) is updated after every training iteration. Validation and
    test epochs run with the averaged weights (swapped in and back). Checkpoints
    hold the averaged weights under ``state_dict`` (ready to deploy) and the
    training weights, with ``steps``, under ``ema_state_dict``; resuming swaps
    them back.

    Before ``begin_iter`` (or ``begin_epoch``) the averaged model copies the
    source at every iteration; at most one of the two may be set. The hook only
    reads ``runner.model``, ``epoch``, ``iter``, ``max_epochs``, ``max_iters`` and
    ``_resume``, and checkpoints in MMEngine's layout.

    Args:
        ema_type: A name in ``MODELS`` (see :mod:`mm2lightning.model.averaged_model`).
            Defaults to ``'ExponentialMovingAverage'``.
        strict_load: Whether loaded state dicts must match the averaged model's
            keys. Defaults to False.
        begin_iter: Average from the ``begin_iter``-th training iteration on
            (counting from 1). Defaults to 0.
        begin_epoch: Average from the ``begin_epoch``-th epoch on (counting
            from 1). Defaults to 0.
        **kwargs: Arguments of the averaged model (``momentum``, ``interval``,
            ``update_buffers``, ...).
    """

    priority = "NORMAL"

    def __init__(
        self,
        ema_type: str = "ExponentialMovingAverage",
        strict_load: bool = False,
        begin_iter: int = 0,
        begin_epoch: int = 0,
        **kwargs: Any,
    ) -> None:
        self.strict_load = strict_load
        self.ema_cfg = dict(type=ema_type, **kwargs)
        if begin_iter != 0 and begin_epoch != 0:
            raise EMAHookError(
                "`begin_iter` and `begin_epoch` should not be both set. Set one of them and leave the other 0, "
                f"but got begin_iter: {begin_iter}, begin_epoch: {begin_epoch}"
            )
        if begin_iter < 0:
            raise EMAHookError(
                "`begin_iter` must larger than or equal to 0 (the iteration averaging starts at), "
                f"but got begin_iter: {begin_iter}"
            )
        if begin_epoch < 0:
            raise EMAHookError(
                "`begin_epoch` must larger than or equal to 0 (the epoch averaging starts at), "
                f"but got begin_epoch: {begin_epoch}"
            )
        self.begin_iter = begin_iter
        self.begin_epoch = begin_epoch
        # with neither set, averaging starts at iteration 0
        self.enabled_by_epoch = self.begin_epoch > 0

    def before_run(self, runner: Any) -> None:
        """Build the averaged copy of ``runner.model`` (unwrapped)."""
        self.src_model: nn.Module = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self.ema_model: BaseAveragedModel = MODELS.build(self.ema_cfg, default_args=dict(model=self.src_model))

    def before_train(self, runner: Any) -> None:
        """Check that ``begin_epoch``/``begin_iter`` is within ``max_epochs``/``max_iters``; put the averaged
        model where the model is (a Trainer may have moved the model after ``before_run``)."""
        if self.enabled_by_epoch:
            if self.begin_epoch > runner.max_epochs:
                raise EMAHookError(
                    f"self.begin_epoch should be smaller than or equal to runner.max_epochs: {runner.max_epochs}, "
                    f"but got begin_epoch: {self.begin_epoch}; averaging would never start"
                )
        elif self.begin_iter > runner.max_iters:
            raise EMAHookError(
                f"self.begin_iter should be smaller than or equal to runner.max_iters: {runner.max_iters}, "
                f"but got begin_iter: {self.begin_iter}; averaging would never start"
            )
        parameter = next(self.src_model.parameters(), None)
        if parameter is not None:
            self.ema_model.to(parameter.device)

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: dict | None = None
    ) -> None:
        """Update the averaged model, or copy the source into it before averaging starts."""
        if self._ema_started(runner):
            self.ema_model.update_parameters(self.src_model)
        else:
            src_params = self.src_model.state_dict()
            for k, p in self.ema_model.module.state_dict().items():
                p.data.copy_(src_params[k].data)

    def before_val_epoch(self, runner: Any) -> None:
        """Swap the averaged weights into the source model for validation."""
        self._swap_ema_parameters()

    def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        """Swap the training weights back after validation."""
        self._swap_ema_parameters()

    def before_test_epoch(self, runner: Any) -> None:
        """Swap the averaged weights into the source model for testing."""
        self._swap_ema_parameters()

    def after_test_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        """Swap the training weights back after testing."""
        self._swap_ema_parameters()

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        """Add ``ema_state_dict`` and swap it with ``state_dict``'s values (averaged weights for deployment)."""
        checkpoint["ema_state_dict"] = self.ema_model.state_dict()
        # swap dict values, not tensors: ``state_dict`` shares storage with the model
        self._swap_ema_state_dict(checkpoint)

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        """Restore the averaged model: from ``ema_state_dict`` when resuming, else from ``state_dict``."""
        if "ema_state_dict" in checkpoint and runner._resume:
            # the training weights were saved under ema_state_dict: swap them back
            self._swap_ema_state_dict(checkpoint)
            self.ema_model.load_state_dict(checkpoint["ema_state_dict"], strict=self.strict_load)
        else:
            if runner._resume:
                print_log(
                    "There is no `ema_state_dict` in checkpoint. `EMAHook` will make a copy of `state_dict` as the "
                    "initial `ema_state_dict`", logger="current", level=logging.WARNING,
                )
            load_state_dict(self.ema_model.module, checkpoint["state_dict"], strict=self.strict_load)

    def _swap_ema_parameters(self) -> None:
        """Swap the source model's parameters (and buffers with ``update_buffers``) with the averaged ones."""
        ema, src = self.ema_model.module, self.src_model
        if self.ema_model.update_buffers:
            pairs = zip(
                itertools.chain(ema.parameters(), ema.buffers()), itertools.chain(src.parameters(), src.buffers())
            )
        else:
            pairs = zip(ema.parameters(), src.parameters())
        for p_avg, p_src in pairs:
            tmp = p_avg.data.clone()
            p_avg.data.copy_(p_src.data)
            p_src.data.copy_(tmp)

    def _swap_ema_state_dict(self, checkpoint: dict) -> None:
        """Swap the values of ``checkpoint['state_dict']`` with the ``module.`` entries of ``ema_state_dict``."""
        model_state = checkpoint["state_dict"]
        ema_state = checkpoint["ema_state_dict"]
        for k in ema_state:
            if k[:7] == "module.":
                ema_state[k], model_state[k[7:]] = model_state[k[7:]], ema_state[k]

    def _ema_started(self, runner: Any) -> bool:
        """Whether averaging has started at the current iteration (or epoch)."""
        if self.enabled_by_epoch:
            return runner.epoch + 1 >= self.begin_epoch
        return runner.iter + 1 >= self.begin_iter
