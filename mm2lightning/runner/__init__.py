"""MMEngine's ``mmengine.runner`` names: the ``Runner`` facade, checkpoint interop and hook priorities.

``Runner`` builds a ``lightning.Trainer`` underneath, so importing it imports Lightning (on first use); the
checkpoint functions are plain PyTorch.
"""

from typing import Any

from mm2lightning.runner.checkpoint import (
    CheckpointError,
    checkpoint_kind,
    convert_checkpoint,
    load_checkpoint_file,
    model_state_dict,
    to_mmengine,
)
from mm2lightning.runner.log_processor import LogProcessor
from mm2lightning.runner.priority import Priority, get_priority

__all__ = [
    "CheckpointError",
    "LogProcessor",
    "Priority",
    "Runner",
    "checkpoint_kind",
    "convert_checkpoint",
    "get_priority",
    "load_checkpoint_file",
    "model_state_dict",
    "to_mmengine",
]


def __getattr__(name: str) -> Any:
    if name == "Runner":
        from mm2lightning.lightning.runner import Runner

        return Runner
    raise AttributeError(f"module 'mm2lightning.runner' has no attribute {name!r}")
