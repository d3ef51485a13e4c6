"""The few ``torch.distributed`` helpers metrics need, as in ``mmengine.dist``.

Every helper also works when ``torch.distributed`` is not initialised: it then
acts as a single process of rank 0.
"""

from __future__ import annotations

import os
import pickle
from itertools import chain, zip_longest
from typing import Any

import torch.distributed as dist

COLLECT_DEVICES = ("cpu", "gpu", "npu")  # the values MMEngine accepts


def _is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Return the rank of this process, or 0 outside distributed runs."""
    return dist.get_rank() if _is_distributed() else 0


def get_world_size() -> int:
    """Return the number of processes, or 1 outside distributed runs."""
    return dist.get_world_size() if _is_distributed() else 1


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Return rank ``src``'s ``obj`` on every rank (``obj`` must be picklable).

    Every rank must call it; the value other ranks pass is ignored.
    """
    if get_world_size() == 1:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


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
    rank, world_size = get_rank(), get_world_size()
    if world_size == 1:
        return results[:size]
    if tmpdir is None:
        parts = [None] * world_size
        dist.all_gather_object(parts, results)
    else:
        parts = _exchange_through_files(results, tmpdir, rank, world_size)
    if rank != 0:
        return None
    ordered = [item for item in chain.from_iterable(zip_longest(*parts)) if item is not None]
    return ordered[:size]


def _exchange_through_files(results: list, tmpdir: str, rank: int, world_size: int) -> list[list] | None:
    """Write this rank's part to ``tmpdir``; rank 0 reads and deletes all parts."""
    os.makedirs(tmpdir, exist_ok=True)
    with open(os.path.join(tmpdir, f"part_{rank}.pkl"), "wb") as f:
        pickle.dump(results, f)
    dist.barrier()
    if rank != 0:
        dist.barrier()  # no rank may write its next part before rank 0 has read this one
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
        dist.barrier()
