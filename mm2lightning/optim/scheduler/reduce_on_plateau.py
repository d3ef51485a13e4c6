"""Reduce a value when a validation metric stops improving, as MMEngine's ``ReduceOnPlateauParamScheduler``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mm2lightning.optim.base import BaseOptimWrapper
from mm2lightning.errors import AssertValueError
from mm2lightning.optim.scheduler.param_scheduler import INF, OptimizerType, _ParamScheduler, log
from mm2lightning.registry import PARAM_SCHEDULERS


@PARAM_SCHEDULERS.register_module()
class ReduceOnPlateauParamScheduler(_ParamScheduler):
    """Multiply the value by ``factor`` after ``patience`` epochs without improvement.

    Like PyTorch's ``ReduceLROnPlateau`` (``rule`` is its ``mode``).
    :meth:`step` without metrics only counts an epoch (the train-epoch hook);
    :meth:`step` with the validation metrics updates the value when the
    epoch count is in ``[begin, end)``. Construction does not step.

    Args:
        optimizer: The optimizer or optim wrapper.
        param_name: The param-group key to schedule.
        monitor: The metric to watch.
        rule: ``'less'`` (lower is better) or ``'greater'``.
        factor: The multiplier, below 1.
        patience: Epochs without improvement tolerated before reducing.
        threshold: The minimal change that counts as an improvement.
        threshold_rule: ``'rel'`` (relative to the best) or ``'abs'``.
        cooldown: Epochs to wait after a reduction before counting bad epochs again.
        min_value: Lower bound, or one per param group of the optimizer.
        eps: Reductions smaller than this are skipped.
        begin, end, last_step, verbose: As :class:`_ParamScheduler`.
        by_epoch: Must be ``True``.
    """

    need_val_args = True

    def __init__(
        self,
        optimizer: OptimizerType,
        param_name: str,
        monitor: str = "loss",
        rule: str = "less",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_rule: str = "rel",
        cooldown: int = 0,
        min_value: float | Sequence[float] = 0.0,
        eps: float = 1e-8,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        owner = type(self).__name__
        if not by_epoch:
            raise AssertValueError(
                f"{owner} only supports by_epoch=True (it steps on each epoch's validation metrics), "
                "so it cannot be iteration-based or use convert_to_iter_based "
                f"(Now {owner} only support by_epoch=True)"
            )
        if factor >= 1.0:
            raise ValueError(f"{owner}: factor must be < 1.0, but got {factor} (Factor should be < 1.0.)")
        if threshold < 0:
            raise ValueError(
                f"{owner}: threshold must be >= 0, but got {threshold} (threshold {threshold} should be >= 0.)"
            )
        if rule not in ("less", "greater"):
            raise ValueError(f"{owner}: rule must be 'less' or 'greater', but got {rule!r} (mode {rule} is unknown!)")
        if threshold_rule not in ("rel", "abs"):
            raise ValueError(
                f"{owner}: threshold_rule must be 'rel' or 'abs', but got {threshold_rule!r} "
                f"(threshold mode {threshold_rule} is unknown!)"
            )
        self._attach(optimizer, param_name, begin, end, last_step, by_epoch, verbose)
        self._global_step = 0
        self.factor = factor
        self.min_values = self._min_values(optimizer, min_value)
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.monitor = monitor
        self.rule = rule
        self.threshold = threshold
        self.threshold_rule = threshold_rule
        self.rule_worse = INF if rule == "less" else -INF
        self.best = self.rule_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0
        self._last_value = self._current_values()

    def _min_values(self, optimizer: OptimizerType, min_value: float | Sequence[float]) -> list[float]:
        """One bound per param group; a per-group list also bounds ``base_param_settings`` by its last entry."""
        if not isinstance(min_value, (list, tuple)):
            return [min_value] * len(optimizer.param_groups)
        wrapper = optimizer if isinstance(optimizer, BaseOptimWrapper) else None
        n_groups = len((wrapper.optimizer if wrapper else optimizer).param_groups)
        if len(min_value) != n_groups:
            raise ValueError(
                f"{type(self).__name__}: expected {n_groups} values for min_value (one per param group), "
                f"got {len(min_value)} (expected {n_groups} min_lrs, got {len(min_value)})"
            )
        tracks_base = wrapper is not None and wrapper.base_param_settings is not None
        return list(min_value) + ([min_value[-1]] if tracks_base else [])

    def step(self, metrics: Mapping[str, Any] | None = None) -> None:  # type: ignore[override]
        """Count an epoch (no ``metrics``), or judge ``metrics[monitor]`` and reduce if due.

        Args:
            metrics: The validation metrics, by name.
        """
        if metrics is None:
            self._global_step += 1
            return
        if not isinstance(metrics, dict):
            raise TypeError(
                f"{type(self).__name__}.step: metrics must be a dict, but got {type(metrics).__name__} "
                f"(metrics type should be dict, but got type {type(metrics)})"
            )
        if self.begin <= self._global_step < self.end:
            self.last_step += 1
            if self.monitor not in metrics:
                raise KeyError(
                    f"{type(self).__name__}: monitor {self.monitor!r} is not in the metrics {list(metrics)} "
                    f"(Excepted key in {list(metrics.keys())}, but got key {self.monitor} is not in dict)"
                )
            self._judge(metrics[self.monitor])
        self._last_value = self._current_values()

    def _judge(self, metric: Any) -> None:
        if self._is_better(metric, self.best):
            self.best = metric
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            for i, (group, value) in enumerate(zip(self.optimizer.param_groups, self._get_value())):
                if group[self.param_name] - value > self.eps:
                    group[self.param_name] = value
                    self.print_value(self.verbose, i, value)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0

    def _is_better(self, a: Any, best: Any) -> bool:
        if self.rule == "less":
            return a < (best * (1.0 - self.threshold) if self.threshold_rule == "rel" else best - self.threshold)
        return a > (best * (self.threshold + 1.0) if self.threshold_rule == "rel" else best + self.threshold)

    def _get_value(self) -> list[Any]:
        values = [float(value) * self.factor for value in self._current_values()]
        return [max(value, min_value) for value, min_value in zip(values, self.min_values)]

    def print_value(self, is_verbose: bool, group: int, value: float) -> None:
        """Log the new value of param group ``group``, with the epoch, when ``is_verbose``."""
        if is_verbose:
            step_name = "epoch" if self.by_epoch else "iter"
            log.info("Adjusting parameter value of group %d to %.4e in %s %d.", group, value, step_name, self.last_step)
