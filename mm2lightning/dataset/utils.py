"""Collate functions and the worker seeding of ``mmengine.dataset``.

``collate_fn=dict(type='pseudo_collate')`` (the default of
:func:`~mm2lightning.dataset.build_dataloader`) or ``dict(type='default_collate')``
in a dataloader config selects them from :data:`~mm2lightning.registry.FUNCTIONS`.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate as torch_default_collate

from mm2lightning.errors import EmptySequenceError
from mm2lightning.model.data_preprocessor import _derives_from
from mm2lightning.registry import FUNCTIONS

COLLATE_FUNCTIONS = FUNCTIONS  # the name MMEngine < 0.7 used; kept for import compatibility


def worker_init_fn(
    worker_id: int, num_workers: int, rank: int, seed: int, disable_subprocess_warning: bool = False
) -> None:
    """Seed ``random``, numpy and torch in a dataloader worker, as MMEngine does.

    The seed is ``num_workers * rank + worker_id + seed``, so every worker of
    every rank differs.

    Args:
        worker_id: The worker's index in ``[0, num_workers)``.
        num_workers: Workers per rank.
        rank: The process rank (0 outside distributed runs).
        seed: The run's seed.
        disable_subprocess_warning: Silence warnings in every worker but the first.
    """
    worker_seed = num_workers * rank + worker_id + seed
    np.random.seed(worker_seed)
    random.seed(worker_seed)
    torch.manual_seed(worker_seed)
    if disable_subprocess_warning and worker_id != 0:
        warnings.simplefilter("ignore")


def _collate(data_batch: Sequence, leaf: Callable[[Sequence], Any], name: str) -> Any:
    """Transpose ``data_batch`` through named tuples, sequences and mappings; ``leaf`` merges the rest."""
    if len(data_batch) == 0:
        raise EmptySequenceError(
            f"{name} needs a non-empty batch (a list of samples), but got {data_batch!r} (list index out of range)"
        )
    item = data_batch[0]
    item_type = type(item)
    if isinstance(item, (str, bytes)) or _derives_from(item, "BaseDataElement"):
        return data_batch
    if isinstance(item, tuple) and hasattr(item, "_fields"):  # a named tuple
        return item_type(*(_collate(samples, leaf, name) for samples in zip(*data_batch)))
    if isinstance(item, Sequence):
        lengths = [len(sample) for sample in data_batch]
        if any(length != lengths[0] for length in lengths):
            raise RuntimeError(
                f"{name}: every sample's sequence must have the same length, but got lengths {lengths} "
                "(each data_itement in list of batch should be of equal size)"
            )
        transposed = [_collate(samples, leaf, name) for samples in zip(*data_batch)]
        if isinstance(item, tuple):
            return transposed  # a list, as torch's default_collate
        try:
            return item_type(transposed)
        except TypeError:  # sequence types such as range cannot be built from a list
            return transposed
    if isinstance(item, Mapping):
        return item_type({key: _collate([sample[key] for sample in data_batch], leaf, name) for key in item})
    return leaf(data_batch)


@FUNCTIONS.register_module()
def pseudo_collate(data_batch: Sequence) -> Any:
    """Turn a list of samples into one batch of the samples' structure, without stacking.

    As ``mmengine.dataset.pseudo_collate``: named tuples, sequences and mappings
    are transposed recursively (a list of dicts becomes a dict of lists; tuples
    become lists, as in torch); every other value (tensor, number, string,
    ``BaseDataElement``) is left as the list of the samples' values.

    Args:
        data_batch: The samples of one batch.

    Returns:
        The batch, structured like one sample.
    """
    return _collate(data_batch, lambda values: values, "pseudo_collate")


@FUNCTIONS.register_module()
def default_collate(data_batch: Sequence) -> Any:
    """Like :func:`pseudo_collate`, but stack the values with torch's ``default_collate``.

    As ``mmengine.dataset.default_collate``: tensors of the same shape are
    stacked, numbers and numpy arrays become tensors, while strings and MMEngine
    ``BaseDataElement``\\ s (recognised by class name, so mmengine's own classes
    work without importing mmengine) stay lists.

    Args:
        data_batch: The samples of one batch.

    Returns:
        The batch, structured like one sample, with its values stacked.
    """
    return _collate(data_batch, torch_default_collate, "default_collate")
