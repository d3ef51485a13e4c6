"""``HookDriver``: one Lightning callback that calls MMEngine-style hooks at MMEngine's points, in its order."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import lightning.pytorch as pl

from mm2lightning.hooks.hook import Hook
from mm2lightning.hooks.hook_list import HookList
from mm2lightning.lightning.runner_view import RunnerView

_MODEL_PREFIX = "model."


def mmengine_layout(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A view of a Lightning checkpoint of ``MMLightningModule`` in MMEngine's layout.

    ``state_dict`` holds the model's own keys (the same tensors, no ``model.`` prefix); every other entry is the
    checkpoint's own, and ``meta`` is there (empty when the checkpoint had none).
    """
    view = {key: value for key, value in checkpoint.items() if key != "state_dict"}
    view["state_dict"] = {
        key[len(_MODEL_PREFIX) :]: value
        for key, value in checkpoint.get("state_dict", {}).items()
        if key.startswith(_MODEL_PREFIX)
    }
    view.setdefault("meta", {})
    return view


def apply_mmengine_layout(checkpoint: dict[str, Any], view: dict[str, Any]) -> None:
    """Write what hooks changed in ``view`` (see :func:`mmengine_layout`) back into ``checkpoint``, in place."""
    other = {k: v for k, v in checkpoint.get("state_dict", {}).items() if not k.startswith(_MODEL_PREFIX)}
    had_meta = "meta" in checkpoint
    checkpoint.clear()
    checkpoint.update(view)
    checkpoint["state_dict"] = {**{_MODEL_PREFIX + k: v for k, v in view["state_dict"].items()}, **other}
    if not had_meta and not checkpoint.get("meta", True):
        del checkpoint["meta"]


class HookDriver(pl.Callback):
    """Runs MMEngine hooks (``mm2lightning.hooks.Hook`` or ``mmengine.hooks.Hook`` subclasses) under Lightning.

    Each hook point is called on the hooks that act at it, in priority order, with a :class:`RunnerView` as
    ``runner``. MMEngine's points map to Lightning's: ``before_run``/``after_run`` around a Trainer run
    (``setup``/``teardown``, or the Runner's ``train``/``val``/``test``), ``before_train`` at
    ``on_train_start``, epoch and iteration points at the batch hooks (``after_train_epoch`` right after the
    epoch's last iteration, before its validation, as MMEngine's loop), ``after_val_epoch(metrics=...)`` once
    the evaluator has its results, and the checkpoint points from ``MMLightningModule``'s
    ``on_save_checkpoint``/``on_load_checkpoint`` with the checkpoint in MMEngine's layout.

    Put it before checkpoint callbacks in ``Trainer(callbacks=...)`` (the Runner does): MMEngine's
    ``CheckpointHook`` runs after other hooks.

    Args:
        hooks: Hook instances or ``HOOKS`` config dicts (with an optional ``priority``).
        runner: The Runner whose attributes the view offers, if any.
        by_epoch: ``False`` for an iteration-based loop: one ``before_train_epoch``/``after_train_epoch`` around
            the whole run, ``batch_idx`` counting iterations.
    """

    def __init__(self, hooks: Iterable[Any] | HookList, runner: Any = None, by_epoch: bool = True) -> None:
        self.hooks = hooks if isinstance(hooks, HookList) else HookList(hooks)
        self._runner = runner
        self._by_epoch = by_epoch
        self.view: RunnerView | None = None
        self._module: Any = None
        self._in_run = False
        self._calls = {stage: self.hooks.at(stage) for stage in Hook.stages}

    def bind(self, module: Any) -> RunnerView:
        """Attach to ``module`` (an ``MMLightningModule``, which calls the points Lightning's callbacks lack:
        the checkpoint points and the end of an iteration); returns the runner view hooks get.

        Raises:
            ValueError: ``module`` drives another ``HookDriver`` already.
        """
        own, active = getattr(module, "hook_driver", None), getattr(module, "active_hook_driver", None)
        if (own is not None and own is not self) or (active is not None and active is not self):
            raise ValueError(
                "the MMLightningModule has hooks of its own (MMLightningModule(hooks=...)) and the Trainer got "
                "another HookDriver: give the hooks in one place"
            )
        module.active_hook_driver = self
        if self._module is not module:
            self._module = module
            self.view = RunnerView(module, self._runner, self._by_epoch)
        return self.view

    def register(self, hook: Any, priority: Any = None) -> Any:
        """Register one more hook (see :meth:`HookList.register`), placed by its priority; returns it (built)."""
        hook = self.hooks.register(hook, priority)
        self._calls = {stage: self.hooks.at(stage) for stage in Hook.stages}
        return hook

    def call(self, stage: str, **kwargs: Any) -> None:
        """Call ``stage`` on every hook that acts at it, in order."""
        view = self.view
        try:
            for hook in self._calls.get(stage, ()):
                view._current_hook = hook
                try:
                    getattr(hook, stage)(view, **kwargs)
                except TypeError as error:  # as MMEngine: name the hook whose signature did not fit
                    raise TypeError(f"{error} in {type(hook).__name__}.{stage}") from error
        finally:
            view._current_hook = None

    # ------------------------------------------------------------------- runs
    def begin_run(self, module: Any) -> None:
        """``before_run``, once per run (the Runner calls it before initialising weights; else ``setup``)."""
        self.bind(module)
        if not self._in_run:
            self._in_run = True
            self.call("before_run")

    def end_run(self) -> None:
        """``after_run``, once per run; the module is released."""
        if self._in_run:
            self._in_run = False
            self.call("after_run")
        self._release()

    def abort_run(self) -> None:
        """Forget a run that failed, without ``after_run`` (as MMEngine): the next run starts with ``before_run``."""
        self._in_run = False
        if self.view is not None:
            self.view._in_after_iter = self.view._epoch_done = False
        self._release()

    def _release(self) -> None:
        if self._module is not None and self._module.active_hook_driver is self:
            self._module.active_hook_driver = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.begin_run(pl_module)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.end_run()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.abort_run()

    # ------------------------------------------------------------ checkpoints
    def before_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Let hooks change ``checkpoint`` (a Lightning one) through its MMEngine layout."""
        if self._calls.get("before_save_checkpoint"):
            view = mmengine_layout(checkpoint)
            self.call("before_save_checkpoint", checkpoint=view)
            apply_mmengine_layout(checkpoint, view)

    def after_load_checkpoint(self, checkpoint: dict[str, Any], resume: bool, lightning_layout: bool = True) -> None:
        """Let hooks see and change a loaded checkpoint before its state is applied.

        Args:
            checkpoint: The loaded checkpoint, changed in place.
            resume: Whether the run resumes from it (``runner._resume``) or only loads weights.
            lightning_layout: Whether ``checkpoint`` is a Lightning one (else MMEngine's already).
        """
        if not self._calls.get("after_load_checkpoint"):
            return
        self.view._resume = resume
        if not lightning_layout:
            self.call("after_load_checkpoint", checkpoint=checkpoint)
            return
        view = mmengine_layout(checkpoint)
        self.call("after_load_checkpoint", checkpoint=view)
        apply_mmengine_layout(checkpoint, view)

    # ---------------------------------------------------------------- training
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.call("before_train")
        if not self._by_epoch:
            self.call("before_train_epoch")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.view._epoch_done = False
        if self._by_epoch:
            self.call("before_train_epoch")

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self.call("before_train_iter", batch_idx=batch_idx if self._by_epoch else trainer.global_step, data_batch=batch)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # Until the iteration ends (the module's on_train_batch_end), ``runner.iter`` does not count it, as in
        # MMEngine's after_train_iter, where its CheckpointHook saves too.
        self.view._in_after_iter = True
        index = batch_idx if self._by_epoch else trainer.global_step - 1
        self.call("after_train_iter", batch_idx=index, data_batch=batch, outputs=outputs)

    def after_train_batch(self, trainer: pl.Trainer, batch_idx: int) -> None:
        """Called by ``MMLightningModule.on_train_batch_end``, after every callback's (a checkpoint saved after
        the epoch's last iteration comes first): ``after_train_epoch`` after the last batch, before validation."""
        self.view._in_after_iter = False
        if self._by_epoch and batch_idx + 1 == trainer.num_training_batches:
            self._after_train_epoch()

    def _after_train_epoch(self) -> None:
        self.call("after_train_epoch")
        self.view._epoch_done = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._by_epoch and not self.view._epoch_done:  # the epoch stopped early
            self._after_train_epoch()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.view._epoch_done = False
        if not self._by_epoch:
            self.call("after_train_epoch")
        self.call("after_train")

    # -------------------------------------------------------------- evaluation
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.call("before_val")

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.call("before_val_epoch")

    def on_validation_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if not trainer.sanity_checking:
            self.call("before_val_iter", batch_idx=batch_idx, data_batch=batch)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not trainer.sanity_checking:
            self.call("after_val_iter", batch_idx=batch_idx, data_batch=batch, outputs=outputs)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.call("after_val_epoch", metrics=pl_module.val_metrics)
            self.call("after_val")

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.call("before_test")

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.call("before_test_epoch")

    def on_test_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self.call("before_test_iter", batch_idx=batch_idx, data_batch=batch)

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.call("after_test_iter", batch_idx=batch_idx, data_batch=batch, outputs=outputs)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.call("after_test_epoch", metrics=pl_module.test_metrics)
        self.call("after_test")
