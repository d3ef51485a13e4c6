"""Command-line overrides (``KEY=VALUE``), parsed as MMEngine's ``DictAction``."""

from __future__ import annotations

import argparse
import copy
from collections.abc import Iterable, Sequence
from typing import Any

from mm2lightning.config.errors import ConfigError

_PAIRS = {"(": ")", "[": "]"}


def parse_cfg_options(options: str | Iterable[str]) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` strings into a dict for :meth:`Config.merge_from_dict`.

    Values are parsed as MMEngine's ``DictAction``: ints, floats,
    ``True``/``False`` (any case), ``None``, ``[...]`` lists and ``(...)``
    tuples (nested too), comma-separated values as a list, and otherwise
    strings; quotes around a value or an item are stripped.

    Example:
        >>> parse_cfg_options(['optim_wrapper.optimizer.lr=0.1', 'model.depths=[2,2]'])
        {'optim_wrapper.optimizer.lr': 0.1, 'model.depths': [2, 2]}

    Raises:
        ConfigError: An option has no ``=``, an empty key or key part, or
            unbalanced brackets.
    """
    parsed: dict[str, Any] = {}
    for option in [options] if isinstance(options, str) else options:
        key, sep, value = option.partition("=")
        key = key.strip()
        if not sep or "" in key.split("."):
            raise ConfigError(f"invalid option {option!r}: expected KEY=VALUE, e.g. 'optim_wrapper.optimizer.lr=0.01'")
        _check_brackets(value, option)
        parsed[key] = parse_value(value)
    return parsed


def parse_value(text: str) -> Any:
    """Parse one override value (see :func:`parse_cfg_options`); brackets must be balanced."""
    text = text.strip().strip("'\"").strip()
    commas = _top_level_commas(text)
    if not commas and text[:1] in _PAIRS and text[-1:] == _PAIRS[text[0]]:
        items = [parse_value(item) for item in _split(text[1:-1], _top_level_commas(text[1:-1]))]
        return tuple(items) if text[0] == "(" else items
    if commas:
        return [parse_value(item) for item in _split(text, commas)]
    return _parse_scalar(text)


def _parse_scalar(text: str) -> Any:
    """Parse an int, float, bool or ``None``; anything else stays a string."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return None if text == "None" else text


def _top_level_commas(text: str) -> list[int]:
    """Return the positions of the commas outside brackets."""
    commas, depth = [], 0
    for index, char in enumerate(text):
        depth += (char in _PAIRS) - (char in _PAIRS.values())
        if char == "," and depth == 0:
            commas.append(index)
    return commas


def _split(text: str, commas: list[int]) -> list[str]:
    """Split ``text`` at ``commas``; an empty text or a trailing comma adds no item."""
    bounds = [-1, *commas, len(text)]
    items = [text[start + 1 : end] for start, end in zip(bounds, bounds[1:])]
    return items[:-1] if not items[-1] else items


def _check_brackets(value: str, option: str) -> None:
    """Raise ``ConfigError`` when the brackets of ``value`` do not pair up."""
    stack: list[str] = []
    for char in value:
        if char in _PAIRS:
            stack.append(_PAIRS[char])
        elif char in _PAIRS.values() and (not stack or stack.pop() != char):
            stack.append(char)
            break
    if stack:
        raise ConfigError(f"invalid option {option!r}: unbalanced brackets in the value (expected KEY=VALUE)")


class DictAction(argparse.Action):
    """Argparse action collecting ``KEY=VALUE`` arguments into a dict, as MMEngine's.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> _ = parser.add_argument('--cfg-options', nargs='+', action=DictAction)
        >>> parser.parse_args(['--cfg-options', 'a.b=1', 'c=x,y']).cfg_options
        {'a.b': 1, 'c': ['x', 'y']}

    A malformed option raises ``argparse.ArgumentError`` (the parser reports
    it and exits, unless built with ``exit_on_error=False``).
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        options = copy.copy(getattr(namespace, self.dest, None) or {})
        if values is not None:
            try:
                options.update(parse_cfg_options(values))
            except ConfigError as error:
                raise argparse.ArgumentError(self, str(error)) from error
        setattr(namespace, self.dest, options)
