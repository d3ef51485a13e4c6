"""The 1cycle policy, as ``mmengine.optim.OneCycleParamScheduler``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from mm2lightning.errors import AssertValueError
from mm2lightning.optim.scheduler.param_scheduler import INF, OptimizerType, _ParamScheduler, check_optimizer
from mm2lightning.registry import PARAM_SCHEDULERS


def _anneal_cos(start: float, end: float, pct: float) -> float:
    """Cosine from ``start`` (pct 0) to ``end`` (pct 1)."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _anneal_linear(start: float, end: float, pct: float) -> float:
    """Straight line from ``start`` (pct 0) to ``end`` (pct 1)."""
    return (end - start) * pct + start


_ANNEAL = {"cos": _anneal_cos, "linear": _anneal_linear}


@PARAM_SCHEDULERS.register_module()
class OneCycleParamScheduler(_ParamScheduler):
    """The 1cycle policy (Super-Convergence, arXiv:1708.07120), for the learning rate only.

    The value rises from ``eta_max / div_factor`` to ``eta_max`` over the first
    ``pct_start`` of ``total_steps``, then falls to ``eta_max / div_factor /
    final_div_factor``; ``three_phase`` goes back to the start value first.
    Not chainable: it writes ``initial_lr``, ``max_lr`` and ``min_lr`` into the
    param groups (overwriting them on a fresh start) and sets absolute values.

    Args:
        optimizer: The optimizer or optim wrapper.
        param_name: Must be ``'lr'``.
        eta_max: The peak value, or one per param group.
        total_steps: Steps in the cycle; ``None`` means ``end - begin``.
        pct_start: Fraction of the cycle spent rising, a float in [0, 1].
        anneal_strategy: ``'cos'`` or ``'linear'``.
        div_factor: The start value is ``eta_max / div_factor``.
        final_div_factor: The final value is the start value / ``final_div_factor``.
        three_phase: Rise, fall back to the start value, then anneal to the final one.
        begin, end, last_step, by_epoch, verbose: As :class:`_ParamScheduler`.
    """

    _epoch_scaled_args = ("total_steps",)

    def __init__(
        self,
        optimizer: OptimizerType,
        param_name: str,
        eta_max: float | Sequence[float] = 0,
        total_steps: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        owner = type(self).__name__
        check_optimizer(optimizer, owner)
        if param_name != "lr":
            raise AssertValueError(
                f"{owner} only schedules the learning rate ('lr'), but got param_name={param_name!r} "
                f"(OneCycle only works for learning rate updating, but got patam_name as {param_name})"
            )
        if total_steps is not None and (not isinstance(total_steps, int) or total_steps <= 0):
            raise ValueError(
                f"{owner}: total_steps must be a positive integer, but got {total_steps!r} "
                f"(Expected positive integer total_steps, but got {total_steps})"
            )
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(
                f"{owner}: pct_start must be a float in [0, 1], but got {pct_start!r} "
                f"(Expected float between 0 and 1 pct_start, but got {pct_start})"
            )
        if anneal_strategy not in _ANNEAL:
            raise ValueError(
                f"{owner}: anneal_strategy must be 'cos' or 'linear', but got {anneal_strategy!r} "
                f'(anneal_strategy must by one of "cos" or "linear", instead got {anneal_strategy})'
            )
        groups = optimizer.param_groups
        if isinstance(eta_max, (list, tuple)) and len(eta_max) != len(groups):
            raise ValueError(
                f"{owner}: expected {len(groups)} values for eta_max (one per param group), got {len(eta_max)} "
                f"(expected {len(groups)} values for max_{param_name}, got {len(eta_max)})"
            )
        self.eta_max = eta_max
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor
        self.total_steps = end - begin if total_steps is None else total_steps
        self.anneal_strategy = anneal_strategy
        self._schedule_phases = self._phases(param_name, pct_start, three_phase)
        if last_step == -1:
            max_values = eta_max if isinstance(eta_max, (list, tuple)) else [eta_max] * len(groups)
            for group, max_value in zip(groups, max_values):
                group[f"initial_{param_name}"] = max_value / div_factor
                group[f"max_{param_name}"] = max_value
                group[f"min_{param_name}"] = group[f"initial_{param_name}"] / final_div_factor
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _phases(self, name: str, pct_start: float, three_phase: bool) -> list[dict[str, Any]]:
        """Each phase: its last step and the group keys of its start and end values."""
        rise_end = float(pct_start * self.total_steps) - 1
        initial, peak, final = f"initial_{name}", f"max_{name}", f"min_{name}"
        bounds = [(rise_end, initial, peak)]
        if three_phase:
            fall_end = float(2 * pct_start * self.total_steps) - 2
            bounds += [(fall_end, peak, initial), (self.total_steps - 1, initial, final)]
        else:
            bounds += [(self.total_steps - 1, peak, final)]
        return [{"end_step": stop, f"start_{name}": start, f"end_{name}": to} for stop, start, to in bounds]

    def _get_value(self) -> list[Any]:
        t = self.last_step
        if t > self.total_steps:
            raise ValueError(f"Tried to step {t + 1} times. The specified number of total steps is {self.total_steps}")
        anneal = _ANNEAL[self.anneal_strategy]
        last = len(self._schedule_phases) - 1
        values = []
        for group in self.optimizer.param_groups:
            start_step: float = 0
            for i, phase in enumerate(self._schedule_phases):
                if t <= phase["end_step"] or i == last:
                    pct = (t - start_step) / (phase["end_step"] - start_step)
                    start, end = group[phase[f"start_{self.param_name}"]], group[phase[f"end_{self.param_name}"]]
                    values.append(anneal(start, end, pct))
                    break
                start_step = phase["end_step"]
        return values
