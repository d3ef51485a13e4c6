"""OptimWrapperDict: several named optim wrappers (e.g. a GAN's generator and discriminator)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NoReturn

import torch
from torch import nn

from mm2lightning.optim.optim_wrapper import OptimWrapper


def _call_each(method: str) -> NoReturn:
    raise NotImplementedError(
        f"OptimWrapperDict.{method} is ambiguous: call it on each wrapper, e.g. "
        f"optim_wrapper['generator'].{method}(...), as MMEngine's GAN train_step does"
    )


class OptimWrapperDict(OptimWrapper):
    """A name -> :class:`OptimWrapper` mapping, as ``mmengine.optim.OptimWrapperDict``.

    ``update_params``, ``backward``, ``step`` and ``optim_context`` must be
    called on each wrapper; ``zero_grad``, ``get_lr``, ``get_momentum`` and the
    state dicts act on all of them. As in MMEngine, ``initialize_count_status``
    does nothing: each child keeps its own count.

    Args:
        **optim_wrappers: The wrappers, by name.
    """

    def __init__(self, **optim_wrappers: OptimWrapper) -> None:  # no super().__init__: there is no single optimizer
        for name, wrapper in optim_wrappers.items():
            if not isinstance(wrapper, OptimWrapper):
                raise TypeError(
                    f"OptimWrapperDict takes OptimWrapper instances, but got {name}={type(wrapper).__name__}"
                )
        self.optim_wrappers: dict[str, OptimWrapper] = optim_wrappers

    def update_params(self, loss: torch.Tensor, step_kwargs: Any = None, zero_kwargs: Any = None) -> None:
        _call_each("update_params")

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        _call_each("backward")

    def step(self, **kwargs: Any) -> None:
        _call_each("step")

    def optim_context(self, model: nn.Module) -> NoReturn:  # type: ignore[override]
        _call_each("optim_context")

    def zero_grad(self, **kwargs: Any) -> None:
        for wrapper in self.optim_wrappers.values():
            wrapper.zero_grad(**kwargs)

    def initialize_count_status(self, model: nn.Module, init_counts: int, max_counts: int) -> None:
        """Does nothing, as in MMEngine."""

    @property
    def param_groups(self) -> dict[str, list[dict[str, Any]]]:  # type: ignore[override]
        return {name: wrapper.param_groups for name, wrapper in self.optim_wrappers.items()}

    def get_lr(self) -> dict[str, list[float]]:
        """``{'<name>.lr': [...]}`` (and ``'<name>.base_lr'`` where a child has one)."""
        lrs: dict[str, list[float]] = {}
        for name, wrapper in self.optim_wrappers.items():
            lrs.update({f"{name}.{key}": value for key, value in wrapper.get_lr().items()})
        return lrs

    def get_momentum(self) -> dict[str, list[float]]:
        return {f"{name}.momentum": w.get_momentum()["momentum"] for name, w in self.optim_wrappers.items()}

    def state_dict(self) -> dict[str, Any]:
        return {name: wrapper.state_dict() for name, wrapper in self.optim_wrappers.items()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        unknown = sorted(set(state_dict) - set(self.optim_wrappers))
        if unknown:
            raise KeyError(
                f"state_dict names optim wrappers {unknown} that this OptimWrapperDict does not have "
                f"(it has {list(self.optim_wrappers)})"
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
            raise KeyError(f"no optim wrapper named {key!r}; this OptimWrapperDict has {list(self.optim_wrappers)}")
        return self.optim_wrappers[key]

    def __contains__(self, key: str) -> bool:
        return key in self.optim_wrappers

    def __len__(self) -> int:
        return len(self.optim_wrappers)

    def __repr__(self) -> str:
        return "".join(f"name: {name}\n{wrapper!r}" for name, wrapper in self.optim_wrappers.items())
