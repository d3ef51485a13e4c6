"""Parameter schedulers with MMEngine's semantics, registered in ``PARAM_SCHEDULERS``.

Example:
    >>> from mm2lightning.optim.scheduler import build_param_schedulers
    >>> schedulers = build_param_schedulers(
    ...     [dict(type='LinearLR', start_factor=0.1, end=1, convert_to_iter_based=True),
    ...      dict(type='CosineAnnealingLR', begin=1, T_max=3)],
    ...     optim_wrapper, epoch_length=5, max_epochs=4)
"""

from mm2lightning.optim.scheduler.builder import build_param_schedulers
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
from mm2lightning.optim.scheduler.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    CosineRestartLR,
    ExponentialLR,
    LinearLR,
    LRSchedulerMixin,
    MultiStepLR,
    OneCycleLR,
    PolyLR,
    ReduceOnPlateauLR,
    StepLR,
)
from mm2lightning.optim.scheduler.momentum_scheduler import (
    ConstantMomentum,
    CosineAnnealingMomentum,
    CosineRestartMomentum,
    ExponentialMomentum,
    LinearMomentum,
    MomentumSchedulerMixin,
    MultiStepMomentum,
    PolyMomentum,
    ReduceOnPlateauMomentum,
    StepMomentum,
)
from mm2lightning.optim.scheduler.one_cycle import OneCycleParamScheduler
from mm2lightning.optim.scheduler.param_scheduler import INF, _ParamScheduler
from mm2lightning.optim.scheduler.reduce_on_plateau import ReduceOnPlateauParamScheduler

__all__ = [
    "INF",
    "ConstantLR",
    "ConstantMomentum",
    "ConstantParamScheduler",
    "CosineAnnealingLR",
    "CosineAnnealingMomentum",
    "CosineAnnealingParamScheduler",
    "CosineRestartLR",
    "CosineRestartMomentum",
    "CosineRestartParamScheduler",
    "ExponentialLR",
    "ExponentialMomentum",
    "ExponentialParamScheduler",
    "LRSchedulerMixin",
    "LinearLR",
    "LinearMomentum",
    "LinearParamScheduler",
    "MomentumSchedulerMixin",
    "MultiStepLR",
    "MultiStepMomentum",
    "MultiStepParamScheduler",
    "OneCycleLR",
    "OneCycleParamScheduler",
    "PolyLR",
    "PolyMomentum",
    "PolyParamScheduler",
    "ReduceOnPlateauLR",
    "ReduceOnPlateauMomentum",
    "ReduceOnPlateauParamScheduler",
    "StepLR",
    "StepMomentum",
    "StepParamScheduler",
    "_ParamScheduler",
    "build_param_schedulers",
]
