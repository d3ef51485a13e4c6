"""BaseModule: ``nn.Module`` with MMEngine's ``init_cfg`` / ``init_weights`` protocol."""

from __future__ import annotations

import copy
import inspect
import logging
from abc import ABCMeta
from typing import Any

from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from mm2lightning.registry import MODEL_WRAPPERS

log = logging.getLogger(__name__)


def _unwrap(module: nn.Module) -> nn.Module:
    """The module inside a model wrapper (DDP and the like) that has no ``init_weights``."""
    if hasattr(module, "init_weights"):
        return module
    wrappers = tuple(cls for cls in MODEL_WRAPPERS.module_dict.values() if inspect.isclass(cls))
    if isinstance(module, (DataParallel, DistributedDataParallel, *wrappers)):
        return module.module
    return module


class BaseModule(nn.Module, metaclass=ABCMeta):
    """Base class of MMEngine-style modules, as ``mmengine.model.BaseModule``.

    Adds :attr:`init_cfg` and :meth:`init_weights` to ``nn.Module``. Calling
    :meth:`init_weights` on the top-level model initialises every child that
    defines ``init_weights`` and has not been initialised yet.

    Weight initialisers configured by ``init_cfg`` (MMEngine's
    ``WEIGHT_INITIALIZERS``: ``Kaiming``, ``Pretrained``, ...) are not supported
    yet: a module with a non-empty ``init_cfg`` raises ``NotImplementedError``
    from :meth:`init_weights` rather than skipping it silently.

    Args:
        init_cfg: Initialisation config(s); deep-copied and stored.
    """

    def __init__(self, init_cfg: dict[str, Any] | list[dict[str, Any]] | None = None) -> None:
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
        """Initialise this module, then every child with ``init_weights`` not yet initialised.

        Override it to write custom initialisation; call ``super().init_weights()``
        to keep the recursion into children. A second call only logs a warning.

        Raises:
            NotImplementedError: ``init_cfg`` is set (initialisers are not supported yet).
        """
        if self._is_init:
            log.warning("init_weights of %s has been called more than once.", type(self).__name__)
            return
        if self.init_cfg:
            raise NotImplementedError(
                f"{type(self).__name__} has init_cfg={self.init_cfg!r}, but mm2lightning does not "
                "support init_cfg weight initialisers (MMEngine's WEIGHT_INITIALIZERS) yet. "
                "Initialise the weights in __init__ (or override init_weights) and pass init_cfg=None."
            )
        for child in self.children():
            child = _unwrap(child)
            if hasattr(child, "init_weights") and not getattr(child, "is_init", False):
                child.init_weights()
        self._is_init = True

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
