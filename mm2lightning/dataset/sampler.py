"""Samplers, as ``mmengine.dataset.DefaultSampler`` and ``InfiniteSampler``.

Both split the dataset round-robin over the ranks of ``torch.distributed`` (rank
``r`` of ``w`` gets indices ``r, r + w, ...``) and act as a single process of rank 0
when it is not initialised. They yield exactly MMEngine's index sequences.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sized

import torch
from torch.utils.data import Sampler

from mm2lightning.dist import get_rank, get_world_size, sync_random_seed
from mm2lightning.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class DefaultSampler(Sampler[int]):
    """Yields this rank's share of the dataset indices, optionally shuffled per epoch.

    Args:
        dataset: The dataset; only its length is used.
        shuffle: Shuffle with ``torch.randperm`` seeded by ``seed + epoch``.
        seed: The shuffle seed, the same on every rank. ``None`` draws one with
            :func:`sync_random_seed`.
        round_up: Repeat indices from the start so that every rank gets
            ``ceil(len(dataset) / world_size)`` of them; otherwise the ranks
            share exactly ``len(dataset)`` indices and may get one fewer.
    """

    def __init__(self, dataset: Sized, shuffle: bool = True, seed: int | None = None, round_up: bool = True) -> None:
        self.rank = get_rank()
        self.world_size = get_world_size()
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0
        self.round_up = round_up
        if round_up:
            self.num_samples = math.ceil(len(dataset) / self.world_size)
            self.total_size = self.num_samples * self.world_size
        else:
            self.num_samples = math.ceil((len(dataset) - self.rank) / self.world_size)
            self.total_size = len(dataset)

    def __iter__(self) -> Iterator[int]:
        size = len(self.dataset)
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            indices = torch.randperm(size, generator=generator).tolist()
        else:
            indices = list(range(size))
        if self.round_up:  # an empty dataset stays empty (MMEngine divides by zero)
            indices = list(itertools.islice(itertools.cycle(indices), self.total_size))
        return iter(indices[self.rank : self.total_size : self.world_size])

    def __len__(self) -> int:
        """The number of indices this rank yields per epoch."""
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch, which selects the shuffle order of the next iteration."""
        self.epoch = epoch


@DATA_SAMPLERS.register_module()
class InfiniteSampler(Sampler[int]):
    """Yields this rank's share of an endless stream of (shuffled) dataset passes.

    The stream is created once: iterating the sampler again continues where the
    last iteration stopped, so a loop that restarts its dataloader (as Lightning
    does each epoch) gets new indices. (MMEngine's stream also goes on while the
    first iterator lives, but ends for good once an iterator is closed, e.g.
    garbage-collected after a partial read.)

    Args:
        dataset: The dataset; only its length is used. It must not be empty.
        shuffle: Shuffle each pass with ``torch.randperm`` from one generator
            seeded by ``seed``.
        seed: The shuffle seed, the same on every rank. ``None`` draws one with
            :func:`sync_random_seed`.
    """

    def __init__(self, dataset: Sized, shuffle: bool = True, seed: int | None = None) -> None:
        if len(dataset) == 0:
            raise ValueError("InfiniteSampler needs a non-empty dataset, but got one of length 0")
        self.rank = get_rank()
        self.world_size = get_world_size()
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self.size = len(dataset)
        self.indices = itertools.islice(self._infinite_indices(), self.rank, None, self.world_size)

    def _infinite_indices(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        while True:
            if self.shuffle:
                yield from torch.randperm(self.size, generator=generator).tolist()
            else:
                yield from range(self.size)

    def __iter__(self) -> Iterator[int]:
        yield from self.indices

    def __len__(self) -> int:
        """The length of the dataset (the sampler itself never ends)."""
        return self.size

    def set_epoch(self, epoch: int) -> None:
        """Do nothing: the stream does not depend on epochs (as in MMEngine)."""
