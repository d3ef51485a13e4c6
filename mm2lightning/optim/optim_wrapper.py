"""OptimWrapper: backward, gradient accumulation and clipping, as ``mmengine.optim.OptimWrapper``."""

from __future__ import annotations

import inspect
import logging
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mm2lightning.optim.backend import TORCH_BACKEND, OptimBackend
from mm2lightning.optim.base import BaseOptimWrapper
from mm2lightning.errors import AssertTypeError, AssertValueError, MMEngineAssertionError, TypeAttributeError
from mm2lightning.registry import OPTIM_WRAPPERS

log = logging.getLogger(__name__)

_NO_CONTEXT = nullcontext()  # reusable: nullcontext keeps no state

_CLIP_FUNCS = {
    "norm": (torch.nn.utils.clip_grad_norm_, "grad_norm"),
    "value": (torch.nn.utils.clip_grad_value_, "grad_value"),
}


def _parse_clip_grad(clip_grad: dict[str, Any]) -> tuple[Any, str, dict[str, Any]]:
    """Validate ``clip_grad`` early and return (clip function, log name, kwargs)."""
    if not isinstance(clip_grad, dict) or not clip_grad:
        raise AssertTypeError(
            "If `clip_grad` is not None, it should be a `dict`: "
            "clip_grad must be None or a non-empty dict of arguments for "
            "torch.nn.utils.clip_grad_norm_ (type='norm', the default) or clip_grad_value_ "
            f"(type='value'), e.g. dict(max_norm=1.0); but got {clip_grad!r}"
        )
    kwargs = dict(clip_grad)  # MMEngine pops 'type' from the caller's dict; we leave it intact
    clip_type = kwargs.pop("type", "norm")
    if clip_type not in _CLIP_FUNCS:
        raise ValueError(
            f"clip_grad type must be 'norm' or 'value', but got {clip_type!r} "
            '(type of clip_grad should be "norm" or "value")'
        )
    func, grad_name = _CLIP_FUNCS[clip_type]
    accepted = [p for p in inspect.signature(func).parameters if p != "parameters"]
    unknown = sorted(set(kwargs) - set(accepted))
    if not kwargs:
        raise AssertValueError(
            f"`clip_grad` should contain other arguments besides `type`: clip_grad for type={clip_type!r} takes "
            f"arguments of {func.__name__} ({', '.join(accepted)}), but got none"
        )
    if unknown:
        raise ValueError(
            f"clip_grad for type={clip_type!r} takes arguments of {func.__name__} "
            f"({', '.join(accepted)}), but got {sorted(kwargs) or 'none'}"
            + (" (for clip_value, set type='value')" if "clip_value" in unknown else "")
        )
    return func, grad_name, kwargs


def has_batch_norm(model: nn.Module) -> bool:
    """Whether ``model`` contains a batch-norm layer."""
    return any(isinstance(m, _BatchNorm) for m in model.modules())


class LossFactorError(RuntimeError, MMEngineAssertionError):
    """An iteration past the ``max_counts`` given to ``initialize_count_status`` (MMEngine asserts)."""


class LossTypeError(TypeAttributeError):
    """The loss given to an optim wrapper has no ``backward()`` method.

    Also an ``AttributeError``, what MMEngine's ``loss.backward()`` raises for it.
    """


def _check_loss(wrapper: Any, loss: Any) -> None:
    """Accept a tensor or, as MMEngine, any object with a callable ``backward``."""
    if isinstance(loss, torch.Tensor) or callable(getattr(loss, "backward", None)):
        return
    raise LossTypeError(
        f"the loss passed to {type(wrapper).__name__} must be a tensor (or an object with a backward() method), "
        f"but got {type(loss).__name__} ({loss!r}): '{type(loss).__name__}' object has no attribute 'backward'; "
        "check that forward(mode='loss') returns keys containing 'loss'"
    )


@OPTIM_WRAPPERS.register_module()
class OptimWrapper(BaseOptimWrapper):
    """Updates parameters with optional gradient accumulation and clipping.

    Semantics follow MMEngine exactly: the accumulation window runs across
    epochs, and the last ``max_iters % accumulative_counts`` iterations of a run
    (after :meth:`initialize_count_status`) divide the loss by that remainder.
    Backward, step and gradient-sync blocking go through :attr:`backend`
    (plain PyTorch by default; the Lightning bridge sets its own).

    Args:
        optimizer: The optimizer to wrap.
        accumulative_counts: Number of backward passes per optimizer step (>= 1).
        clip_grad: ``None``, or the arguments of ``clip_grad_norm_``
            (``dict(max_norm=...)``, ``type='norm'`` by default) or
            ``clip_grad_value_`` (``dict(type='value', clip_value=...)``).

    Attributes:
        grad_norm: The total gradient norm (a tensor, before clipping) of the
            last step clipped by norm, for logging; ``None`` otherwise.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        accumulative_counts: int = 1,
        clip_grad: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(optimizer)
        if isinstance(accumulative_counts, bool) or not isinstance(accumulative_counts, int) or accumulative_counts < 1:
            raise AssertValueError(
                "_accumulative_counts at least greater than or equal to 1: accumulative_counts must be an "
                f"integer >= 1 (1 means no accumulation), but got {accumulative_counts!r}"
            )
        self._accumulative_counts = accumulative_counts
        self.clip_grad_kwargs: dict[str, Any] | None = None
        if clip_grad is not None:
            self.clip_func, self.grad_name, self.clip_grad_kwargs = _parse_clip_grad(clip_grad)
        self.grad_norm: torch.Tensor | None = None
        self.backend: OptimBackend = TORCH_BACKEND
        self._inner_count = 0
        self._max_counts = -1
        self._remainder_counts = -1

    # ------------------------------------------------------------------ update
    def update_params(
        self,
        loss: torch.Tensor,
        step_kwargs: dict[str, Any] | None = None,
        zero_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Scale ``loss`` for accumulation, backward, and step + zero_grad when due.

        ``loss`` is a tensor or, as in MMEngine, any object with a ``backward()``
        method (a custom loss object, a mock in a test); while accumulating it is
        divided by the window size (``loss / n``), so it must support that too.
        """
        _check_loss(self, loss)
        self.backward(self.scale_loss(loss))
        if self.should_update():
            self.step(**(step_kwargs or {}))
            self.zero_grad(**(zero_kwargs or {}))

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """Backward through the backend (``loss.backward(**kwargs)``); counts one accumulation step.

        ``loss`` is a tensor or any object with a ``backward()`` method, as in MMEngine.
        """
        _check_loss(self, loss)
        self.backend.backward(loss, sync=self.should_sync(), **kwargs)
        self._inner_count += 1

    def step(self, **kwargs: Any) -> None:
        """Step the optimizer through the backend, clipping the (unscaled) gradients first if configured."""
        self.backend.step(self.optimizer, before_step=self._clip_grad if self.clip_grad_kwargs else None, **kwargs)

    def zero_grad(self, **kwargs: Any) -> None:
        self.optimizer.zero_grad(**kwargs)

    def _clip_grad(self) -> None:
        params = [
            p for group in self.optimizer.param_groups for p in group["params"] if p.requires_grad and p.grad is not None
        ]
        if params:
            grad = self.clip_func(params, **self.clip_grad_kwargs)
            if grad is not None:
                full_tensor = getattr(grad, "full_tensor", None)  # the norm over sharded (DTensor) parameters
                self.grad_norm = (grad if full_tensor is None else full_tensor()).detach()

    # ------------------------------------------------------------- accumulation
    def optim_context(self, model: nn.Module) -> AbstractContextManager[Any]:
        """Forward context: blocks gradient sync while accumulating."""
        return _NO_CONTEXT if self.should_sync() else self.backend.no_sync(model)

    def initialize_count_status(self, model: nn.Module, init_counts: int, max_counts: int) -> None:
        """Set the iteration count (for resuming) and the run's total iterations.

        Args:
            model: The trained model (used to warn about batch norm with accumulation).
            init_counts: Iterations already run.
            max_counts: Total training iterations of the run.
        """
        self._inner_count = init_counts
        self._max_counts = max_counts
        mid_window = init_counts % self._accumulative_counts != 0
        if mid_window and not self.backend.holds_grads(self.optimizer):
            log.warning(
                "Resumed iteration number %d is not divisible by accumulative_counts=%d: the gradients "
                "of the interrupted accumulation window are lost, which may change results slightly.",
                init_counts,
                self._accumulative_counts,
            )
        if self._accumulative_counts > 1 and has_batch_norm(model):
            log.warning("Gradient accumulation may slightly decrease performance because the model has BatchNorm layers.")
        self._remainder_counts = max_counts % self._accumulative_counts

    def should_update(self) -> bool:
        """Whether the optimizer steps now (evaluated after backward)."""
        return self._inner_count % self._accumulative_counts == 0 or self._inner_count == self._max_counts

    def should_sync(self) -> bool:
        """Whether the next backward's gradients will be stepped (evaluated before backward)."""
        next_count = self._inner_count + 1
        return next_count % self._accumulative_counts == 0 or next_count == self._max_counts

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """Divide ``loss`` by the accumulation factor of the current window."""
        if self._accumulative_counts == 1:
            if isinstance(loss, torch.Tensor) or not hasattr(type(loss), "__truediv__"):
                return loss  # x / 1 == x: skip the tensor op
            return loss / 1  # a loss object sees the same calls as under MMEngine (which always divides)
        if self._max_counts == -1 or self._inner_count < self._max_counts - self._remainder_counts:
            return loss / self._accumulative_counts
        if self._remainder_counts <= 0:
            raise LossFactorError(
                "loss_factor should be larger than zero! "
                f"iteration {self._inner_count} is past the run's max_counts={self._max_counts} given to "
                "initialize_count_status; call it with the real number of iterations run and in total"
            )
        return loss / self._remainder_counts

    @property
    def inner_count(self) -> int:
        return self._inner_count

    def __repr__(self) -> str:
        return (
            f"Type: {type(self).__name__}\n_accumulative_counts: {self._accumulative_counts}\n"
            f"optimizer: \n{self.optimizer!r}\n"
        )
