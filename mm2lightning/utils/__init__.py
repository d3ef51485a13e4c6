"""MMEngine's ``mmengine.utils`` names that mm2lightning provides: ``ManagerMixin`` and ``ManagerMeta``."""

from mm2lightning.utils.manager import ManagerMeta, ManagerMixin

__all__ = ["ManagerMeta", "ManagerMixin"]
