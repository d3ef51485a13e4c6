"""``Runner``: MMEngine's Runner facade, building a ``lightning.Trainer`` and an ``MMLightningModule`` underneath."""

from __future__ import annotations

import copy
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, get_args

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.utils.data import DataLoader

from mm2lightning.config import Config, ConfigDict, ConfigError, import_custom_modules
from mm2lightning.dataset import build_dataloader
from mm2lightning.dist import broadcast_object
from mm2lightning.lightning.compile import CompileTrainStep, compile_options
from mm2lightning.lightning.custom_loops import LoopValidation, is_custom_loop
from mm2lightning.lightning.data_resume import fixed_epoch, replay_batches, resume_loader, whole_passes
from mm2lightning.lightning.eval_autocast import EvalAutocast
from mm2lightning.lightning.hook_driver import HookDriver
from mm2lightning.lightning.iterator_seed import IteratorSeed
from mm2lightning.lightning.module import MMLightningModule
from mm2lightning.lightning.runner_checkpoints import _REBUILT, RunnerCheckpoints
from mm2lightning.lightning.runner_surface import RunnerAttributes
from mm2lightning.lightning.runner_view import RunnerView
from mm2lightning.lightning.vis_loggers import runner_visualizer
from mm2lightning.lightning.runner_args import (
    check_loop_arguments,
    Launcher,
    runner_strategy,
    default_loggers,
    hook_callbacks,
    launcher_trainer_args,
    process_rank,
    scale_lr,
    train_loop_trainer_args,
)
from mm2lightning.logging import MessageHub, MMLogger
from mm2lightning.model import convert_sync_batchnorm, revert_sync_batchnorm
from mm2lightning.model.efficient_conv_bn_eval import turn_on_efficient_conv_bn_eval
from mm2lightning.optim import OptimWrapper
from mm2lightning.registry import MODELS
from mm2lightning.registry.scope import activate_scope
from mm2lightning.runner.activation_checkpointing import turn_on_activation_checkpointing
from mm2lightning.runner.environment import check_env_cfg, process_group_args, setup_env
from mm2lightning.runner.log_processor import LogProcessor
from mm2lightning.runner.options import refuse
from mm2lightning.runner.remote import SCHEMES, is_remote


class Runner(RunnerCheckpoints, RunnerAttributes):
    """MMEngine's ``Runner``, training with ``lightning.Trainer``: the same constructor, ``from_cfg``, ``train``,
    ``val`` and ``test``, and MMEngine's attributes and methods (:class:`RunnerAttributes`).

    The model's ``train_step`` runs under an :class:`~mm2lightning.MMLightningModule` (``runner.module``) in a
    ``lightning.Trainer`` (``runner.trainer``) built from the MMEngine arguments: ``train_cfg`` gives
    ``max_epochs``/``max_steps`` and the validation schedule (``val_interval``, ``val_begin``, and after the
    last epoch or iteration); ``default_hooks``' ``CheckpointHook`` saves Lightning checkpoints
    (``epoch_N.ckpt``/``iter_N.ckpt``, ``best_*.ckpt``) in ``work_dir`` and ``LoggerHook``'s ``interval`` is
    ``log_every_n_steps``; ``launcher`` and ``cfg.model_wrapper_cfg`` (or FlexibleRunner's ``cfg.strategy``)
    choose the devices, the cluster environment and the strategy (DDP, or ``'fsdp_mm'`` for
    ``FSDPStrategy``/``MMFullyShardedDataParallel``). Metrics go to a ``CSVLogger`` under
    ``work_dir/<timestamp>`` (and TensorBoard when installed).

    Beyond MMEngine's arguments:

    Args:
        trainer_cfg: Extra ``lightning.Trainer`` arguments (``accelerator``, ``precision``,
            ``enable_progress_bar``, ...). They win over the ones the Runner derives; also read from
            ``cfg.trainer_cfg`` by :meth:`from_cfg`.
        callbacks: Extra Lightning callbacks (``custom_hooks`` takes them too).
        loggers: Lightning loggers to use instead of the CSV/TensorBoard ones.

    ``default_hooks`` other than MMEngine's built-in ones and ``custom_hooks`` (MMEngine hooks: instances of
    ``mm2lightning.hooks.Hook`` or ``mmengine.hooks.Hook``, or ``HOOKS`` configs) run through a
    :class:`~mm2lightning.lightning.HookDriver` at MMEngine's points, with a runner view
    (:class:`~mm2lightning.lightning.RunnerView`) as ``runner``; Lightning callbacks in ``custom_hooks`` are
    added to the Trainer as they are.

    As MMEngine, ``runner.logger`` is an ``MMLogger`` (``log_level``) writing ``work_dir/<timestamp>/<timestamp>.log``
    and ``runner.message_hub`` the experiment's ``MessageHub``, fed every iteration; at each log step the Lightning
    loggers get ``log_processor``'s values (window means of the losses by default) and ``runner.logger`` prints its
    ``Epoch(train) [e][i/n] ...`` line.

    ``default_scope`` (a toolbox's package name, e.g. ``'mmpretrain'``) is the scope config ``type`` names
    resolve in, as in MMEngine: the toolbox's registries first, then MMEngine's built-in names (mm2lightning's).

    ``visualizer`` is built as MMEngine's (``runner.visualizer``, for hooks) without backends of its own: its
    ``vis_backends`` choose the Lightning loggers (``LocalVisBackend``: ``vis_data/scalars.json`` and
    ``<timestamp>.json`` written as MMEngine's, ``TensorboardVisBackend``: ``TensorBoardLogger``,
    ``WandbVisBackend``: ``WandbLogger``, ``MLflowVisBackend``: ``MLFlowLogger``); without one, a ``CSVLogger``
    (and TensorBoard when installed) log under ``work_dir/<timestamp>``.

    ``env_cfg`` sets the process up as MMEngine's (``cudnn_benchmark``, ``mp_cfg``, ``resource_limit``), and
    its ``dist_cfg`` ``backend`` and ``timeout`` go to the process group Lightning starts; ``cfg.compile``
    compiles the model's ``train_step`` as MMEngine's. What is refused, with an error naming it, is listed with
    every other option in :mod:`mm2lightning.runner.options`.
    """

    def __init__(
        self,
        model: nn.Module | Mapping[str, Any],
        work_dir: str | os.PathLike,
        train_dataloader: DataLoader | Mapping[str, Any] | None = None,
        val_dataloader: DataLoader | Mapping[str, Any] | None = None,
        test_dataloader: DataLoader | Mapping[str, Any] | None = None,
        train_cfg: Mapping[str, Any] | None = None,
        val_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
        auto_scale_lr: Mapping[str, Any] | None = None,
        optim_wrapper: OptimWrapper | Mapping[str, Any] | None = None,
        param_scheduler: Any = None,
        val_evaluator: Any = None,
        test_evaluator: Any = None,
        default_hooks: Mapping[str, Any] | None = None,
        custom_hooks: Sequence[Any] | None = None,
        data_preprocessor: Mapping[str, Any] | None = None,
        load_from: str | os.PathLike | None = None,
        resume: bool = False,
        launcher: Launcher = "none",
        env_cfg: Mapping[str, Any] | None = None,
        log_processor: LogProcessor | Mapping[str, Any] | None = None,
        log_level: str | int = "INFO",
        visualizer: Any = None,
        default_scope: str | None = "mmengine",
        randomness: Mapping[str, Any] | None = None,
        experiment_name: str | None = None,
        cfg: Config | Mapping[str, Any] | None = None,
        *,
        trainer_cfg: Mapping[str, Any] | None = None,
        callbacks: Sequence[pl.Callback] | None = None,
        loggers: Logger | Sequence[Logger] | None = None,
    ) -> None:
        if launcher not in get_args(Launcher):
            raise ValueError(f"launcher must be one of {list(get_args(Launcher))}, but got {launcher!r}")
        self.env_cfg = check_env_cfg(env_cfg)
        setup_env(self.env_cfg, distributed=launcher != "none")  # as MMEngine: first of all
        check_loop_arguments(
            dict(train=(train_dataloader, train_cfg, optim_wrapper), val=(val_dataloader, val_cfg, val_evaluator),
                 test=(test_dataloader, test_cfg, test_evaluator)),
            param_scheduler,
        )
        self.work_dir = Path(work_dir).absolute()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if isinstance(cfg, Config):
            self.cfg = Config(copy.deepcopy(cfg.to_dict()), filename=cfg.filename)
        else:
            self.cfg = Config(copy.deepcopy(dict(cfg)) if cfg is not None else {})
        self.launcher = launcher
        self.timestamp = time.strftime("%Y%m%d_%H%M%S", time.localtime())
        name = experiment_name or (Path(self.cfg.filename).stem if self.cfg.filename else None)
        self.experiment_name = f"{name}_{self.timestamp}" if name else self.timestamp  # as MMEngine
        log_dir = self.work_dir / self.timestamp  # as MMEngine: the text log beside the metrics
        log_dir.mkdir(parents=True, exist_ok=True)
        self.logger = MMLogger.get_instance(
            self.experiment_name, log_file=str(log_dir / f"{self.timestamp}.log"), log_level=log_level, file_mode="a"
        )
        self.message_hub = MessageHub.get_instance(self.experiment_name)
        if load_from is not None and is_remote(load_from) and not str(load_from).startswith(SCHEMES):
            refuse("Runner", "load_from", f"load_from={str(load_from)!r}")
        self.load_from = load_from
        self.auto_scale_lr = auto_scale_lr
        self._resume = resume
        self._loaded_weights = False  # as MMEngine: load_from applies once, in the first train/val/test
        self._resumed = False  # and resume once, in train
        self._resume_position = (0, 0, 0)  # epoch, batches done in it, and all batches, when resuming
        self._replay_resume = False  # resuming MMEngine's iteration-based checkpoint: load the batches seen

        randomness = dict(randomness or {})
        self._randomness_cfg = randomness  # MMEngine's name: loops read diff_rank_seed from it
        unknown = set(randomness) - {"seed", "deterministic", "diff_rank_seed"}
        if unknown:
            raise ValueError(f"randomness has unknown keys {sorted(unknown)}; expected seed, deterministic, diff_rank_seed")
        self._seed_given = randomness.get("seed") is not None  # else drawn here, shared from rank 0 later
        self.deterministic: bool = bool(randomness.get("deterministic", False))
        self._diff_rank_seed = bool(randomness.get("diff_rank_seed", False))
        self._meta: dict[str, Any] = dict(experiment_name=self.experiment_name)  # MMEngine's checkpoint meta
        self.seed: int = -1
        # random, numpy, torch: before a model config is built, as MMEngine
        self._apply_seed(randomness["seed"] if self._seed_given else int(np.random.randint(2**31)))

        # As MMEngine: config `type` names resolve in the default scope's registries (a toolbox's) from here on.
        self.default_scope = activate_scope(self.experiment_name, default_scope) if default_scope is not None else None
        # As MMEngine: the visualizer, in that scope; its vis_backends become Lightning loggers.
        self._vis_loggers, self.visualizer = runner_visualizer(
            visualizer, log_dir, self.experiment_name, self.timestamp, replaced=loggers is not None
        )
        if self.visualizer is not None and self.cfg.to_dict():
            self.visualizer.add_config(self.cfg)
        if isinstance(model, Mapping):
            model = dict(model)
            if data_preprocessor is not None:
                model.setdefault("data_preprocessor", data_preprocessor)
            model = MODELS.build(model)
        if isinstance(model, nn.Module) and launcher == "none":  # as MMEngine's wrap_model
            if any(isinstance(m, nn.SyncBatchNorm) for m in model.modules()):
                self.logger.info("Distributed training is not used: the SyncBatchNorm layers become BatchNormXd")
            model = revert_sync_batchnorm(model)
        elif isinstance(model, nn.Module) and self.cfg.get("sync_bn") is not None:
            model = convert_sync_batchnorm(model, self.cfg["sync_bn"])
        if auto_scale_lr and auto_scale_lr.get("enable", False) and optim_wrapper is not None:
            optim_wrapper = scale_lr(optim_wrapper, self._lr_scale(auto_scale_lr, train_dataloader))
        self._loop_flags, self._schedule = (
            train_loop_trainer_args(train_cfg) if train_cfg is not None else ({}, None)
        )
        epoch_based_loop = self._schedule is None or self._schedule.by_epoch
        # As MMEngine, hooks are built and ordered here; the built-in ones become callbacks and Trainer arguments.
        setup = hook_callbacks(default_hooks, custom_hooks, self.work_dir, epoch_based_loop)
        self._hook_callbacks, self._hook_trainer_args, hooks = setup.callbacks, setup.trainer_kwargs, setup.hooks
        self._hook_driver = HookDriver(hooks, runner=self, by_epoch=epoch_based_loop) if len(hooks) else None
        self._hooks_in_order = setup.in_order
        self.logger.info(f"Hooks will be executed in the following order:\n{self.get_hooks_info()}")
        self.module = MMLightningModule(
            model,
            optim_wrapper=optim_wrapper,
            param_scheduler=param_scheduler,
            val_evaluator=val_evaluator,
            test_evaluator=test_evaluator,
            log_processor=log_processor,
            hooks=self._hook_driver,
        )
        self.module.message_hub = self.message_hub
        # default_hooks=dict(param_scheduler=None) / dict(logger=None): that hook's work is not done, as in MMEngine
        self.module.step_schedulers = "ParamSchedulerHook" in setup.built_ins
        self._sampler_epochs = "DistSamplerSeedHook" in setup.built_ins
        self.module._log_path.timed = "IterTimerHook" in setup.built_ins
        self.module.logger_hook = setup.logger_hook
        self.module.text_logger = self.logger  # MMEngine's text log lines at each log step
        self.module.visualizer = self.visualizer  # and LoggerHook's scalars
        self.module.json_log_path = f"{self.timestamp}.json"
        if setup.logger_hook is not None:
            setup.logger_hook.json_log_path = self.module.json_log_path
        self.module.checkpoint_meta = self._meta  # the same dict: a seed settled later is saved too
        # hooks' runner view, from load_checkpoint on; the Runner's counters are the same view's
        self._view = (
            self._hook_driver.bind(self.module) if self._hook_driver is not None
            else RunnerView(self.module, self, epoch_based_loop)
        )
        self._dataloaders = dict(train=train_dataloader, val=val_dataloader, test=test_dataloader)
        self._built_loaders: dict[str, DataLoader] = {}  # the last run's, per stage
        self._early_loaders: dict[str, DataLoader] = {}  # built for runner.<stage>_dataloader before a run
        self._iterator_seed = IteratorSeed()
        self._trainer_cfg = dict(trainer_cfg or self.cfg.get("trainer_cfg") or {})
        self._compile = compile_options(self.cfg.get("compile"))
        # val_cfg/test_cfg naming another loop: its own run(), by val()/test() (custom_loops.py)
        self._custom_loop_cfgs = {s: c for s, c in (("val", val_cfg), ("test", test_cfg)) if is_custom_loop(s, c)}
        self._custom_loops: dict[str, Any] = {}
        self._evaluator_cfgs = dict(val=val_evaluator, test=test_evaluator)
        self._fp16_stages = tuple(s for s, c in (("val", val_cfg), ("test", test_cfg)) if isinstance(c, Mapping) and c.get("fp16"))
        self._extra_callbacks = list(callbacks or [])
        self._loggers = loggers
        self._trainer: pl.Trainer | None = None
        if self.cfg.to_dict() and process_rank(launcher) == 0:
            self.dump_config()

    # ------------------------------------------------------------- building
    @classmethod
    def from_cfg(cls, cfg: Config | Mapping[str, Any]) -> Runner:
        """Build a Runner from a config (a :class:`mm2lightning.config.Config` or a dict), as MMEngine's.

        ``custom_imports`` are imported first, so the config's registered ``type`` names resolve.
        """
        config = cfg if isinstance(cfg, Config) else Config(dict(cfg))
        # ConfigDicts, as MMEngine hands them on: toolbox code reads its settings as attributes (test_cfg.mode)
        cfg = ConfigDict(copy.deepcopy(config.to_dict()))
        for key in ("model", "work_dir"):
            if cfg.get(key) is None:
                raise ValueError(f"the config has no {key!r}; Runner.from_cfg needs model and work_dir")
        import_custom_modules(cfg.get("custom_imports"))
        runner_type = cfg.get("runner_type", "Runner")  # tools/train.py builds RUNNERS' runner_type
        if str(runner_type).removeprefix("mmengine.") not in ("Runner", "FlexibleRunner"):
            refuse("cfg", "runner_type", f"runner_type={runner_type!r}")
        names = (
            "train_dataloader", "val_dataloader", "test_dataloader", "train_cfg", "val_cfg", "test_cfg",
            "auto_scale_lr", "optim_wrapper", "param_scheduler", "val_evaluator", "test_evaluator", "default_hooks",
            "custom_hooks", "data_preprocessor", "load_from", "env_cfg", "log_processor", "visualizer",
            "experiment_name",
        )
        return cls(
            model=cfg["model"],
            work_dir=cfg["work_dir"],
            **{name: cfg.get(name) for name in names},
            resume=cfg.get("resume", False),
            launcher=cfg.get("launcher", "none"),
            log_level=cfg.get("log_level", "INFO"),
            default_scope=cfg.get("default_scope", "mmengine"),
            randomness=cfg.get("randomness", dict(seed=None)),
            cfg=config,
            trainer_cfg=cfg.get("trainer_cfg"),
        )

    @property
    def model(self) -> nn.Module:
        """The model (unwrapped)."""
        return self.module.model

    @property
    def trainer(self) -> pl.Trainer:
        """The ``lightning.Trainer``, built on first use."""
        if self._trainer is None:
            self._trainer = self._build_trainer()
        return self._trainer

    def _build_trainer(self) -> pl.Trainer:
        # The hook driver first: MMEngine's CheckpointHook (MMCheckpoint here) runs after the other hooks.
        callbacks = [self._hook_driver] if self._hook_driver is not None else []
        callbacks += self._hook_callbacks
        if self._schedule is not None and not self._schedule.by_epoch:  # only MMEngine's iteration-based loop draws
            callbacks.append(self._iterator_seed)
        kwargs = dict(self._hook_trainer_args, **self._loop_flags)
        if self._schedule is not None and "val" in self._custom_loop_cfgs:  # validates with the custom loop
            callbacks.append(LoopValidation(self._validate_in_fit, self._schedule))
        elif self._schedule is not None and self._dataloaders["val"] is not None:
            callbacks.append(self._schedule)
        if self._compile is not None:
            callbacks.append(CompileTrainStep(self._compile))
        if self._fp16_stages:  # val_cfg/test_cfg fp16=True, as MMEngine's loops
            callbacks.append(EvalAutocast(self._fp16_stages))
        kwargs.update(launcher_trainer_args(self.launcher))
        if self.launcher != "none":
            kwargs["strategy"] = runner_strategy(self.cfg, **process_group_args(self.env_cfg))
        loggers = (
            self._loggers if self._loggers is not None
            else self._vis_loggers if self._vis_loggers is not None
            else default_loggers(self.work_dir, self.timestamp)
        )
        kwargs.update(
            default_root_dir=self.work_dir,
            logger=loggers,
            callbacks=[*callbacks, *self._extra_callbacks],
            enable_checkpointing=False,  # checkpoints come from CheckpointHook (MMCheckpoint)
            num_sanity_val_steps=0,  # MMEngine validates only on schedule
            use_distributed_sampler=False,  # as MMEngine: the sampler (DefaultSampler) splits the data per rank
            deterministic=self.deterministic or None,
        )
        kwargs.update(self._trainer_cfg)
        return pl.Trainer(**kwargs)

    @contextmanager
    def _dataloaders_on_module(self) -> Iterator[None]:
        """The dataloaders as the module's ``<stage>_dataloader`` hooks for one Trainer call: built per process
        after Lightning started the process group (DefaultSampler needs it). Not a ``LightningDataModule``:
        Lightning would check one for overridden batch hooks at every batch."""
        stages = [stage for stage, loader in self._dataloaders.items() if loader is not None]
        if "val" in self._custom_loop_cfgs:  # the custom loop validates, not Lightning's
            stages.remove("val")
        for stage in stages:
            setattr(self.module, f"{stage}_dataloader", self._loader_factory(self._dataloaders[stage], stage))
        try:
            yield
        finally:
            for stage in stages:
                delattr(self.module, f"{stage}_dataloader")

    def _loader_factory(self, loader: Any, stage: str) -> Callable[[], DataLoader]:
        def build() -> DataLoader:
            seed = self._shared_seed()
            built = self._early_loaders.pop(stage, None)  # built for runner.<stage>_dataloader before: that one
            if built is None:
                built = build_dataloader(loader, seed=seed, diff_rank_seed=self._diff_rank_seed)
            self._built_loaders[stage] = built
            if stage == "train":
                self._iterator_seed.attach(built)
                whole_passes(built)
                if not self._sampler_epochs:  # default_hooks=dict(sampler_seed=None): no set_epoch, as MMEngine
                    fixed_epoch(built)
            if stage == "train" and any(self._resume_position):
                if self._replay_resume:  # MMEngine's IterBasedTrainLoop loads the batches it skips
                    replay_batches(built, self._resume_position[2], self._iterator_seed.release)
                else:
                    resume_loader(built, *self._resume_position)
                self._resume_position = (0, 0, 0)
            return built

        return build

    def _apply_seed(self, seed: int) -> None:
        """Seed ``random``, numpy and torch with ``seed`` (plus the rank with ``diff_rank_seed``), as MMEngine."""
        self._meta["seed"] = seed  # what MMEngine saves: the seed before the rank is added
        self.seed = seed + (process_rank(self.launcher) if self._diff_rank_seed else 0)
        pl.seed_everything(self.seed, verbose=False)

    def _shared_seed(self) -> int:
        """The run's seed, equal on all ranks: rank 0's when it was drawn at random (MMEngine's sync_random_seed).

        Called when the dataloaders are built, the first moment the process group exists under Lightning; the
        random number generators are seeded again with the shared seed.
        """
        if not self._seed_given:
            self._seed_given = True
            self._apply_seed(int(broadcast_object(self._meta["seed"])))
        return self.seed

    # -------------------------------------------------------------- running
    def train(self) -> nn.Module:
        """Train as MMEngine's ``Runner.train()``; resume or load weights first when asked. Returns the model."""
        if self._dataloaders["train"] is None:
            raise RuntimeError("Runner.train() needs train_dataloader, train_cfg and optim_wrapper")
        with self._run():
            if not self._schedule.by_epoch:  # MMEngine's iteration-based loop made its data iterator by now
                self._iterator_seed.draw()
            if hasattr(self.model, "init_weights"):
                self.model.init_weights()
            if self.cfg.get("activation_checkpointing") is not None:  # as MMEngine: after init_weights
                turn_on_activation_checkpointing(self.model, self.cfg["activation_checkpointing"])
            if self.cfg.get("efficient_conv_bn_eval") is not None:
                turn_on_efficient_conv_bn_eval(self.model, self.cfg["efficient_conv_bn_eval"])
            resume_from = self._checkpoint_to_resume()
            fit_path = None
            if resume_from is not None:
                fit_path = self._prepare_resume(resume_from)
                self._resumed = True
            elif self.load_from is not None and not self._loaded_weights:
                self.load_checkpoint(self.load_from)
            self._loaded_weights = True
            try:
                with warnings.catch_warnings():  # Lightning's warning about mid-epoch resumption: handled here
                    warnings.filterwarnings(
                        "ignore", message="You're resuming from a checkpoint that ended before the epoch"
                    )
                    with self._dataloaders_on_module():
                        self.trainer.fit(self.module, ckpt_path=fit_path, weights_only=False)
            finally:
                if fit_path is not None and fit_path.name.startswith(_REBUILT):  # an MMEngine checkpoint, rebuilt
                    fit_path.unlink(missing_ok=True)
        return self.model

    @contextmanager
    def _run(self) -> Iterator[None]:
        """A run: the runtime information in the hub and hooks' ``before_run`` first, before weights are
        initialised or loaded, as MMEngine (``after_run`` comes with the Trainer's teardown). A run that fails
        gets no ``after_run`` (as MMEngine), and the next one starts with ``before_run`` again.

        The model is on its device by then, as MMEngine's Runner puts it there when it is built (hooks such as
        ``EMAHook`` copy it in ``before_run``).
        """
        info = dict(seed=self.seed, experiment_name=self.experiment_name)  # as MMEngine's RuntimeInfoHook
        try:
            info["cfg"] = self.cfg.pretty_text
        except ConfigError:  # a config holding objects that cannot be written as text
            pass
        self.message_hub.update_info_dict(info)
        if self._hook_driver is not None:
            self.model.to(self.trainer.strategy.root_device)
            self._hook_driver.begin_run(self.module)
        try:
            yield
        except BaseException:
            if self._hook_driver is not None:
                self._hook_driver.abort_run()
            raise
        logger_hook = self.module.logger_hook
        if logger_hook is not None and self.rank == 0:  # LoggerHook's after_run: the logs to its out_dir
            logger_hook.copy_logs(self.log_dir, self.work_dir, self.logger)

    def val(self) -> dict[str, Any]:
        """Evaluate on ``val_dataloader``; returns the evaluator's metrics (MMEngine's names, no ``val/``)."""
        return self._evaluate("val")

    def test(self) -> dict[str, Any]:
        """Evaluate on ``test_dataloader``; returns the evaluator's metrics (MMEngine's names, no ``test/``)."""
        return self._evaluate("test")

    def _evaluate(self, stage: Literal["val", "test"]) -> dict[str, Any]:
        if self._dataloaders[stage] is None:
            raise RuntimeError(f"Runner.{stage}() needs {stage}_dataloader, {stage}_cfg and {stage}_evaluator")
        with self._run():
            if not self._loaded_weights:  # as MMEngine's load_or_resume: the checkpoint to resume, else load_from
                path = self._checkpoint_to_resume() or self.load_from
                if path is not None:
                    self.load_checkpoint(path)
                self._loaded_weights = True
            if stage in self._custom_loop_cfgs:
                return self._run_custom_loop(stage)
            run = self.trainer.validate if stage == "val" else self.trainer.test
            with self._dataloaders_on_module():
                run(self.module, verbose=False)
        return dict(self.module.val_metrics if stage == "val" else self.module.test_metrics)
