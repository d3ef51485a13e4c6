"""Registering hooks as MMEngine's ``Runner.register_hook`` does: built from configs, ordered by priority."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from mm2lightning.hooks.hook import Hook, triggered_stages
from mm2lightning.registry import HOOKS
from mm2lightning.runner.priority import get_priority

_POINT_PREFIXES = ("before_", "after_")


def check_hook_points(hook: Any) -> None:
    """Refuse a hook with a public ``before_*``/``after_*`` method that is no hook point (it would never run).

    Raises:
        AttributeError: Naming the hook, the method and the closest hook point.
    """
    for name, _ in inspect.getmembers(type(hook), callable):
        if name.startswith(_POINT_PREFIXES) and name not in Hook.stages:
            close = difflib.get_close_matches(name, Hook.stages, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise AttributeError(
                f"{type(hook).__name__}.{name} is not a hook point, so it would never be called.{hint} "
                f"Hook points: {', '.join(Hook.stages)}"
            )


class HookList:
    """Hooks in MMEngine's call order: ascending priority, ties in registration order.

    Takes :class:`~mm2lightning.hooks.Hook` instances, ``mmengine.hooks.Hook`` instances (any object with hook
    methods) and config dicts built through :data:`~mm2lightning.registry.HOOKS` (a ``priority`` key sets the
    priority, as in MMEngine).
    """

    def __init__(self, hooks: Iterable[Any] = ()) -> None:
        self._hooks: list[Any] = []
        for hook in hooks:
            self.register(hook)

    def register(self, hook: Any, priority: Any = None) -> Any:
        """Build (if a config), check and insert ``hook``; returns the hook object.

        Raises:
            TypeError: Not a hook or a config dict.
            PriorityError: An unknown priority name or an int out of [0, 100].
            AttributeError: A ``before_*``/``after_*`` method that is no hook point.
        """
        if isinstance(hook, Mapping):
            cfg = dict(hook)
            priority = cfg.pop("priority", None) if priority is None else priority
            hook = HOOKS.build(cfg)
        elif isinstance(hook, type) or not any(callable(getattr(hook, stage, None)) for stage in Hook.stages):
            raise TypeError(f"a hook must be a Hook instance (mm2lightning's or mmengine's) or a config dict, but got {hook!r}")
        if priority is not None:
            hook.priority = priority
        value = get_priority(getattr(hook, "priority", "NORMAL"))  # checked before the hook is inserted
        check_hook_points(hook)
        index = len(self._hooks)
        while index > 0 and get_priority(self._hooks[index - 1].priority) > value:
            index -= 1
        self._hooks.insert(index, hook)
        return hook

    def __iter__(self) -> Iterator[Any]:
        return iter(self._hooks)

    def __len__(self) -> int:
        return len(self._hooks)

    def at(self, stage: str) -> list[Any]:
        """The hooks that act at ``stage``, in call order."""
        return [hook for hook in self._hooks if stage in triggered_stages(hook)]
