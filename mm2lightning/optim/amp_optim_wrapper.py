"""AmpOptimWrapper: automatic mixed precision on any device with ``torch.amp``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from mm2lightning.errors import AssertTypeError, AssertValueError
from mm2lightning.optim.optim_wrapper import OptimWrapper, _check_loss
from mm2lightning.registry import OPTIM_WRAPPERS

log = logging.getLogger(__name__)

LossScale = str | int | float | dict[str, Any]


class _BackendStepTarget:
    """What the GradScaler steps: the wrapper's optimizer, stepped through its backend.

    ``GradScaler.step(opt)`` calls ``opt.step()`` itself; handing it this object
    keeps the wrapper's backend (Lightning's strategy step, for example) in the
    path. The GradScaler keys its per-optimizer state on ``id()``, so each wrapper
    keeps one instance.
    """

    def __init__(self, wrapper: OptimWrapper) -> None:
        self._wrapper = wrapper

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self._wrapper.optimizer.param_groups

    def step(self, *args: Any, **kwargs: Any) -> Any:
        return self._wrapper.backend.step(self._wrapper.optimizer, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapper.optimizer, name)


def _resolve_device_type(optimizer: torch.optim.Optimizer, device_type: str | None) -> str:
    if device_type is not None:
        return device_type
    for group in optimizer.param_groups:
        for param in group["params"]:
            return param.device.type
    return "cuda" if torch.cuda.is_available() else "cpu"


def _build_scaler(
    loss_scale: LossScale, device_type: str, use_fsdp: bool
) -> tuple[torch.amp.GradScaler, float | None]:
    """Return the GradScaler for ``loss_scale`` and the static scale (or None if dynamic)."""
    if use_fsdp:
        from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler as scaler_cls
    else:
        scaler_cls = torch.amp.GradScaler
    if isinstance(loss_scale, str):
        if loss_scale != "dynamic":
            raise LossScaleError(
                f"loss_scale given as a string must be 'dynamic', but got {loss_scale!r} "
                '(loss_scale must be of type float, dict, or "dynamic")'
            )
        return scaler_cls(device_type), None
    if isinstance(loss_scale, (int, float)) and not isinstance(loss_scale, bool):
        if not loss_scale > 0:
            raise ValueError(f"a static loss_scale must be a positive number, but got {loss_scale!r}")
        return scaler_cls(device_type, init_scale=float(loss_scale)), float(loss_scale)
    if isinstance(loss_scale, dict):
        try:
            return scaler_cls(device_type, **loss_scale), None
        except TypeError as exc:
            raise TypeError(
                f"loss_scale as a dict must hold GradScaler arguments (init_scale, growth_factor, "
                f"backoff_factor, growth_interval, enabled), but got {loss_scale!r}: {exc}"
            ) from exc
    raise TypeError(
        'loss_scale must be of type float, dict, or "dynamic": '
        "loss_scale must be 'dynamic', a positive number (a static scale) or a dict of GradScaler "
        f"arguments, but got {type(loss_scale).__name__} ({loss_scale!r})"
    )


class LossScaleError(ValueError, TypeError):
    """A string ``loss_scale`` other than ``'dynamic'``; also the ``TypeError`` MMEngine raises for it."""


class AmpLossTypeError(TypeError, ValueError):
    """A loss that is not a tensor, given to an :class:`AmpOptimWrapper` that scales float16 losses.

    Also a ``ValueError``, what ``GradScaler.scale`` raises for it (as MMEngine does).
    """


@OPTIM_WRAPPERS.register_module()
class AmpOptimWrapper(OptimWrapper):
    """Mixed-precision training with ``torch.autocast`` and a ``GradScaler``, on CPU or CUDA.

    Unlike MMEngine's, it runs on any device ``torch.amp`` supports, CPU
    included. The forward inside :meth:`optim_context` runs under autocast;
    float16 losses are scaled by a ``GradScaler`` (an inf/nan gradient skips the
    step and lowers the scale); bfloat16 (and float32/float64) need no scaler and
    get none. Gradients are unscaled before clipping.

    Args:
        loss_scale: ``'dynamic'`` (default), a number for a static scale, or a
            dict of ``torch.amp.GradScaler`` arguments.
        dtype: Autocast dtype: ``'float16'``, ``'bfloat16'``, ``'float32'``,
            ``'float64'``, a ``torch.dtype``, or ``None`` for the device's autocast
            default (float16 on CUDA, bfloat16 on CPU).
        use_fsdp: Use ``ShardedGradScaler`` (for FSDP-sharded parameters).
        device_type: Autocast device; ``None`` takes the device of the optimizer's
            parameters.
        **kwargs: ``optimizer``, ``accumulative_counts``, ``clip_grad`` as in
            :class:`OptimWrapper`.
    """

    valid_dtypes = ("float16", "bfloat16", "float32", "float64")

    def __init__(
        self,
        loss_scale: LossScale = "dynamic",
        dtype: str | torch.dtype | None = None,
        use_fsdp: bool = False,
        device_type: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.device_type = _resolve_device_type(self.optimizer, device_type)
        if isinstance(dtype, str):
            if dtype not in self.valid_dtypes:
                raise AssertValueError(
                    f"dtype should be any of {self.valid_dtypes}, got {dtype}: dtype must be one of these names, "
                    "a torch.dtype or None"
                )
            dtype = getattr(torch, dtype)
        elif dtype is not None and not isinstance(dtype, torch.dtype):
            raise AssertTypeError(
                f"dtype should be None or instance of torch.dtype, got {dtype}: dtype must be a str, a torch.dtype "
                f"or None, but got {type(dtype).__name__}"
            )
        self.cast_dtype: torch.dtype | None = dtype
        self.autocast_dtype: torch.dtype = dtype or torch.get_autocast_dtype(self.device_type)
        self.loss_scaler: torch.amp.GradScaler | None = None
        self._scale_update_param: float | None = None
        scaler, static_scale = _build_scaler(loss_scale, self.device_type, use_fsdp)
        if self.autocast_dtype is torch.float16:
            self.loss_scaler, self._scale_update_param = scaler, static_scale
        elif loss_scale != "dynamic":
            log.warning("loss_scale=%r is ignored: %s autocast needs no loss scaling.", loss_scale, self.autocast_dtype)
        self._step_target = _BackendStepTarget(self)

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """Scale the loss (float16 only), then backward.

        Without a loss scaler (bfloat16, float32) the loss may be any object
        with a ``backward()`` method; float16 loss scaling needs a tensor.
        """
        if self.loss_scaler is not None:
            if not isinstance(loss, torch.Tensor):
                _check_loss(self, loss)  # no backward at all: the same error as OptimWrapper
                raise AmpLossTypeError(
                    f"{type(self).__name__} with float16 loss scaling needs a tensor loss, but got "
                    f"{type(loss).__name__}: GradScaler.scale multiplies tensors (its message: outputs must be a "
                    "Tensor or an iterable of Tensors); return a tensor loss, or use dtype='bfloat16', which "
                    "needs no scaler"
                )
            loss = self.loss_scaler.scale(loss)
        super().backward(loss, **kwargs)

    def step(self, **kwargs: Any) -> None:
        """Unscale and clip if configured, then step through the scaler (skipped on inf/nan)."""
        if self.loss_scaler is None:
            super().step(**kwargs)
            return
        if self.clip_grad_kwargs:
            self.loss_scaler.unscale_(self._step_target)
            self._clip_grad()
        self.loss_scaler.step(self._step_target, **kwargs)
        self.loss_scaler.update(self._scale_update_param)

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """Gradient-sync blocking as :class:`OptimWrapper`, plus autocast for the forward."""
        with super().optim_context(model), torch.autocast(self.device_type, dtype=self.autocast_dtype):
            yield

    def state_dict(self) -> dict[str, Any]:
        """The optimizer state, plus ``'loss_scaler'`` (the GradScaler's state) when scaling."""
        state_dict = super().state_dict()
        if self.loss_scaler is not None:
            state_dict["loss_scaler"] = self.loss_scaler.state_dict()
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load optimizer and GradScaler state. The dict is not modified."""
        state_dict = dict(state_dict)
        scaler_state = state_dict.pop("loss_scaler", None)
        if scaler_state is not None and self.loss_scaler is not None:
            self.loss_scaler.load_state_dict(scaler_state)
        super().load_state_dict(state_dict)
