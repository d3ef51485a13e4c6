"""``Evaluator``, as in ``mmengine.evaluator.evaluator``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any, Union

from mm2lightning.errors import AssertValueError
from mm2lightning.evaluator.metric import BaseMetric, is_data_element
from mm2lightning.evaluator.torchmetrics_adapter import TorchMetricsAdapter, is_torchmetrics_metric
from mm2lightning.registry import METRICS

if TYPE_CHECKING:
    import torchmetrics

MetricLike = Union[
    BaseMetric, TorchMetricsAdapter, Mapping[str, Any], "torchmetrics.Metric", "torchmetrics.MetricCollection"
]
"""What an Evaluator accepts as one metric: an instance, a ``METRICS`` config dict, or a torchmetrics object."""


class Evaluator:
    """Run several metrics over the same model outputs and merge their results.

    Args:
        metrics: One metric or a list of them. Each is a :class:`BaseMetric`, a
            config dict built through ``METRICS``, a
            :class:`TorchMetricsAdapter`, or a torchmetrics ``Metric`` /
            ``MetricCollection`` (wrapped in a :class:`TorchMetricsAdapter` with
            the default ``update_args``).

    Example:
        >>> evaluator = Evaluator([dict(type='Accuracy'), MulticlassAccuracy(num_classes=10)])
        >>> for data_batch in val_dataloader:
        ...     evaluator.process(model.val_step(data_batch), data_batch)
        >>> evaluator.evaluate(len(val_dataloader.dataset))
    """

    def __init__(self, metrics: MetricLike | Sequence[MetricLike]) -> None:
        self._dataset_meta: dict | None = None
        if isinstance(metrics, (str, bytes)) or not isinstance(metrics, Sequence):
            metrics = [metrics]
        self.metrics: list[BaseMetric | TorchMetricsAdapter] = [_as_metric(m) for m in metrics]

    @property
    def dataset_meta(self) -> dict | None:
        """Meta information of the dataset; setting it sets it on every metric."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict | None) -> None:
        self._dataset_meta = dataset_meta
        for metric in self.metrics:
            metric.dataset_meta = dataset_meta

    def process(self, data_samples: Sequence, data_batch: Any = None) -> None:
        """Pass one batch to every metric's ``process(data_batch, data_samples)``.

        Note the argument order, MMEngine's: outputs first, then the batch. The
        outputs are iterated into a list; ``BaseDataElement``\\ s become dicts.

        Args:
            data_samples: The model's ``val_step``/``test_step`` outputs.
            data_batch: The batch from the dataloader.
        """
        samples = [s.to_dict() if is_data_element(s) else s for s in data_samples]
        for metric in self.metrics:
            metric.process(data_batch, samples)

    def evaluate(self, size: int) -> dict[str, Any]:
        """Evaluate every metric and merge the results.

        Args:
            size: Length of the whole dataset (see :meth:`BaseMetric.evaluate`).

        Returns:
            All metrics' results in one dict.

        Raises:
            ValueError: Two metrics return the same name.
        """
        results: dict[str, Any] = {}
        for metric in self.metrics:
            metric_results = metric.evaluate(size)
            for name in metric_results:
                if name in results:
                    raise ValueError(
                        f"There are multiple evaluation results with the same metric name {name}. "
                        "Please make sure all metrics have different prefixes."
                    )
            results.update(metric_results)
        return results

    def offline_evaluate(
        self, data_samples: Sequence, data: Sequence | None = None, chunk_size: int = 1
    ) -> dict[str, Any]:
        """Evaluate outputs computed beforehand (e.g. dumped by ``DumpResults``).

        Args:
            data_samples: The outputs of every sample of the dataset.
            data: The samples of the dataset, in the same order; each chunk is
                collated as MMEngine's ``pseudo_collate`` (lists, not stacked
                tensors) into ``data_batch``.
            chunk_size: How many samples make one ``process`` call.

        Returns:
            The merged results, as :meth:`evaluate`.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, but got {chunk_size!r}")
        if data is not None and len(data) != len(data_samples):
            raise AssertValueError(  # MMEngine asserts
                "data_samples and data should have the same length, but got "
                f"data_samples length: {len(data_samples)} data length: {len(data)}"
            )
        data_chunks = _chunks(data, chunk_size) if data is not None else None
        size = 0
        for output_chunk in _chunks(data_samples, chunk_size):
            data_batch = _pseudo_collate(next(data_chunks)) if data_chunks is not None else None
            size += len(output_chunk)
            self.process(output_chunk, data_batch)
        return self.evaluate(size)


def _as_metric(metric: MetricLike) -> BaseMetric | TorchMetricsAdapter:
    """Build a config dict and wrap a torchmetrics object; reject what cannot be a metric."""
    if isinstance(metric, Mapping):
        metric = METRICS.build(metric)
    if is_torchmetrics_metric(metric):
        return TorchMetricsAdapter(metric)
    if callable(getattr(metric, "process", None)) and callable(getattr(metric, "evaluate", None)):
        return metric
    raise TypeError(
        "an Evaluator metric must be a BaseMetric, a config dict for the METRICS registry, a TorchMetricsAdapter "
        f"or a torchmetrics Metric/MetricCollection, but got {type(metric).__name__}: {metric!r}"
    )


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _pseudo_collate(batch: Sequence) -> Any:
    """Transpose a list of samples into a batch without stacking, as MMEngine's ``pseudo_collate``."""
    first = batch[0]
    if isinstance(first, (str, bytes)):
        return batch
    if isinstance(first, tuple) and hasattr(first, "_fields"):  # namedtuple
        return type(first)(*(_pseudo_collate(field) for field in zip(*batch, strict=True)))
    if isinstance(first, Sequence):
        if any(len(sample) != len(first) for sample in batch):
            raise RuntimeError("every sample of a batch should have the same length")
        fields = [_pseudo_collate(field) for field in zip(*batch, strict=True)]
        if isinstance(first, tuple):
            return fields
        try:
            return type(first)(fields)
        except TypeError:  # a sequence type that cannot be built from a list (e.g. range)
            return fields
    if isinstance(first, Mapping):
        return type(first)({key: _pseudo_collate([sample[key] for sample in batch]) for key in first})
    return batch
