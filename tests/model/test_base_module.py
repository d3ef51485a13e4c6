"""BaseModule: init_cfg storage and application, init_weights recursion (initialisers: test_weight_init.py)."""

from __future__ import annotations


import pytest
import torch
from torch import nn

from mm2lightning.model import BaseModule


def _tree(base, calls):
    """A module tree whose custom init_weights record their order; built on ``base``."""

    class Leaf(base):
        def __init__(self, name):
            super().__init__()
            self.name = name
            self.linear = nn.Linear(2, 2)

        def init_weights(self):
            calls.append(self.name)
            nn.init.constant_(self.linear.weight, 1.0)

    class Branch(base):
        def __init__(self, name, *children):
            super().__init__()
            self.name = name
            self.kids = nn.ModuleList(children)  # a plain container: recursion must not stop at it
            self.direct = Leaf(name + ".direct")

        def init_weights(self):
            calls.append(self.name + ":before")
            super().init_weights()
            calls.append(self.name + ":after")

    class Root(base):
        def __init__(self):
            super().__init__()
            self.a = Branch("a", Leaf("a.x"))
            self.plain = nn.Linear(2, 2)
            self.b = Leaf("b")
            self.wrapped = nn.DataParallel(Leaf("wrapped"))  # model wrappers are looked through

    return Root()


def test_init_weights_recursion():
    calls: list[str] = []
    root = _tree(BaseModule, calls)
    plain_weight = root.plain.weight.detach().clone()
    root.init_weights()
    # ModuleList has no init_weights, so Branch's recursion reaches only 'direct', as in mmengine.
    assert calls == ["a:before", "a.direct", "a:after", "b", "wrapped"]
    assert root.is_init and root.a.is_init and not root.a.kids[0].is_init
    assert torch.equal(root.plain.weight, plain_weight)  # plain children are left alone
    assert (root.b.linear.weight == 1).all() and (root.wrapped.module.linear.weight == 1).all()


def test_init_weights_recursion_matches_mmengine(mmengine):
    from mmengine.model import BaseModule as MMBaseModule

    calls: list[str] = []
    ref_calls: list[str] = []
    _tree(BaseModule, calls).init_weights()
    _tree(MMBaseModule, ref_calls).init_weights()
    assert calls == ref_calls


def test_children_already_initialised_are_skipped_and_second_call_warns(log_text):
    calls: list[str] = []
    root = _tree(BaseModule, calls)
    root.b.is_init = True
    root.init_weights()
    assert "b" not in calls
    calls.clear()
    root.init_weights()
    assert calls == []
    assert "init_weights of Root has been called more than once" in log_text()


def test_init_cfg_is_deep_copied_and_shown_in_repr():
    cfg = dict(type="Kaiming", layer=["Conv2d"])
    module = BaseModule(init_cfg=cfg)
    cfg["layer"].append("Linear")
    assert module.init_cfg == dict(type="Kaiming", layer=["Conv2d"])
    assert repr(module).endswith("init_cfg={'type': 'Kaiming', 'layer': ['Conv2d']}")
    assert not repr(BaseModule()).count("init_cfg")


def test_init_cfg_is_applied_and_a_failing_one_is_not_ignored(tmp_path):
    module = BaseModule(init_cfg=dict(type="Constant", val=1.0, bias=2.0, layer="Linear"))
    module.fc = nn.Linear(2, 2)
    module.init_weights()
    assert module.is_init and (module.fc.weight == 1).all() and (module.fc.bias == 2).all()
    missing = BaseModule(init_cfg=[dict(type="Pretrained", checkpoint=str(tmp_path / "x.pth"))])
    with pytest.raises(FileNotFoundError, match="x.pth"):
        missing.init_weights()
    assert not missing.is_init


def test_child_init_cfg_is_applied_from_the_top_level_call_after_the_parent_s():
    class Child(BaseModule):
        def __init__(self):
            super().__init__(init_cfg=dict(type="Constant", val=0.5, layer="Linear"))
            self.fc = nn.Linear(2, 2)

    class Parent(BaseModule):
        def __init__(self):
            super().__init__(init_cfg=dict(type="Constant", val=3.0, layer="Linear"))
            self.child = Child()
            self.fc = nn.Linear(2, 2)

    parent = Parent()
    parent.init_weights()
    assert parent.child.is_init and (parent.child.fc.weight == 0.5).all() and (parent.fc.weight == 3).all()


@pytest.mark.parametrize("empty", [None, {}, []])
def test_empty_init_cfg_is_fine(empty):
    module = BaseModule(init_cfg=empty)
    module.init_weights()
    assert module.is_init


def test_container_modules_take_init_cfg_and_recurse():
    from mm2lightning.model import ModuleDict, ModuleList, Sequential

    seq = Sequential(nn.Linear(1, 1), nn.ReLU())
    assert len(seq) == 2 and seq.init_cfg is None
    inner = BaseModule()
    holder = ModuleDict({"a": ModuleList([inner])})
    holder.init_weights()
    assert inner.is_init and holder.is_init
    seq = Sequential(nn.Linear(1, 1), nn.Linear(1, 1), init_cfg=dict(type="Constant", val=2.0, layer="Linear"))
    seq.init_weights()
    assert all((layer.weight == 2).all() and (layer.bias == 0).all() for layer in seq)
