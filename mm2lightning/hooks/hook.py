"""``Hook``: MMEngine's hook points and helpers, as ``mmengine.hooks.Hook``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DATA_BATCH = dict | tuple | list | None


class Hook:
    """Base class of hooks: override the points you need.

    The Runner (under Lightning, :class:`mm2lightning.lightning.HookDriver`) calls
    each point on every registered hook in priority order, with a runner view as
    ``runner``. The epoch and iteration points of the three stages call
    ``_before_epoch``/``_after_epoch``/``_before_iter``/``_after_iter`` with
    ``mode='train'|'val'|'test'``, so one override covers all stages.

    Attributes:
        priority: ``'NORMAL'`` by default; a :class:`~mm2lightning.runner.Priority`
            name or member, or an int in [0, 100] (lower runs first).
    """

    priority: Any = "NORMAL"
    stages = (
        "before_run", "after_load_checkpoint", "before_train", "before_train_epoch", "before_train_iter",
        "after_train_iter", "after_train_epoch", "before_val", "before_val_epoch", "before_val_iter",
        "after_val_iter", "after_val_epoch", "after_val", "before_save_checkpoint", "after_train", "before_test",
        "before_test_epoch", "before_test_iter", "after_test_iter", "after_test_epoch", "after_test", "after_run",
    )

    def before_run(self, runner: Any) -> None:
        """Before the first of ``train``, ``val`` or ``test`` runs."""

    def after_run(self, runner: Any) -> None:
        """After the run ends."""

    def before_train(self, runner: Any) -> None:
        """Before the training loop starts."""

    def after_train(self, runner: Any) -> None:
        """After the training loop ends."""

    def before_val(self, runner: Any) -> None:
        """Before a validation loop starts."""

    def after_val(self, runner: Any) -> None:
        """After a validation loop ends."""

    def before_test(self, runner: Any) -> None:
        """Before the test loop starts."""

    def after_test(self, runner: Any) -> None:
        """After the test loop ends."""

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        """Before a checkpoint is written; changes to ``checkpoint`` (MMEngine's layout) are saved."""

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        """After a checkpoint is read for resuming, before its state is applied."""

    def before_train_epoch(self, runner: Any) -> None:
        self._before_epoch(runner, mode="train")

    def before_val_epoch(self, runner: Any) -> None:
        self._before_epoch(runner, mode="val")

    def before_test_epoch(self, runner: Any) -> None:
        self._before_epoch(runner, mode="test")

    def after_train_epoch(self, runner: Any) -> None:
        self._after_epoch(runner, mode="train")

    def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        """``metrics``: the evaluator's results (MMEngine's names, no ``val/``)."""
        self._after_epoch(runner, mode="val")

    def after_test_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        self._after_epoch(runner, mode="test")

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        self._before_iter(runner, batch_idx=batch_idx, data_batch=data_batch, mode="train")

    def before_val_iter(self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        self._before_iter(runner, batch_idx=batch_idx, data_batch=data_batch, mode="val")

    def before_test_iter(self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        self._before_iter(runner, batch_idx=batch_idx, data_batch=data_batch, mode="test")

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: dict | None = None
    ) -> None:
        """``outputs``: what ``train_step`` returned (the ``log_vars``)."""
        self._after_iter(runner, batch_idx=batch_idx, data_batch=data_batch, outputs=outputs, mode="train")

    def after_val_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Sequence | None = None
    ) -> None:
        self._after_iter(runner, batch_idx=batch_idx, data_batch=data_batch, outputs=outputs, mode="val")

    def after_test_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Sequence | None = None
    ) -> None:
        self._after_iter(runner, batch_idx=batch_idx, data_batch=data_batch, outputs=outputs, mode="test")

    def _before_epoch(self, runner: Any, mode: str = "train") -> None:
        """Before each epoch of any stage."""

    def _after_epoch(self, runner: Any, mode: str = "train") -> None:
        """After each epoch of any stage."""

    def _before_iter(self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, mode: str = "train") -> None:
        """Before each iteration of any stage."""

    def _after_iter(
        self,
        runner: Any,
        batch_idx: int,
        data_batch: DATA_BATCH = None,
        outputs: Sequence | dict | None = None,
        mode: str = "train",
    ) -> None:
        """After each iteration of any stage."""

    # ----------------------------------------------------------------- helpers
    def every_n_epochs(self, runner: Any, n: int, start: int = 0) -> bool:
        """Whether ``runner.epoch + 1 - start`` is a positive multiple of ``n`` (or zero)."""
        dividend = runner.epoch + 1 - start
        return dividend % n == 0 if dividend >= 0 and n > 0 else False

    def every_n_inner_iters(self, batch_idx: int, n: int) -> bool:
        """Whether ``batch_idx + 1`` is a multiple of ``n``."""
        return (batch_idx + 1) % n == 0 if n > 0 else False

    def every_n_train_iters(self, runner: Any, n: int, start: int = 0) -> bool:
        """Whether ``runner.iter + 1 - start`` is a multiple of ``n`` (and not negative)."""
        dividend = runner.iter + 1 - start
        return dividend % n == 0 if dividend >= 0 and n > 0 else False

    def end_of_epoch(self, dataloader: Any, batch_idx: int) -> bool:
        """Whether ``batch_idx`` is the last batch of ``dataloader``."""
        return batch_idx + 1 == len(dataloader)

    def is_last_train_epoch(self, runner: Any) -> bool:
        """Whether the current epoch is the last training epoch."""
        return runner.epoch + 1 == runner.max_epochs

    def is_last_train_iter(self, runner: Any) -> bool:
        """Whether the current iteration is the last training iteration."""
        return runner.iter + 1 == runner.max_iters

    def get_triggered_stages(self) -> list[str]:
        """The stages this hook acts at: its overridden points (a ``_before_epoch`` override counts for the three
        ``before_*_epoch`` points, and so on)."""
        return triggered_stages(self)


_SHARED_METHODS = {
    "_before_epoch": ("before_train_epoch", "before_val_epoch", "before_test_epoch"),
    "_after_epoch": ("after_train_epoch", "after_val_epoch", "after_test_epoch"),
    "_before_iter": ("before_train_iter", "before_val_iter", "before_test_iter"),
    "_after_iter": ("after_train_iter", "after_val_iter", "after_test_iter"),
}


def _overrides(hook: Any, name: str) -> bool:
    """Whether ``hook``'s class defines ``name`` other than a base ``Hook`` (ours or mmengine's) does."""
    method = getattr(type(hook), name, None)
    if method is None:
        return False
    for cls in type(hook).__mro__:
        if name in vars(cls):
            return not (cls.__name__ == "Hook" and cls.__module__ in ("mm2lightning.hooks.hook", "mmengine.hooks.hook"))
    return False


def triggered_stages(hook: Any) -> list[str]:
    """The stages ``hook`` (a :class:`Hook`, an ``mmengine.hooks.Hook`` or any object with hook methods) acts at,
    in :attr:`Hook.stages` order."""
    stages = {stage for stage in Hook.stages if _overrides(hook, stage)}
    for method, shared in _SHARED_METHODS.items():
        if _overrides(hook, method):
            stages.update(shared)
    return [stage for stage in Hook.stages if stage in stages]
