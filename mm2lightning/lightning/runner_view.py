"""``RunnerView``: what MMEngine's Runner gives hooks, read from the Trainer and the module when asked."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.trainer.states import TrainerFn

from mm2lightning.dist import get_rank, get_world_size

_MISSING = object()


class _LoopView:
    """``runner.train_loop``: the counters of MMEngine's training loop."""

    def __init__(self, view: RunnerView) -> None:
        self._view = view

    epoch = property(lambda self: self._view.epoch)
    iter = property(lambda self: self._view.iter)
    max_epochs = property(lambda self: self._view.max_epochs)
    max_iters = property(lambda self: self._view.max_iters)

    @property
    def stop_training(self) -> bool:
        """MMEngine's flag to end training (``EarlyStoppingHook`` sets it): Lightning's ``trainer.should_stop``."""
        trainer = self._view.trainer
        return bool(trainer is not None and trainer.should_stop)

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self._view.trainer.should_stop = bool(value)

    @property
    def runner(self) -> Any:
        """The Runner (MMEngine's ``loop.runner``)."""
        return self._view._runner

    def run(self) -> Any:
        """Train, as MMEngine's ``train_loop.run()``: the Runner's ``train()``."""
        return self._view._runner.train()


class _EpochLoopView(_LoopView):
    """``runner.train_loop`` of an epoch-based run."""


class _IterLoopView(_LoopView):
    """``runner.train_loop`` of an iteration-based run."""


def _loop_view(view: RunnerView) -> _LoopView:
    """The loop view, an ``EpochBasedTrainLoop``/``IterBasedTrainLoop`` to ``isinstance`` once mmengine's loops
    are imported (toolbox hooks choose their step by it; the loops' ``ABCMeta`` takes virtual subclasses)."""
    loops = sys.modules.get("mmengine.runner.loops")
    if loops is not None:
        loops.EpochBasedTrainLoop.register(_EpochLoopView)
        loops.IterBasedTrainLoop.register(_IterLoopView)
    return _EpochLoopView(view) if view.by_epoch else _IterLoopView(view)


class RunnerView:
    """The ``runner`` argument hooks get under Lightning: MMEngine Runner attributes, computed on access.

    Counters follow MMEngine's loops: ``iter`` is the number of finished iterations (inside ``after_train_iter``
    the one being finished is not counted yet), ``epoch`` the number of finished epochs (validation after an
    epoch sees it counted). In an iteration-based run (``by_epoch=False``), ``epoch`` is 0 and ``max_epochs`` 1.

    An attribute the view does not have raises ``AttributeError`` naming the hook and the attribute.

    Args:
        module: The :class:`~mm2lightning.lightning.MMLightningModule`.
        runner: The :class:`~mm2lightning.runner.Runner` when there is one (``work_dir``, ``cfg``, ``seed``, ...).
        by_epoch: Whether the training loop counts epochs (MMEngine's ``EpochBasedTrainLoop``).
    """

    _ATTRIBUTES = (
        "model", "epoch", "iter", "max_epochs", "max_iters", "train_loop", "optim_wrapper", "param_schedulers",
        "train_dataloader", "val_dataloader", "test_dataloader", "val_evaluator", "test_evaluator", "work_dir",
        "log_dir", "timestamp", "experiment_name", "cfg", "rank", "world_size", "distributed", "seed", "logger",
        "message_hub", "visualizer", "launcher", "trainer", "module",
    )

    def __init__(self, module: Any, runner: Any = None, by_epoch: bool = True) -> None:
        self.module = module
        self._runner = runner
        self.by_epoch = by_epoch
        self.train_loop = _loop_view(self)
        self._resume = False  # MMEngine's flag, read by EMAHook.after_load_checkpoint
        self._epoch_done = False  # the epoch's batches ran, its counter not yet advanced by Lightning
        self._in_after_iter = False  # the iteration being finished is not counted yet
        self._current_hook: Any = None

    # ------------------------------------------------------------- training
    @property
    def trainer(self) -> pl.Trainer | None:
        """The ``lightning.Trainer`` (``None`` before one is attached)."""
        return self.module._trainer

    @property
    def model(self) -> Any:
        """The model, or the MMEngine model wrapper around it where mm2lightning's DDP strategies put one."""
        return self.module._step_model

    @property
    def epoch(self) -> int:
        trainer = self.trainer
        if not self.by_epoch or trainer is None:
            return 0
        return trainer.current_epoch + self._epoch_done

    @property
    def iter(self) -> int:
        trainer = self.trainer
        return 0 if trainer is None else trainer.global_step - self._in_after_iter

    @property
    def max_epochs(self) -> int | None:
        if not self.by_epoch:
            return 1
        trainer = self.trainer
        if trainer is None:  # before the run: the Runner's train_cfg, if any
            return self._from_runner("_loop_flags", {}).get("max_epochs")
        return None if trainer.max_epochs in (None, -1) else trainer.max_epochs

    @property
    def max_iters(self) -> int | None:
        """From ``before_train`` on; before it (``before_run``) from a Runner (``None`` for an epoch-based run under
        a launcher: the epoch length is known once the dataloader is built in the process group)."""
        if self.module.max_iters > 0:
            return self.module.max_iters
        if self._runner is not None and hasattr(type(self._runner), "max_iters") and not self._runner.distributed:
            return self._runner.max_iters
        return self._from_runner("_loop_flags", {}).get("max_steps") if not self.by_epoch else None

    @property
    def optim_wrapper(self) -> Any:
        return self.module.optim_wrapper

    @property
    def param_schedulers(self) -> Any:
        return self.module.param_schedulers

    @property
    def train_dataloader(self) -> Any:
        return self.trainer.train_dataloader

    @property
    def val_dataloader(self) -> Any:
        return self.trainer.val_dataloaders

    @property
    def test_dataloader(self) -> Any:
        return self.trainer.test_dataloaders

    @property
    def val_evaluator(self) -> Any:
        return self.module.val_evaluator

    @property
    def test_evaluator(self) -> Any:
        return self.module.test_evaluator

    # ---------------------------------------------------------------- the run
    def _from_runner(self, name: str, default: Any) -> Any:
        value = getattr(self._runner, name, _MISSING) if self._runner is not None else _MISSING
        return default if value is _MISSING else value

    @property
    def work_dir(self) -> str:
        return str(self._from_runner("work_dir", self.trainer.default_root_dir if self.trainer else Path.cwd()))

    @property
    def log_dir(self) -> str:
        default = (self.trainer.log_dir if self.trainer else None) or self.work_dir
        return str(self._from_runner("log_dir", default))

    @property
    def timestamp(self) -> str | None:
        return self._from_runner("timestamp", None)

    @property
    def experiment_name(self) -> str | None:
        return self._from_runner("experiment_name", None)

    @property
    def cfg(self) -> Any:
        return self._from_runner("cfg", None)

    @property
    def seed(self) -> int | None:
        return self._from_runner("seed", None)

    @property
    def launcher(self) -> str:
        return self._from_runner("launcher", "none" if get_world_size() == 1 else "pytorch")

    @property
    def rank(self) -> int:
        return get_rank()

    @property
    def world_size(self) -> int:
        return get_world_size()

    @property
    def distributed(self) -> bool:
        return get_world_size() > 1

    @property
    def logger(self) -> Any:
        from mm2lightning.logging import MMLogger

        return self._from_runner("logger", None) or MMLogger.get_current_instance()

    @property
    def message_hub(self) -> Any:
        hub = getattr(self.module, "message_hub", None)
        if hub is not None:
            return hub
        from mm2lightning.logging import MessageHub

        return MessageHub.get_current_instance()

    @property
    def visualizer(self) -> Any:
        return self._from_runner("visualizer", None)

    @property
    def training(self) -> bool:
        """Whether the Trainer is fitting."""
        return self.trainer is not None and self.trainer.state.fn == TrainerFn.FITTING

    def __getattr__(self, name: str) -> Any:  # only for names the view lacks
        hook = self.__dict__.get("_current_hook")
        who = f"{type(hook).__name__} used " if hook is not None else ""
        close = difflib.get_close_matches(name, self._ATTRIBUTES, n=1, cutoff=0.7)
        hint = f" Did you mean runner.{close[0]}?" if close else ""
        raise AttributeError(
            f"{who}runner.{name}, which mm2lightning's runner view does not offer.{hint} It offers: "
            f"{', '.join(self._ATTRIBUTES)} (and runner.trainer / runner.module for the Lightning objects)"
        )
