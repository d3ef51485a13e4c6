"""``ConfigDict``: a dict with attribute access, as ``mmengine.config.ConfigDict``."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from mm2lightning.config.merge import merge_into


class ConfigDict(dict):
    """A ``dict`` whose keys are also attributes (``cfg.model.type``).

    Plain dicts stored in it, also inside lists and tuples, become
    ``ConfigDict`` too. A missing attribute raises ``AttributeError``, so
    ``getattr(cfg, 'key', default)`` works. As in MMEngine, :meth:`update`
    merges nested dicts and :meth:`pop` returns ``None`` for a missing key.

    Example:
        >>> cfg = ConfigDict(model=dict(type='ResNet', depth=50))
        >>> cfg.model.depth
        50
    """

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    @classmethod
    def _hook(cls, value: Any) -> Any:
        """Convert plain dicts (also inside plain lists and tuples) to ``ConfigDict``."""
        if type(value) in (dict, OrderedDict):
            return cls(value)
        if type(value) in (list, tuple):
            return type(value)(cls._hook(item) for item in value)
        return value

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'") from None

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, self._hook(value))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __copy__(self) -> ConfigDict:
        return type(self)(self)

    copy = __copy__

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """Return ``self[key]``, first setting it to ``default`` when missing."""
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key: Any, default: Any = None) -> Any:
        """Remove ``key`` and return its value, or ``default`` (``None``) when missing."""
        return super().pop(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Update from a mapping and keywords, merging dicts into existing dicts."""
        if len(args) > 1:
            raise TypeError(f"update only accept one positional argument, but got {len(args)}")
        for key, value in dict(*args, **kwargs).items():
            current = self.get(key)
            if isinstance(current, dict) and isinstance(value, Mapping):
                current.update(value)
            else:
                self[key] = value

    def merge(self, other: Mapping[str, Any]) -> None:
        """Merge ``other`` into this dict in place, honouring ``_delete_=True``."""
        merged = merge_into(other, self)
        self.clear()
        for key, value in merged.items():
            self[key] = value

    def to_dict(self) -> dict[Any, Any]:
        """Return a deep conversion to plain dicts (lists and tuples are rebuilt)."""
        return to_plain(self)


def to_plain(value: Any) -> Any:
    """Convert ``ConfigDict`` values (also nested in dicts, lists and tuples) to plain dicts."""
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(to_plain(item) for item in value)
    return value
