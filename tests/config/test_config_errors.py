"""Every user error raises ConfigError with a one-line message that names the problem."""

from __future__ import annotations

import argparse
import re

import pytest
from torch.optim import SGD

from mm2lightning.config import Config, ConfigError, DictAction, parse_cfg_options


def _raises(match: str, func, *args, **kwargs) -> str:
    """Call ``func``, expect ``ConfigError`` matching ``match`` with a one-line message; return the message."""
    with pytest.raises(ConfigError, match=match) as info:
        func(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_unsupported_suffix(tmp_path):
    (tmp_path / "cfg.txt").write_text("a = 1\n")
    message = _raises("unsupported config format", Config.fromfile, tmp_path / "cfg.txt")
    assert "cfg.txt" in message and ".py, .yaml, .yml, .json" in message
    _raises("unsupported config format.*'.toml'", Config.fromstring, "a = 1", ".toml")


def test_missing_file(tmp_path):
    message = _raises("config file not found", Config.fromfile, tmp_path / "nope.py")
    assert str(tmp_path / "nope.py") in message


def test_missing_base(tmp_path):
    (tmp_path / "child.yaml").write_text("_base_: [missing_base.py]\na: 1\n")
    message = _raises("base config 'missing_base.py' not found", Config.fromfile, tmp_path / "child.yaml")
    assert "child.yaml" in message


def test_duplicate_key_among_bases(tmp_path):
    (tmp_path / "one.py").write_text("model = dict(a=1)\nshared = 1\n")
    (tmp_path / "two.json").write_text('{"shared": 2, "other": 3}')
    (tmp_path / "child.py").write_text("_base_ = ['one.py', 'two.json']\n")
    message = _raises("Duplicate key is not allowed among bases", Config.fromfile, tmp_path / "child.py")
    assert "['shared']" in message and "two.json" in message


@pytest.mark.parametrize("chain", [["a.py", "a.py"], ["a.py", "b.yaml", "c.json", "a.py"]])
def test_circular_bases(tmp_path, chain):
    for name, base in zip(chain, chain[1:]):
        text = {".py": f"_base_ = '{base}'\n", ".yaml": f"_base_: {base}\n", ".json": f'{{"_base_": "{base}"}}'}
        (tmp_path / name).write_text(text[name[name.index(".") :]])
    message = _raises("circular _base_ inheritance", Config.fromfile, tmp_path / "a.py")
    assert message.count("a.py") == 2


def test_unsafe_yaml_tag_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "marker"
    (tmp_path / "evil.yaml").write_text(f'a: !!python/object/apply:os.system ["touch {marker}"]\n')
    message = _raises(r"cannot read YAML \(safe loading\).*apply:os.system", Config.fromfile, tmp_path / "evil.yaml")
    assert "not allowed" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/name:os.system ''\n",
        "a: !!python/object:collections.OrderedDict {}\n",
        'a: !!python/tuple [!!python/object/apply:os.system ["touch {marker}"]]\n',  # nested in the one allowed tag
    ],
)
def test_other_python_yaml_tags_are_refused(tmp_path, text):
    marker = tmp_path / "marker"
    (tmp_path / "evil.yaml").write_text(text.replace("{marker}", str(marker)))
    _raises("tags that build Python objects are not allowed", Config.fromfile, tmp_path / "evil.yaml")
    assert not marker.exists()


def test_invalid_yaml_json_and_python(tmp_path):
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    (tmp_path / "bad.json").write_text('{"a": 1,}')
    (tmp_path / "bad.py").write_text("a = dict(\n")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    _raises(r"bad\.yaml: cannot read YAML", Config.fromfile, tmp_path / "bad.yaml")
    _raises(r"bad\.json: invalid JSON", Config.fromfile, tmp_path / "bad.json")
    _raises(r"bad\.py:1: invalid Python syntax", Config.fromfile, tmp_path / "bad.py")
    _raises("the top level of a config must be a mapping, got list", Config.fromfile, tmp_path / "list.yaml")


def test_python_config_that_raises(tmp_path):
    (tmp_path / "boom.py").write_text("a = 1\nb = undefined_name + 1\n")
    message = _raises("running the config raised NameError", Config.fromfile, tmp_path / "boom.py")
    assert "undefined_name" in message


def test_read_base_of_a_missing_base(tmp_path):  # lazy-import configs are read: tests/config/test_config_read_base.py
    (tmp_path / "lazy.py").write_text("from mmengine.config import read_base\nwith read_base():\n    from .b import *")
    message = _raises(r"lazy\.py: base config .*b\.py not found", Config.fromfile, tmp_path / "lazy.py")
    assert "`with read_base(): = from .b import ...`" in message


@pytest.mark.parametrize(
    ("base", "message"),
    [
        ("_base_ = 3\n", "_base_ must be a path or a list of paths, got 3"),
        ("_base_ = f()\n", "_base_ must be a literal"),
    ],
)
def test_bad_base_value(tmp_path, base, message):
    (tmp_path / "cfg.py").write_text(base)
    _raises(message, Config.fromfile, tmp_path / "cfg.py")


def test_external_package_base_of_a_missing_package(tmp_path):  # more: tests/config/test_config_package_bases.py
    (tmp_path / "cfg.py").write_text("_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'\n")
    _raises("needs the Python package 'mmdet', which is not installed", Config.fromfile, tmp_path / "cfg.py")


def test_unknown_base_ref_and_unset_env_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("M2L_TEST_UNSET", raising=False)
    (tmp_path / "base.yaml").write_text("a: 1\n")
    (tmp_path / "ref.yaml").write_text("_base_: base.yaml\nb: {{_base_.missing.key}}\n")
    (tmp_path / "env.py").write_text("root = '{{$M2L_TEST_UNSET:}}'\n")
    _raises(r"\{\{_base_\.missing\.key\}\} does not name a value", Config.fromfile, tmp_path / "ref.yaml")
    _raises("environment variable M2L_TEST_UNSET is not set and has no default", Config.fromfile, tmp_path / "env.py")


def test_child_dict_over_base_non_dict(tmp_path):
    (tmp_path / "base.yaml").write_text("clip_grad: null\n")
    (tmp_path / "child.py").write_text("_base_ = 'base.yaml'\nclip_grad = dict(max_norm=1)\n")
    message = _raises("cannot merge a dict into 'clip_grad': it is a NoneType", Config.fromfile, tmp_path / "child.py")
    assert "_delete_=True" in message
    (tmp_path / "fixed.py").write_text("_base_ = 'base.yaml'\nclip_grad = dict(_delete_=True, max_norm=1)\n")
    assert Config.fromfile(tmp_path / "fixed.py").clip_grad == dict(max_norm=1)


@pytest.mark.parametrize(
    ("option", "problem"),
    [
        ("no_equals_sign", "expected KEY=VALUE"),
        ("=3", "expected KEY=VALUE"),
        ("  =3", "expected KEY=VALUE"),
        ("a..b=1", "expected KEY=VALUE"),
        ("a.=1", "expected KEY=VALUE"),
        ("a=[1,2", r"unbalanced brackets.*expected KEY=VALUE"),
        ("a=(1,2]", r"unbalanced brackets"),
        ("a=1)", r"unbalanced brackets"),
        ("a=[(1,2]]", r"unbalanced brackets"),
    ],
)
def test_bad_override_syntax(option, problem):
    message = _raises(problem, parse_cfg_options, ["ok=1", option])
    assert f"invalid option {option!r}" in message


def test_dict_action_reports_bad_syntax_through_argparse():
    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--cfg-options", nargs="+", action=DictAction)
    with pytest.raises(argparse.ArgumentError, match=re.escape("invalid option 'oops': expected KEY=VALUE")):
        parser.parse_args(["--cfg-options", "a=1", "oops"])


def test_override_through_a_non_dict():
    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)), layers=[1, 2]))
    merge = cfg.merge_from_dict
    message = _raises("merge a dict into 'optim_wrapper.optimizer.lr'", merge, {"optim_wrapper.optimizer.lr.x": 1})
    assert "it is a float (0.01), not a dict" in message
    _raises("cannot set 'layers.5': index 5 is out of range for a list of length 2", merge, {"layers.5": 0})
    _raises("cannot set 'layers.first': the parent is a list", merge, {"layers.first": 0})
    _raises("cannot merge a dict into 'layers'", merge, {"layers.0": 0}, allow_list_keys=False)
    _raises("override keys 'a' and 'a.b' conflict", merge, {"a": 1, "a.b": 2})
    _raises("invalid override key 'a..b'", merge, {"a..b": 1})
    assert cfg.optim_wrapper.optimizer.lr == 0.01 and cfg.layers == [1, 2]  # failed merges change nothing


def test_reserved_key():
    _raises("config key 'filename' is reserved", Config, dict(filename="x"))


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_dump_of_unserialisable_value(tmp_path, suffix):
    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(type=object, lr=0.1))))
    fmt = "YAML" if suffix == ".yaml" else "JSON"
    target = tmp_path / f"cfg{suffix}"
    message = _raises(f"cannot dump 'optim_wrapper.optimizer.type' to {fmt}: <class 'object'>", cfg.dump, target)
    assert "dump to .py" in message
    assert not target.exists()


def test_dump_errors(tmp_path):
    py_file = tmp_path / "c.py"
    _raises("cannot dump key 'a.1' to JSON: int keys are not allowed", Config(dict(a={1: 2})).dump, tmp_path / "c.json")
    _raises(r"cannot dump 'a.0' to Python: <object object", Config(dict(a=[object()])).dump, py_file)
    _raises(r"top-level key 'not-a-name' to Python", Config({"not-a-name": 1}).dump, py_file)
    _raises(r"top-level key 'fn' to Python: a .py config drops", Config(dict(fn=test_dump_errors)).dump, py_file)
    _raises(r"'torch' is also the name of an imported module", Config(dict(torch=1, t=SGD)).dump, py_file)
    _raises("unsupported config format", Config(dict(a=1)).dump, tmp_path / "c.toml")



def test_self_referencing_yaml_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    for text in ("a: &x [*x]\n", "a: &x {b: *x}\n"):
        path.write_text(text)
        with pytest.raises(ConfigError, match="a YAML alias refers to a value that contains it") as err:
            Config.fromfile(path)
        assert "\n" not in str(err.value)
    path.write_text("a: &x [1, 2]\nb: [*x, *x]\n")  # shared, not cyclic: fine
    assert Config.fromfile(path).to_dict() == {"a": [1, 2], "b": [[1, 2], [1, 2]]}


def test_base_reference_inside_a_longer_string_is_refused(tmp_path):
    (tmp_path / "base.py").write_text("name = 'exp'\n")
    (tmp_path / "child.py").write_text("_base_ = ['base.py']\nwork_dir = 'work/{{_base_.name}}'\n")
    with pytest.raises(ConfigError, match=r"\{\{_base_.name\}\} must be a whole value, not part of a string"):
        Config.fromfile(tmp_path / "child.py")
