"""Learning-rate schedulers: the generic schedulers with ``param_name='lr'``.

Each takes the arguments of its generic counterpart without ``param_name``.
"""

from __future__ import annotations

from typing import Any

from mm2lightning.optim.scheduler.generic import (
    ConstantParamScheduler,
    CosineAnnealingParamScheduler,
    CosineRestartParamScheduler,
    ExponentialParamScheduler,
    LinearParamScheduler,
    MultiStepParamScheduler,
    PolyParamScheduler,
    StepParamScheduler,
)
from mm2lightning.optim.scheduler.one_cycle import OneCycleParamScheduler
from mm2lightning.optim.scheduler.param_scheduler import OptimizerType
from mm2lightning.optim.scheduler.reduce_on_plateau import ReduceOnPlateauParamScheduler
from mm2lightning.registry import PARAM_SCHEDULERS


class LRSchedulerMixin:
    """Fixes ``param_name='lr'``; the other arguments go to the generic scheduler."""

    def __init__(self, optimizer: OptimizerType, *args: Any, **kwargs: Any) -> None:
        super().__init__(optimizer, "lr", *args, **kwargs)  # type: ignore[call-arg]


@PARAM_SCHEDULERS.register_module()
class StepLR(LRSchedulerMixin, StepParamScheduler):
    """Decay the learning rate by ``gamma`` every ``step_size`` steps; see :class:`StepParamScheduler`."""


@PARAM_SCHEDULERS.register_module()
class MultiStepLR(LRSchedulerMixin, MultiStepParamScheduler):
    """Decay the learning rate by ``gamma`` at each milestone; see :class:`MultiStepParamScheduler`."""


@PARAM_SCHEDULERS.register_module()
class ConstantLR(LRSchedulerMixin, ConstantParamScheduler):
    """Scale the learning rate by a constant factor until ``end``; see :class:`ConstantParamScheduler`."""


@PARAM_SCHEDULERS.register_module()
class ExponentialLR(LRSchedulerMixin, ExponentialParamScheduler):
    """Decay the learning rate by ``gamma`` every step; see :class:`ExponentialParamScheduler`."""


@PARAM_SCHEDULERS.register_module()
class CosineAnnealingLR(LRSchedulerMixin, CosineAnnealingParamScheduler):
    """Cosine-anneal the learning rate; see :class:`CosineAnnealingParamScheduler`."""


@PARAM_SCHEDULERS.register_module()
class LinearLR(LRSchedulerMixin, LinearParamScheduler):
    """Scale the learning rate by a linearly changing factor (warm-up); see :class:`LinearParamScheduler`."""


@PARAM_SCHEDULERS.register_module()
class PolyLR(LRSchedulerMixin, PolyParamScheduler):
    """Polynomial learning-rate decay; see :class:`PolyParamScheduler`."""


@PARAM_SCHEDULERS.register_module()
class OneCycleLR(LRSchedulerMixin, OneCycleParamScheduler):
    """The 1cycle learning-rate policy; see :class:`OneCycleParamScheduler`."""


@PARAM_SCHEDULERS.register_module()
class CosineRestartLR(LRSchedulerMixin, CosineRestartParamScheduler):
    """Cosine-anneal the learning rate with restarts; see :class:`CosineRestartParamScheduler`."""


@PARAM_SCHEDULERS.register_module()
class ReduceOnPlateauLR(LRSchedulerMixin, ReduceOnPlateauParamScheduler):
    """Reduce the learning rate when a metric stops improving; see :class:`ReduceOnPlateauParamScheduler`."""
