"""The ``Pretrained`` initialiser: weights from a checkpoint file, as MMEngine's ``PretrainedInit``.

Checkpoints are read with :func:`mm2lightning.runner.checkpoint.load_checkpoint_file`,
which never runs code from the file. MMEngine's checkpoints, mm2lightning's
Lightning checkpoints (the ``model.`` entries of ``state_dict``) and bare state
dicts are accepted.
"""

from __future__ import annotations


import os
from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from mm2lightning.logging import print_log
from mm2lightning.model.weight_init import update_init_info
from mm2lightning.registry import WEIGHT_INITIALIZERS
from mm2lightning.runner.checkpoint import checkpoint_kind, load_checkpoint_file, load_state_dict, model_state_dict

_LIGHTNING_MODEL = "model"


def _load_checkpoint(filename: str | os.PathLike[str], map_location: Any) -> dict[str, Any]:
    return load_checkpoint_file(filename, map_location=map_location)  # URLs and model-zoo names too


def _lightning_metadata(metadata: Any) -> OrderedDict[str, Any]:
    """A Lightning checkpoint's state-dict metadata under the model's own keys (``model.`` removed)."""
    return OrderedDict(
        (key[len(_LIGHTNING_MODEL) + 1 :] if key != _LIGHTNING_MODEL else "", value)
        for key, value in metadata.items()
        if key == _LIGHTNING_MODEL or key.startswith(_LIGHTNING_MODEL + ".")
    )


def _load_pretrained_weights(
    filename: str | os.PathLike[str], prefix: str | None = None, map_location: Any = "cpu"
) -> dict[str, torch.Tensor]:
    """The model weights of a checkpoint file, as MMEngine's ``load_checkpoint`` / ``_load_checkpoint_with_prefix``.

    Without ``prefix``, a leading ``module.`` is removed from the keys (MMEngine's default ``revise_keys``) and
    the state dict's ``_metadata`` is kept. With ``prefix``, only the keys that start with it are kept, without
    it (a ``.`` is appended to ``prefix`` when missing). Lightning checkpoints give their ``model.`` entries.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: ``filename``'s scheme is not MMEngine's, or no key starts with ``prefix``.
        mm2lightning.runner.CheckpointError: The file is refused as unsafe, or is not a checkpoint.
    """
    checkpoint = _load_checkpoint(filename, map_location)
    kind = checkpoint_kind(checkpoint)
    source = checkpoint if kind == "state_dict" else checkpoint["state_dict"]
    if prefix is None:
        weights = OrderedDict(model_state_dict(checkpoint))
        metadata = getattr(source, "_metadata", None)
        if metadata is not None:
            weights._metadata = _lightning_metadata(metadata) if kind == "lightning" else metadata  # type: ignore[attr-defined]
        return weights
    if kind == "lightning":
        source = model_state_dict(checkpoint)
    prefix = prefix if prefix.endswith(".") else prefix + "."
    weights = {key[len(prefix) :]: value for key, value in source.items() if key.startswith(prefix)}
    if not weights:
        raise ValueError(
            f"{prefix} is not in the pretrained model {filename}: no weight name starts with it "
            f"(first names: {sorted(source)[:5]})"
        )
    return weights


@WEIGHT_INITIALIZERS.register_module(name="Pretrained")
class PretrainedInit:
    """``Pretrained``: load a checkpoint's weights into the module (``strict=False``).

    Args:
        checkpoint: The checkpoint file (saved by MMEngine, by mm2lightning/Lightning, or a bare state dict).
        prefix: Load only the weights under this prefix (e.g. ``'backbone.'``), with the prefix removed.
        map_location: As ``torch.load``'s.
    """

    def __init__(self, checkpoint: str | os.PathLike[str], prefix: str | None = None, map_location: Any = "cpu"):
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.map_location = map_location

    def __call__(self, module: nn.Module) -> None:
        """Load the weights into ``module``."""
        if self.prefix is None:
            print_log(f"load model from: {self.checkpoint}", logger="current")
        else:
            print_log(f"load {self.prefix} in model from: {self.checkpoint}", logger="current")
        load_state_dict(module, _load_pretrained_weights(self.checkpoint, self.prefix, self.map_location))
        if hasattr(module, "_params_init_info"):
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self) -> str:
        return f"{self.__class__.__name__}: load from {self.checkpoint}"
