"""Hook priorities, as ``mmengine.runner.priority``: lower values run first."""

from __future__ import annotations

from enum import Enum


class Priority(Enum):
    """Hook priority levels (MMEngine's names and values)."""

    HIGHEST = 0
    VERY_HIGH = 10
    HIGH = 30
    ABOVE_NORMAL = 40
    NORMAL = 50
    BELOW_NORMAL = 60
    LOW = 70
    VERY_LOW = 90
    LOWEST = 100


class PriorityError(ValueError, KeyError):
    """A priority that is not a :class:`Priority` name, member or an int in [0, 100].

    A ``KeyError`` for unknown names and a ``ValueError`` for ints out of range, as MMEngine raises.
    """

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""


def get_priority(priority: int | str | Priority) -> int:
    """Return the int value of ``priority`` (an int in [0, 100], a :class:`Priority` or its name, any case).

    Raises:
        PriorityError: An unknown name or an int out of range.
        TypeError: Any other type.
    """
    if isinstance(priority, bool):
        raise TypeError(f"priority must be an integer or Priority enum value, but got {priority!r}")
    if isinstance(priority, int):
        if not 0 <= priority <= 100:
            raise PriorityError(f"priority must be between 0 and 100, but got {priority}")
        return priority
    if isinstance(priority, Priority):
        return priority.value
    if isinstance(priority, str):
        try:
            return Priority[priority.upper()].value
        except KeyError:
            names = ", ".join(p.name for p in Priority)
            raise PriorityError(f"unknown hook priority {priority!r}; expected one of {names} or an int in [0, 100]") from None
    raise TypeError(f"priority must be an integer or Priority enum value, but got {type(priority).__name__}: {priority!r}")
