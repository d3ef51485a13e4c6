"""MMEngine's model API (``mmengine.model``): base classes and data preprocessors.

Migrating is an import swap: ``from mmengine.model import BaseModel`` becomes
``from mm2lightning.model import BaseModel``. This package does not import Lightning.
"""

from mm2lightning.model.base_model import BaseModel
from mm2lightning.model.base_module import BaseModule, ModuleDict, ModuleList, Sequential
from mm2lightning.model.data_preprocessor import BaseDataPreprocessor, ImgDataPreprocessor
from mm2lightning.model.utils import stack_batch
from mm2lightning.model.wrappers import MMDistributedDataParallel, MMSeparateDistributedDataParallel

__all__ = [
    "BaseDataPreprocessor",
    "BaseModel",
    "BaseModule",
    "ImgDataPreprocessor",
    "MMDistributedDataParallel",
    "MMSeparateDistributedDataParallel",
    "ModuleDict",
    "ModuleList",
    "Sequential",
    "stack_batch",
]
