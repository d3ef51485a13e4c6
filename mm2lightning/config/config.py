"""``Config``: a config file's dict with attribute access, as ``mmengine.config.Config``."""

from __future__ import annotations

import copy
import os
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from pathlib import Path
from typing import Any

from mm2lightning.config.config_dict import ConfigDict
from mm2lightning.config.custom_imports import import_custom_modules as _import_custom_modules
from mm2lightning.config.dumping import dump_text, to_python
from mm2lightning.config.errors import ConfigError, ConfigKeyError, ConfigParsingError, ConfigTypeError
from mm2lightning.config.lazy import LazyInfo, is_lazy_text, load_lazy
from mm2lightning.config.loader import SUFFIXES, load_file, load_text
from mm2lightning.config.merge import merge_into, options_to_tree

RESERVED_KEYS = frozenset({"filename", "text", "pretty_text", "env_variables"})


class Config:
    """A config: a :class:`ConfigDict` plus the file it came from.

    Keys are items and attributes (``cfg['model']``, ``cfg.model.type``).

    Args:
        cfg_dict: The config values. Defaults to an empty dict.
        filename: The file the config was read from, if any.

    Raises:
        ConfigError: ``cfg_dict`` uses a key reserved for MMEngine's ``Config``
            attributes (``filename``, ``text``, ``pretty_text``, ``env_variables``).

    Example:
        >>> cfg = Config(dict(model=dict(type='ResNet', depth=50)))
        >>> cfg.merge_from_dict({'model.depth': 101})
        >>> cfg.model.depth
        101
    """

    def __init__(
        self, cfg_dict: Mapping[str, Any] | None = None, filename: str | os.PathLike[str] | None = None
    ) -> None:
        if cfg_dict is None:
            cfg_dict = ConfigDict()
        elif not isinstance(cfg_dict, Mapping):
            raise TypeError(f"cfg_dict must be a dict, got {type(cfg_dict).__name__} (cfg_dict must be a dict, but got {type(cfg_dict)})")
        reserved = sorted(RESERVED_KEYS & set(cfg_dict))
        if reserved:
            raise ConfigKeyError(
                f"config key {reserved[0]!r} is reserved (a Config attribute; {reserved[0]} is reserved for config file); "
                "rename it"
            )
        object.__setattr__(self, "_cfg_dict", cfg_dict if isinstance(cfg_dict, ConfigDict) else ConfigDict(cfg_dict))
        object.__setattr__(self, "_filename", None if filename is None else str(filename))
        object.__setattr__(self, "_lazy", None)  # a LazyInfo for lazy-import configs

    def _with_lazy(self, lazy: LazyInfo | None) -> Config:
        """Set what ``to_dict`` of a lazy-import config needs; return ``self``."""
        object.__setattr__(self, "_lazy", lazy)
        return self

    @staticmethod
    def fromfile(
        filename: str | os.PathLike[str],
        cfg_options: Mapping[str, Any] | None = None,
        import_custom_modules: bool = True,
        lazy_import: bool | None = None,
    ) -> Config:
        """Read a ``.py``, ``.yaml``/``.yml`` or ``.json`` config and its ``_base_`` chain.

        A ``.py`` config is executed as Python code (as in MMEngine): load
        only files you trust. Its top-level variables become keys, except names
        starting with ``__`` and names bound to modules or Python functions
        (imported classes, e.g. ``type=SGD``, are kept). YAML is read with
        ``yaml.SafeLoader``: no Python object tags, except ``!!python/tuple``
        (MMEngine's YAML dumps write tuples so).

        ``_base_`` (a path or list of paths, relative to the file, any of the
        three formats) names configs to inherit: the child's dicts merge into
        the bases' dicts (``_delete_=True`` replaces instead), other values,
        lists included, replace. ``{{_base_.key}}`` is replaced by a base
        value, and a ``.py`` config can read ``_base_.key``. ``{{ fileDirname }}``,
        ``{{ fileBasename }}``, ``{{ fileBasenameNoExtension }}``,
        ``{{ fileExtname }}`` and ``{{$ENV_VAR:default}}`` are substituted as in
        MMEngine. A base ``'pkg::folder/cfg.py'`` is a config bundled with the
        installed package ``pkg`` (``<pkg>/.mim/configs/folder/cfg.py``), as in
        MMEngine (see :mod:`mm2lightning.config.package_configs`); such a path
        is not read by ``fromfile`` itself, as in MMEngine.

        A ``.py`` config in MMEngine's lazy-import style (``with read_base():``
        bases, or imports of non-standard-library modules before any
        ``_base_``) is read as MMEngine reads it; see
        :mod:`mm2lightning.config.lazy` for what that means and what differs.

        Args:
            filename: The config file.
            cfg_options: Dotted-key overrides applied with
                :meth:`merge_from_dict` (e.g. from :func:`parse_cfg_options`).
            import_custom_modules: Import the modules of a
                ``custom_imports=dict(imports=[...], allow_failed_imports=False)``
                key, as MMEngine does, so that they register their classes
                (not for lazy-import configs, as in MMEngine).
            lazy_import: As MMEngine's: ``None`` decides from the file,
                ``True`` reads it as a lazy-import config, ``False`` as a
                ``_base_``-style one (imports are then plain code).

        Raises:
            ConfigError: The file or a base is missing, has an unsupported
                suffix or invalid content, the bases are circular or share a
                key, or an override does not apply.
            ImportError: A ``custom_imports`` module cannot be imported.
        """
        path = Path(filename)
        text = path.read_text(encoding="utf-8") if path.suffix == ".py" and path.is_file() else None
        try:
            lazy = text is not None and (lazy_import or (lazy_import is None and is_lazy_text(text)))
        except ConfigParsingError as error:
            raise ConfigParsingError(f"{path}: {error}") from None
        if lazy and text is not None:
            values, info = load_lazy(text, path, path.expanduser().resolve().parent)
            cfg = Config(values, filename=filename)._with_lazy(info)
            if cfg_options:
                cfg.merge_from_dict(cfg_options)
            return cfg
        cfg = Config(load_file(filename, lazy_import), filename=filename)
        if import_custom_modules and cfg.get("custom_imports"):
            _import_custom_modules(cfg["custom_imports"])
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        return cfg

    @staticmethod
    def fromstring(cfg_str: str, file_format: str) -> Config:
        """Read config text of ``file_format`` (``'.py'``, ``'.yaml'``, ``'.yml'`` or ``'.json'``).

        As :meth:`fromfile`; ``_base_`` paths (and relative imports of a
        lazy-import config) are relative to the working directory.
        """
        if file_format == ".py" and is_lazy_text(cfg_str):
            values, info = load_lazy(cfg_str, None, Path.cwd())
            return Config(values)._with_lazy(info)
        return Config(load_text(cfg_str, file_format))

    @property
    def filename(self) -> str | None:
        """The file the config was read from, or ``None``."""
        return self._filename

    @property
    def pretty_text(self) -> str:
        """The config as Python config text (values without a literal form shown by ``repr``)."""
        return to_python(self.to_dict(), strict=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the config as plain, nested dicts.

        For a lazy-import config, as MMEngine: imported objects are written as
        their import path (``'torch.optim.SGD'``) and top-level imported names
        are left out.
        """
        if self._lazy is not None:
            return self._lazy.to_dict(self._cfg_dict)
        return self._cfg_dict.to_dict()

    def merge_from_dict(self, options: Mapping[str, Any], allow_list_keys: bool = True) -> None:
        """Merge dotted-key overrides into the config, as MMEngine's.

        Missing dicts on the path are created; digit parts index lists when
        ``allow_list_keys`` (``{'model.layers.0.depth': 3}``).

        Example:
            >>> cfg = Config(dict(optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01))))
            >>> cfg.merge_from_dict({'optim_wrapper.optimizer.lr': 0.1})
            >>> cfg.optim_wrapper.optimizer.lr
            0.1

        Raises:
            ConfigError: A key goes through a value that is not a dict (or
                list), or a list index is out of range.
        """
        merged = merge_into(options_to_tree(options), self._cfg_dict, allow_list_keys)
        object.__setattr__(self, "_cfg_dict", ConfigDict(merged))

    def dump(self, file: str | os.PathLike[str] | None = None) -> str | None:
        """Write the config to ``file`` (``.py``, ``.yaml``/``.yml`` or ``.json``), or return its text.

        Without ``file`` the text has the format of :attr:`filename` (YAML when
        there is none). YAML and JSON hold tuples as lists; ``.py`` writes
        classes and functions as ``module.name`` with imports.

        A lazy-import config is written as :meth:`to_dict` gives it, as MMEngine.

        Raises:
            ConfigTypeError: The suffix is unsupported (a ``TypeError``, as MMEngine's).
            ConfigError: A value (named by its key) cannot be written in that format.
        """
        target = file if file is not None else self._filename or "config.yaml"
        if Path(target).suffix not in SUFFIXES:
            raise ConfigTypeError(
                f"unsupported config format for dumping to {target}: the suffix must be one of {', '.join(SUFFIXES)} "
                f"(Unsupported format: {str(target).split('.')[-1]})"
            )
        text = dump_text(self.to_dict() if self._lazy is not None else self._cfg_dict, Path(target).suffix)
        if file is None:
            return text
        Path(file).write_text(text, encoding="utf-8")
        return None

    def get(self, key: str, default: Any = None) -> Any:
        """Return ``self[key]``, or ``default`` when missing."""
        return self._cfg_dict.get(key, default)

    def keys(self) -> KeysView[str]:
        """The top-level keys."""
        return self._cfg_dict.keys()

    def values(self) -> ValuesView[Any]:
        """The top-level values."""
        return self._cfg_dict.values()

    def items(self) -> ItemsView[str, Any]:
        """The top-level ``(key, value)`` pairs."""
        return self._cfg_dict.items()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_cfg_dict", "_filename", "_lazy"):
            raise AttributeError(name)
        return getattr(self._cfg_dict, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._cfg_dict[name] = value

    def __delattr__(self, name: str) -> None:
        delattr(self._cfg_dict, name)

    def __getitem__(self, key: str) -> Any:
        return self._cfg_dict[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._cfg_dict[key] = value

    def __delitem__(self, key: str) -> None:
        del self._cfg_dict[key]

    def __contains__(self, key: object) -> bool:
        return key in self._cfg_dict

    def __iter__(self) -> Iterator[str]:
        return iter(self._cfg_dict)

    def __len__(self) -> int:
        return len(self._cfg_dict)

    def __copy__(self) -> Config:
        return Config(self._cfg_dict.copy(), self._filename)._with_lazy(self._lazy)

    copy = __copy__

    def __deepcopy__(self, memo: dict[int, Any]) -> Config:
        return Config(copy.deepcopy(self._cfg_dict, memo), self._filename)._with_lazy(self._lazy)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._cfg_dict, self._filename, self._lazy))

    def __repr__(self) -> str:
        return f"Config (path: {self._filename}): {self._cfg_dict!r}"


def _rebuild(cfg_dict: ConfigDict, filename: str | None, lazy: LazyInfo | None = None) -> Config:
    """Unpickle a :class:`Config`."""
    return Config(cfg_dict, filename)._with_lazy(lazy)
