"""``torch.distributed`` helpers with ``mmengine.dist``'s names, signatures and results.

They work in the process group Lightning's strategies create (``group=None``
means the default group, the one ``torch.distributed`` and Lightning use) and,
outside one, as a single process of rank 0, exactly as MMEngine's:

- information: :func:`get_dist_info`, :func:`get_rank`, :func:`get_world_size`,
  :func:`get_local_rank`, :func:`get_local_size`, :func:`get_backend`,
  :func:`is_distributed`, :func:`is_main_process`, :func:`master_only`,
  :func:`barrier`, :func:`get_default_group`, :func:`init_local_group`,
  :func:`get_local_group`;
- tensors: :func:`all_reduce`, :func:`all_reduce_dict`, :func:`all_reduce_params`,
  :func:`all_gather`, :func:`gather`, :func:`broadcast`, :func:`sync_random_seed`;
- picklable objects: :func:`all_gather_object`, :func:`gather_object`,
  :func:`broadcast_object_list`, :func:`broadcast_object` (mm2lightning's own),
  :func:`collect_results` (with ``collect_results_cpu`` / ``collect_results_gpu``);
- devices: :func:`get_data_device`, :func:`cast_data_device`, :func:`get_comm_device`.

Lightning starts the processes and the process group, so MMEngine's
``init_dist`` and ``infer_launcher`` have no counterpart here.

Example:
    >>> from mm2lightning.dist import all_reduce, get_dist_info, master_only
    >>> rank, world_size = get_dist_info()
"""

from mm2lightning.dist.dist import (
    COLLECT_DEVICES,
    all_gather,
    all_gather_object,
    all_reduce,
    all_reduce_dict,
    all_reduce_params,
    broadcast,
    broadcast_object,
    broadcast_object_list,
    collect_results,
    collect_results_cpu,
    collect_results_gpu,
    gather,
    gather_object,
    sync_random_seed,
)
from mm2lightning.dist.utils import (
    barrier,
    cast_data_device,
    get_backend,
    get_comm_device,
    get_data_device,
    get_default_group,
    get_dist_info,
    get_local_group,
    get_local_rank,
    get_local_size,
    get_rank,
    get_world_size,
    init_local_group,
    is_distributed,
    is_main_process,
    master_only,
)

__all__ = [
    "COLLECT_DEVICES",
    "all_gather",
    "all_gather_object",
    "all_reduce",
    "all_reduce_dict",
    "all_reduce_params",
    "barrier",
    "broadcast",
    "broadcast_object",
    "broadcast_object_list",
    "cast_data_device",
    "collect_results",
    "collect_results_cpu",
    "collect_results_gpu",
    "gather",
    "gather_object",
    "get_backend",
    "get_comm_device",
    "get_data_device",
    "get_default_group",
    "get_dist_info",
    "get_local_group",
    "get_local_rank",
    "get_local_size",
    "get_rank",
    "get_world_size",
    "init_local_group",
    "is_distributed",
    "is_main_process",
    "master_only",
    "sync_random_seed",
]
