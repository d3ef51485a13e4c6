"""``DefaultScope``: the scope in which config ``type`` names are looked up, as ``mmengine.registry.DefaultScope``."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

from mm2lightning.config.package_configs import MODULE2PACKAGE
from mm2lightning.utils import ManagerMixin

__all__ = ["MODULE2PACKAGE", "DefaultScope"]

_overwrite_ids = itertools.count()


class DefaultScope(ManagerMixin):
    """The scope (a toolbox's package name) whose registries resolve unscoped ``type`` names.

    As MMEngine's: the most recently created instance is current; the Runner creates one from its
    ``default_scope`` argument. Under mm2lightning the scope ``'mmengine'`` means mm2lightning's own
    registries.

    Args:
        name: Name of the instance.
        scope_name: The scope, e.g. ``'mmpretrain'``.

    Examples:
        >>> DefaultScope.get_instance('task', scope_name='mmpretrain')
        >>> DefaultScope.get_current_instance().scope_name
        'mmpretrain'
    """

    def __init__(self, name: str, scope_name: str) -> None:
        super().__init__(name)
        if not isinstance(scope_name, str):
            raise AssertionError(f"scope_name should be a string, but got {scope_name}")
        self._scope_name = scope_name

    @property
    def scope_name(self) -> str:
        """The scope this instance selects."""
        return self._scope_name

    @classmethod
    def get_current_instance(cls) -> DefaultScope | None:  # type: ignore[override]
        """The current default scope, or ``None`` when none was created."""
        return super().get_current_instance() if cls._instance_dict else None

    @classmethod
    @contextmanager
    def overwrite_default_scope(cls, scope_name: str | None) -> Iterator[None]:
        """Make ``scope_name`` current inside the block (nothing changes for ``None``)."""
        if scope_name is None:
            yield
            return
        saved = cls._instance_dict.copy()
        cls.get_instance(f"overwrite-{next(_overwrite_ids)}", scope_name=scope_name)
        try:
            yield
        finally:
            cls._instance_dict.clear()
            cls._instance_dict.update(saved)

