"""The error raised for invalid config files, overrides and dumps, and message helpers."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config file, ``_base_`` chain, override or dump is invalid."""


def one_line(text: object) -> str:
    """``str(text)`` with its whitespace runs (newlines included) collapsed to single spaces."""
    return " ".join(str(text).split())


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)`` on one line, cut to ``limit`` characters."""
    text = one_line(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ConfigErrors that are also the type MMEngine raises for the same misuse (see docs/errors.md).
class ConfigKeyError(ConfigError, KeyError):
    """A ``ConfigError`` where MMEngine raises ``KeyError``."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""


class ConfigTypeError(ConfigError, TypeError):
    """A ``ConfigError`` where MMEngine raises ``TypeError``."""


class ConfigOSError(ConfigError, OSError):
    """A ``ConfigError`` where MMEngine raises ``OSError`` (an unsupported file format)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigFileNotFoundError(ConfigError, FileNotFoundError):
    """A ``ConfigError`` where MMEngine raises ``FileNotFoundError``."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigSyntaxError(ConfigError, SyntaxError):
    """A ``ConfigError`` where MMEngine raises ``SyntaxError``."""

    def __str__(self) -> str:  # SyntaxError's own __str__ reads attributes ValueError's __init__ leaves unset
        return str(self.args[0]) if self.args else ""


class ConfigModuleNotFoundError(ConfigError, ModuleNotFoundError):
    """A ``ConfigError`` where MMEngine raises ``ModuleNotFoundError`` (a ``pkg::`` base of a missing package)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigImportError(ConfigError, ImportError):
    """A ``ConfigError`` where MMEngine raises ``ImportError`` (an import of a lazy-import config fails)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigNameError(ConfigError, NameError):
    """A ``ConfigError`` where MMEngine's code hits ``NameError`` (``{{_base_.x}}`` in a lazy-import config)."""


class ConfigParsingError(ConfigError, RuntimeError):
    """A ``ConfigError`` where MMEngine raises its ``ConfigParsingError`` (a ``RuntimeError``): invalid lazy-import syntax."""
