"""DefaultOptimWrapperConstructor against mmengine: ``dcn_offset_lr_mult`` and ``paramwise_cfg`` keys of subclasses."""

from __future__ import annotations

import copy
import sys
import types
import warnings

import pytest
import torch
from torch import nn

from mm2lightning.optim import build_optim_wrapper
from mm2lightning.optim.builder import DefaultOptimWrapperConstructor
from mm2lightning.registry import OPTIM_WRAPPER_CONSTRUCTORS


# Stand-ins for mmcv.ops' deformable convolutions (mmcv is not installed): same class names and
# layout (the *Pack variants add a ``conv_offset`` Conv2d child).
class DeformConv2d(nn.Module):
    def __init__(self, cin, cout, k=3):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))


class DeformConv2dPack(DeformConv2d):
    def __init__(self, cin, cout, k=3):
        super().__init__(cin, cout, k)
        self.conv_offset = nn.Conv2d(cin, 2 * k * k, k, padding=1)


class ModulatedDeformConv2d(nn.Module):
    def __init__(self, cin, cout, k=3):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout))


class ModulatedDeformConv2dPack(ModulatedDeformConv2d):
    def __init__(self, cin, cout, k=3):
        super().__init__(cin, cout, k)
        self.conv_offset = nn.Conv2d(cin, 3 * k * k, k, padding=1)


class OddDCN(ModulatedDeformConv2d):
    """Other children of a DCN (a depthwise offset conv, a norm, a linear, an offset conv nested one level
    deeper): MMEngine's rules only look at the DCN's direct children."""

    def __init__(self, cin, cout):
        super().__init__(cin, cout)
        self.conv_offset = nn.Conv2d(cin, cin, 3, groups=cin)
        self.norm = nn.BatchNorm2d(cout)
        self.proj = nn.Linear(cout, cout)
        self.deep = nn.Sequential(nn.Conv2d(cin, 4, 1))
        self.deep.conv_offset = nn.Conv2d(cin, 4, 1)  # prefix "...deep.conv_offset": grandchild of the DCN


class NotDCN(nn.Module):
    """A ``conv_offset`` child outside any deformable convolution: no DCN rule applies."""

    def __init__(self):
        super().__init__()
        self.conv_offset = nn.Conv2d(4, 18, 3)


class DCNNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3, groups=4))
        self.dcn = DeformConv2dPack(4, 4)
        self.mdcn = ModulatedDeformConv2dPack(4, 4)
        self.head = nn.Sequential(ModulatedDeformConv2dPack(4, 4), nn.Linear(4, 2), OddDCN(4, 4))
        self.plain = NotDCN()
        self.shared = self.mdcn  # DCN parameters under a second name
        self.scale = nn.Parameter(torch.ones(2))


def groups_by_name(model, optimizer):
    names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    return [
        ([names[id(p)] for p in g["params"]], {k: v for k, v in g.items() if k != "params"})
        for g in optimizer.param_groups
    ]


@pytest.fixture
def mm_build_with_mmcv(mmengine, monkeypatch):
    """mmengine's build_optim_wrapper, run with a fake mmcv-full whose ``mmcv.ops`` holds the stand-ins, so
    MMEngine's own DCN code path runs (``mmcv_full_available()`` then ``from mmcv.ops import ...``)."""
    from mmengine.optim import build_optim_wrapper as mm_build
    from mmengine.optim.optimizer import default_constructor

    def build(model, cfg):
        with monkeypatch.context() as m:
            mmcv, ops = types.ModuleType("mmcv"), types.ModuleType("mmcv.ops")
            ops.DeformConv2d, ops.ModulatedDeformConv2d = DeformConv2d, ModulatedDeformConv2d
            mmcv.ops = ops
            m.setitem(sys.modules, "mmcv", mmcv)
            m.setitem(sys.modules, "mmcv.ops", ops)
            m.setattr(default_constructor, "mmcv_full_available", lambda: True)
            return mm_build(model, cfg)

    return build


SGD = dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=1e-4)
DCN_CASES = [
    (SGD, dict(dcn_offset_lr_mult=0.1)),
    (SGD, dict(dcn_offset_lr_mult=0.1, bias_lr_mult=2.0)),
    (SGD, dict(dcn_offset_lr_mult=0.5, bias_lr_mult=2.0, bias_decay_mult=0.5, norm_decay_mult=0.0,
               dwconv_decay_mult=0.2, flat_decay_mult=0.3)),
    (SGD, dict(dcn_offset_lr_mult=0.1, bias_lr_mult=2.0,
               custom_keys={"head.0": dict(lr_mult=0.5), "dcn.conv_offset.bias": dict(lr_mult=3.0, decay_mult=0.0)})),
    (SGD, dict(dcn_offset_lr_mult=0.1, bypass_duplicate=True, flat_decay_mult=0.0)),
    (SGD, dict(bias_lr_mult=2.0, bias_decay_mult=0.0)),  # the DCN's children still skip the bias rules
    (dict(type="Adam", lr=1e-3), dict(dcn_offset_lr_mult=0.0, bias_lr_mult=0.5)),
]


@pytest.mark.parametrize("optimizer, paramwise_cfg", DCN_CASES)
def test_dcn_offset_groups_match_mmengine_with_mmcv(mm_build_with_mmcv, optimizer, paramwise_cfg):
    cfg = dict(optimizer=optimizer, paramwise_cfg=paramwise_cfg)
    ours_model, ref_model = DCNNet(), DCNNet()
    assert "mmcv" not in sys.modules  # ours runs without any mmcv
    ours = build_optim_wrapper(ours_model, copy.deepcopy(cfg))
    ref = mm_build_with_mmcv(ref_model, copy.deepcopy(cfg))
    assert groups_by_name(ours_model, ours.optimizer) == groups_by_name(ref_model, ref.optimizer)


def test_dcn_stand_ins_exercise_mmengines_dcn_path(mmengine, mm_build_with_mmcv):
    """The parity above is not vacuous: MMEngine without mmcv gives other groups, and the offset lr is set."""
    from mmengine.optim import build_optim_wrapper as mm_build

    cfg = dict(optimizer=SGD, paramwise_cfg=dict(dcn_offset_lr_mult=0.1, bias_lr_mult=2.0))
    model = DCNNet()
    ours = build_optim_wrapper(model, copy.deepcopy(cfg)).optimizer
    groups = {names[0]: opts for names, opts in groups_by_name(model, ours)}
    with_mmcv = groups_by_name(model, mm_build_with_mmcv(model, copy.deepcopy(cfg)).optimizer)
    without_mmcv = groups_by_name(model, mm_build(model, copy.deepcopy(cfg)).optimizer)
    assert with_mmcv != without_mmcv
    assert groups["dcn.conv_offset.weight"]["lr"] == groups["dcn.conv_offset.bias"]["lr"] == pytest.approx(0.001)
    assert groups["head.2.conv_offset.bias"]["lr"] == pytest.approx(0.001)  # depthwise offset conv too
    assert groups["head.2.proj.bias"]["lr"] == pytest.approx(0.01)  # a DCN's child: no bias_lr_mult
    assert groups["head.2.deep.conv_offset.weight"]["lr"] == groups["plain.conv_offset.weight"]["lr"] == 0.01
    assert groups["head.2.deep.conv_offset.bias"]["lr"] == groups["plain.conv_offset.bias"]["lr"] == pytest.approx(0.02)


def test_dcn_offset_lr_mult_needs_a_number_and_lr():
    with pytest.raises(TypeError, match="dcn_offset_lr_mult'\\] must be a number"):
        build_optim_wrapper(DCNNet(), dict(optimizer=SGD, paramwise_cfg=dict(dcn_offset_lr_mult="0.1")))
    with pytest.raises(ValueError, match="dcn_offset_lr_mult set an lr multiplier.*no 'lr'"):
        build_optim_wrapper(DCNNet(), dict(optimizer=dict(type="Adam"), paramwise_cfg=dict(dcn_offset_lr_mult=0.1)))


def conv1_constructor(base):
    """A constructor subclass (as users write them against MMEngine) reading its own ``conv1_lr_mult``."""

    class Conv1LrConstructor(base):
        def add_params(self, params, module, prefix="", is_dcn_module=None):
            super().add_params(params, module, prefix, is_dcn_module)
            if prefix == "":  # the top call, after the recursion
                conv1 = {id(p) for p in module.stem[0].parameters()}
                for group in params:
                    if id(group["params"][0]) in conv1:
                        group["lr"] = self.base_lr * self.paramwise_cfg.get("conv1_lr_mult", 1.0)

    return Conv1LrConstructor


def register_conv1_constructor():
    cls = conv1_constructor(DefaultOptimWrapperConstructor)
    OPTIM_WRAPPER_CONSTRUCTORS.register_module(name="Conv1LrConstructor", force=True, module=cls)


SUBCLASS_CASES = [
    dict(conv1_lr_mult=0.1),
    dict(conv1_lr_mult=0.1, bias_lr_mult=2.0, norm_decay_mult=0.0),
    dict(conv1_lr_mult=3.0, custom_keys={"head": dict(lr_mult=0.5)}, dcn_offset_lr_mult=0.1),
]


@pytest.mark.parametrize("paramwise_cfg", SUBCLASS_CASES)
def test_subclass_reading_its_own_key_matches_mmengine(mm_build_with_mmcv, paramwise_cfg):
    from mmengine.optim import DefaultOptimWrapperConstructor as MMDefault
    from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MM_CONSTRUCTORS

    register_conv1_constructor()
    MM_CONSTRUCTORS.register_module(name="Conv1LrConstructor", force=True, module=conv1_constructor(MMDefault))
    cfg = dict(constructor="Conv1LrConstructor", optimizer=SGD, paramwise_cfg=paramwise_cfg)
    ours_model, ref_model = DCNNet(), DCNNet()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the base class neither refuses nor warns about conv1_lr_mult
        ours = build_optim_wrapper(ours_model, copy.deepcopy(cfg))
    ref = mm_build_with_mmcv(ref_model, copy.deepcopy(cfg))
    ours_groups = groups_by_name(ours_model, ours.optimizer)
    assert ours_groups == groups_by_name(ref_model, ref.optimizer)
    lrs = {names[0]: opts["lr"] for names, opts in ours_groups}
    assert lrs["stem.0.weight"] == lrs["stem.0.bias"] == pytest.approx(0.01 * paramwise_cfg["conv1_lr_mult"])


def test_subclass_still_gets_base_keys_validated():
    register_conv1_constructor()
    with pytest.raises(TypeError, match="bias_lr_mult'\\] must be a number, but got '2'"):
        build_optim_wrapper(DCNNet(), dict(constructor="Conv1LrConstructor", optimizer=SGD,
                                           paramwise_cfg=dict(conv1_lr_mult=0.1, bias_lr_mult="2")))


def test_default_constructor_warns_once_about_an_unused_key(mmengine):
    from mmengine.optim import build_optim_wrapper as mm_build

    cfg = dict(optimizer=SGD, paramwise_cfg=dict(bias_lr_mul=2.0, norm_decay_mult=0.0, conv1_lr_mult=0.1))
    ours_model, ref_model = DCNNet(), DCNNet()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = build_optim_wrapper(ours_model, copy.deepcopy(cfg))
    assert len(caught) == 1 and caught[0].category is UserWarning
    assert "['bias_lr_mul', 'conv1_lr_mult']" in str(caught[0].message) and "ignored" in str(caught[0].message)
    # ignored as MMEngine ignores them
    ref = mm_build(ref_model, copy.deepcopy(cfg))
    assert groups_by_name(ours_model, ours.optimizer) == groups_by_name(ref_model, ref.optimizer)


@pytest.mark.parametrize(
    "paramwise_cfg, error, match",
    [
        (dict(decay_mult=0.0), ValueError, "unknown keys \\['decay_mult'\\].*inside a custom_keys"),
        (dict(custom_keys={"stem": dict(lr_mult="x")}), TypeError, "\\['stem'\\]\\['lr_mult'\\] must be a number"),
        (dict(flat_decay_mult=True), TypeError, "flat_decay_mult'\\] must be a number"),
        (dict(bypass_duplicate="yes"), TypeError, "bypass_duplicate'\\] must be a bool"),
        (dict(bias_decay_mult=0.0), ValueError, "no weight_decay \\(base_wd should not be None\\)"),
    ],
)
def test_base_keys_are_validated(paramwise_cfg, error, match):
    with pytest.raises(error, match=match):
        build_optim_wrapper(DCNNet(), dict(optimizer=dict(type="SGD", lr=0.1), paramwise_cfg=paramwise_cfg))
