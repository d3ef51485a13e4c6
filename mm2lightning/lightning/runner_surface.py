"""MMEngine Runner's attributes and methods for the code that holds a Runner: counters, loops, built objects,
hooks and builders, with MMEngine's names and signatures (the checkpoint methods: runner_checkpoints)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch import nn
from torch.utils.data import DataLoader

from mm2lightning.config import ConfigError
from mm2lightning.dataset import build_dataloader as _build_dataloader
from mm2lightning.dist import get_rank, get_world_size, is_distributed
from mm2lightning.errors import AssertKeyError, AssertTypeError
from mm2lightning.evaluator import build_evaluator as _build_evaluator
from mm2lightning.lightning.custom_loops import build_custom_loop, is_custom_loop, record_metrics
from mm2lightning.hooks.hook import Hook, triggered_stages
from mm2lightning.lightning.hook_driver import HookDriver
from mm2lightning.lightning.runner_args import launcher_trainer_args, process_rank, train_loop_trainer_args
from mm2lightning.lightning.runner_args import scale_lr as _scale_lr
from mm2lightning.logging import MessageHub, MMLogger
from mm2lightning.lightning.runner_view import RunnerView
from mm2lightning.lightning.vis_loggers import backend_loggers, build_visualizer
from mm2lightning.optim import OptimWrapper
from mm2lightning.optim import build_optim_wrapper as _build_optim_wrapper
from mm2lightning.optim.scheduler import build_param_schedulers
from mm2lightning.registry import MODELS
from mm2lightning.runner.environment import check_env_cfg, setup_env
from mm2lightning.runner.log_processor import LogProcessor
from mm2lightning.runner.options import find, refuse
from mm2lightning.runner.priority import Priority


class EvalLoop:
    """``runner.val_loop`` / ``runner.test_loop``: MMEngine's ``ValLoop``/``TestLoop`` attributes; ``run()``
    evaluates through the Runner (Lightning's loop) and returns the metrics."""

    fp16 = False

    def __init__(self, runner: Any, stage: str) -> None:
        self.runner = runner
        self._stage = stage

    @property
    def dataloader(self) -> DataLoader:
        return getattr(self.runner, f"{self._stage}_dataloader")

    @property
    def evaluator(self) -> Any:
        return getattr(self.runner, f"{self._stage}_evaluator")

    def run(self) -> dict[str, Any]:
        return self.runner.val() if self._stage == "val" else self.runner.test()


class RunnerAttributes:
    """Mixin of :class:`~mm2lightning.runner.Runner`: what MMEngine's Runner offers besides its constructor,
    ``from_cfg``, ``train``, ``val``, ``test`` and ``load_checkpoint``.

    Counters (``epoch``, ``iter``) follow MMEngine's loops and read the Trainer; built objects (``optim_wrapper``,
    ``param_schedulers``) are their configs until training builds them, as in MMEngine. MMEngine attributes
    mm2lightning does not offer raise an ``AttributeError`` naming them and why.
    """

    module: Any
    work_dir: Path
    launcher: str
    timestamp: str
    seed: int
    _view: RunnerView
    _schedule: Any
    _dataloaders: dict[str, Any]
    _built_loaders: dict[str, DataLoader]
    _early_loaders: dict[str, DataLoader]
    _loop_flags: dict[str, Any]
    _hook_driver: HookDriver | None
    _trainer: Any
    _custom_loop_cfgs: dict[str, Any]
    _hooks_in_order: Any
    _fp16_stages: tuple[str, ...]
    experiment_name: str
    deterministic: bool
    _diff_rank_seed: bool
    _seed_given: bool
    _apply_seed: Callable[[int], None]
    _custom_loops: dict[str, Any]
    _evaluator_cfgs: dict[str, Any]
    cfg: Any

    # ------------------------------------------------------------ counters
    @property
    def epoch(self) -> int:
        """Epochs finished (MMEngine's ``train_loop.epoch``); 0 without a train loop."""
        return self._view.epoch if self._schedule is not None else 0

    @property
    def iter(self) -> int:
        """Iterations finished (MMEngine's ``train_loop.iter``); 0 without a train loop."""
        return self._view.iter if self._schedule is not None else 0

    @property
    def max_epochs(self) -> int:
        """``train_cfg``'s ``max_epochs`` (1 for an iteration-based run); 0 without a train loop."""
        return (self._view.max_epochs or 0) if self._schedule is not None else 0

    @property
    def max_iters(self) -> int:
        """``max_iters``, or ``max_epochs`` x the epoch's iterations (its dataloader is built for it); 0 without a
        train loop."""
        if self._schedule is None:
            return 0
        if self.module.max_iters > 0:
            return self.module.max_iters
        if not self._schedule.by_epoch:
            return self._loop_flags["max_steps"]
        return self.max_epochs * len(self.train_dataloader)

    @property
    def val_interval(self) -> int:
        return self._schedule.val_interval

    @property
    def val_begin(self) -> int:
        return self._schedule.val_begin

    @property
    def train_loop(self) -> Any:
        """MMEngine's training loop, for its counters and ``stop_training``; ``None`` without ``train_cfg``."""
        return self._view.train_loop if self._schedule is not None else None

    @property
    def val_loop(self) -> Any:
        """MMEngine's validation loop: a custom one (``val_cfg`` type) built, else a view of MMEngine's."""
        return self._eval_loop("val")

    @property
    def test_loop(self) -> Any:
        """MMEngine's test loop: a custom one (``test_cfg`` type) built, else a view of MMEngine's."""
        return self._eval_loop("test")

    def _run_custom_loop(self, stage: Literal["val", "test"], fitting: bool = False) -> dict[str, Any]:
        """A custom loop's own ``run()`` on every process (its sampler and evaluator share the work, as under
        MMEngine); outside a fit the strategy starts the process group first, and hooks' ``after_run`` follows."""
        if not fitting:  # the device, and the process group under a launcher, before the loop's sampler is built
            self.trainer.strategy.setup_environment()
            self.model.to(self.trainer.strategy.root_device)
        loop = self._custom_loop(stage)
        metrics = dict(loop.run())
        record_metrics(self, stage, loop, metrics, fitting=fitting or self.module.max_iters > 0)
        setattr(self.module, f"{stage}_metrics", metrics)
        if not fitting and self._hook_driver is not None:
            self._hook_driver.end_run()
        return metrics

    def _validate_in_fit(self) -> dict[str, Any]:
        """The custom validation loop during ``train()``: MMEngine's loops count the epoch before validating."""
        view, done = self._view, self._view._epoch_done
        view._epoch_done = self._schedule.by_epoch
        try:
            return self._run_custom_loop("val", fitting=True)
        finally:
            view._epoch_done = done

    def _eval_loop(self, stage: str) -> Any:
        if self._dataloaders[stage] is None:
            return None
        return self._custom_loop(stage) if stage in self._custom_loop_cfgs else EvalLoop(self, stage)

    def _custom_loop(self, stage: str) -> Any:
        if stage not in self._custom_loops:
            self._custom_loops[stage] = self._build_eval_loop(stage, self._custom_loop_cfgs[stage])
        return self._custom_loops[stage]

    # ------------------------------------------------------------ loop builders (MMEngine's signatures)
    def build_train_loop(self, loop: Any) -> Any:
        """MMEngine's: a loop object as it is; a config must be this Runner's ``train_cfg`` (Lightning's fit
        loop runs it), and gives ``runner.train_loop``.

        Raises:
            TypeError: Neither a loop nor a dict. RuntimeError: ``type`` and ``by_epoch`` both given (MMEngine's).
            UnsupportedOptionError: A config other than this Runner's ``train_cfg``.
        """
        if not isinstance(loop, Mapping):
            if callable(getattr(loop, "run", None)):
                return loop
            raise TypeError(f"train_loop should be a Loop object or dict, but got {loop}")
        if "type" in loop and "by_epoch" in loop:
            raise RuntimeError("Only one of `type` or `by_epoch` can exist in `loop_cfg`.")
        flags, schedule = train_loop_trainer_args(loop)
        same = self._schedule is not None and flags == self._loop_flags and all(
            getattr(schedule, key) == getattr(self._schedule, key)
            for key in ("by_epoch", "val_begin", "_milestones", "_intervals"))  # fmt: skip
        if not same:
            refuse("Runner attribute", "build_train_loop", f"build_train_loop({dict(loop)!r})")
        return self.train_loop

    def build_val_loop(self, loop: Any) -> Any:
        """MMEngine's: a loop object as it is; a ``LOOPS`` type built with this Runner, its val data and evaluator
        (its ``run()`` runs here); ``ValLoop``'s config gives ``runner.val_loop`` (with ``val_cfg``'s ``fp16``)."""
        return self._build_eval_loop("val", loop)

    def build_test_loop(self, loop: Any) -> Any:
        """As :meth:`build_val_loop`, for the test data and ``TestLoop``."""
        return self._build_eval_loop("test", loop)

    def _build_eval_loop(self, stage: str, loop: Any) -> Any:
        if not isinstance(loop, Mapping):
            if callable(getattr(loop, "run", None)):
                return loop
            raise TypeError(f"{stage}_loop should be a Loop object or dict, but got {loop}")
        if is_custom_loop(stage, loop):
            evaluator = self._evaluator_cfgs[stage]  # as MMEngine: the loop builds a config (runner.build_evaluator)
            if not isinstance(evaluator, (dict, list)):
                evaluator = getattr(self.module, f"{stage}_evaluator")
            return build_custom_loop(loop, self, self._dataloaders[stage], evaluator)
        options = {k: v for k, v in loop.items() if k != "type"}
        if set(options) - {"fp16"}:
            raise TypeError(f"{stage.capitalize()}Loop got unexpected keyword arguments {sorted(set(options) - {'fp16'})}")
        if bool(options.get("fp16", False)) != (stage in self._fp16_stages):
            refuse("Runner attribute", f"build_{stage}_loop", f"build_{stage}_loop(fp16={options.get('fp16')}) "
                   f"other than {stage}_cfg's")  # fmt: skip
        return EvalLoop(self, stage)

    def build_visualizer(self, visualizer: Any = None) -> Any:
        """MMEngine's: ``None`` gives a ``Visualizer`` named after the experiment writing ``<log_dir>/vis_data``
        (``LocalVisBackend``); a visualizer as it is; a dict built with ``name`` and ``save_dir`` defaults. Its
        ``vis_backends`` are Lightning loggers attached to it (each written through the visualizer)."""
        if visualizer is None:
            visualizer = dict(type="Visualizer", vis_backends=[dict(type="LocalVisBackend")])
        if not isinstance(visualizer, Mapping):
            return build_visualizer(visualizer, self.experiment_name, self.log_dir)
        loggers = backend_loggers(visualizer, self.log_dir, self.experiment_name, self.timestamp)
        return build_visualizer(visualizer, self.experiment_name, self.log_dir, loggers=loggers)

    # ------------------------------------------------------------ processes
    @property
    def distributed(self) -> bool:
        """Whether a launcher starts several processes (MMEngine: ``launcher != 'none'``)."""
        return self.launcher != "none"

    @property
    def rank(self) -> int:
        return get_rank() if is_distributed() else process_rank(self.launcher)

    @property
    def world_size(self) -> int:
        if is_distributed():
            return get_world_size()
        world = launcher_trainer_args(self.launcher)
        return world["devices"] * world["num_nodes"]

    @property
    def log_dir(self) -> str:
        """``work_dir/<timestamp>``: the text log, the visualizer's files and the loggers' directory."""
        return str(self.work_dir / self.timestamp)

    @property
    def model_name(self) -> str:
        return type(self.module.model).__name__

    # ------------------------------------------------------------ built objects
    @property
    def optim_wrapper(self) -> Any:
        """The optim wrapper once training built it; its config before, as MMEngine."""
        return self.module.optim_wrapper if self.module.optim_wrapper is not None else self.module.optim_wrapper_cfg

    @property
    def param_schedulers(self) -> Any:
        """The parameter schedulers once training built them; their config before, as MMEngine."""
        return self.module.param_schedulers if self.module.optim_wrapper is not None else self.module.param_scheduler_cfg

    @property
    def val_evaluator(self) -> Any:
        return self.module.val_evaluator

    @property
    def test_evaluator(self) -> Any:
        return self.module.test_evaluator

    @property
    def log_processor(self) -> LogProcessor:
        return self.module._log_path.log_processor

    @property
    def hooks(self) -> list[Any]:
        """The MMEngine hooks run at MMEngine's points (custom hooks and default hooks other than the built-in
        ones, which are Lightning callbacks: see ``runner.trainer.callbacks``), in their order."""
        driver = self.module.hook_driver
        return list(driver.hooks) if driver is not None else []

    @property
    def train_dataloader(self) -> DataLoader:
        return self._dataloader("train")

    @property
    def val_dataloader(self) -> DataLoader:
        return self._dataloader("val")

    @property
    def test_dataloader(self) -> DataLoader:
        return self._dataloader("test")

    def _dataloader(self, stage: str) -> DataLoader:
        """The stage's dataloader: the one the last run built, else built now (once) from its config."""
        built = self._built_loaders.get(stage) or self._early_loaders.get(stage)
        if built is not None:
            return built
        given = self._dataloaders[stage]
        if given is None:  # as MMEngine's (the loop is None): an AttributeError, see __getattr__
            raise AttributeError(f"{stage}_dataloader")
        if isinstance(given, DataLoader):
            return given
        if self.distributed and not is_distributed():
            raise RuntimeError(
                f"runner.{stage}_dataloader is built once the process group is up (inside train()/val()/test(), "
                "e.g. in a hook): its sampler splits the data across ranks"
            )
        self._early_loaders[stage] = self.build_dataloader(given, seed=self.seed)  # the next run takes it
        return self._early_loaders[stage]

    def dump_config(self) -> None:
        """Save the config in ``work_dir`` under its file's name (or ``<timestamp>.py``), as MMEngine does."""
        name = Path(self.cfg.filename).name if self.cfg.filename else f"{self.timestamp}.py"
        try:
            self.cfg.dump(self.work_dir / name)
        except ConfigError as error:
            warnings.warn(f"the config is not saved in work_dir: {error}", stacklevel=3)

    def _lr_scale(self, auto_scale_lr: Mapping[str, Any], train_dataloader: Any) -> float:
        if "base_batch_size" not in auto_scale_lr:
            raise ValueError("auto_scale_lr needs base_batch_size, e.g. auto_scale_lr=dict(enable=True, base_batch_size=256)")
        batch_size = (
            train_dataloader.batch_size if isinstance(train_dataloader, DataLoader) else train_dataloader["batch_size"]
        )
        world = launcher_trainer_args(self.launcher)
        return world["devices"] * world["num_nodes"] * batch_size / auto_scale_lr["base_batch_size"]

    # ------------------------------------------------------------ builders (MMEngine's signatures)
    @staticmethod
    def build_dataloader(
        dataloader: DataLoader | Mapping[str, Any], seed: int | None = None, diff_rank_seed: bool = False
    ) -> DataLoader:
        """MMEngine's static ``Runner.build_dataloader``: a ``DataLoader`` from its config (or as it is)."""
        return _build_dataloader(dataloader, seed=seed, diff_rank_seed=diff_rank_seed)

    def build_model(self, model: nn.Module | Mapping[str, Any]) -> nn.Module:
        if isinstance(model, nn.Module):
            return model
        if isinstance(model, Mapping):
            return MODELS.build(dict(model))
        raise AssertTypeError(f"model should be a nn.Module object or dict, but got {model}")

    def build_optim_wrapper(self, optim_wrapper: OptimWrapper | Mapping[str, Any]) -> OptimWrapper:
        """An optim wrapper for the Runner's model from its config (or as it is)."""
        return _build_optim_wrapper(self.module.model, optim_wrapper)

    def build_param_scheduler(self, scheduler: Any) -> Any:
        """Parameter schedulers from their config for the built optim wrapper (``self.optim_wrapper``)."""
        if not isinstance(self.optim_wrapper, OptimWrapper):
            raise RuntimeError(
                "`build_optim_wrapper` should be called before `build_param_scheduler` because the latter depends "
                "on the former"
            )
        return build_param_schedulers(scheduler, self.optim_wrapper)

    def build_evaluator(self, evaluator: Any) -> Any:
        return _build_evaluator(evaluator)

    def build_log_processor(self, log_processor: LogProcessor | Mapping[str, Any]) -> LogProcessor:
        if isinstance(log_processor, LogProcessor):
            return log_processor
        return LogProcessor(**{k: v for k, v in dict(log_processor).items() if k != "type"})

    def build_logger(self, log_level: int | str = "INFO", log_file: str | None = None, **kwargs: Any) -> MMLogger:
        """An ``MMLogger`` as MMEngine's: named after the experiment and writing ``<log_dir>/<timestamp>.log``
        unless told otherwise (the defaults give ``runner.logger``)."""
        log_cfg = dict(log_level=log_level, log_file=log_file or f"{self.log_dir}/{self.timestamp}.log", **kwargs)
        log_cfg.setdefault("name", self.experiment_name)
        log_cfg.setdefault("file_mode", "a")
        return MMLogger.get_instance(**log_cfg)

    def build_message_hub(self, message_hub: dict | None = None) -> MessageHub:
        """A ``MessageHub`` as MMEngine's, named after the experiment unless told otherwise."""
        if message_hub is None:
            message_hub = dict(name=self.experiment_name)
        elif isinstance(message_hub, dict):
            message_hub.setdefault("name", self.experiment_name)
        else:
            raise TypeError(f"message_hub should be dict or None, but got {message_hub}")
        return MessageHub.get_instance(**message_hub)

    def scale_lr(self, optim_wrapper: OptimWrapper, auto_scale_lr: Mapping[str, Any] | None = None) -> None:
        """MMEngine's ``scale_lr``: a built optim wrapper's learning rates times ``world_size x batch_size /
        base_batch_size`` when ``auto_scale_lr['enable']`` (the constructor does it for its own
        ``auto_scale_lr``)."""
        if auto_scale_lr is None or not auto_scale_lr.get("enable", False):
            return
        if "base_batch_size" not in auto_scale_lr:
            raise AssertKeyError("Lack of `base_batch_size` in `auto_scale_lr`.")
        if not isinstance(optim_wrapper, OptimWrapper):
            raise AssertTypeError("`scale_lr should be called after building OptimWrapper")
        _scale_lr(optim_wrapper, self._lr_scale(auto_scale_lr, self._dataloaders["train"]))

    def set_randomness(self, seed: int | None, diff_rank_seed: bool = False, deterministic: bool = False) -> None:
        """Seed ``random``, numpy and torch as MMEngine's (``None``: a drawn seed, shared from rank 0).

        Raises:
            RuntimeError: ``deterministic`` changes after the Trainer was built (it is one of its arguments).
        """
        if self._trainer is not None and bool(deterministic) != self.deterministic:
            raise RuntimeError("set_randomness(deterministic=...) after the Runner's Trainer was built: call it first")
        self.deterministic, self._diff_rank_seed, self._seed_given = bool(deterministic), diff_rank_seed, seed is not None
        self._apply_seed(seed if seed is not None else int(np.random.randint(2**31)))

    # ------------------------------------------------------------ environment and hooks
    def setup_env(self, env_cfg: Mapping[str, Any]) -> None:
        """Set the process up for ``env_cfg`` as MMEngine's (the constructor does it for its own ``env_cfg``)."""
        setup_env(check_env_cfg(env_cfg), distributed=self.distributed)

    def call_hook(self, fn_name: str, **kwargs: Any) -> None:
        """Call ``fn_name`` (a hook point, e.g. ``'after_train_iter'``) on every hook that acts at it, in order.

        For a custom loop's validation and test points, MMEngine's ``IterTimerHook`` (a Lightning-side built-in
        here) is done too: ``<stage>/data_time`` and ``<stage>/time`` in the hub."""
        log_path = self.module._log_path
        for stage in ("val", "test"):
            if fn_name == f"before_{stage}_epoch":
                log_path.start_clock()
            elif fn_name == f"before_{stage}_iter":
                log_path.before_eval_iter(stage)
            elif fn_name == f"after_{stage}_iter":
                log_path.after_eval_iter(stage)
        if self._hook_driver is not None:
            self._hook_driver.call(fn_name, **kwargs)

    def register_hook(self, hook: Any, priority: Any = None) -> None:
        """Register an MMEngine hook (an instance or a ``HOOKS`` config), placed by priority as MMEngine's.

        Raises:
            RuntimeError: The Runner has run already without hooks (its Trainer has no hook driver).
        """
        if self._hook_driver is None:
            if self._trainer is not None:
                raise RuntimeError(
                    "register_hook after the Runner's Trainer was built without hooks: give the hooks to the "
                    "constructor (custom_hooks) or register them before train()/val()/test()"
                )
            self._hook_driver = HookDriver([], runner=self, by_epoch=self._view.by_epoch)
            self.module.hook_driver = self._hook_driver
            self._view = self._hook_driver.bind(self.module)
        self._hooks_in_order.register(self._hook_driver.register(hook, priority))

    def get_hooks_info(self) -> str:
        """Each hook point's hooks, in call order, with their priorities: MMEngine's text (the built-in hooks,
        Lightning callbacks here, are listed where MMEngine's would run)."""
        stages: dict[str, list[str]] = {stage: [] for stage in Hook.stages}
        for hook in self._hooks_in_order:
            try:
                priority = Priority(hook.priority).name
            except ValueError:
                priority = hook.priority
            for stage in triggered_stages(hook):
                stages[stage].append(f"({priority:<12}) {hook.__class__.__name__:<35}")
        return "\n".join(f"{stage}:\n" + "\n".join(infos) + "\n -------------------- "
                         for stage, infos in stages.items() if infos)  # fmt: skip

    def register_custom_hooks(self, hooks: list[Any]) -> None:
        """Register MMEngine hooks (instances or ``HOOKS`` configs), each through :meth:`register_hook`."""
        for hook in hooks:
            self.register_hook(hook)

    def __getattr__(self, name: str) -> Any:  # only for names not found: MMEngine's that are not offered
        option = find("Runner attribute", name)
        if option is not None and option.status == "refused":
            raise AttributeError(f"Runner.{name} (MMEngine's) is not offered by mm2lightning: {option.note}")
        if isinstance(getattr(type(self), name, None), property):  # the property found nothing to give
            raise AttributeError(f"Runner.{name}: this Runner has none (its loop was not configured)")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
