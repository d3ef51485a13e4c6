"""ConfigDict and Config as objects: access, conversion, copies, pickling."""

from __future__ import annotations

import copy
import pickle
from collections import OrderedDict

import pytest

from mm2lightning.config import Config, ConfigDict


def test_attribute_access_and_missing_attribute():
    cfg = ConfigDict(model=dict(type="Net"))
    assert cfg.model.type == "Net" and cfg["model"]["type"] == "Net"
    cfg.lr = 0.1
    cfg.model.head = dict(num_classes=3)
    assert cfg["lr"] == 0.1 and isinstance(cfg.model.head, ConfigDict)
    with pytest.raises(AttributeError, match="'ConfigDict' object has no attribute 'missing_key'"):
        _ = cfg.missing_key
    assert getattr(cfg, "missing_key", "default") == "default" and not hasattr(cfg, "missing_key")
    with pytest.raises(KeyError):
        _ = cfg["missing_key"]
    del cfg.lr
    with pytest.raises(AttributeError, match="no attribute 'lr'"):
        del cfg.lr


def test_nested_dicts_are_converted_also_inside_lists_and_tuples():
    cfg = ConfigDict(dict(pipeline=[dict(type="A"), (dict(type="B"), 1)], ordered=OrderedDict(a=dict(b=1))))
    assert isinstance(cfg.pipeline[0], ConfigDict) and cfg.pipeline[1][0].type == "B"
    assert isinstance(cfg.pipeline[1], tuple) and isinstance(cfg.ordered, ConfigDict)
    assert isinstance(cfg.ordered.a, ConfigDict)
    cfg.setdefault("extra", dict(x=1))
    assert isinstance(cfg.extra, ConfigDict)


def test_to_dict_returns_plain_types():
    cfg = ConfigDict(a=dict(b=[dict(c=1), (dict(d=2),)]))
    plain = cfg.to_dict()
    assert plain == dict(a=dict(b=[dict(c=1), (dict(d=2),)]))
    assert type(plain["a"]) is dict and type(plain["a"]["b"][0]) is dict and type(plain["a"]["b"][1][0]) is dict


def test_deepcopy_copy_and_pickle():
    cfg = ConfigDict(a=dict(b=[1, dict(c=2)]))
    deep = copy.deepcopy(cfg)
    deep.a.b[1].c = 3
    assert cfg.a.b[1].c == 2 and type(deep) is ConfigDict and isinstance(deep.a.b[1], ConfigDict)
    shallow = copy.copy(cfg)
    assert type(shallow) is ConfigDict and shallow.a is cfg.a and cfg.copy().a is cfg.a
    restored = pickle.loads(pickle.dumps(cfg))
    assert restored == cfg and isinstance(restored.a.b[1], ConfigDict)


def test_update_merges_nested_dicts_and_pop_defaults_to_none_as_mmengine():
    cfg = ConfigDict(model=dict(type="Net", depth=1))
    cfg.update(model=dict(depth=2), lr=0.1)
    assert cfg == dict(model=dict(type="Net", depth=2), lr=0.1)
    assert cfg.pop("missing") is None and cfg.pop("lr") == 0.1


def test_merge_honours_delete():
    cfg = ConfigDict(model=dict(type="Net", head=dict(a=1, b=2)))
    cfg.merge(dict(model=dict(head=dict(_delete_=True, c=3), depth=5)))
    assert cfg.to_dict() == dict(model=dict(type="Net", head=dict(c=3), depth=5))


def test_config_access_and_mapping_protocol():
    cfg = Config(dict(model=dict(type="Net"), lr=0.1), filename="exp.py")
    assert cfg.model.type == "Net" and cfg["lr"] == 0.1 and cfg.get("missing", 7) == 7
    assert list(cfg) == ["model", "lr"] and list(cfg.keys()) == ["model", "lr"] and len(cfg) == 2
    assert "lr" in cfg and "missing" not in cfg and dict(cfg.items())["lr"] == 0.1
    cfg.work_dir = "w"
    cfg["extra"] = dict(a=1)
    assert cfg.work_dir == "w" and isinstance(cfg.extra, ConfigDict)
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = cfg.missing
    assert getattr(cfg, "missing", None) is None
    del cfg.work_dir
    del cfg["extra"]
    assert cfg.to_dict() == dict(model=dict(type="Net"), lr=0.1) and type(cfg.to_dict()["model"]) is dict
    assert cfg.filename == "exp.py" and repr(cfg) == "Config (path: exp.py): {'model': {'type': 'Net'}, 'lr': 0.1}"


def test_config_copies_and_pickle():
    cfg = Config(dict(model=dict(depth=1)), filename="exp.yaml")
    deep = copy.deepcopy(cfg)
    deep.model.depth = 2
    shallow = cfg.copy()
    shallow.lr = 1
    assert cfg.model.depth == 1 and "lr" not in cfg and shallow.model is cfg.model
    restored = pickle.loads(pickle.dumps(cfg))
    assert restored.to_dict() == cfg.to_dict() and restored.filename == "exp.yaml"
    assert copy.copy(cfg).filename == "exp.yaml" and deep.filename == "exp.yaml"


def test_config_rejects_non_mappings():
    with pytest.raises(TypeError, match="cfg_dict must be a dict, got list"):
        Config([1, 2])
    assert Config().to_dict() == {} and Config().filename is None


def test_merge_from_dict_does_not_modify_the_options():
    options = {"model": dict(_delete_=True, type="Other"), "model.depth": 3}
    before = copy.deepcopy(options)
    cfg = Config(dict(model=dict(type="Net", width=2)))
    cfg.merge_from_dict(options)
    assert options == before and cfg.model == dict(type="Other", depth=3)


def test_merge_from_dict_replaces_scalar_list_items():
    cfg = Config(dict(scales=[1, 2, 3]))
    cfg.merge_from_dict({"scales.1": 20})  # MMEngine raises AttributeError here
    assert cfg.scales == [1, 20, 3]
