"""``MessageHub``: MMEngine's store of logged scalars and runtime information, reachable by name."""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from mm2lightning.logging.history_buffer import HistoryBuffer
from mm2lightning.logging.logger import print_log
from mm2lightning.utils.manager import ManagerMixin


class MessageHub(ManagerMixin):
    """Logged scalars (``HistoryBuffer`` per key: losses, learning rates, metrics) and runtime information
    (``iter``, ``epoch``, ..., overwritten by each update), shared between components by instance name.

    As MMEngine's, except that :meth:`update_scalar` hands a tensor to the
    :class:`HistoryBuffer` as it is instead of calling ``.item()``: an
    accelerator's tensors are converted when the buffer is read, so feeding the
    hub every iteration costs no host sync, and readers see MMEngine's values.

    Examples:
        >>> hub = MessageHub.get_instance('task')
        >>> hub.update_scalar('train/loss', torch.tensor(0.5))
        >>> hub.update_info('iter', 10)
        >>> float(hub.get_scalar('train/loss').current()), hub.get_info('iter')
        (0.5, 10)

    Args:
        name: Instance name.
        log_scalars: Initial ``{key: HistoryBuffer}``.
        runtime_info: Initial ``{key: value}``.
        resumed_keys: ``{key: bool}``: which keys of the two :meth:`state_dict` saves.
    """

    def __init__(
        self,
        name: str,
        log_scalars: dict[str, HistoryBuffer] | None = None,
        runtime_info: dict[str, Any] | None = None,
        resumed_keys: dict[str, bool] | None = None,
    ) -> None:
        super().__init__(name)
        self._log_scalars: OrderedDict[str, HistoryBuffer] = self._parse_input("log_scalars", log_scalars)
        self._runtime_info: OrderedDict[str, Any] = self._parse_input("runtime_info", runtime_info)
        self._resumed_keys: OrderedDict[str, bool] = self._parse_input("resumed_keys", resumed_keys)
        for value in self._log_scalars.values():
            if not isinstance(value, HistoryBuffer):
                raise AssertionError(f"The type of log_scalars'value must be HistoryBuffer, but got {type(value)}")
        for key in self._resumed_keys:
            if key not in self._log_scalars and key not in self._runtime_info:
                raise AssertionError(
                    f"Key in `resumed_keys` must contained in `log_scalars` or `runtime_info`, but got {key}"
                )

    @classmethod
    def get_current_instance(cls) -> MessageHub:
        """The most recently created hub; one named ``'mmengine'`` is created if there is none."""
        if not cls._instance_dict:
            cls.get_instance("mmengine")
        return super().get_current_instance()

    def update_scalar(
        self, key: str, value: int | float | np.ndarray | torch.Tensor, count: int = 1, resumed: bool = True
    ) -> None:
        """Append ``value`` (a number, a one-element array or tensor) with ``count`` to the buffer of ``key``.

        Raises:
            AssertionError: ``value`` has more than one element, or ``resumed`` differs from an earlier
                update of ``key``.
            TypeError: ``count`` is not an int.
        """
        self._set_resumed_keys(key, resumed)
        checked_value = self._get_valid_value(value)
        if not isinstance(count, int):  # a TypeError in MMEngine too (from its assertion's message)
            raise TypeError(f"The type of count must be int, but got {type(count)}: {count}")
        if key in self._log_scalars:
            self._log_scalars[key].update(checked_value, count)
        else:
            self._log_scalars[key] = HistoryBuffer([checked_value], [count])

    def update_scalars(self, log_dict: dict[str, Any], resumed: bool = True) -> None:
        """:meth:`update_scalar` for each item; a value may be ``dict(value=..., count=...)``."""
        if not isinstance(log_dict, dict):
            raise AssertionError(f"`log_dict` must be a dict!, but got {type(log_dict)}")
        for log_name, log_val in log_dict.items():
            if isinstance(log_val, dict):
                if "value" not in log_val:
                    raise AssertionError(f"value must be defined in {log_val}")
                count = self._get_valid_value(log_val.get("count", 1))
                if isinstance(count, torch.Tensor):
                    count = count.item()
                value = log_val["value"]
            else:
                count, value = 1, log_val
            if not isinstance(count, int):
                raise TypeError(f"The type of count must be int, but got {type(count)}: {count}")
            self.update_scalar(log_name, value, count, resumed)

    def update_info(self, key: str, value: Any, resumed: bool = True) -> None:
        """Set the runtime information ``key`` to ``value`` (overwriting)."""
        self._set_resumed_keys(key, resumed)
        self._runtime_info[key] = value

    def pop_info(self, key: str, default: Any = None) -> Any:
        """Remove and return the runtime information ``key`` (``default`` when absent)."""
        return self._runtime_info.pop(key, default)

    def update_info_dict(self, info_dict: dict[str, Any], resumed: bool = True) -> None:
        """:meth:`update_info` for each item."""
        if not isinstance(info_dict, dict):
            raise AssertionError(f"`log_dict` must be a dict!, but got {type(info_dict)}")
        for key, value in info_dict.items():
            self.update_info(key, value, resumed=resumed)

    def _set_resumed_keys(self, key: str, resumed: bool) -> None:
        if key not in self._resumed_keys:
            self._resumed_keys[key] = resumed
        elif self._resumed_keys[key] != resumed:
            raise AssertionError(
                f"{key} used to be {self._resumed_keys[key]}, but got {resumed} now. resumed keys cannot be "
                "modified repeatedly."
            )

    @property
    def log_scalars(self) -> OrderedDict[str, HistoryBuffer]:
        """All buffers (the hub's own dict, not a copy)."""
        return self._log_scalars

    @property
    def runtime_info(self) -> OrderedDict[str, Any]:
        """All runtime information (the hub's own dict, not a copy)."""
        return self._runtime_info

    def get_scalar(self, key: str) -> HistoryBuffer:
        """The buffer of ``key`` (a reference).

        Raises:
            KeyError: No scalar ``key`` was logged.
        """
        if key not in self.log_scalars:
            raise KeyError(
                f"{key} is not found in Messagehub.log_buffers: instance name is: {self.instance_name} "
                f"(keys: {list(self.log_scalars)})"
            )
        return self.log_scalars[key]

    def get_info(self, key: str, default: Any = None) -> Any:
        """The runtime information ``key`` (a reference), or ``default`` when absent."""
        return self._runtime_info.get(key, default)

    @staticmethod
    def _get_valid_value(value: Any) -> Any:
        """A number for a number or a one-element array; a one-element tensor stays a tensor (read later)."""
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise AssertionError(f"a logged tensor must have one element, but got shape {tuple(value.shape)}")
            return value
        if isinstance(value, (np.ndarray, np.number)):
            if value.size != 1:
                raise AssertionError(f"a logged array must have one element, but got shape {value.shape}")
            return value.item()
        if isinstance(value, (int, float)):
            return value
        if not (hasattr(value, "numel") and value.numel() == 1):
            raise AssertionError(
                f"a logged value must be a number or have one element, but got {type(value).__name__} "
                f"{getattr(value, 'shape', '')}"
            )
        return value.item()

    def state_dict(self) -> dict[str, Any]:
        """``log_scalars``, ``runtime_info`` (the keys resumed as ``True``, copied) and ``resumed_keys``."""
        saved_scalars: OrderedDict[str, HistoryBuffer] = OrderedDict()
        saved_info: OrderedDict[str, Any] = OrderedDict()
        for key, value in self._log_scalars.items():
            if self._resumed_keys.get(key, False):
                saved_scalars[key] = copy.deepcopy(value)
        for key, value in self._runtime_info.items():
            if self._resumed_keys.get(key, False):
                saved_info[key] = self._copy_or_reference(key, value)
        return dict(log_scalars=saved_scalars, runtime_info=saved_info, resumed_keys=self._resumed_keys)

    @staticmethod
    def _copy_or_reference(key: str, value: Any) -> Any:
        try:
            return copy.deepcopy(value)
        except Exception:  # as MMEngine: anything that cannot be copied is kept by reference
            print_log(f"{key} in message_hub cannot be copied, just return its reference. ", logger="current",
                      level=logging.WARNING)
            return value

    def load_state_dict(self, state_dict: MessageHub | dict[str, Any]) -> None:
        """Load a :meth:`state_dict` (or copy everything from another ``MessageHub``), as MMEngine.

        Non-``HistoryBuffer`` scalars and ``resumed_keys`` naming nothing loaded are skipped with a warning.
        """
        if not isinstance(state_dict, dict):
            self._log_scalars = copy.deepcopy(state_dict._log_scalars)
            self._runtime_info = copy.deepcopy(state_dict._runtime_info)
            self._resumed_keys = copy.deepcopy(state_dict._resumed_keys)
            return
        for key in ("log_scalars", "runtime_info", "resumed_keys"):
            if key not in state_dict:
                raise AssertionError(f"The loaded `state_dict` of `MessageHub` must contain key: `{key}`")
        for key, value in state_dict["log_scalars"].items():
            if not isinstance(value, HistoryBuffer):
                print_log(f"{key} in message_hub is not HistoryBuffer, just skip resuming it.", logger="current",
                          level=logging.WARNING)
                continue
            self.log_scalars[key] = value
        for key, value in state_dict["runtime_info"].items():
            self._runtime_info[key] = self._copy_or_reference(key, value)
        for key, value in state_dict["resumed_keys"].items():
            if key not in set(self.log_scalars) | set(self._runtime_info):
                print_log(f"resumed key: {key} is not defined in message_hub, just skip resuming this key.",
                          logger="current", level=logging.WARNING)
                continue
            if not value:
                print_log(
                    f"Although resumed key: {key} is False, {key} will still be loaded this time. This key will "
                    "not be saved by the next calling of `MessageHub.state_dict()`",
                    logger="current", level=logging.WARNING,
                )
            self._resumed_keys[key] = value

    @staticmethod
    def _parse_input(name: str, value: Any) -> OrderedDict[str, Any]:
        if value is None:
            return OrderedDict()
        if isinstance(value, dict):
            return OrderedDict(value)
        raise TypeError(f"{name} should be a dict or `None`, but got {type(value)}")
