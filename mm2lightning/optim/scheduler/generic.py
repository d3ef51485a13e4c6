"""Chainable schedulers of any param-group key, as MMEngine's ``*ParamScheduler``.

Each reads the group's current value, so schedulers of the same key compose
(multiplicatively for the decays). Formulas and their floating-point order of
operations follow MMEngine, so values are identical.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

from mm2lightning.errors import AssertValueError
from mm2lightning.optim.scheduler.param_scheduler import INF, OptimizerType, _ParamScheduler
from mm2lightning.registry import PARAM_SCHEDULERS


_FACTOR_PHRASE = {"factor": "Constant", "start_factor": "Starting", "end_factor": "Ending"}


def _check_factor(owner: str, name: str, factor: float) -> None:
    if not 0 <= factor <= 1.0:
        # Contains MMEngine's phrase, e.g. 'Constant multiplicative factor should between 0 and 1.'
        raise ValueError(
            f"{owner}: {name} must lie in [0, 1], but got {factor} "
            f"({_FACTOR_PHRASE[name]} multiplicative factor should between 0 and 1.)"
        )


class EtaMinError(AssertValueError):
    """Both or neither of ``eta_min`` and ``eta_min_ratio`` given.

    A ``ValueError`` that is also the ``AssertionError`` MMEngine raises for the same misuse.
    """


def _check_eta_min(owner: str, eta_min: float | None, eta_min_ratio: float | None) -> None:
    if (eta_min is None) == (eta_min_ratio is None):
        # The message contains MMEngine's phrase (its typo, the unclosed backquote, included).
        raise EtaMinError(
            f"{owner}: set exactly one of eta_min and eta_min_ratio, but got "
            f"eta_min={eta_min!r}, eta_min_ratio={eta_min_ratio!r} "
            "(Either `eta_min` or `eta_min_ratio should be specified)"
        )


@PARAM_SCHEDULERS.register_module()
class StepParamScheduler(_ParamScheduler):
    """Multiply the value by ``gamma`` every ``step_size`` steps.

    Args:
        optimizer: The optimizer or optim wrapper.
        param_name: The param-group key to schedule.
        step_size: Period of the decay, in steps.
        gamma: Multiplicative decay factor.
        begin, end, last_step, by_epoch, verbose: As :class:`_ParamScheduler`.
    """

    _epoch_scaled_args = ("step_size",)

    def __init__(
        self,
        optimizer: OptimizerType,
        param_name: str,
        step_size: int,
        gamma: float = 0.1,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[Any]:
        if self.last_step == 0 or self.last_step % self.step_size != 0:
            return self._current_values()
        return [value * self.gamma for value in self._current_values()]


@PARAM_SCHEDULERS.register_module()
class MultiStepParamScheduler(_ParamScheduler):
    """Multiply the value by ``gamma`` at each milestone (twice for a repeated one).

    Args:
        optimizer: The optimizer or optim wrapper.
        param_name: The param-group key to schedule.
        milestones: Steps (counted from ``begin``) at which to decay.
        gamma: Multiplicative decay factor.
        last_step, begin, end, by_epoch, verbose: As :class:`_ParamScheduler`.
    """

    _epoch_scaled_args = ("milestones",)

    def __init__(
        self,
        optimizer: OptimizerType,
        param_name: str,
        milestones: Sequence[int],
        gamma: float = 0.1,
        last_step: int = -1,
        begin: int = 0,
        end: int = INF,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[Any]:
        if self.last_step not in self.milestones:
            return self._current_values()
        factor = self.gamma ** self.milestones[self.last_step]
        return [value * factor for value in self._current_values()]


@PARAM_SCHEDULERS.register_module()
class ConstantParamScheduler(_ParamScheduler):
    """Multiply the value by ``factor`` from ``begin``, and restore it at step ``end - 1``.

    Args:
        optimizer: The optimizer or optim wrapper.
        param_name: The param-group key to schedule.
        factor: The multiplier, in [0, 1].
        begin, end, last_step, by_epoch, verbose: As :class:`_ParamScheduler`.
    """

    def __init__(
        self,
        optimizer: OptimizerType,
        param_name: str,
        factor: float = 1.0 / 3,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        _check_factor(type(self).__name__, "factor", factor)
        self.factor = factor
        self.total_iters = end - begin - 1
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[Any]:
        if self.last_step == 0:
            return [value * self.factor for value in self._current_values()]
        if self.last_step == self.total_iters:
            return [value * (1.0 / self.factor) for value in self._current_values()]
        return self._current_values()


@PARAM_SCHEDULERS.register_module()
class ExponentialParamScheduler(_ParamScheduler):
    """Multiply the value by ``gamma`` every step after the first.

    Args:
        optimizer: The optimizer or optim wrapper.
        param_name: The param-group key to schedule.
        gamma: Multiplicative decay factor.
        begin, end, last_step, by_epoch, verbose: As :class:`_ParamScheduler`.
    """

    def __init__(
        self,
        optimizer: OptimizerType,
        param_name: str,
        gamma: float,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        self.gamma = gamma
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[Any]:
        if self.last_step == 0:
            return self._current_values()
        return [value * self.gamma for value in self._current_values()]


class _EtaMinMixin:
    """``eta_min``, or ``eta_min_ratio`` times the group's base value."""

    eta_min: float | None
    eta_min_ratio: float | None

    def _eta_min(self, base_value: float) -> float:
        if self.eta_min_ratio is None:
            return self.eta_min  # type: ignore[return-value]
        return base_value * self.eta_min_ratio


@PARAM_SCHEDULERS.register_module()
class CosineAnnealingParamScheduler(_EtaMinMixin, _ParamScheduler):
    r"""Cosine annealing from the base value to ``eta_min`` over ``T_max`` steps (SGDR without restarts).

    Alone, the value is :math:`\eta_{min} + (\eta_{base} - \eta_{min})(1 + \cos(\pi t / T_{max})) / 2`;
    past ``T_max`` it rises again, as in PyTorch's chainable form.

    Args:
        optimizer: The optimizer or optim wrapper.
        param_name: The param-group key to schedule.
        T_max: Steps of the half cycle; ``None`` means ``end - begin``.
        eta_min: Minimum value; 0 when neither it nor ``eta_min_ratio`` is set.
        begin, end, last_step, by_epoch, verbose: As :class:`_ParamScheduler`.
        eta_min_ratio: Minimum value as a ratio of the base value.
    """

    _epoch_scaled_args = ("T_max",)

    def __init__(
        self,
        optimizer: OptimizerType,
        param_name: str,
        T_max: int | None = None,
        eta_min: float | None = None,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
        eta_min_ratio: float | None = None,
    ) -> None:
        if eta_min is None and eta_min_ratio is None:
            eta_min = 0.0
        _check_eta_min(type(self).__name__, eta_min, eta_min_ratio)
        self.T_max = T_max or (end - begin)
        self.eta_min = eta_min
        self.eta_min_ratio = eta_min_ratio
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[Any]:
        t, t_max = self.last_step, self.T_max
        if t == 0:
            return self._current_values()
        pairs = zip(self.base_values, self._current_values())
        if (t - 1 - t_max) % (2 * t_max) == 0:  # the trough: step up by the first decrement
            return [
                value + (base - self._eta_min(base)) * (1 - math.cos(math.pi / t_max)) / 2 for base, value in pairs
            ]
        ratio = (1 + math.cos(math.pi * t / t_max)) / (1 + math.cos(math.pi * (t - 1) / t_max))
        return [ratio * (value - self._eta_min(base)) + self._eta_min(base) for base, value in pairs]


@PARAM_SCHEDULERS.register_module()
class LinearParamScheduler(_ParamScheduler):
    """Scale the value by a factor going linearly from ``start_factor`` to ``end_factor``.

    The factor is ``start_factor`` at ``begin`` and ``end_factor`` at ``end - 1``.

    Args:
        optimizer: The optimizer or optim wrapper.
        param_name: The param-group key to schedule.
        start_factor: The first factor, in [0, 1].
        end_factor: The last factor, in [0, 1].
        begin, end, last_step, by_epoch, verbose: As :class:`_ParamScheduler`.
    """

    def __init__(
        self,
        optimizer: OptimizerType,
        param_name: str,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        _check_factor(type(self).__name__, "start_factor", start_factor)
        _check_factor(type(self).__name__, "end_factor", end_factor)
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = end - begin - 1
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[Any]:
        if self.last_step == 0:
            return [value * self.start_factor for value in self._current_values()]
        delta = self.end_factor - self.start_factor
        factor = 1.0 + delta / (self.total_iters * self.start_factor + (self.last_step - 1) * delta)
        return [value * factor for value in self._current_values()]


@PARAM_SCHEDULERS.register_module()
class PolyParamScheduler(_ParamScheduler):
    """Polynomial decay from the base value to ``eta_min`` at step ``end - 1``.

    Args:
        optimizer: The optimizer or optim wrapper.
        param_name: The param-group key to schedule.
        eta_min: The final value.
        power: The power of the polynomial.
        begin, end, last_step, by_epoch, verbose: As :class:`_ParamScheduler`.
    """

    def __init__(
        self,
        optimizer: OptimizerType,
        param_name: str,
        eta_min: float = 0,
        power: float = 1.0,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        self.eta_min = eta_min
        self.power = power
        self.total_iters = end - begin - 1
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[Any]:
        if self.last_step == 0:
            return self._current_values()
        factor = (1 - 1 / (self.total_iters - self.last_step + 1)) ** self.power
        return [(value - self.eta_min) * factor + self.eta_min for value in self._current_values()]


@PARAM_SCHEDULERS.register_module()
class CosineRestartParamScheduler(_EtaMinMixin, _ParamScheduler):
    """Cosine annealing with restarts: period ``i`` starts at ``base * restart_weights[i]``.

    After the last period the value is left as it is.

    Args:
        optimizer: The optimizer or optim wrapper.
        param_name: The param-group key to schedule.
        periods: The length of each cosine cycle, in steps.
        restart_weights: The weight of the base value at each restart.
        eta_min: The minimum value (set this or ``eta_min_ratio``).
        eta_min_ratio: The minimum value as a ratio of the base value.
        begin, end, last_step, by_epoch, verbose: As :class:`_ParamScheduler`.
    """

    _epoch_scaled_args = ("periods",)

    def __init__(
        self,
        optimizer: OptimizerType,
        param_name: str,
        periods: Sequence[int],
        restart_weights: Sequence[float] = (1,),
        eta_min: float | None = None,
        eta_min_ratio: float | None = None,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        _check_eta_min(type(self).__name__, eta_min, eta_min_ratio)
        if len(periods) != len(restart_weights):
            raise AssertValueError(
                f"{type(self).__name__}: periods and restart_weights should have the same length, "
                f"but got {len(periods)} and {len(restart_weights)}"
            )
        self.periods = periods
        self.eta_min = eta_min
        self.eta_min_ratio = eta_min_ratio
        self.restart_weights = restart_weights
        self.cumulative_periods = list(accumulate(periods))
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    @staticmethod
    def get_position_from_periods(iteration: int, cumulative_periods: Sequence[int]) -> int | None:
        """The index of the first cumulative period above ``iteration``, or ``None`` past the last."""
        return next((i for i, period in enumerate(cumulative_periods) if iteration < period), None)

    def _get_value(self) -> list[Any]:
        idx = self.get_position_from_periods(self.last_step, self.cumulative_periods)
        if idx is None:
            return self._current_values()
        t = self.last_step - (self.cumulative_periods[idx - 1] if idx else 0)
        weight, period = self.restart_weights[idx], self.periods[idx]
        pairs = zip(self.base_values, self._current_values())
        if t == 0:
            return [base * weight for base, _ in pairs]
        ratio = (1 + math.cos(math.pi * t / period)) / (1 + math.cos(math.pi * (t - 1) / period))
        return [ratio * (value - self._eta_min(base)) + self._eta_min(base) for base, value in pairs]
