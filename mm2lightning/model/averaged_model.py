"""Averaged models (EMA, SWA), as ``mmengine.model.averaged_model``.

Example:
    >>> from mm2lightning.model import ExponentialMovingAverage
    >>> ema = ExponentialMovingAverage(student, momentum=0.0002)
    >>> ema.update_parameters(student)  # after each optimizer step
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Callable
from copy import deepcopy
from typing import Any

import torch
from torch import Tensor, nn

from mm2lightning.logging import print_log
from mm2lightning.registry import MODELS



class AveragedModelError(ValueError, AssertionError):
    """An invalid averaged-model argument.

    An ``AssertionError`` too, because MMEngine asserts on these arguments.
    """


class BaseAveragedModel(nn.Module):
    """Base class of weight-averaging models, as ``mmengine.model.BaseAveragedModel``.

    Keeps a frozen copy of ``model`` as :attr:`module` (on ``device`` if given) and
    averages the source model's parameters into it in place with :meth:`avg_func`,
    which subclasses implement. The first :meth:`update_parameters` copies the
    source; later calls average on every ``interval``-th call. The ``steps`` buffer
    counts the calls, so :meth:`state_dict` holds ``module.``-prefixed keys and
    ``steps``.

    Args:
        model: The model to average.
        interval: Average on every ``interval``-th update. Defaults to 1.
        device: Where to keep the averaged copy. Defaults to the model's device.
        update_buffers: Average the buffers as well (floating-point ones); when
            False, buffers are copied from the source at every update.
    """

    def __init__(
        self,
        model: nn.Module,
        interval: int = 1,
        device: torch.device | str | None = None,
        update_buffers: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise AveragedModelError(
                f"interval must be a positive int (average on every interval-th update), but got {interval!r}"
            )
        self.module = deepcopy(model).requires_grad_(False)
        self.interval = interval
        if device is not None:
            self.module = self.module.to(device)
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long, device=device))
        # ``steps`` on the host, valid while the buffer is the one it was read from, unchanged since: no device
        # sync per update, and a buffer loaded, written or replaced is read again.
        self._host_steps = (0, self._steps_key())
        self.update_buffers = update_buffers
        self.avg_parameters = self._averaged_tensors()

    def _averaged_tensors(self) -> dict[str, Tensor]:
        """The tensors of :attr:`module` that updates write to, by state-dict key."""
        if self.update_buffers:
            return self.module.state_dict()
        return dict(self.module.named_parameters())

    def _apply(self, fn: Callable[[Tensor], Tensor], *args: Any, **kwargs: Any) -> BaseAveragedModel:
        # ``.to()``/``.cuda()``/``.half()`` replace buffers (and the storage that state-dict tensors
        # share), so re-collect the tensors updates write to.
        super()._apply(fn, *args, **kwargs)
        self.avg_parameters = self._averaged_tensors()
        return self

    @abstractmethod
    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        """Average ``source_param`` into ``averaged_param`` in place.

        Args:
            averaged_param: The averaged tensor, updated in place.
            source_param: The source model's tensor (on ``averaged_param``'s device).
            steps: How many updates ran before this one.
        """

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the averaged :attr:`module`."""
        return self.module(*args, **kwargs)

    def update_parameters(self, model: nn.Module) -> None:
        """Average ``model``'s parameters (and buffers with ``update_buffers``) into :attr:`module`.

        Args:
            model: The source model, with the same structure as :attr:`module`.
        """
        src_parameters = model.state_dict() if self.update_buffers else dict(model.named_parameters())
        steps, key = self._host_steps
        if key != self._steps_key():
            steps = int(self.steps)
        if steps == 0:
            for k, p_avg in self.avg_parameters.items():
                p_avg.data.copy_(src_parameters[k].data)
        elif steps % self.interval == 0:
            for k, p_avg in self.avg_parameters.items():
                if p_avg.dtype.is_floating_point:
                    self.avg_func(p_avg.data, src_parameters[k].data.to(p_avg.device), steps)
        if not self.update_buffers:
            # buffers are not averaged: keep them in sync with the source model
            for b_avg, b_src in zip(self.module.buffers(), model.buffers()):
                b_avg.data.copy_(b_src.data.to(b_avg.device))
        self.steps += 1
        self._host_steps = (steps + 1, self._steps_key())

    def _steps_key(self) -> tuple[int, int]:
        """Which ``steps`` tensor this is, and its in-place version counter (no device access)."""
        return id(self.steps), self.steps._version

@MODELS.register_module()
class StochasticWeightAverage(BaseAveragedModel):
    """Stochastic weight averaging (SWA), as ``mmengine.model.StochasticWeightAverage``.

    The averaged tensor is the running mean of the source tensors seen at the
    averaging updates (`Izmailov et al., 2018 <https://arxiv.org/abs/1803.05407>`_).
    """

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        """``averaged += (source - averaged) / (steps // interval + 1)``, in place."""
        averaged_param.add_(source_param - averaged_param, alpha=1 / float(steps // self.interval + 1))


@MODELS.register_module()
class ExponentialMovingAverage(BaseAveragedModel):
    r"""Exponential moving average (EMA), as ``mmengine.model.ExponentialMovingAverage``.

    ``averaged = (1 - momentum) * averaged + momentum * source``: unlike an
    optimizer's momentum, this ``momentum`` is the (small) weight of the source.

    Args:
        model: The model to average.
        momentum: The source's weight, in (0, 1). Defaults to 0.0002.
        interval: Average on every ``interval``-th update. Defaults to 1.
        device: Where to keep the averaged copy. Defaults to the model's device.
        update_buffers: Average the buffers as well. Defaults to False.
    """

    def __init__(
        self,
        model: nn.Module,
        momentum: float = 0.0002,
        interval: int = 1,
        device: torch.device | str | None = None,
        update_buffers: bool = False,
    ) -> None:
        if not 0.0 < momentum < 1.0:
            raise AveragedModelError(
                f"momentum must be in range (0.0, 1.0) but got {momentum}: it is the source model's weight in "
                "`averaged = (1 - momentum) * averaged + momentum * source`, usually small (e.g. 0.0002)"
            )
        super().__init__(model, interval, device, update_buffers)
        if momentum > 0.5:
            print_log(
                "The value of momentum in EMA is usually a small number, which is different from the conventional "
                f"notion of momentum but got {momentum}. Please make sure the value is correct.",
                logger="current", level=logging.WARNING,
            )
        self.momentum = momentum

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        """``averaged = averaged.lerp(source, momentum)``, in place."""
        averaged_param.lerp_(source_param, self.momentum)


@MODELS.register_module()
class MomentumAnnealingEMA(ExponentialMovingAverage):
    """EMA whose momentum anneals, as ``mmengine.model.MomentumAnnealingEMA``.

    The momentum at an update is ``max(momentum, gamma / (gamma + steps))``: large
    early in training, then down to ``momentum``.

    Args:
        model: The model to average.
        momentum: The smallest momentum, in (0, 1). Defaults to 0.0002.
        gamma: The annealing constant, > 0. Defaults to 100.
        interval: Average on every ``interval``-th update. Defaults to 1.
        device: Where to keep the averaged copy. Defaults to the model's device.
        update_buffers: Average the buffers as well. Defaults to False.
    """

    def __init__(
        self,
        model: nn.Module,
        momentum: float = 0.0002,
        gamma: int = 100,
        interval: int = 1,
        device: torch.device | str | None = None,
        update_buffers: bool = False,
    ) -> None:
        super().__init__(
            model=model, momentum=momentum, interval=interval, device=device, update_buffers=update_buffers
        )
        if not gamma > 0:
            raise AveragedModelError(
                f"gamma must be greater than 0, but got {gamma}: the momentum anneals as "
                "max(momentum, gamma / (gamma + steps))"
            )
        self.gamma = gamma

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        """``averaged = averaged.lerp(source, max(momentum, gamma / (gamma + steps)))``, in place."""
        averaged_param.lerp_(source_param, max(self.momentum, self.gamma / (self.gamma + steps)))


__all__ = [
    "AveragedModelError",
    "BaseAveragedModel",
    "ExponentialMovingAverage",
    "MomentumAnnealingEMA",
    "StochasticWeightAverage",
]
