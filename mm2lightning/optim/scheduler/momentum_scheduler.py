"""Momentum schedulers: the generic schedulers on ``momentum``, or on ``betas[0]`` for Adam-like optimizers.

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
from mm2lightning.optim.scheduler.param_scheduler import OptimizerType, check_optimizer
from mm2lightning.optim.scheduler.reduce_on_plateau import ReduceOnPlateauParamScheduler
from mm2lightning.registry import PARAM_SCHEDULERS


class MomentumSchedulerMixin:
    """Schedules ``'momentum'``; for an optimizer with ``betas`` instead, schedules ``betas[0]``.

    With ``betas``, each group gets a ``'momentum'`` key set to ``betas[0]``,
    which is scheduled and written back into ``betas`` after every step.
    """

    optimizer: OptimizerType

    def __init__(self, optimizer: OptimizerType, *args: Any, **kwargs: Any) -> None:
        check_optimizer(optimizer, type(self).__name__)
        self.use_betas = "momentum" not in optimizer.defaults and "betas" in optimizer.defaults
        if self.use_betas:
            for group in optimizer.param_groups:
                group["momentum"] = group["betas"][0]
        elif "momentum" not in optimizer.defaults:
            raise ValueError(
                f"{type(self).__name__}: optimizer must support momentum when using momentum scheduler: "
                f"the optimizer ({type(optimizer).__name__}) has neither 'momentum' "
                "nor 'betas' in its defaults, so it has no momentum to schedule"
            )
        super().__init__(optimizer, "momentum", *args, **kwargs)  # type: ignore[call-arg]

    def step(self, *args: Any, **kwargs: Any) -> None:
        """Step the schedule, then copy the momentum into ``betas[0]`` when scheduling ``betas``."""
        super().step(*args, **kwargs)  # type: ignore[misc]
        if self.use_betas:
            for group in self.optimizer.param_groups:
                group["betas"] = (group["momentum"], group["betas"][1])


@PARAM_SCHEDULERS.register_module()
class StepMomentum(MomentumSchedulerMixin, StepParamScheduler):
    """Decay the momentum by ``gamma`` every ``step_size`` steps; see :class:`StepParamScheduler`."""


@PARAM_SCHEDULERS.register_module()
class MultiStepMomentum(MomentumSchedulerMixin, MultiStepParamScheduler):
    """Decay the momentum by ``gamma`` at each milestone; see :class:`MultiStepParamScheduler`."""


@PARAM_SCHEDULERS.register_module()
class ConstantMomentum(MomentumSchedulerMixin, ConstantParamScheduler):
    """Scale the momentum by a constant factor until ``end``; see :class:`ConstantParamScheduler`."""


@PARAM_SCHEDULERS.register_module()
class ExponentialMomentum(MomentumSchedulerMixin, ExponentialParamScheduler):
    """Decay the momentum by ``gamma`` every step; see :class:`ExponentialParamScheduler`."""


@PARAM_SCHEDULERS.register_module()
class CosineAnnealingMomentum(MomentumSchedulerMixin, CosineAnnealingParamScheduler):
    """Cosine-anneal the momentum; see :class:`CosineAnnealingParamScheduler`."""


@PARAM_SCHEDULERS.register_module()
class LinearMomentum(MomentumSchedulerMixin, LinearParamScheduler):
    """Scale the momentum by a linearly changing factor; see :class:`LinearParamScheduler`."""


@PARAM_SCHEDULERS.register_module()
class PolyMomentum(MomentumSchedulerMixin, PolyParamScheduler):
    """Polynomial momentum decay; see :class:`PolyParamScheduler`."""


@PARAM_SCHEDULERS.register_module()
class CosineRestartMomentum(MomentumSchedulerMixin, CosineRestartParamScheduler):
    """Cosine-anneal the momentum with restarts; see :class:`CosineRestartParamScheduler`."""


@PARAM_SCHEDULERS.register_module()
class ReduceOnPlateauMomentum(MomentumSchedulerMixin, ReduceOnPlateauParamScheduler):
    """Reduce the momentum when a metric stops improving; see :class:`ReduceOnPlateauParamScheduler`."""
