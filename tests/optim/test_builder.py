"""build_optim_wrapper and DefaultOptimWrapperConstructor, against real mmengine."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mm2lightning.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict, build_optim_wrapper
from mm2lightning.registry import RegistryError


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3, groups=4), nn.GroupNorm(2, 4)
        )
        self.neck = nn.Linear(4, 4)
        self.head = nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 2))
        self.scale = nn.Parameter(torch.ones(2))  # flat, no module of its own
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)
        self.shared = self.neck  # the same parameters under a second name


def groups_by_name(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[tuple[list[str], dict]]:
    names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    return [
        ([names[id(p)] for p in g["params"]], {k: v for k, v in g.items() if k != "params"})
        for g in optimizer.param_groups
    ]


PARAMWISE_CFGS = [
    dict(custom_keys={"backbone.0": dict(lr_mult=0, decay_mult=0), "backbone": dict(lr_mult=1), "head": dict(lr_mult=0.1)}),
    dict(bias_lr_mult=2.0, bias_decay_mult=0.5, norm_decay_mult=0.0, dwconv_decay_mult=0.1, flat_decay_mult=0.3),
    dict(norm_decay_mult=0.0, bypass_duplicate=True),
    dict(custom_keys={"neck.bias": dict(lr_mult=3.0, decay_mult=0.0, momentum=0.5)}, flat_decay_mult=0.0),
]


@pytest.mark.parametrize("paramwise_cfg", PARAMWISE_CFGS)
def test_param_groups_match_mmengine(mmengine, paramwise_cfg):
    from mmengine.optim import build_optim_wrapper as mm_build

    cfg = dict(optimizer=dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=1e-4), paramwise_cfg=paramwise_cfg)
    ours_model, ref_model = Net(), Net()
    ours = build_optim_wrapper(ours_model, copy.deepcopy(cfg))
    ref = mm_build(ref_model, copy.deepcopy(cfg))
    assert groups_by_name(ours_model, ours.optimizer) == groups_by_name(ref_model, ref.optimizer)
    assert ours.get_lr() == ref.get_lr()


def test_without_paramwise_cfg_one_group_like_mmengine(mmengine):
    from mmengine.optim import build_optim_wrapper as mm_build

    cfg = dict(type="OptimWrapper", optimizer=dict(type=torch.optim.Adam, lr=1e-3), accumulative_counts=2)
    ours, ref = build_optim_wrapper(Net(), cfg), mm_build(Net(), cfg)
    assert type(ours) is OptimWrapper and isinstance(ours.optimizer, torch.optim.Adam)
    assert len(ours.optimizer.param_groups) == len(ref.optimizer.param_groups) == 1
    assert len(ours.optimizer.param_groups[0]["params"]) == len(ref.optimizer.param_groups[0]["params"])
    assert ours._accumulative_counts == 2


def test_built_optimizer_and_wrapper_instances():
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    wrapper = build_optim_wrapper(model, dict(optimizer=optimizer, clip_grad=dict(max_norm=1.0)))
    assert wrapper.optimizer is optimizer and wrapper.clip_grad_kwargs == dict(max_norm=1.0)
    assert build_optim_wrapper(model, wrapper) is wrapper


def test_amp_wrapper_from_config():
    wrapper = build_optim_wrapper(Net(), dict(type="AmpOptimWrapper", dtype="bfloat16", optimizer=dict(type="SGD", lr=0.1)))
    assert isinstance(wrapper, AmpOptimWrapper) and wrapper.autocast_dtype is torch.bfloat16


def test_dict_of_wrapper_configs_builds_over_submodules(mmengine):
    """Beyond MMEngine, which raises on this form."""
    from mmengine.runner import Runner

    cfg = dict(
        backbone=dict(optimizer=dict(type="Adam", lr=1e-4, betas=(0.5, 0.999))),
        head=dict(optimizer=dict(type="SGD", lr=0.01), accumulative_counts=2),
    )
    model = Net()
    wrappers = build_optim_wrapper(model, cfg)
    assert isinstance(wrappers, OptimWrapperDict) and list(wrappers.keys()) == ["backbone", "head"]
    assert {id(p) for p in wrappers["backbone"].optimizer.param_groups[0]["params"]} == {id(p) for p in model.backbone.parameters()}
    assert {id(p) for p in wrappers["head"].optimizer.param_groups[0]["params"]} == {id(p) for p in model.head.parameters()}
    assert wrappers.get_lr() == {"backbone.lr": [1e-4], "head.lr": [0.01]}
    assert wrappers.get_momentum() == {"backbone.momentum": [0.5], "head.momentum": [0]}
    with pytest.raises(ValueError, match="each item mush be an optimizer object"):
        Runner.build_optim_wrapper(type("R", (), {"model": Net()})(), copy.deepcopy(cfg))


def test_dict_of_wrapper_instances():
    model = Net()
    gen = OptimWrapper(torch.optim.SGD(model.neck.parameters(), lr=0.1))
    wrappers = build_optim_wrapper(model, dict(neck=gen, head=dict(optimizer=dict(type="SGD", lr=0.2))))
    assert wrappers["neck"] is gen and wrappers.get_lr() == {"neck.lr": [0.1], "head.lr": [0.2]}


@pytest.mark.parametrize(
    "cfg, error, match",
    [
        (dict(type="OptimWrapper", clip_grad=dict(max_norm=1)), ValueError, "must contain 'optimizer'"),
        (dict(), ValueError, "must contain 'optimizer'"),
        (dict(optimizer=dict(type="Adamm", lr=0.1)), RegistryError, "'Adamm' is not registered in the 'optimizer' registry.*'Adam'"),
        (dict(type="OptimWraper", optimizer=dict(type="SGD", lr=0.1)), RegistryError, "'optimizer wrapper' registry.*'OptimWrapper'"),
        (dict(optimizer=dict(lr=0.1)), ValueError, "needs a 'type'"),
        (dict(optimizer="SGD"), TypeError, "'optimizer' must be a config dict"),
        (dict(optimizer=dict(type="SGD", lr=0.1), paramwise_cfg=dict(lr_mult=0.1)), ValueError, "unknown keys \\['lr_mult'\\].*inside a custom_keys"),
        (dict(optimizer=dict(type="SGD", lr=0.1), paramwise_cfg=dict(norm_decay_mult=0.0)), ValueError, "no weight_decay"),
        (dict(generator=dict(optimizer=dict(type="SGD", lr=0.1))), ValueError, "no submodule of that name; its submodules are \\['backbone'"),
        (dict(neck=3), TypeError, "optim_wrapper\\['neck'\\] must be an OptimWrapper"),
        ("SGD", TypeError, "must be a config dict or an OptimWrapper"),
    ],
)
def test_bad_configs(cfg, error, match):
    with pytest.raises(error, match=match):
        build_optim_wrapper(Net(), cfg)
