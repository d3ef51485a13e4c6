"""DDP strategies that wrap the model with MMEngine's model wrappers.

Lightning's own ``strategy='ddp'`` wraps the whole LightningModule in one DDP and
works with :class:`~mm2lightning.MMLightningModule` as it is. These strategies
instead wrap ``module.model`` the MMEngine way and call the wrapper's
``train_step``, so that

- :class:`SeparateDDPStrategy` gives each trainable child its own DDP (GANs and
  other multi-optimizer models need no ``find_unused_parameters``), and
- users' wrapper subclasses that override ``train_step`` (MMEngine's
  ``model_wrapper_cfg``) run under Lightning.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from lightning.pytorch.overrides.distributed import _register_ddp_comm_hook, _sync_module_states
from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry

from mm2lightning.model.wrappers import MMDistributedDataParallel, MMSeparateDistributedDataParallel
from mm2lightning.registry import MODEL_WRAPPERS


class _ModelWrapperDDPStrategy(DDPStrategy):
    """Wraps ``lightning_module.model`` in an MMEngine model wrapper instead of wrapping the LightningModule."""

    wrapper_base: type = MMDistributedDataParallel

    def __init__(
        self,
        *args: Any,
        model_wrapper: type | None = None,
        model_wrapper_cfg: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if model_wrapper is not None and model_wrapper_cfg is not None:
            raise ValueError("pass model_wrapper or model_wrapper_cfg, not both")
        self._wrapper_kwargs: dict[str, Any] = {}
        if model_wrapper_cfg is not None:
            cfg = dict(model_wrapper_cfg)
            if "type" not in cfg:
                raise ValueError(f"model_wrapper_cfg needs a 'type' (a name in MODEL_WRAPPERS or a class), got {cfg!r}")
            model_wrapper = cfg.pop("type")
            if isinstance(model_wrapper, str):
                model_wrapper = MODEL_WRAPPERS.get_or_raise(model_wrapper)
            self._wrapper_kwargs = cfg
        self._wrapper_cls = model_wrapper or self.wrapper_base
        if not (isinstance(self._wrapper_cls, type) and issubclass(self._wrapper_cls, self.wrapper_base)):
            raise TypeError(
                f"{type(self).__name__} needs a subclass of {self.wrapper_base.__name__} as model wrapper, "
                f"but got {self._wrapper_cls!r}"
            )
        self._wrapper: torch.nn.Module | None = None

    def configure_ddp(self) -> None:
        from mm2lightning.lightning.module import MMLightningModule

        module = self.lightning_module
        if not isinstance(module, MMLightningModule):
            raise TypeError(f"{type(self).__name__} trains an MMLightningModule, but got {type(module).__name__}")
        _sync_module_states(module)  # a child's DDP only broadcasts its own parameters
        self._wrapper = self._wrapper_cls(
            module=module.model, device_ids=self.determine_ddp_device_ids(), **self._ddp_kwargs, **self._wrapper_kwargs
        )
        module.use_model_wrapper(self._wrapper)
        self._register_ddp_hooks()

    def _ddp_modules(self) -> list[torch.nn.parallel.DistributedDataParallel]:
        wrapper = self._wrapper
        if isinstance(wrapper, MMSeparateDistributedDataParallel):
            return [wrapper.module._modules[name] for name in wrapper.wrapped]
        return [] if wrapper is None else [wrapper]

    def _register_ddp_hooks(self) -> None:
        if self.root_device.type != "cuda" or self._ddp_comm_hook is None:
            return
        for ddp in self._ddp_modules():
            _register_ddp_comm_hook(
                model=ddp,
                ddp_comm_state=self._ddp_comm_state,
                ddp_comm_hook=self._ddp_comm_hook,
                ddp_comm_wrapper=self._ddp_comm_wrapper,
            )

    @contextmanager
    def block_backward_sync(self) -> Iterator[None]:
        """``no_sync`` of the model wrapper: every wrapped child for the separate wrapper."""
        with self._wrapper.no_sync() if self._wrapper is not None else nullcontext():
            yield

    @contextmanager
    def _unwrapped(self) -> Iterator[None]:
        if isinstance(self._wrapper, MMSeparateDistributedDataParallel):
            with self._wrapper.unwrapped():
                yield
        else:  # a whole-model wrapper holds the model without changing it
            yield

    def lightning_module_state_dict(self) -> dict[str, Any]:
        with self._unwrapped():
            return super().lightning_module_state_dict()

    def load_model_state_dict(self, checkpoint: Mapping[str, Any], strict: bool = True) -> None:
        with self._unwrapped():
            super().load_model_state_dict(checkpoint, strict=strict)

    def teardown(self) -> None:
        if self._wrapper is not None:
            if isinstance(self._wrapper, MMSeparateDistributedDataParallel):
                self._wrapper.unwrap()
            self.lightning_module.use_model_wrapper(None)
            self._wrapper = None
        super().teardown()


class MMDDPStrategy(_ModelWrapperDDPStrategy):
    """Whole-model DDP through ``MMDistributedDataParallel`` (or a subclass), as MMEngine's Runner does.

    The model's forward runs through the DDP, so gradients sync at forward time
    (plain PyTorch DDP semantics) and ``optim_context`` blocks them while
    accumulating. Use it to run a ``train_step`` overridden in an
    ``MMDistributedDataParallel`` subclass; otherwise Lightning's ``'ddp'`` works too.

    Args:
        model_wrapper: An ``MMDistributedDataParallel`` subclass (default: the class itself).
        model_wrapper_cfg: Or MMEngine's ``model_wrapper_cfg``: ``dict(type=<name in MODEL_WRAPPERS>, **kwargs)``.
        *args, **kwargs: ``DDPStrategy`` arguments (``find_unused_parameters``, other DDP kwargs, ...).
    """

    strategy_name = "ddp_mm"


class SeparateDDPStrategy(_ModelWrapperDDPStrategy):
    """Each direct child of the model with trainable parameters in its own DDP, as MMEngine's separate wrapper.

    For GANs and other models whose ``train_step`` updates parts of the model in
    turn: each child syncs only its own gradients, so
    ``find_unused_parameters=False`` (the default) suffices. The data
    preprocessor and frozen or parameter-free children stay unwrapped. While an
    optim wrapper accumulates, sync is blocked on every wrapped child.
    Checkpoints have the model's own keys (no ``module.``), and after ``fit`` the
    model is plain again. Registered in Lightning as ``strategy='ddp_separate'``.

    The model's ``train_step`` must call each wrapped child through its forward
    (``self.generator(z)``): other methods of a wrapped child are not reachable.

    Args:
        model_wrapper: An ``MMSeparateDistributedDataParallel`` subclass (default: the class itself).
        model_wrapper_cfg: Or MMEngine's ``model_wrapper_cfg``: ``dict(type=<name in MODEL_WRAPPERS>, **kwargs)``.
        *args, **kwargs: ``DDPStrategy`` arguments; DDP kwargs go to every child's DDP.
    """

    strategy_name = "ddp_separate"
    wrapper_base = MMSeparateDistributedDataParallel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("find_unused_parameters", False)
        super().__init__(*args, **kwargs)


def _register_strategies() -> None:
    if "ddp_separate" in StrategyRegistry:
        return
    StrategyRegistry.register(
        "ddp_separate", SeparateDDPStrategy, description="one DDP per trainable child of the model (mm2lightning)"
    )
    StrategyRegistry.register(
        "ddp_mm", MMDDPStrategy, description="whole-model DDP through MMDistributedDataParallel (mm2lightning)"
    )


_register_strategies()
