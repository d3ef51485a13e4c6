"""``ManagerMixin``: named, globally reachable instances (MMEngine's ``mmengine.utils.manager``)."""

from __future__ import annotations

import inspect
import threading
import warnings
from collections import OrderedDict
from typing import Any, TypeVar

_lock = threading.RLock()
_T = TypeVar("_T", bound="ManagerMixin")


class ManagerMeta(type):
    """Metaclass giving each class its own ordered ``_instance_dict``; the constructor must take ``name``."""

    def __init__(cls, *args: Any) -> None:
        cls._instance_dict: OrderedDict[str, Any] = OrderedDict()
        params = inspect.getfullargspec(cls)
        if "name" not in (params.args or []):
            raise AssertionError(f"{cls} must have the `name` argument: its __init__ takes {params.args}")
        super().__init__(*args)


class ManagerMixin(metaclass=ManagerMeta):
    """Base class of classes whose instances are reached by name from anywhere (``MessageHub``, ``MMLogger``).

    As MMEngine's: :meth:`get_instance` creates the instance of a name once and
    returns it afterwards; :meth:`get_current_instance` returns the most recently
    *created* instance (fetching an existing one does not make it current).

    Args:
        name: Name of the instance, a non-empty string.
    """

    def __init__(self, name: str = "", **kwargs: Any) -> None:
        if not (isinstance(name, str) and name):
            raise AssertionError(f"name argument must be an non-empty string, but got {name!r}")
        self._instance_name = name

    @classmethod
    def get_instance(cls: type[_T], name: str, **kwargs: Any) -> _T:
        """Return the instance called ``name``, creating it with ``kwargs`` if there is none yet.

        Extra ``kwargs`` for an existing instance are ignored with a warning, as MMEngine.
        """
        if not isinstance(name, str):
            raise AssertionError(f"type of name should be str, but got {type(name)}")
        with _lock:
            instance_dict = cls._instance_dict
            if name not in instance_dict:
                instance_dict[name] = cls(name=name, **kwargs)
            elif kwargs:
                warnings.warn(
                    f"{cls} instance named of {name} has been created, the method `get_instance` should not "
                    "accept any other arguments",
                    stacklevel=2,
                )
            return instance_dict[name]

    @classmethod
    def get_current_instance(cls: type[_T]) -> _T:
        """Return the most recently created instance.

        Raises:
            RuntimeError: No instance was created yet.
        """
        with _lock:
            if not cls._instance_dict:
                raise RuntimeError(
                    f"Before calling {cls.__name__}.get_current_instance(), you should call "
                    "get_instance(name=xxx) at least once."
                )
            return cls._instance_dict[next(reversed(cls._instance_dict))]

    @classmethod
    def check_instance_created(cls, name: str) -> bool:
        """Return whether an instance called ``name`` exists."""
        return name in cls._instance_dict

    @property
    def instance_name(self) -> str:
        """The instance's name."""
        return self._instance_name
