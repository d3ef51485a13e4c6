"""MMLightningModule: train any MMEngine-style model with ``lightning.Trainer``."""

from __future__ import annotations

import copy
import inspect
import math
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, FSDPStrategy, ModelParallelStrategy, Strategy
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn

from mm2lightning.hooks import LoggerHook
from mm2lightning.lightning.backend import LightningBackend
from mm2lightning.lightning.dispatch import DirectBatchHooks
from mm2lightning.lightning.fsdp import MMFSDPStrategy
from mm2lightning.lightning.hook_driver import HookDriver
from mm2lightning.lightning.logging import TrainLogPath
from mm2lightning.logging import MessageHub
from mm2lightning.lightning.state import CHECKPOINT_KEY, dump_training_state, load_training_state
from mm2lightning.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict, build_optim_wrapper
from mm2lightning.optim.scheduler import build_param_schedulers
from mm2lightning.registry import MODELS
from mm2lightning.runner.log_processor import LogProcessor

# ModelCheckpoint(every_n_train_steps) warns under manual optimization that it saves the weights after the
# optimizer step. That is what MMEngine's CheckpointHook saves too (after_train_iter), so the warning is noise here.
warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization and every_n_train_steps")
# MMLightningModule defines validation_step for the runs that evaluate; a run without validation data is normal.
warnings.filterwarnings("ignore", message="You defined a `validation_step` but have no `val_dataloader`")


def _build_model(model: nn.Module | Mapping[str, Any]) -> nn.Module:
    if isinstance(model, Mapping):
        model = MODELS.build(model)
    if not isinstance(model, nn.Module) or not all(
        callable(getattr(model, name, None)) for name in ("train_step", "val_step", "test_step")
    ):
        raise TypeError(
            "model must be a BaseModel (mm2lightning.model.BaseModel or mmengine.model.BaseModel, i.e. an "
            "nn.Module with train_step/val_step/test_step) or a config dict built through MODELS, "
            f"but got {type(model).__name__}"
        )
    return model


def _wrappers(optim_wrapper: OptimWrapper) -> list[OptimWrapper]:
    return list(optim_wrapper.values()) if isinstance(optim_wrapper, OptimWrapperDict) else [optim_wrapper]


def check_strategy_support(strategy: Strategy, optim_wrapper: OptimWrapper) -> None:
    """Refuse, before training, what a strategy cannot do with ``train_step``-driven manual optimization.

    Raises:
        MisconfigurationException: Lightning's FSDP or model-parallel strategies (no manual optimization
            there; ``'fsdp_mm'`` shards under ``train_step``); DeepSpeed with several optim wrappers,
            ``AmpOptimWrapper``, accumulation or ``clip_grad`` (DeepSpeed's engine owns those); an ``OptimWrapperDict`` under Lightning's whole-model
            ``'ddp'`` without ``find_unused_parameters``.
    """
    name = type(strategy).__name__
    if isinstance(strategy, (FSDPStrategy, ModelParallelStrategy)) and not isinstance(strategy, MMFSDPStrategy):
        raise MisconfigurationException(
            f"{name} does not support manual optimization in Lightning (backward runs in training_step, outside "
            "the sharded module's forward), and train_step needs it. To shard the model, use strategy='fsdp_mm' "
            "(mm2lightning.MMFSDPStrategy: FSDP2 under train_step); else 'ddp' or 'ddp_separate'."
        )
    wrappers = _wrappers(optim_wrapper)
    if isinstance(strategy, DeepSpeedStrategy):
        problems = []
        if isinstance(optim_wrapper, OptimWrapperDict):
            problems.append(f"{len(wrappers)} optim wrappers (DeepSpeed drives one optimizer)")
        if any(isinstance(w, AmpOptimWrapper) for w in wrappers):
            problems.append("AmpOptimWrapper (set DeepSpeed's precision through Trainer(precision=...) instead)")
        if any(w._accumulative_counts > 1 for w in wrappers):
            problems.append("accumulative_counts > 1 (set DeepSpeed's gradient_accumulation_steps instead)")
        if any(w.clip_grad_kwargs for w in wrappers):
            problems.append("clip_grad (set DeepSpeed's gradient_clipping instead)")
        if problems:
            raise MisconfigurationException(f"{name} cannot run this optim_wrapper: " + "; ".join(problems) + ".")
    if (
        type(strategy) is DDPStrategy  # Lightning's own: one DDP over the whole LightningModule
        and isinstance(optim_wrapper, OptimWrapperDict)
        and not strategy._ddp_kwargs.get("find_unused_parameters", False)
    ):
        raise MisconfigurationException(
            "An OptimWrapperDict under whole-model DDP (strategy='ddp') updates parts of the model in turn, so each "
            "backward leaves the other parts' parameters unused and DDP fails. Either give each part its own DDP "
            "with strategy='ddp_separate' (mm2lightning.SeparateDDPStrategy, as MMEngine's "
            "MMSeparateDistributedDataParallel), or let DDP look for unused parameters with "
            "strategy='ddp_find_unused_parameters_true' (DDPStrategy(find_unused_parameters=True))."
        )


def _dataset_size(dataloaders: Any) -> int:
    """Samples in the evaluation data set(s), for dropping distributed padding; ``sys.maxsize`` if unknown."""
    loaders = dataloaders if isinstance(dataloaders, (list, tuple)) else [dataloaders]
    try:
        return sum(len(loader.dataset) for loader in loaders)
    except (AttributeError, TypeError):
        return sys.maxsize


class MMLightningModule(DirectBatchHooks, pl.LightningModule):
    """Trains an MMEngine-style model with ``lightning.Trainer``, through the model's own ``train_step``.

    Each training iteration calls ``model.train_step(batch, optim_wrapper)`` under
    Lightning's manual optimization: the optim wrappers backward through
    ``manual_backward``, step through the strategy and its precision plugin, and
    block gradient sync through the strategy while accumulating. So a GAN's
    hand-written ``train_step`` with an ``OptimWrapperDict`` runs unchanged, and
    the numbers equal MMEngine's Runner.

    Counting: one ``trainer.global_step`` per training iteration (one
    ``train_step`` call), whatever the number of optimizers or the accumulation,
    so ``max_steps``, ``ModelCheckpoint(every_n_train_steps=...)`` and log steps
    mean MMEngine iterations.

    Args:
        model: A ``BaseModel`` (mm2lightning's or mmengine's), or a config dict
            built through ``MODELS``. Stored as ``self.model``: checkpoint keys are
            ``model.<the model's own keys>``.
        optim_wrapper: As MMEngine's ``optim_wrapper``: a config dict
            (``paramwise_cfg``, ``type='AmpOptimWrapper'``, a dict of per-submodule
            wrapper configs) or a built ``OptimWrapper`` / ``OptimWrapperDict``.
            Needed by ``Trainer.fit`` only. Built in ``configure_optimizers``, after
            the model is on its device.
        param_scheduler: As MMEngine's ``param_scheduler``: a config dict, a list
            of them, or per wrapper name for an ``OptimWrapperDict``. ``end``
            defaults to the Trainer's ``max_epochs`` (``by_epoch=True``) or total
            iterations; ``convert_to_iter_based`` uses the epoch length.
            Stepped after every iteration (``by_epoch=False``) or epoch, as
            MMEngine's ``ParamSchedulerHook``; ``ReduceOnPlateau`` after validation.
        val_evaluator: Metrics for ``validation_step`` (see
            :func:`mm2lightning.evaluator.build_evaluator`); results are logged as
            ``val/<name>``.
        test_evaluator: The same for ``test_step``, logged as ``test/<name>``.
        log_epoch_means: Also log the epoch mean of each ``log_vars`` key as
            ``<key>_epoch``.
        log_processor: MMEngine's ``log_processor``: a ``LogProcessor`` or its
            config dict (``None``: the default, window 10). The loggers get its
            values at log steps: window means of the ``loss``/``grad_norm`` keys,
            the latest learning rates, ``custom_cfg``'s statistics.
        hooks: MMEngine hooks (``mm2lightning.hooks.Hook`` or ``mmengine.hooks.Hook``
            instances, or ``HOOKS`` config dicts with an optional ``priority``), or a
            :class:`~mm2lightning.lightning.HookDriver`. They run at MMEngine's points
            through one callback the module adds to the Trainer (see ``HookDriver``);
            without hooks nothing is added.
    """

    def __init__(
        self,
        model: nn.Module | Mapping[str, Any],
        optim_wrapper: OptimWrapper | Mapping[str, Any] | None = None,
        param_scheduler: Any = None,
        val_evaluator: Any = None,
        test_evaluator: Any = None,
        log_epoch_means: bool = False,
        log_processor: LogProcessor | Mapping[str, Any] | None = None,
        hooks: HookDriver | Sequence[Any] | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.model = _build_model(model)
        self.use_model_wrapper(None)
        self.optim_wrapper_cfg = optim_wrapper
        self.param_scheduler_cfg = param_scheduler
        self.val_evaluator = self._build_evaluator(val_evaluator)
        self.test_evaluator = self._build_evaluator(test_evaluator)
        self.optim_wrapper: OptimWrapper | None = None
        self.param_schedulers: list[Any] | dict[str, list[Any]] = []
        self._backend = LightningBackend(self)
        # fed every iteration as MMEngine's RuntimeInfoHook does (the current MessageHub at train start if None)
        self.message_hub: MessageHub | None = None
        self._log_path = TrainLogPath(self, epoch_means=log_epoch_means, log_processor=log_processor)
        self._max_iters = -1
        self._iter_schedulers: list[Any] = []
        self._epoch_schedulers: list[Any] = []
        self._plateau_schedulers: list[Any] = []
        self._epoch_schedulers_stepped = False
        self._resume_state: dict[str, Any] | None = None
        self._resume_hub: dict[str, Any] | None = None  # the checkpoint's MessageHub state, loaded at train start
        self.val_metrics: dict[str, Any] = {}  # the evaluator's last results, with its own names (no ``val/``)
        # MMEngine's checkpoint ``meta`` (the Runner's seed and experiment name), written into every checkpoint
        # that holds training state when not empty; a method of the module, not a callback: nothing per step.
        self.checkpoint_meta: dict[str, Any] = {}
        self.test_metrics: dict[str, Any] = {}
        if hooks is not None and not isinstance(hooks, HookDriver):
            hooks = list(hooks)
            hooks = HookDriver(hooks) if hooks else None
        self.hook_driver: HookDriver | None = hooks  # None: no callback, no cost per iteration
        # The driver of the run under way (this module's, or one given to the Trainer); set by HookDriver.bind
        self.active_hook_driver: HookDriver | None = None
        # MMEngine's ParamSchedulerHook's work: step the schedulers (False: built and saved, never stepped)
        self.step_schedulers = True
        self.save_param_scheduler = True  # the schedulers' states go into checkpoints (CheckpointHook's option)
        # MMEngine's LoggerHook's options for the log path (the loggers, text lines, the visualizer's scalars;
        # its interval is the Trainer's log_every_n_steps); None: the hub is fed, nothing is written
        self.logger_hook: LoggerHook | None = LoggerHook()
        self.text_logger: Any = None  # an MMLogger for MMEngine's text log lines (the Runner's); None: none
        # MMEngine's visualizer (the Runner's): LoggerHook's scalars go to it, and to ``json_log_path`` beside them
        self.visualizer: Any = None
        self.json_log_path: str | None = None

    @staticmethod
    def _build_evaluator(cfg: Any) -> Any:
        if cfg is None:
            return None
        from mm2lightning.evaluator import build_evaluator

        return build_evaluator(cfg)

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets _current_fx_name around every hook call (~30 times per iteration); nn.Module's
        # __setattr__ costs 10x object's for a plain string, which would end in object.__setattr__ anyway.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    @property
    def max_iters(self) -> int:
        """The run's iterations (``max_steps``, or ``max_epochs`` x batches per epoch); -1 before ``fit`` sets up."""
        return self._max_iters

    def use_model_wrapper(self, wrapper: nn.Module | None) -> None:
        """Run ``train_step``/``val_step``/``test_step`` through ``wrapper`` (set by mm2lightning's DDP strategies).

        The wrapper is not a registered submodule: checkpoints keep the model's own keys.
        """
        object.__setattr__(self, "_step_model", self.model if wrapper is None else wrapper)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    # ------------------------------------------------------------------ setup
    def configure_callbacks(self) -> list[pl.Callback]:
        """The hook driver (unless the Trainer has it already); reject Trainer flags that cannot apply to
        ``train_step``-driven training (this runs before Lightning's own checks)."""
        trainer = self.trainer
        driver = self.hook_driver
        others = [c for c in trainer.callbacks if isinstance(c, HookDriver) and c is not driver]
        if driver is not None and others:  # Lightning would let ours replace the Trainer's silently
            raise ValueError(
                "the MMLightningModule has hooks of its own (MMLightningModule(hooks=...)) and the Trainer got "
                "another HookDriver: give the hooks in one place"
            )
        callbacks = [driver] if driver is not None and driver not in trainer.callbacks else []
        if trainer.state.fn != TrainerFn.FITTING:
            return callbacks
        if trainer.accumulate_grad_batches != 1:
            raise MisconfigurationException(
                f"Trainer(accumulate_grad_batches={trainer.accumulate_grad_batches}) cannot apply: the optim wrapper "
                "accumulates gradients itself. Remove it and set accumulative_counts in the optim_wrapper config, "
                f"e.g. optim_wrapper=dict(optimizer=..., accumulative_counts={trainer.accumulate_grad_batches})."
            )
        if trainer.gradient_clip_val:
            raise MisconfigurationException(
                f"Trainer(gradient_clip_val={trainer.gradient_clip_val}) cannot apply: the optim wrapper clips "
                "gradients itself. Remove it and set clip_grad in the optim_wrapper config, e.g. "
                f"optim_wrapper=dict(optimizer=..., clip_grad=dict(max_norm={trainer.gradient_clip_val})) "
                "(or dict(type='value', clip_value=...))."
            )
        return callbacks

    def configure_optimizers(self) -> list[Any]:
        """Build the optim wrapper(s) and parameter schedulers; hand the raw optimizers to Lightning."""
        if self.optim_wrapper_cfg is None:
            raise ValueError(
                "Trainer.fit needs an optim_wrapper: MMLightningModule(model, optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)))"
            )
        optim_wrapper = build_optim_wrapper(self.model, self.optim_wrapper_cfg)
        wrappers = _wrappers(optim_wrapper)
        self._check_precision(wrappers)
        check_strategy_support(self.trainer.strategy, optim_wrapper)
        for wrapper in wrappers:
            wrapper.backend = self._backend
        self.optim_wrapper = optim_wrapper

        trainer = self.trainer
        trainer.estimated_stepping_batches  # noqa: B018 - sets up the train dataloader, for its length
        epoch_length = trainer.num_training_batches
        max_epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else None
        limits = [trainer.max_steps] if trainer.max_steps > 0 else []
        if max_epochs is not None and math.isfinite(epoch_length):
            limits.append(max_epochs * epoch_length)
        self._max_iters = min(limits) if limits else -1
        self.param_schedulers = build_param_schedulers(
            self.param_scheduler_cfg,
            optim_wrapper,
            epoch_length=epoch_length if math.isfinite(epoch_length) else None,
            max_epochs=max_epochs,
            max_iters=self._max_iters if self._max_iters > 0 else None,
        )
        schedulers = (
            [s for group in self.param_schedulers.values() for s in group]
            if isinstance(self.param_schedulers, dict)
            else list(self.param_schedulers)
        )
        schedulers = schedulers if self.step_schedulers else []
        self._iter_schedulers = [s for s in schedulers if not s.by_epoch and not s.need_val_args]
        self._epoch_schedulers = [s for s in schedulers if s.by_epoch and not s.need_val_args]
        self._plateau_schedulers = [s for s in schedulers if s.need_val_args]
        return [wrapper.optimizer for wrapper in wrappers]

    def _check_precision(self, wrappers: list[OptimWrapper]) -> None:
        precision = self.trainer.precision
        if precision != "32-true" and any(isinstance(w, AmpOptimWrapper) for w in wrappers):
            raise MisconfigurationException(
                f"AmpOptimWrapper does its own autocast and loss scaling, so Trainer(precision={precision!r}) would "
                "apply mixed precision twice. Either keep AmpOptimWrapper with Trainer(precision='32-true'), or use a "
                f"plain OptimWrapper with Trainer(precision={precision!r})."
            )

    def on_train_start(self) -> None:
        self.model.train()  # as MMEngine's loops, also when resumed within an epoch (no on_train_epoch_start then)
        if self._resume_state is not None:
            load_training_state(self.optim_wrapper, self.param_schedulers, self._resume_state)
            self._resume_state = None
        if self._resume_hub is not None:
            self._log_path.load_message_hub_state(self._resume_hub)
            self._resume_hub = None
        self.optim_wrapper.initialize_count_status(self.model, self.trainer.global_step, self._max_iters)
        self._step_progress = self.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        self._backend.choose_route(MMLightningModule.on_before_optimizer_step)
        self._share_dataset_meta(self.trainer.train_dataloader, None)
        self._log_path.on_train_start()

    def _share_dataset_meta(self, dataloaders: Any, evaluator: Any) -> None:
        """As MMEngine's loops: the dataset's ``metainfo`` (class names, palette, ...) to the evaluator's metrics
        and to the visualizer."""
        loader = dataloaders[0] if isinstance(dataloaders, (list, tuple)) and dataloaders else dataloaders
        meta = getattr(getattr(loader, "dataset", None), "metainfo", None)
        if meta is None:
            return
        if evaluator is not None:
            evaluator.dataset_meta = meta
        if self.visualizer is not None:
            self.visualizer.dataset_meta = meta

    def on_train_epoch_start(self) -> None:
        self.model.train()  # the model's own train() (norm_eval...); Lightning restores modes after validation
        self._log_path.start_clock()  # as IterTimerHook.before_train_epoch

    # --------------------------------------------------------------- training
    def training_step(self, batch: Any, batch_idx: int) -> Mapping[str, Any]:
        self._log_path.before_train_iter()
        log_vars = self._step_model.train_step(batch, optim_wrapper=self.optim_wrapper)
        self._step_progress.increment_ready()  # exactly one global_step per iteration
        self._step_progress.increment_completed()
        for scheduler in self._iter_schedulers:
            scheduler.step()
        if batch_idx + 1 == self.trainer.num_training_batches:
            self._step_epoch_schedulers()  # before an epoch-end validation or checkpoint, as in MMEngine
        self._log_path.after_train_iter(log_vars, batch, self.optim_wrapper)
        return log_vars

    # Lightning reads training_step's signature at every batch (does it take batch_idx?); a function's own
    # __signature__ spares inspect rebuilding it (about 7 us per iteration).
    training_step.__signature__ = inspect.signature(training_step)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.active_hook_driver is not None:  # after the callbacks' on_train_batch_end
            self.active_hook_driver.after_train_batch(self.trainer, batch_idx)

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        self._backend.run_before_step()

    def _step_epoch_schedulers(self) -> None:
        for scheduler in self._epoch_schedulers:
            scheduler.step()
        self._epoch_schedulers_stepped = True

    def on_train_epoch_end(self) -> None:
        if not self._epoch_schedulers_stepped:
            self._step_epoch_schedulers()
        self._epoch_schedulers_stepped = False
        self._log_path.on_train_epoch_end()

    # ------------------------------------------------------------- evaluation
    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
        """``val_step``'s outputs go to the evaluator, and to hooks' ``after_val_iter`` as ``outputs``."""
        self._log_path.before_eval_iter("val")
        outputs = self._step_model.val_step(batch)
        self._evaluate_step(self.val_evaluator, "val", outputs, batch)
        self._log_path.after_eval_iter("val")
        return outputs

    def on_validation_model_zero_grad(self) -> None:
        """Keep the gradients: Lightning releases them before validating, which would drop an accumulation window
        that validation interrupts. As in MMEngine, the window's gradients wait for its remaining micro-batches
        (the optim wrappers release them after each step)."""

    def on_validation_epoch_start(self) -> None:
        self._share_dataset_meta(self.trainer.val_dataloaders, self.val_evaluator)
        self._log_path.start_clock()  # as IterTimerHook.before_val_epoch

    def on_validation_epoch_end(self) -> None:
        metrics = self._evaluate_epoch(self.val_evaluator, "val", self.trainer.val_dataloaders)
        self.val_metrics = metrics
        if self.trainer.state.fn == TrainerFn.FITTING and not self.trainer.sanity_checking:
            for scheduler in self._plateau_schedulers:
                scheduler.step(metrics)
        self._log_path.after_evaluation("val", metrics)

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
        self._log_path.before_eval_iter("test")
        outputs = self._step_model.test_step(batch)
        self._evaluate_step(self.test_evaluator, "test", outputs, batch)
        self._log_path.after_eval_iter("test")
        return outputs

    def on_test_epoch_start(self) -> None:
        self._share_dataset_meta(self.trainer.test_dataloaders, self.test_evaluator)
        self._log_path.start_clock()  # as IterTimerHook.before_test_epoch

    def on_test_epoch_end(self) -> None:
        self.test_metrics = self._evaluate_epoch(self.test_evaluator, "test", self.trainer.test_dataloaders)
        self._log_path.after_evaluation("test", self.test_metrics)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
        """The model's predictions: ``forward(mode='predict')`` after preprocessing (as ``test_step``)."""
        return self._step_model.test_step(batch)

    @staticmethod
    def _evaluate_step(evaluator: Any, stage: str, outputs: Any, batch: Any) -> None:
        if evaluator is None:
            raise ValueError(
                f"Trainer got {stage} data but MMLightningModule has no {stage}_evaluator: pass "
                f"{stage}_evaluator=... (MMEngine metrics or torchmetrics), or drop the {stage} dataloader"
            )
        evaluator.process(data_samples=outputs, data_batch=batch)

    def _evaluate_epoch(self, evaluator: Any, stage: str, dataloaders: Any) -> dict[str, Any]:
        metrics = evaluator.evaluate(_dataset_size(dataloaders))
        scalars = {
            f"{stage}/{key}": value
            for key, value in metrics.items()
            if isinstance(value, (int, float)) or (hasattr(value, "numel") and value.numel() == 1)
        }
        if scalars:  # for callbacks (checkpoint monitors, early stopping) and, as LoggerHook, the loggers
            self.log_dict(scalars, on_step=False, on_epoch=True, batch_size=1, logger=self.logger_hook is not None)
        return metrics

    # ------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta = dict(self.checkpoint_meta)
        dataset_meta = getattr(getattr(self.trainer.train_dataloader, "dataset", None), "metainfo", None)
        if _plain_data(dataset_meta):  # as MMEngine: toolboxes' inference APIs read the class names from it
            meta["dataset_meta"] = copy.deepcopy(dataset_meta)
        if meta:
            checkpoint["meta"] = meta
        if self.optim_wrapper is not None:
            checkpoint[CHECKPOINT_KEY] = dump_training_state(
                self.optim_wrapper,
                self.param_schedulers if self.save_param_scheduler else None,
                save_grads=self.trainer.world_size == 1,
            )
        hub_state = self._log_path.message_hub_state()
        if hub_state is not None:
            checkpoint["message_hub"] = hub_state
        driver = self._checkpoint_hook_driver()
        if driver is not None:  # last: hooks see (and may change) all of it
            driver.before_save_checkpoint(checkpoint)

    def _checkpoint_hook_driver(self) -> HookDriver | None:
        """The driver whose hooks see a checkpoint: the run's, else this module's own once its hooks ran
        ``before_run`` (so not in ``load_from_checkpoint`` before any run, as a Runner's hooks would not be)."""
        driver = self.active_hook_driver or self.hook_driver
        return driver if driver is not None and driver.view is not None else None

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Runs before the weights are loaded (hooks may change them) and before configure_optimizers builds the
        # wrappers (their state is applied in on_train_start).
        fitting = self._trainer is not None and self.trainer.state.fn == TrainerFn.FITTING
        driver = self._checkpoint_hook_driver()
        if driver is not None:
            driver.after_load_checkpoint(checkpoint, resume=fitting)
        # Training state is for a fit that resumes; validate/test/predict from a checkpoint leave it alone.
        self._resume_state = checkpoint.get(CHECKPOINT_KEY) if fitting else None
        self._resume_hub = checkpoint.get("message_hub") if fitting else None


def _plain_data(value: Any) -> bool:
    """Whether ``value`` is a non-empty dict of containers, strings and numbers (loadable with weights_only)."""
    def plain(item: Any) -> bool:
        if isinstance(item, dict):
            return all(isinstance(k, str) and plain(v) for k, v in item.items())
        if isinstance(item, (list, tuple)):
            return all(plain(v) for v in item)
        return item is None or isinstance(item, (str, int, float, bool))

    return isinstance(value, dict) and bool(value) and plain(value)
