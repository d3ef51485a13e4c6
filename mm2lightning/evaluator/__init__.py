"""Metrics and the evaluator that runs them, as ``mmengine.evaluator``, plus torchmetrics support.

Importing this package imports neither Lightning nor torchmetrics.

The distributed helpers metrics use live in :mod:`mm2lightning.dist`.

Example:
    >>> from mm2lightning.evaluator import Evaluator, TorchMetricsAdapter
    >>> evaluator = Evaluator([dict(type='Accuracy'), TorchMetricsAdapter(MulticlassF1Score(num_classes=10))])
"""

from mm2lightning.evaluator.builder import build_evaluator
from mm2lightning.evaluator.evaluator import Evaluator
from mm2lightning.evaluator.metric import BaseMetric, DumpResults
from mm2lightning.evaluator.torchmetrics_adapter import TorchMetricsAdapter
from mm2lightning.evaluator.utils import get_metric_value

__all__ = [
    "BaseMetric",
    "DumpResults",
    "Evaluator",
    "TorchMetricsAdapter",
    "build_evaluator",
    "get_metric_value",
]
