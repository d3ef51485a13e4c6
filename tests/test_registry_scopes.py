"""Registry scopes: trees with parents and locations, ``'scope.Name'``, ``_scope_``, the default scope, and
toolboxes on mmengine's registries (the miniature ``minitb`` in tests/toolbox), against mmengine's Registry."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from torch import nn

from mm2lightning import registry as reg
from mm2lightning.model import ImgDataPreprocessor
from mm2lightning.registry import DefaultScope, Registry, RegistryError, ToolboxNotInstalledError

TOOLBOX = Path(__file__).resolve().parent / "toolbox"


class A(nn.Module):
    pass


class B(nn.Module):
    pass


class C(nn.Module):
    pass


def _tree(registry_cls, tmp_path, package):
    """The same tree built with either library: a root, two scoped children (one with locations), a grandchild."""
    for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        del sys.modules[name]  # a fresh package for each test
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "models.py").write_text(
        textwrap.dedent(
            f"""
            from torch import nn
            from {package}.registry import MODELS

            @MODELS.register_module()
            class Located(nn.Module):
                pass
            """
        )
    )
    root = registry_cls("model", scope="mmengine")
    left = registry_cls("model", parent=root, scope=package, locations=[f"{package}.models"])
    right = registry_cls("model", parent=root, scope=f"{package}_r")
    grand = registry_cls("model", parent=right, scope=f"{package}_g")
    (tmp_path / package / "registry.py").write_text("MODELS = None\n")
    importlib.import_module(f"{package}.registry").MODELS = left
    root.register_module(module=A)
    right.register_module(module=B)
    grand.register_module(module=C)
    left.register_module(name="A", module=C)  # shadows the root's A in the left scope
    return root, left, right, grand


@pytest.mark.parametrize(
    "start, key",
    [
        ("root", "A"), ("left", "A"), ("right", "A"), ("grand", "A"), ("grand", "B"), ("grand", "C"),
        ("root", "B"), ("left", "B"), ("root", "{p}_r.B"), ("left", "{p}_g.C"), ("grand", "{p}.A"),
        ("right", "mmengine.A"), ("left", "Located"), ("root", "{p}.Located"), ("grand", "{p}_r.C"),
        ("root", "torch.nn.Linear"), ("root", "nosuch.B"),
    ],
)
def test_lookup_follows_mmengines_registry_tree(tmp_path, monkeypatch, start, key):
    mmengine_registry = pytest.importorskip("mmengine.registry")
    monkeypatch.syspath_prepend(str(tmp_path))
    names = ["root", "left", "right", "grand"]
    ours = dict(zip(names, _tree(Registry, tmp_path, "tb_ours")))
    theirs = dict(zip(names, _tree(mmengine_registry.Registry, tmp_path, "tb_theirs")))
    got_ours = ours[start].get(key.format(p="tb_ours"))
    got_theirs = theirs[start].get(key.format(p="tb_theirs"))
    if "Located" in key:  # each tree imported its own module from its locations
        assert got_ours.__name__ == got_theirs.__name__ == "Located"
        assert got_ours.__module__ == "tb_ours.models" and got_theirs.__module__ == "tb_theirs.models"
    else:
        assert got_ours is got_theirs


def test_registry_tree_api(tmp_path):
    root = Registry("thing", scope="mmengine")
    child = Registry("thing", parent=root, scope="kid")
    assert child.parent is root and root.children == {"kid": child} and child.root is root
    assert child.build_func is root.build_func and child.scope == "kid"
    assert Registry.split_scope_key("kid.Name") == ("kid", "Name") and Registry.split_scope_key("Name") == (None, "Name")
    with pytest.raises(AssertionError, match="scope kid exists"):
        Registry("thing", parent=root, scope="kid")
    assert Registry("inferred").scope == Path(__file__).stem  # the creating module's top-level package


def test_build_resolves_in_the_default_scope_and_in_scope_keys(tmp_path):
    root = Registry("model", scope="mmengine")
    child = Registry("model", parent=root, scope="scoped_tb")
    root.register_module(module=A)
    child.register_module(name="A", module=B)
    assert isinstance(root.build(dict(type="A")), A)
    assert isinstance(root.build(dict(type="A", _scope_="scoped_tb")), B)
    with DefaultScope.overwrite_default_scope("scoped_tb"):
        assert isinstance(root.build(dict(type="A")), B)
        assert DefaultScope.get_current_instance().scope_name == "scoped_tb"
        assert isinstance(root.build(dict(type="A", _scope_="mmengine")), A)
        assert isinstance(root.build(dict(type="mmengine.A")), A)
    assert DefaultScope.get_current_instance() is None or DefaultScope.get_current_instance().scope_name != "scoped_tb"


@pytest.fixture
def minitb(monkeypatch):
    pytest.importorskip("mmengine", reason="minitb is built on mmengine's registries")
    monkeypatch.syspath_prepend(str(TOOLBOX))
    import minitb.registry

    return minitb.registry


def test_a_toolbox_on_mmengines_registries_resolves_its_names_and_keeps_ours_for_mmengines(minitb):
    with DefaultScope.overwrite_default_scope("minitb"):
        net = reg.MODELS.build(dict(type="MiniNet", width=4))
        assert type(net) is minitb.MODELS.get("MiniNet") and net.conv.out_channels == 4
        # a built-in name of MMEngine's is mm2lightning's implementation, as the issue asks
        assert type(reg.MODELS.build(dict(type="ImgDataPreprocessor"))) is ImgDataPreprocessor
        assert reg.OPTIMIZERS.get_or_raise("MiniSGD") is minitb.OPTIMIZERS.get("MiniSGD")
        # the toolbox's own code builds its submodules through mmengine's registries, in its scope
        model = reg.MODELS.build(dict(type="MiniClassifier", backbone=dict(type="MiniNet"), head=dict(type="MiniHead")))
        assert type(model.backbone).__name__ == "MiniNet"
    assert type(reg.MODELS.build(dict(type="minitb.MiniHead"))).__name__ == "MiniHead"
    assert type(reg.MODELS.build(dict(type="MiniHead", _scope_="minitb"))).__name__ == "MiniHead"


def test_an_mmengine_class_given_as_type_is_ours():
    mmengine_model = pytest.importorskip("mmengine.model")
    built = reg.MODELS.build(dict(type=mmengine_model.ImgDataPreprocessor))
    assert type(built) is ImgDataPreprocessor


def test_an_unknown_name_in_a_toolbox_scope_names_the_scope_and_the_registries_searched(minitb):
    with DefaultScope.overwrite_default_scope("minitb"), pytest.raises(RegistryError) as error:
        reg.MODELS.build(dict(type="MiniNett"))
    message = str(error.value)
    assert "'MiniNett' is not registered in the 'model' registry (default scope 'minitb')" in message
    assert "Did you mean: 'MiniNet'" in message
    assert ("Searched: the 'model' registry of scope 'minitb' (mmengine registry tree, locations ['minitb.models']), "
            "then mm2lightning's 'model' registry (MMEngine's built-in names), then mmengine's root 'model' registry") in message


def test_a_missing_toolbox_names_the_package_to_install():
    with DefaultScope.overwrite_default_scope("mmseg"), pytest.raises(ToolboxNotInstalledError) as error:
        reg.MODELS.build(dict(type="EncoderDecoder"))
    assert "pip install mmsegmentation" in str(error.value) and isinstance(error.value, ModuleNotFoundError)


def test_a_scope_without_registries_warns_once_and_uses_ours():
    with DefaultScope.overwrite_default_scope("my_project_without_registries"):
        with pytest.warns(UserWarning, match="no registry of scope 'my_project_without_registries'"):
            assert isinstance(reg.MODELS.build(dict(type=nn.ReLU)), nn.ReLU)


def test_the_core_needs_no_mmengine_for_scopes(tmp_path):
    """Native toolbox registries work with mmengine blocked from import."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["mmengine"] = None  # import mmengine fails
        from torch import nn
        from mm2lightning.registry import MODELS, Registry, init_default_scope
        KIDS = Registry("model", parent=MODELS, scope="kids")
        @KIDS.register_module()
        class Kid(nn.Module):
            pass
        init_default_scope("kids")
        assert type(MODELS.build(dict(type="Kid"))) is Kid
        assert type(MODELS.build(dict(type="ImgDataPreprocessor"))).__module__ == "mm2lightning.model.data_preprocessor"
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
