"""MMEngine's distributed model wrappers, as ``mmengine.model.MMDistributedDataParallel`` and friends.

Subclass them and override ``train_step`` to change what one iteration does;
mm2lightning's DDP strategies (``MMDDPStrategy``, ``SeparateDDPStrategy``)
build the wrapper and call its ``train_step``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from mm2lightning.registry import MODEL_WRAPPERS

log = logging.getLogger(__name__)

MODEL_WRAPPERS.register_module(module=DistributedDataParallel)
MODEL_WRAPPERS.register_module(module=DataParallel)

# torch >= 2.13 renamed DDP's broadcast_buffers to forward_sync_buffers (the old name warns)
_BUFFER_SYNC_ARG = (
    "forward_sync_buffers"
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    else "broadcast_buffers"
)


def is_model_wrapper(model: nn.Module) -> bool:
    """Whether ``model`` wraps a model as ``.module``: DataParallel, DDP or a class in ``MODEL_WRAPPERS``
    (as ``mmengine.model.is_model_wrapper``)."""
    wrappers = tuple(cls for cls in MODEL_WRAPPERS.module_dict.values() if inspect.isclass(cls))
    return isinstance(model, (DataParallel, DistributedDataParallel, *wrappers))


def _run_forward(module: nn.Module, data: Any, mode: str) -> Any:
    if isinstance(data, dict):
        return module(**data, mode=mode)
    if isinstance(data, (list, tuple)):
        return module(*data, mode=mode)
    raise TypeError(
        "Output of `data_preprocessor` should be list, tuple or dict: "
        "the output of data_preprocessor should be a dict (passed to forward by keyword) or a "
        f"list/tuple (passed positionally), but got {type(data).__name__}"
    )


def _params_outside_graph(loss: torch.Tensor, model: nn.Module) -> list[str]:
    """Names of trainable parameters that ``loss`` does not depend on."""
    reached: set[int] = set()
    stack = [loss.grad_fn]
    seen: set[int] = set()
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        if hasattr(fn, "variable"):
            reached.add(id(fn.variable))
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in reached]


@MODEL_WRAPPERS.register_module()
class MMDistributedDataParallel(DistributedDataParallel):
    """``DistributedDataParallel`` whose ``train_step`` runs the wrapped model's MMEngine training step.

    The forward runs through DDP (so gradients sync), inside
    ``optim_wrapper.optim_context(self)`` (no sync while accumulating).

    Args:
        module: The model (a ``BaseModel``).
        detect_anomalous_params: Log the trainable parameters that the loss does not
            depend on (slow; for debugging "unused parameters" errors).
        **kwargs: ``DistributedDataParallel`` arguments.
    """

    def __init__(self, module: nn.Module, detect_anomalous_params: bool = False, **kwargs: Any) -> None:
        super().__init__(module=module, **kwargs)
        self.detect_anomalous_params = detect_anomalous_params

    def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, torch.Tensor]:
        with optim_wrapper.optim_context(self):
            data = self.module.data_preprocessor(data, training=True)
            losses = _run_forward(self, data, mode="loss")
        parsed_losses, log_vars = self.module.parse_losses(losses)
        optim_wrapper.update_params(parsed_losses)
        if self.detect_anomalous_params:
            unused = _params_outside_graph(parsed_losses, self.module)
            if unused:
                log.error("parameters not used to compute the loss: %s", ", ".join(unused))
        return log_vars

    def val_step(self, data: Any) -> Any:
        return self.module.val_step(data)

    def test_step(self, data: Any) -> Any:
        return self.module.test_step(data)


class _ChildDDP(MMDistributedDataParallel):
    """A submodule's DDP; a forward while all its parameters are frozen does not arm its reducer.

    In a GAN's generator step the discriminator runs with ``requires_grad=False``;
    a DDP forward with sync enabled would still expect a reduction that never
    comes, which breaks that child's next accumulation window.
    """

    def __init__(self, module: nn.Module, **kwargs: Any) -> None:
        super().__init__(module, **kwargs)
        self._child_params = [p for p in module.parameters()]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if any(p.requires_grad for p in self._child_params):
            return super().forward(*args, **kwargs)
        with self.no_sync():
            return super().forward(*args, **kwargs)


@MODEL_WRAPPERS.register_module()
class MMSeparateDistributedDataParallel(DistributedDataParallel):
    """Wraps each direct child of the model that has trainable parameters in its own DDP.

    As ``mmengine.model.MMSeparateDistributedDataParallel``, for GANs and other
    models with several optimizers: each child syncs its own gradients, so a
    backward that reaches only the discriminator needs no
    ``find_unused_parameters``. Children without trainable parameters (the data
    preprocessor, frozen or parameter-free parts) stay unwrapped. The children are
    replaced in place (``model.generator`` becomes the DDP); :meth:`unwrap` puts
    them back. Unlike MMEngine's, :meth:`no_sync` works (it enters every wrapped
    child's ``no_sync``).

    Args:
        module: The model (a ``BaseModel``).
        broadcast_buffers: Passed to each child's DDP (MMEngine's default, False).
        find_unused_parameters: Passed to each child's DDP.
        **kwargs: Other ``DistributedDataParallel`` arguments.
    """

    def __init__(
        self, module: nn.Module, broadcast_buffers: bool = False, find_unused_parameters: bool = False, **kwargs: Any
    ) -> None:
        nn.Module.__init__(self)  # there is no single DDP here, only one per child
        self.module = module
        self.wrapped: dict[str, nn.Module] = {}
        kwargs.setdefault(_BUFFER_SYNC_ARG, broadcast_buffers)
        for name, child in list(module._modules.items()):
            if child is None or not any(p.requires_grad for p in child.parameters()):
                continue
            module._modules[name] = _ChildDDP(child, find_unused_parameters=find_unused_parameters, **kwargs)
            self.wrapped[name] = child

    @contextmanager
    def unwrapped(self) -> Iterator[nn.Module]:
        """The model with its original children in place (clean ``state_dict`` keys), DDPs restored after."""
        ddps = {name: self.module._modules[name] for name in self.wrapped}
        self.module._modules.update(self.wrapped)
        try:
            yield self.module
        finally:
            self.module._modules.update(ddps)

    def unwrap(self) -> nn.Module:
        """Put the original children back into the model for good and return it."""
        self.module._modules.update(self.wrapped)
        self.wrapped = {}
        return self.module

    def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, torch.Tensor]:
        return self.module.train_step(data, optim_wrapper)

    def val_step(self, data: Any) -> Any:
        return self.module.val_step(data)

    def test_step(self, data: Any) -> Any:
        return self.module.test_step(data)

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        with ExitStack() as stack:
            for name in self.wrapped:
                stack.enter_context(self.module._modules[name].no_sync())
            yield

    def train(self, mode: bool = True) -> MMSeparateDistributedDataParallel:
        self.training = mode
        self.module.train(mode)
        return self
