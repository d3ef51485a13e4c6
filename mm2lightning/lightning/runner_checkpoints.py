"""The Runner's checkpoint methods: MMEngine's ``load_checkpoint``, ``save_checkpoint``, ``resume`` and
``load_or_resume``, and the checks and conversions before Lightning resumes a fit."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning
import torch

from mm2lightning.config import Config
from mm2lightning.lightning.callbacks import find_latest_checkpoint
from mm2lightning.lightning.data_resume import position_in_epoch
from mm2lightning.lightning.mmengine_resume import lightning_checkpoint_from_mmengine
from mm2lightning.runner.checkpoint import (
    CheckpointError,
    checkpoint_kind,
    load_checkpoint_file,
    model_state_dict,
    save_checkpoint_atomic,
)
from mm2lightning.runner.options import refuse
from mm2lightning.runner.remote import is_remote, resolve_checkpoint
from mm2lightning.runner.sharded_checkpoint import is_sharded_checkpoint, sharded_checkpoint_meta

_REBUILT = ".resume_from_mmengine."  # an MMEngine checkpoint rebuilt for Lightning's resume: removed after the fit


class RunnerCheckpoints:
    """Mixin of :class:`~mm2lightning.runner.Runner`: loading, saving and resuming checkpoints as MMEngine's Runner
    (Lightning's checkpoint format; MMEngine's files are read too)."""

    module: Any
    work_dir: Path
    load_from: Any
    _resume: bool
    _resumed: bool
    _loaded_weights: bool
    _seed_given: bool
    _meta: dict[str, Any]
    _hook_driver: Any
    _resume_position: tuple[int, int, int]
    _replay_resume: bool
    auto_scale_lr: Any
    _schedule: Any
    world_size: int

    # ------------------------------------------------------------ checkpoints
    def _checkpoint_to_resume(self) -> str | Path | None:
        if not self._resume or self._resumed:
            return None
        if self.load_from is not None:
            return self.load_from if is_remote(self.load_from) else Path(self.load_from)
        return find_latest_checkpoint(self.work_dir)

    def load_checkpoint(
        self,
        filename: str | os.PathLike,
        map_location: Any = "cpu",
        strict: bool = False,
        revise_keys: Sequence[tuple[str, str]] = ((r"^module\.", ""),),
    ) -> dict[str, Any]:
        """Load the model weights of a checkpoint saved by MMEngine, by mm2lightning or a bare state dict.

        The file is read without running code from it (see
        :func:`mm2lightning.runner.checkpoint.load_checkpoint_file`). As MMEngine: the weights count as loaded
        (a later ``train()``/``val()``/``test()`` does not load ``load_from`` over them); ``strict=False`` by default,
        with missing and unexpected keys reported in a warning; ``revise_keys`` are ``re.sub`` patterns applied
        to the keys in turn.
        """
        checkpoint = load_checkpoint_file(filename, map_location=map_location)
        if self._hook_driver is not None:  # as MMEngine: hooks see the checkpoint before the weights are loaded
            self._hook_driver.after_load_checkpoint(
                checkpoint, resume=False, lightning_layout=checkpoint_kind(checkpoint) == "lightning"
            )
        state = model_state_dict(checkpoint)
        for pattern, replacement in revise_keys:
            state = {re.sub(pattern, replacement, key): value for key, value in state.items()}
        model = self.model
        while any(cls.__name__ == "BaseTTAModel" for cls in type(model).__mro__):  # ours or mmengine's
            model = model.module  # as MMEngine: a TTA model's checkpoint is its wrapped model's
        result = model.load_state_dict(state, strict=strict)
        if result.missing_keys or result.unexpected_keys:
            warnings.warn(
                f"{filename}: missing keys {result.missing_keys}, unexpected keys {result.unexpected_keys}",
                stacklevel=2,
            )
        self._loaded_weights = True  # as MMEngine: load_from is not applied over these weights
        self.logger.info(f"Load checkpoint from {filename}")
        return checkpoint

    def _prepare_resume(self, path: str | Path) -> Path:
        """Check a checkpoint to resume from and return the file ``fit`` loads (an MMEngine one rebuilt).

        Raises:
            CheckpointError: The file holds no training state, or is an MMEngine checkpoint that cannot resume.
        """
        path = resolve_checkpoint(path)  # a URL or model-zoo name: downloaded first, as MMEngine's resume
        if is_sharded_checkpoint(path):  # its meta only: the strategy loads the shards
            checkpoint, has_optimizer = sharded_checkpoint_meta(path)
            kind = "lightning"
        else:
            checkpoint = load_checkpoint_file(path)  # refuses files that would run code
            kind = checkpoint_kind(checkpoint)
            has_optimizer = "optimizer_states" in checkpoint
        if kind == "state_dict" or (kind == "lightning" and not has_optimizer):
            raise CheckpointError(
                f"resume needs a checkpoint with training state, but {path} holds only weights (a state dict, or "
                "saved with save_optimizer=False); load them with load_from=... and resume=False"
            )
        self._check_world_size(checkpoint)
        self._restore_seed(checkpoint, path)  # before the dataloader may be built below (its sampler's seed)
        rebuilt = None
        if kind == "mmengine":
            by_epoch = self._schedule.by_epoch
            if not by_epoch and self.distributed:  # the position is counted on this rank's share of the data
                self.trainer.strategy.setup_environment()
            try:
                rebuilt = lightning_checkpoint_from_mmengine(
                    checkpoint, self.trainer, by_epoch, None if by_epoch else len(self.train_dataloader)
                )
            except ValueError as error:
                raise CheckpointError(f"{path}: {error}") from error
        self._resume_position = position_in_epoch(rebuilt or checkpoint)  # MMEngine's epochs start again: (0, 0)
        self._replay_resume = kind == "mmengine" and not self._schedule.by_epoch
        if rebuilt is None:
            return path
        return save_checkpoint_atomic(rebuilt, self.work_dir / f"{_REBUILT}{os.getpid()}.ckpt")

    def _check_world_size(self, checkpoint: Mapping[str, Any]) -> None:
        """MMEngine's check on resume: a checkpoint whose ``meta.config`` names ``gpu_ids`` of another count than
        this run's processes resumes only with ``auto_scale_lr`` enabled (its learning rate was for that count)."""
        config_text = (checkpoint.get("meta") or {}).get("config")
        if not isinstance(config_text, str):
            return
        gpu_ids = Config.fromstring(config_text, ".py").get("gpu_ids")
        if gpu_ids and len(gpu_ids) != self.world_size and not (self.auto_scale_lr or {}).get("enable", False):
            raise RuntimeError(
                "Number of GPUs used for current experiment is not consistent with the checkpoint being resumed "
                "from. This will result in poor performance due to the learning rate. You must set the "
                '`auto_scale_lr` parameter for Runner and make `auto_scale_lr["enable"]=True`.'
            )

    def _restore_seed(self, checkpoint: Mapping[str, Any], path: Path) -> None:
        """As MMEngine's resume: the run goes on with the checkpoint's seed (the samplers' shuffling follows it)."""
        seed = (checkpoint.get("meta") or {}).get("seed")
        if seed is None or seed == self._meta["seed"]:
            return
        if self._seed_given:
            warnings.warn(
                f"{path} was saved with seed {seed}, not randomness seed {self._meta['seed']}: using {seed}",
                stacklevel=3,
            )
        self._seed_given = True
        self._apply_seed(int(seed))

    # ------------------------------------------------------------ checkpoints
    def save_checkpoint(
        self,
        out_dir: str | os.PathLike,
        filename: str,
        file_client_args: dict | None = None,
        save_optimizer: bool = True,
        save_param_scheduler: bool = True,
        meta: dict | None = None,
        by_epoch: bool = True,
        backend_args: dict | None = None,
    ) -> None:
        """Save a checkpoint to ``out_dir/filename``, as MMEngine's (in Lightning's format; ``mm2lightning convert``
        gives MMEngine's). ``meta`` is added to the checkpoint's ``meta``. Before training built the optim wrapper,
        ``save_optimizer=True`` is MMEngine's ``TypeError``.
        """
        if file_client_args is not None or backend_args is not None:
            refuse("CheckpointHook", "backend_args", "save_checkpoint(file_client_args/backend_args)")
        if meta is not None and not isinstance(meta, dict):
            raise TypeError(f"meta should be a dict or None, but got {type(meta)}")
        path = Path(out_dir) / filename
        trainer = self.module._trainer
        if trainer is not None and trainer.lightning_module is self.module:
            extra = dict(meta or {})
            saved_meta = self.module.checkpoint_meta
            self.module.checkpoint_meta = {**saved_meta, **extra}
            self.module.save_param_scheduler = save_param_scheduler
            try:
                trainer.save_checkpoint(path, weights_only=not save_optimizer)
            finally:
                self.module.checkpoint_meta, self.module.save_param_scheduler = saved_meta, True
            return
        if save_optimizer:
            raise TypeError(
                f"self.optim_wrapper should be an `OptimWrapper` or `OptimWrapperDict` instance, but got "
                f"{self.optim_wrapper}: the optim wrapper is built when training starts (save_optimizer=False saves "
                "the weights)"
            )
        checkpoint = {
            "epoch": self.epoch, "global_step": self.iter, "pytorch-lightning_version": lightning.__version__,
            "state_dict": self.module.state_dict(), "meta": {**self.module.checkpoint_meta, **(meta or {})},
        }  # fmt: skip
        save_checkpoint_atomic(checkpoint, path)

    def resume(
        self,
        filename: str | os.PathLike,
        resume_optimizer: bool = True,
        resume_param_scheduler: bool = True,
        map_location: str | torch.device = "default",
    ) -> None:
        """Resume from ``filename`` when training starts (Lightning restores a fit's state as it begins), as
        MMEngine's ``train()`` after ``runner.resume(...)``. Only whole resumes are carried out."""
        if not (resume_optimizer and resume_param_scheduler):
            raise NotImplementedError(
                "Runner.resume(resume_optimizer=False / resume_param_scheduler=False) is not supported by "
                "mm2lightning: a resume restores the optimizer and the schedulers (load weights with load_checkpoint)"
            )
        self.load_from, self._resume, self._resumed = str(filename), True, False

    def load_or_resume(self) -> None:
        """MMEngine's ``load_or_resume``: load ``load_from``'s weights now, once; a resume happens when training
        starts (Lightning restores the fit's state there)."""
        if self._loaded_weights or self._resume:
            return
        if self.load_from is not None:
            self.load_checkpoint(self.load_from)
        self._loaded_weights = True

