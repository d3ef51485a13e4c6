"""LightningBackend: the optim wrappers' backward, step and sync blocking, done through Lightning."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from functools import partial
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import ParallelStrategy
from torch import nn

from mm2lightning.lightning.dispatch import dispatch_is_plain
from mm2lightning.optim.backend import TORCH_BACKEND


def _no_closure() -> None:
    """The closure handed to the strategy: train_step already ran forward and backward."""


class LightningBackend:
    """Routes an optim wrapper through a running Lightning ``Trainer``.

    - backward: ``LightningModule.manual_backward`` (precision plugin scaling, DDP
      reducer arming, ``on_before/after_backward`` hooks);
    - step: ``strategy.optimizer_step`` (precision plugin unscaling/skipping,
      ``on_before_optimizer_step`` hooks); ``before_step`` (clipping) runs from
      :meth:`run_before_step`, which the module calls in ``on_before_optimizer_step``
      so that it sees unscaled gradients under ``precision='16-mixed'``. Steps are not
      counted here: the module counts one ``global_step`` per iteration;
    - sync blocking: ``strategy.block_backward_sync()`` around forward and backward
      while accumulating, plus ``model.no_sync()`` for per-submodule DDP wrappers.

    Where that dispatch would call nothing but no-op hooks (:func:`dispatch_is_plain`, decided
    per fit by :meth:`choose_route`), backward is ``loss.backward()`` and the step is
    ``before_step`` and ``optimizer.step()``: the same calls without Lightning's hook loops
    (about 10 % of a small model's iteration).

    Args:
        module: The LightningModule whose trainer runs the fit.
    """

    def __init__(self, module: pl.LightningModule) -> None:
        self._module = module
        self._before_step: Callable[[], None] | None = None
        self._plain = False

    def choose_route(self, step_hook: Callable[..., Any]) -> None:
        """Take the direct route for this fit when :func:`dispatch_is_plain` (called at the fit's start)."""
        self._plain = dispatch_is_plain(self._module.trainer, step_hook)

    def _block_sync(self) -> Any:
        strategy = self._module.trainer.strategy
        return strategy.block_backward_sync() if isinstance(strategy, ParallelStrategy) else nullcontext()

    def backward(self, loss: torch.Tensor, *, sync: bool, **kwargs: Any) -> None:
        backward = loss.backward if self._plain else partial(self._module.manual_backward, loss)
        if sync:
            backward(**kwargs)
        else:
            with self._block_sync():
                backward(**kwargs)

    def step(
        self, optimizer: torch.optim.Optimizer, *, before_step: Callable[[], None] | None = None, **kwargs: Any
    ) -> Any:
        if self._plain:  # the module's on_before_optimizer_step would run before_step: run it here
            if before_step is not None:
                before_step()
            return optimizer.step(**kwargs)
        self._before_step = before_step
        try:
            return self._module.trainer.strategy.optimizer_step(optimizer, _no_closure, **kwargs)
        finally:
            self._before_step = None

    def run_before_step(self) -> None:
        """Run the pending ``before_step`` (called from ``on_before_optimizer_step``)."""
        if self._before_step is not None:
            before_step, self._before_step = self._before_step, None
            before_step()

    def holds_grads(self, optimizer: torch.optim.Optimizer) -> bool:
        """``param.grad`` of the optimizer's parameters, or the strategy's own unsynchronised gradients."""
        if TORCH_BACKEND.holds_grads(optimizer):
            return True
        holds = getattr(self._module.trainer.strategy, "holds_unsynced_grads", None)
        return holds is not None and holds(optimizer)

    @contextmanager
    def no_sync(self, model: nn.Module) -> Iterator[None]:
        with ExitStack() as stack:
            stack.enter_context(self._block_sync())
            if hasattr(model, "no_sync"):
                stack.enter_context(model.no_sync())
            yield
