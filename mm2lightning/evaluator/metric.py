"""``BaseMetric`` and ``DumpResults``, as in ``mmengine.evaluator.metric``."""

from __future__ import annotations

import logging
import pickle
from abc import ABCMeta, abstractmethod
from collections.abc import Sequence
from typing import Any

from torch import Tensor

from mm2lightning.dist import COLLECT_DEVICES, broadcast_object, collect_results, get_rank
from mm2lightning.registry import METRICS

log = logging.getLogger(__name__)


class BaseMetric(metaclass=ABCMeta):
    """Base class of a metric that accumulates per-batch results, as MMEngine's.

    ``process`` turns each batch into entries of ``self.results``; ``evaluate``
    gathers the entries of all ranks, computes the metrics on rank 0 with
    ``compute_metrics`` and returns the same dict on every rank.

    Subclasses should set the class attribute ``default_prefix``.

    Args:
        collect_device: How results are gathered across ranks: ``'cpu'`` or
            ``'gpu'`` (see :func:`~mm2lightning.dist.collect_results`).
        prefix: Put before every metric name as ``'{prefix}/{name}'`` to tell
            apart metrics of the same name. Defaults to ``default_prefix``.
        collect_dir: A directory shared by all ranks to gather results through
            files; only with ``collect_device='cpu'``.

    Example:
        >>> class Accuracy(BaseMetric):
        ...     default_prefix = 'val'
        ...     def process(self, data_batch, data_samples):
        ...         score, gt = data_samples
        ...         self.results.append({'batch_size': len(gt), 'correct': (score.argmax(1) == gt).sum()})
        ...     def compute_metrics(self, results):
        ...         correct = sum(r['correct'] for r in results)
        ...         return dict(accuracy=100 * correct / sum(r['batch_size'] for r in results))
    """

    default_prefix: str | None = None

    def __init__(self, collect_device: str = "cpu", prefix: str | None = None, collect_dir: str | None = None) -> None:
        if collect_device not in COLLECT_DEVICES:
            raise ValueError(f"collect_device must be one of {COLLECT_DEVICES}, but got {collect_device!r}")
        if collect_dir is not None and collect_device != "cpu":
            raise ValueError(
                f"collect_dir can only be set when collect_device='cpu', but got collect_device={collect_device!r} "
                "(`collec_dir` could only be configured when `collect_device='cpu'`)"
            )
        self._dataset_meta: dict | None = None
        self.collect_device = collect_device
        self.results: list[Any] = []
        self.prefix = prefix or self.default_prefix
        self.collect_dir = collect_dir
        if self.prefix is None:
            log.warning("The prefix is not set in metric class %s.", type(self).__name__)

    @property
    def dataset_meta(self) -> dict | None:
        """Meta information of the dataset (e.g. class names), set by the Evaluator."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict | None) -> None:
        self._dataset_meta = dataset_meta

    @abstractmethod
    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        """Turn one batch into entries appended to ``self.results``.

        Args:
            data_batch: The batch from the dataloader.
            data_samples: The model's outputs for the batch (``val_step``'s
                return value, ``BaseDataElement``\\ s converted to dicts).
        """

    @abstractmethod
    def compute_metrics(self, results: list) -> dict[str, Any]:
        """Compute the metrics from the results of the whole dataset.

        Args:
            results: The entries of ``self.results`` of all ranks, on the CPU.

        Returns:
            Metric names mapped to values (without the prefix).
        """

    def evaluate(self, size: int) -> dict[str, Any]:
        """Compute the metrics over all processed batches and clear the results.

        Args:
            size: Length of the whole dataset; results beyond it (samples a
                distributed sampler repeated as padding) are dropped.

        Returns:
            ``{'{prefix}/{name}': value}``, the same on every rank.
        """
        if not self.results:
            log.warning(
                "%s got empty `self.results`. Please ensure that the processed results are properly "
                "added into `self.results` in `process` method.",
                type(self).__name__,
            )
        results = collect_results(self.results, size, self.collect_device, tmpdir=self.collect_dir)
        metrics = None
        if get_rank() == 0:
            metrics = add_prefix(self.compute_metrics(_to_cpu(results)), self.prefix)
        metrics = broadcast_object(metrics)
        self.results.clear()
        return metrics


@METRICS.register_module()
class DumpResults(BaseMetric):
    """Dump the model outputs to a pickle file, for offline evaluation.

    Args:
        out_file_path: The file to write; must end with ``.pkl`` or ``.pickle``.
        collect_device: See :class:`BaseMetric`.
        collect_dir: See :class:`BaseMetric`.
    """

    def __init__(self, out_file_path: str, collect_device: str = "cpu", collect_dir: str | None = None) -> None:
        super().__init__(collect_device=collect_device, collect_dir=collect_dir)
        if not out_file_path.endswith((".pkl", ".pickle")):
            raise ValueError(
                "The output file must be a pkl file. "
                f"out_file_path must end with '.pkl' or '.pickle', but got {out_file_path!r}"
            )
        self.out_file_path = out_file_path

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        """Keep the outputs, moved to the CPU."""
        self.results.extend(_to_cpu(data_samples))

    def compute_metrics(self, results: list) -> dict[str, Any]:
        """Write ``results`` to ``out_file_path``; there are no metrics."""
        with open(self.out_file_path, "wb") as f:
            pickle.dump(results, f)
        log.info("Results has been saved to %s.", self.out_file_path)
        return {}


def add_prefix(metrics: dict[str, Any], prefix: str | None) -> dict[str, Any]:
    """Return ``metrics`` with keys ``'{prefix}/{key}'``, or unchanged without a prefix."""
    return {f"{prefix}/{k}": v for k, v in metrics.items()} if prefix else metrics


def is_data_element(obj: Any) -> bool:
    """Whether ``obj`` looks like MMEngine's ``BaseDataElement`` (has ``to_dict()`` and ``to()``)."""
    return callable(getattr(obj, "to_dict", None)) and callable(getattr(obj, "to", None))


def _to_cpu(data: Any) -> Any:
    """Move the tensors and data elements in nested lists, tuples and dicts to the CPU."""
    if isinstance(data, Tensor) or is_data_element(data):
        return data.to("cpu")
    if isinstance(data, list):
        return [_to_cpu(d) for d in data]
    if isinstance(data, tuple):
        return tuple(_to_cpu(d) for d in data)
    if isinstance(data, dict):
        return {k: _to_cpu(v) for k, v in data.items()}
    return data
