"""Process and device information, as ``mmengine.dist.utils``.

Outside an initialised ``torch.distributed`` process group every helper acts as
a single process of rank 0 in a world of 1, exactly as MMEngine's.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import Tensor
from torch.distributed import ProcessGroup

_F = TypeVar("_F", bound=Callable[..., Any])
_LOCAL_PROCESS_GROUP: ProcessGroup | None = None
# backends whose collectives need tensors on an accelerator: backend -> torch device type
_ACCELERATOR_BACKENDS = {"nccl": "cuda", "smddp": "cuda", "hccl": "npu", "cncl": "mlu", "mccl": "musa"}


def is_distributed() -> bool:
    """Return whether the default ``torch.distributed`` process group is initialised."""
    return torch_dist.is_available() and torch_dist.is_initialized()


def get_default_group() -> ProcessGroup | None:
    """Return the default process group (the one Lightning's strategies create)."""
    return torch_dist.distributed_c10d._get_default_group()


def init_local_group(node_rank: int, num_gpus_per_node: int) -> None:
    """Create the group of the processes on this machine (every rank must call it).

    Args:
        node_rank: Index of this machine.
        num_gpus_per_node: Number of processes on each machine.
    """
    global _LOCAL_PROCESS_GROUP
    if _LOCAL_PROCESS_GROUP is not None:
        raise RuntimeError("init_local_group was already called: the local process group exists")
    ranks = list(range(node_rank * num_gpus_per_node, (node_rank + 1) * num_gpus_per_node))
    _LOCAL_PROCESS_GROUP = torch_dist.new_group(ranks)


def get_local_group() -> ProcessGroup | None:
    """Return the group made by :func:`init_local_group`, or ``None`` outside distributed runs."""
    if not is_distributed():
        return None
    if _LOCAL_PROCESS_GROUP is None:
        raise RuntimeError("Local process group is not created, please use `init_local_group` to set it up.")
    return _LOCAL_PROCESS_GROUP


def get_backend(group: ProcessGroup | None = None) -> str | None:
    """Return the backend of ``group`` (default: the default group), or ``None`` outside distributed runs."""
    if not is_distributed():
        return None
    return torch_dist.get_backend(get_default_group() if group is None else group)


def get_world_size(group: ProcessGroup | None = None) -> int:
    """Return the number of processes in ``group`` (default: the default group), or 1 outside distributed runs."""
    if not is_distributed():
        return 1
    return torch_dist.get_world_size(get_default_group() if group is None else group)


def get_rank(group: ProcessGroup | None = None) -> int:
    """Return this process's rank in ``group`` (default: the default group), or 0 outside distributed runs."""
    if not is_distributed():
        return 0
    return torch_dist.get_rank(get_default_group() if group is None else group)


def _local_value(name: str, env: str, of_group: Callable[[ProcessGroup], int]) -> int:
    if _LOCAL_PROCESS_GROUP is not None:
        return of_group(_LOCAL_PROCESS_GROUP)
    if env in os.environ:
        return int(os.environ[env])
    raise RuntimeError(
        f"{name} needs the local process group or the {env} environment variable (set by Lightning's and "
        "torchrun's launchers), but there is neither: call init_local_group(node_rank, num_gpus_per_node) first"
    )


def get_local_size() -> int:
    """Return the number of processes on this machine, or 1 outside distributed runs.

    Read from the group of :func:`init_local_group` when it exists, else from
    ``LOCAL_WORLD_SIZE`` (set by torchrun).
    """
    if not is_distributed():
        return 1
    return _local_value("get_local_size", "LOCAL_WORLD_SIZE", torch_dist.get_world_size)


def get_local_rank() -> int:
    """Return this process's rank on its machine, or 0 outside distributed runs.

    Read from the group of :func:`init_local_group` when it exists, else from
    ``LOCAL_RANK`` (set by Lightning's launchers and torchrun).
    """
    if not is_distributed():
        return 0
    return _local_value("get_local_rank", "LOCAL_RANK", torch_dist.get_rank)


def get_dist_info(group: ProcessGroup | None = None) -> tuple[int, int]:
    """Return ``(rank, world_size)`` of ``group``; ``(0, 1)`` outside distributed runs."""
    return get_rank(group), get_world_size(group)


def is_main_process(group: ProcessGroup | None = None) -> bool:
    """Return whether this process has rank 0 in ``group`` (default: the default group)."""
    return get_rank(group) == 0


def master_only(func: _F) -> _F:
    """Decorate ``func`` to run on the main process only; other ranks get ``None``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if is_main_process():
            return func(*args, **kwargs)
        return None

    return wrapper  # type: ignore[return-value]


def barrier(group: ProcessGroup | None = None) -> None:
    """Block until every process of ``group`` (default: the default group) gets here; no-op outside."""
    if is_distributed():
        torch_dist.barrier(get_default_group() if group is None else group)


def get_comm_device(group: ProcessGroup | None = None) -> torch.device:
    """Return the device ``group``'s backend communicates on: the current accelerator (NCCL...) or CPU (gloo, MPI)."""
    device_type = _ACCELERATOR_BACKENDS.get(get_backend(group) or "")
    if device_type is None:
        return torch.device("cpu")
    return torch.device(device_type, getattr(torch, device_type).current_device())


def _same_device(items: Iterable[Any]) -> torch.device:
    device = None
    for item in items:
        current = get_data_device(item)
        if device is not None and current != device:
            raise ValueError(f"device type in data should be consistent, but got {current} and {device}")
        device = current
    if device is None:
        raise ValueError("data should not be empty.")
    return device


def get_data_device(data: Tensor | Mapping | Iterable) -> torch.device:
    """Return the device of a tensor, or of every tensor in a (nested) sequence or dict.

    Raises:
        ValueError: The tensors are on different devices, or ``data`` is empty.
        TypeError: ``data`` holds something other than tensors.
    """
    if isinstance(data, Tensor):
        return data.device
    if isinstance(data, Mapping):
        return _same_device(data.values())
    if isinstance(data, Iterable) and not isinstance(data, str):
        return _same_device(data)
    raise TypeError(f"data should be a Tensor, sequence of tensor or dict, but got {data}")


def cast_data_device(
    data: Tensor | Mapping | Iterable, device: torch.device, out: Tensor | Mapping | Iterable | None = None
) -> Tensor | Mapping | Iterable:
    """Return ``data`` with every tensor moved to ``device`` (tensors already there are kept).

    Args:
        data: A tensor, or a (nested) sequence or dict of tensors.
        device: The destination device.
        out: Same structure as ``data``; when given, its tensors are overwritten
            in place with the moved values.

    Returns:
        The moved data, of ``data``'s type.
    """
    if out is not None:
        if type(data) is not type(out):
            raise TypeError(
                f"out should be the same type with data, but got data is {type(data)} and out is {type(out)}"
            )
        if isinstance(out, set):
            raise TypeError("out should not be a set")
    if isinstance(data, Tensor):
        on_device = data if data.device == device else data.to(device)
        if out is not None:
            out.copy_(on_device)  # type: ignore[union-attr]
        return on_device
    if isinstance(data, Mapping):
        outs: Any = out
        if outs is not None and len(data) != len(outs):
            raise ValueError(f"length of data and out should be same, but got {len(data)} and {len(outs)}")
        cast = {k: cast_data_device(v, device, None if outs is None else outs[k]) for k, v in data.items()}
        if not cast:
            raise ValueError("data should not be empty")
        return type(data)(cast)  # type: ignore[call-arg]
    if isinstance(data, Iterable) and not isinstance(data, (str, np.ndarray)):
        pairs = zip(data, out) if out is not None else ((v, None) for v in data)
        items = [cast_data_device(v, device, o) for v, o in pairs]
        if not items:
            raise ValueError("data should not be empty")
        return type(data)(items)  # type: ignore[call-arg]
    raise TypeError(f"data should be a Tensor, list of tensor or dict, but got {data}")
