"""MMEngine's hooks (``mmengine.hooks``): the ``Hook`` base class, ``EMAHook`` and ``LoggerHook``'s options.

Plain Python: a hook is driven under Lightning by :class:`mm2lightning.lightning.HookDriver` (the Runner
registers it), with a runner view that gives hooks what MMEngine's Runner gives them.
"""

from mm2lightning.hooks.ema_hook import EMAHook
from mm2lightning.hooks.hook import Hook
from mm2lightning.hooks.logger_hook import LoggerHook
from mm2lightning.registry import HOOKS

__all__ = ["HOOKS", "EMAHook", "Hook", "LoggerHook"]
