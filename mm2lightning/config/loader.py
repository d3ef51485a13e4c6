"""Reading config files: the three formats, ``_base_`` inheritance and ``{{...}}`` substitutions."""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import types
import uuid
from pathlib import Path
from typing import Any

import yaml

from mm2lightning.config.config_dict import ConfigDict
from mm2lightning.config.errors import (
    ConfigError,
    ConfigFileNotFoundError,
    ConfigKeyError,
    ConfigOSError,
    ConfigParsingError,
    ConfigSyntaxError,
    one_line,
)
from mm2lightning.config.lazy import is_lazy_tree
from mm2lightning.config.merge import merge_into
from mm2lightning.config.package_configs import add_scope, is_package_config, resolve_package_config

SUFFIXES = (".py", ".yaml", ".yml", ".json")
BASE_KEY = "_base_"
_BASE_REF = re.compile(r"(['\"]?)\{\{\s*_base_\.([\w.]+)\s*\}\}\1")  # quotes around it are optional
_ENV_VAR = re.compile(r"\{\{['\"]?\s*\$(\w+)\s*:\s*(\S*?)\s*['\"]?\}\}")


class _YamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``!!python/tuple`` (MMEngine writes tuples so); no other Python tag."""


_YamlLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple", lambda loader, node: tuple(loader.construct_sequence(node, deep=True))
)


def check_suffix(suffix: str, name: str, error: type[ConfigError] = ConfigOSError) -> None:
    """Raise ``error`` (a ``ConfigError``; MMEngine's ``OSError`` when loading) unless ``suffix`` is in :data:`SUFFIXES`."""
    if suffix not in SUFFIXES:
        raise error(
            f"unsupported config format for {name}: the suffix must be one of {', '.join(SUFFIXES)} "
            "(Only py/yml/yaml/json type are supported now!)"
        )


def load_file(filename: str | os.PathLike[str], lazy_import: bool | None = None) -> dict[str, Any]:
    """Read a config file and its ``_base_`` chain into one dict.

    A ``.py`` config is executed as Python code; YAML is read with
    ``yaml.SafeLoader`` (plus ``!!python/tuple``) and JSON with :mod:`json`.

    Args:
        filename: The config file.
        lazy_import: ``None`` refuses lazy-import (``with read_base():``)
            configs in the chain, as MMEngine; ``False`` reads them as plain
            code (MMEngine's ``lazy_import=False``).

    Raises:
        ConfigError: The file is missing or unreadable, has another suffix, or
            its ``_base_`` chain is invalid (missing, circular, duplicate keys).
    """
    return _load(Path(filename), (), lazy_import)


def load_text(text: str, file_format: str) -> dict[str, Any]:
    """Read config text of ``file_format`` (``'.py'``, ``'.yaml'``, ``'.yml'``, ``'.json'``).

    ``_base_`` paths are relative to the working directory.
    """
    check_suffix(file_format, f"a config string of format {file_format!r}")
    return _parse(text, file_format, None, ())


def _load(path: Path, chain: tuple[Path, ...], lazy_import: bool | None = None) -> dict[str, Any]:
    """Read ``path``; ``chain`` is the files that inherit from it, for cycle detection."""
    check_suffix(path.suffix, str(path))
    path = path.expanduser().resolve()
    if path in chain:
        raise ConfigError(f"circular _base_ inheritance: {' -> '.join(str(p) for p in (*chain, path))}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = ""
        if not chain and is_package_config(str(path)):
            hint = "; the 'package::path' form is only read in _base_ (e.g. _base_ = 'mmdet::a/b.py'), as in MMEngine"
        raise ConfigFileNotFoundError(f"config file not found: {path} (No such file or directory){hint}") from None
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from error
    return _parse(text, path.suffix, path, (*chain, path), lazy_import)


def _parse(
    text: str, suffix: str, path: Path | None, chain: tuple[Path, ...], lazy_import: bool | None = None
) -> dict[str, Any]:
    """Turn the text of one config into its final dict, bases merged in."""
    where = str(path) if path else f"<config string {suffix}>"
    if path is not None:
        text = _substitute_file_vars(text, path)
    text = _substitute_env_vars(text, where)
    text, refs = _protect_base_refs(text)
    directory = path.parent if path else Path.cwd()
    if suffix == ".py":
        tree = _parse_python(text, where, lazy_import)
        base = _load_bases(_pop_base_assignment(tree, where), directory, chain, where, lazy_import)
        cfg = _run_python(tree, where, base)
    else:
        cfg = _read_data(text, suffix, where)
        base = _load_bases(_base_names(cfg.pop(BASE_KEY, []), where), directory, chain, where, lazy_import)
    cfg = _resolve_base_refs(cfg, refs, base, where)
    merged = merge_into(cfg, base)
    return {key: value for key, value in merged.items() if not str(key).startswith("__")}


def _load_bases(
    names: list[str], directory: Path, chain: tuple[Path, ...], where: str, lazy_import: bool | None = None
) -> ConfigDict:
    """Load the ``_base_`` files into one dict; their keys must not overlap.

    A name is relative to ``directory``, or ``'pkg::path'``: a config of the
    installed package ``pkg`` (see :mod:`mm2lightning.config.package_configs`),
    whose dicts get ``_scope_='pkg'`` as in MMEngine.
    """
    base = ConfigDict()
    for name in names:
        if is_package_config(name):
            base_path, scope = resolve_package_config(name, where)
            loaded = add_scope(_load(base_path, chain, lazy_import), scope)
        else:
            base_path = directory / name
            if not base_path.is_file():
                raise ConfigFileNotFoundError(
                    f"{where}: base config {name!r} not found (looked for {base_path}; No such file or directory)"
                )
            loaded = _load(base_path, chain, lazy_import)
        duplicates = sorted(base.keys() & loaded.keys(), key=str)
        if duplicates:
            raise ConfigKeyError(
                f"Duplicate key is not allowed among bases: {duplicates} in {base_path} and an earlier base of {where}"
            )
        base.update(loaded)
    return base


def _base_names(value: Any, where: str) -> list[str]:
    """Return ``_base_`` as a list of paths, checking that it is a string or a list of strings."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(name, str) for name in names):
        raise ConfigError(f"{where}: _base_ must be a path or a list of paths, got {value!r}")
    return list(names)


def _read_data(text: str, suffix: str, where: str) -> dict[str, Any]:
    """Read YAML (safe loading: no Python object tags but ``!!python/tuple``) or JSON text into a dict."""
    try:
        data = json.loads(text) if suffix == ".json" else yaml.load(text, Loader=_YamlLoader)  # noqa: S506
    except json.JSONDecodeError as error:
        raise ConfigError(f"{where}: invalid JSON: {error}") from error
    except RecursionError as error:
        raise ConfigError(f"{where}: nested too deeply to read") from error
    except yaml.YAMLError as error:
        is_tag = isinstance(error, yaml.constructor.ConstructorError)
        hint = "; tags that build Python objects are not allowed" if is_tag else ""
        raise ConfigError(f"{where}: cannot read YAML (safe loading): {one_line(error)}{hint}") from error
    if data is None and suffix != ".json":
        return {}
    _check_acyclic(data, where)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level of a config must be a mapping, got {type(data).__name__}")
    return data


def _parse_python(text: str, where: str, lazy_import: bool | None = None) -> ast.Module:
    """Parse a ``.py`` config of the ``_base_`` style; a lazy-import one (``with read_base():``) is refused.

    :meth:`Config.fromfile` reads a lazy-import config itself (see
    :mod:`mm2lightning.config.lazy`); here one can only be a base of a
    ``_base_``-style config, which MMEngine refuses too.
    """
    try:
        tree = ast.parse(text, filename=where)
    except SyntaxError as error:
        raise ConfigSyntaxError(
            f"{where}:{error.lineno}: invalid Python syntax: {error.msg} "
            f"(There are syntax errors in config file {where})"
        ) from error
    if lazy_import is False:
        return tree
    try:
        lazy = is_lazy_tree(tree)
    except ConfigParsingError as error:
        raise ConfigParsingError(f"{where}: {error}") from None
    if lazy:
        raise ConfigParsingError(
            f"{where}: a lazy-import config (with read_base():, or imports of non-standard-library modules before "
            "any _base_) cannot be a _base_ of a _base_-style config; import it in `with read_base():` instead "
            "(The configuration file type in the inheritance chain must match the current configuration file type, "
            'either "lazy_import" or non-"lazy_import")'
        )
    return tree


def _pop_base_assignment(tree: ast.Module, where: str) -> list[str]:
    """Remove the top-level ``_base_ = ...`` statements and return the first one's paths."""
    assignments = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id == BASE_KEY
    ]
    if not assignments:
        return []
    tree.body = [node for node in tree.body if node not in assignments]
    try:
        value = ast.literal_eval(assignments[0].value)
    except ValueError:
        raise ConfigError(f"{where}: _base_ must be a literal path or list of paths") from None
    return _base_names(value, where)


def _run_python(tree: ast.Module, where: str, base: ConfigDict) -> dict[str, Any]:
    """Execute a ``.py`` config with ``_base_`` bound to the base dict and collect its variables.

    As MMEngine, names starting with ``__`` and names bound to modules or
    Python functions are dropped; classes (e.g. ``from torch.optim import SGD``)
    are kept.
    """
    namespace: dict[str, Any] = {BASE_KEY: base}
    try:
        exec(compile(tree, where, "exec"), namespace)  # noqa: S102 - a .py config is code, as in MMEngine
    except Exception as error:
        raise ConfigError(f"{where}: running the config raised {type(error).__name__}: {one_line(error)}") from error
    dropped = (types.ModuleType, types.FunctionType)
    return {
        key: value
        for key, value in namespace.items()
        if key != BASE_KEY and not key.startswith("__") and not isinstance(value, dropped)
    }


def _substitute_file_vars(text: str, path: Path) -> str:
    """Replace MMEngine's predefined variables, e.g. ``{{ fileBasenameNoExtension }}``.

    They describe ``path``, the file being read (a base has its own):
    ``fileDirname``, ``fileBasename``, ``fileBasenameNoExtension``, ``fileExtname``.
    """
    values = {
        "fileDirname": path.parent.as_posix(),
        "fileBasename": path.name,
        "fileBasenameNoExtension": path.stem,
        "fileExtname": path.suffix,
    }
    for name, value in values.items():
        text = re.sub(r"\{\{\s*" + name + r"\s*\}\}", lambda _: value, text)
    return text


def _substitute_env_vars(text: str, where: str) -> str:
    """Replace ``{{$NAME:default}}`` with the environment variable ``NAME``, else the default."""

    def replace(match: re.Match[str]) -> str:
        value = os.environ.get(match.group(1), match.group(2))
        if not value:
            raise ConfigKeyError(
                f"{where}: environment variable {match.group(1)} is not set and has no default "
                f"(`{match.group(1)}` cannot be found in `os.environ`.)"
            )
        return value

    return _ENV_VAR.sub(replace, text)


def _check_acyclic(value: Any, where: str, parents: tuple[int, ...] = ()) -> None:
    """Refuse a YAML value that contains itself (``a: &x [*x]``): a config must be a tree."""
    if not isinstance(value, (dict, list, tuple)):
        return
    if id(value) in parents:
        raise ConfigError(f"{where}: a YAML alias refers to a value that contains it; a config must be a tree")
    items = value.values() if isinstance(value, dict) else value
    for item in items:
        _check_acyclic(item, where, (*parents, id(value)))


def _protect_base_refs(text: str) -> tuple[str, dict[str, str]]:
    """Replace each ``{{_base_.a.b}}`` (quoted or not) by a quoted placeholder.

    Returns:
        The new text, and the map placeholder -> ``'a.b'``.
    """
    refs: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        placeholder = f"_base_ref_{uuid.uuid4().hex}"
        refs[placeholder] = match.group(2)
        return f'"{placeholder}"'

    return _BASE_REF.sub(replace, text), refs


def _resolve_base_refs(value: Any, refs: dict[str, str], base: ConfigDict, where: str) -> Any:
    """Replace placeholder strings (also nested) with copies of the base values they name."""
    if not refs:
        return value
    if isinstance(value, str) and value in refs:
        return copy.deepcopy(_lookup(base, refs[value], where))
    if isinstance(value, str) and any(placeholder in value for placeholder in refs):
        dotted = next(refs[placeholder] for placeholder in refs if placeholder in value)
        raise ConfigError(
            f"{where}: {{{{_base_.{dotted}}}}} must be a whole value, not part of a string (use a Python config "
            "and _base_ variables to build strings)"
        )
    if isinstance(value, dict):
        return {key: _resolve_base_refs(item, refs, base, where) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_resolve_base_refs(item, refs, base, where) for item in value)
    return value


def _lookup(base: ConfigDict, dotted: str, where: str) -> Any:
    """Return the base value at a dotted path (digits index lists)."""
    value: Any = base
    for part in dotted.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise ConfigError(f"{where}: {{{{_base_.{dotted}}}}} does not name a value of the base configs")
    return value

