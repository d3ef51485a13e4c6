"""Optimizer wrappers, builders and parameter schedulers, as ``mmengine.optim`` (no Lightning import)."""

from mm2lightning.optim.amp_optim_wrapper import AmpOptimWrapper
from mm2lightning.optim.backend import OptimBackend, TorchBackend
from mm2lightning.optim.base import BaseOptimWrapper
from mm2lightning.optim.builder import DefaultOptimWrapperConstructor, build_optim_wrapper
from mm2lightning.optim.optim_wrapper import OptimWrapper
from mm2lightning.optim.optim_wrapper_dict import OptimWrapperDict
from mm2lightning.optim.scheduler import *  # noqa: F403
from mm2lightning.optim.scheduler import __all__ as _scheduler_names

__all__ = [
    "AmpOptimWrapper",
    "BaseOptimWrapper",
    "DefaultOptimWrapperConstructor",
    "OptimBackend",
    "OptimWrapper",
    "OptimWrapperDict",
    "TorchBackend",
    "build_optim_wrapper",
    *_scheduler_names,
]
