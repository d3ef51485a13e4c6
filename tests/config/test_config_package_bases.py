"""``_base_ = 'pkg::path'`` package configs, compared with mmengine on a fake installed package in tmp_path."""

from __future__ import annotations

import sys

import pytest

from mm2lightning.config import Config, ConfigError
from mm2lightning.config.errors import ConfigFileNotFoundError, ConfigModuleNotFoundError
from mm2lightning.config.package_configs import distribution_name

PKG_CONFIGS = {
    "_base_/models/resnet18.py": "model = dict(type='ImageClassifier', backbone=dict(type='ResNet', depth=18))\n",
    "_base_/datasets/cifar10.py": (
        "train_dataloader = dict(batch_size=16, dataset=dict(type='CIFAR10', "
        "pipeline=[dict(type='RandomCrop', crop_size=32)]))\n"
    ),
    "_base_/schedules/sgd.py": "optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))\ntrain_cfg = dict(max_epochs=200)\n",
    "resnet/resnet18_8xb16_cifar10.py": (
        "_base_ = ['../_base_/models/resnet18.py', '../_base_/datasets/cifar10.py', "
        "'mmpretrain::_base_/schedules/sgd.py']\n"  # a package base inside a package base
    ),
}


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A package ``mmpretrain`` on sys.path bundling ``.mim/configs`` (and a model index, as MMEngine needs)."""
    site = tmp_path / "site"
    package = site / "mmpretrain"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    mim = package / ".mim"
    for name, text in PKG_CONFIGS.items():
        (mim / "configs" / name).parent.mkdir(parents=True, exist_ok=True)
        (mim / "configs" / name).write_text(text)
    (mim / "model-index.yml").write_text("Import:\n  - configs/resnet/metafile.yml\n")
    (mim / "configs/resnet/metafile.yml").write_text("Models:\n  - Name: r18\n    Config: configs/resnet/other.py\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "mmpretrain", raising=False)
    yield package
    sys.modules.pop("mmpretrain", None)


@pytest.fixture
def mm_config(mmengine, tmp_path, monkeypatch):
    """mmengine's ``Config`` with a minimal ``pkg_resources`` (gone from setuptools 80+) for its package lookup."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "pkg_resources.py").write_text(
        "class DistributionNotFound(Exception):\n    pass\n\n"
        "def get_distribution(name):\n    raise DistributionNotFound(name)\n"
    )
    monkeypatch.syspath_prepend(str(shim))
    monkeypatch.delitem(sys.modules, "pkg_resources", raising=False)
    yield mmengine.config.Config
    sys.modules.pop("pkg_resources", None)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_nested_package_bases_match_mmengine(fake_package, mm_config, tmp_path):
    child = _write(
        tmp_path,
        "child.py",
        "_base_ = 'mmpretrain::resnet/resnet18_8xb16_cifar10.py'\n"
        "model = dict(backbone=dict(depth=50))\n"
        "lr = {{_base_.optim_wrapper.optimizer.lr}}\n",
    )
    ours, theirs = Config.fromfile(child), mm_config.fromfile(child)
    assert ours.to_dict() == theirs.to_dict()
    # the package's scope goes to the outermost dicts with a `type`, as MMEngine's
    assert ours.model._scope_ == "mmpretrain" and "_scope_" not in ours.model.backbone
    assert ours.optim_wrapper.optimizer._scope_ == "mmpretrain" and ours.train_cfg == dict(max_epochs=200)
    assert ours.train_dataloader.dataset._scope_ == "mmpretrain" and ours.model.backbone.depth == 50
    assert Config.fromstring(ours.dump(), ".py").to_dict() == theirs.to_dict()


def test_package_bases_in_lists_and_yaml_match_mmengine(fake_package, mm_config, tmp_path):
    _write(tmp_path, "local.py", "work_dir = './work'\n")
    py = _write(tmp_path, "list.py", "_base_ = ['local.py', 'mmpretrain::_base_/models/resnet18.py']\n")
    yml = _write(tmp_path, "c.yaml", "_base_: [mmpretrain::_base_/schedules/sgd.py]\ntrain_cfg: {max_epochs: 5}\n")
    for path in (py, yml):
        assert Config.fromfile(path).to_dict() == mm_config.fromfile(path).to_dict()
    assert Config.fromfile(yml).train_cfg == dict(max_epochs=5)


def test_missing_package_says_what_to_install(mm_config, tmp_path):
    child = _write(tmp_path, "seg.py", "_base_ = 'mmseg::fcn/fcn_r50.py'\n")
    with pytest.raises(ModuleNotFoundError, match="mmsegmentation is not installed"):
        mm_config.fromfile(child)
    with pytest.raises(ConfigModuleNotFoundError) as info:
        Config.fromfile(child)
    message = str(info.value)
    assert isinstance(info.value, ModuleNotFoundError) and isinstance(info.value, ConfigError)
    assert "'mmseg'" in message and "pip install mmsegmentation" in message
    assert "mmsegmentation is not installed, please install mmsegmentation manually" in message


def test_missing_file_in_package_names_its_config_folder(fake_package, mm_config, tmp_path):
    child = _write(tmp_path, "nope.py", "_base_ = 'mmpretrain::resnet/nope.py'\n")
    with pytest.raises(FileNotFoundError):
        mm_config.fromfile(child)
    with pytest.raises(ConfigFileNotFoundError) as info:
        Config.fromfile(child)
    assert isinstance(info.value, FileNotFoundError)
    assert str(fake_package / ".mim" / "configs") in str(info.value) and "'resnet/nope.py'" in str(info.value)


def test_fromfile_of_a_package_path_is_a_missing_file_as_in_mmengine(fake_package, mm_config):
    with pytest.raises(FileNotFoundError):
        mm_config.fromfile("mmpretrain::resnet/resnet18_8xb16_cifar10.py")
    with pytest.raises(ConfigFileNotFoundError, match="only read in _base_"):
        Config.fromfile("mmpretrain::resnet/resnet18_8xb16_cifar10.py")


@pytest.mark.parametrize(
    ("base", "message"),
    [("mmpretrain::noslash.py", "expected 'package::folder/config.py'"), ("a::b/c::d.py", "multiple `::`")],
)
def test_malformed_package_path(fake_package, tmp_path, base, message):
    child = _write(tmp_path, "bad.py", f"_base_ = {base!r}\n")
    with pytest.raises(ConfigError, match=message):
        Config.fromfile(child)


def test_any_installed_package_with_bundled_configs_and_distribution_names(tmp_path, monkeypatch):
    package = tmp_path / "site" / "my_toolbox"
    (package / ".mim" / "configs" / "x").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / ".mim" / "configs" / "x" / "a.py").write_text("model = dict(type='Net')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "my_toolbox", raising=False)
    child = _write(tmp_path, "c.py", "_base_ = 'my_toolbox::x/a.py'\n")
    assert Config.fromfile(child).to_dict() == {"model": {"type": "Net", "_scope_": "my_toolbox"}}  # not in PKG2PROJECT
    assert distribution_name("mmseg") == "mmsegmentation" and distribution_name("mmaction") == "mmaction2"
    assert distribution_name("surely_not_a_module_xyz") == "surely_not_a_module_xyz"
    sys.modules.pop("my_toolbox", None)
