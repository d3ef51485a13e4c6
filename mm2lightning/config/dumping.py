"""Writing a config dict as YAML, JSON or a Python config file."""

from __future__ import annotations

import json
import keyword
import math
import sys
import types
from collections.abc import Mapping
from typing import Any

import yaml

from mm2lightning.config.errors import ConfigError, short_repr

_SCALARS = (type(None), bool, int, float, str)
_WIDTH = 100
_PLAIN_STYLE_MARK = "_base_ = []"


def dump_text(cfg: Mapping[str, Any], file_format: str) -> str:
    """Return ``cfg`` as the text of a ``file_format`` (``'.py'``, ``'.yaml'``, ``'.yml'``, ``'.json'``) config.

    YAML and JSON hold tuples as lists. Classes and functions are written to
    ``.py`` as ``module.name`` with an ``import module`` line.

    Raises:
        ConfigError: A value (named by its dotted key) cannot be written in
            ``file_format``.
    """
    if file_format == ".py":
        return to_python(cfg, strict=True)
    if file_format == ".json":
        return json.dumps(_portable(cfg, "", "JSON"), indent=2) + "\n"
    return yaml.safe_dump(_portable(cfg, "", "YAML"), sort_keys=False, allow_unicode=True)


def to_python(cfg: Mapping[str, Any], strict: bool) -> str:
    """Return ``cfg`` as Python config text.

    Args:
        cfg: The config dict.
        strict: Raise ``ConfigError`` for a value that would not read back
            equal; otherwise write its ``repr`` (for display).
    """
    writer = _PythonWriter(strict)
    lines = []
    for key, value in cfg.items():
        if strict and not _is_config_name(key):
            raise ConfigError(
                f"cannot dump top-level key {key!r} to Python: it must be an identifier, not '_base_' or '__...'"
            )
        if strict and isinstance(value, types.FunctionType):
            raise ConfigError(f"cannot dump top-level key {key!r} to Python: a .py config drops top-level functions")
        lines.append(f"{key} = {writer.render(value, str(key), 0)}")
    clashes = sorted({name.split(".")[0] for name in writer.imports} & set(cfg))
    if strict and clashes:
        raise ConfigError(f"cannot dump to Python: top-level key {clashes[0]!r} is also the name of an imported module")
    imports = [f"import {name}" for name in sorted(writer.imports)]
    if imports:  # a `_base_` first keeps MMEngine and us from reading the imports in lazy-import style
        imports.insert(0, f"{_PLAIN_STYLE_MARK}  # the imports below are plain code, not lazy imports")
    return "\n".join([*imports, *([""] if imports else []), *lines]) + "\n"


def _is_config_name(key: Any) -> bool:
    """Whether ``key`` can be a top-level variable that ``Config.fromfile`` reads back."""
    return (
        isinstance(key, str)
        and key.isidentifier()
        and not keyword.iskeyword(key)
        and key != "_base_"
        and not key.startswith("__")
    )


class _PythonWriter:
    """Renders values as Python expressions, collecting the modules to import."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.imports: set[str] = set()

    def render(self, value: Any, path: str, indent: int) -> str:
        """Return ``value`` as an expression, on one line if it fits, else one item a line."""
        if isinstance(value, Mapping):
            named = all(isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key) for key in value)
            keys = [f"{key}=" if named else f"{self._key(key, path)}: " for key in value]
            parts = [k + self.render(v, _join(path, key), indent + 4) for k, (key, v) in zip(keys, value.items())]
            return _layout(("dict(", ")") if named else ("{", "}"), parts, indent, tuple_of_one=False)
        if type(value) in (list, tuple):
            parts = [self.render(item, _join(path, index), indent + 4) for index, item in enumerate(value)]
            brackets = ("[", "]") if isinstance(value, list) else ("(", ")")
            return _layout(brackets, parts, indent, tuple_of_one=isinstance(value, tuple) and len(parts) == 1)
        if type(value) is float and not math.isfinite(value):
            return f"float('{value}')"
        if type(value) in _SCALARS:
            return repr(value)
        name = _qualified_name(value)
        if name is not None:
            self.imports.add(name[0])
            return ".".join(name)
        return self._fallback(value, path)

    def _key(self, key: Any, path: str) -> str:
        """Render a dict key of a ``{...}`` literal."""
        return repr(key) if type(key) in _SCALARS else self._fallback(key, path)

    def _fallback(self, value: Any, path: str) -> str:
        """Return ``repr(value)``, or raise when writing strictly."""
        if self.strict:
            raise ConfigError(
                f"cannot dump '{path}' to Python: {short_repr(value)} ({type(value).__name__}) has no importable "
                "name or literal form"
            )
        return short_repr(value)


def _layout(brackets: tuple[str, str], parts: list[str], indent: int, tuple_of_one: bool) -> str:
    """Join rendered items on one line when short enough, else one per line."""
    opening, closing = brackets
    line = opening + ", ".join(parts) + ("," if tuple_of_one else "") + closing
    if "\n" not in line and indent + len(line) <= _WIDTH:
        return line
    body = "".join(f"\n{' ' * (indent + 4)}{part}," for part in parts)
    return f"{opening}{body}\n{' ' * indent}{closing}"


def _qualified_name(value: Any) -> tuple[str, str] | None:
    """Return ``(module, qualname)`` for a class or function, from the shortest module path that gives it back.

    ``torch.optim.sgd.SGD`` becomes ``('torch.optim', 'SGD')``. ``None`` when no
    imported module (reached by attributes from its root package) holds it.
    """
    if not isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        return None
    module_name, qualname = getattr(value, "__module__", None) or "", getattr(value, "__qualname__", "")
    parts = module_name.split(".")
    for end in range(1, len(parts) + 1):
        found: Any = sys.modules.get(parts[0]) if parts[0] != "__main__" else None
        for part in [*parts[1:end], *qualname.split(".")]:
            found = getattr(found, part, None)
        if found is value:
            return ".".join(parts[:end]), qualname
    return None


def _portable(value: Any, path: str, fmt: str) -> Any:
    """Return ``value`` with tuples as lists, checking that ``fmt`` (YAML or JSON) can hold it."""
    if isinstance(value, Mapping):
        for key in value:
            if type(key) not in ((str,) if fmt == "JSON" else _SCALARS):
                kind = type(key).__name__
                raise ConfigError(f"cannot dump key {_join(path, key)!r} to {fmt}: {kind} keys are not allowed")
        return {key: _portable(item, _join(path, key), fmt) for key, item in value.items()}
    if type(value) in (list, tuple):
        return [_portable(item, _join(path, index), fmt) for index, item in enumerate(value)]
    if type(value) not in _SCALARS:
        raise ConfigError(
            f"cannot dump '{path}' to {fmt}: {short_repr(value)} ({type(value).__name__}) is not a {fmt} value; "
            "use a string (e.g. a registry name) or dump to .py"
        )
    return value


def _join(path: str, key: Any) -> str:
    """Extend a dotted key path."""
    return f"{path}.{key}" if path else str(key)

