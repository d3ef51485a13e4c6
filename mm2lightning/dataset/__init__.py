"""Samplers, collate functions and dataloader building, as ``mmengine.dataset`` and ``Runner.build_dataloader``.

Importing this package registers ``DefaultSampler`` and ``InfiniteSampler`` in
:data:`~mm2lightning.registry.DATA_SAMPLERS` and ``pseudo_collate`` and
``default_collate`` in :data:`~mm2lightning.registry.FUNCTIONS`. It does not
import Lightning.

Example:
    >>> from mm2lightning.dataset import build_dataloader
    >>> loader = build_dataloader(
    ...     dict(dataset=dict(type='MyDataset'), sampler=dict(type='DefaultSampler', shuffle=True),
    ...          batch_size=4, collate_fn=dict(type='default_collate')),
    ...     seed=0)
"""

from mm2lightning.dataset.builder import build_dataloader
from mm2lightning.dataset.sampler import DefaultSampler, InfiniteSampler, sync_random_seed
from mm2lightning.dataset.utils import COLLATE_FUNCTIONS, default_collate, pseudo_collate, worker_init_fn

__all__ = [
    "COLLATE_FUNCTIONS",
    "DefaultSampler",
    "InfiniteSampler",
    "build_dataloader",
    "default_collate",
    "pseudo_collate",
    "sync_random_seed",
    "worker_init_fn",
]
