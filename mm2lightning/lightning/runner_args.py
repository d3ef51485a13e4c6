"""MMEngine's Runner arguments as Lightning objects: Trainer arguments, callbacks, loggers and the DDP strategy."""

from __future__ import annotations

import copy
import importlib.util
import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import lightning.pytorch as pl
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from lightning.pytorch.strategies import DDPStrategy, Strategy

from mm2lightning.hooks.hook_list import HookList
from mm2lightning.hooks.logger_hook import LoggerHook
from mm2lightning.lightning.callbacks import MMCheckpoint, ValidationSchedule
from mm2lightning.lightning.fsdp_config import FSDP_STRATEGY_TYPES, FSDP_WRAPPER_TYPES, fsdp_strategy
from mm2lightning.lightning.strategy import MMDDPStrategy, SeparateDDPStrategy
from mm2lightning.model.wrappers import MMDistributedDataParallel, MMSeparateDistributedDataParallel
from mm2lightning.optim import OptimWrapper, OptimWrapperDict
from mm2lightning.lightning.mpi_environment import mpi_trainer_args
from mm2lightning.registry import MODEL_WRAPPERS, OPTIMIZERS
from mm2lightning.runner.options import OPTIONS, UnsupportedOptionError, refuse, refuse_set
from mm2lightning.runner.priority import get_priority

Launcher = Literal["none", "pytorch", "slurm", "mpi"]

_DEFAULT_HOOKS: dict[str, dict[str, Any]] = dict(
    runtime_info=dict(type="RuntimeInfoHook"),
    timer=dict(type="IterTimerHook"),
    sampler_seed=dict(type="DistSamplerSeedHook"),
    logger=dict(type="LoggerHook"),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", interval=1),
)
# Done by MMLightningModule and Lightning themselves: counters and lr logging, timing, sampler epochs, schedulers.
_BUILT_IN_HOOKS = ("RuntimeInfoHook", "IterTimerHook", "DistSamplerSeedHook", "ParamSchedulerHook")
# Built-in work that cannot be switched off yet (default_hooks entries set to None are refused)
_ALWAYS_DONE = {
    "runtime_info": "the MessageHub's iter, epoch, learning rates and losses",
}
_PRIORITIES = dict(  # MMEngine's built-in hooks' priorities: the only ones their configs may name
    RuntimeInfoHook="VERY_HIGH", IterTimerHook="NORMAL", DistSamplerSeedHook="NORMAL", LoggerHook="BELOW_NORMAL",
    ParamSchedulerHook="LOW", CheckpointHook="VERY_LOW",
)
_EVAL = ("after_val_epoch", "after_test_epoch")
_BUILT_IN_STAGES = dict(  # the points MMEngine 0.10.7's built-in hooks act at (their get_triggered_stages)
    RuntimeInfoHook=("before_run", "before_train", "before_train_epoch", "before_train_iter", "after_train_iter",
                     "before_val", *_EVAL[:1], "after_val", "after_train", "before_test", *_EVAL[1:], "after_test"),
    IterTimerHook=("before_train", "before_train_epoch", "before_train_iter", "after_train_iter", "after_train_epoch",
                   "before_val_epoch", "before_val_iter", "after_val_iter", "after_val_epoch", "before_test_epoch",
                   "before_test_iter", "after_test_iter", "after_test_epoch"),
    DistSamplerSeedHook=("before_train_epoch",),
    LoggerHook=("before_run", "after_train_iter", "after_val_iter", "after_val_epoch", "after_test_iter",
                "after_test_epoch", "after_run"),
    ParamSchedulerHook=("after_train_iter", "after_train_epoch", "after_val_epoch"),
    CheckpointHook=("before_train", "after_train_iter", "after_train_epoch", "after_val_epoch", "after_train"),
)  # fmt: skip


def _built_in_stand_in(hook_type: str) -> Any:
    """An object that stands for a built-in hook in the hooks' order (``Runner.get_hooks_info``): its class
    name, priority and hook points, as MMEngine's."""
    points = {stage: lambda *args, **kwargs: None for stage in _BUILT_IN_STAGES[hook_type]}
    return type(hook_type, (), dict(points, priority=_PRIORITIES[hook_type]))()


def process_rank(launcher: str) -> int:
    """This process's global rank as the launcher sets it in the environment (0 for ``'none'``)."""
    if launcher == "pytorch":
        return int(os.environ.get("RANK", 0))
    if launcher == "slurm":
        return int(os.environ.get("SLURM_PROCID", 0))
    if launcher == "mpi":
        return int(os.environ.get("OMPI_COMM_WORLD_RANK", 0))
    return 0


def launcher_trainer_args(launcher: str) -> dict[str, Any]:
    """Trainer arguments for MMEngine's ``launcher``: devices, nodes and the cluster environment."""
    if launcher == "none":
        return dict(devices=1, num_nodes=1)
    if launcher == "pytorch":
        missing = [k for k in ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "RANK", "LOCAL_RANK") if k not in os.environ]
        if missing:
            raise RuntimeError(
                f"launcher='pytorch' expects the processes to be started by torchrun "
                f"(python -m torch.distributed.run --nproc_per_node=N ...), but {', '.join(missing)} is not set"
            )
        world, local = int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_WORLD_SIZE"])
        return dict(devices=local, num_nodes=world // local, plugins=[TorchElasticEnvironment()])
    if launcher == "mpi":
        return mpi_trainer_args()
    missing = [k for k in ("SLURM_NTASKS", "SLURM_NNODES", "SLURM_PROCID") if k not in os.environ]
    if missing:
        raise RuntimeError(f"launcher='slurm' expects to run under srun, but {', '.join(missing)} is not set")
    nodes = int(os.environ["SLURM_NNODES"])
    per_node = os.environ.get("SLURM_NTASKS_PER_NODE", "").split("(")[0]  # e.g. '4' or '4(x2)'
    devices = int(per_node) if per_node.isdigit() else int(os.environ["SLURM_NTASKS"]) // nodes
    return dict(devices=devices, num_nodes=nodes, plugins=[SLURMEnvironment()])


def runner_strategy(cfg: Mapping[str, Any], **process_group: Any) -> Strategy:
    """The Lightning strategy for a distributed run: FlexibleRunner's ``cfg.strategy`` (``FSDPStrategy``, or
    ``DDPStrategy`` with a ``model_wrapper``), else MMEngine's ``cfg.model_wrapper_cfg`` (default:
    ``MMDistributedDataParallel``; ``MMFullyShardedDataParallel`` shards with ``'fsdp_mm'``).
    ``process_group`` (``process_group_backend``, ``timeout``: ``env_cfg.dist_cfg``) goes to the strategy."""
    wrapper_cfg = cfg.get("model_wrapper_cfg")
    strategy_cfg = cfg.get("strategy")
    if strategy_cfg is not None:
        strategy_cfg = {k: v for k, v in dict(strategy_cfg).items() if k != "_scope_"}
        kind = strategy_cfg.get("type")
        if kind in FSDP_STRATEGY_TYPES:
            return fsdp_strategy(strategy_cfg, **process_group)
        if kind != "DDPStrategy" or set(strategy_cfg) - {"type", "model_wrapper"}:
            raise UnsupportedOptionError(
                f"strategy={strategy_cfg!r}: mm2lightning maps FlexibleRunner's FSDPStrategy and "
                "DDPStrategy(model_wrapper=...) to Lightning strategies; other strategies or options are not supported"
            )
        wrapper_cfg = strategy_cfg.get("model_wrapper") or wrapper_cfg
    if wrapper_cfg is not None and wrapper_cfg.get("type") in FSDP_WRAPPER_TYPES:
        return fsdp_strategy(wrapper_cfg, **process_group)
    if wrapper_cfg is None:  # MMEngine's default path: whole-model DDP without buffer broadcasts
        return DDPStrategy(
            find_unused_parameters=cfg.get("find_unused_parameters", False), broadcast_buffers=False, **process_group
        )
    wrapper_cfg = dict(wrapper_cfg)
    wrapper_type = wrapper_cfg.pop("type", "MMDistributedDataParallel")  # MMEngine's default
    wrapper_cls = MODEL_WRAPPERS.get(wrapper_type) if isinstance(wrapper_type, str) else wrapper_type
    if wrapper_cls is None and isinstance(wrapper_type, str):
        MODEL_WRAPPERS.build(dict(type=wrapper_type))  # raises the registry's error, with close names
    if isinstance(wrapper_cls, type) and issubclass(wrapper_cls, MMSeparateDistributedDataParallel):
        return SeparateDDPStrategy(model_wrapper=wrapper_cls, **wrapper_cfg, **process_group)
    if wrapper_cls is MMDistributedDataParallel:
        return DDPStrategy(**wrapper_cfg, **process_group)
    if isinstance(wrapper_cls, type) and issubclass(wrapper_cls, MMDistributedDataParallel):
        return MMDDPStrategy(model_wrapper=wrapper_cls, **wrapper_cfg, **process_group)
    raise ValueError(
        f"model_wrapper_cfg type {wrapper_type!r} is not an MMDistributedDataParallel or "
        "MMSeparateDistributedDataParallel (sub)class; those are the wrappers mm2lightning maps to Lightning strategies"
    )


def train_loop_trainer_args(train_cfg: Mapping[str, Any] | None) -> tuple[dict[str, Any], ValidationSchedule]:
    """Trainer arguments for MMEngine's ``train_cfg``, and the validation schedule callback."""
    if train_cfg is not None and not isinstance(train_cfg, Mapping):  # a loop object
        refuse("train_cfg", "type", f"a {type(train_cfg).__name__} object")
    cfg = dict(train_cfg or {})
    cfg.pop("_scope_", None)  # a pkg:: base's scope: MMEngine's loops are ours in every scope
    loop_type = cfg.pop("type", None)
    if loop_type is not None and "by_epoch" in cfg:
        raise ValueError("train_cfg takes 'type' or 'by_epoch', not both (as MMEngine)")
    if loop_type is not None:
        loops = {"EpochBasedTrainLoop": True, "IterBasedTrainLoop": False}
        loop_type = loop_type.removeprefix("mmengine.") if isinstance(loop_type, str) else loop_type
        if loop_type not in loops:
            refuse("train_cfg", "type", f"type={loop_type!r}")
        by_epoch = loops[loop_type]
    elif "by_epoch" in cfg:
        by_epoch = bool(cfg.pop("by_epoch"))
    else:
        raise ValueError("train_cfg needs 'by_epoch' (or a loop 'type'), e.g. train_cfg=dict(by_epoch=True, max_epochs=12)")
    length_key = "max_epochs" if by_epoch else "max_iters"
    if length_key not in cfg:
        raise ValueError(f"train_cfg with by_epoch={by_epoch} needs {length_key!r}")
    length = cfg.pop(length_key)
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise ValueError(f"train_cfg {length_key} must be a positive integer, but got {length!r}")
    val_interval = cfg.pop("val_interval", 1 if by_epoch else 1000)
    val_begin = cfg.pop("val_begin", 1)
    dynamic_intervals = cfg.pop("dynamic_intervals", None)
    if cfg:
        raise ValueError(
            f"train_cfg has unknown keys {sorted(cfg)}; expected by_epoch/type, {length_key}, val_interval, val_begin, "
            "dynamic_intervals"
        )
    if by_epoch:
        flags = dict(max_epochs=length, max_steps=-1, check_val_every_n_epoch=1)
    else:
        flags = dict(max_steps=length, max_epochs=-1, check_val_every_n_epoch=None, val_check_interval=1)
    return flags, ValidationSchedule(by_epoch, val_interval, val_begin, dynamic_intervals)


def _checkpoint_callback(cfg: Mapping[str, Any], work_dir: Path, epoch_based_loop: bool) -> MMCheckpoint:
    options = {k: v for k, v in cfg.items() if k not in ("type", "priority")}
    refuse_set("CheckpointHook", options)
    known = [o.name for o in OPTIONS if o.place == "CheckpointHook" and o.status != "refused" and o.name != "priority"]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UnsupportedOptionError(f"CheckpointHook has no options {unknown}; MMEngine's are {known}")
    out_dir = Path(options.pop("out_dir")) / work_dir.name if options.get("out_dir") else work_dir
    options.setdefault("interval", -1)
    return MMCheckpoint(out_dir, work_dir=work_dir, epoch_based_loop=epoch_based_loop, **options)


def _check_priority(hook_type: str, hook: Mapping[str, Any]) -> None:
    """A built-in hook's config may name its own priority only: its place among Lightning's callbacks is fixed."""
    priority = hook.get("priority", _PRIORITIES[hook_type])
    if get_priority(priority) != get_priority(_PRIORITIES[hook_type]):
        raise UnsupportedOptionError(
            f"{hook_type} priority={priority!r}: mm2lightning runs MMEngine's built-in hooks at their default "
            f"priority ({_PRIORITIES[hook_type]!r}); leave 'priority' out"
        )


class HookSetup(NamedTuple):
    """What :func:`hook_callbacks` makes of MMEngine's hooks."""

    callbacks: list[pl.Callback]  # Lightning callbacks (MMEngine's CheckpointHook, the user's callbacks)
    trainer_kwargs: dict[str, Any]  # Trainer arguments (the LoggerHook's interval)
    hooks: HookList  # MMEngine hooks for a HookDriver
    built_ins: frozenset[str]  # the built-in hooks in effect: 'ParamSchedulerHook', 'LoggerHook', ...
    logger_hook: LoggerHook | None  # the LoggerHook's options (None: no LoggerHook)
    in_order: HookList  # every hook in MMEngine's call order, the built-in ones as stand-ins (get_hooks_info)


def hook_callbacks(
    default_hooks: Mapping[str, Any] | None,
    custom_hooks: Sequence[Any] | None,
    work_dir: Path,
    epoch_based_loop: bool = True,
) -> HookSetup:
    """Lightning callbacks, Trainer arguments and MMEngine hooks for ``default_hooks`` and ``custom_hooks``.

    MMEngine's built-in default hooks become Lightning callbacks and Trainer arguments (or are done by
    ``MMLightningModule`` itself); every other hook, instance or ``HOOKS`` config, default or custom, goes into
    the returned :class:`HookList`, run by a :class:`HookDriver`. Lightning callbacks are taken as they are.
    ``epoch_based_loop`` is ``False`` under MMEngine's ``IterBasedTrainLoop`` (see :class:`MMCheckpoint`).
    A built-in hook set to ``None`` in ``default_hooks`` is not in ``built_ins`` and its work is not done, as
    in MMEngine.
    """
    hooks: dict[str, Any] = copy.deepcopy(_DEFAULT_HOOKS)
    hooks.update(default_hooks or {})  # as MMEngine: a hook replaces the default of its name; None removes it
    for name, work in _ALWAYS_DONE.items():
        if name in hooks and hooks[name] is None:
            raise UnsupportedOptionError(
                f"default_hooks[{name!r}]=None is not supported yet: mm2lightning always does "
                f"{_DEFAULT_HOOKS[name]['type']}'s work ({work}). Remove the entry."
            )
    callbacks: list[pl.Callback] = []
    trainer_kwargs: dict[str, Any] = {}
    mm_hooks, in_order = HookList(), HookList()
    built_ins: set[str] = set()
    logger_hook: LoggerHook | None = None
    for name, hook in hooks.items():
        if hook is None:
            continue
        if isinstance(hook, pl.Callback):
            callbacks.append(hook)
            continue
        if isinstance(hook, Mapping) and "type" not in hook:
            raise ValueError(f"default_hooks[{name!r}] has no 'type', e.g. dict(type='CheckpointHook', interval=1)")
        hook_type = hook.get("type") if isinstance(hook, Mapping) else type(hook)
        hook_type = hook_type if isinstance(hook_type, str) else getattr(hook_type, "__name__", repr(hook_type))
        hook_type = hook_type.removeprefix("mmengine.")
        if hook_type in _PRIORITIES and isinstance(hook, Mapping):
            hook = {k: v for k, v in hook.items() if k != "_scope_"}  # MMEngine's built-ins: ours in every scope
        if hook_type == "CheckpointHook" and not isinstance(hook, Mapping):
            raise TypeError(f"default_hooks[{name!r}]: give {hook_type} as a config dict, e.g. dict(type={hook_type!r}, ...)")
        if hook_type in _PRIORITIES:
            built_ins.add(hook_type)
            if isinstance(hook, Mapping):
                _check_priority(hook_type, hook)
        if hook_type in _BUILT_IN_HOOKS and isinstance(hook, Mapping) and set(hook) - {"type", "priority"}:
            raise UnsupportedOptionError(
                f"default_hooks[{name!r}]: {hook_type} takes no options, but got {sorted(set(hook) - {'type', 'priority'})}"
            )
        if hook_type in _PRIORITIES:
            in_order.register(_built_in_stand_in(hook_type))
        if hook_type == "CheckpointHook":
            callbacks.append(_checkpoint_callback(hook, work_dir, epoch_based_loop))
        elif hook_type == "LoggerHook":
            logger_hook = _logger_hook(hook, name)
            trainer_kwargs["log_every_n_steps"] = logger_hook.interval
        elif hook_type not in _BUILT_IN_HOOKS:
            in_order.register(_register(mm_hooks, hook, f"default_hooks[{name!r}]"))
    for index, hook in enumerate(custom_hooks or []):
        if isinstance(hook, pl.Callback):
            callbacks.append(hook)
        else:
            in_order.register(_register(mm_hooks, hook, f"custom_hooks[{index}]"))
    if "LoggerHook" not in built_ins:
        trainer_kwargs["log_every_n_steps"] = 0  # MMEngine without a LoggerHook writes no logs
    return HookSetup(callbacks, trainer_kwargs, mm_hooks, frozenset(built_ins), logger_hook, in_order)


def _logger_hook(hook: Any, name: str) -> LoggerHook:
    """MMEngine's ``LoggerHook`` from its config or an instance (ours or mmengine's), with MMEngine's checks."""
    if isinstance(hook, Mapping):
        options = {k: v for k, v in hook.items() if k not in ("type", "priority")}
    else:
        options = {k: getattr(hook, k) for k in inspect.signature(LoggerHook).parameters if hasattr(hook, k)}
    try:
        hook = LoggerHook(**options)  # MMEngine's checks first
    except TypeError as error:
        if "unexpected keyword" not in str(error):
            raise
        raise TypeError(f"default_hooks[{name!r}]: {error}; LoggerHook takes "
                        f"{list(inspect.signature(LoggerHook).parameters)}") from error
    return hook


def _register(hooks: HookList, hook: Any, where: str) -> Any:
    """Register ``hook`` and return it (built); an error names where in the config it came from."""
    try:
        return hooks.register(copy.copy(hook) if isinstance(hook, Mapping) else hook)
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise type(error)(f"{where}: {error}") from error


def default_loggers(work_dir: Path, version: str) -> list[Logger]:
    """A CSV logger under ``work_dir/<version>``, and TensorBoard there too when it is installed."""
    loggers: list[Logger] = [CSVLogger(work_dir, name="", version=version)]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        loggers.append(TensorBoardLogger(work_dir, name="", version=version, default_hp_metric=False))
    return loggers


def scale_lr(optim_wrapper: Any, ratio: float) -> Any:
    """MMEngine's ``auto_scale_lr``: every learning rate times ``ratio`` (config copies, or the built groups)."""
    if isinstance(optim_wrapper, OptimWrapper):
        wrappers = optim_wrapper.values() if isinstance(optim_wrapper, OptimWrapperDict) else [optim_wrapper]
        for wrapper in wrappers:
            for group in wrapper.optimizer.param_groups:
                group["lr"] *= ratio
        return optim_wrapper
    cfg = copy.deepcopy(dict(optim_wrapper))
    children = [cfg] if "optimizer" in cfg or "constructor" in cfg else list(cfg.values())
    for child in children:
        optimizer = child.get("optimizer", {})
        optimizer["lr"] = optimizer.get("lr", _default_lr(optimizer)) * ratio
    return cfg


def _default_lr(optimizer_cfg: Mapping[str, Any]) -> float:
    """The ``lr`` an optimizer config leaves to its optimizer class's default (e.g. Adam's 1e-3)."""
    optimizer_type = optimizer_cfg.get("type")
    cls = OPTIMIZERS.get(optimizer_type) if isinstance(optimizer_type, str) else optimizer_type
    parameter = inspect.signature(cls).parameters.get("lr") if callable(cls) else None
    if parameter is None or not isinstance(parameter.default, (int, float)):
        raise ValueError(f"auto_scale_lr needs optimizer.lr in the optim_wrapper config, got {dict(optimizer_cfg)!r}")
    return float(parameter.default)


def check_loop_arguments(loops: Mapping[str, tuple[Any, Any, Any]], param_scheduler: Any) -> None:
    """MMEngine's rules for the Runner's loop arguments: each stage's dataloader, loop config and optim wrapper
    or evaluator all given or all ``None``; ``val_cfg``/``test_cfg`` of MMEngine's own loops only.

    Args:
        loops: ``'train'``/``'val'``/``'test'`` -> (dataloader, loop config, optim wrapper or evaluator).
        param_scheduler: The Runner's ``param_scheduler`` (needs an optim wrapper).
    """
    for stage, (loader, loop_cfg, third) in loops.items():
        third_name = "optim_wrapper" if stage == "train" else f"{stage}_evaluator"
        given = [x is not None for x in (loader, loop_cfg, third)]
        if any(given) and not all(given):
            raise ValueError(
                f"{stage}_dataloader, {stage}_cfg and {third_name} must be all given or all None (as MMEngine), "
                f"but got {stage}_dataloader={'set' if given[0] else None}, {stage}_cfg={loop_cfg!r}, "
                f"{third_name}={'set' if given[2] else None}"
            )
        if stage == "train" or not loop_cfg:
            continue
        name, loop = f"{stage}_cfg", "ValLoop" if stage == "val" else "TestLoop"
        if not isinstance(loop_cfg, Mapping):
            if callable(getattr(loop_cfg, "run", None)):
                continue  # a loop object: run as it is, as MMEngine's build_val_loop/build_test_loop take it
            raise TypeError(f"{stage}_loop should be a Loop object or dict, but got {loop_cfg}")
        if loop_cfg.get("type", loop) not in (loop, f"mmengine.{loop}"):
            continue  # a custom loop: its own arguments (see custom_loops.py)
        unknown = sorted(set(loop_cfg) - {"type", "fp16", "_scope_"})
        if unknown:
            raise UnsupportedOptionError(f"{name} has unknown keys {unknown}; {loop} takes fp16")
    if param_scheduler is not None and loops["train"][2] is None:
        raise ValueError("param_scheduler needs optim_wrapper")
