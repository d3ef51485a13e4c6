"""Build optim wrappers from config dicts, with MMEngine's ``paramwise_cfg`` param groups."""

from __future__ import annotations

import inspect
import logging
import numbers
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from mm2lightning.errors import AssertValueError
from mm2lightning.optim.optim_wrapper import OptimWrapper
from mm2lightning.optim.optim_wrapper_dict import OptimWrapperDict
from mm2lightning.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS

log = logging.getLogger(__name__)

_NORM_LAYERS = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)
_MULT_KEYS = (
    "bias_lr_mult",
    "bias_decay_mult",
    "norm_decay_mult",
    "dwconv_decay_mult",
    "flat_decay_mult",
    "dcn_offset_lr_mult",
)
# The paramwise_cfg keys DefaultOptimWrapperConstructor reads (and validates); others belong to subclasses.
_PARAMWISE_KEYS = frozenset({"custom_keys", "bypass_duplicate", *_MULT_KEYS})
# Keys of a custom_keys entry, misplaced at the top level: refused by the default constructor.
_MISPLACED_KEYS = frozenset({"lr_mult", "decay_mult"})
# mmcv.ops' deformable convolutions, as MMEngine's ``isinstance(module, (DeformConv2d, ModulatedDeformConv2d))``
# sees them when mmcv-full is installed; matched by class name along the MRO, so mmcv is never imported.
_DCN_CLASS_NAMES = frozenset({"DeformConv2d", "ModulatedDeformConv2d"})
# Keys that only make sense in a single wrapper's config (used to tell "missing optimizer" apart).
_WRAPPER_KEYS = frozenset({"type", "accumulative_counts", "clip_grad", "loss_scale", "dtype", "paramwise_cfg"})


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DefaultOptimWrapperConstructor:
    """Builds an optimizer (with per-parameter options) and its wrapper, as in MMEngine.

    Without ``paramwise_cfg`` the optimizer gets ``model.parameters()`` as one
    group. With it, every trainable parameter gets its own group, set by (first
    match wins) ``custom_keys`` (substring of the parameter's full name; longer
    keys first, then alphabetical; ``lr_mult``/``decay_mult`` and every other
    entry are copied into the group), else ``bias_lr_mult``, and for weight
    decay, in order, ``norm_decay_mult``, ``bias_decay_mult``,
    ``dwconv_decay_mult``, ``flat_decay_mult``. ``dcn_offset_lr_mult`` sets the
    lr of the ``conv_offset`` ``Conv2d`` children of deformable convolutions
    (mmcv's ``DeformConv2d``/``ModulatedDeformConv2d`` and their subclasses,
    recognised by class name, so mmcv need not be importable); as in MMEngine,
    the direct children of such a layer take neither ``bias_lr_mult`` nor
    ``bias_decay_mult``/``flat_decay_mult``. ``bypass_duplicate`` skips shared
    parameters.

    Only the keys above are validated here. Other keys are left to subclasses
    (which read ``self.paramwise_cfg`` themselves); with this class itself, no
    one reads them, so they are reported in one warning, except ``lr_mult`` and
    ``decay_mult``, which belong inside a ``custom_keys`` entry and are refused.

    Args:
        optim_wrapper_cfg: The wrapper config; must contain ``optimizer``.
        paramwise_cfg: Per-parameter options, or ``None``.
    """

    def __init__(self, optim_wrapper_cfg: dict[str, Any], paramwise_cfg: dict[str, Any] | None = None) -> None:
        if not isinstance(optim_wrapper_cfg, Mapping):
            raise TypeError(
                f"optim_wrapper_cfg must be a dict, but got {type(optim_wrapper_cfg).__name__} "
                "(optimizer_cfg should be a dict)"
            )
        if "optimizer" not in optim_wrapper_cfg:
            raise AssertValueError(
                '`optim_wrapper_cfg` must contain "optimizer" config: an optim_wrapper config must contain '
                "'optimizer', e.g. dict(optimizer=dict(type='SGD', lr=0.01)); got keys "
                f"{sorted(optim_wrapper_cfg)}"
            )
        self.optim_wrapper_cfg = dict(optim_wrapper_cfg)
        self.optimizer_cfg = self.optim_wrapper_cfg.pop("optimizer")
        self.paramwise_cfg = {} if paramwise_cfg is None else paramwise_cfg
        if not isinstance(self.optimizer_cfg, (Mapping, torch.optim.Optimizer)):
            raise TypeError(
                "'optimizer' must be a config dict with 'type' or a torch.optim.Optimizer, "
                f"but got {type(self.optimizer_cfg).__name__}"
            )
        is_cfg = isinstance(self.optimizer_cfg, Mapping)
        self.base_lr = self.optimizer_cfg.get("lr") if is_cfg else None
        self.base_wd = self.optimizer_cfg.get("weight_decay") if is_cfg else None
        self._validate_paramwise_cfg(is_cfg)

    def _validate_paramwise_cfg(self, optimizer_is_cfg: bool) -> None:
        cfg = self.paramwise_cfg
        if not isinstance(cfg, Mapping):
            raise TypeError(
                f"paramwise_cfg must be None or a dict, but got {type(cfg).__name__} "
                "(paramwise_cfg should be None or a dict)"
            )
        if cfg and not optimizer_is_cfg:
            raise ValueError("paramwise_cfg needs 'optimizer' as a config dict, not a built optimizer")
        if type(self) is DefaultOptimWrapperConstructor:
            self._check_unread_keys()
        for key in _MULT_KEYS:
            _check_mult(f"paramwise_cfg[{key!r}]", cfg.get(key))
        bypass = cfg.get("bypass_duplicate")
        if bypass is not None and not isinstance(bypass, int):
            raise TypeError(f"paramwise_cfg['bypass_duplicate'] must be a bool, but got {bypass!r}")
        custom_keys = cfg.get("custom_keys", {})
        if not isinstance(custom_keys, Mapping) or not all(isinstance(v, Mapping) for v in custom_keys.values()):
            raise TypeError(
                "If specified, custom_keys must be a dict: paramwise_cfg['custom_keys'] must be a dict of "
                f"name -> dict, but got {custom_keys!r}"
            )
        for name, options in custom_keys.items():
            for key in ("lr_mult", "decay_mult"):
                if key in options:
                    _check_mult(f"paramwise_cfg['custom_keys'][{name!r}][{key!r}]", options[key], allow_none=False)
        uses_decay = [f"custom_keys[{k!r}]" for k, v in custom_keys.items() if "decay_mult" in v]
        uses_decay += [k for k in ("bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult") if k in cfg]
        if uses_decay and self.base_wd is None:
            raise ValueError(
                f"{', '.join(uses_decay)} set a decay multiplier, but the optimizer has no weight_decay "
                "(base_wd should not be None)"
            )
        uses_lr = [f"custom_keys[{k!r}]" for k, v in custom_keys.items() if "lr_mult" in v]
        uses_lr += [k for k in ("bias_lr_mult", "dcn_offset_lr_mult") if cfg.get(k) is not None]
        if uses_lr and self.base_lr is None:
            raise ValueError(f"{', '.join(uses_lr)} set an lr multiplier, but the optimizer config has no 'lr'")

    def _check_unread_keys(self) -> None:
        """With this class itself nobody reads keys outside ``_PARAMWISE_KEYS``: refuse misplaced
        ``custom_keys`` options, warn (once, naming them all) about the rest."""
        unknown = sorted(set(self.paramwise_cfg) - _PARAMWISE_KEYS)
        misplaced = [k for k in unknown if k in _MISPLACED_KEYS]
        if misplaced:
            raise ValueError(
                f"paramwise_cfg has unknown keys {misplaced}: lr_mult and decay_mult go inside a custom_keys "
                "entry, e.g. custom_keys={'backbone': dict(lr_mult=0.1)}; the keys of paramwise_cfg are "
                f"{sorted(_PARAMWISE_KEYS)}"
            )
        if unknown:
            warnings.warn(
                f"paramwise_cfg has keys {unknown} that DefaultOptimWrapperConstructor does not use, so they "
                f"are ignored (its keys are {sorted(_PARAMWISE_KEYS)}; a constructor subclass, set with "
                "optim_wrapper=dict(constructor=...), may read its own)",
                UserWarning,
                stacklevel=4,
            )

    def add_params(
        self,
        params: list[dict[str, Any]],
        module: nn.Module,
        prefix: str = "",
        is_dcn_module: int | float | bool | None = None,
    ) -> None:
        """Append one param group per trainable parameter of ``module`` (recursively) to ``params``.

        Args:
            params: The param groups, extended in place.
            module: The module whose parameters are added.
            prefix: The module's name in the model.
            is_dcn_module: Whether ``module``'s parent is a deformable convolution (set by the
                recursion, as in MMEngine, which recurses through ``self.add_params``).
        """
        cfg = self.paramwise_cfg
        custom_keys = cfg.get("custom_keys", {})
        sorted_keys = sorted(sorted(custom_keys), key=len, reverse=True)
        bypass_duplicate = cfg.get("bypass_duplicate", False)
        dcn_offset_lr_mult = cfg.get("dcn_offset_lr_mult")
        seen = {id(p) for group in params for p in group["params"]} if bypass_duplicate else set()
        is_norm = isinstance(module, _NORM_LAYERS)
        is_dwconv = isinstance(module, nn.Conv2d) and module.in_channels == module.groups
        for name, param in module.named_parameters(recurse=False):
            full_name = f"{prefix}.{name}" if prefix else name
            if bypass_duplicate and id(param) in seen:
                log.warning("%s is a duplicate; skipped since bypass_duplicate=True", full_name)
                continue
            if not param.requires_grad:
                log.warning("%s is skipped since its requires_grad=False", full_name)
                continue
            group: dict[str, Any] = {"params": [param]}
            key = next((k for k in sorted_keys if k in f"{prefix}.{name}"), None)
            if key is not None:
                group["lr"] = self.base_lr * custom_keys[key].get("lr_mult", 1.0)
                if self.base_wd is not None:
                    group["weight_decay"] = self.base_wd * custom_keys[key].get("decay_mult", 1.0)
                group.update(custom_keys[key])
            else:
                if name == "bias" and not (is_norm or is_dcn_module) and cfg.get("bias_lr_mult") is not None:
                    group["lr"] = self.base_lr * cfg["bias_lr_mult"]
                if (
                    "conv_offset" in prefix
                    and is_dcn_module
                    and dcn_offset_lr_mult is not None
                    and isinstance(module, nn.Conv2d)
                ):
                    group["lr"] = self.base_lr * dcn_offset_lr_mult
                decay_mult = self._decay_mult(name, param, is_norm, is_dwconv, bool(is_dcn_module))
                if self.base_wd is not None and decay_mult is not None:
                    group["weight_decay"] = self.base_wd * decay_mult
            params.append(group)
            seen.add(id(param))
            for option, value in group.items():
                if option != "params":
                    log.info("paramwise_options -- %s:%s=%s", full_name, option, value)
        is_dcn = _is_deform_conv(module)
        for child_name, child in module.named_children():
            self.add_params(params, child, f"{prefix}.{child_name}" if prefix else child_name, is_dcn_module=is_dcn)

    def _decay_mult(
        self, name: str, param: nn.Parameter, is_norm: bool, is_dwconv: bool, is_dcn_module: bool = False
    ) -> float | None:
        cfg = self.paramwise_cfg
        if is_norm and cfg.get("norm_decay_mult") is not None:
            return cfg["norm_decay_mult"]
        if name == "bias" and not is_dcn_module and cfg.get("bias_decay_mult") is not None:
            return cfg["bias_decay_mult"]
        if is_dwconv and cfg.get("dwconv_decay_mult") is not None:
            return cfg["dwconv_decay_mult"]
        if param.ndim == 1 and not is_dcn_module and cfg.get("flat_decay_mult") is not None:
            return cfg["flat_decay_mult"]
        return None

    def __call__(self, model: nn.Module) -> OptimWrapper:
        model = getattr(model, "module", model)
        wrapper_cfg = dict(self.optim_wrapper_cfg)
        wrapper_cfg.setdefault("type", "OptimWrapper")
        if isinstance(self.optimizer_cfg, torch.optim.Optimizer):
            return OPTIM_WRAPPERS.build(wrapper_cfg, default_args={"optimizer": self.optimizer_cfg})
        optimizer_cfg = dict(self.optimizer_cfg)
        if "type" not in optimizer_cfg:
            raise ValueError(f"the optimizer config needs a 'type' (e.g. 'SGD'), but got {optimizer_cfg!r}")
        optimizer_cls = optimizer_cfg["type"]
        if isinstance(optimizer_cls, str):
            optimizer_cls = OPTIMIZERS.get_or_raise(optimizer_cls)
        first_arg = next(iter(inspect.signature(optimizer_cls).parameters))
        if self.paramwise_cfg:
            params: list[dict[str, Any]] = []
            self.add_params(params, model)
            optimizer_cfg[first_arg] = params
        else:
            optimizer_cfg[first_arg] = model.parameters()
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        return OPTIM_WRAPPERS.build(wrapper_cfg, default_args={"optimizer": optimizer})


def _check_mult(what: str, value: Any, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number, but got {value!r}")


def _is_deform_conv(module: nn.Module) -> bool:
    """MMEngine's DCN test (``isinstance`` of mmcv.ops' deformable convs), by class name along the MRO."""
    return any(cls.__name__ in _DCN_CLASS_NAMES for cls in type(module).__mro__)


def _is_mmengine_constructor(constructor_type: Any) -> bool:
    """Whether a constructor class is written against mmengine's (a toolbox's, such as mmpretrain's)."""
    return any(
        cls.__name__ == "DefaultOptimWrapperConstructor" and cls.__module__.startswith("mmengine.")
        for cls in getattr(constructor_type, "__mro__", ())
    )


def _build_one(model: nn.Module, cfg: Mapping[str, Any]) -> OptimWrapper:
    cfg = dict(cfg)
    constructor_type = cfg.pop("constructor", "DefaultOptimWrapperConstructor")
    paramwise_cfg = cfg.pop("paramwise_cfg", None)
    if isinstance(constructor_type, str):
        constructor_type = OPTIM_WRAPPER_CONSTRUCTORS.get_or_raise(constructor_type)
    if _is_mmengine_constructor(constructor_type):
        # A toolbox's constructor builds the optimizer its way and then the wrapper from cfg['type']: ours.
        wrapper_type = cfg.get("type", "OptimWrapper")
        cfg["type"] = OPTIM_WRAPPERS.get_or_raise(wrapper_type) if isinstance(wrapper_type, str) else wrapper_type
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        {"type": constructor_type, "optim_wrapper_cfg": cfg, "paramwise_cfg": paramwise_cfg}
    )
    return constructor(model)


def _build_per_submodule(model: nn.Module, cfg: Mapping[str, Any]) -> OptimWrapperDict:
    model = getattr(model, "module", model)
    wrappers: dict[str, OptimWrapper] = {}
    for name, sub_cfg in cfg.items():
        if isinstance(sub_cfg, OptimWrapper):
            wrappers[name] = sub_cfg
            continue
        if not isinstance(sub_cfg, Mapping):
            raise TypeError(
                f"optim_wrapper[{name!r}] must be an OptimWrapper or a wrapper config dict, "
                f"but got {type(sub_cfg).__name__}"
            )
        submodule = getattr(model, name, None)
        if not isinstance(submodule, nn.Module):
            children = [n for n, _ in model.named_children()]
            raise ValueError(
                f"optim_wrapper has a config for {name!r}, but the model has no submodule of that name; "
                f"its submodules are {children}"
            )
        wrappers[name] = build_optim_wrapper(submodule, sub_cfg)
    return OptimWrapperDict(**wrappers)


def build_optim_wrapper(model: nn.Module, cfg: Mapping[str, Any] | OptimWrapper) -> OptimWrapper:
    """Build an optim wrapper for ``model``, accepting every form MMEngine's Runner does, and more.

    Args:
        model: The model whose parameters are optimised (``.module`` is unwrapped).
        cfg: One of

            - an ``OptimWrapper`` / ``OptimWrapperDict`` instance: returned as is;
            - a wrapper config with ``optimizer`` (a config dict or a built
              optimizer), optional ``type``, ``paramwise_cfg``, ``constructor``;
            - a dict of name -> wrapper config (or instance): an
              :class:`OptimWrapperDict` whose wrapper ``name`` optimises the
              submodule ``model.<name>`` (MMEngine raises on this form).

    Returns:
        The built wrapper.
    """
    if isinstance(cfg, OptimWrapper):
        return cfg
    if not isinstance(cfg, Mapping):
        raise TypeError(f"optim_wrapper must be a config dict or an OptimWrapper, but got {type(cfg).__name__}")
    if "optimizer" in cfg or "constructor" in cfg:
        return _build_one(model, cfg)
    if not cfg or _WRAPPER_KEYS & set(cfg):
        raise AssertValueError(
            '`optim_wrapper_cfg` must contain "optimizer" config: an optim_wrapper config must contain '
            "'optimizer', e.g. "
            f"dict(optimizer=dict(type='SGD', lr=0.01)); got keys {sorted(cfg)}"
        )
    return _build_per_submodule(model, cfg)
