"""The seam between the optim wrappers and the training engine.

Every optim wrapper does backward, optimizer step and gradient-sync blocking
through an :class:`OptimBackend`. The default, :class:`TorchBackend`, is plain
PyTorch (what MMEngine does). The Lightning bridge sets its own backend on each
wrapper (``wrapper.backend = ...``) so that backward runs through
``manual_backward`` and steps through the strategy, without subclassing any
wrapper.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class OptimBackend(Protocol):
    """How an optim wrapper runs backward, optimizer steps and sync blocking."""

    def backward(self, loss: torch.Tensor, *, sync: bool, **kwargs: Any) -> None:
        """Compute gradients of ``loss``.

        Args:
            loss: The (already scaled) loss.
            sync: ``False`` while accumulating: the gradients of this backward will
                not be stepped yet. Engines that decide gradient sync at backward
                time use it to skip the all-reduce.
            **kwargs: Passed to ``Tensor.backward``.
        """

    def step(
        self, optimizer: torch.optim.Optimizer, *, before_step: Callable[[], None] | None = None, **kwargs: Any
    ) -> Any:
        """Run one optimizer step.

        Args:
            optimizer: The optimizer to step.
            before_step: Run right before the update, on unscaled gradients
                (gradient clipping). Engines whose precision plugin unscales
                inside the step run it after unscaling.
            **kwargs: Passed to ``optimizer.step``.
        """

    def no_sync(self, model: nn.Module) -> AbstractContextManager[Any]:
        """A context in which forward/backward passes do not synchronise gradients."""

    def holds_grads(self, optimizer: torch.optim.Optimizer) -> bool:
        """Whether gradients of ``optimizer``'s parameters are held (e.g. an accumulation window restored on
        resume); engines that keep unsynchronised gradients elsewhere than ``param.grad`` say so here."""


class TorchBackend:
    """Plain PyTorch: ``loss.backward()``, ``optimizer.step()``, ``model.no_sync()`` if it has one."""

    def backward(self, loss: torch.Tensor, *, sync: bool, **kwargs: Any) -> None:
        loss.backward(**kwargs)

    def step(
        self, optimizer: torch.optim.Optimizer, *, before_step: Callable[[], None] | None = None, **kwargs: Any
    ) -> Any:
        if before_step is not None:
            before_step()
        return optimizer.step(**kwargs)

    def no_sync(self, model: nn.Module) -> AbstractContextManager[Any]:
        no_sync = getattr(model, "no_sync", None)
        return no_sync() if no_sync is not None else nullcontext()

    def holds_grads(self, optimizer: torch.optim.Optimizer) -> bool:
        return any(p.grad is not None for group in optimizer.param_groups for p in group["params"])


TORCH_BACKEND = TorchBackend()
