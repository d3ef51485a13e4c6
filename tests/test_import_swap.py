"""Migrating is an import swap: the public names MMEngine users import exist here too."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

SCHEDULERS = [
    f"{kind}{suffix}"
    for kind in ["Constant", "Linear", "Step", "MultiStep", "Exponential", "CosineAnnealing", "Poly", "CosineRestart", "ReduceOnPlateau"]
    for suffix in ["LR", "Momentum", "ParamScheduler"]
] + ["OneCycleLR", "OneCycleParamScheduler"]

NAMES = {
    "model": ["BaseModel", "BaseModule", "Sequential", "ModuleList", "ModuleDict", "MMDistributedDataParallel",
              "MMSeparateDistributedDataParallel", "BaseDataPreprocessor", "ImgDataPreprocessor", "stack_batch",
              "is_model_wrapper", "BaseAveragedModel", "ExponentialMovingAverage", "MomentumAnnealingEMA",
              "StochasticWeightAverage", "BaseInit", "ConstantInit", "XavierInit", "NormalInit", "TruncNormalInit",
              "UniformInit", "KaimingInit", "Caffe2XavierInit", "PretrainedInit", "initialize", "update_init_info",
              "constant_init", "xavier_init", "normal_init", "trunc_normal_init", "uniform_init", "kaiming_init",
              "caffe2_xavier_init", "bias_init_with_prob"],
    "optim": [
        "OptimWrapper",
        "AmpOptimWrapper",
        "OptimWrapperDict",
        "BaseOptimWrapper",
        "build_optim_wrapper",
        "DefaultOptimWrapperConstructor",
        *SCHEDULERS,
    ],
    "evaluator": ["BaseMetric", "Evaluator", "DumpResults", "get_metric_value"],
    "registry": [
        "Registry",
        "build_from_cfg",
        "MODELS",
        "MODEL_WRAPPERS",
        "OPTIMIZERS",
        "OPTIM_WRAPPERS",
        "OPTIM_WRAPPER_CONSTRUCTORS",
        "PARAM_SCHEDULERS",
        "METRICS",
        "DATASETS",
        "DATA_SAMPLERS",
        "FUNCTIONS",
        "HOOKS",
        "WEIGHT_INITIALIZERS",
    ],
    "runner": ["Runner", "Priority", "get_priority", "LogProcessor"],
    "hooks": ["Hook", "EMAHook"],
    "dist": ["get_dist_info", "get_rank", "get_world_size", "get_local_rank", "is_distributed", "is_main_process",
             "master_only", "barrier", "broadcast", "broadcast_object_list", "all_reduce", "all_gather",
             "all_gather_object", "gather", "gather_object", "collect_results", "sync_random_seed"],
    "logging": ["MessageHub", "HistoryBuffer", "MMLogger", "print_log"],
    "utils": ["ManagerMixin"],
    "config": ["Config", "ConfigDict", "DictAction"],
    "dataset": ["DefaultSampler", "InfiniteSampler", "pseudo_collate", "default_collate", "worker_init_fn",
                "COLLATE_FUNCTIONS"],
}


@pytest.mark.parametrize("module", sorted(NAMES))
def test_names_exist_in_both(mmengine, module):
    ours = importlib.import_module(f"mm2lightning.{module}")
    ref = importlib.import_module(f"mmengine.{module}")
    # mmengine 0.10.7 exports CosineRestart* from mmengine.optim.scheduler only
    ref_sub = importlib.import_module("mmengine.optim.scheduler") if module == "optim" else ref
    for name in NAMES[module]:
        assert hasattr(ref, name) or hasattr(ref_sub, name), f"mmengine has no {module}.{name}: the list is wrong"
        assert hasattr(ours, name), f"mm2lightning.{module} lacks {name}, which mmengine.{module} offers"


def test_registered_names_cover_the_configs_users_write():
    from mm2lightning.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, PARAM_SCHEDULERS

    assert {"BaseDataPreprocessor", "ImgDataPreprocessor"} <= set(MODELS.module_dict)
    assert {"OptimWrapper", "AmpOptimWrapper"} <= set(OPTIM_WRAPPERS.module_dict)
    assert "DefaultOptimWrapperConstructor" in OPTIM_WRAPPER_CONSTRUCTORS
    assert set(SCHEDULERS) <= set(PARAM_SCHEDULERS.module_dict)


def test_core_does_not_import_lightning():
    code = (
        "import sys, mm2lightning, mm2lightning.model, mm2lightning.optim, mm2lightning.registry, mm2lightning.evaluator\n"
        "import mm2lightning.config, mm2lightning.dataset, mm2lightning.runner, mm2lightning.runner.checkpoint\n"
        "import mm2lightning.hooks, mm2lightning.dist, mm2lightning.logging, mm2lightning.utils\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning', 'torchmetrics'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
