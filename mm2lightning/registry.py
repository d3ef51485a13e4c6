"""Registries that map config ``type`` names to classes, as in ``mmengine.registry``.

Example:
    >>> from mm2lightning.registry import MODELS
    >>> @MODELS.register_module()
    ... class MyModel(BaseModel): ...
    >>> model = MODELS.build(dict(type='MyModel'))
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from mm2lightning.errors import AssertTypeError, AssertValueError


class RegistryError(KeyError):
    """A name is missing from a registry, or is registered twice."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""


class Registry:
    """A name -> class (or function) mapping with a ``build`` method.

    Args:
        name: What the registry holds, used in error messages (e.g. ``'model'``).
        build_func: Builds an object from a config dict. Defaults to
            :func:`build_from_cfg`.
    """

    def __init__(self, name: str, build_func: Callable[..., Any] | None = None) -> None:
        self._name = name
        self._module_dict: dict[str, Any] = {}
        self._build_func = build_func or build_from_cfg

    @property
    def name(self) -> str:
        return self._name

    @property
    def module_dict(self) -> dict[str, Any]:
        return self._module_dict

    def __len__(self) -> int:
        return len(self._module_dict)

    def __contains__(self, key: str) -> bool:
        return key in self._module_dict

    def __repr__(self) -> str:
        return f"Registry(name={self._name!r}, items={sorted(self._module_dict)})"

    def get(self, key: str) -> Any | None:
        """Return the class registered under ``key``, or ``None``."""
        if not isinstance(key, str):
            raise TypeError(f"The key argument of `Registry.get` must be a str, got {type(key)}")
        return self._module_dict.get(key)

    def get_or_raise(self, key: str) -> Any:
        """Return the class registered under ``key``; raise a helpful error if absent."""
        obj = self._module_dict.get(key)
        if obj is None:
            close = difflib.get_close_matches(key, list(self._module_dict), n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(repr(c) for c in close)}?" if close else ""
            raise RegistryError(
                f"{key!r} is not registered in the {self._name!r} registry.{hint} "
                f"({key} is not in the {self._name} registry. Please check whether the value of "
                f"`{key}` is correct or it was registered as expected.) "
                "Register it with `register_module()` (and import the module that defines it), "
                "or pass the class itself as `type`."
            )
        return obj

    def register_module(
        self, name: str | list[str] | None = None, force: bool = False, module: Any = None
    ) -> Any:
        """Register a class or function, as a decorator or a call.

        Args:
            name: The name(s) to register under. Defaults to ``module.__name__``.
            force: Replace an existing entry of the same name instead of raising.
            module: The object to register. When ``None``, return a decorator.
        """
        if not isinstance(force, bool):
            raise TypeError(f"force must be a boolean, but got {type(force)}")
        if not (
            name is None
            or isinstance(name, str)
            or (isinstance(name, (list, tuple)) and all(isinstance(n, str) for n in name))
        ):
            raise TypeError(
                "name must be None, a str or a list of str (name must be None, an instance of str, "
                f"or a sequence of str), but got {type(name)}: {name!r}"
            )
        if module is not None:
            self._register(module, name, force)
            return module

        def decorator(obj: Any) -> Any:
            self._register(obj, name, force)
            return obj

        return decorator

    def _register(self, module: Any, name: str | list[str] | None, force: bool) -> None:
        if not callable(module):
            raise TypeError(
                f"only a class or function can be registered (module must be Callable, but got {type(module)}): "
                f"{module!r}"
            )
        names = [module.__name__] if name is None else [name] if isinstance(name, str) else list(name)
        for key in names:
            if not force and key in self._module_dict and self._module_dict[key] is not module:
                raise RegistryError(
                    f"{key} is already registered in {self._name} at {self._module_dict[key].__module__}: "
                    f"{key!r} is already registered in the {self._name!r} registry "
                    f"(by {self._module_dict[key]!r}); pass force=True to replace it."
                )
            self._module_dict[key] = module

    def build(self, cfg: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        """Build an object from ``cfg``; ``cfg['type']`` is a registered name or a class."""
        return self._build_func(cfg, *args, **kwargs, registry=self)


def _resolve_type(args: dict[str, Any], registry: Registry) -> Any:
    obj_type = args.pop("type")
    if isinstance(obj_type, str):
        return registry.get_or_raise(obj_type)
    if callable(obj_type):
        return obj_type
    raise TypeError(
        f"`type` must be a registered name or a class, but got {type(obj_type).__name__} "
        f"({obj_type!r}) for the {registry.name!r} registry (type must be a str or valid type, "
        f"but got {type(obj_type)})"
    )


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
    args.pop("_scope_", None)
    return _construct(_resolve_type(args, registry), args)


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


MODELS = Registry("model", build_func=build_model_from_cfg)
MODEL_WRAPPERS = Registry("model wrapper")
OPTIMIZERS = Registry("optimizer")
OPTIM_WRAPPERS = Registry("optimizer wrapper")
OPTIM_WRAPPER_CONSTRUCTORS = Registry("optimizer wrapper constructor")
PARAM_SCHEDULERS = Registry("parameter scheduler", build_func=build_scheduler_from_cfg)
METRICS = Registry("metric")
DATASETS = Registry("dataset")
DATA_SAMPLERS = Registry("data sampler")
FUNCTIONS = Registry("function")
HOOKS = Registry("hook")
WEIGHT_INITIALIZERS = Registry("weight initializer")


def _register_torch_optimizers() -> None:
    for name in dir(torch.optim):
        obj = getattr(torch.optim, name)
        if inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer):
            OPTIMIZERS.register_module(name="TorchAdafactor" if name == "Adafactor" else name, module=obj)


_register_torch_optimizers()

__all__ = [
    "DATASETS",
    "DATA_SAMPLERS",
    "FUNCTIONS",
    "HOOKS",
    "METRICS",
    "MODELS",
    "MODEL_WRAPPERS",
    "OPTIMIZERS",
    "OPTIM_WRAPPERS",
    "OPTIM_WRAPPER_CONSTRUCTORS",
    "PARAM_SCHEDULERS",
    "WEIGHT_INITIALIZERS",
    "Registry",
    "RegistryError",
    "build_from_cfg",
    "build_model_from_cfg",
    "build_scheduler_from_cfg",
]
