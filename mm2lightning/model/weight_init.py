"""Weight initialisation, as ``mmengine.model.weight_init``: init functions and ``WEIGHT_INITIALIZERS``.

The functions and initialisers draw from torch's random number generator in the
same order as MMEngine 0.10.7's, so a seeded model gets the same weights bit for
bit. ``Pretrained`` lives in :mod:`mm2lightning.model.pretrained_init`.

Example:
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
    >>> initialize(model, [dict(type='Kaiming', layer='Conv2d'), dict(type='Constant', layer='BatchNorm2d', val=1)])
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mm2lightning.registry import WEIGHT_INITIALIZERS, build_from_cfg


InitCfg = dict[str, Any] | list[dict[str, Any]]

_DISTRIBUTIONS = ("uniform", "normal")


def update_init_info(module: nn.Module, init_info: str) -> None:
    """Record ``init_info`` for the parameters of ``module`` whose mean changed since the last record.

    Args:
        module: A module carrying ``_params_init_info`` (set by :meth:`BaseModule.init_weights`).
        init_info: What initialised the changed parameters.

    Raises:
        AttributeError: ``module`` has no ``_params_init_info``.
        RuntimeError: ``module`` has a parameter that was added during ``init_weights``.
    """
    if not hasattr(module, "_params_init_info"):
        raise AttributeError(f"Can not find `_params_init_info` in {module}")
    for name, param in module.named_parameters():
        if param not in module._params_init_info:
            raise RuntimeError(
                f"Find a new :obj:`Parameter` named `{name}` during executing the `init_weights` of "
                f"`{module.__class__.__name__}`. Please do not add or replace parameters during executing "
                "the `init_weights`."
            )
        mean_value = param.data.mean().cpu()
        if module._params_init_info[param]["tmp_mean_value"] != mean_value:
            module._params_init_info[param]["init_info"] = init_info
            module._params_init_info[param]["tmp_mean_value"] = mean_value


def _has(module: nn.Module, name: str) -> bool:
    return getattr(module, name, None) is not None


def _check_distribution(distribution: str) -> None:
    if distribution not in _DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {list(_DISTRIBUTIONS)}, but got {distribution!r}")


def constant_init(module: nn.Module, val: float, bias: float = 0) -> None:
    """Fill ``module.weight`` with ``val`` and ``module.bias`` with ``bias`` (where present)."""
    if _has(module, "weight"):
        nn.init.constant_(module.weight, val)
    if _has(module, "bias"):
        nn.init.constant_(module.bias, bias)


def xavier_init(module: nn.Module, gain: float = 1, bias: float = 0, distribution: str = "normal") -> None:
    """Xavier (Glorot) ``'normal'`` or ``'uniform'`` weights with ``gain``; constant ``bias``."""
    _check_distribution(distribution)
    if _has(module, "weight"):
        if distribution == "uniform":
            nn.init.xavier_uniform_(module.weight, gain=gain)
        else:
            nn.init.xavier_normal_(module.weight, gain=gain)
    if _has(module, "bias"):
        nn.init.constant_(module.bias, bias)


def normal_init(module: nn.Module, mean: float = 0, std: float = 1, bias: float = 0) -> None:
    """Weights drawn from N(``mean``, ``std``^2); constant ``bias``."""
    if _has(module, "weight"):
        nn.init.normal_(module.weight, mean, std)
    if _has(module, "bias"):
        nn.init.constant_(module.bias, bias)


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0) -> Tensor:
    """Fill ``tensor`` in place from N(``mean``, ``std``^2) truncated to [``a``, ``b``], as MMEngine's.

    Draws uniform values between the bounds' normal CDFs and maps them through
    the inverse CDF (one ``uniform_`` draw per element).
    """

    def norm_cdf(x: float) -> float:
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    if (mean < a - 2 * std) or (mean > b + 2 * std):
        warnings.warn(
            "mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
            "The distribution of values may be incorrect.",
            stacklevel=2,
        )
    with torch.no_grad():
        lower = norm_cdf((a - mean) / std)
        upper = norm_cdf((b - mean) / std)
        tensor.uniform_(2 * lower - 1, 2 * upper - 1)
        tensor.erfinv_()
        tensor.mul_(std * math.sqrt(2.0))
        tensor.add_(mean)
        tensor.clamp_(min=a, max=b)
        return tensor


def trunc_normal_init(
    module: nn.Module, mean: float = 0, std: float = 1, a: float = -2, b: float = 2, bias: float = 0
) -> None:
    """Weights from N(``mean``, ``std``^2) truncated to [``a``, ``b``]; constant ``bias``."""
    if _has(module, "weight"):
        trunc_normal_(module.weight, mean, std, a, b)
    if _has(module, "bias"):
        nn.init.constant_(module.bias, bias)


def uniform_init(module: nn.Module, a: float = 0, b: float = 1, bias: float = 0) -> None:
    """Weights drawn from U(``a``, ``b``); constant ``bias``."""
    if _has(module, "weight"):
        nn.init.uniform_(module.weight, a, b)
    if _has(module, "bias"):
        nn.init.constant_(module.bias, bias)


def kaiming_init(
    module: nn.Module,
    a: float = 0,
    mode: str = "fan_out",
    nonlinearity: str = "relu",
    bias: float = 0,
    distribution: str = "normal",
) -> None:
    """Kaiming (He) ``'normal'`` or ``'uniform'`` weights; constant ``bias``."""
    _check_distribution(distribution)
    if _has(module, "weight"):
        if distribution == "uniform":
            nn.init.kaiming_uniform_(module.weight, a=a, mode=mode, nonlinearity=nonlinearity)
        else:
            nn.init.kaiming_normal_(module.weight, a=a, mode=mode, nonlinearity=nonlinearity)
    if _has(module, "bias"):
        nn.init.constant_(module.bias, bias)


def caffe2_xavier_init(module: nn.Module, bias: float = 0) -> None:
    """Caffe2's ``XavierFill``: :func:`kaiming_init` uniform, ``a=1``, ``fan_in``, ``leaky_relu``."""
    kaiming_init(module, a=1, mode="fan_in", nonlinearity="leaky_relu", bias=bias, distribution="uniform")


def bias_init_with_prob(prior_prob: float) -> float:
    """The bias whose sigmoid is ``prior_prob``: ``-log((1 - p) / p)``."""
    return float(-np.log((1 - prior_prob) / prior_prob))


class BaseInit:
    """Base class of the initialisers: ``bias``/``bias_prob`` and the ``layer`` names to initialise.

    A subclass implements :meth:`init_module` (or its own ``__call__``). Calling
    the initialiser on a module initialises every submodule whose class name, or
    the name of one of its direct base classes, is in ``layer`` (every submodule
    when ``wholemodule`` is set, as ``override`` does).

    Args:
        bias: The value to fill biases with.
        bias_prob: When given, the bias is :func:`bias_init_with_prob` of it.
        layer: Class name(s) of the layers to initialise.

    Raises:
        TypeError: ``bias`` is not a number, ``bias_prob`` not a float or ``layer`` not a str or a list.
    """

    def __init__(self, *, bias: float = 0, bias_prob: float | None = None, layer: str | list[str] | None = None):
        self.wholemodule = False
        if not isinstance(bias, (int, float)):
            raise TypeError(f"bias must be a number, but got a {type(bias)}")
        if bias_prob is not None and not isinstance(bias_prob, float):
            raise TypeError(f"bias_prob type must be float, but got {type(bias_prob)}")
        if layer is None:
            layer = []
        elif not isinstance(layer, (str, list)):
            raise TypeError(f"layer must be a str or a list of str, but got a {type(layer)}")
        self.bias = bias_init_with_prob(bias_prob) if bias_prob is not None else bias
        self.layer = [layer] if isinstance(layer, str) else layer

    def init_module(self, module: nn.Module) -> None:
        """Initialise one selected submodule."""
        raise NotImplementedError(f"{type(self).__name__} must implement init_module or __call__")

    def __call__(self, module: nn.Module) -> None:
        """Initialise the selected submodules of ``module`` (children first, as ``module.apply``)."""

        def init(m: nn.Module) -> None:
            names = {m.__class__.__name__, *(base.__name__ for base in m.__class__.__bases__)}
            if self.wholemodule or set(self.layer) & names:
                self.init_module(m)

        module.apply(init)
        if hasattr(module, "_params_init_info"):
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self) -> str:
        return f"{self.__class__.__name__}, bias={self.bias}"


@WEIGHT_INITIALIZERS.register_module(name="Constant")
class ConstantInit(BaseInit):
    """``Constant``: fill weights with ``val`` (see :class:`BaseInit` for ``bias``, ``bias_prob``, ``layer``)."""

    def __init__(self, val: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.val = val

    def init_module(self, module: nn.Module) -> None:
        constant_init(module, self.val, self.bias)

    def _get_init_info(self) -> str:
        return f"{self.__class__.__name__}: val={self.val}, bias={self.bias}"


@WEIGHT_INITIALIZERS.register_module(name="Xavier")
class XavierInit(BaseInit):
    """``Xavier``: Glorot weights with ``gain``, ``distribution`` ``'normal'`` or ``'uniform'``."""

    def __init__(self, gain: float = 1, distribution: str = "normal", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gain = gain
        self.distribution = distribution

    def init_module(self, module: nn.Module) -> None:
        xavier_init(module, self.gain, self.bias, self.distribution)

    def _get_init_info(self) -> str:
        return f"{self.__class__.__name__}: gain={self.gain}, distribution={self.distribution}, bias={self.bias}"


@WEIGHT_INITIALIZERS.register_module(name="Normal")
class NormalInit(BaseInit):
    """``Normal``: weights from N(``mean``, ``std``^2)."""

    def __init__(self, mean: float = 0, std: float = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mean = mean
        self.std = std

    def init_module(self, module: nn.Module) -> None:
        normal_init(module, self.mean, self.std, self.bias)

    def _get_init_info(self) -> str:
        return f"{self.__class__.__name__}: mean={self.mean}, std={self.std}, bias={self.bias}"


@WEIGHT_INITIALIZERS.register_module(name="TruncNormal")
class TruncNormalInit(BaseInit):
    """``TruncNormal``: weights from N(``mean``, ``std``^2) truncated to [``a``, ``b``]."""

    def __init__(self, mean: float = 0, std: float = 1, a: float = -2, b: float = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mean = mean
        self.std = std
        self.a = a
        self.b = b

    def init_module(self, module: nn.Module) -> None:
        trunc_normal_init(module, self.mean, self.std, self.a, self.b, self.bias)

    def _get_init_info(self) -> str:
        return f"{self.__class__.__name__}: a={self.a}, b={self.b}, mean={self.mean}, std={self.std}, bias={self.bias}"


@WEIGHT_INITIALIZERS.register_module(name="Uniform")
class UniformInit(BaseInit):
    """``Uniform``: weights from U(``a``, ``b``)."""

    def __init__(self, a: float = 0, b: float = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.a = a
        self.b = b

    def init_module(self, module: nn.Module) -> None:
        uniform_init(module, self.a, self.b, self.bias)

    def _get_init_info(self) -> str:
        return f"{self.__class__.__name__}: a={self.a}, b={self.b}, bias={self.bias}"


@WEIGHT_INITIALIZERS.register_module(name="Kaiming")
class KaimingInit(BaseInit):
    """``Kaiming``: He weights (``a``, ``mode`` ``'fan_in'``/``'fan_out'``, ``nonlinearity``, ``distribution``)."""

    def __init__(
        self,
        a: float = 0,
        mode: str = "fan_out",
        nonlinearity: str = "relu",
        distribution: str = "normal",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.a = a
        self.mode = mode
        self.nonlinearity = nonlinearity
        self.distribution = distribution

    def init_module(self, module: nn.Module) -> None:
        kaiming_init(module, self.a, self.mode, self.nonlinearity, self.bias, self.distribution)

    def _get_init_info(self) -> str:
        return (
            f"{self.__class__.__name__}: a={self.a}, mode={self.mode}, nonlinearity={self.nonlinearity}, "
            f"distribution ={self.distribution}, bias={self.bias}"
        )


@WEIGHT_INITIALIZERS.register_module(name="Caffe2Xavier")
class Caffe2XavierInit(KaimingInit):
    """``Caffe2Xavier``: :class:`KaimingInit` with ``a=1``, ``fan_in``, ``leaky_relu``, uniform."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(a=1, mode="fan_in", nonlinearity="leaky_relu", distribution="uniform", **kwargs)


def _initialize(module: nn.Module, cfg: dict[str, Any], wholemodule: bool = False) -> None:
    func = build_from_cfg(cfg, WEIGHT_INITIALIZERS)
    func.wholemodule = wholemodule  # override: no layer key, the named submodule is initialised whole
    func(module)


def _initialize_override(module: nn.Module, override: InitCfg, cfg: dict[str, Any]) -> None:
    if not isinstance(override, (dict, list)):
        raise TypeError(f"override must be a dict or a list of dict, but got {type(override)}")
    for override_ in [override] if isinstance(override, dict) else override:
        cp_override = copy.deepcopy(override_)
        name = cp_override.pop("name", None)
        if name is None:
            raise ValueError(f'`override` must contain the key "name", but got {cp_override}')
        if not cp_override:  # only a name: the outer init_cfg's initialiser and arguments
            cp_override.update(cfg)
        elif "type" not in cp_override:
            raise ValueError(f'`override` need "type" key, but got {cp_override}')
        if not hasattr(module, name):
            raise RuntimeError(f"module did not have attribute {name}, but init_cfg is {cp_override}.")
        _initialize(getattr(module, name), cp_override, wholemodule=True)


def initialize(module: nn.Module, init_cfg: InitCfg) -> None:
    """Initialise ``module`` with the initialiser config(s) ``init_cfg``, as ``mmengine.model.initialize``.

    Each config names a ``WEIGHT_INITIALIZERS`` type (``Constant``, ``Xavier``,
    ``Normal``, ``TruncNormal``, ``Uniform``, ``Kaiming``, ``Caffe2Xavier``,
    ``Pretrained``) and its arguments; ``layer`` picks layers by class name and
    ``override`` re-initialises named submodules whole (``dict(name=...)`` alone
    repeats the outer initialiser there).

    Example:
        >>> init_cfg = dict(type='Constant', val=1, bias=2, layer='Conv2d',
        ...                 override=dict(type='Constant', name='reg', val=3, bias=4))
        >>> initialize(model, init_cfg)

    Raises:
        TypeError: ``init_cfg`` (or an ``override``) is not a dict or a list of dicts.
        ValueError: An ``override`` lacks ``name``, or has arguments but no ``type``.
        RuntimeError: An ``override`` names a submodule ``module`` does not have.
    """
    if not isinstance(init_cfg, (dict, list)):
        raise TypeError(f"init_cfg must be a dict or a list of dict, but got {type(init_cfg)}")
    for cfg in [init_cfg] if isinstance(init_cfg, dict) else init_cfg:
        cp_cfg = copy.deepcopy(cfg)  # the same cfg may be shared by several modules
        override = cp_cfg.pop("override", None)
        _initialize(module, cp_cfg)
        if override is not None:
            cp_cfg.pop("layer", None)
            _initialize_override(module, override, cp_cfg)
