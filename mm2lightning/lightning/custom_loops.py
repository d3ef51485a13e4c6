"""MMEngine's custom validation and test loops: ``val_cfg``/``test_cfg`` naming a ``LOOPS`` type (a toolbox's
loop, or the user's), built as MMEngine builds them and run through their own ``run()`` by ``Runner.val()`` and
``Runner.test()``, and during training where MMEngine's training loops validate (:class:`LoopValidation`), in
one process."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lightning.pytorch as pl
import torch

from mm2lightning.lightning.callbacks import MMCheckpoint, ValidationSchedule
from mm2lightning.registry import LOOPS

_OWN_LOOPS = {"val": "ValLoop", "test": "TestLoop"}


def is_custom_loop(stage: str, loop_cfg: Any) -> bool:
    """Whether ``loop_cfg`` (a ``val_cfg``/``test_cfg`` dict) names a loop other than MMEngine's own, or is a loop
    object (MMEngine's ``build_val_loop`` takes one as it is)."""
    if not isinstance(loop_cfg, Mapping):
        return callable(getattr(loop_cfg, "run", None))
    if loop_cfg.get("type") is None:
        return False
    loop_type, own = loop_cfg["type"], _OWN_LOOPS[stage]
    if isinstance(loop_type, str):
        return loop_type.removeprefix("mmengine.") != own
    return f"{loop_type.__module__}.{loop_type.__qualname__}" != f"mmengine.runner.loops.{own}"


def build_custom_loop(loop_cfg: Mapping[str, Any], runner: Any, dataloader: Any, evaluator: Any) -> Any:
    """The loop, as MMEngine's ``build_val_loop``/``build_test_loop``: ``LOOPS.build`` in the Runner's scope with
    the runner, the stage's dataloader (a config is built by the loop, through ``runner.build_dataloader``) and its
    evaluator."""
    return LOOPS.build(dict(loop_cfg), default_args=dict(runner=runner, dataloader=dataloader, evaluator=evaluator))


def record_metrics(runner: Any, stage: str, loop: Any, metrics: Mapping[str, Any], fitting: bool = False) -> None:
    """What MMEngine's built-in hooks do after a custom loop's epoch (they are not hooks under mm2lightning):
    ``RuntimeInfoHook`` puts ``<stage>/<metric>`` in the hub; ``LoggerHook`` prints the ``LogProcessor``'s line and
    hands validation scalars to the visualizer (against the epoch, or the iteration)."""
    from mm2lightning.lightning.logging import _is_scalar

    hub = runner.message_hub
    for key, value in metrics.items():
        (hub.update_scalar if _is_scalar(value) else hub.update_info)(f"{stage}/{key}", value)
    hook = runner.module.logger_hook
    if hook is None:
        return
    state = _LoopRunner(runner, loop, fitting)
    length = len(loop.dataloader)
    tag, line = runner.log_processor.get_log_after_epoch(state, length, stage, with_non_scalar=stage == "test")
    runner.logger.info(line)
    if stage == "test" and runner.rank == 0:
        hook.dump_test_tag(tag, runner.log_dir)
    if stage == "val" and runner.visualizer is not None:
        step = state.epoch if hook.log_metric_by_epoch else state.iter
        runner.visualizer.add_scalars(tag, step=step, file_path=runner.module.json_log_path)


class _LoopRunner:
    """What the ``LogProcessor`` reads of the Runner after a custom loop's epoch."""

    def __init__(self, runner: Any, loop: Any, fitting: bool) -> None:
        self.message_hub, self.model = runner.message_hub, runner.model
        self.iter, self.epoch, self.max_epochs = runner.iter, runner.epoch, runner.max_epochs
        self.max_iters = max(runner.module.max_iters, 0)
        self._train_loop = runner.train_loop if fitting else None  # MMEngine's: counts the epoch when built
        self.train_loop = runner.train_loop
        self.val_loop = self.test_loop = loop


class LoopValidation(ValidationSchedule):
    """Validates with a custom loop where MMEngine's training loops validate (see :class:`ValidationSchedule`):
    at the end of a due epoch or iteration, after its checkpoint, ``run`` (the Runner's custom validation) gives
    the metrics; then, as after Lightning's validation, the plateau schedulers step, the best checkpoint is kept
    and the Lightning loggers get the ``val/`` scalars. The model goes back to training mode.

    Args:
        run: Runs the custom loop and returns its metrics.
        schedule: The run's validation schedule (its intervals, milestones and ``val_begin``).
    """

    def __init__(self, run: Callable[[], dict[str, Any]], schedule: ValidationSchedule) -> None:
        self.__dict__.update(vars(schedule))  # the schedule's intervals and milestones
        self._run_loop = run

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Lightning gets no validation data: nothing to switch."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.by_epoch and self._due(trainer.current_epoch + 1, trainer.max_epochs):
            self._validate(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if not self.by_epoch and self._due(trainer.global_step, trainer.max_steps):
            self._validate(trainer, pl_module)

    def _validate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = self._run_loop()
        pl_module.train()
        pl_module.val_metrics = metrics
        for scheduler in pl_module._plateau_schedulers:
            scheduler.step(metrics)
        scalars = {f"val/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float)) or (
            isinstance(v, torch.Tensor) and v.numel() == 1)}
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in scalars.items()})
        if scalars and pl_module.logger_hook is not None:
            for logger in trainer.loggers:
                logger.log_metrics(scalars, step=trainer.global_step)
        for callback in trainer.callbacks:
            if isinstance(callback, MMCheckpoint):
                callback.on_validation_end(trainer, pl_module)
