"""Resume from a checkpoint saved by MMEngine's Runner: rebuild it as the Lightning checkpoint ``fit`` expects.

MMEngine stores the finished epochs and iterations (``meta.epoch``, ``meta.iter``), the
model, the optim wrapper state(s) and the scheduler states. Lightning restores its
loops from progress counters; this module writes those counters for the start of epoch
``meta.epoch`` (0-based) after ``meta.iter`` iterations, where MMEngine's
``EpochBasedTrainLoop`` goes on: after an epoch's end, and also from a checkpoint saved
within an epoch (MMEngine runs that epoch again from its first batch, counting on from
``meta.iter``). The optimizer and scheduler states go to ``MMLightningModule``'s
checkpoint entry, which loads them per wrapper name once the wrappers are built.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import lightning
import lightning.pytorch as pl

from mm2lightning.lightning.state import CHECKPOINT_KEY

_WRAPPER_EXTRAS = ("base_param_settings", "loss_scaler")
_MMENGINE_KEYS = ("meta", "state_dict", "optimizer", "param_schedulers", "message_hub")


def _set(progress: dict[str, Any], **values: int) -> None:
    for part in ("total", "current"):
        for field, value in values.items():
            if field in progress[part]:
                progress[part][field] = value


def _fit_loop_state(template: dict[str, Any], epochs: int, iterations: int) -> dict[str, Any]:
    """Lightning's fit-loop counters after ``epochs`` whole epochs (its last batch done) and ``iterations``
    iterations in all; with ``epochs=0``, before the first epoch."""
    state = copy.deepcopy(template)
    _set(state["epoch_progress"], ready=epochs, started=epochs, processed=epochs, completed=max(epochs - 1, 0))
    state["epoch_loop.state_dict"]["_batches_that_stepped"] = iterations
    batches = state["epoch_loop.batch_progress"]
    _set(batches, ready=iterations, started=iterations, processed=iterations, completed=iterations)
    for field in ("ready", "started", "processed", "completed"):
        batches["current"][field] = iterations // epochs if epochs else 0
    batches["is_last_batch"] = epochs > 0
    _set(state["epoch_loop.manual_optimization.optim_step_progress"], ready=iterations, completed=iterations)
    return state


def _iteration_fit_loop_state(template: dict[str, Any], iterations: int, epoch_length: int) -> dict[str, Any]:
    """Lightning's fit-loop counters as an iteration-based run's own checkpoint after iteration ``iterations``
    holds them, with ``epoch_length`` batches per pass of the data."""
    state = copy.deepcopy(template)
    epoch = (iterations - 1) // epoch_length
    in_epoch = iterations - epoch * epoch_length
    _set(state["epoch_progress"], ready=epoch + 1, started=epoch + 1, processed=epoch, completed=epoch)
    state["epoch_loop.state_dict"]["_batches_that_stepped"] = iterations - 1
    batches = state["epoch_loop.batch_progress"]
    for part, count in (("total", iterations), ("current", in_epoch)):
        batches[part].update(ready=count, started=count, processed=count, completed=count - 1)
    batches["is_last_batch"] = in_epoch == epoch_length
    _set(state["epoch_loop.manual_optimization.optim_step_progress"], ready=iterations, completed=iterations)
    return state


def _wrapper_entry(optimizer_state: Mapping[str, Any], iterations: int) -> dict[str, Any]:
    optimizer = {k: v for k, v in optimizer_state.items() if k not in _WRAPPER_EXTRAS}
    entry: dict[str, Any] = {"inner_count": iterations, "optimizer": optimizer}
    entry.update({k: optimizer_state[k] for k in _WRAPPER_EXTRAS if k in optimizer_state})
    return entry


def lightning_checkpoint_from_mmengine(
    checkpoint: Mapping[str, Any], trainer: pl.Trainer, by_epoch: bool = True, epoch_length: int | None = None
) -> dict[str, Any]:
    """A checkpoint for ``trainer.fit(ckpt_path=...)`` with the state of an MMEngine checkpoint: of an
    epoch-based run, saved at an epoch's end or within an epoch; or of an iteration-based one, as its own
    checkpoint after that iteration (the Runner then skips the batches seen, as MMEngine's loop).

    Args:
        checkpoint: What MMEngine saved (``meta``, ``state_dict``, ``optimizer``, ``param_schedulers``), loaded
            with :func:`mm2lightning.runner.checkpoint.load_checkpoint_file`.
        trainer: The Trainer that will resume (its fit loop gives the counters' layout).
        by_epoch: Whether the run resuming is epoch-based (MMEngine's ``EpochBasedTrainLoop``).
        epoch_length: The batches of a pass of the training data (needed for an iteration-based run).

    Raises:
        ValueError: The checkpoint holds no optimizer state, or no iteration of an iteration-based run.
    """
    meta = checkpoint.get("meta") or {}
    epochs, iterations = meta.get("epoch", 0), meta.get("iter", 0)
    if not by_epoch and (not iterations or not epoch_length):
        raise ValueError(f"an iteration-based run resumes from a checkpoint after an iteration, not meta {meta!r}")
    if "optimizer" not in checkpoint:
        raise ValueError("the MMEngine checkpoint has no optimizer state (saved with save_optimizer=False); use load_from")
    optimizer = checkpoint["optimizer"]
    if "param_groups" in optimizer:  # one OptimWrapper
        wrappers = {"": _wrapper_entry(optimizer, iterations)}
    else:  # OptimWrapperDict: {name: wrapper state}
        wrappers = {name: _wrapper_entry(state, iterations) for name, state in optimizer.items()}
    state_dict = {f"model.{k.removeprefix('module.')}": v for k, v in checkpoint["state_dict"].items()}
    hook_entries = {k: v for k, v in checkpoint.items() if k not in _MMENGINE_KEYS}  # e.g. EMAHook's ema_state_dict
    return {
        **hook_entries,  # for the hooks' after_load_checkpoint
        "meta": meta,
        "epoch": max(epochs - 1, 0) if by_epoch else (iterations - 1) // epoch_length,
        "global_step": iterations,
        "pytorch-lightning_version": lightning.__version__,
        "state_dict": state_dict,
        "loops": {"fit_loop": _fit_loop_state(trainer.fit_loop.state_dict(), epochs, iterations) if by_epoch
                  else _iteration_fit_loop_state(trainer.fit_loop.state_dict(), iterations, epoch_length)},
        "callbacks": {},
        "optimizer_states": [],  # loaded per wrapper name by MMLightningModule (CHECKPOINT_KEY)
        "lr_schedulers": [],
        CHECKPOINT_KEY: {"optim_wrapper": wrappers, "param_schedulers": checkpoint.get("param_schedulers")},
    }  # no param_schedulers (saved with save_param_scheduler=False): the run's stay as built, as in MMEngine
