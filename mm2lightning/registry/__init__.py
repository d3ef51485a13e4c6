"""Registries that map config ``type`` names to classes, with scopes, as ``mmengine.registry``.

Example:
    >>> from mm2lightning.registry import MODELS
    >>> @MODELS.register_module()
    ... class MyModel(BaseModel): ...
    >>> model = MODELS.build(dict(type='MyModel'))

A toolbox keeps its own registries as children of these (``Registry('model', parent=MODELS,
scope='mytoolbox', locations=['mytoolbox.models'])``); ``default_scope='mytoolbox'`` (or
:func:`init_default_scope`) makes its names resolve first. OpenMMLab toolboxes built on MMEngine's
registries (``default_scope='mmpretrain'``) are found the same way.
"""

from mm2lightning.registry.build_functions import build_from_cfg, build_model_from_cfg, build_scheduler_from_cfg
from mm2lightning.registry.default_scope import MODULE2PACKAGE, DefaultScope
from mm2lightning.registry.registry import Registry, RegistryError, ToolboxNotInstalledError
from mm2lightning.registry.root import (
    DATA_SAMPLERS,
    DATASETS,
    EVALUATOR,
    FUNCTIONS,
    HOOKS,
    LOG_PROCESSORS,
    LOOPS,
    METRICS,
    MODEL_WRAPPERS,
    MODELS,
    OPTIM_WRAPPER_CONSTRUCTORS,
    OPTIM_WRAPPERS,
    OPTIMIZERS,
    PARAM_SCHEDULERS,
    TASK_UTILS,
    TRANSFORMS,
    VISBACKENDS,
    VISUALIZERS,
    WEIGHT_INITIALIZERS,
)
from mm2lightning.registry.scope import init_default_scope

__all__ = [
    "DATASETS",
    "DATA_SAMPLERS",
    "EVALUATOR",
    "FUNCTIONS",
    "HOOKS",
    "LOG_PROCESSORS",
    "LOOPS",
    "METRICS",
    "MODELS",
    "MODEL_WRAPPERS",
    "MODULE2PACKAGE",
    "OPTIMIZERS",
    "OPTIM_WRAPPERS",
    "OPTIM_WRAPPER_CONSTRUCTORS",
    "PARAM_SCHEDULERS",
    "TASK_UTILS",
    "TRANSFORMS",
    "VISBACKENDS",
    "VISUALIZERS",
    "WEIGHT_INITIALIZERS",
    "DefaultScope",
    "Registry",
    "RegistryError",
    "ToolboxNotInstalledError",
    "build_from_cfg",
    "build_model_from_cfg",
    "build_scheduler_from_cfg",
    "init_default_scope",
]
