"""``HistoryBuffer``: MMEngine's log history with statistics, fed device tensors without a host sync."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

_Value = int | float | torch.Tensor


class HistoryBuffer:
    """The history of one logged value and its counts, with windowed statistics (MMEngine's).

    As MMEngine's, but :meth:`update` also takes a one-element tensor. One on
    an accelerator is kept as it is (detached) and the pending ones are
    converted in one go (one ``torch.stack(...).tolist()`` per device and dtype)
    when the history is read (:attr:`data`, :meth:`mean`, :meth:`statistics`,
    ...), so a training loop that updates every iteration never waits for the
    device; a CPU tensor is read at once (there is nothing to wait for). A
    reader sees exactly the values MMEngine's ``.item()`` per update gives.
    Accelerator tensors handed to :meth:`update` must not be changed in place
    afterwards.

    Examples:
        >>> buffer = HistoryBuffer()
        >>> buffer.update(1)
        >>> buffer.update(torch.tensor(2.0))
        >>> buffer.mean()
        1.5

    Args:
        log_history: Initial values (numbers, or one-element tensors).
        count_history: Their counts.
        max_length: How many of the latest values are kept.
    """

    _statistics_methods: dict[str, Callable[..., Any]] = dict()
    _MAX_PENDING = 1024  # pending tensors converted at least this often (bounds the memory they hold)

    def __init__(self, log_history: Sequence[_Value] = (), count_history: Sequence[int | float] = (),
                 max_length: int = 1000000) -> None:
        self.max_length = max_length
        self._set_default_statistics()
        if len(log_history) != len(count_history):
            raise AssertionError(
                f"The lengths of log_history ({len(log_history)}) and count_history ({len(count_history)}) "
                "should be equal"
            )
        if len(log_history) > max_length:
            warnings.warn(
                f"The length of history buffer({len(log_history)}) exceeds the max_length({max_length}), the "
                "first few elements will be ignored.",
                stacklevel=2,
            )
            log_history, count_history = log_history[-max_length:], count_history[-max_length:]
        self._pending: list[_Value] = []
        self._pending_counts: list[int | float] = []
        if any(isinstance(value, torch.Tensor) for value in log_history):
            # arrays made from the first conversion, so their dtypes are np.array(log_history)'s, as MMEngine
            self._logs: np.ndarray | None = None
            self._counts: np.ndarray | None = None
            self._start = self._stop = 0
            for value, count in zip(log_history, count_history):
                self.update(value, count)
        else:
            self._logs, self._counts = np.array(log_history), np.array(count_history)
            self._start, self._stop = 0, len(self._logs)

    def _set_default_statistics(self) -> None:
        """Register the default statistics: min, max, current and mean."""
        self._statistics_methods.setdefault("min", HistoryBuffer.min)
        self._statistics_methods.setdefault("max", HistoryBuffer.max)
        self._statistics_methods.setdefault("current", HistoryBuffer.current)
        self._statistics_methods.setdefault("mean", HistoryBuffer.mean)

    def update(self, log_val: _Value, count: int | float = 1) -> None:
        """Append ``log_val`` (a number, or a one-element tensor kept unconverted) with ``count``.

        Raises:
            TypeError: ``log_val`` is not an int, a float or a tensor, or ``count`` not an int or a float.
        """
        is_tensor = isinstance(log_val, torch.Tensor)
        if not (is_tensor or isinstance(log_val, (int, float))) or not isinstance(count, (int, float)):
            raise TypeError(
                f"log_val must be int, float or a one-element tensor but got {type(log_val)}, count must be int "
                f"but got {type(count)}"
            )
        if is_tensor:
            if log_val.numel() != 1:
                raise TypeError(f"log_val must be a one-element tensor, but got shape {tuple(log_val.shape)}")
            if log_val.is_cpu:
                log_val = log_val.item()
            else:
                if log_val.requires_grad:
                    log_val = log_val.detach()
                if log_val.dim():
                    log_val = log_val.reshape(())
        self._pending.append(log_val)
        self._pending_counts.append(count)
        if len(self._pending) > self._MAX_PENDING:
            self._convert_pending()

    def _convert_pending(self) -> None:
        values, counts = self._pending, self._pending_counts
        self._pending, self._pending_counts = [], []
        if not self._fit_in_place(values, counts):
            self._append_values(values, counts)
        self._start = max(self._start, self._stop - self.max_length)

    def _append_values(self, values: list[_Value], counts: list[int | float]) -> None:
        """Append numbers and tensors (read in one host transfer per device and dtype, exact as ``.item()``)."""
        groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        for index, value in enumerate(values):
            if isinstance(value, torch.Tensor):
                groups.setdefault((value.device, value.dtype), []).append(index)
        for indices in groups.values():
            converted = torch.stack([values[i] for i in indices]).tolist()
            for index, number in zip(indices, converted):
                values[index] = number
        new_logs, new_counts = np.array(values), np.array(counts)
        if self._logs is None:
            self._logs, self._counts, self._start, self._stop = new_logs, new_counts, 0, len(new_logs)
        else:
            self._append(new_logs, new_counts)

    def _fit_in_place(self, values: list[_Value], counts: list[int | float]) -> bool:
        """Write floats with int counts straight into float64/int64 arrays with room for them (what every
        iteration's update is): the same values as through :meth:`_append`, without its temporary arrays."""
        logs, log_counts, stop = self._logs, self._counts, self._stop
        if logs is None or log_counts is None or stop + len(values) > len(logs):
            return False
        if logs.dtype != np.float64 or log_counts.dtype != np.int64:
            return False
        if not (all(type(value) is float for value in values) and all(type(count) is int for count in counts)):
            return False
        logs[stop : stop + len(values)] = values
        log_counts[stop : stop + len(values)] = counts
        self._stop = stop + len(values)
        return True

    def _append(self, logs: np.ndarray, counts: np.ndarray) -> None:
        """Append in amortized constant time (the dtypes promote as MMEngine's ``np.append``)."""
        assert self._logs is not None and self._counts is not None
        size = len(logs)
        log_dtype, count_dtype = np.result_type(self._logs, logs), np.result_type(self._counts, counts)
        if self._stop + size > len(self._logs) or log_dtype != self._logs.dtype or count_dtype != self._counts.dtype:
            keep = min(self._stop - self._start, self.max_length)
            capacity = 2 * (keep + size) + 64
            grown_logs, grown_counts = np.empty(capacity, log_dtype), np.empty(capacity, count_dtype)
            grown_logs[:keep] = self._logs[self._stop - keep : self._stop]
            grown_counts[:keep] = self._counts[self._stop - keep : self._stop]
            self._logs, self._counts, self._start, self._stop = grown_logs, grown_counts, 0, keep
        self._logs[self._stop : self._stop + size] = logs
        self._counts[self._stop : self._stop + size] = counts
        self._stop += size

    @property
    def _log_history(self) -> np.ndarray:
        """The kept values (MMEngine's attribute, read by custom statistics methods)."""
        if self._pending:
            self._convert_pending()
        assert self._logs is not None
        return self._logs[self._start : self._stop]

    @property
    def _count_history(self) -> np.ndarray:
        """The kept counts."""
        if self._pending:
            self._convert_pending()
        assert self._counts is not None
        return self._counts[self._start : self._stop]

    @property
    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """The kept values and their counts."""
        return self._log_history, self._count_history

    @classmethod
    def register_statistics(cls, method: Callable[..., Any]) -> Callable[..., Any]:
        """Register ``method`` (called as ``method(buffer, *args)``) under its name for :meth:`statistics`.

        Raises:
            AssertionError: A method of that name is registered already.
        """
        method_name = method.__name__
        if method_name in cls._statistics_methods:
            raise AssertionError(f"method_name cannot be registered twice! ({method_name!r} is registered)")
        cls._statistics_methods[method_name] = method
        return method

    def statistics(self, method_name: str, *arg: Any, **kwargs: Any) -> Any:
        """Call the statistics method registered as ``method_name``.

        Raises:
            KeyError: No method of that name is registered.
        """
        if method_name not in self._statistics_methods:
            raise KeyError(
                f"{method_name} has not been registered in HistoryBuffer._statistics_methods "
                f"(registered: {sorted(self._statistics_methods)})"
            )
        return self._statistics_methods[method_name](self, *arg, **kwargs)

    @staticmethod
    def _window(window_size: int | None, length: int) -> int:
        if window_size is None:
            return length
        if not isinstance(window_size, int):
            raise AssertionError(f"The type of window size should be int, but got {type(window_size)}")
        return window_size

    def mean(self, window_size: int | None = None) -> np.ndarray:
        """The count-weighted mean of the latest ``window_size`` values (all when ``None`` or larger)."""
        logs, counts = self.data
        window_size = self._window(window_size, len(logs))
        return logs[-window_size:].sum() / counts[-window_size:].sum()

    def max(self, window_size: int | None = None) -> np.ndarray:
        """The maximum of the latest ``window_size`` values (all when ``None`` or larger)."""
        logs = self._log_history
        return logs[-self._window(window_size, len(logs)) :].max()

    def min(self, window_size: int | None = None) -> np.ndarray:
        """The minimum of the latest ``window_size`` values (all when ``None`` or larger)."""
        logs = self._log_history
        return logs[-self._window(window_size, len(logs)) :].min()

    def current(self) -> np.ndarray:
        """The latest value.

        Raises:
            ValueError: The buffer is empty.
        """
        logs = self._log_history
        if len(logs) == 0:
            raise ValueError("HistoryBuffer._log_history is an empty array! please call update first")
        return logs[-1]

    def __getstate__(self) -> dict[str, Any]:
        """MMEngine's pickled layout: ``max_length``, ``_log_history``, ``_count_history``, ``statistics_methods``."""
        return dict(
            max_length=self.max_length,
            _log_history=self._log_history.copy(),
            _count_history=self._count_history.copy(),
            statistics_methods=self._statistics_methods,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickled buffer (MMEngine's layout), registering its statistics methods.

        Unlike MMEngine, methods already registered under a name are kept (an MMEngine pickle does not
        replace the default ``mean``).
        """
        state = dict(state)
        self._set_default_statistics()
        for method_name, method in state.pop("statistics_methods", {}).items():
            self._statistics_methods.setdefault(method_name, method)
        self._logs = np.asarray(state.pop("_log_history"))
        self._counts = np.asarray(state.pop("_count_history"))
        self._start, self._stop = 0, len(self._logs)
        self._pending, self._pending_counts = [], []
        self.__dict__.update(state)
