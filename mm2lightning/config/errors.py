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
