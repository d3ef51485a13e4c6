"""Collectives, as ``mmengine.dist.dist``, on the default process group or a given one.

Tensors travel on the backend's device (:func:`get_comm_device`: CPU for gloo)
and come back on their own; in-place collectives write into the caller's tensor.
Outside an initialised process group each acts as a single process of rank 0.
"""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from collections.abc import Iterable
from itertools import chain, zip_longest
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import Tensor
from torch._utils import _flatten_dense_tensors, _take_tensors, _unflatten_dense_tensors
from torch.distributed import ProcessGroup

from mm2lightning.dist.utils import (
    barrier,
    cast_data_device,
    get_comm_device,
    get_data_device,
    get_default_group,
    get_dist_info,
    get_rank,
    get_world_size,
)

COLLECT_DEVICES = ("cpu", "gpu", "npu")  # the values MMEngine accepts
_REDUCE_OPS = ("sum", "mean", "product", "min", "max", "band", "bor", "bxor")


def _reduce_op(name: str) -> torch_dist.ReduceOp:
    if name.lower() not in _REDUCE_OPS:
        raise ValueError(f"reduce op should be one of {_REDUCE_OPS}, but got {name!r}")
    return getattr(torch_dist.ReduceOp, "SUM" if name.lower() == "mean" else name.upper())


def all_reduce(data: Tensor, op: str = "sum", group: ProcessGroup | None = None) -> None:
    """Reduce ``data`` over ``group`` in place, so that every rank holds the result.

    Args:
        data: The tensor to reduce; overwritten with the result (a ``'mean'`` of
            an integer tensor is truncated back to its dtype, as in MMEngine).
        op: ``'sum'``, ``'mean'``, ``'product'``, ``'min'``, ``'max'``,
            ``'band'``, ``'bor'`` or ``'bxor'`` (any case).
        group: The process group; ``None`` for the default one.
    """
    reduce_op = _reduce_op(op)
    world_size = get_world_size(group)
    if world_size == 1:
        return
    group = get_default_group() if group is None else group
    input_device = get_data_device(data)
    on_device = cast_data_device(data, get_comm_device(group))
    torch_dist.all_reduce(on_device, reduce_op, group)
    if op.lower() == "mean":
        on_device = torch.true_divide(on_device, world_size)
    cast_data_device(on_device, input_device, out=data)


def all_gather(data: Tensor, group: ProcessGroup | None = None) -> list[Tensor]:
    """Return every rank's ``data`` (same shape on all ranks), in rank order; ``[data]`` in a single process."""
    world_size = get_world_size(group)
    if world_size == 1:
        return [data]
    group = get_default_group() if group is None else group
    input_device, backend_device = get_data_device(data), get_comm_device(group)
    gather_list = [torch.empty_like(data, device=backend_device) for _ in range(world_size)]
    torch_dist.all_gather(gather_list, cast_data_device(data, backend_device), group)
    return cast_data_device(gather_list, input_device)  # type: ignore[return-value]


def gather(data: Tensor, dst: int = 0, group: ProcessGroup | None = None) -> list[Tensor | None]:
    """Return every rank's ``data`` in rank order on rank ``dst``, ``[]`` on the others.

    In a single process, ``[data]``.
    """
    world_size = get_world_size(group)
    if world_size == 1:
        return [data]
    group = get_default_group() if group is None else group
    input_device, backend_device = get_data_device(data), get_comm_device(group)
    is_dst = get_rank(group) == dst
    gather_list = [torch.empty_like(data, device=backend_device) for _ in range(world_size)] if is_dst else []
    torch_dist.gather(cast_data_device(data, backend_device), gather_list, dst, group)
    return cast_data_device(gather_list, input_device) if is_dst else gather_list  # type: ignore[return-value]


def broadcast(data: Tensor, src: int = 0, group: ProcessGroup | None = None) -> None:
    """Overwrite ``data`` in place with rank ``src``'s (same number of elements on every rank)."""
    if get_world_size(group) == 1:
        return
    group = get_default_group() if group is None else group
    input_device = get_data_device(data)
    on_device = cast_data_device(data, get_comm_device(group)).contiguous()  # type: ignore[union-attr]
    torch_dist.broadcast(on_device, src, group)
    if get_rank(group) != src:
        cast_data_device(on_device, input_device, out=data)


def sync_random_seed(group: ProcessGroup | None = None) -> int:
    """Return rank 0's ``np.random.randint(2**31)`` on every rank.

    Every rank draws from numpy's global RNG (so its state advances alike on all
    ranks), as MMEngine's. Every rank must call it.
    """
    seed = np.random.randint(2**31)
    if get_world_size(group) == 1:
        return seed
    group = get_default_group() if group is None else group
    random_num = torch.tensor(seed if get_rank(group) == 0 else 0, dtype=torch.int32).to(get_comm_device(group))
    torch_dist.broadcast(random_num, src=0, group=group)
    return random_num.item()


def broadcast_object_list(data: list[Any], src: int = 0, group: ProcessGroup | None = None) -> None:
    """Overwrite the items of ``data`` in place with rank ``src``'s picklable objects (same length on every rank)."""
    if not isinstance(data, list):
        raise TypeError(f"broadcast_object_list needs a list to fill in place, but got {type(data).__name__}")
    if get_world_size(group) > 1:
        torch_dist.broadcast_object_list(data, src, get_default_group() if group is None else group)


def broadcast_object(obj: Any, src: int = 0, group: ProcessGroup | None = None) -> Any:
    """Return rank ``src``'s picklable ``obj`` on every rank (mm2lightning's one-object :func:`broadcast_object_list`).

    Every rank must call it; the value the other ranks pass is ignored.
    """
    holder = [obj]
    broadcast_object_list(holder, src, group)
    return holder[0]


def all_gather_object(data: Any, group: ProcessGroup | None = None) -> list[Any]:
    """Return every rank's picklable ``data``, in rank order; ``[data]`` in a single process."""
    world_size = get_world_size(group)
    if world_size == 1:
        return [data]
    gather_list: list[Any] = [None] * world_size
    torch_dist.all_gather_object(gather_list, data, get_default_group() if group is None else group)
    return gather_list


def gather_object(data: Any, dst: int = 0, group: ProcessGroup | None = None) -> list[Any] | None:
    """Return every rank's picklable ``data`` in rank order on rank ``dst``, ``None`` on the others.

    In a single process, ``[data]``.
    """
    world_size = get_world_size(group)
    if world_size == 1:
        return [data]
    group = get_default_group() if group is None else group
    gather_list = [None] * world_size if get_rank(group) == dst else None
    torch_dist.gather_object(data, gather_list, dst, group)
    return gather_list


def all_reduce_dict(data: dict[str, Tensor], op: str = "sum", group: ProcessGroup | None = None) -> None:
    """Reduce every tensor of ``data`` over ``group`` (one flattened :func:`all_reduce`); values replaced in place."""
    if not isinstance(data, dict):
        raise TypeError(f"all_reduce_dict needs a dict of tensors, but got {type(data).__name__}")
    if get_world_size(group) == 1:
        return
    keys = sorted(data)  # the same order on every rank
    flat = torch.cat([data[k].flatten() for k in keys])
    all_reduce(flat, op=op, group=group)
    for key, value in zip(keys, torch.split(flat, [data[k].numel() for k in keys])):
        data[key] = value.reshape(data[key].shape)


def all_reduce_params(
    params: Iterable[Tensor], coalesce: bool = True, bucket_size_mb: int = -1, op: str = "sum",
    group: ProcessGroup | None = None,
) -> None:
    """Reduce the ``.data`` of parameters or buffers in place over ``group``.

    Args:
        params: The tensors (e.g. ``model.buffers()``).
        coalesce: Reduce them in flat buckets (by dtype, or of ``bucket_size_mb``) rather than one by one.
        bucket_size_mb: Bucket size in MB; ``-1`` for one bucket per tensor type.
        op: As :func:`all_reduce`.
        group: The process group; ``None`` for the default one.
    """
    if get_world_size(group) == 1:
        return
    tensors = [param.data for param in params]
    if not coalesce:
        for tensor in tensors:
            all_reduce(tensor, op=op, group=group)
        return
    if bucket_size_mb > 0:
        buckets: Iterable[list[Tensor]] = _take_tensors(tensors, bucket_size_mb * 1024 * 1024)
    else:
        by_type: OrderedDict[str, list[Tensor]] = OrderedDict()
        for tensor in tensors:
            by_type.setdefault(tensor.type(), []).append(tensor)
        buckets = by_type.values()
    for bucket in buckets:
        flat = _flatten_dense_tensors(bucket)
        all_reduce(flat, op=op, group=group)
        for tensor, synced in zip(bucket, _unflatten_dense_tensors(flat, bucket)):
            tensor.copy_(synced)


def collect_results(results: list, size: int, device: str = "cpu", tmpdir: str | None = None) -> list | None:
    """Gather the result lists of all ranks into dataset order on rank 0.

    Each rank holds the results of its share of a round-robin split (rank ``r``
    got samples ``r, r + world_size, ...``, as ``DistributedSampler`` and
    MMEngine's ``DefaultSampler`` split), so the parts are interleaved
    (``zip_longest`` over ranks), ``None`` entries dropped, and the list cut to
    ``size`` to drop the samples the sampler repeated as padding.

    Args:
        results: This rank's results, one picklable entry per sample.
        size: Length of the whole dataset.
        device: ``'cpu'``, ``'gpu'`` or ``'npu'``, as in MMEngine. The parts
            travel through the process group's own backend in every case.
        tmpdir: A directory every rank can read and write; when set (only with
            ``device='cpu'``), the parts travel through pickle files there
            instead of through the process group.

    Returns:
        The ordered results on rank 0; ``None`` on the other ranks. In a single
        process, ``results[:size]``.
    """
    if device not in COLLECT_DEVICES:
        raise ValueError(f"device must be one of {COLLECT_DEVICES}, but got {device!r}")
    if tmpdir is not None and device != "cpu":
        raise ValueError(f"tmpdir can only be set with device='cpu', but got device={device!r}")
    rank, world_size = get_dist_info()
    if world_size == 1:
        return results[:size]
    parts = all_gather_object(results) if tmpdir is None else _exchange_through_files(results, tmpdir, rank, world_size)
    if rank != 0:
        return None
    ordered = [item for item in chain.from_iterable(zip_longest(*parts)) if item is not None]
    return ordered[:size]


def collect_results_cpu(result_part: list, size: int, tmpdir: str | None = None) -> list | None:
    """:func:`collect_results` with ``device='cpu'``."""
    return collect_results(result_part, size, "cpu", tmpdir)


def collect_results_gpu(result_part: list, size: int) -> list | None:
    """:func:`collect_results` with ``device='gpu'``."""
    return collect_results(result_part, size, "gpu")


def _exchange_through_files(results: list, tmpdir: str, rank: int, world_size: int) -> list[list] | None:
    """Write this rank's part to ``tmpdir``; rank 0 reads and deletes all parts."""
    os.makedirs(tmpdir, exist_ok=True)
    with open(os.path.join(tmpdir, f"part_{rank}.pkl"), "wb") as f:
        pickle.dump(results, f)
    barrier()
    if rank != 0:
        barrier()  # no rank may write its next part before rank 0 has read this one
        return None
    try:
        parts = []
        for i in range(world_size):
            path = os.path.join(tmpdir, f"part_{i}.pkl")
            if not os.path.exists(path):
                raise FileNotFoundError(
                    f"{path} is missing: rank {i} wrote it to its own {tmpdir!r}; "
                    "tmpdir (a metric's collect_dir) must be a directory shared by all ranks"
                )
            with open(path, "rb") as f:
                parts.append(pickle.load(f))
            os.remove(path)
        return parts
    finally:
        barrier()
