"""Registries: registration forms, build, and the errors users see."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mm2lightning import registry as reg
from mm2lightning.registry import OPTIMIZERS, Registry, RegistryError


def test_decorator_and_call_forms_and_force():
    models = Registry("model")

    @models.register_module()
    class Net(nn.Linear):
        pass

    models.register_module(name=["Alias", "Other"], module=nn.ReLU)
    assert models.get("Net") is Net and models.get("Alias") is nn.ReLU and "Other" in models
    with pytest.raises(RegistryError, match="'Net' is already registered in the 'model' registry.*force=True"):
        models.register_module(name="Net", module=nn.Tanh)
    models.register_module(name="Net", module=nn.Tanh, force=True)
    assert models.get("Net") is nn.Tanh and len(models) == 3


def test_build_by_name_or_class_with_default_args():
    models = Registry("model")
    models.register_module(module=nn.Linear)
    a = models.build(dict(type="Linear", in_features=2), default_args=dict(in_features=9, out_features=3))
    assert (a.in_features, a.out_features) == (2, 3)  # the config wins over default_args
    b = models.build(dict(type=nn.Linear, in_features=1, out_features=1))
    assert isinstance(b, nn.Linear)


def test_all_torch_optimizers_are_registered():
    for name in ["SGD", "Adam", "AdamW", "RMSprop", "TorchAdafactor"]:
        assert issubclass(OPTIMIZERS.get(name), torch.optim.Optimizer)


def test_models_registry_builds_a_sequential_from_a_list():
    net = reg.MODELS.build([dict(type=nn.Linear, in_features=2, out_features=2), dict(type=nn.ReLU)])
    assert isinstance(net, nn.Sequential) and len(net) == 2


def test_public_registries_exist():
    for name in ["MODELS", "MODEL_WRAPPERS", "OPTIMIZERS", "OPTIM_WRAPPERS", "OPTIM_WRAPPER_CONSTRUCTORS", "PARAM_SCHEDULERS", "METRICS", "DATASETS"]:
        assert isinstance(getattr(reg, name), Registry)


def test_unknown_type_names_the_registry_and_close_names():
    with pytest.raises(RegistryError, match=r"'AdamWW' is not registered in the 'optimizer' registry\. Did you mean: 'AdamW'"):
        OPTIMIZERS.build(dict(type="AdamWW", params=[torch.zeros(1, requires_grad=True)]))
    with pytest.raises(RegistryError, match=r"'zzz' is not registered.*pass the class itself"):
        OPTIMIZERS.build(dict(type="zzz"))


def test_missing_or_bad_type_and_bad_config():
    models = Registry("model")
    with pytest.raises(RegistryError, match="must contain the key 'type'.*got keys \\['a'\\]"):
        models.build(dict(a=1))
    with pytest.raises(TypeError, match="`type` must be a registered name or a class, but got int"):
        models.build(dict(type=3))
    with pytest.raises(TypeError, match="a model config must be a dict, but got str"):
        models.build("Linear")
    with pytest.raises(TypeError, match="Linear: .*unexpected keyword argument 'bad'"):
        models.build(dict(type=nn.Linear, in_features=1, out_features=1, bad=2))


def test_register_rejects_non_callables_and_bad_names():
    models = Registry("model")
    with pytest.raises(TypeError, match="only a class or function can be registered"):
        models.register_module(name="x", module=3)
    with pytest.raises(TypeError, match="name must be None, a str or a list of str"):
        models.register_module(name=3, module=nn.ReLU)
