"""Dumping configs to YAML, JSON and Python, and reading them back."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from torch import nn
from torch.optim import SGD

from mm2lightning.config import Config

DATA = Path(__file__).parent / "data"
VALUES = dict(
    model=dict(type="ResNet", depth=50, norm_cfg=dict(type="BN", requires_grad=True), out_indices=[0, 1, 2, 3]),
    pipeline=[dict(type="Resize", scale=[1333, 800]), dict(type="Pack", meta_keys=["img_path", "ori_shape"])],
    optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.02, momentum=0.9, nesterov=False), clip_grad=None),
    mapping={"with-dash": 1, "1st": [], "unicode": "ü"},
    work_dir="./work_dirs/exp",
    ratio=1e-08,
    big=2**40,
)


@pytest.mark.parametrize("suffix", [".py", ".yaml", ".yml", ".json"])
def test_round_trip(tmp_path, suffix):
    cfg = Config(VALUES)
    assert cfg.dump(tmp_path / f"cfg{suffix}") is None
    assert Config.fromfile(tmp_path / f"cfg{suffix}").to_dict() == VALUES


@pytest.mark.parametrize("name", ["experiment_child.yaml", "with_class.py", "base_model.py"])
def test_python_round_trip_of_fixtures_keeps_tuples_and_classes(tmp_path, name):
    cfg = Config.fromfile(DATA / name)
    cfg.dump(tmp_path / "dumped.py")
    assert Config.fromfile(tmp_path / "dumped.py").to_dict() == cfg.to_dict()


def test_python_dump_writes_imports_for_classes_and_functions(tmp_path):
    values = dict(opt=dict(type=SGD), act=(nn.ReLU, max), limits=dict(low=-math.inf, high=math.inf), single=(1,))
    Config(values).dump(tmp_path / "c.py")
    text = (tmp_path / "c.py").read_text()
    assert text.startswith("_base_ = []  #") and "\nimport builtins\nimport torch.nn\nimport torch.optim\n\n" in text
    assert "opt = dict(type=torch.optim.SGD)" in text and "act = (torch.nn.ReLU, builtins.max)" in text
    assert "limits = dict(low=float('-inf'), high=float('inf'))" in text and "single = (1,)" in text
    assert Config.fromfile(tmp_path / "c.py").to_dict() == values


def test_yaml_and_json_hold_tuples_as_lists(tmp_path):
    cfg = Config(dict(scale=(1333, 800), nested=[(1, 2)]))
    for suffix in (".yaml", ".json"):
        cfg.dump(tmp_path / f"c{suffix}")
        assert Config.fromfile(tmp_path / f"c{suffix}").to_dict() == dict(scale=[1333, 800], nested=[[1, 2]])


def test_dump_without_file_uses_the_filename_format():
    assert yaml.safe_load(Config(VALUES).dump()) == VALUES
    no_file = Config(dict(a=dict(b=(1, 2))))
    assert no_file.dump() == "a:\n  b:\n  - 1\n  - 2\n"
    assert Config.fromfile(DATA / "base_runtime.json").dump().startswith('{\n  "default_scope": "mmdet",')
    py_text = Config.fromfile(DATA / "with_class.py").dump()
    assert py_text.startswith("_base_ = []  #") and "\nimport torch.optim\n" in py_text  # _base_ first: not lazy-import
    assert "SGD = torch.optim.SGD\n" in py_text
    assert Config.fromstring(py_text, ".py").to_dict() == Config.fromfile(DATA / "with_class.py").to_dict()


def test_pretty_text_shows_any_value():
    cfg = Config(dict(model=dict(type="Net", layers=list(range(40))), obj=object(), fn=lambda: 1))
    text = cfg.pretty_text
    assert text.startswith("model = dict(\n    type='Net',\n    layers=[\n        0,\n")
    assert "obj = <object object at" in text and "fn = <function" in text
