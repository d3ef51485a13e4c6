"""``Runner``: MMEngine's Runner facade, building a ``lightning.Trainer`` and an ``MMLightningModule`` underneath."""

from __future__ import annotations

import copy
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.utils.data import DataLoader

from mm2lightning.config import Config, ConfigError
from mm2lightning.dataset import build_dataloader
from mm2lightning.evaluator.dist import broadcast_object
from mm2lightning.lightning.callbacks import RunnerMeta, find_latest_checkpoint
from mm2lightning.lightning.mmengine_resume import lightning_checkpoint_from_mmengine
from mm2lightning.lightning.module import MMLightningModule
from mm2lightning.lightning.runner_args import (
    Launcher,
    ddp_strategy,
    default_loggers,
    hook_callbacks,
    import_custom_modules,
    launcher_trainer_args,
    process_rank,
    scale_lr,
    train_loop_trainer_args,
)
from mm2lightning.optim import OptimWrapper
from mm2lightning.registry import MODELS
from mm2lightning.runner.checkpoint import (
    checkpoint_kind,
    load_checkpoint_file,
    model_state_dict,
    save_checkpoint_atomic,
)

class Runner:
    """MMEngine's ``Runner``, training with ``lightning.Trainer``: the same constructor, ``from_cfg``, ``train``,
    ``val`` and ``test``.

    The model's ``train_step`` runs under an :class:`~mm2lightning.MMLightningModule` (``runner.module``) in a
    ``lightning.Trainer`` (``runner.trainer``) built from the MMEngine arguments: ``train_cfg`` gives
    ``max_epochs``/``max_steps`` and the validation schedule (``val_interval``, ``val_begin``, and after the
    last epoch or iteration); ``default_hooks``' ``CheckpointHook`` saves Lightning checkpoints
    (``epoch_N.ckpt``/``iter_N.ckpt``, ``best_*.ckpt``) in ``work_dir`` and ``LoggerHook``'s ``interval`` is
    ``log_every_n_steps``; ``launcher`` and ``cfg.model_wrapper_cfg`` choose the devices, the cluster environment
    and the DDP strategy. Metrics go to a ``CSVLogger`` under ``work_dir/<timestamp>`` (and TensorBoard when
    installed).

    Beyond MMEngine's arguments:

    Args:
        trainer_cfg: Extra ``lightning.Trainer`` arguments (``accelerator``, ``precision``,
            ``enable_progress_bar``, ...). They win over the ones the Runner derives; also read from
            ``cfg.trainer_cfg`` by :meth:`from_cfg`.
        callbacks: Extra Lightning callbacks (``custom_hooks`` takes them too).
        loggers: Lightning loggers to use instead of the CSV/TensorBoard ones.

    Not supported (a clear error): ``launcher='mpi'``, ``train_cfg.dynamic_intervals``, MMEngine hook objects in
    ``custom_hooks`` (port them to Lightning callbacks). ``log_processor``, ``log_level``, ``visualizer``,
    ``default_scope`` and ``env_cfg`` are accepted and have no effect: Lightning's loggers and environment
    take their place.
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
        log_processor: Mapping[str, Any] | None = None,
        log_level: str | int = "INFO",
        visualizer: Any = None,
        default_scope: str = "mmengine",
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
        for stage, loader, loop_cfg, third_name, third in (
            ("train", train_dataloader, train_cfg, "optim_wrapper", optim_wrapper),
            ("val", val_dataloader, val_cfg, "val_evaluator", val_evaluator),
            ("test", test_dataloader, test_cfg, "test_evaluator", test_evaluator),
        ):
            given = [x is not None for x in (loader, loop_cfg, third)]
            if any(given) and not all(given):
                raise ValueError(
                    f"{stage}_dataloader, {stage}_cfg and {third_name} must be all given or all None (as MMEngine), "
                    f"but got {stage}_dataloader={'set' if given[0] else None}, {stage}_cfg={loop_cfg!r}, "
                    f"{third_name}={'set' if given[2] else None}"
                )
        if param_scheduler is not None and optim_wrapper is None:
            raise ValueError("param_scheduler needs optim_wrapper")
        for name, loop_cfg in (("val_cfg", val_cfg), ("test_cfg", test_cfg)):
            if loop_cfg and (set(loop_cfg) - {"type", "fp16"} or loop_cfg.get("fp16")):
                raise ValueError(
                    f"{name}={dict(loop_cfg)!r} is not supported: mm2lightning evaluates with the default loop "
                    "(set precision through trainer_cfg=dict(precision=...))"
                )
        self.work_dir = Path(work_dir).absolute()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if isinstance(cfg, Config):
            self.cfg = Config(copy.deepcopy(cfg.to_dict()), filename=cfg.filename)
        else:
            self.cfg = Config(copy.deepcopy(dict(cfg)) if cfg is not None else {})
        self.launcher = launcher
        self.timestamp = time.strftime("%Y%m%d_%H%M%S", time.localtime())
        self.experiment_name = experiment_name or self.timestamp
        self.load_from = load_from
        self.resume = resume
        self._has_loaded = False  # as MMEngine: load_from / resume apply once, in the first train/val/test

        randomness = dict(randomness or {})
        unknown = set(randomness) - {"seed", "deterministic", "diff_rank_seed"}
        if unknown:
            raise ValueError(f"randomness has unknown keys {sorted(unknown)}; expected seed, deterministic, diff_rank_seed")
        self._seed_given = randomness.get("seed") is not None
        seed = randomness["seed"] if self._seed_given else int(np.random.randint(2**31))
        if randomness.get("diff_rank_seed", False):
            seed += process_rank(launcher)
        self.seed: int = seed
        self._meta = dict(seed=seed, experiment_name=self.experiment_name)  # saved in checkpoints (RunnerMeta)
        self.deterministic: bool = bool(randomness.get("deterministic", False))
        self._diff_rank_seed = bool(randomness.get("diff_rank_seed", False))
        pl.seed_everything(seed, verbose=False)  # random, numpy, torch: before a model config is built, as MMEngine

        if isinstance(model, Mapping):
            model = dict(model)
            if data_preprocessor is not None:
                model.setdefault("data_preprocessor", data_preprocessor)
            model = MODELS.build(model)
        if auto_scale_lr and auto_scale_lr.get("enable", False) and optim_wrapper is not None:
            optim_wrapper = scale_lr(optim_wrapper, self._lr_scale(auto_scale_lr, train_dataloader))
        self.module = MMLightningModule(
            model,
            optim_wrapper=optim_wrapper,
            param_scheduler=param_scheduler,
            val_evaluator=val_evaluator,
            test_evaluator=test_evaluator,
        )
        self._dataloaders = dict(train=train_dataloader, val=val_dataloader, test=test_dataloader)
        self._train_cfg = train_cfg
        self._hooks = (default_hooks, custom_hooks)
        self._trainer_cfg = dict(trainer_cfg or self.cfg.get("trainer_cfg") or {})
        self._extra_callbacks = list(callbacks or [])
        self._loggers = loggers
        self._trainer: pl.Trainer | None = None
        if self.cfg.to_dict() and process_rank(launcher) == 0:
            self._dump_config()

    def _dump_config(self) -> None:
        """Save the config in ``work_dir`` under its file's name (or ``<timestamp>.py``), as MMEngine does."""
        name = Path(self.cfg.filename).name if self.cfg.filename else f"{self.timestamp}.py"
        try:
            self.cfg.dump(self.work_dir / name)
        except ConfigError as error:
            warnings.warn(f"the config is not saved in work_dir: {error}", stacklevel=3)

    # ------------------------------------------------------------- building
    @classmethod
    def from_cfg(cls, cfg: Config | Mapping[str, Any]) -> Runner:
        """Build a Runner from a config (a :class:`mm2lightning.config.Config` or a dict), as MMEngine's.

        ``custom_imports`` are imported first, so the config's registered ``type`` names resolve.
        """
        config = cfg if isinstance(cfg, Config) else Config(dict(cfg))
        cfg = copy.deepcopy(config.to_dict())
        for key in ("model", "work_dir"):
            if cfg.get(key) is None:
                raise ValueError(f"the config has no {key!r}; Runner.from_cfg needs model and work_dir")
        import_custom_modules(cfg.get("custom_imports"))
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

    def _lr_scale(self, auto_scale_lr: Mapping[str, Any], train_dataloader: Any) -> float:
        if "base_batch_size" not in auto_scale_lr:
            raise ValueError("auto_scale_lr needs base_batch_size, e.g. auto_scale_lr=dict(enable=True, base_batch_size=256)")
        batch_size = (
            train_dataloader.batch_size if isinstance(train_dataloader, DataLoader) else train_dataloader["batch_size"]
        )
        world_size = launcher_trainer_args(self.launcher)
        return world_size["devices"] * world_size["num_nodes"] * batch_size / auto_scale_lr["base_batch_size"]

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
        callbacks, kwargs = hook_callbacks(*self._hooks, self.work_dir)
        if self._train_cfg is not None:
            loop_flags, schedule = train_loop_trainer_args(self._train_cfg)
            kwargs.update(loop_flags)
            if self._dataloaders["val"] is not None:
                callbacks.append(schedule)
        kwargs.update(launcher_trainer_args(self.launcher))
        if self.launcher != "none":
            kwargs["strategy"] = ddp_strategy(self.cfg)
        loggers = self._loggers if self._loggers is not None else default_loggers(self.work_dir, self.experiment_name)
        kwargs.update(
            default_root_dir=self.work_dir,
            logger=loggers,
            callbacks=[*callbacks, RunnerMeta(self._meta), *self._extra_callbacks],
            enable_checkpointing=False,  # checkpoints come from CheckpointHook (MMCheckpoint)
            num_sanity_val_steps=0,  # MMEngine validates only on schedule
            use_distributed_sampler=False,  # as MMEngine: the sampler (DefaultSampler) splits the data per rank
            deterministic=self.deterministic or None,
        )
        kwargs.update(self._trainer_cfg)
        return pl.Trainer(**kwargs)

    def _datamodule(self) -> pl.LightningDataModule:
        """The dataloaders, built per process after Lightning started the process group (DefaultSampler needs it)."""
        datamodule = pl.LightningDataModule()
        for stage, loader in self._dataloaders.items():
            if loader is not None:
                setattr(datamodule, f"{stage}_dataloader", self._loader_factory(loader))
        return datamodule

    def _loader_factory(self, loader: Any) -> Callable[[], DataLoader]:
        return lambda: build_dataloader(loader, seed=self._shared_seed(), diff_rank_seed=self._diff_rank_seed)

    def _shared_seed(self) -> int:
        """The run's seed, equal on all ranks: rank 0's when it was drawn at random (MMEngine's sync_random_seed)."""
        if not self._seed_given:
            self.seed, self._seed_given = int(broadcast_object(self.seed)), True
            self._meta["seed"] = self.seed
        return self.seed

    # ------------------------------------------------------------ checkpoints
    def _checkpoint_to_resume(self) -> Path | None:
        if not self.resume:
            return None
        if self.load_from is not None:
            return Path(self.load_from)
        return find_latest_checkpoint(self.work_dir)

    def load_checkpoint(self, filename: str | os.PathLike, strict: bool = False) -> dict[str, Any]:
        """Load the model weights of a checkpoint saved by MMEngine, by mm2lightning or a bare state dict.

        The file is read without running code from it (see
        :func:`mm2lightning.runner.checkpoint.load_checkpoint_file`). As MMEngine, ``strict=False`` by default:
        missing and unexpected keys are reported in a warning.
        """
        checkpoint = load_checkpoint_file(filename)
        result = self.model.load_state_dict(model_state_dict(checkpoint), strict=strict)
        if result.missing_keys or result.unexpected_keys:
            warnings.warn(
                f"{filename}: missing keys {result.missing_keys}, unexpected keys {result.unexpected_keys}",
                stacklevel=2,
            )
        return checkpoint

    def _restore_seed(self, checkpoint: Mapping[str, Any], path: Path) -> None:
        """As MMEngine's resume: the run goes on with the checkpoint's seed (the samplers' shuffling follows it)."""
        seed = (checkpoint.get("meta") or {}).get("seed")
        if seed is None or seed == self.seed:
            return
        if self._seed_given:
            warnings.warn(f"{path} was saved with seed {seed}, not randomness seed {self.seed}: using {seed}", stacklevel=3)
        self.seed, self._seed_given = int(seed), True
        self._meta["seed"] = self.seed
        pl.seed_everything(self.seed, verbose=False)

    # -------------------------------------------------------------- running
    def train(self) -> nn.Module:
        """Train as MMEngine's ``Runner.train()``; resume or load weights first when asked. Returns the model."""
        if self._dataloaders["train"] is None:
            raise RuntimeError("Runner.train() needs train_dataloader, train_cfg and optim_wrapper")
        if hasattr(self.model, "init_weights"):
            self.model.init_weights()
        ckpt_path = None if self._has_loaded else self._checkpoint_to_resume()
        converted: Path | None = None
        if ckpt_path is not None:
            checkpoint = load_checkpoint_file(ckpt_path)  # refuses files that would run code
            kind = checkpoint_kind(checkpoint)
            self._restore_seed(checkpoint, ckpt_path)
            if kind == "mmengine":
                converted = self.work_dir / f".resume_from_mmengine.{os.getpid()}.ckpt"
                save_checkpoint_atomic(lightning_checkpoint_from_mmengine(checkpoint, self.trainer), converted)
                ckpt_path = converted
            elif kind != "lightning":
                raise ValueError(
                    f"resume needs a checkpoint with training state (saved by mm2lightning or MMEngine), but "
                    f"{ckpt_path} holds only weights; load them with load_from=... and resume=False"
                )
        elif self.load_from is not None and not self._has_loaded:
            self.load_checkpoint(self.load_from)
        self._has_loaded = True
        try:
            self.trainer.fit(self.module, datamodule=self._datamodule(), ckpt_path=ckpt_path, weights_only=False)
        finally:
            if converted is not None:
                converted.unlink(missing_ok=True)
        return self.model

    def val(self) -> dict[str, Any]:
        """Evaluate on ``val_dataloader``; returns the evaluator's metrics (MMEngine's names, no ``val/``)."""
        return self._evaluate("val")

    def test(self) -> dict[str, Any]:
        """Evaluate on ``test_dataloader``; returns the evaluator's metrics (MMEngine's names, no ``test/``)."""
        return self._evaluate("test")

    def _evaluate(self, stage: Literal["val", "test"]) -> dict[str, Any]:
        if self._dataloaders[stage] is None:
            raise RuntimeError(f"Runner.{stage}() needs {stage}_dataloader, {stage}_cfg and {stage}_evaluator")
        if self.load_from is not None and not self._has_loaded:
            self.load_checkpoint(self.load_from)
        self._has_loaded = True
        run = self.trainer.validate if stage == "val" else self.trainer.test
        run(self.module, datamodule=self._datamodule(), verbose=False)
        return dict(self.module.val_metrics if stage == "val" else self.module.test_metrics)
