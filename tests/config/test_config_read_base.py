"""MMEngine's lazy-import ("pure Python style") configs: ``with read_base():`` and imported ``type=`` values."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch

from mm2lightning.config import Config, ConfigError, read_base
from mm2lightning.config.errors import ConfigModuleNotFoundError, ConfigNameError, ConfigParsingError


def _write(root, name, text):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def configs(tmp_path, monkeypatch):
    """Lazy-import configs: relative bases next to the child and one in a fake installed ``mmpretrain``."""
    site = tmp_path / "site"
    _write(site, "mmpretrain/__init__.py", "")
    _write(
        site,
        "mmpretrain/configs/_base_/models/resnet18.py",
        """
        from torch import nn
        model = dict(type='ImageClassifier', backbone=dict(type='ResNet', depth=18, act=dict(type=nn.ReLU)))
        """,
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "mmpretrain", raising=False)
    root = tmp_path / "cfgs"
    _write(root, "base_runtime.py", "default_scope = 'mmpretrain'\ntrain_cfg = dict(max_epochs=10)\n")
    _write(root, "sub/schedule.py", "from torch.optim import SGD\noptim_wrapper = dict(optimizer=dict(type=SGD, lr=0.1))\n")
    _write(
        root,
        "exp/child.py",
        """
        from mmengine.config import read_base

        with read_base():
            from ..base_runtime import *
            from ..sub.schedule import optim_wrapper as ow
            from mmpretrain.configs._base_.models.resnet18 import *

        from torch.optim import Adam
        import torch.nn as tnn

        ow.optimizer.lr = 0.01
        model.backbone.depth = 50
        optim_wrapper2 = dict(optimizer=dict(type=Adam, lr=1e-3))
        head = dict(act=tnn.GELU, sizes=(1, 2))
        """,
    )
    yield root
    sys.modules.pop("mmpretrain", None)


@pytest.fixture
def mm_config(mmengine, tmp_path, monkeypatch):
    """mmengine's ``Config``, with a minimal ``pkg_resources`` (gone from setuptools 80+) for package imports."""
    _write(tmp_path / "shim", "pkg_resources.py", """
        class DistributionNotFound(Exception):
            pass

        def get_distribution(name):
            raise DistributionNotFound(name)
        """)
    monkeypatch.syspath_prepend(str(tmp_path / "shim"))
    monkeypatch.delitem(sys.modules, "pkg_resources", raising=False)
    yield mmengine.config.Config
    sys.modules.pop("pkg_resources", None)


def test_relative_and_package_bases_and_imported_types_match_mmengine(configs, mm_config):
    child = str(configs / "exp" / "child.py")
    ours, theirs = Config.fromfile(child), mm_config.fromfile(child)
    assert ours.to_dict() == theirs.to_dict()
    assert ours.to_dict()["optim_wrapper2"] == {"optimizer": {"type": "torch.optim.Adam", "lr": 1e-3}}
    assert ours.to_dict()["model"]["backbone"]["act"] == {"type": "torch.nn.ReLU"}
    # what users read is the imported object, as MMEngine builds its LazyObject on access
    assert ours.optim_wrapper2.optimizer.type is torch.optim.Adam is theirs.optim_wrapper2.optimizer.type
    assert ours.ow.optimizer.type is torch.optim.SGD and ours.ow.optimizer.lr == 0.01
    assert ours.head.act is torch.nn.GELU and ours.model.backbone.depth == 50
    assert ours.train_cfg.max_epochs == 10 and "Adam" in ours and "Adam" not in ours.to_dict()
    assert Config.fromstring(ours.dump(), ".py").to_dict() == theirs.to_dict()
    assert Config.fromstring(ours.pretty_text, ".py").to_dict() == theirs.to_dict()
    assert Config.fromstring(ours.dump(), ".py").to_dict() == Config.fromstring(theirs.dump(), ".py").to_dict()


def test_yaml_dump_and_copies_keep_import_paths(configs, mm_config, tmp_path):
    cfg = Config.fromfile(configs / "exp" / "child.py")
    cfg.dump(tmp_path / "out.yaml")
    mm_config.fromfile(str(configs / "exp" / "child.py")).dump(str(tmp_path / "mm.yaml"))
    ours, theirs = Config.fromfile(tmp_path / "out.yaml").to_dict(), Config.fromfile(tmp_path / "mm.yaml").to_dict()
    assert theirs["head"].pop("sizes") == (1, 2) and ours["head"].pop("sizes") == [1, 2]  # our YAML: tuples as lists
    assert ours == theirs
    for other in (copy.deepcopy(cfg), copy.copy(cfg), pickle.loads(pickle.dumps(cfg))):
        assert other.to_dict() == cfg.to_dict()


def test_merge_from_dict_and_cfg_options_on_a_lazy_config(configs, mm_config):
    child = str(configs / "exp" / "child.py")
    options = {"optim_wrapper2.optimizer.lr": 0.5, "model.backbone.act.type": "GELU", "Adam": 3}
    ours, theirs = Config.fromfile(child), mm_config.fromfile(child)
    ours.merge_from_dict(options)
    theirs.merge_from_dict(options)
    assert ours.to_dict() == theirs.to_dict()
    assert Config.fromfile(child, cfg_options=options).to_dict() == theirs.to_dict()


def test_mm2lightning_read_base_and_no_mmengine_import(configs):
    assert read_base.__module__ == "mm2lightning.config.lazy"
    _write(configs, "own.py", "from mm2lightning.config import read_base\nwith read_base():\n    from .base_runtime import *\n")
    assert Config.fromfile(configs / "own.py").to_dict() == {"default_scope": "mmpretrain", "train_cfg": {"max_epochs": 10}}
    code = (
        "import sys; from mm2lightning.config import Config; "
        f"cfg = Config.fromfile({str(configs / 'exp' / 'child.py')!r}); "
        "assert 'mmengine' not in sys.modules, 'mmengine imported'; print(cfg.model.backbone.depth)"
    )
    env_path = str(configs.parent / "site")
    result = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {env_path!r}); {code}"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "50"


def test_base_refs_are_not_available_in_lazy_configs(configs, mm_config):
    path = _write(configs, "ref.py", "from mmengine.config import read_base\nwith read_base():\n"
                  "    from .base_runtime import *\ny = {{_base_.train_cfg}}\n")
    with pytest.raises(NameError, match="name '_base_' is not defined"):
        mm_config.fromfile(path)
    with pytest.raises(ConfigNameError, match="name '_base_' is not defined") as info:
        Config.fromfile(path)
    assert isinstance(info.value, NameError)


def test_styles_cannot_mix_in_one_chain(configs, mm_config):
    _write(configs, "old_style.py", "_base_ = ['base_runtime.py']\n")
    lazy_child = _write(configs, "lazy_child.py", "from mmengine.config import read_base\nwith read_base():\n"
                        "    from .old_style import *\n")
    old_child = _write(configs, "old_child.py", "_base_ = ['sub/schedule.py']\n")
    for path in (lazy_child, old_child):
        with pytest.raises(RuntimeError, match="must match the current configuration file type"):
            mm_config.fromfile(path)
        with pytest.raises(ConfigParsingError, match="must match the current configuration file type"):
            Config.fromfile(path)


def test_plain_imports_make_a_lazy_config_and_lazy_import_false(configs, mm_config):
    plain = _write(configs, "plain.py", "from torch.optim import SGD\noptim = dict(type=SGD)\n")
    assert Config.fromfile(plain).to_dict() == mm_config.fromfile(plain).to_dict() == {
        "optim": {"type": "torch.optim.SGD"}}
    ours, theirs = Config.fromfile(plain, lazy_import=False), mm_config.fromfile(plain, lazy_import=False)
    assert ours.to_dict() == theirs.to_dict() and ours.optim.type is torch.optim.SGD
    assert Config.fromfile(plain, lazy_import=False).dump() != Config.fromfile(plain).dump()


def test_lazy_config_errors(configs, tmp_path):
    missing = _write(configs, "m.py", "from mmengine.config import read_base\nwith read_base():\n    from .nope import *\n")
    with pytest.raises(FileNotFoundError, match="nope.py not found"):
        Config.fromfile(missing)
    pkg = _write(configs, "p.py", "from mmengine.config import read_base\nwith read_base():\n"
                 "    from mm_surely_missing_pkg.configs.a import *\n")
    with pytest.raises(ConfigModuleNotFoundError, match="pip install mm_surely_missing_pkg"):
        Config.fromfile(pkg)
    bad_import = _write(configs, "i.py", "from torch.optim import NoSuchOptimizer\noptim = dict(type=NoSuchOptimizer)\n")
    with pytest.raises(ImportError, match="Failed to import NoSuchOptimizer from torch.optim"):
        Config.fromfile(bad_import)
    star = _write(configs, "s.py", "from torch.optim import *\n")
    with pytest.raises(ConfigParsingError, match=r"Cannot import \* from non-base config"):
        Config.fromfile(star)
    with_other = _write(configs, "w.py", "from torch.optim import SGD\nwith open('x') as f:\n    pass\n")
    with pytest.raises(ConfigError, match="Only `read_base` context manager can be used in the config"):
        Config.fromfile(with_other)
