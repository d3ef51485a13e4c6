"""The ``mm2lightning`` command: ``train`` and ``test`` from MMEngine-style config files, ``convert`` checkpoints.

Usage::

    mm2lightning train CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr] [--no-validate]
                              [--no-pin-memory] [--no-persistent-workers] [--cfg-options KEY=VALUE ...]
                              [--launcher ...]
    mm2lightning test CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl [--out-item metrics|pred]] [--amp] [--tta]
                                        [--show] [--show-dir DIR] [--wait-time S] [--interval N]
                                        [--no-pin-memory] [--cfg-options KEY=VALUE ...] [--launcher ...]
    mm2lightning convert CHECKPOINT OUT

The flags are those of the OpenMMLab toolboxes' ``tools/train.py`` and ``tools/test.py`` (``--local_rank`` too),
applied as the toolboxes apply them (``--show``/``--show-dir``: see :mod:`mm2lightning.runner.test_flags`);
the ones mm2lightning does not carry out are refused by name (see :mod:`mm2lightning.runner.options`).

Bad input (a config that cannot be read or built, a bad ``--cfg-options`` item, an unknown ``type``, a
missing checkpoint, or one that cannot be loaded safely or resumed) ends with exit status 2 and a one-line
message on stderr; an error raised while the model and Trainer are built also names the file and line it
came from. Errors during training keep their traceback.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mm2lightning.config import Config, ConfigError, parse_cfg_options
from mm2lightning.evaluator import DumpResults
from mm2lightning.registry import RegistryError
from mm2lightning.runner.checkpoint import CheckpointError, convert_checkpoint
from mm2lightning.runner.options import UnsupportedOptionError
from mm2lightning.runner.remote import is_remote
from mm2lightning.runner.test_flags import apply_visualization_flags, dump_metrics, metrics_format

# Errors that mean the input is wrong, whenever they happen (an unknown type may only be built during training).
_INPUT_ERRORS = (ConfigError, RegistryError, CheckpointError, UnsupportedOptionError)
# Errors that mean the input is wrong while the config is read and the Runner and Trainer are built.
_BUILD_ERRORS = (*_INPUT_ERRORS, ValueError, TypeError, KeyError, ImportError, OSError, RuntimeError)


class _UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mm2lightning", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def add_run_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("config", type=Path, help="config file (.py, .yaml, .yml or .json)")
        command.add_argument("--work-dir", type=Path, help="overrides the config's work_dir")
        command.add_argument(
            "--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
            help="override config entries, e.g. optim_wrapper.optimizer.lr=0.1 train_cfg.max_epochs=2",
        )
        command.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
        command.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
        command.add_argument("--no-pin-memory", action="store_true", help="the dataloaders' pin_memory=False")

    train = commands.add_parser("train", help="train a model from a config file")
    add_run_options(train)
    train.add_argument(
        "--resume", nargs="?", const="auto", metavar="CKPT",
        help="resume from CKPT, or from the last checkpoint in work_dir when CKPT is not given",
    )
    train.add_argument("--amp", action="store_true", help="mixed precision: optim_wrapper type AmpOptimWrapper")
    train.add_argument("--auto-scale-lr", action="store_true", help="scale the learning rate (cfg.auto_scale_lr)")
    train.add_argument("--no-validate", action="store_true", help="no validation during training")
    train.add_argument("--no-persistent-workers", action="store_true", help="persistent_workers=False")
    test = commands.add_parser("test", help="test a checkpoint with a config file's test_dataloader and evaluator")
    add_run_options(test)
    test.add_argument("checkpoint", help="a file, an http(s):// URL or an open-mmlab:// / torchvision:// name")
    test.add_argument("--out", help="also dump the predictions to this .pkl file (MMEngine's DumpResults)")
    test.add_argument("--amp", action="store_true", help="test under autocast (test_cfg.fp16=True)")
    test.add_argument("--tta", action="store_true", help="test-time augmentation (cfg.tta_model, cfg.tta_pipeline)")
    test.add_argument("--out-item", choices=["metrics", "pred"], help="with --out: dump the metrics or the "
                      "predictions (default), as mmpretrain's tools/test.py")
    test.add_argument("--show", action="store_true", help="display the drawn predictions (default_hooks.visualization)")
    test.add_argument("--show-dir", help="save the drawn predictions there (default_hooks.visualization)")
    test.add_argument("--wait-time", type=float, default=2, help="seconds each --show window stays (default 2)")
    test.add_argument("--interval", type=int, help="with --show/--show-dir: draw every N samples")
    convert = commands.add_parser(
        "convert", help="convert an mm2lightning (Lightning) checkpoint to MMEngine's layout (for OpenMMLab tools)"
    )
    convert.add_argument("checkpoint", type=Path)
    convert.add_argument("out", type=Path)
    return parser


def _check_out_item(args: argparse.Namespace) -> None:
    if args.out is None and args.out_item is not None:  # as mmpretrain's tools/test.py
        raise ValueError(
            "--out-item: Please use `--out` argument to specify the path of the output file before using `--out-item`."
        )
    if args.out_item == "metrics":
        metrics_format(args.out)


def _load_config(args: argparse.Namespace) -> Config:
    if args.command == "test":
        _check_out_item(args)
    if "LOCAL_RANK" not in os.environ:  # as tools/train.py: torch.distributed.launch passes --local_rank
        os.environ["LOCAL_RANK"] = str(args.local_rank)
    checkpoint = args.checkpoint if args.command == "test" else None if args.resume in (None, "auto") else args.resume
    if checkpoint is not None and not is_remote(checkpoint) and not Path(checkpoint).exists():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(parse_cfg_options(args.cfg_options))
    if args.work_dir is not None:
        cfg.work_dir = str(args.work_dir)
    elif cfg.get("work_dir") is None:  # as MMEngine's tools/train.py
        cfg.work_dir = str(Path("work_dirs") / args.config.stem)
    cfg.launcher = args.launcher
    if args.command == "train":
        _merge_train_flags(cfg, args)
    if args.command == "test":
        cfg.load_from = str(args.checkpoint)
        if args.amp:  # as mmpretrain's tools/test.py
            cfg.test_cfg = dict(cfg.get("test_cfg") or {}, fp16=True)
        if args.tta:
            _use_tta(cfg)
        apply_visualization_flags(cfg, show=args.show, show_dir=args.show_dir, wait_time=args.wait_time,
                                  interval=args.interval)  # fmt: skip
    for stage in ("train", "val", "test"):  # as mmpretrain's tools: on the dataloaders the config has
        loader = cfg.get(f"{stage}_dataloader")
        if isinstance(loader, dict) and args.no_pin_memory:
            loader["pin_memory"] = False
        if isinstance(loader, dict) and getattr(args, "no_persistent_workers", False):
            loader["persistent_workers"] = False
    return cfg


def _use_tta(cfg: Config) -> None:
    """``--tta`` as the toolboxes' ``tools/test.py``: the config's ``tta_model`` around its model, its
    ``tta_pipeline`` as the test data's pipeline; under ``default_scope='mmpretrain'`` both have mmpretrain's
    defaults (scores averaged over the test pipeline with and without a horizontal flip)."""
    if cfg.get("default_scope") == "mmpretrain":  # as mmpretrain's tools/test.py
        cfg.setdefault("tta_model", dict(type="mmpretrain.AverageClsScoreTTA"))
        if "tta_pipeline" not in cfg:
            test_pipeline = cfg.test_dataloader.dataset.pipeline
            flips = [dict(type="RandomFlip", prob=1.0), dict(type="RandomFlip", prob=0.0)]
            flip_tta = dict(type="TestTimeAug", transforms=[flips, [test_pipeline[-1]]])
            cfg.tta_pipeline = [*copy.deepcopy(test_pipeline[:-1]), flip_tta]
    for key in ("tta_model", "tta_pipeline"):
        if key not in cfg:
            raise ConfigError(f"--tta: Cannot find ``{key}`` in config. Can't use tta !")
    cfg.model = dict(**cfg.tta_model, module=cfg.model)
    data_cfg = cfg.test_dataloader
    while "dataset" in data_cfg:  # a dataset wrapper's dataset
        data_cfg = data_cfg["dataset"]
    if "batch_shapes_cfg" in data_cfg:  # fixed output sizes do not go with TTA
        data_cfg["batch_shapes_cfg"] = None
    data_cfg["pipeline"] = cfg.tta_pipeline


def _merge_train_flags(cfg: Config, args: argparse.Namespace) -> None:
    """``tools/train.py``'s flags, as the toolboxes apply them to the config."""
    if args.resume is not None:
        cfg.resume = True
        cfg.load_from = None if args.resume == "auto" else args.resume
    if args.amp:
        wrapper_type = cfg.optim_wrapper.get("type", "OptimWrapper")
        if wrapper_type not in ("OptimWrapper", "AmpOptimWrapper"):
            raise ValueError(f"--amp: optim_wrapper type {wrapper_type!r} is not OptimWrapper or AmpOptimWrapper")
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.setdefault("loss_scale", "dynamic")
    if args.auto_scale_lr:
        if not isinstance(cfg.get("auto_scale_lr"), dict) or "base_batch_size" not in cfg.auto_scale_lr:
            raise ValueError(
                '--auto-scale-lr: Can not find "auto_scale_lr" or "auto_scale_lr.base_batch_size" in your '
                "configuration file"
            )
        cfg.auto_scale_lr.enable = True
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None


def _run(args: argparse.Namespace) -> None:
    if args.command == "convert":
        try:
            out = convert_checkpoint(args.checkpoint, args.out)
        except (*_INPUT_ERRORS, OSError) as error:
            raise _UsageError(error) from error
        print(f"wrote {out}")
        return
    from mm2lightning.runner import Runner  # imports Lightning

    try:
        cfg = _load_config(args)
        runner = Runner.from_cfg(cfg)
        runner.trainer  # noqa: B018 - builds the Trainer, so its bad arguments are reported as input errors
        if args.command == "test" and args.out is not None and args.out_item != "metrics":  # tools/test.py --out
            runner.module.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    except _BUILD_ERRORS as error:
        raise _UsageError(error) from error
    try:
        if args.command == "train":
            runner.train()
        else:
            metrics = runner.test()
            if args.out_item == "metrics":
                dump_metrics(metrics, args.out)
            print(" ".join(f"{key}={_format(value)}" for key, value in metrics.items()))
    except _INPUT_ERRORS as error:
        raise _UsageError(error) from error


def _format(value: Any) -> str:
    value = value.item() if hasattr(value, "item") and getattr(value, "numel", lambda: 0)() == 1 else value
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _one_line(error: BaseException) -> str:
    message = " ".join(str(error).split()) or type(error).__name__
    origin = error
    while origin.__cause__ is not None:  # e.g. the registry re-raises a class's error with the class's name
        origin = origin.__cause__
    if not isinstance(error, _INPUT_ERRORS) and origin.__traceback__ is not None:
        # Possibly a bug in the user's code (a model's __init__, say) rather than in the config: say where.
        frame = traceback.extract_tb(origin.__traceback__)[-1]
        message += f" (raised at {frame.filename}:{frame.lineno})"
    return f"{type(error).__name__}: {message}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mm2lightning`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except _UsageError as error:
        print(f"mm2lightning {args.command}: error: {_one_line(error.__cause__ or error)}", file=sys.stderr)
        return 2
    finally:
        _end_process_group()
    return 0


def _end_process_group() -> None:
    """Close the process group Lightning started (its threads would otherwise abort the process at exit)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
