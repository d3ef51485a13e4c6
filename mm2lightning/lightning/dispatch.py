"""Where Lightning's hook dispatch would only call no-op hooks, make the calls it would make, directly.

Lightning calls every hook through loops over the callbacks and the module, each call inside a
profiler context and with the module's ``_current_fx_name`` set around it: about 5 us per hook on a
CPU, a tenth of a small model's iteration over the few hooks of backward, the optimizer step and the
batch transfer. Where nothing overrides those hooks and no profiler records them, the result of that
dispatch is known: the same calls, without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.strategies import Strategy
from lightning.pytorch.utilities.model_helpers import is_overridden

_STRATEGY_STEPS = ("backward", "pre_backward", "post_backward", "optimizer_step")
_MODULE_HOOKS = ("backward", "on_before_backward", "on_after_backward")
_CALLBACK_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
_BATCH_HOOKS = ("on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer")


def dispatch_is_plain(trainer: pl.Trainer, step_hook: Callable[..., Any]) -> bool:
    """Whether Lightning's backward and step dispatch would only run ``loss.backward()``, the module's
    ``on_before_optimizer_step`` (``step_hook``, the module class's own) and ``optimizer.step()``.

    True when the strategy and the precision plugin (``'32-true'``) add nothing to them, no profiler
    records them, the module overrides none of ``backward``/``on_before_backward``/``on_after_backward``
    and no callback overrides a hook of theirs: every other hook call there would be a no-op.
    """
    strategy = trainer.strategy
    if type(strategy.precision_plugin) is not Precision or type(trainer.profiler) is not PassThroughProfiler:
        return False
    if any(getattr(type(strategy), name) is not getattr(Strategy, name) for name in _STRATEGY_STEPS):
        return False
    module = trainer.lightning_module
    if any(is_overridden(name, module, pl.LightningModule) for name in _MODULE_HOOKS):
        return False
    if getattr(module.on_before_optimizer_step, "__func__", None) is not step_hook:
        return False
    return not any(is_overridden(name, cb, pl.Callback) for cb in trainer.callbacks for name in _CALLBACK_HOOKS)


def batch_hooks_are_plain(trainer: pl.Trainer, module: pl.LightningModule) -> bool:
    """Whether the batch hooks (``on_before_batch_transfer``, ``transfer_batch_to_device``,
    ``on_after_batch_transfer``) are the LightningModule's own on the module and on the datamodule, if any,
    and no profiler records them: Lightning's dispatch would call the module's, which pass the batch on
    and move it to the device."""
    if type(trainer.profiler) is not PassThroughProfiler:
        return False
    datamodule = trainer.datamodule
    return not any(
        is_overridden(name, module, pl.LightningModule)
        or (datamodule is not None and is_overridden(name, datamodule, pl.LightningDataModule))
        for name in _BATCH_HOOKS
    )


class DirectBatchHooks:
    """A ``LightningModule`` mixin: its batch hooks are called directly in the Trainer runs where
    :func:`batch_hooks_are_plain` (decided in ``setup``, when the run's datamodule and profiler are known),
    through Lightning's dispatch otherwise."""

    _plain_batch_hooks = False

    def setup(self, stage: str) -> None:
        object.__setattr__(self, "_plain_batch_hooks", batch_hooks_are_plain(self.trainer, self))  # type: ignore
        super().setup(stage)  # type: ignore[misc]

    def _call_batch_hook(self, hook_name: str, *args: Any) -> Any:
        if self._plain_batch_hooks and self._trainer is not None:  # type: ignore[attr-defined]
            return getattr(self, hook_name)(*args)
        return super()._call_batch_hook(hook_name, *args)  # type: ignore[misc]
