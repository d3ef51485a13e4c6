"""The per-iteration log path: feed the MessageHub as MMEngine's ``RuntimeInfoHook``, log at log steps only.

Every iteration, :class:`TrainLogPath` hands ``train_step``'s ``log_vars``, the
learning rates and the clipped gradient norm to the ``MessageHub`` as device
tensors (no host sync: the hub's buffers convert them when read) and keeps the
runtime information (``iter``, ``epoch``, ``eta``, ...) and ``IterTimerHook``'s
``time``/``data_time`` up to date. Only on MMEngine's ``LoggerHook`` steps (every
``log_every_n_steps`` iterations of the epoch) does it read the hub through the
:class:`~mm2lightning.runner.LogProcessor` (window means) and write the values once
to each Lightning logger (and the visualizer): the per-step cost is a few list appends.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.trainer.states import TrainerFn

from mm2lightning.logging import HistoryBuffer, MessageHub
from mm2lightning.optim import OptimWrapper, OptimWrapperDict
from mm2lightning.runner.log_processor import LogProcessor


def batch_size(batch: Any) -> int:
    """The number of samples in an MMEngine-style batch (dict with ``inputs``, or a collated tuple)."""
    if isinstance(batch, Mapping):
        batch = batch.get("inputs", next(iter(batch.values()), None))
    elif isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        batch = batch[0]
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, (list, tuple)):
        return len(batch)
    return 1


def build_log_processor(cfg: LogProcessor | Mapping[str, Any] | None) -> LogProcessor:
    """A ``LogProcessor`` from MMEngine's ``log_processor`` argument (``None``: the default one).

    Raises:
        TypeError: ``cfg`` is not a LogProcessor, a dict or ``None``, or names another ``type``.
    """
    if cfg is None:
        return LogProcessor()
    if isinstance(cfg, LogProcessor):
        return cfg
    if not isinstance(cfg, Mapping):
        raise TypeError(f"log_processor should be a LogProcessor object or dict, but got {cfg!r}")
    cfg = dict(cfg)
    cfg.pop("_scope_", None)  # MMEngine's LogProcessor is ours in every scope
    cls = cfg.pop("type", LogProcessor)
    if cls in ("LogProcessor", "mmengine.LogProcessor"):
        cls = LogProcessor
    if not (isinstance(cls, type) and issubclass(cls, LogProcessor)):
        raise TypeError(
            f"log_processor type {cls!r} is not supported: give 'LogProcessor' (or leave 'type' out), or a "
            "mm2lightning.runner.LogProcessor subclass or instance"
        )
    return cls(**cfg)


def _is_scalar(value: Any) -> bool:
    """MMEngine's ``RuntimeInfoHook`` rule: a number, or an array or tensor of one element."""
    if isinstance(value, np.ndarray):
        return value.size == 1
    if isinstance(value, (int, float, np.number)):
        return True
    return isinstance(value, torch.Tensor) and value.numel() == 1


class _Sized:
    def __init__(self, length: float) -> None:
        self._length = int(length) if math.isfinite(length) else 0  # 0: unknown length

    def __len__(self) -> int:
        return self._length


class _Loop:
    def __init__(self, length: float) -> None:
        self.dataloader = _Sized(length)


class _RunnerState:
    """What ``LogProcessor`` reads from MMEngine's Runner, with MMEngine's counters (``iter``, ``epoch``: set
    before each read); the loops' lengths are read from the Trainer when asked."""

    def __init__(self, module: pl.LightningModule, hub: MessageHub, iteration: int = 0, epoch: int = 0) -> None:
        self._trainer = trainer = module.trainer
        self.message_hub = hub
        self.model = module._step_model
        self.iter = iteration
        self.epoch = epoch
        by_epoch = trainer.max_epochs not in (None, -1)
        self.max_epochs = trainer.max_epochs if by_epoch else 1
        self.max_iters = module.max_iters
        self._train_loop = self if trainer.state.fn == TrainerFn.FITTING else None

    @property
    def train_loop(self) -> _Loop:
        return _Loop(self._trainer.num_training_batches)

    @property
    def val_loop(self) -> _Loop:
        return _Loop(sum(self._trainer.num_val_batches))

    @property
    def test_loop(self) -> _Loop:
        return _Loop(sum(self._trainer.num_test_batches))


_hub_ids = itertools.count()


class TrainLogPath:
    """Feeds the module's ``message_hub`` as MMEngine's ``RuntimeInfoHook`` and logs the ``LogProcessor``'s
    values to Lightning's loggers on the steps they are written.

    The hub gets, per iteration, ``train/<key>`` for each ``log_vars`` key, the
    first group's rates (``train/lr``, ``train/base_lr``, ``train/<name>.lr`` for
    an ``OptimWrapperDict``: ``get_lr()``'s names) as they were for the
    iteration, and ``train/grad_norm`` on iterations that clip by norm; runtime
    information ``iter``, ``epoch``, ``max_iters``, ``max_epochs`` and
    ``dataset_meta``; ``val/<metric>`` / ``test/<metric>`` after evaluation.
    ``iter`` is set before each iteration and ``epoch`` advanced at the end of an
    epoch for the next one, as ``RuntimeInfoHook``. At log steps the loggers get
    :meth:`LogProcessor.get_log_after_iter`'s values (``loss`` also on the
    progress bar), and its text line goes to the module's ``text_logger`` when it
    has one (the ``Runner`` sets its ``MMLogger``). With ``epoch_means``, each
    ``log_vars`` key's epoch mean is logged as ``<key>_epoch``.

    Args:
        module: The LightningModule that logs (its ``message_hub`` is fed).
        epoch_means: Also log epoch means.
        log_processor: A ``LogProcessor`` or its config (``None``: MMEngine's default, window 10).
    """

    def __init__(
        self,
        module: pl.LightningModule,
        epoch_means: bool = False,
        log_processor: LogProcessor | Mapping[str, Any] | None = None,
    ) -> None:
        self._module = module
        self.log_processor = build_log_processor(log_processor)
        self.timed = True  # IterTimerHook's work: time, data_time, eta (False: default_hooks=dict(timer=None))
        self._epoch_means = epoch_means
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self._names: dict[str, str] = {}  # log_vars and rate keys -> train/<key>
        self._clipped: list[tuple[OptimWrapper, Any]] = []  # wrappers clipping by norm, their last grad_norm

    # ------------------------------------------------------------------ training
    def on_train_start(self) -> None:
        """Record the run's runtime information and cache what the per-iteration path reads."""
        module = self._module
        self._trainer = trainer = module.trainer
        self._epoch_loop = trainer.fit_loop.epoch_loop
        self._hub = hub = self._message_hub()
        self._by_epoch = trainer.max_epochs not in (None, -1)
        hub.update_info("epoch", trainer.current_epoch if self._by_epoch else 0)
        hub.update_info("iter", trainer.global_step)
        hub.update_info("max_epochs", trainer.max_epochs if self._by_epoch else 1)
        hub.update_info("max_iters", module.max_iters)
        dataset = getattr(trainer.train_dataloader, "dataset", None)
        if hasattr(dataset, "metainfo"):
            hub.update_info("dataset_meta", dataset.metainfo)
        optim_wrapper = module.optim_wrapper
        wrappers = optim_wrapper.values() if isinstance(optim_wrapper, OptimWrapperDict) else [optim_wrapper]
        self._clipped = [(wrapper, wrapper.grad_norm) for wrapper in wrappers if wrapper.clip_grad_kwargs]
        self._start_iter, self._time_total = trainer.global_step, 0.0  # as IterTimerHook.before_train
        self._state = _RunnerState(module, hub)  # what the LogProcessor reads at log steps
        self._t = time.time()  # also for a run resumed inside an epoch (no epoch start)

    def start_clock(self) -> None:
        """As ``IterTimerHook``'s ``before_train_epoch``/``before_val_epoch``/``before_test_epoch``: the clock
        for the epoch's first ``data_time``."""
        self._t = time.time()

    def before_eval_iter(self, stage: str) -> None:
        """As ``IterTimerHook.before_val_iter``/``before_test_iter``: ``<stage>/data_time``."""
        if self.timed:
            self._message_hub().update_scalar(f"{stage}/data_time", time.time() - self._t)

    def after_eval_iter(self, stage: str) -> None:
        """As ``IterTimerHook.after_val_iter``/``after_test_iter``: ``<stage>/time``."""
        now = time.time()
        if self.timed:
            self._message_hub().update_scalar(f"{stage}/time", now - self._t)
        self._t = now

    def message_hub_state(self) -> dict[str, Any] | None:
        """The hub's ``state_dict`` as plain data, for checkpoints (MMEngine's ``message_hub`` entry): the
        scalar histories, and the runtime information that is a number or a string."""
        hub = self._module.message_hub
        if hub is None:
            return None
        state = hub.state_dict()
        scalars = {
            key: dict(log_history=buffer.data[0].tolist(), count_history=buffer.data[1].tolist(),
                      max_length=buffer.max_length)
            for key, buffer in state["log_scalars"].items()
        }
        info = {k: v for k, v in state["runtime_info"].items() if isinstance(v, (bool, int, float, str, type(None)))}
        resumed = {k: v for k, v in state["resumed_keys"].items() if k in scalars or k in info}
        return dict(log_scalars=scalars, runtime_info=info, resumed_keys=resumed)

    def load_message_hub_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`message_hub_state` into the module's hub (MMEngine's resume does), before training."""
        scalars = {key: HistoryBuffer(**buffer) for key, buffer in state["log_scalars"].items()}
        self._message_hub().load_state_dict(dict(state, log_scalars=scalars))

    def _message_hub(self) -> MessageHub:
        if self._module.message_hub is None:
            # A hub of its own, made current (as a Runner's): no scalars of an earlier run in this process
            self._module.message_hub = MessageHub.get_instance(f"mm2lightning-{next(_hub_ids)}-{id(self._module)}")
        return self._module.message_hub

    def _logger_hook_after_iter(self, iteration: int, batch: Any) -> None:
        """MMEngine's ``LoggerHook.after_train_iter`` (``module.logger_hook``'s options): the experiment's name
        every ``interval_exp_name`` iterations and at an epoch's end; the values every ``interval``
        (``log_every_n_steps``) iterations of the epoch (of the run, iteration-based), and at an epoch's last
        iteration when it is not longer than the interval or ``ignore_last`` is off."""
        hook, interval = self._module.logger_hook, self._trainer.log_every_n_steps
        if hook is None or not interval:
            return
        batch_idx = self._epoch_loop.batch_idx if self._by_epoch else iteration
        last = batch_idx + 1 == self._trainer.num_training_batches
        text_logger = self._module.text_logger
        if text_logger is not None and ((iteration + 1) % hook.interval_exp_name == 0 or last):
            name = self._hub.get_info("experiment_name")
            if name is not None:
                text_logger.info(f"Exp name: {name}")
        if (batch_idx + 1) % interval == 0 or (last and (not hook.ignore_last or batch_idx + 1 <= interval)):
            self._log(batch)

    def _train_name(self, key: str) -> str:
        """``train/<key>``, made once per key."""
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = f"train/{key}"
        return name

    def _feed(self, name: str, value: Any) -> None:
        """``hub.update_scalar(name, value)``; a float or a tensor goes straight into the key's buffer once the
        hub made it (the checks and bookkeeping of the hub's first update need not repeat every iteration)."""
        buffer = self._hub.log_scalars.get(name)
        if buffer is not None and (type(value) is float or isinstance(value, torch.Tensor)):
            buffer.update(value)
        else:
            self._hub.update_scalar(name, value)

    def before_train_iter(self) -> None:
        """As MMEngine's ``RuntimeInfoHook.before_train_iter``: the hub's ``iter`` is this iteration's, and the
        rates this iteration uses are recorded (``train/lr``, ``train/<name>.lr``, ...)."""
        self._hub.update_info("iter", self._trainer.global_step)
        for key, rates in self._module.optim_wrapper.get_lr().items():
            self._feed(self._train_name(key), rates[0])
        if self.timed:
            self._feed("train/data_time", time.time() - self._t)  # IterTimerHook's, after RuntimeInfoHook's

    def after_train_iter(self, log_vars: Mapping[str, torch.Tensor], batch: Any, optim_wrapper: OptimWrapper) -> None:
        """Called once per iteration with ``train_step``'s output (after the schedulers stepped)."""
        hub = self._hub
        now = time.time()
        for index, (wrapper, seen) in enumerate(self._clipped):
            if wrapper.grad_norm is not seen:  # clipped in this iteration
                self._feed("train/grad_norm", wrapper.grad_norm)
                self._clipped[index] = (wrapper, wrapper.grad_norm)
        for key, value in log_vars.items():
            self._feed(self._train_name(key), value)
        if self._epoch_means:
            for key, value in log_vars.items():
                value = value.detach()
                self._sums[key] = self._sums[key] + value if key in self._sums else value.clone()
                self._counts[key] = self._counts.get(key, 0) + 1
        # IterTimerHook's (after RuntimeInfoHook's): the iteration's time and the run's estimated time left
        iteration = self._trainer.global_step - 1
        if self.timed:
            self._feed("train/time", now - self._t)
            self._time_total += now - self._t
            mean = self._time_total / (iteration - self._start_iter + 1)
            hub.update_info("eta", mean * (self._module.max_iters - iteration - 1))
        self._t = now
        self._logger_hook_after_iter(iteration, batch)

    def _log(self, batch: Any) -> None:
        trainer = self._trainer
        state = self._state
        state.iter = trainer.global_step - 1
        state.epoch = trainer.current_epoch if self._by_epoch else 0
        tag, log_str = self.log_processor.get_log_after_iter(state, self._epoch_loop.batch_idx, "train")
        if self._module.text_logger is not None:
            self._module.text_logger.info(log_str)
        if self._module.visualizer is not None:  # as MMEngine's LoggerHook
            self._module.visualizer.add_scalars(tag, step=trainer.global_step, file_path=self._module.json_log_path)
        # One write per logger, at MMEngine's log steps, as Lightning writes its own (``epoch`` and ``step``
        # counted from 0: the step of the iteration's first batch, Lightning's ``_batches_that_stepped``).
        # Each logger reaches its files on its own schedule (CSVLogger's flush_logs_every_n_steps,
        # TensorBoard's flush_secs) and when the fit ends; a save() per log step would double the step's cost.
        values = {key: value for key, value in tag.items() if key not in ("epoch", "iter")}
        values["epoch"] = trainer.current_epoch
        for logger in trainer.loggers:
            logger.log_metrics(values, step=trainer.global_step - 1)
        if "loss" in values and trainer.progress_bar_callback is not None:
            self._module.log("loss", values["loss"], prog_bar=True, logger=False, batch_size=batch_size(batch))

    def on_train_epoch_end(self) -> None:
        """Log the epoch means (when enabled); ready ``epoch`` for the next epoch."""
        if self._sums:
            means = {f"{key}_epoch": total / self._counts[key] for key, total in self._sums.items()}
            self._sums.clear()
            self._counts.clear()
            self._module.log_dict(means, on_step=False, on_epoch=True, batch_size=1)
        trainer = self._trainer
        max_iters = self._module.max_iters
        finished = trainer.should_stop or 0 < max_iters <= trainer.global_step
        if self._by_epoch and trainer.current_epoch + 1 < trainer.max_epochs and not finished:
            self._hub.update_info("epoch", trainer.current_epoch + 1)

    # ---------------------------------------------------------------- evaluation
    def after_evaluation(self, stage: str, metrics: Mapping[str, Any]) -> None:
        """Record ``val/<name>`` (``test/<name>``) as MMEngine's ``RuntimeInfoHook``: scalars in the buffers,
        others as runtime information; as its ``LoggerHook`` (``module.logger_hook``), print the
        ``LogProcessor``'s epoch line to the module's ``text_logger`` and hand the validation scalars to its
        visualizer, against the epoch (``log_metric_by_epoch``) or the iteration."""
        trainer = self._module.trainer
        if trainer.sanity_checking:
            return
        hub = self._message_hub()
        for key, value in metrics.items():
            if _is_scalar(value):
                hub.update_scalar(f"{stage}/{key}", value)
            else:
                hub.update_info(f"{stage}/{key}", value)
        hook = self._module.logger_hook
        if hook is None:
            return
        fitting = trainer.state.fn == TrainerFn.FITTING
        if self._module.text_logger is not None or (self._module.visualizer is not None and stage == "val"):
            loop = self._epoch_loop if fitting else None
            epoch_done = loop is not None and loop.batch_progress.is_last_batch
            epoch = trainer.current_epoch + epoch_done if fitting and trainer.max_epochs not in (None, -1) else 0
            state = _RunnerState(self._module, hub, trainer.global_step, epoch)
            length = len(state.val_loop.dataloader if stage == "val" else state.test_loop.dataloader)
            tag, log_str = self.log_processor.get_log_after_epoch(state, length, stage, with_non_scalar=stage == "test")
            if self._module.text_logger is not None:
                self._module.text_logger.info(log_str)
                if stage == "test" and self._module.text_logger.log_file is not None:  # rank 0, with a log dir
                    hook.dump_test_tag(tag, os.path.dirname(self._module.text_logger.log_file))
            if self._module.visualizer is not None and stage == "val":
                step = epoch if hook.log_metric_by_epoch else trainer.global_step if fitting else 0
                self._module.visualizer.add_scalars(tag, step=step, file_path=self._module.json_log_path)
