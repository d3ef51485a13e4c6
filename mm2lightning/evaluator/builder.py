"""``build_evaluator``: the forms ``val_evaluator``/``test_evaluator`` take, as ``Runner.build_evaluator``."""

from __future__ import annotations

from collections.abc import Mapping

from mm2lightning.evaluator.evaluator import Evaluator, MetricLike
from mm2lightning.evaluator.metric import BaseMetric
from mm2lightning.evaluator.torchmetrics_adapter import TorchMetricsAdapter, is_torchmetrics_metric
from mm2lightning.registry import METRICS


def build_evaluator(cfg: Evaluator | MetricLike | list[MetricLike] | None) -> Evaluator | None:
    """Build an :class:`Evaluator` from what a config gives.

    Args:
        cfg: One of

            - ``None``: returns ``None`` (no evaluation);
            - an :class:`Evaluator`: returned as is;
            - a dict with ``'metrics'``: ``Evaluator(**cfg)``; its optional
              ``type`` is ``'Evaluator'`` or a subclass of :class:`Evaluator`;
            - a metric config dict, a :class:`BaseMetric`, a
              :class:`TorchMetricsAdapter` or a torchmetrics ``Metric`` /
              ``MetricCollection``: an Evaluator of that one metric;
            - a list of metrics in any of these forms.

    Example:
        >>> build_evaluator(dict(type='Accuracy'))
        >>> build_evaluator(dict(metrics=[dict(type='Accuracy'), MulticlassAccuracy(num_classes=10)]))
    """
    if cfg is None or isinstance(cfg, Evaluator):
        return cfg
    if isinstance(cfg, Mapping) and "metrics" in cfg:
        args = dict(cfg)
        scope = args.pop("_scope_", None)  # as MMEngine: the metrics are built in that scope
        evaluator_type = args.pop("type", Evaluator)
        if evaluator_type in ("Evaluator", "mmengine.Evaluator"):
            evaluator_type = Evaluator
        if not (isinstance(evaluator_type, type) and issubclass(evaluator_type, Evaluator)):
            raise ValueError(
                "the type of an evaluator config (a dict with 'metrics') must be 'Evaluator' or a subclass of "
                f"Evaluator, but got {evaluator_type!r}"
            )
        with METRICS.switch_scope_and_registry(scope):
            return evaluator_type(**args)
    if isinstance(cfg, (Mapping, list, BaseMetric, TorchMetricsAdapter)) or is_torchmetrics_metric(cfg):
        return Evaluator(cfg)
    if callable(getattr(cfg, "process", None)) and callable(getattr(cfg, "evaluate", None)):
        return Evaluator(cfg)  # a metric on another base class: a toolbox's mmengine BaseMetric
    raise TypeError(
        "an evaluator must be None, an Evaluator, a dict (with 'metrics', or one metric config), a BaseMetric, "
        "a TorchMetricsAdapter, a torchmetrics Metric/MetricCollection, or a list of metrics, "
        f"but got {type(cfg).__name__}: {cfg!r}"
    )
