"""Lightning callbacks with the behaviour of MMEngine's ``CheckpointHook`` and training loops' validation schedule."""

from __future__ import annotations

import bisect
import math
import os
import shutil
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl

from mm2lightning.config import ConfigError
from mm2lightning.errors import AssertTypeError
from mm2lightning.runner.publish import check_published_keys, publish_checkpoint

LAST_CHECKPOINT_FILE = "last_checkpoint"  # as MMEngine: a text file in work_dir naming the newest checkpoint

_GREATER_KEYS = ("acc", "top", "AR@", "auc", "precision", "mAP", "mDice", "mIoU", "mAcc", "aAcc")
_LESS_KEYS = ("loss",)


def infer_rule(
    key: str, greater_keys: Sequence[str] = _GREATER_KEYS, less_keys: Sequence[str] = _LESS_KEYS
) -> Literal["greater", "less"]:
    """MMEngine's rule for a ``save_best`` metric: exact names first, then substrings (case-insensitive).

    Raises:
        ValueError: No rule can be inferred from ``key``.
    """
    key_lc = key.lower()
    greater = {k.lower() for k in greater_keys}
    less = {k.lower() for k in less_keys}
    if key_lc in greater:
        return "greater"
    if key_lc in less:
        return "less"
    if any(k in key_lc for k in greater):
        return "greater"
    if any(k in key_lc for k in less):
        return "less"
    raise ValueError(
        f"CheckpointHook cannot infer the rule for save_best={key!r}: pass rule='greater' or rule='less'"
    )


def _key_list(keys: str | Sequence[str] | None, default: Sequence[str], name: str) -> tuple[str, ...]:
    """MMEngine's ``greater_keys``/``less_keys``: a name or a sequence of names (``None``: MMEngine's)."""
    if keys is None:
        return tuple(default)
    keys = (keys,) if isinstance(keys, str) else tuple(keys)
    if not all(isinstance(key, str) for key in keys):
        raise AssertTypeError(f"CheckpointHook {name} must be a str or a sequence of str, but got {keys!r}")
    return keys


def find_latest_checkpoint(work_dir: str | os.PathLike) -> Path | None:
    """The checkpoint named in ``work_dir/last_checkpoint`` (written by :class:`MMCheckpoint`); ``None`` without one.

    A named file that is gone is still returned (loading it then fails, naming it), unless ``work_dir`` holds a
    file of that name: then the work_dir was moved, and that file is the checkpoint.
    """
    pointer = Path(work_dir) / LAST_CHECKPOINT_FILE
    if not pointer.is_file():
        return None
    path = Path(pointer.read_text().strip())
    moved = Path(work_dir) / path.name
    return moved if not path.is_file() and moved.is_file() else path


def remove_checkpoint(path: Path) -> None:
    """Delete a checkpoint file, or a sharded checkpoint's folder (``strategy='fsdp_mm'``)."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


class MMCheckpoint(pl.Callback):
    """Saves checkpoints as MMEngine's ``CheckpointHook``, in Lightning's format (``.ckpt``).

    Epoch mode writes ``epoch_{N}.ckpt`` (N counted from 1) at the end of every
    ``interval``-th epoch, iteration mode ``iter_{N}.ckpt`` every ``interval``
    iterations; ``save_last`` also saves at the end of training. ``work_dir/last_checkpoint``
    names the newest one, for ``Runner(resume=True)``.

    Args:
        out_dir: Where checkpoints go.
        interval: Save every ``interval`` epochs or iterations; ``-1`` only with ``save_last``.
        by_epoch: Count ``interval`` in epochs (``True``) or iterations.
        max_keep_ckpts: Keep the newest ``max_keep_ckpts`` regular checkpoints (``-1``: all).
        save_last: Also save at the last epoch or iteration.
        save_optimizer: Save optimizer and scheduler states (``False``: weights only).
        save_best: Metric name(s), or ``'auto'`` (the evaluator's first metric), to keep the best
            checkpoint by, as ``best_{metric}_{regular name}`` (e.g. ``best_acc_epoch_3.ckpt``).
        rule: ``'greater'`` or ``'less'``, one or one per ``save_best`` key; inferred from the name by
            default (MMEngine's rule).
        save_begin: The first epoch or iteration counted for ``interval``.
        greater_keys: Metric names (or parts of them) whose rule is ``'greater'`` (default: MMEngine's).
        less_keys: Metric names (or parts of them) whose rule is ``'less'`` (default: MMEngine's).
        filename_tmpl: The regular checkpoints' name, formatted with the epoch or iteration (default:
            ``'epoch_{}.ckpt'``/``'iter_{}.ckpt'``).
        save_param_scheduler: Save the parameter schedulers' states with the optimizer's.
        published_keys: At the end of training, also write the last (with ``save_last``) and the best checkpoints
            in MMEngine's layout with only these keys, as ``<name>-<sha256[:8]>.pth`` (MMEngine's publishing).
        work_dir: Where ``last_checkpoint`` is written (default: ``out_dir``).
        epoch_based_loop: ``False`` for MMEngine's ``IterBasedTrainLoop``, whose whole run is one epoch: there
            ``by_epoch=True`` saves ``epoch_1.ckpt`` once, at the end, as MMEngine does.

    ``save_optimizer=False`` checkpoints hold the weights and counters only, and cannot be resumed (load them
    with ``load_from``).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        interval: int = -1,
        by_epoch: bool = True,
        max_keep_ckpts: int = -1,
        save_last: bool = True,
        save_optimizer: bool = True,
        save_best: str | Sequence[str] | None = None,
        rule: str | Sequence[str] | None = None,
        save_begin: int = 0,
        greater_keys: str | Sequence[str] | None = None,
        less_keys: str | Sequence[str] | None = None,
        filename_tmpl: str | None = None,
        save_param_scheduler: bool = True,
        published_keys: str | Sequence[str] | None = None,
        work_dir: str | os.PathLike | None = None,
        epoch_based_loop: bool = True,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.work_dir = Path(work_dir) if work_dir is not None else self.out_dir
        self.interval = interval
        self.by_epoch = by_epoch
        self.max_keep_ckpts = max_keep_ckpts
        self.save_last = save_last
        self.save_optimizer = save_optimizer
        self.save_begin = save_begin
        self.epoch_based_loop = epoch_based_loop
        self.save_param_scheduler = save_param_scheduler
        self.published_keys = check_published_keys(published_keys)
        self.filename_tmpl = filename_tmpl or ("epoch_{}.ckpt" if by_epoch else "iter_{}.ckpt")
        self.greater_keys = _key_list(greater_keys, _GREATER_KEYS, "greater_keys")
        self.less_keys = _key_list(less_keys, _LESS_KEYS, "less_keys")
        keys = [save_best] if isinstance(save_best, str) else list(save_best or [])
        rules = [rule] if rule is None or isinstance(rule, str) else list(rule)
        if len(rules) == 1:
            rules = rules * len(keys)
        if keys and len(rules) != len(keys):
            raise ValueError(f"CheckpointHook got {len(keys)} save_best keys but {len(rules)} rules")
        for r in rules:
            if r not in (None, "greater", "less"):
                raise ValueError(f"CheckpointHook rule must be 'greater', 'less' or None, but got {r!r}")
        self._best: dict[str, dict[str, Any]] = {
            key: {"rule": r if r is not None or key == "auto" else self._infer_rule(key), "score": None, "path": None}
            for key, r in zip(keys, rules)
        }
        self._kept: deque[Path] = deque()
        self._last_regular: tuple[int, Path] | None = None  # (global step, path) of the newest regular checkpoint

    def _infer_rule(self, key: str) -> Literal["greater", "less"]:
        return infer_rule(key, self.greater_keys, self.less_keys)

    # --------------------------------------------------------------- regular
    def _due(self, count: int, is_last: bool) -> bool:
        every = self.interval > 0 and count >= self.save_begin and (count - self.save_begin) % self.interval == 0
        return every or (self.save_last and is_last)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        max_iters = getattr(pl_module, "max_iters", trainer.max_steps)  # also in epoch-based runs
        if not self.by_epoch and self._due(trainer.global_step, trainer.global_step == max_iters):
            self._save_regular(trainer, self.filename_tmpl.format(trainer.global_step))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.by_epoch and self.epoch_based_loop:
            epoch = trainer.current_epoch + 1
            if self._due(epoch, epoch == trainer.max_epochs):
                self._save_regular(trainer, self.filename_tmpl.format(epoch))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.by_epoch and not self.epoch_based_loop and self._due(1, is_last=True):
            self._save_regular(trainer, self.filename_tmpl.format(1))
        if self.published_keys is not None and trainer.is_global_zero:  # as MMEngine's after_train
            latest = [self._last_regular[1]] if self.save_last and self._last_regular is not None else []
            for path in latest + [best["path"] for best in self._best.values() if best["path"] is not None]:
                publish_checkpoint(path, self.published_keys)

    def _save_regular(self, trainer: pl.Trainer, name: str) -> None:
        path = self.out_dir / name
        self._kept.append(path)  # before saving: the checkpoint's own state lists it
        self._last_regular = (trainer.global_step, path)
        self._save(trainer, path)
        removed = []
        while 0 < self.max_keep_ckpts < len(self._kept):  # only once the new one is written
            removed.append(self._kept.popleft())
        if trainer.is_global_zero:
            _write_atomic(self.work_dir / LAST_CHECKPOINT_FILE, str(path.resolve()))
            for old in removed:
                remove_checkpoint(old)

    def _save(self, trainer: pl.Trainer, path: Path) -> None:
        module = trainer.lightning_module
        module.save_param_scheduler = self.save_param_scheduler
        try:
            trainer.save_checkpoint(path, weights_only=not self.save_optimizer)
        finally:
            module.save_param_scheduler = True

    def state_dict(self) -> dict[str, Any]:
        """The kept and best checkpoints, so that a resumed run goes on deleting and comparing as MMEngine's."""
        return {
            "kept": [str(path) for path in self._kept],
            "best": {key: {**best, "path": None if best["path"] is None else str(best["path"])}
                     for key, best in self._best.items()},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._kept = deque(Path(path) for path in state_dict["kept"])
        if "auto" in self._best and "auto" not in state_dict["best"]:
            del self._best["auto"]  # the interrupted run already chose the metric
        for key, best in state_dict["best"].items():
            self._best[key] = {**best, "path": None if best["path"] is None else Path(best["path"])}

    # ------------------------------------------------------------------ best
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._best or trainer.sanity_checking or trainer.state.fn != "fit":
            return
        metrics = getattr(pl_module, "val_metrics", None) or {}
        if not metrics:
            return
        # as MMEngine: best_<key>_<the regular checkpoint's name of this epoch or iteration>
        suffix = self.filename_tmpl.format(trainer.current_epoch + 1 if self.by_epoch else trainer.global_step)
        updated = False
        for key, best in list(self._best.items()):
            if key == "auto":  # MMEngine: the first metric, from the first evaluation on
                key = next(iter(metrics))
                self._best = {key if k == "auto" else k: v for k, v in self._best.items()}
                best["rule"] = best["rule"] or self._infer_rule(key)
            if key not in metrics:
                raise ConfigError(
                    f"CheckpointHook save_best={key!r} is not among the evaluator's metrics {sorted(metrics)}"
                )
            score = float(metrics[key])
            if math.isnan(score):
                continue
            better = best["score"] is None or (
                score > best["score"] if best["rule"] == "greater" else score < best["score"]
            )
            if not better:
                continue
            best["score"] = score
            path = self.out_dir / f"best_{key.replace('/', '_')}_{suffix}"
            trainer.save_checkpoint(path, weights_only=True)
            if trainer.is_global_zero and best["path"] is not None and best["path"] != path:
                remove_checkpoint(best["path"])
            best["path"] = path
            updated = True
        if updated and self._last_regular is not None and self._last_regular[0] == trainer.global_step:
            # As MMEngine: the regular checkpoint of this step was written before this validation; write it again
            # so that a resumed run knows the new best (and can delete it when a better one comes).
            self._save(trainer, self._last_regular[1])

    @property
    def best_checkpoints(self) -> dict[str, Path | None]:
        """The best checkpoint so far per ``save_best`` key."""
        return {key: best["path"] for key, best in self._best.items()}


class ValidationSchedule(pl.Callback):
    """Validates when MMEngine's training loops do, which Lightning's flags alone cannot express.

    Epoch mode: after epoch ``e`` (from 1) when ``e >= val_begin`` and ``e % val_interval == 0``, and after
    the last epoch. Iteration mode: after iteration ``i`` when ``i >= val_begin`` and
    ``i % val_interval == 0``, and after the last iteration. ``dynamic_intervals=[(milestone, interval), ...]``
    changes ``val_interval`` from each milestone on, as MMEngine's loops (which look at the next epoch or
    iteration). Needs a Trainer built with
    ``check_val_every_n_epoch=1`` (epoch mode) or ``check_val_every_n_epoch=None, val_check_interval=1``
    (iteration mode): the callback switches ``trainer.check_val_every_n_epoch`` on and off.
    """

    _OFF = sys.maxsize  # (epoch + 1) % maxsize != 0: Lightning skips validation

    def __init__(
        self, by_epoch: bool, val_interval: int, val_begin: int = 1,
        dynamic_intervals: Sequence[tuple[int, int]] | None = None,
    ) -> None:  # fmt: skip
        self.by_epoch = by_epoch
        self.val_interval = val_interval
        self.val_begin = val_begin
        if dynamic_intervals is not None and not all(isinstance(item, tuple) for item in dynamic_intervals):
            raise AssertTypeError(f"dynamic_intervals must be a list of (milestone, interval) tuples, got {dynamic_intervals!r}")
        dynamic_intervals = list(dynamic_intervals or [])
        self._milestones = [0, *(milestone for milestone, _ in dynamic_intervals)]
        self._intervals = [val_interval, *(interval for _, interval in dynamic_intervals)]

    def _due(self, count: int, last: int) -> bool:
        # MMEngine's loops: the interval of the last milestone reached by the next epoch/iteration (count + 1)
        self.val_interval = self._intervals[bisect.bisect(self._milestones, count + 1) - 1]
        return count >= self.val_begin and (count % self.val_interval == 0 or count == last)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.by_epoch:
            due = self._due(trainer.current_epoch + 1, trainer.max_epochs)
            trainer.check_val_every_n_epoch = 1 if due else self._OFF
        else:
            trainer.check_val_every_n_epoch = self._OFF

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if not self.by_epoch:  # Lightning decides right after this hook, with check_val_every_n_epoch=None
            due = self._due(trainer.global_step, trainer.max_steps)
            trainer.check_val_every_n_epoch = None if due else self._OFF
