"""BaseOptimWrapper: the optimizer-facing half every optim wrapper shares."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any

import torch

from mm2lightning.errors import TypeAttributeError


class BaseOptimWrapper(metaclass=ABCMeta):
    """Wraps a ``torch.optim.Optimizer``, as ``mmengine.optim.BaseOptimWrapper``.

    When the optimizer has several param groups, an extra group
    (``base_param_settings``, holding the optimizer defaults) is appended to
    :attr:`param_groups` so that parameter schedulers also track a base value.

    Args:
        optimizer: The optimizer to wrap.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        if not hasattr(optimizer, "param_groups") or not hasattr(optimizer, "step"):
            raise TypeAttributeError(
                "optimizer must be a torch.optim.Optimizer (or have param_groups and step()), "
                f"but got {type(optimizer).__name__}: '{type(optimizer).__name__}' object has no attribute "
                f"'{'param_groups' if not hasattr(optimizer, 'param_groups') else 'step'}'"
            )
        self.optimizer = optimizer
        self.base_param_settings: dict[str, Any] | None = None
        if len(optimizer.param_groups) > 1:
            self.base_param_settings = {"params": torch.tensor([0.0]), **optimizer.defaults}

    @abstractmethod
    def update_params(self, *args: Any, **kwargs: Any) -> None:
        """Backward, and step when due."""

    @abstractmethod
    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """Compute gradients."""

    @abstractmethod
    def zero_grad(self, **kwargs: Any) -> None:
        """Clear gradients."""

    @abstractmethod
    def step(self, **kwargs: Any) -> None:
        """Update parameters."""

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state dict, plus ``base_param_settings`` when present."""
        state_dict = self.optimizer.state_dict()
        if self.base_param_settings is not None:
            state_dict["base_param_settings"] = self.base_param_settings
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict made by :meth:`state_dict`. The dict is not modified."""
        state_dict = dict(state_dict)
        base_param_settings = state_dict.pop("base_param_settings", None)
        if base_param_settings is not None:
            self.base_param_settings = base_param_settings
        self.optimizer.load_state_dict(state_dict)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The optimizer's param groups, plus ``base_param_settings`` when present."""
        if self.base_param_settings is not None:
            return self.optimizer.param_groups + [self.base_param_settings]
        return self.optimizer.param_groups

    @property
    def defaults(self) -> dict[str, Any]:
        return self.optimizer.defaults

    def get_lr(self) -> dict[str, list[float]]:
        """Learning rates: ``{'lr': [per group]}``, with ``'base_lr'`` first for several groups."""
        lrs: dict[str, list[float]] = {}
        if self.base_param_settings is not None:
            lrs["base_lr"] = [self.base_param_settings["lr"]]
        lrs["lr"] = [group["lr"] for group in self.optimizer.param_groups]
        return lrs

    def get_momentum(self) -> dict[str, list[float]]:
        """Momentum per group: ``momentum``, else ``betas[0]``, else 0."""
        momentum = []
        for group in self.optimizer.param_groups:
            if "momentum" in group:
                momentum.append(group["momentum"])
            elif "betas" in group:
                momentum.append(group["betas"][0])
            else:
                momentum.append(0)
        return {"momentum": momentum}
