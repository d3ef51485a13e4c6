"""BaseModule: ``nn.Module`` with MMEngine's ``init_cfg`` / ``init_weights`` protocol."""

from __future__ import annotations

import copy
import logging
from abc import ABCMeta
from collections import defaultdict
from typing import Any

from torch import nn

from mm2lightning.dist import master_only
from mm2lightning.model.pretrained_init import PretrainedInit
from mm2lightning.logging import MMLogger, print_log
from mm2lightning.model.weight_init import InitCfg, initialize, update_init_info
from mm2lightning.model.wrappers import is_model_wrapper
from mm2lightning.errors import AssertTypeError


def _unwrap(module: nn.Module) -> nn.Module:
    """The module inside a model wrapper (DDP and the like) that has no ``init_weights``."""
    if is_model_wrapper(module) and not hasattr(module, "init_weights"):
        return module.module
    return module


class BaseModule(nn.Module, metaclass=ABCMeta):
    """Base class of MMEngine-style modules, as ``mmengine.model.BaseModule``.

    Adds :attr:`init_cfg` and :meth:`init_weights` to ``nn.Module``. Calling
    :meth:`init_weights` on the top-level model applies ``init_cfg`` (the
    ``WEIGHT_INITIALIZERS`` configs, see :func:`~mm2lightning.model.initialize`),
    then initialises every child that defines ``init_weights`` and has not been
    initialised yet, then loads ``Pretrained`` configs last, so pretrained
    weights win. The same torch random draws are made as by MMEngine.

    What initialised each parameter is written to the current ``MMLogger``'s
    log file (the Runner's), or logged at INFO level without one, as MMEngine.

    Args:
        init_cfg: Initialisation config(s); deep-copied and stored.
    """

    def __init__(self, init_cfg: InitCfg | None = None) -> None:
        super().__init__()
        self._is_init = False
        self.init_cfg = copy.deepcopy(init_cfg)

    @property
    def is_init(self) -> bool:
        """Whether :meth:`init_weights` has run on this module."""
        return self._is_init

    @is_init.setter
    def is_init(self, value: bool) -> None:
        self._is_init = value

    def init_weights(self) -> None:
        """Initialise this module with ``init_cfg``, then every child with ``init_weights`` not yet initialised.

        Override it to write custom initialisation; call ``super().init_weights()``
        to keep ``init_cfg`` and the recursion into children. A second call only
        logs a warning.
        """
        is_top_level_module = not hasattr(self, "_params_init_info")
        if is_top_level_module:
            # Shared by every submodule: what last changed each parameter (its mean tells a change).
            self._params_init_info: defaultdict[nn.Parameter, dict[str, Any]] = defaultdict(dict)
            for param in self.parameters():
                self._params_init_info[param]["init_info"] = (
                    f"The value is the same before and after calling `init_weights` of {self.__class__.__name__} "
                )
                self._params_init_info[param]["tmp_mean_value"] = param.data.mean().cpu()
            for sub_module in self.modules():
                sub_module._params_init_info = self._params_init_info

        if not self._is_init:
            pretrained_cfgs = []
            if self.init_cfg:
                print_log(f"initialize {self.__class__.__name__} with init_cfg {self.init_cfg}", logger="current",
                          level=logging.DEBUG)
                init_cfgs = [self.init_cfg] if isinstance(self.init_cfg, dict) else self.init_cfg
                other_cfgs = []
                for init_cfg in init_cfgs:
                    if not isinstance(init_cfg, dict):
                        raise AssertTypeError(
                            f"init_cfg must be a dict or a list of dict, but got an item {init_cfg!r}"
                        )
                    is_pretrained = init_cfg.get("type") in ("Pretrained", PretrainedInit)
                    (pretrained_cfgs if is_pretrained else other_cfgs).append(init_cfg)
                initialize(self, other_cfgs)
            for child in self.children():
                child = _unwrap(child)
                if hasattr(child, "init_weights") and not getattr(child, "is_init", False):
                    child.init_weights()
                    update_init_info(
                        child, init_info=f"Initialized by user-defined `init_weights` in {child.__class__.__name__} "
                    )
            if pretrained_cfgs:
                initialize(self, pretrained_cfgs)
            self._is_init = True
        else:
            print_log(f"init_weights of {self.__class__.__name__} has been called more than once.", logger="current",
                      level=logging.WARNING)

        if is_top_level_module:
            self._dump_init_info()
            for sub_module in self.modules():
                del sub_module._params_init_info

    @master_only
    def _dump_init_info(self) -> None:
        """Log what initialised each parameter, as MMEngine: to the current ``MMLogger``'s ``FileHandler`` streams
        (the Runner's log file), else at INFO level."""
        logger = MMLogger.get_current_instance()
        file_handlers = [handler for handler in logger.handlers if isinstance(handler, logging.FileHandler)]
        for handler in file_handlers:
            handler.stream.write("Name of parameter - Initialization information\n")
            for name, param in self.named_parameters():
                handler.stream.write(f"\n{name} - {param.shape}: \n{self._params_init_info[param]['init_info']} \n")
            handler.stream.flush()
        if not file_handlers:
            for name, param in self.named_parameters():
                logger.info(f"\n{name} - {param.shape}: \n{self._params_init_info[param]['init_info']} \n ")

    def __repr__(self) -> str:
        text = super().__repr__()
        if self.init_cfg:
            text += f"\ninit_cfg={self.init_cfg}"
        return text


class Sequential(BaseModule, nn.Sequential):
    """``nn.Sequential`` with :class:`BaseModule`'s ``init_cfg``, as ``mmengine.model.Sequential``."""

    def __init__(self, *args: nn.Module, init_cfg: dict[str, Any] | None = None) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.Sequential.__init__(self, *args)


class ModuleList(BaseModule, nn.ModuleList):
    """``nn.ModuleList`` with :class:`BaseModule`'s ``init_cfg``, as ``mmengine.model.ModuleList``."""

    def __init__(self, modules: Any = None, init_cfg: dict[str, Any] | None = None) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.ModuleList.__init__(self, modules)


class ModuleDict(BaseModule, nn.ModuleDict):
    """``nn.ModuleDict`` with :class:`BaseModule`'s ``init_cfg``, as ``mmengine.model.ModuleDict``."""

    def __init__(self, modules: Any = None, init_cfg: dict[str, Any] | None = None) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.ModuleDict.__init__(self, modules)
