"""MMEngine's package configs: ``_base_ = 'mmpretrain::resnet/resnet18_8xb16_cifar10.py'``.

A ``'pkg::path'`` base names a config bundled with the installed package
``pkg``: MMEngine reads ``<package dir>/.mim/configs/<path>`` (after looking the
name up in ``<package dir>/.mim/model-index.yml``, when there is one). Base
configs read so get ``_scope_='pkg'`` in their outermost dicts that have a
``type``, so that the registry builds them from that package's scope.

Unlike MMEngine (whose lookup uses ``pkg_resources``, gone from setuptools
80+), the package is found with :func:`importlib.util.find_spec` and the pip
distribution name (for the error message) with :mod:`importlib.metadata`.
MMEngine only reads the packages of its ``PKG2PROJECT`` table; we read any
installed package that bundles ``.mim/configs``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from pathlib import Path
from typing import Any

import yaml

from mm2lightning.config.errors import ConfigError, ConfigFileNotFoundError, ConfigModuleNotFoundError

PACKAGE_SEP = "::"

#: Module name -> pip distribution name of OpenMMLab toolboxes, as ``mmengine.config.utils.MODULE2PACKAGE``.
MODULE2PACKAGE: dict[str, str] = {
    "mmcls": "mmcls",
    "mmdet": "mmdet",
    "mmdet3d": "mmdet3d",
    "mmseg": "mmsegmentation",
    "mmaction": "mmaction2",
    "mmtrack": "mmtrack",
    "mmpose": "mmpose",
    "mmedit": "mmedit",
    "mmocr": "mmocr",
    "mmgen": "mmgen",
    "mmfewshot": "mmfewshot",
    "mmrazor": "mmrazor",
    "mmflow": "mmflow",
    "mmhuman3d": "mmhuman3d",
    "mmrotate": "mmrotate",
    "mmselfsup": "mmselfsup",
    "mmyolo": "mmyolo",
    "mmpretrain": "mmpretrain",
    "mmagic": "mmagic",
}
PKG2PROJECT = MODULE2PACKAGE  # MMEngine's older name
SCOPE_KEY = "_scope_"


def is_package_config(name: str) -> bool:
    """Whether a ``_base_`` entry uses the ``'pkg::path'`` form."""
    return PACKAGE_SEP in name


def split_package_config(name: str) -> tuple[str, str]:
    """Split ``'pkg::dir/cfg.py'`` into ``('pkg', 'dir/cfg.py')``, checked as MMEngine does.

    Raises:
        ConfigError: The form is not ``package::folder/file`` or has several ``::``.
    """
    if re.match(r"\w*::\w*/\w*", name) is None:
        raise ConfigError(
            f"invalid package config {name!r}: expected 'package::folder/config.py', e.g. "
            "'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py' (please specify the package name and relative "
            "config path)"
        )
    parts = name.split(PACKAGE_SEP)
    if len(parts) > 2:
        raise ConfigError(
            f"invalid package config {name!r}: `::` should only be used to separate package and config name, "
            "but found multiple `::`"
        )
    return parts[0], parts[1]


def distribution_name(package: str) -> str:
    """The pip distribution that installs the module ``package`` (``'mmseg'`` -> ``'mmsegmentation'``)."""
    if package in PKG2PROJECT:
        return PKG2PROJECT[package]
    try:
        names = importlib.metadata.packages_distributions().get(package)
    except Exception:  # noqa: BLE001 - broken metadata of some other distribution
        names = None
    return names[0] if names else package


def package_dir(package: str, what: str) -> Path:
    """The folder of the installed top-level package ``package``.

    Args:
        package: A module name, e.g. ``'mmpretrain'``.
        what: What needs it, for the error message (``"base 'mmdet::a/b.py'"``).

    Raises:
        ConfigModuleNotFoundError: The package is not installed (a
            ``ModuleNotFoundError``, as MMEngine's).
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if spec is not None and spec.origin not in (None, "namespace") and spec.submodule_search_locations:
        return Path(spec.origin).parent
    if locations:  # a namespace package: its first folder
        return Path(locations[0])
    distribution = distribution_name(package)
    raise ConfigModuleNotFoundError(
        f"{what} needs the Python package {package!r}, which is not installed (or not a package); install it "
        f"with `pip install {distribution}` ({distribution} is not installed, please install {distribution} manually)"
    )


def resolve_package_config(name: str, where: str) -> tuple[Path, str]:
    """Find the file of the package config ``name`` (``'pkg::path'``).

    Args:
        name: The ``_base_`` entry.
        where: The config that names it, for error messages.

    Returns:
        The file, and the scope (``'pkg'``) for its ``_scope_`` keys.

    Raises:
        ConfigError: ``name`` is malformed.
        ConfigModuleNotFoundError: The package is not installed.
        ConfigFileNotFoundError: The package has no such config.
    """
    package, cfg_path = split_package_config(name)
    root = package_dir(package, f"{where}: base {name!r}")
    from_index = _metafile_config(root, cfg_path)
    if from_index is not None:
        return from_index, package
    configs = root / ".mim" / "configs"
    path = configs / cfg_path
    if not path.is_file():
        raise ConfigFileNotFoundError(
            f"{where}: base {name!r} not found: package {package!r} has no config {cfg_path!r} in its config "
            f"folder {configs} (No such file or directory: {path})"
        )
    return path, package


def _metafile_config(root: Path, cfg_path: str) -> Path | None:
    """The config that ``<root>/.mim/model-index.yml``'s metafiles give for ``cfg_path``, as MMEngine looks it up.

    MMEngine compares ``cfg_path`` without its suffix with the metafiles'
    ``Config`` entries without their first folder; ``None`` when there is no
    index or no entry.
    """
    index = root / ".mim" / "model-index.yml"
    if not index.is_file():
        return None
    wanted = cfg_path.split(".")[0]
    index_data: Any = _read_yaml(index)
    for meta_path in (index_data or {}).get("Import", []) or []:
        meta: Any = _read_yaml(root / ".mim" / meta_path)
        for model in (meta or {}).get("Models", []) or []:
            config = model.get("Config") if isinstance(model, dict) else None
            if isinstance(config, str) and config.partition("/")[-1] == wanted:
                path = root / config
                if not path.is_file():
                    raise ConfigFileNotFoundError(f"config {path} of {index} not found (No such file or directory)")
                return path
    return None


def _read_yaml(path: Path) -> Any:
    """Read a YAML metafile; a missing or invalid one reads as nothing."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def add_scope(value: Any, scope: str, has_scope: bool = True) -> Any:
    """Add ``_scope_=scope`` to the outermost dicts with a ``type`` key, as MMEngine's ``_dict_to_config_dict``.

    A dict that already has a ``_scope_`` keeps it. The input is not modified.
    """
    if isinstance(value, dict):
        if has_scope and "type" in value:
            has_scope = False
            if value.get(SCOPE_KEY) is None:
                value = {**value, SCOPE_KEY: scope}
        return {key: add_scope(item, scope, has_scope) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(add_scope(item, scope, has_scope) for item in value)
    return value


def package_module_file(module: str, where: str) -> Path:
    """The file of a base config module imported in ``with read_base():``, e.g. ``mmpretrain.configs._base_.x``.

    As MMEngine: ``<package dir>/configs/_base_/x.py``, the path under the
    installed package's folder.

    Raises:
        ConfigModuleNotFoundError: The package is not installed.
    """
    package, *folders, name = module.split(".")
    return package_dir(package, f"{where}: base module {module!r}").joinpath(*folders, f"{name}.py")
