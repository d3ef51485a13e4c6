"""Sharded checkpoints (torch's distributed checkpoint folders, as ``strategy='fsdp_mm'`` saves them), read whole.

A sharded checkpoint is a folder: ``.metadata`` (the index), one ``__<rank>_0.distcp`` file of tensor data per
rank, and ``meta.pt`` with everything else of the Lightning checkpoint (loops, callbacks, the ``mm2lightning``
training state). :func:`load_sharded_checkpoint` gathers it into the dict a single-file checkpoint holds, on one
process and without a process group, without running code from the folder: the index is unpickled with an
allowlist of torch's checkpoint metadata classes, non-tensor items and ``meta.pt`` with the weights-only loaders.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint._nested_dict import set_element
from torch.distributed.checkpoint.format_utils import _EmptyStateDictLoadPlanner
from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

META_FILE = "meta.pt"  # Lightning's name for the non-tensor part
_INDEX_FILE = ".metadata"
_INDEX_GLOBALS = {
    "torch.distributed.checkpoint.metadata": {
        "Metadata", "StorageMeta", "TensorStorageMetadata", "BytesStorageMetadata", "ChunkStorageMetadata",
        "TensorProperties", "MetadataIndex", "_MEM_FORMAT_ENCODING",
    },
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.serialization": {"_get_layout"},
    "torch": {"Size", *(name for name in dir(torch) if isinstance(getattr(torch, name, None), torch.dtype))},
    "pathlib": {"PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath"},
    "collections": {"OrderedDict"},
}


class _IndexUnpickler(pickle.Unpickler):
    """Unpickles a checkpoint index, resolving only torch's checkpoint metadata classes."""

    def find_class(self, module: str, name: str) -> Any:
        if name in _INDEX_GLOBALS.get(module, ()):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"the checkpoint index refers to {module}.{name}, which is not checkpoint metadata"
        )


class _SafeReader(FileSystemReader):
    def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
        path = self._get_metadata_path(kwargs.get("rank"))
        with self.fs.create_stream(path, "rb") as stream:
            metadata = _IndexUnpickler(stream).load()
        if getattr(metadata, "storage_meta", None) is not None:
            metadata.storage_meta.load_id = self.load_id
        return metadata


class _SafePlanner(_EmptyStateDictLoadPlanner):
    """Loads every item of the checkpoint; non-tensor items with the weights-only unpickler."""

    def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
        item = torch.load(value, weights_only=True)
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], item)
        else:
            self.state_dict[read_item.dest_index.fqn] = item


def is_sharded_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a sharded checkpoint folder."""
    return (Path(path) / _INDEX_FILE).is_file()


def _optimizer_by_index(state: dict[str, Any]) -> dict[str, Any]:
    """An optimizer state keyed by parameter name (as sharded checkpoints hold it) keyed by index, as
    ``Optimizer.state_dict()`` is: parameters numbered in the order of the parameter groups."""
    groups = state.get("param_groups", [])
    names = [name for group in groups for name in group["params"]]
    index = {name: i for i, name in enumerate(names)}
    return {
        "state": {index[name]: value for name, value in state.get("state", {}).items() if name in index},
        "param_groups": [{**group, "params": [index[n] for n in group["params"]]} for group in groups],
    }


def sharded_checkpoint_meta(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bool]:
    """The non-tensor part of a sharded checkpoint (``meta.pt``: loops, callbacks, training state) and whether it
    holds optimizer states, read without the tensors (what a resume checks before the strategy loads the shards).
    """
    from mm2lightning.runner.safe_unpickler import restricted_load

    path = Path(path)
    index = _SafeReader(path).read_metadata()
    has_optimizer = any(key.startswith("optimizer_") for key in index.state_dict_metadata)
    meta_file = path / META_FILE
    return (restricted_load(meta_file, map_location="cpu") if meta_file.is_file() else {}), has_optimizer


def load_sharded_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Gather a sharded checkpoint folder into one checkpoint dict (on the CPU).

    Returns:
        Lightning's checkpoint layout: ``state_dict`` (full tensors), ``optimizer_states`` (index-keyed, as
        ``Optimizer.state_dict()``; absent for a weights-only checkpoint) and the rest from ``meta.pt``.
    """
    from mm2lightning.runner.safe_unpickler import restricted_load

    path = Path(path)
    _SafeReader(path).read_metadata()  # a refused index fails here, not wrapped in torch's checkpoint errors
    state: dict[str, Any] = {}
    try:
        _load_state_dict(state, storage_reader=_SafeReader(path), planner=_SafePlanner(), no_dist=True)
    except CheckpointException as error:  # a BaseException wrapping what failed: raise that
        raise next(iter(error.failures.values()))[0] from None
    meta_file = path / META_FILE
    checkpoint = restricted_load(meta_file, map_location="cpu") if meta_file.is_file() else {}
    checkpoint["state_dict"] = state.pop("state_dict", {})
    optimizers = sorted((k for k in state if k.startswith("optimizer_")), key=lambda k: int(k.split("_")[1]))
    if optimizers:
        checkpoint["optimizer_states"] = [_optimizer_by_index(state.pop(k)) for k in optimizers]
    return checkpoint
