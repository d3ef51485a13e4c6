"""MMEngine's model API (``mmengine.model``): base classes, data preprocessors and weight initialisation.

Migrating is an import swap: ``from mmengine.model import BaseModel`` becomes
``from mm2lightning.model import BaseModel``. This package does not import Lightning.
"""

from mm2lightning.model.averaged_model import (
    BaseAveragedModel,
    ExponentialMovingAverage,
    MomentumAnnealingEMA,
    StochasticWeightAverage,
)
from mm2lightning.model.base_model import BaseModel
from mm2lightning.model.base_module import BaseModule, ModuleDict, ModuleList, Sequential
from mm2lightning.model.data_preprocessor import BaseDataPreprocessor, ImgDataPreprocessor
from mm2lightning.model.pretrained_init import PretrainedInit
from mm2lightning.model.sync_bn import convert_sync_batchnorm, revert_sync_batchnorm
from mm2lightning.model.test_time_aug import BaseTTAModel
from mm2lightning.model.utils import stack_batch
from mm2lightning.model.weight_init import (
    BaseInit,
    Caffe2XavierInit,
    ConstantInit,
    KaimingInit,
    NormalInit,
    TruncNormalInit,
    UniformInit,
    XavierInit,
    bias_init_with_prob,
    caffe2_xavier_init,
    constant_init,
    initialize,
    kaiming_init,
    normal_init,
    trunc_normal_init,
    uniform_init,
    update_init_info,
    xavier_init,
)
from mm2lightning.model.wrappers import (
    MMDistributedDataParallel,
    MMSeparateDistributedDataParallel,
    is_model_wrapper,
)

__all__ = [
    "BaseTTAModel",
    "convert_sync_batchnorm",
    "revert_sync_batchnorm",
    "BaseAveragedModel",
    "BaseDataPreprocessor",
    "BaseInit",
    "BaseModel",
    "BaseModule",
    "Caffe2XavierInit",
    "ConstantInit",
    "ExponentialMovingAverage",
    "ImgDataPreprocessor",
    "KaimingInit",
    "MMDistributedDataParallel",
    "MMSeparateDistributedDataParallel",
    "MomentumAnnealingEMA",
    "ModuleDict",
    "ModuleList",
    "NormalInit",
    "PretrainedInit",
    "Sequential",
    "StochasticWeightAverage",
    "TruncNormalInit",
    "UniformInit",
    "XavierInit",
    "bias_init_with_prob",
    "caffe2_xavier_init",
    "constant_init",
    "initialize",
    "kaiming_init",
    "normal_init",
    "is_model_wrapper",
    "stack_batch",
    "trunc_normal_init",
    "uniform_init",
    "update_init_info",
    "xavier_init",
]
