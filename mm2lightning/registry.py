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
        return self._module_dict.get(key)

    def get_or_raise(self, key: str) -> Any:
        """Return the class registered under ``key``; raise a helpful error if absent."""
        obj = self._module_dict.get(key)
        if obj is None:
            close = difflib.get_close_matches(key, list(self._module_dict), n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(repr(c) for c in close)}?" if close else ""
            raise RegistryError(
                f"{key!r} is not registered in the {self._name!r} registry.{hint} "
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
            raise TypeError(f"force must be a bool, but got {type(force).__name__}")
        if not (name is None or isinstance(name, str) or (isinstance(name, list) and all(isinstance(n, str) for n in name))):
            raise TypeError(f"name must be None, a str or a list of str, but got {name!r}")
        if module is not None:
            self._register(module, name, force)
            return module

        def decorator(obj: Any) -> Any:
            self._register(obj, name, force)
            return obj

        return decorator

    def _register(self, module: Any, name: str | list[str] | None, force: bool) -> None:
        if not callable(module):
            raise TypeError(f"only a class or function can be registered, but got {module!r}")
        names = [module.__name__] if name is None else [name] if isinstance(name, str) else name
        for key in names:
            if not force and key in self._module_dict and self._module_dict[key] is not module:
                raise RegistryError(
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
        f"({obj_type!r}) for the {registry.name!r} registry"
    )


def _merge_args(cfg: Mapping[str, Any], default_args: Mapping[str, Any] | None, registry: Registry) -> dict[str, Any]:
    if not isinstance(cfg, Mapping):
        raise TypeError(f"a {registry.name} config must be a dict, but got {type(cfg).__name__}: {cfg!r}")
    if default_args is not None and not isinstance(default_args, Mapping):
        raise TypeError(f"default_args must be a dict or None, but got {type(default_args).__name__}")
    args = dict(cfg)
    for key, value in (default_args or {}).items():
        args.setdefault(key, value)
    if "type" not in args:
        raise RegistryError(
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
    default_args = dict(default_args or {})
    epoch_length = default_args.pop("epoch_length", None)
    args = _merge_args(cfg, default_args, registry)
    if not args.pop("convert_to_iter_based", False):
        return _construct(_resolve_type(args, registry), args)
    if not args.get("by_epoch", True):
        raise ValueError(
            "convert_to_iter_based=True only applies to by_epoch=True schedulers; "
            f"got by_epoch=False in {dict(cfg)!r}"
        )
    if epoch_length is None or epoch_length <= 0:
        raise ValueError(
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
