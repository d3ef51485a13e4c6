"""Merging a child config into its base, and dotted-key overrides into a config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mm2lightning.config.errors import ConfigError, ConfigKeyError, ConfigTypeError, short_repr

DELETE_KEY = "_delete_"


def merge_into(src: Mapping[Any, Any], dst: Any, allow_list_keys: bool = False, prefix: str = "") -> Any:
    """Return ``dst`` with ``src`` merged in, as MMEngine's ``Config._merge_a_into_b``.

    Dicts merge recursively, other values (lists included) replace. A dict in
    ``src`` with ``_delete_=True`` replaces the dict in ``dst`` instead of
    merging. With ``allow_list_keys``, digit keys (``'0'``) address the items
    of a list in ``dst``. The inputs are not modified.

    Args:
        src: The overriding values (the child config).
        dst: The values to override (the base config): a dict, or a list when
            ``allow_list_keys`` is set.
        allow_list_keys: Whether digit keys index into lists.
        prefix: The dotted path of ``dst``, for error messages.

    Raises:
        ConfigError: A dict would merge into a non-dict, or a list index is
            invalid.
    """
    merged: Any = list(dst) if isinstance(dst, list) else dict(dst)
    for key, value in src.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(merged, list):
            index = _list_index(key, merged, path)
            merged[index] = _merge_value(value, merged[index], allow_list_keys, path)
        elif key in merged:
            merged[key] = _merge_value(value, merged[key], allow_list_keys, path)
        else:
            merged[key] = strip_delete(value)
    return merged


def _merge_value(value: Any, current: Any, allow_list_keys: bool, path: str) -> Any:
    """Merge one ``value`` over the existing ``current`` value at ``path``."""
    if not isinstance(value, Mapping):
        return value
    value = dict(value)
    if value.pop(DELETE_KEY, False):
        return strip_delete(value)
    mergeable = (dict, list) if allow_list_keys else dict
    if not isinstance(current, mergeable):
        raise ConfigTypeError(
            f"cannot merge a dict into '{path}': it is a {type(current).__name__} ({short_repr(current)}), not a dict; "
            f"set {DELETE_KEY}=True in the dict to replace it (in child config cannot inherit from base because "
            f"{path.rsplit('.', 1)[-1]} is a dict in the child config but is of type {type(current)} in base config)"
        )
    return merge_into(value, current, allow_list_keys, path)


def _list_index(key: Any, items: list[Any], path: str) -> int:
    """Return the list index that ``key`` names, or raise for a non-digit or out-of-range key."""
    if not (isinstance(key, str) and key.isdigit()):
        raise ConfigTypeError(
            f"cannot set '{path}': the parent is a list, so the key must be an index "
            f"(list indices must be integers or slices, not {type(key).__name__})"
        )
    if int(key) >= len(items):
        raise ConfigKeyError(
            f"cannot set '{path}': index {key} is out of range for a list of length {len(items)} "
            f"(Index {key} exceeds the length of list {short_repr(items)})"
        )
    return int(key)


def strip_delete(value: Any) -> Any:
    """Return ``value`` without ``_delete_`` keys in it or its nested dicts."""
    if not isinstance(value, Mapping):
        return value
    return {key: strip_delete(item) for key, item in value.items() if key != DELETE_KEY}


def options_to_tree(options: Mapping[str, Any]) -> dict[str, Any]:
    """Turn dotted keys (``{'model.backbone.depth': 50}``) into nested dicts.

    Raises:
        ConfigError: A key is not a string or has an empty part (``'a..b'``).
    """
    tree: dict[str, Any] = {}
    for full_key, value in options.items():
        if not isinstance(full_key, str) or "" in full_key.split("."):
            raise ConfigError(f"invalid override key {full_key!r}: expected dotted names like 'model.backbone.depth'")
        *parents, last = full_key.split(".")
        node = tree
        for depth, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, Mapping):
                conflict = ".".join(parents[: depth + 1])
                raise ConfigError(f"override keys {conflict!r} and {full_key!r} conflict: {conflict!r} is not a dict")
            node[part] = dict(child)
            node = node[part]
        node[last] = value
    return tree
