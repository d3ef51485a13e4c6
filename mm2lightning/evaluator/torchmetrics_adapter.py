"""Use a torchmetrics ``Metric`` or ``MetricCollection`` where MMEngine expects a metric.

This module never imports torchmetrics itself: a torchmetrics object passed in
means torchmetrics is already imported.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from mm2lightning.dist import get_rank, get_world_size
from mm2lightning.evaluator.metric import _to_cpu, add_prefix
from mm2lightning.registry import METRICS

if TYPE_CHECKING:
    import torchmetrics

UpdateArgs = Callable[[Any, Sequence], tuple | Mapping[str, Any]]
"""``(data_batch, outputs) -> args tuple | kwargs dict`` for ``metric.update``."""


def is_torchmetrics_metric(obj: Any) -> bool:
    """Whether ``obj`` is a torchmetrics ``Metric`` or ``MetricCollection``."""
    tm = sys.modules.get("torchmetrics")
    return tm is not None and isinstance(obj, (tm.Metric, tm.MetricCollection))


@METRICS.register_module()
class TorchMetricsAdapter:
    """A torchmetrics ``Metric`` or ``MetricCollection`` with the interface of :class:`BaseMetric`.

    An :class:`Evaluator` holds it like any metric (and wraps torchmetrics
    objects given to it in this class), so the model's ``val_step`` outputs of
    each batch go to ``metric.update``, and ``evaluate`` returns
    ``metric.compute()`` as a dict of Python floats (0-d results; other results
    stay tensors, moved to the CPU) and resets the metric. torchmetrics
    synchronises the states of all ranks in ``compute``.

    ``update_args`` maps the batch and the outputs (as the Evaluator passes them:
    a list, ``BaseDataElement``\\ s converted to dicts) to the arguments of
    ``update``: it returns a tuple (``update(*args)``) or a dict
    (``update(**kwargs)``). Without it, outputs that are a pair of tensors are
    taken as ``update(preds, target)``; any other outputs raise a ``TypeError``.

    Example:
        >>> from torchmetrics.classification import MulticlassAccuracy
        >>> # val_step returns (logits, labels): the default mapping does
        >>> acc = TorchMetricsAdapter(MulticlassAccuracy(num_classes=10), prefix='val')
        >>> # val_step returns a list of dicts with 'pred_score'; the labels are in the batch
        >>> acc = TorchMetricsAdapter(
        ...     MulticlassAccuracy(num_classes=10),
        ...     update_args=lambda data_batch, outputs: (
        ...         torch.stack([o['pred_score'] for o in outputs]), data_batch['labels']),
        ... )
        >>> evaluator = Evaluator([acc])  # evaluate(size) -> {'MulticlassAccuracy': 0.93}

    The metric moves to the device of the first tensor among the update
    arguments. Each batch's ``update`` runs when the next batch arrives or in
    ``evaluate``: the last batch is held back so that, as ``BaseMetric`` does,
    samples past ``size`` (those a round-robin distributed sampler repeated as
    padding; at most the last sample of a rank) are dropped. Dropping slices the
    update arguments of that batch along their first dimension.

    Args:
        metric: A ``torchmetrics.Metric`` or ``torchmetrics.MetricCollection``.
        update_args: ``(data_batch, outputs) -> tuple | dict``, see above.
        name: The result's name for a single ``Metric`` (its class name by
            default); a ``MetricCollection`` uses its own keys, as does a
            ``Metric`` whose ``compute`` returns a dict.
        prefix: Put before every name as ``'{prefix}/{name}'``, like
            :class:`BaseMetric`'s.
    """

    def __init__(
        self,
        metric: torchmetrics.Metric | torchmetrics.MetricCollection,
        update_args: UpdateArgs | None = None,
        name: str | None = None,
        prefix: str | None = None,
    ) -> None:
        if not is_torchmetrics_metric(metric):
            raise TypeError(
                f"TorchMetricsAdapter wraps a torchmetrics Metric or MetricCollection, "
                f"but got {type(metric).__name__}: {metric!r}"
            )
        if update_args is not None and not callable(update_args):
            raise TypeError(
                "update_args must be a callable (data_batch, outputs) -> tuple | dict, "
                f"but got {type(update_args).__name__}: {update_args!r}"
            )
        if name is not None and isinstance(metric, sys.modules["torchmetrics"].MetricCollection):
            raise ValueError(
                f"name={name!r} only applies to a single Metric; a MetricCollection names its results by its keys "
                "(set its prefix/postfix, or this adapter's prefix, instead)"
            )
        self.metric = metric
        self.update_args = update_args
        self.name = name or type(metric).__name__
        self.prefix = prefix
        self.dataset_meta: dict | None = None
        self._device: torch.device | None = None
        self._pending: tuple[tuple, dict[str, Any], int | None] | None = None
        self._seen: int | None = 0  # samples held or updated this round; None once a batch has no length

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.metric).__name__}, prefix={self.prefix!r})"

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        """Map one batch to ``metric.update`` arguments; update with the previous batch.

        Args:
            data_batch: The batch from the dataloader.
            data_samples: The model's outputs for the batch.
        """
        args, kwargs = self._update_inputs(data_batch, data_samples)
        self._update_pending(size=None)
        tensor = _first_tensor((args, kwargs))
        if tensor is not None and tensor.device != self._device:
            self.metric.to(tensor.device)
            self._device = tensor.device
        length = _batch_len(args[0] if args else next(iter(kwargs.values()), None))
        self._pending = (args, kwargs, length)
        self._seen = None if self._seen is None or length is None else self._seen + length

    def evaluate(self, size: int) -> dict[str, Any]:
        """Compute the metric over all ranks' batches and reset it.

        Args:
            size: Length of the whole dataset; samples past it are dropped.

        Returns:
            ``{'{prefix}/{name}': value}``, the same on every rank.
        """
        self._update_pending(size)
        try:
            result = self.metric.compute()
        finally:
            self.metric.reset()
            self._seen = 0
        values = dict(result) if isinstance(result, Mapping) else {self.name: result}
        return add_prefix({k: _to_python(v) for k, v in values.items()}, self.prefix)

    def _update_inputs(self, data_batch: Any, data_samples: Sequence) -> tuple[tuple, dict[str, Any]]:
        if self.update_args is None:
            if (
                isinstance(data_samples, Sequence)
                and len(data_samples) == 2
                and all(isinstance(x, Tensor) for x in data_samples)
            ):
                return tuple(data_samples), {}
            raise TypeError(
                f"{self!r} cannot map the model outputs ({_describe(data_samples)}) to "
                f"{type(self.metric).__name__}.update: without update_args the outputs must be a (preds, target) pair "
                "of tensors. Pass update_args=lambda data_batch, outputs: (preds, target) returning the positional "
                "arguments of update (or a dict of keyword arguments)."
            )
        inputs = self.update_args(data_batch, data_samples)
        if isinstance(inputs, tuple):
            return inputs, {}
        if isinstance(inputs, Mapping):
            return (), dict(inputs)
        raise TypeError(
            "update_args must return a tuple (the positional arguments of update) or a dict (its keyword "
            f"arguments), but it returned {type(inputs).__name__}"
        )

    def _update_pending(self, size: int | None) -> None:
        """Run ``update`` on the held-back batch, cut to this rank's share of ``size`` samples when given."""
        if self._pending is None:
            return
        args, kwargs, length = self._pending
        self._pending = None
        if size is not None and self._seen is not None:
            keep = len(range(get_rank(), size, get_world_size())) - (self._seen - length)
            if keep <= 0:
                return
            if keep < length:
                args = tuple(_head(a, length, keep) for a in args)
                kwargs = {k: _head(v, length, keep) for k, v in kwargs.items()}
        self.metric.update(*args, **kwargs)


def _batch_len(first_input: Any) -> int | None:
    """The batch size: the length of the first update argument, if it has one."""
    if isinstance(first_input, Tensor):
        return len(first_input) if first_input.ndim else None
    return len(first_input) if isinstance(first_input, (list, tuple)) else None


def _head(value: Any, length: int, keep: int) -> Any:
    """The first ``keep`` items of a batched argument of ``length`` items; other arguments unchanged."""
    if _batch_len(value) == length:
        return value[:keep]
    return value


def _first_tensor(data: Any) -> Tensor | None:
    """The first tensor in nested lists, tuples and dicts, depth first."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, Mapping):
        data = data.values()
    elif not isinstance(data, (list, tuple)):
        return None
    for item in data:
        found = _first_tensor(item)
        if found is not None:
            return found
    return None


def _to_python(value: Any) -> Any:
    if isinstance(value, Tensor) and value.ndim == 0:
        return float(value)
    return _to_cpu(value)


def _describe(outputs: Any) -> str:
    if isinstance(outputs, (list, tuple)):
        kinds = ", ".join(sorted({type(o).__name__ for o in outputs}))
        return f"a {type(outputs).__name__} of {len(outputs)} item(s) of type {kinds or 'none'}"
    return f"a {type(outputs).__name__}"
