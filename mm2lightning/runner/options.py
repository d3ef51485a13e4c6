"""Every option of MMEngine's Runner surface and what mm2lightning does with it: the one list.

MMEngine 0.10.7's ``Runner`` arguments and attributes, the keys of its loop configs, default hooks,
``env_cfg``, ``randomness`` and ``log_processor``, the config keys its Runner reads, and the flags of the
toolboxes' ``tools/train.py`` and ``tools/test.py``. Each has a status:

- ``same``: acts as MMEngine's.
- ``partly``: some values act as MMEngine's; the others are refused, named (the note says which).
- ``refused``: any value but MMEngine's default raises :class:`UnsupportedOptionError` naming it.

The Runner and the command refuse through :func:`refuse`, the README's Runner table is
:func:`markdown_table`, and ``tests/runner/test_options.py`` checks the list against mmengine's own
signatures, so that an option cannot be accepted and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NoReturn

Status = Literal["same", "partly", "refused"]


class UnsupportedOptionError(ValueError, NotImplementedError):
    """An MMEngine option that mm2lightning does not carry out (and will not silently ignore)."""


@dataclass(frozen=True)
class Option:
    """One option: where it is given, its name, its status and what mm2lightning does with it."""

    place: str
    name: str
    status: Status
    note: str = ""


def _options(place: str, status: Status, names: str, note: str = "") -> list[Option]:
    return [Option(place, name, status, note) for name in names.split()]


_SAME_RUNNER_ARGS = (
    "model work_dir train_dataloader val_dataloader test_dataloader auto_scale_lr optim_wrapper param_scheduler "
    "val_evaluator test_evaluator default_hooks custom_hooks data_preprocessor env_cfg "
    "log_processor log_level visualizer default_scope randomness experiment_name cfg"
)
_BUILT_IN_HOOK_NOTE = "its config takes only type and its default priority"

OPTIONS: tuple[Option, ...] = tuple(
    _options("Runner", "same", _SAME_RUNNER_ARGS)
    + [
        Option("Runner", "train_cfg", "partly", "MMEngine's two train loops; a custom train loop type is refused"),
        Option("Runner", "val_cfg", "same", "MMEngine's ValLoop (fp16 too), or a custom loop's run() (a LOOPS "
               "config or a loop object)"),
        Option("Runner", "test_cfg", "same", "MMEngine's TestLoop (fp16 too), or a custom loop's run() (a LOOPS "
               "config or a loop object)"),
        Option("Runner", "resume", "same", "from mm2lightning's checkpoints and MMEngine's (epoch-based: at an "
               "epoch's end or within one; iteration-based, under a launcher too), going on as MMEngine's loops"),
        Option("Runner", "load_from", "partly", "a file, an http(s):// URL, an open-mmlab:// or torchvision:// name "
               "(downloaded into torch's hub cache, as MMEngine); file-backend schemes (s3://, ...) are refused"),
        Option("Runner", "launcher", "same", "'none', 'pytorch' (torchrun), 'slurm' (srun), 'mpi' (Open MPI's "
               "mpirun: OMPI_COMM_WORLD_* and MASTER_ADDR, as MMEngine's init_dist): Lightning cluster environments"),
    ]
    + _options("train_cfg", "same", "by_epoch max_epochs max_iters val_begin val_interval dynamic_intervals")
    + [
        Option("train_cfg", "type", "partly", "EpochBasedTrainLoop, IterBasedTrainLoop; other loops are refused: "
               "Lightning's fit loop runs train_step"),
        Option("val_cfg", "fp16", "same", "val_step under autocast (bfloat16 on CPU, float16 on GPU)"),
        Option("test_cfg", "fp16", "same", "test_step under autocast (bfloat16 on CPU, float16 on GPU)"),
        Option("val_cfg", "type", "same", "ValLoop, or a LOOPS type (a toolbox's): its run() in runner.val() and "
               "where the training loop validates, on every process under a launcher"),
        Option("test_cfg", "type", "same", "TestLoop, or a LOOPS type (a toolbox's): its run() in runner.test() "
               "and `mm2lightning test`, on every process under a launcher"),
    ]
    + _options("CheckpointHook", "same",
               "interval by_epoch save_optimizer save_param_scheduler out_dir max_keep_ckpts save_last save_best rule "
               "greater_keys less_keys filename_tmpl save_begin published_keys")
    + [
        Option("CheckpointHook", "priority", "partly", "its default, 'VERY_LOW', only: it runs after the other hooks"),
        Option("CheckpointHook", "file_client_args", "refused", "no file backends: checkpoints go to local paths"),
        Option("CheckpointHook", "backend_args", "refused", "no file backends: checkpoints go to local paths"),
    ]
    + _options("LoggerHook", "same",
               "interval ignore_last interval_exp_name log_metric_by_epoch out_dir out_suffix keep_local")
    + [
        Option("LoggerHook", "priority", "partly", "its default, 'BELOW_NORMAL', only"),
        Option("LoggerHook", "file_client_args", "refused", "no file backends: logs go to local paths"),
        Option("LoggerHook", "backend_args", "refused", "no file backends: logs go to local paths"),
        Option("default_hooks", "checkpoint", "same", "None: no checkpoints"),
        Option("default_hooks", "logger", "same", "None: nothing written (the MessageHub is still fed)"),
        Option("default_hooks", "param_scheduler", "same", "None: the schedulers are built and saved, never stepped"),
        Option("default_hooks", "runtime_info", "partly", "RuntimeInfoHook, " + _BUILT_IN_HOOK_NOTE
               + "; None is refused: the MessageHub is always fed"),
        Option("default_hooks", "timer", "same", "IterTimerHook, " + _BUILT_IN_HOOK_NOTE
               + "; None: no time, data_time or eta in the hub and the logs"),
        Option("default_hooks", "sampler_seed", "same", "DistSamplerSeedHook, " + _BUILT_IN_HOOK_NOTE
               + "; None: the sampler keeps its epoch (every epoch shuffles alike)"),
    ]
    + _options("LogProcessor", "same", "window_size by_epoch custom_cfg num_digits log_with_hierarchy mean_pattern")
    + _options("randomness", "same", "seed deterministic diff_rank_seed")
    + _options("env_cfg", "same", "cudnn_benchmark mp_cfg resource_limit")
    + [
        Option("env_cfg", "dist_cfg", "partly", "backend and timeout go to the process group Lightning starts "
               "('nccl' on CPU devices becomes 'gloo', with a warning); other keys are refused"),
        Option("cfg", "model_wrapper_cfg", "same", "MMDistributedDataParallel (and subclasses), "
               "MMSeparateDistributedDataParallel, MMFullyShardedDataParallel: Lightning strategies"),
        Option("cfg", "find_unused_parameters", "same", "given to DDP (the default wrapper)"),
        Option("cfg", "strategy", "partly", "FlexibleRunner's FSDPStrategy and DDPStrategy(model_wrapper=...); "
               "others are refused"),
        Option("cfg", "compile", "same", "torch.compile of the model's train_step before training, as MMEngine"),
        Option("cfg", "runner_type", "partly", "'Runner' and 'FlexibleRunner' (with cfg.strategy); others refused"),
        Option("cfg", "sync_bn", "same", "'torch'/'mmcv': batch norms become SyncBatchNorm under a launcher; "
               "without one, SyncBatchNorm layers are reverted to batch norms, as MMEngine's wrap_model"),
        Option("cfg", "activation_checkpointing", "same", "the named submodules' forward under torch's "
               "(non-reentrant) checkpoint when training starts, as MMEngine"),
        Option("cfg", "efficient_conv_bn_eval", "same", "the named submodules' conv + eval-mode batch norm pairs as "
               "one convolution when training starts (torch.fx), as MMEngine"),
    ]
    + _options("Runner attribute", "same",
               "model cfg work_dir log_dir timestamp experiment_name model_name seed deterministic launcher "
               "distributed rank world_size default_scope logger message_hub visualizer log_processor auto_scale_lr "
               "epoch iter max_epochs max_iters val_interval val_begin train_loop val_loop test_loop "
               "train_dataloader val_dataloader test_dataloader val_evaluator test_evaluator optim_wrapper "
               "param_schedulers from_cfg train val test load_checkpoint load_or_resume save_checkpoint dump_config "
               "setup_env call_hook register_hook register_custom_hooks build_dataloader build_model build_optim_wrapper "
               "build_param_scheduler build_evaluator build_log_processor build_logger build_message_hub scale_lr "
               "set_randomness")
    + [
        Option("Runner attribute", "hooks", "partly", "the MMEngine hooks the Runner drives; the built-in ones are "
               "Lightning callbacks (runner.trainer.callbacks)"),
        Option("Runner attribute", "resume", "partly", "resume(filename) resumes when training starts; "
               "resume_optimizer=False or resume_param_scheduler=False are refused"),
    ]
    + [Option("Runner attribute", "build_train_loop", "partly", "a loop object as it is; a config only if it is "
              "the Runner's train_cfg (runner.train_loop): Lightning's fit loop runs train_cfg"),
       Option("Runner attribute", "build_val_loop", "partly", "a loop object as it is; a LOOPS type built with the "
              "Runner, its val data and evaluator (run() runs here); ValLoop's config: runner.val_loop (another fp16 "
              "than val_cfg's is refused)"),
       Option("Runner attribute", "build_test_loop", "partly", "as build_val_loop, for the test data and TestLoop"),
       Option("Runner attribute", "wrap_model", "refused", "Lightning's strategies wrap the model when a run starts "
              "(runner.trainer.strategy)")]
    + _options("Runner attribute", "refused",
               "register_hooks register_default_hooks",
               "the built-in hooks are Lightning callbacks: give hooks to the constructor, or register_hook")
    + [Option("Runner attribute", "get_hooks_info", "same", "MMEngine's text, the built-in hooks (Lightning "
              "callbacks) listed where MMEngine's run; logged by the constructor, as MMEngine")]
    + [Option("Runner attribute", "build_visualizer", "same", "a Visualizer as MMEngine's (default: LocalVisBackend "
              "under log_dir); its vis_backends are Lightning loggers it writes through")]
    + _options("tools/train.py", "same",
               "config --work-dir --resume --amp --auto-scale-lr --cfg-options --no-validate --no-pin-memory "
               "--no-persistent-workers --local_rank")
    + [
        Option("tools/train.py", "--launcher", "same", "none, pytorch, slurm, mpi: the Runner's launcher"),
        Option("tools/test.py", "--launcher", "same", "none, pytorch, slurm, mpi: the Runner's launcher"),
    ]
    + _options("tools/test.py", "same", "config checkpoint --work-dir --cfg-options --no-pin-memory --local_rank")
    + [Option("tools/test.py", "--out", "same", "the predictions to a .pkl file, as MMEngine's DumpResults"),
       Option("tools/test.py", "--amp", "same", "test_cfg.fp16=True: the test under autocast"),
       Option("tools/test.py", "--tta", "same", "the config's tta_model around its model and tta_pipeline as the test "
              "pipeline (required, as mmdet's and mmseg's tools; with default_scope='mmpretrain' mmpretrain's "
              "defaults when missing: AverageClsScoreTTA over a flip TestTimeAug)")]
    + [Option("tools/test.py", "--out-item", "same", "with --out: 'metrics' dumps the metrics (.pkl/.json/.yaml), "
              "'pred' the predictions, as mmpretrain's tools/test.py"),
       Option("tools/test.py", "--show", "same", "turns the config's default_hooks.visualization on to display, as "
              "its toolbox's tools/test.py (by the hook's arguments: enable, or draw with/without test_out_dir)"),
       Option("tools/test.py", "--show-dir", "same", "the directory of the drawn images, given to the "
              "visualization hook (out_dir, test_out_dir) or the visualizer's save_dir, as its toolbox"),
       Option("tools/test.py", "--wait-time", "same", "with --show: each window's seconds (default 2)"),
       Option("tools/test.py", "--interval", "same", "with --show/--show-dir: draw every N samples "
              "(mmpretrain's flag, default 1; other hooks keep theirs unless it is given)")]
)


def find(place: str, name: str) -> Option | None:
    """The option ``name`` given at ``place`` (``'Runner'``, ``'CheckpointHook'``, ``'tools/test.py'``, ...)."""
    return _INDEX.get((place, name))


def refuse(place: str, name: str, detail: str = "") -> NoReturn:
    """Raise :class:`UnsupportedOptionError` for option ``name`` at ``place``, with the list's reason.

    Args:
        place: Where the option is given, as in :data:`OPTIONS`.
        name: The option.
        detail: What was given, e.g. ``"fp16=True"`` (default: the name).
    """
    option = find(place, name)
    reason = option.note if option is not None and option.note else "not supported by mm2lightning"
    raise UnsupportedOptionError(f"{place} {detail or name}: {reason}")


def refuse_set(place: str, given: dict[str, Any], defaults: dict[str, Any] | None = None) -> None:
    """Refuse every ``refused`` option of ``place`` in ``given`` whose value is not MMEngine's default.

    Args:
        place: Where the options are given.
        given: The options given.
        defaults: MMEngine's defaults of the refused options that may be given at them (default: ``None``).
    """
    defaults = defaults or {}
    for name, value in given.items():
        option = find(place, name)
        if option is not None and option.status == "refused" and value != defaults.get(name):
            refuse(place, name, f"{name}={value!r}")


def markdown_table() -> str:
    """The README's table: every option with its status and what mm2lightning does."""
    marks = {"same": "as MMEngine", "partly": "partly", "refused": "refused (error)"}
    rows = ["| where | option | mm2lightning | notes |", "|---|---|---|---|"]
    rows += [f"| {o.place} | `{o.name}` | {marks[o.status]} | {o.note} |" for o in OPTIONS]
    return "\n".join(rows)


_INDEX = {(option.place, option.name): option for option in OPTIONS}


if __name__ == "__main__":  # python -m mm2lightning.runner.options: the README's table
    print(markdown_table())
