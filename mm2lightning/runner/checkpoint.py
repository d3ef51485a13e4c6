"""Checkpoint interop with MMEngine: load either layout without running code, convert ours to MMEngine's.

MMEngine's ``Runner.save_checkpoint`` pickles objects (``HistoryBuffer``, numpy
arrays and scalars) that ``torch.load(weights_only=True)`` refuses, and loading
with ``weights_only=False`` would run whatever code the file names.
:func:`load_checkpoint_file` loads with torch's weights-only unpickler plus
inert stand-ins for MMEngine's ``HistoryBuffer`` and for numeric numpy arrays and
scalars (:mod:`mm2lightning.runner.safe_unpickler`). Anything else is refused
with :class:`CheckpointError`.

:func:`to_mmengine` / :func:`convert_checkpoint` turn a Lightning checkpoint of
``MMLightningModule`` into MMEngine's layout (``meta``, ``state_dict``,
``message_hub``, ``optimizer``, ``param_schedulers``) with plain content only, so
that MMEngine's ``load_from`` and ``resume`` accept it even where ``torch.load``
defaults to ``weights_only=True``.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import secrets
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.modules.module import _IncompatibleKeys

from mm2lightning.dist import get_rank
from mm2lightning.logging import print_log
from mm2lightning.runner.remote import resolve_checkpoint
from mm2lightning.runner.safe_unpickler import (
    HistoryBufferData,
    pickled_globals,
    restricted_load,
    torch_default_globals,
)

__all__ = [
    "CheckpointError",
    "HistoryBufferData",
    "checkpoint_kind",
    "convert_checkpoint",
    "load_checkpoint_file",
    "model_state_dict",
    "save_checkpoint_atomic",
    "to_mmengine",
]

CheckpointKind = Literal["mmengine", "lightning", "state_dict"]

_LIGHTNING_MARKERS = ("pytorch-lightning_version", "mm2lightning")
_MODEL_PREFIX = "model."
_DDP_PREFIX = "module."


class CheckpointError(ValueError):
    """A file or dict that is not a checkpoint this module can read, or one refused as unsafe to load."""


def _describe(err: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, short, even for exceptions whose message cannot be built."""
    try:
        text = " ".join(str(err)[: 4 * limit].split())
    except Exception:  # e.g. a RecursionError while formatting a deeply nested value
        text = "<message not printable>"
    return f"{type(err).__name__}: {text[:limit]}"


def _refusal_reason(err: pickle.UnpicklingError) -> str:
    """What torch's weights-only unpickler (or a stand-in) refused, from its multi-paragraph message."""
    text = _describe(err, limit=2000)
    for pattern in (r"the file refers to (.+?), and [^.]*", r"GLOBAL (\S+)", r"unrecognized function (\S+)"):
        found = re.search(pattern, text)
        if found:
            return found.group(0) if pattern.startswith("the file") else f"it refers to {found.group(1)}"
    detail = text.split("WeightsUnpickler error:", 1)[-1]
    return f"torch's weights-only unpickler refused it ({detail.strip()[:300]})"


def load_checkpoint_file(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint saved by MMEngine, by Lightning or by ``torch.save``, without running code from it.

    MMEngine's ``HistoryBuffer`` entries come back as :class:`HistoryBufferData`.

    Args:
        path: The checkpoint file, or a sharded checkpoint folder (gathered whole, see
            :func:`mm2lightning.runner.sharded_checkpoint.load_sharded_checkpoint`), or a URL or model-zoo
            name as MMEngine takes them (downloaded first, see :func:`mm2lightning.runner.remote.resolve_checkpoint`).
        map_location: As ``torch.load``'s.

    Returns:
        The checkpoint dict.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: The file names a global outside the allowlist (loading it could run code), is not a
            PyTorch checkpoint, or does not hold a dict.
    """
    path = resolve_checkpoint(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.is_dir():
        return _load_checkpoint_folder(path)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint (not a zip archive written by torch.save, the only format read)"
        )
    try:
        checkpoint = restricted_load(path, map_location=map_location)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: not loaded, because loading it could run code from the file: {_refusal_reason(err)}. Only "
            "tensors, plain Python data, numeric numpy arrays and MMEngine's HistoryBuffer are loaded."
        ) from None
    except Exception as err:  # a damaged or malformed file: whatever torch or numpy raised
        raise CheckpointError(f"{path}: not a readable checkpoint ({_describe(err)})") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: holds a {type(checkpoint).__name__}, not a checkpoint dict")
    return checkpoint


def _load_checkpoint_folder(path: Path) -> dict[str, Any]:
    from mm2lightning.runner.sharded_checkpoint import is_sharded_checkpoint, load_sharded_checkpoint

    if not is_sharded_checkpoint(path):
        raise CheckpointError(
            f"{path}: a directory, not a checkpoint (a sharded checkpoint folder holds a .metadata index)"
        )
    try:
        return load_sharded_checkpoint(path)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path}: not loaded, because loading it could run code from the folder: {err}") from None
    except Exception as err:  # a damaged folder: whatever torch raised
        raise CheckpointError(f"{path}: not a readable sharded checkpoint ({_describe(err)})") from None


def checkpoint_kind(checkpoint: Mapping[str, Any]) -> CheckpointKind:
    """Which layout a loaded checkpoint has.

    Returns:
        ``'lightning'`` (saved by Lightning's Trainer: ``state_dict`` plus ``pytorch-lightning_version`` or
        mm2lightning's entry), ``'mmengine'`` (``state_dict`` without those, as MMEngine's Runner saves) or
        ``'state_dict'`` (a bare mapping of parameter names to tensors).

    Raises:
        CheckpointError: Anything else.
    """
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("state_dict"), Mapping):
        return "lightning" if any(key in checkpoint for key in _LIGHTNING_MARKERS) else "mmengine"
    if (
        isinstance(checkpoint, Mapping)
        and checkpoint
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in checkpoint.items())
    ):
        return "state_dict"
    found = sorted(map(str, checkpoint)) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
    raise CheckpointError(
        f"unrecognised checkpoint layout: found {found}; expected an MMEngine checkpoint (meta, state_dict, "
        "optimizer, ...), a Lightning checkpoint (state_dict, pytorch-lightning_version, ...) or a bare state dict "
        "(parameter name -> tensor)"
    )


def model_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The model's weights under the model's own keys, from any layout :func:`checkpoint_kind` knows.

    MMEngine checkpoints and bare state dicts lose a leading ``module.`` (MMEngine's default ``revise_keys``);
    Lightning checkpoints of ``MMLightningModule`` keep the entries under ``model.``, without that prefix.

    Raises:
        CheckpointError: An unknown layout, or a Lightning checkpoint without ``model.`` entries.
    """
    kind = checkpoint_kind(checkpoint)
    if kind == "lightning":
        weights = {
            key[len(_MODEL_PREFIX) :]: value
            for key, value in checkpoint["state_dict"].items()
            if key.startswith(_MODEL_PREFIX)
        }
        if not weights:
            raise CheckpointError(
                "this Lightning checkpoint has no 'model.' entries in its state_dict, so it was not saved from an "
                f"MMLightningModule (keys: {sorted(checkpoint['state_dict'])[:5]}...)"
            )
        return weights
    state = checkpoint["state_dict"] if kind == "mmengine" else checkpoint
    return {key.removeprefix(_DDP_PREFIX): value for key, value in state.items()}


def _completed_epochs(checkpoint: Mapping[str, Any]) -> int:
    """Epochs whose training batches all ran, from Lightning's loop progress.

    Lightning's ``epoch`` key is ``current_epoch`` (epochs *completed*), which a
    checkpoint saved in ``on_train_epoch_end`` (``ModelCheckpoint(every_n_epochs)``)
    has not counted yet; the fit loop's ``epoch_progress.current.processed`` has. A
    checkpoint saved in the validation after an epoch's last batch (a best
    checkpoint) counts that epoch too, as MMEngine's loop has by then.
    """
    try:
        fit_loop = checkpoint["loops"]["fit_loop"]
        epochs = fit_loop["epoch_progress"]["current"]
        batches = fit_loop.get("epoch_loop.batch_progress") or {}
        last_batch_done = batches.get("is_last_batch") and batches["current"]["completed"] == batches["current"]["ready"]
        return int(epochs["processed"]) + int(bool(last_batch_done) and epochs["started"] > epochs["processed"])
    except (KeyError, TypeError) as err:
        raise CheckpointError(
            "this Lightning checkpoint has no fit-loop progress (loops.fit_loop.epoch_progress), so its epoch "
            "cannot be told; save it with Trainer.save_checkpoint or ModelCheckpoint"
        ) from err


def _optimizer(checkpoint: Mapping[str, Any], training_state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """MMEngine's ``optim_wrapper.state_dict()``: the optimizer's state plus each wrapper's extras."""
    states = checkpoint.get("optimizer_states") or []
    if "optimizer_states" not in checkpoint:  # a weights-only save: MMEngine's load_from needs the weights alone
        return None
    if training_state is None:
        if states:
            raise CheckpointError(
                f"this Lightning checkpoint holds {len(states)} optimizer state(s) but no 'mm2lightning' entry naming "
                "their optim wrappers; only checkpoints of MMLightningModule can be converted"
            )
        return None
    wrappers = training_state["optim_wrapper"]
    if len(states) != len(wrappers):
        raise CheckpointError(
            f"this Lightning checkpoint holds {len(states)} optimizer state(s) for {len(wrappers)} optim wrapper(s) "
            f"{sorted(wrappers)}; it cannot be converted"
        )
    converted = {}
    for (name, extras), state in zip(wrappers.items(), states):  # configure_optimizers keeps the wrappers' order
        converted[name] = {
            **state,
            **{key: extras[key] for key in ("base_param_settings", "loss_scaler") if key in extras},
        }
    return converted[""] if list(converted) == [""] else converted


def to_mmengine(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a Lightning checkpoint of ``MMLightningModule`` to MMEngine's ``Runner`` layout.

    ``meta.epoch`` is the number of epochs whose batches all ran and ``meta.iter``
    the number of iterations (``global_step``, one per ``train_step``): what
    MMEngine stores at the same point (``epoch + 1`` / ``iter`` when its
    CheckpointHook saves at an epoch end, ``epoch`` / ``iter + 1`` after an
    iteration), and what its loops resume from. ``message_hub`` holds no logged
    scalars and the runtime ``epoch``/``iter`` as a resumed Runner sets them.
    The wrappers' accumulation counts are dropped (MMEngine recomputes them
    from ``iter`` on resume), and so are the gradients of an unfinished
    accumulation window (MMEngine loses them too).
    Entries hooks added (``EMAHook``'s ``ema_state_dict``, ...) are kept.

    Returns:
        A dict of plain data and tensors, loadable with ``torch.load(weights_only=True)``.

    A weights-only checkpoint (``save_optimizer=False``, ``ModelCheckpoint(save_weights_only=True)``) gives
    ``meta``, ``state_dict`` and ``message_hub`` only: what MMEngine's ``load_from`` reads.

    Raises:
        CheckpointError: Not a Lightning checkpoint of ``MMLightningModule``, or a malformed one.
    """
    kind = checkpoint_kind(checkpoint)
    if kind != "lightning":
        raise CheckpointError(
            f"to_mmengine converts Lightning checkpoints of MMLightningModule, but this checkpoint's layout is {kind!r}"
        )
    epoch = _completed_epochs(checkpoint)
    try:
        iteration = int(checkpoint["global_step"])
        training_state = checkpoint.get("mm2lightning")
        optimizer = _optimizer(checkpoint, training_state)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"a malformed Lightning checkpoint: {type(err).__name__}: {err}") from err
    converted: dict[str, Any] = {
        "meta": {**checkpoint.get("meta", {}), "epoch": epoch, "iter": iteration, "converted_from": "mm2lightning"},
        "state_dict": model_state_dict(checkpoint),
        "message_hub": {"log_scalars": {}, "runtime_info": {"epoch": epoch, "iter": iteration}, "resumed_keys": {}},
    }
    if optimizer is not None:
        converted["optimizer"] = optimizer
    if optimizer is not None and training_state is not None and training_state.get("param_schedulers"):
        converted["param_schedulers"] = training_state["param_schedulers"]
    converted.update(hook_entries(checkpoint))
    return converted


# What Lightning writes at the top level of a checkpoint (precision plugins add their class name, capitalised).
_LIGHTNING_KEYS = frozenset((
    "epoch", "global_step", "pytorch-lightning_version", "state_dict", "loops", "callbacks", "optimizer_states",
    "lr_schedulers", "hparams_name", "hyper_parameters", "hparams_type", "datamodule_hparams_name",
    "datamodule_hyper_parameters", "meta", "mm2lightning", "message_hub",
))


def hook_entries(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The entries hooks added to a Lightning checkpoint of ``MMLightningModule`` (e.g. EMAHook's
    ``ema_state_dict``): neither Lightning's nor mm2lightning's own."""
    return {k: v for k, v in checkpoint.items() if k not in _LIGHTNING_KEYS and not k[:1].isupper()}


def save_checkpoint_atomic(obj: Any, path: str | os.PathLike[str], *, plain: bool = False) -> Path:
    """``torch.save`` to ``path`` through a temporary file in its directory: ``path`` is whole or untouched.

    Args:
        obj: What to save.
        path: The destination; missing parent directories are created.
        plain: Refuse (writing nothing) when the file would need globals that
            ``torch.load(weights_only=True)`` refuses by default.

    Returns:
        ``path``.

    Raises:
        CheckpointError: ``plain`` and ``obj`` holds objects beyond tensors and plain data.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"  # created with the umask's permissions
    file = open(tmp, "xb")  # noqa: SIM115 - opened before the cleanup below may remove it, closed in it
    try:
        with file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        if plain:  # as a fresh torch.load(weights_only=True) would see it, whatever this process allowlisted
            extra = sorted(pickled_globals(tmp) - torch_default_globals())
            if extra:
                raise CheckpointError(
                    f"{path}: not written, because it would hold {extra}, which torch.load(weights_only=True) refuses"
                )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def convert_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Convert a Lightning checkpoint file of ``MMLightningModule`` into an MMEngine checkpoint file.

    The source is loaded safely (:func:`load_checkpoint_file`), converted with
    :func:`to_mmengine` and written atomically; on any failure ``dst`` is left as it was.

    Args:
        src: The Lightning checkpoint.
        dst: Where to write the MMEngine checkpoint (e.g. ``epoch_3.pth``), not ``src``.

    Returns:
        ``dst``.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        ValueError: ``dst`` is ``src``.
        CheckpointError: ``src`` cannot be loaded safely or is not a Lightning checkpoint of ``MMLightningModule``.
    """
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise FileNotFoundError(f"checkpoint not found: {src}")
    if src.resolve() == dst.resolve() or (dst.exists() and dst.samefile(src)):
        raise ValueError(f"convert_checkpoint would overwrite its source {src}; choose another destination")
    return save_checkpoint_atomic(to_mmengine(load_checkpoint_file(src)), dst, plain=True)


def load_state_dict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], strict: bool = False) -> None:
    """Load ``state_dict`` into ``module`` as ``mmengine.runner.load_state_dict``.

    Model wrappers inside ``module`` are looked through. Unlike ``nn.Module.load_state_dict(strict=False)``,
    tensors whose shape differs are skipped, not an error. Shape mismatches, missing keys (except
    ``num_batches_tracked``) and unexpected keys are logged as a warning on rank 0, or raised.

    Raises:
        RuntimeError: With ``strict``, on any of those mismatches (on every rank).
    """
    from mm2lightning.model.wrappers import is_model_wrapper  # the model package imports this module

    unexpected_keys: list[str] = []
    missing_keys: list[str] = []
    err_msg: list[str] = []
    metadata = getattr(state_dict, "_metadata", None)

    def load(module: nn.Module, local_state_dict: dict[str, torch.Tensor], prefix: str = "") -> None:
        if is_model_wrapper(module):
            module = module.module
        local_metadata = {} if metadata is None else metadata.get(prefix[:-1], {})
        module._load_from_state_dict(
            local_state_dict, prefix, local_metadata, True, missing_keys, unexpected_keys, err_msg
        )
        for name, child in module._modules.items():
            if child is not None:
                child_prefix = prefix + name + "."
                child_state = {k: v for k, v in local_state_dict.items() if k.startswith(child_prefix)}
                load(child, child_state, child_prefix)
        incompatible_keys = _IncompatibleKeys(missing_keys, unexpected_keys)
        for hook in module._load_state_dict_post_hooks.values():
            if hook(module, incompatible_keys) is not None:
                raise RuntimeError(
                    "Hooks registered with ``register_load_state_dict_post_hook`` are not expected to return new "
                    "values; modify incompatible_keys in place."
                )

    load(module, dict(state_dict))
    missing_keys = [key for key in missing_keys if "num_batches_tracked" not in key]
    if unexpected_keys:
        err_msg.append(f"unexpected key in source state_dict: {', '.join(unexpected_keys)}\n")
    if missing_keys:
        err_msg.append(f"missing keys in source state_dict: {', '.join(missing_keys)}\n")
    if not err_msg:
        return
    message = "\n".join(["The model and loaded state dict do not match exactly\n", *err_msg])
    if strict:
        raise RuntimeError(f"{message}\n(strict loading: the state dict must match the model's keys and shapes)")
    if get_rank() == 0:
        print_log(message, logger="current", level=logging.WARNING)
