"""Build functions: a config dict -> an object, resolving ``type`` in the scope's registry (``mmengine.registry``'s)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from mm2lightning.errors import AssertTypeError, AssertValueError
from mm2lightning.registry.registry import Registry, RegistryError


def _resolve_type(args: dict[str, Any], registry: Registry) -> Any:
    obj_type = args.pop("type")
    if isinstance(obj_type, str):
        return registry._get_or_raise(obj_type)  # noqa: SLF001 - `registry` is already the scope's
    if callable(obj_type):
        return _ours_for_mmengine_class(obj_type, registry)
    raise TypeError(
        f"`type` must be a registered name or a class, but got {type(obj_type).__name__} "
        f"({obj_type!r}) for the {registry.name!r} registry (type must be a str or valid type, "
        f"but got {type(obj_type)})"
    )


def _ours_for_mmengine_class(obj_type: Any, registry: Registry) -> Any:
    """A class of MMEngine's own given as ``type`` (lazy-import configs) -> mm2lightning's class of that name."""
    if not getattr(obj_type, "__module__", "").startswith("mmengine."):
        return obj_type
    ours = registry.root.module_dict.get(getattr(obj_type, "__name__", ""))
    return obj_type if ours is None else ours


def _merge_args(
    cfg: Mapping[str, Any],
    default_args: Mapping[str, Any] | None,
    registry: Registry,
    type_error: type[TypeError] = TypeError,
) -> dict[str, Any]:
    # MMEngine's build_from_cfg raises TypeError here; its build_scheduler_from_cfg asserts
    # (type_error=AssertTypeError there).
    if not isinstance(registry, Registry):
        raise type_error(
            "registry must be a mmengine.Registry object (an mm2lightning.registry.Registry; "
            f"registry should be a mmengine.Registry object), but got {type(registry)}"
        )
    if not isinstance(cfg, Mapping):
        raise type_error(
            f"a {registry.name} config must be a dict, but got {type(cfg).__name__}: {cfg!r} "
            f"(cfg should be a dict, ConfigDict or Config, but got {type(cfg)})"
        )
    if default_args is not None and not isinstance(default_args, Mapping):
        raise TypeError(
            "default_args must be a dict or None (default_args should be a dict, ConfigDict, Config or None), "
            f"but got {type(default_args)}"
        )
    args = dict(cfg)
    for key, value in (default_args or {}).items():
        args.setdefault(key, value)
    if "type" not in args:
        raise RegistryError(
            '`cfg` or `default_args` must contain the key "type": '
            f"a {registry.name} config must contain the key 'type' "
            f"(a name registered in the {registry.name!r} registry, or a class), but got keys {sorted(args)}"
        )
    return args


def _construct(obj_cls: Any, args: dict[str, Any]) -> Any:
    try:
        return obj_cls(**args)
    except TypeError as exc:
        name = getattr(obj_cls, "__qualname__", repr(obj_cls))
        raise TypeError(f"{name}: {exc}") from exc


def build_from_cfg(
    cfg: Mapping[str, Any], registry: Registry, default_args: Mapping[str, Any] | None = None
) -> Any:
    """Build an object from a config dict, as ``mmengine.registry.build_from_cfg``.

    ``default_args`` fill keys the config does not set. ``type`` is taken from the
    config or ``default_args``; it is a registered name or a class/callable.
    """
    args = _merge_args(cfg, default_args, registry)
    with registry.switch_scope_and_registry(args.pop("_scope_", None)) as scoped:
        return _construct(_resolve_type(args, scoped), args)


def build_model_from_cfg(
    cfg: Mapping[str, Any] | list[Mapping[str, Any]], registry: Registry, default_args: Mapping[str, Any] | None = None
) -> nn.Module:
    """Build a model; a list of configs becomes an ``nn.Sequential``."""
    if isinstance(cfg, list):
        return nn.Sequential(*(build_from_cfg(c, registry, default_args) for c in cfg))
    return build_from_cfg(cfg, registry, default_args)


def build_scheduler_from_cfg(
    cfg: Mapping[str, Any], registry: Registry, default_args: Mapping[str, Any] | None = None
) -> Any:
    """Build a parameter scheduler, honouring ``convert_to_iter_based``.

    ``default_args`` may hold ``epoch_length`` (iterations per epoch), needed when
    the config sets ``convert_to_iter_based=True``.
    """
    if default_args is not None and not isinstance(default_args, Mapping):
        raise TypeError(
            "default_args must be a dict or None (default_args should be a dict, ConfigDict, Config or None), "
            f"but got {type(default_args)}"
        )
    default_args = dict(default_args or {})
    epoch_length = default_args.pop("epoch_length", None)
    args = _merge_args(cfg, default_args, registry, type_error=AssertTypeError)
    with registry.switch_scope_and_registry(args.pop("_scope_", None)) as scoped:
        return _build_scheduler(cfg, args, scoped, epoch_length)


def _build_scheduler(cfg: Mapping[str, Any], args: dict[str, Any], registry: Registry, epoch_length: Any) -> Any:
    if not args.pop("convert_to_iter_based", False):
        return _construct(_resolve_type(args, registry), args)
    if not args.get("by_epoch", True):
        raise AssertValueError(
            "convert_to_iter_based=True only applies to by_epoch=True schedulers "
            "(Only epoch-based parameter scheduler can be converted to iter-based, and `epoch_length` should be set); "
            f"got by_epoch=False in {dict(cfg)!r}"
        )
    if epoch_length is None or epoch_length <= 0:
        raise AssertValueError(
            "Only epoch-based parameter scheduler can be converted to iter-based, and `epoch_length` should be set: "
            f"convert_to_iter_based=True needs the epoch length (iterations per epoch) as a positive "
            f"`epoch_length` default argument, but got {epoch_length!r}"
        )
    obj_cls = _resolve_type(args, registry)
    args.pop("by_epoch", None)
    return obj_cls.build_iter_from_epoch(**args, epoch_length=epoch_length)
