"""OptimWrapperDict: several named optim wrappers (e.g. a GAN's generator and discriminator)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NoReturn

import torch
from torch import nn

from mm2lightning.errors import AssertKeyError, AssertTypeError
from mm2lightning.optim.optim_wrapper import OptimWrapper


class OptimWrapperDictError(AssertTypeError):
    """A member of an :class:`OptimWrapperDict` is not an :class:`OptimWrapper`.

    Also an ``AssertionError``, the type MMEngine raises for it.
    """


class OptimWrapperDictKeyError(AssertKeyError):
    """A name that an :class:`OptimWrapperDict` does not hold.

    Also an ``AssertionError``, the type MMEngine raises for it.
    """


def _call_each(method: str) -> NoReturn:
    # MMEngine: '`<method>` should be called by each optimizer separately'
    raise NotImplementedError(
        f"`{method}` should be called by each optimizer separately: OptimWrapperDict.{method} is ambiguous, "
        f"call it on each wrapper, e.g. optim_wrapper['generator'].{method}(...), as MMEngine's GAN train_step does"
    )


def _no_single(attr: str, member: str) -> NoReturn:
    # MMEngine fails here with Python's own "'OptimWrapperDict' object has no attribute '<attr>'"
    raise AttributeError(
        f"'OptimWrapperDict' object has no attribute '{attr}': each wrapper in an OptimWrapperDict has its own "
        f"{member}; use it on one of them, e.g. optim_wrapper['generator'].{member}"
    )


class OptimWrapperDict(OptimWrapper):
    """A name -> :class:`OptimWrapper` mapping, as ``mmengine.optim.OptimWrapperDict``.

    ``update_params``, ``backward``, ``step`` and ``optim_context`` must be
    called on each wrapper (``NotImplementedError``, as in MMEngine);
    ``zero_grad``, ``get_lr``, ``get_momentum`` and the state dicts act on all of
    them. As in MMEngine, ``initialize_count_status`` does nothing: each child
    keeps its own count, and the accumulation members (``inner_count``,
    ``should_update``, ``should_sync``, ``scale_loss``) and ``defaults`` belong
    to each child (``AttributeError`` here, as in MMEngine).

    Differences from MMEngine: ``zero_grad(**kwargs)`` passes its arguments on
    to each wrapper (MMEngine drops them), and ``load_state_dict`` checks every
    name before loading any (MMEngine loads the names before a missing one).

    Args:
        **optim_wrappers: The wrappers, by name.
    """

    def __init__(self, **optim_wrappers: OptimWrapper) -> None:  # no super().__init__: there is no single optimizer
        for name, wrapper in optim_wrappers.items():
            if not isinstance(wrapper, OptimWrapper):
                raise OptimWrapperDictError(
                    "`OptimWrapperDict` only accept OptimWrapper instance: OptimWrapperDict takes OptimWrapper "
                    f"instances, but got {name}={type(wrapper).__name__} (wrap it, e.g. OptimWrapper(optimizer))"
                )
        self.optim_wrappers: dict[str, OptimWrapper] = optim_wrappers

    def update_params(self, loss: torch.Tensor, step_kwargs: Any = None, zero_kwargs: Any = None) -> None:
        _call_each("update_params")

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        _call_each("backward")

    def step(self, **kwargs: Any) -> None:
        _call_each("step")

    def optim_context(self, model: nn.Module) -> NoReturn:  # type: ignore[override]
        """Raises ``NotImplementedError`` when called, as MMEngine's."""
        _call_each("optim_context")

    def zero_grad(self, **kwargs: Any) -> None:
        """Clear the gradients of every wrapper (``kwargs`` go to each one's ``zero_grad``)."""
        for wrapper in self.optim_wrappers.values():
            wrapper.zero_grad(**kwargs)

    def initialize_count_status(self, model: nn.Module, init_counts: int, max_counts: int) -> None:
        """Does nothing, as in MMEngine: call it on each wrapper."""

    # Accumulation state and optimizer defaults belong to each wrapper, as in MMEngine.
    @property
    def inner_count(self) -> int:
        _no_single("_inner_count", "inner_count")

    def should_update(self) -> bool:
        _no_single("_inner_count", "should_update()")

    def should_sync(self) -> bool:
        _no_single("_inner_count", "should_sync()")

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        _no_single("_accumulative_counts", "scale_loss(loss)")

    @property
    def defaults(self) -> dict[str, Any]:
        _no_single("optimizer", "defaults")

    @property
    def param_groups(self) -> dict[str, list[dict[str, Any]]]:  # type: ignore[override]
        return {name: wrapper.param_groups for name, wrapper in self.optim_wrappers.items()}

    def get_lr(self) -> dict[str, list[float]]:
        """``{'<name>.lr': [...]}``, with ``'<name>.base_lr'`` first where a child has one."""
        lrs: dict[str, list[float]] = {}
        for name, wrapper in self.optim_wrappers.items():
            inner = wrapper.get_lr()
            if "base_lr" in inner:
                lrs[f"{name}.base_lr"] = inner["base_lr"]
            lrs[f"{name}.lr"] = inner["lr"]
        return lrs

    def get_momentum(self) -> dict[str, list[float]]:
        return {f"{name}.momentum": w.get_momentum()["momentum"] for name, w in self.optim_wrappers.items()}

    def state_dict(self) -> dict[str, Any]:
        return {name: wrapper.state_dict() for name, wrapper in self.optim_wrappers.items()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load each wrapper's state; a name this dict does not hold fails before anything is loaded."""
        unknown = [name for name in state_dict if name not in self.optim_wrappers]
        if unknown:
            raise OptimWrapperDictKeyError(
                f"Mismatched `state_dict`! cannot found {unknown[0]} in OptimWrapperDict: state_dict names optim "
                f"wrappers {unknown} that this OptimWrapperDict does not have (it has {list(self.optim_wrappers)})"
            )
        for name, wrapper_state in state_dict.items():
            self.optim_wrappers[name].load_state_dict(wrapper_state)

    def items(self) -> Iterator[tuple[str, OptimWrapper]]:
        yield from self.optim_wrappers.items()

    def values(self) -> Iterator[OptimWrapper]:
        yield from self.optim_wrappers.values()

    def keys(self) -> Iterator[str]:
        yield from self.optim_wrappers.keys()

    def __getitem__(self, key: str) -> OptimWrapper:
        if key not in self.optim_wrappers:
            raise OptimWrapperDictKeyError(
                f"Cannot find {key} in OptimWrapperDict, please check your optimizer constructor. "
                f"No optim wrapper named {key!r}; this OptimWrapperDict has {list(self.optim_wrappers)}"
            )
        return self.optim_wrappers[key]

    def __contains__(self, key: str) -> bool:
        return key in self.optim_wrappers

    def __len__(self) -> int:
        return len(self.optim_wrappers)

    def __repr__(self) -> str:
        return "".join(f"name: {name}\n{wrapper!r}" for name, wrapper in self.optim_wrappers.items())
