"""MMEngine's published checkpoints: chosen keys only, in MMEngine's layout, named after their content's hash."""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

from mm2lightning.runner.checkpoint import checkpoint_kind, load_checkpoint_file, save_checkpoint_atomic, to_mmengine

log = logging.getLogger(__name__)


def check_published_keys(keys: str | Sequence[str] | None) -> list[str] | None:
    """``published_keys`` as MMEngine's ``CheckpointHook`` takes them: a name, names without repeats, or ``None``."""
    if keys is None:
        return None
    if isinstance(keys, str):
        return [keys]
    if not isinstance(keys, (list, tuple)) or not all(isinstance(key, str) for key in keys):
        raise TypeError(f'"published_keys" should be a str or a sequence of str or None, but got {type(keys)}')
    if len(keys) != len(set(keys)):
        raise ValueError('Find duplicate elements in "published_keys".')  # MMEngine asserts it
    return list(keys)


def publish_checkpoint(path: str | os.PathLike, keys: Sequence[str]) -> Path:
    """Write ``<path without suffix>-<first 8 hex digits of its sha256>.pth``: the checkpoint in MMEngine's layout
    (see :func:`~mm2lightning.runner.checkpoint.to_mmengine`) with only ``keys``, as MMEngine's ``CheckpointHook``
    publishes at the end of training. Returns the new file's path."""
    checkpoint = load_checkpoint_file(path)
    if checkpoint_kind(checkpoint) == "lightning":
        checkpoint = to_mmengine(checkpoint)
    removed = [key for key in checkpoint if key not in keys]
    checkpoint = {key: value for key, value in checkpoint.items() if key in keys}
    if removed:
        log.info("Key %s will be removed because they are not found in published_keys.", removed)
    sha = hashlib.sha256(pickle.dumps(checkpoint)).hexdigest()
    final = Path(path).with_name(f"{Path(path).stem}-{sha[:8]}.pth")
    save_checkpoint_atomic(checkpoint, final)
    log.info("The checkpoint (%s) is published to %s.", path, final)
    return final
