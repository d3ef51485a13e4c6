"""mm2lightning's root registries: MMEngine's built-in names, implemented by mm2lightning (``mmengine.registry.root``)."""

from __future__ import annotations

import inspect

import torch

from mm2lightning.registry.build_functions import build_model_from_cfg, build_scheduler_from_cfg
from mm2lightning.registry.registry import Registry

# Modules that register the built-in names, imported on a registry's first lookup (as a toolbox's locations).
_MODEL = ["mm2lightning.model"]
_OPTIM = ["mm2lightning.optim"]
_DATASET = ["mm2lightning.dataset"]

MODELS = Registry("model", build_func=build_model_from_cfg, scope="mmengine", locations=_MODEL)
MODEL_WRAPPERS = Registry("model wrapper", scope="mmengine", locations=_MODEL)
OPTIMIZERS = Registry("optimizer", scope="mmengine", locations=_OPTIM)
OPTIM_WRAPPERS = Registry("optimizer wrapper", scope="mmengine", locations=_OPTIM)
OPTIM_WRAPPER_CONSTRUCTORS = Registry("optimizer wrapper constructor", scope="mmengine", locations=_OPTIM)
PARAM_SCHEDULERS = Registry(
    "parameter scheduler", build_func=build_scheduler_from_cfg, scope="mmengine", locations=_OPTIM
)
METRICS = Registry("metric", scope="mmengine", locations=["mm2lightning.evaluator"])
EVALUATOR = Registry("evaluator", scope="mmengine")
DATASETS = Registry("dataset", scope="mmengine")
DATA_SAMPLERS = Registry("data sampler", scope="mmengine", locations=_DATASET)
TRANSFORMS = Registry("transform", scope="mmengine")
FUNCTIONS = Registry("function", scope="mmengine", locations=_DATASET)
HOOKS = Registry("hook", scope="mmengine", locations=["mm2lightning.hooks"])
LOOPS = Registry("loop", scope="mmengine")
WEIGHT_INITIALIZERS = Registry("weight initializer", scope="mmengine", locations=_MODEL)
VISUALIZERS = Registry("visualizer", scope="mmengine")
VISBACKENDS = Registry("vis_backend", scope="mmengine")
LOG_PROCESSORS = Registry("log_processor", scope="mmengine")
TASK_UTILS = Registry("task util", scope="mmengine")


def _register_torch_optimizers() -> None:
    for name in dir(torch.optim):
        obj = getattr(torch.optim, name)
        if inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer):
            OPTIMIZERS.register_module(name="TorchAdafactor" if name == "Adafactor" else name, module=obj)


_register_torch_optimizers()
