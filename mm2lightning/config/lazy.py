"""MMEngine's lazy-import ("pure Python style") configs.

A ``.py`` config is read in this mode, as by MMEngine's ``Config._is_lazy_import``,
when (walking its syntax tree breadth first) a ``with read_base():`` block, a
relative import or an import of a non-standard-library module comes before
any ``_base_ = ...``::

    from mm2lightning.config import read_base   # or: from mmengine.config import read_base

    with read_base():
        from .._base_.default_runtime import *              # a config next to this one
        from mmpretrain.configs._base_.models.resnet18 import model  # a config of an installed package

    from torch.optim import SGD

    optim_wrapper = dict(optimizer=dict(type=SGD, lr=0.1))
    model.backbone.depth = 50   # base values are ConfigDicts: edit them, nothing merges automatically

The imports in ``with read_base():`` read other configs of this style
(``from .a.b import *`` is ``<this folder>/a/b.py``, ``from ..a import x`` goes up
one folder, ``from pkg.x.y import *`` is ``<pkg's folder>/x/y.py``). Other imports
of non-standard-library modules become values that MMEngine keeps as
``LazyObject``: reading the config gives the imported object
(``cfg.optim_wrapper.optimizer.type is torch.optim.SGD``), while
:meth:`Config.to_dict`, :attr:`Config.pretty_text` and :meth:`Config.dump` write
it as its import path (``'torch.optim.SGD'``) and leave out the top-level
imported names, as MMEngine. Predefined (``{{ fileDirname }}``), environment
(``{{$VAR:default}}``) and ``{{_base_.x}}`` substitutions do not apply, there is
no ``_base_`` variable, and ``custom_imports`` is not imported, as in MMEngine.

What differs from MMEngine:
    * Imports are resolved once the config is read, not when a value is
      used: a module that cannot be imported fails loading
      (:class:`ConfigImportError`), where MMEngine fails on first use.
    * Standard-library modules (``sys.stdlib_module_names``) are always
      imported for real; MMEngine decides by the module's install folder, so
      in some environments it turns ``math.pi`` into ``'math.pi'``.
    * Imported values that are plain numbers or strings (``lr = pkg.LR``) are
      written as their value, not as ``'pkg.LR'``.
    * Modules are not kept as top-level keys (they cannot be copied); MMEngine
      keeps them (hidden from ``to_dict``), and ``import a.b`` without ``as``
      of a standard-library module is hidden too.
    * Every ``with read_base():`` block is read (MMEngine reads the first),
      and ``import a, b`` on one line is allowed.
"""

from __future__ import annotations

import ast
import importlib
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mm2lightning.config.config_dict import ConfigDict, to_plain
from mm2lightning.config.errors import (
    ConfigError,
    ConfigFileNotFoundError,
    ConfigImportError,
    ConfigKeyError,
    ConfigNameError,
    ConfigParsingError,
    ConfigSyntaxError,
    one_line,
)
from mm2lightning.config.package_configs import package_module_file

BASE_KEY = "_base_"
_READ_BASE_MODULES = ("mmengine.config", "mmengine", "mm2lightning.config", "mm2lightning")
_CONFIG_MODULES = ("mmengine.config", "mm2lightning.config")  # imported for real, as MMEngine does
_LAZY = "__lazy_import__"
_NOT_PATH_TYPES = (str, bytes, int, float, complex, bool, type(None), dict, list, tuple, set, frozenset)
_NOT_PATH_TYPES += (types.ModuleType,)
_MIXED_STYLES = (
    "The configuration file type in the inheritance chain must match the current configuration file type, "
    'either "lazy_import" or non-"lazy_import"'
)


@contextmanager
def read_base() -> Iterator[None]:
    """Mark the base configs of a lazy-import config (``with read_base(): from .base import *``).

    The loader reads the block itself; calling this does nothing.
    """
    yield


@dataclass(frozen=True)
class LazyInfo:
    """What a lazy-import config's :meth:`Config.to_dict` needs beyond the values.

    Attributes:
        imported_names: Top-level names bound by imports, left out of ``to_dict``.
        import_paths: ``(object, 'module.name')`` for each imported object,
            written as its path by ``to_dict``.
    """

    imported_names: frozenset[str]
    import_paths: tuple[tuple[Any, str], ...]

    def to_dict(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """Return ``cfg`` as plain dicts, imported objects as their paths and imported names left out."""
        paths = {id(obj): path for obj, path in self.import_paths}

        def convert(value: Any) -> Any:
            if id(value) in paths:
                return paths[id(value)]
            if isinstance(value, dict):
                return {key: convert(item) for key, item in value.items()}
            if type(value) in (list, tuple):
                return type(value)(convert(item) for item in value)
            return value

        return {key: convert(value) for key, value in to_plain(cfg).items() if key not in self.imported_names}


class _LazyImport:
    """An import while the config runs, as MMEngine's ``LazyObject`` (``module`` is a tuple for ``import a.b``).

    Its own attributes start with ``_lz_`` so that ``nn.anything`` gives a :class:`_LazyAttr`.
    """

    def __init__(self, module: str | tuple[str, ...], imported: str | None = None, location: str = "") -> None:
        self._lz_module = module
        self._lz_imported = imported
        self._lz_location = location

    def _lz_root(self) -> str:
        """MMEngine's ``LazyObject.module``."""
        return self._lz_module if isinstance(self._lz_module, str) else self._lz_module[0].split(".")[0]

    def __str__(self) -> str:
        return self._lz_imported if self._lz_imported is not None else self._lz_root()

    def _lz_path(self) -> str:
        """What MMEngine's ``to_dict`` writes for it."""
        return f"{self._lz_root()}.{self}"

    def _lz_build(self) -> Any:
        """Import the object."""
        modules = [self._lz_module] if isinstance(self._lz_module, str) else list(self._lz_module)
        where = self._lz_location
        try:
            for name in modules:
                module = importlib.import_module(name)
        except Exception as error:
            raise ConfigImportError(
                f"{where}: cannot import {' '.join(modules)}: {type(error).__name__}: {one_line(error)} "
                f"(Failed to import {self._lz_root()} in {where} for {one_line(error)})"
            ) from error
        if not isinstance(self._lz_module, str):
            return importlib.import_module(self._lz_root())
        if self._lz_imported is None:
            return module
        if not hasattr(module, self._lz_imported):
            raise ConfigImportError(
                f"{where}: module {self._lz_module} has no {self._lz_imported!r} "
                f"(Failed to import {self._lz_imported} from {self._lz_module} in {where})"
            )
        return getattr(module, self._lz_imported)

    def __getattr__(self, name: str) -> _LazyAttr:
        if name.startswith(("__", "_lz_")):
            raise AttributeError(name)
        return _LazyAttr(name, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ConfigError(f"{self._lz_location}: an imported name ({self}) cannot be called in a lazy-import config")

    def __deepcopy__(self, memo: dict[int, Any]) -> _LazyImport:
        return self


class _LazyAttr(_LazyImport):
    """An attribute of an import (``nn.ReLU``), as MMEngine's ``LazyAttr``."""

    def __init__(self, name: str, source: _LazyImport) -> None:
        super().__init__(source._lz_module, name, source._lz_location)
        self._lz_source = source
        if isinstance(source, _LazyAttr):
            self._lz_prefix = f"{source._lz_prefix}.{source._lz_imported}"
        elif isinstance(source._lz_module, str):
            self._lz_prefix = source._lz_module if source._lz_imported is None else f"{source._lz_module}.{source}"
        else:
            self._lz_prefix = str(source)

    def _lz_path(self) -> str:
        return f"{self._lz_prefix}.{self._lz_imported}"

    def _lz_build(self) -> Any:
        obj = self._lz_source._lz_build()
        try:
            return getattr(obj, str(self._lz_imported))
        except AttributeError:
            raise ConfigImportError(
                f"{self._lz_location}: {self._lz_prefix} has no attribute {self._lz_imported!r} "
                f"(Failed to import {self._lz_prefix}.{self._lz_imported} in {self._lz_location})"
            ) from None


def is_builtin_module(name: str) -> bool:
    """Whether imports of ``name`` run for real in a lazy-import config (standard library, ``*.config``)."""
    if name.startswith("."):
        return False
    if name.startswith(_CONFIG_MODULES):
        return True
    root = name.split(".")[0]
    return root in sys.builtin_module_names or root in getattr(sys, "stdlib_module_names", ())


def is_lazy_tree(tree: ast.Module) -> bool:
    """Whether a ``.py`` config is lazy-import style, as MMEngine's ``Config._is_lazy_import``.

    Raises:
        ConfigParsingError: A ``with`` statement that is not ``with read_base():`` decides it.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id == BASE_KEY:
            return False
        if isinstance(node, ast.With):
            if not _is_read_base(node):
                raise ConfigParsingError(
                    f"line {node.lineno}: Only `read_base` context manager can be used in the config"
                )
            return True
        if isinstance(node, ast.ImportFrom):
            if node.level:
                return True
            if node.module == "mmengine" and [alias.name for alias in node.names] == ["Config"]:
                continue
            if node.module is not None and not is_builtin_module(node.module):
                return True
        if isinstance(node, ast.Import) and any(not is_builtin_module(alias.name) for alias in node.names):
            return True
    return False


def is_lazy_text(text: str) -> bool:
    """Whether config text (``.py``) is lazy-import style; ``False`` when it is not valid Python."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return is_lazy_tree(tree)


def _is_read_base(node: ast.With) -> bool:
    """Whether ``node`` is ``with read_base():``."""
    expr = node.items[0].context_expr
    func = getattr(expr, "func", None)
    return isinstance(expr, ast.Call) and getattr(func, "id", None) == "read_base" and len(node.items) == 1


def load_lazy(text: str, path: Path | None, directory: Path) -> tuple[dict[str, Any], LazyInfo]:
    """Read a lazy-import config; imported objects are resolved.

    Args:
        text: The config's code.
        path: Its file, if any (``__file__``; error messages).
        directory: The folder relative base imports start from.

    Returns:
        The config values and what its ``to_dict`` needs.

    Raises:
        ConfigError: Invalid syntax, a missing base or imported object.
    """
    namespace, imported = _run(text, path, directory, ())
    paths: list[tuple[Any, str]] = []
    values = {key: _resolve(value, paths) for key, value in namespace.items()}
    values = {key: value for key, value in values.items() if not isinstance(value, types.ModuleType)}
    return values, LazyInfo(frozenset(imported), tuple(paths))


def _resolve(value: Any, paths: list[tuple[Any, str]]) -> Any:
    """Replace the imports in ``value`` by the objects, recording ``(object, path)`` for ``to_dict``."""
    if isinstance(value, _LazyImport):
        obj = value._lz_build()
        if not isinstance(obj, _NOT_PATH_TYPES):
            paths.append((obj, value._lz_path()))
        return obj
    if isinstance(value, dict):
        return {key: _resolve(item, paths) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_resolve(item, paths) for item in value)
    return value


def _load_base(path: Path, chain: tuple[Path, ...], module: str, where: str) -> tuple[dict[str, Any], set[str]]:
    """Read a base config of a lazy-import config (unresolved)."""
    path = path.resolve()
    if path in chain:
        raise ConfigError(f"circular read_base imports: {' -> '.join(str(p) for p in (*chain, path))}")
    if not path.is_file():
        raise ConfigFileNotFoundError(
            f"{where}: base config {path} not found ({path} not found! It means that incorrect module is defined in "
            f"`with read_base(): = from {module} import ...`, please make sure the base config module is valid)"
        )
    return _run(path.read_text(encoding="utf-8"), path, path.parent, chain)


def _run(text: str, path: Path | None, directory: Path, chain: tuple[Path, ...]) -> tuple[dict[str, Any], set[str]]:
    """Run one lazy-import config with its bases; imports stay unresolved.

    Returns:
        Its top-level variables and the names bound by imports.
    """
    where = str(path) if path else "<config string .py>"
    try:
        tree = ast.parse(text, filename=where)
    except SyntaxError as error:
        raise ConfigSyntaxError(
            f"{where}:{error.lineno}: invalid Python syntax: {error.msg} (There are syntax errors in config file {where})"
        ) from error
    chain = (*chain, path.resolve()) if path else chain
    bases: dict[str, tuple[dict[str, Any], set[str]]] = {}
    body: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == BASE_KEY for t in node.targets):
            raise ConfigParsingError(
                f"{where}:{node.lineno}: a lazy-import config (with read_base():) cannot also set _base_: "
                f"{_MIXED_STYLES}"
            )
        if isinstance(node, ast.With):
            if not _is_read_base(node):
                raise ConfigParsingError(f"{where}:{node.lineno}: Only `read_base` context manager can be used in the config")
            for item in node.body:
                module = _base_module(item, where)
                if module not in bases:
                    bases[module] = _load_base(_base_file(module, directory, where), chain, module, where)
            body.extend(node.body)
        else:
            body.append(node)
    tree.body = body
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == BASE_KEY:
            raise ConfigNameError(
                f"{where}:{node.lineno}: _base_ is not available in a lazy-import config (with read_base():); "
                "{{_base_.x}} and _base_.x only work in _base_ = [...] configs: import the base's variables in "
                "`with read_base():` and use them by name (name '_base_' is not defined)"
            )
    namespace: dict[str, Any] = {"__file__": str(path) if path else where, _LAZY: _LazyImport}
    transformer = _ImportTransformer(namespace, bases, where)
    tree = ast.fix_missing_locations(transformer.visit(transformer.top_level(tree)))
    try:
        exec(compile(tree, where, "exec"), namespace)  # noqa: S102 - a .py config is code, as in MMEngine
    except ConfigError:
        raise
    except Exception as error:
        raise ConfigError(f"{where}: running the config raised {type(error).__name__}: {one_line(error)}") from error
    imported = transformer.imported | set().union(*(names for _, names in bases.values()))
    values = {key: ConfigDict._hook(value) for key, value in namespace.items() if not key.startswith("__")}
    return values, imported


def _base_module(node: ast.stmt, where: str) -> str:
    """The module of one import in ``with read_base():``, dots kept (``'..a.b'``)."""
    if not isinstance(node, ast.ImportFrom):
        raise ConfigParsingError(
            f"{where}:{node.lineno}: Illegal syntax in config file! Only `from ... import ...` could be implemented "
            "in `with read_base()`"
        )
    if node.module is None:
        raise ConfigParsingError(
            f"{where}:{node.lineno}: Illegal syntax in config file! Syntax like `from . import xxx` is not allowed "
            "in `with read_base()`"
        )
    return "." * node.level + node.module


def _base_file(module: str, directory: Path, where: str) -> Path:
    """The file a base module names: relative to ``directory``, or in an installed package."""
    level = len(module) - len(module.lstrip("."))
    parts = module[level:].split(".")
    if level:
        return directory.joinpath(*([".."] * (level - 1)), *parts[:-1], f"{parts[-1]}.py")
    if len(parts) == 1:
        raise ConfigParsingError(
            f"{where}: The imported configuration file should not be an independent package {module}. Here is an "
            "example: `with read_base(): from mmdet.configs.retinanet_r50_fpn_1x_coco import *`"
        )
    return package_module_file(module, where)


class _ImportTransformer(ast.NodeTransformer):
    """Binds base-config imports from ``bases`` and turns other imports into ``_LazyImport`` assignments."""

    def __init__(self, namespace: dict[str, Any], bases: dict[str, tuple[dict[str, Any], set[str]]], where: str):
        self.namespace = namespace
        self.bases = bases
        self.where = where
        self.imported: set[str] = set()

    def _lazy(self, name: str, module: str | tuple[str, ...], imported: str | None, node: ast.stmt) -> ast.stmt:
        """``name = __lazy_import__(module, imported, location)``, at the place of the import ``node``."""
        code = f"{name} = {_LAZY}({module!r}, {imported!r}, {f'{self.where}, line {node.lineno}'!r})"
        self.imported.add(name)
        statement = ast.parse(code).body[0]
        for child in ast.walk(statement):
            ast.copy_location(child, node)
        return statement

    def top_level(self, tree: ast.Module) -> ast.Module:
        """Turn top-level ``import a.b`` (no ``as``) of non-standard modules into one lazy root per package."""
        roots: dict[str, list[str]] = {}
        first: dict[str, ast.stmt] = {}
        body: list[ast.stmt] = []
        for node in tree.body:
            if not isinstance(node, ast.Import):
                body.append(node)
                continue
            for alias in node.names:
                if alias.asname is not None:
                    body.extend(self.visit_Import(ast.copy_location(ast.Import(names=[alias]), node)))
                elif is_builtin_module(alias.name):
                    self.imported.add(alias.name.split(".")[0])
                    body.append(ast.copy_location(ast.Import(names=[alias]), node))
                else:
                    root = alias.name.split(".")[0]
                    roots.setdefault(root, []).append(alias.name)
                    first.setdefault(root, node)
        tree.body = [self._lazy(root, tuple(names), None, first[root]) for root, names in roots.items()] + body
        return tree

    def visit_ImportFrom(self, node: ast.ImportFrom) -> Any:
        module = "." * node.level + (node.module or "")
        if module in self.bases:
            values, _ = self.bases[module]
            for alias in node.names:
                if alias.name == "*":
                    self.namespace.update(values)
                elif alias.name not in values:
                    raise ConfigKeyError(f"{self.where}:{node.lineno}: base config {module} has no variable {alias.name!r}")
                else:
                    self.namespace[alias.asname or alias.name] = values[alias.name]
            return None
        if node.module in _READ_BASE_MODULES and not node.level:
            for alias in [alias for alias in node.names if alias.name == "read_base"]:
                self.namespace[alias.asname or alias.name] = read_base
                self.imported.add(alias.asname or alias.name)
            node.names = [alias for alias in node.names if alias.name != "read_base"]
            if not node.names:
                return None
        if any(alias.name == "*" for alias in node.names):
            raise ConfigParsingError(
                f"{self.where}:{node.lineno}: Illegal syntax in config! `from {module} import *` is only allowed for "
                "base configs, in `with read_base():` (Cannot import * from non-base config)"
            )
        if is_builtin_module(module):
            self.imported.update(alias.asname or alias.name for alias in node.names)
            return node
        return [self._lazy(alias.asname or alias.name, module, alias.name, node) for alias in node.names]

    def visit_Import(self, node: ast.Import) -> Any:
        aliases = [alias for alias in node.names if alias.asname is not None]
        if not aliases:
            return node  # ``import a.b`` inside a function: a real import, as in MMEngine
        nodes: list[ast.stmt] = []
        for alias in node.names:
            if alias.asname is None or is_builtin_module(alias.name):
                if alias.asname is not None:
                    self.imported.add(alias.asname)
                nodes.append(ast.copy_location(ast.Import(names=[alias]), node))
            else:
                nodes.append(self._lazy(alias.asname, alias.name, None, node))
        return nodes
