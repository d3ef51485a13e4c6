"""minitb's registries: children of mmengine's roots, importing their modules on first lookup."""

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

MODELS = Registry("model", parent=MMENGINE_MODELS, locations=["minitb.models"])
DATASETS = Registry("dataset", parent=MMENGINE_DATASETS, locations=["minitb.datasets"])
TRANSFORMS = Registry("transform", parent=MMENGINE_TRANSFORMS, locations=["minitb.datasets"])
DATA_SAMPLERS = Registry("data sampler", parent=MMENGINE_DATA_SAMPLERS, locations=["minitb.datasets"])
FUNCTIONS = Registry("function", parent=MMENGINE_FUNCTIONS, locations=["minitb.datasets"])
METRICS = Registry("metric", parent=MMENGINE_METRICS, locations=["minitb.evaluation"])
HOOKS = Registry("hook", parent=MMENGINE_HOOKS, locations=["minitb.engine", "minitb.visualization"])
LOOPS = Registry("loop", parent=MMENGINE_LOOPS, locations=["minitb.engine"])
OPTIMIZERS = Registry("optimizer", parent=MMENGINE_OPTIMIZERS, locations=["minitb.engine"])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    "optimizer wrapper constructor", parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, locations=["minitb.engine"]
)
VISUALIZERS = Registry("visualizer", parent=MMENGINE_VISUALIZERS, locations=["minitb.visualization"])
