"""Reading configs: the three formats, inheritance, .py semantics and substitutions."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from torch.optim import SGD

from mm2lightning.config import Config, ConfigDict

DATA = Path(__file__).parent / "data"


def test_same_experiment_in_py_yaml_and_json_is_equal():
    py, yaml_, json_ = (Config.fromfile(DATA / f"same_experiment.{ext}") for ext in ("py", "yaml", "json"))
    assert py.to_dict() == yaml_.to_dict() == json_.to_dict()
    assert py.optim_wrapper.to_dict() == {
        "type": "OptimWrapper",
        "optimizer": {"type": "AdamW", "lr": 0.001},  # _delete_: no momentum or weight_decay from the base
        "clip_grad": {"max_norm": 1.0},
    }
    assert py.env_cfg == dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo"))
    assert py.param_scheduler == [dict(type="MultiStepLR", milestones=[16, 22])]
    assert py.work_dir == "./work_dirs/base_runtime"


def test_loaded_config_has_attribute_access_and_filename():
    cfg = Config.fromfile(str(DATA / "experiment.py"))
    assert cfg.filename == str(DATA / "experiment.py")
    assert isinstance(cfg.model, ConfigDict) and isinstance(cfg.train_pipeline[1], ConfigDict)
    assert cfg.model.backbone.depth == 101 and cfg["model"]["backbone"]["depth"] == 101
    assert cfg.train_pipeline[1].scale == (1333, 800)


def test_py_config_with_imports_is_lazy_import_style_as_in_mmengine(tmp_path):
    (tmp_path / "cfg.py").write_text(
        "import math\n"
        "from torch.optim import SGD\n"
        "from torch import nn\n"
        "def helper():\n    return 1\n"
        "optim_wrapper = dict(optimizer=dict(type=SGD, lr=0.01))\n"
        "act = dict(type=nn.ReLU, fn=helper)\n"
        "angle = math.pi / 2\n"
        "_private = 1\n"
        "__hidden = 2\n"
    )
    cfg = Config.fromfile(tmp_path / "cfg.py")
    assert cfg.optim_wrapper.optimizer.type is SGD
    assert cfg.act.fn() == 1  # functions inside values are kept
    # `from torch...` before any _base_: MMEngine's lazy-import style; imported names are hidden from to_dict
    assert set(cfg) == {"SGD", "optim_wrapper", "act", "angle", "helper", "_private"}  # modules, __hidden dropped
    assert cfg.to_dict()["optim_wrapper"] == {"optimizer": {"type": "torch.optim.SGD", "lr": 0.01}}
    assert set(cfg.to_dict()) == {"optim_wrapper", "act", "angle", "helper", "_private"}


def test_base_refs_in_yaml_and_json_quoted_or_not(tmp_path):
    (tmp_path / "base.py").write_text("size = (224, 224)\nmodel = dict(channels=[3, 64])\n")
    child = "_base_: base.py\ncrop: {{_base_.size}}\nfirst: '{{ _base_.model.channels.1 }}'\n"
    (tmp_path / "child.yaml").write_text(child)
    (tmp_path / "child.json").write_text('{"_base_": "base.py", "pipeline": [{"size": "{{_base_.size}}"}]}')
    assert Config.fromfile(tmp_path / "child.yaml").to_dict() == dict(
        size=(224, 224), model=dict(channels=[3, 64]), crop=(224, 224), first=64
    )
    assert Config.fromfile(tmp_path / "child.json").pipeline == [dict(size=(224, 224))]


def test_file_and_environment_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("M2L_TEST_ROOT", "/datasets")
    monkeypatch.delenv("M2L_TEST_UNSET", raising=False)
    (tmp_path / "exp.py").write_text(
        "work_dir = './work_dirs/{{ fileBasenameNoExtension }}'\n"
        "here = '{{fileDirname}}/{{ fileBasename }}'\n"
        "root = '{{$M2L_TEST_ROOT:/default}}/coco'\n"
        "classes = {{'$M2L_TEST_UNSET:80'}}\n"
    )
    cfg = Config.fromfile(tmp_path / "exp.py")
    assert cfg.work_dir == "./work_dirs/exp" and cfg.here == f"{tmp_path.resolve().as_posix()}/exp.py"
    assert cfg.root == "/datasets/coco" and cfg.classes == 80


def test_fromstring_each_format_with_bases_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text("a: {x: 1, y: 2}\n")
    expected = dict(a=dict(x=1, y=3), b=[1])
    assert Config.fromstring("_base_ = 'base.yaml'\na = dict(y=3)\nb = [1]\n", ".py").to_dict() == expected
    assert Config.fromstring("_base_: base.yaml\na: {y: 3}\nb: [1]\n", ".yaml").to_dict() == expected
    assert Config.fromstring('{"_base_": "base.yaml", "a": {"y": 3}, "b": [1]}', ".json").to_dict() == expected


def test_empty_yaml_is_an_empty_config(tmp_path):
    (tmp_path / "empty.yml").write_text("# nothing yet\n")
    assert Config.fromfile(tmp_path / "empty.yml").to_dict() == {}


def test_custom_imports_are_imported(tmp_path, monkeypatch):
    (tmp_path / "m2l_custom_module.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "m2l_custom_module", raising=False)
    (tmp_path / "cfg.yaml").write_text("custom_imports: {imports: [m2l_custom_module], allow_failed_imports: false}\n")
    Config.fromfile(tmp_path / "cfg.yaml")
    assert sys.modules["m2l_custom_module"].LOADED
    (tmp_path / "missing.yaml").write_text("custom_imports: {imports: m2l_no_such_module}\n")
    with pytest.raises(ImportError, match="custom_imports: cannot import 'm2l_no_such_module'"):
        Config.fromfile(tmp_path / "missing.yaml")
    (tmp_path / "allowed.yaml").write_text("custom_imports: {imports: m2l_no_such_module, allow_failed_imports: 1}")
    with pytest.warns(UserWarning, match="'m2l_no_such_module' failed to import"):
        assert Config.fromfile(tmp_path / "allowed.yaml").custom_imports.allow_failed_imports == 1


def test_with_class_fixture_keeps_the_class_value():
    cfg = Config.fromfile(DATA / "with_class.py")
    assert cfg.optim_wrapper.optimizer.type is SGD and cfg.optim_wrapper.optimizer.momentum == 0.9
