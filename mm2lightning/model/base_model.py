"""BaseModel: the MMEngine model API (``train_step``/``val_step``/``test_step``, ``parse_losses``)."""

from __future__ import annotations

from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

import torch
from torch import nn
from typing_extensions import Self

from mm2lightning.model.base_module import BaseModule
from mm2lightning.model.data_preprocessor import _derives_from
from mm2lightning.errors import TypeAttributeError
from mm2lightning.registry import MODELS


def _mean(value: torch.Tensor) -> torch.Tensor:
    """``value.mean()``; a 0-d tensor is its own mean (skipping the op saves a graph node per loss)."""
    return value if value.dim() == 0 else value.mean()


def _total(values: list[torch.Tensor]) -> torch.Tensor:
    """The sum of ``values`` (non-empty), without ``sum()``'s extra ``0 +`` node."""
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


class OptimWrapperLike(Protocol):
    """What :meth:`BaseModel.train_step` needs of an optim wrapper (ours or MMEngine's)."""

    def optim_context(self, model: nn.Module) -> AbstractContextManager[Any]: ...

    def update_params(self, loss: torch.Tensor) -> None: ...


class BaseModel(BaseModule):
    """Base class of trainable models, as ``mmengine.model.BaseModel``.

    Subclasses implement :meth:`forward`; :meth:`train_step`, :meth:`val_step`
    and :meth:`test_step` run the data preprocessor, call ``forward`` with the
    right ``mode`` and, when training, update the parameters through an optim
    wrapper.

    Example:
        >>> class ToyModel(BaseModel):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.linear = nn.Linear(1, 1)
        ...     def forward(self, img, label, mode='tensor'):
        ...         feat = self.linear(img)
        ...         if mode == 'loss':
        ...             return dict(loss=(feat - label).pow(2))
        ...         return [feat]

    Args:
        data_preprocessor: A config dict built through ``MODELS`` or a module
            used as is. ``None`` means ``dict(type='BaseDataPreprocessor')``.
        init_cfg: See :class:`BaseModule`.

    Raises:
        TypeError: ``data_preprocessor`` is neither a dict, a module nor ``None``.
    """

    def __init__(
        self,
        data_preprocessor: dict[str, Any] | nn.Module | None = None,
        init_cfg: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(init_cfg)
        if data_preprocessor is None:
            data_preprocessor = dict(type="BaseDataPreprocessor")
        if isinstance(data_preprocessor, nn.Module):
            self.data_preprocessor = data_preprocessor
        elif isinstance(data_preprocessor, dict):
            self.data_preprocessor = MODELS.build(data_preprocessor)
        else:
            raise TypeError(
                "data_preprocessor should be a `dict` or `nn.Module` instance, "
                f"but got {type(data_preprocessor).__name__}"
            )

    @abstractmethod
    def forward(self, inputs: torch.Tensor, data_samples: list | None = None, mode: str = "tensor") -> Any:
        """Compute losses, predictions or raw outputs.

        Called with the data preprocessor's output: a dict is passed by keyword
        and a list/tuple positionally, plus ``mode``.

        Args:
            inputs: The batch inputs.
            data_samples: Annotations / meta information of the batch.
            mode: ``'loss'`` (from :meth:`train_step`): return a dict of loss
                tensors (or lists of tensors). ``'predict'`` (from
                :meth:`val_step`/:meth:`test_step`): return the predictions
                passed to the evaluator. ``'tensor'``: return raw outputs.
        """

    def train_step(self, data: dict | tuple | list, optim_wrapper: OptimWrapperLike) -> dict[str, torch.Tensor]:
        """Preprocess, compute the losses and update the parameters.

        Preprocessing and ``forward(mode='loss')`` run inside
        ``optim_wrapper.optim_context(self)`` (autocast, gradient-sync
        control); :meth:`parse_losses` and ``optim_wrapper.update_params`` run
        after it.

        Args:
            data: A batch from the dataloader.
            optim_wrapper: Updates the parameters from the total loss.

        Returns:
            The log variables from :meth:`parse_losses`.
        """
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses = self._run_forward(data, mode="loss")
        parsed_losses, log_vars = self.parse_losses(losses)
        optim_wrapper.update_params(parsed_losses)
        return log_vars

    def val_step(self, data: dict | tuple | list) -> Any:
        """Preprocess (``training=False``) and return ``forward(mode='predict')``."""
        data = self.data_preprocessor(data, False)
        return self._run_forward(data, mode="predict")

    def test_step(self, data: dict | tuple | list) -> Any:
        """Preprocess (``training=False``) and return ``forward(mode='predict')``."""
        data = self.data_preprocessor(data, False)
        return self._run_forward(data, mode="predict")

    def parse_losses(self, losses: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reduce the output of ``forward(mode='loss')`` to a total loss and log variables.

        Every entry is reduced with ``.mean()`` (a list of tensors: the sum of
        their means). The total loss is the sum of the entries whose key
        contains ``'loss'``. ``log_vars`` is an ``OrderedDict`` with ``'loss'``
        (the total) first, then the entries in order; an entry named exactly
        ``'loss'`` replaces the logged total. Values keep their autograd graph.

        Args:
            losses: Loss name -> tensor or non-empty list of tensors.

        Returns:
            The total loss and the log variables.

        Raises:
            TypeError: ``losses`` is not a dict, or a value is not a tensor or a
                non-empty list of tensors.
            ValueError: No key contains ``'loss'``.
        """
        if not isinstance(losses, Mapping):
            raise TypeAttributeError(
                "forward(mode='loss') must return a dict of loss tensors (or lists of tensors), "
                f"but got {type(losses).__name__}: '{type(losses).__name__}' object has no attribute 'items'"
            )
        reduced = []
        for name, value in losses.items():
            if isinstance(value, torch.Tensor):
                reduced.append((name, _mean(value)))
            elif isinstance(value, list) and value and all(isinstance(item, torch.Tensor) for item in value):
                reduced.append((name, _total([_mean(item) for item in value])))
            else:
                detail = type(value).__name__
                if isinstance(value, list):
                    detail = f"list of {sorted({type(item).__name__ for item in value})}" if value else "empty list"
                raise TypeError(
                    f"{name} is not a tensor or list of tensors: the loss {name!r} must be a tensor or a non-empty "
                    f"list of tensors, but got {detail}"
                )
        loss_terms = [value for name, value in reduced if "loss" in name]
        if not loss_terms:
            raise ValueError(
                "forward(mode='loss') returned no key containing 'loss' (case-sensitive), so there is "
                f"nothing to optimise; got keys {list(losses)}"
            )
        loss = _total(loss_terms)
        log_vars = OrderedDict(loss=loss)
        log_vars.update(reduced)
        return loss, log_vars

    def _run_forward(self, data: dict | tuple | list, mode: str) -> Any:
        """Call ``self`` with ``data`` unpacked: a dict by keyword, a list/tuple positionally."""
        if isinstance(data, dict):
            return self(**data, mode=mode)
        if isinstance(data, (list, tuple)):
            return self(*data, mode=mode)
        raise TypeError(
            "Output of `data_preprocessor` should be list, tuple or dict: "
            "the output of data_preprocessor should be a dict (passed to forward by keyword) or a "
            f"list/tuple (passed positionally), but got {type(data).__name__}"
        )

    def to(self, *args: Any, **kwargs: Any) -> Self:
        """``nn.Module.to`` that also moves the device of every data preprocessor inside."""
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        if device is not None:
            self._set_device(torch.device(device))
        return super().to(*args, **kwargs)

    def cuda(self, device: int | torch.device | None = None) -> Self:
        """``nn.Module.cuda`` that also moves the device of every data preprocessor inside."""
        if device is None or isinstance(device, int):
            device = torch.device("cuda", index=device)
        self._set_device(torch.device(device))
        return super().cuda(device)

    def cpu(self) -> Self:
        """``nn.Module.cpu`` that also moves the device of every data preprocessor inside."""
        self._set_device(torch.device("cpu"))
        return super().cpu()

    def _set_device(self, device: torch.device) -> None:
        """Set ``_device`` on every data preprocessor in this model (ours or MMEngine's)."""
        for module in self.modules():
            if _derives_from(module, "BaseDataPreprocessor"):
                module._device = device
