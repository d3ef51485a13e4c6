"""``get_metric_value``, as in ``mmengine.evaluator.utils``."""

from __future__ import annotations

from typing import Any


def get_metric_value(indicator: str, metrics: dict[str, Any]) -> Any:
    """Look up a metric by full name (``'val/accuracy'``) or by name alone (``'accuracy'``).

    Args:
        indicator: A full name with prefix, or a name that matches the part
            after the last ``'/'`` of exactly one key.
        metrics: The results of :meth:`Evaluator.evaluate`.

    Raises:
        ValueError: No key, or more than one key, matches.
    """
    if "/" in indicator:
        if indicator in metrics:
            return metrics[indicator]
        raise ValueError(f'The indicator "{indicator}" can not match any metric in {list(metrics)}')
    matched = [k for k in metrics if k.split("/")[-1] == indicator]
    if not matched:
        raise ValueError(f"The indicator {indicator} can not match any metric in {list(metrics)}")
    if len(matched) > 1:
        raise ValueError(f'The indicator "{indicator}" matches multiple metrics {matched}')
    return metrics[matched[0]]
