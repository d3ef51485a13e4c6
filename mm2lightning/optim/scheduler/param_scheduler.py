"""The base parameter scheduler, as ``mmengine.optim._ParamScheduler``."""

from __future__ import annotations

import functools
import logging
import warnings
import weakref
from typing import Any, ClassVar, Union

from torch.optim import Optimizer

from mm2lightning.optim.base import BaseOptimWrapper
from mm2lightning.errors import AssertValueError

log = logging.getLogger(__name__)

INF = int(1e9)
"""The default ``end``: a step no schedule reaches."""

OptimizerType = Union[Optimizer, BaseOptimWrapper]

_ORDER_DOCS = "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"


def check_optimizer(optimizer: Any, owner: str) -> None:
    """Raise ``TypeError`` unless ``optimizer`` is one a scheduler can drive.

    Args:
        optimizer: The object given to a scheduler.
        owner: The scheduler's class name, for the message.
    """
    if not isinstance(optimizer, (Optimizer, BaseOptimWrapper)):
        raise TypeError(
            f"{owner}: optimizer must be a torch.optim.Optimizer or a BaseOptimWrapper "
            f"(e.g. OptimWrapper), but got {type(optimizer).__name__} (``optimizer`` should be an Optimizer)"
        )
    if not isinstance(optimizer.param_groups, list):
        raise TypeError(
            f"{owner}: optimizer must hold a list of param groups, but {type(optimizer).__name__} "
            "holds several optimizers; build one scheduler per wrapper of an OptimWrapperDict"
        )


def _count_optimizer_steps(optimizer: OptimizerType) -> None:
    """Make ``optimizer.step`` count its calls in ``optimizer._global_step`` (reset to -1)."""
    method = optimizer.step
    if not getattr(method, "_with_counter", False):
        # Hold the unbound function and a weak reference, not the bound method:
        # the optimizer keeps the wrapper, which must not keep the optimizer.
        func = getattr(method, "__func__", None)
        if func is None:  # step is already a plain callable: call it as it is
            func = functools.partial(_call_ignoring_instance, method)
        instance_ref = weakref.ref(optimizer)

        @functools.wraps(func)
        def step(*args: Any, **kwargs: Any) -> Any:
            instance = instance_ref()
            instance._global_step += 1  # type: ignore[union-attr]
            return func(instance, *args, **kwargs)

        step._with_counter = True  # type: ignore[attr-defined]
        optimizer.step = step  # type: ignore[method-assign]
    optimizer._global_step = -1  # type: ignore[union-attr]


def _call_ignoring_instance(method: Any, _instance: Any, *args: Any, **kwargs: Any) -> Any:
    return method(*args, **kwargs)


class _ParamScheduler:
    """Base class of schedulers that set ``param_name`` in every param group.

    Subclasses implement :meth:`_get_value`, which returns the new value of
    each group, usually read from the group's current value ("chainable"), so
    that several schedulers on the same parameter compose multiplicatively.
    The schedule runs on steps ``begin <= step < end``; outside them the
    value is left as it is. Construction performs the first :meth:`step`.

    Args:
        optimizer: A ``torch.optim.Optimizer`` or an optim wrapper.
        param_name: The param-group key to schedule, e.g. ``'lr'``.
        begin: The first step that updates the value.
        end: The step at which updates stop (exclusive).
        last_step: The index of the last step, to resume without a state
            dict; ``-1`` means a fresh start.
        by_epoch: Whether :meth:`step` is called once per epoch (else per
            iteration).
        verbose: Log each new value.
    """

    need_val_args: ClassVar[bool] = False
    """Whether :meth:`step` takes the validation metrics."""

    _epoch_scaled_args: ClassVar[tuple[str, ...]] = ()
    """Keyword arguments counted in epochs, multiplied by :meth:`build_iter_from_epoch`."""

    def __init__(
        self,
        optimizer: OptimizerType,
        param_name: str,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        self._attach(optimizer, param_name, begin, end, last_step, by_epoch, verbose)
        self.base_values = [group[f"initial_{param_name}"] for group in optimizer.param_groups]
        _count_optimizer_steps(optimizer)
        self._global_step = -1
        self.step()

    def _attach(
        self,
        optimizer: OptimizerType,
        param_name: str,
        begin: int,
        end: int,
        last_step: int,
        by_epoch: bool,
        verbose: bool,
    ) -> None:
        """Validate the arguments, set the common attributes and the ``initial_*`` keys."""
        check_optimizer(optimizer, type(self).__name__)
        if end <= begin:
            raise ValueError(
                f"{type(self).__name__}: end must be larger than begin, but got begin={begin}, end={end} "
                "(end should be larger than begin)"
            )
        if isinstance(last_step, bool) or not isinstance(last_step, int) or last_step < -1:
            raise AssertValueError(f"{type(self).__name__}: last_step must be an int >= -1, but got {last_step!r}")
        self.optimizer = optimizer
        self.param_name = param_name
        self.begin = begin
        self.end = end
        self.by_epoch = by_epoch
        self.last_step = last_step
        self.verbose = verbose
        key = f"initial_{param_name}"
        for i, group in enumerate(optimizer.param_groups):
            if last_step == -1:
                group.setdefault(key, group[param_name])
            elif key not in group:
                raise KeyError(f"param {key!r} is not specified in param_groups[{i}] when resuming an optimizer")

    @classmethod
    def build_iter_from_epoch(
        cls,
        *args: Any,
        begin: int = 0,
        end: int = INF,
        by_epoch: bool = True,
        epoch_length: int | None = None,
        **kwargs: Any,
    ) -> _ParamScheduler:
        """Build an iteration-based scheduler from epoch-based arguments.

        ``begin`` and ``end`` (unless ``INF``) become ``int(x * epoch_length)``;
        the class's epoch-counted arguments (``step_size``, ``milestones``,
        ``T_max``, ``periods``, ``total_steps``) are multiplied by ``epoch_length``.

        Args:
            *args: Positional arguments of the constructor.
            begin: The first epoch.
            end: The end epoch (exclusive).
            by_epoch: Must be ``True``: the arguments are counted in epochs.
            epoch_length: Iterations per epoch, positive.
            **kwargs: Other keyword arguments of the constructor.
        """
        if not by_epoch:
            raise AssertValueError(
                f"{cls.__name__}: only by_epoch=True arguments can be converted to iteration-based "
                "(Only epoch-based kwargs whose `by_epoch=True` can be converted to iter-based.)"
            )
        if epoch_length is None or epoch_length <= 0:
            raise AssertValueError(
                f"{cls.__name__}: `epoch_length` must be a positive integer, but got {epoch_length!r}."
            )
        for name in cls._epoch_scaled_args:
            value = kwargs.get(name)
            if isinstance(value, (list, tuple)):
                kwargs[name] = [v * epoch_length for v in value]
            elif value is not None:
                kwargs[name] = value * epoch_length
        begin = int(begin * epoch_length)
        if end != INF:
            end = int(end * epoch_length)
        return cls(*args, begin=begin, end=end, by_epoch=False, **kwargs)

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the attributes saved by :meth:`state_dict`."""
        self.__dict__.update(state_dict)

    def get_last_value(self) -> list[Any]:
        """The value of ``param_name`` in each group after the last :meth:`step`."""
        return self._last_value

    def _get_value(self) -> list[Any]:
        """The new value of each param group at ``self.last_step``."""
        raise NotImplementedError

    def _current_values(self) -> list[Any]:
        """The value of ``param_name`` in each group now."""
        return [group[self.param_name] for group in self.optimizer.param_groups]

    def print_value(self, is_verbose: bool, group: int, value: float) -> None:
        """Log the new value of param group ``group`` when ``is_verbose``."""
        if is_verbose:
            log.info("Adjusting parameter value of group %d to %.4e.", group, value)

    def _warn_on_step_order(self) -> None:
        if not getattr(self.optimizer.step, "_with_counter", False):
            warnings.warn(
                "Seems like `optimizer.step()` has been overridden after parameter value scheduler "
                "initialization. Please, make sure to call `optimizer.step()` before `scheduler.step()`. "
                f"See more details at {_ORDER_DOCS}",
                UserWarning,
                stacklevel=3,
            )
        elif self.optimizer._global_step < 0:  # type: ignore[union-attr]
            warnings.warn(
                "Detected call of `scheduler.step()` before `optimizer.step()`. You should call them in "
                "the opposite order: `optimizer.step()` before `scheduler.step()`. Failure to do this "
                f"will result in skipping the first value of the parameter value schedule. See {_ORDER_DOCS}",
                UserWarning,
                stacklevel=3,
            )

    def step(self) -> None:
        """Advance one step and, inside ``[begin, end)``, set each group's new value."""
        if self._global_step == 0:
            self._warn_on_step_order()
        self._global_step += 1
        if self.begin <= self._global_step < self.end:
            self.last_step += 1
            for i, (group, value) in enumerate(zip(self.optimizer.param_groups, self._get_value())):
                group[self.param_name] = value
                self.print_value(self.verbose, i, value)
        self._last_value = self._current_values()
