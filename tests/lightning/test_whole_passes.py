"""Custom batch samplers run to their end each pass (as MMEngine's loops exhaust them); endless streams not."""

from __future__ import annotations

from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from mm2lightning.dataset import InfiniteSampler
from mm2lightning.lightning.data_resume import WholePasses, whole_passes


class CleansUpAfterItsLastBatch:
    """Yields pairs; after the last one, counts a finished pass (as AspectRatioBatchSampler empties buckets)."""

    def __init__(self, sampler):
        self.sampler = sampler
        self.finished_passes = 0

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == 2:
                yield batch
                batch = []
        self.finished_passes += 1

    def __len__(self):
        return 3


def take_len_batches(loader: DataLoader) -> list:
    """What Lightning does with a pass: ``len(loader)`` batches, the iterator never resumed after the last."""
    iterator = iter(loader)
    return [next(iterator).tolist() for _ in range(len(loader))]


def test_each_pass_of_a_custom_batch_sampler_runs_to_its_end():
    loader = DataLoader(range(6), batch_sampler=CleansUpAfterItsLastBatch(SequentialSampler(range(6))))
    assert take_len_batches(loader) == [[0, 1], [2, 3], [4, 5]]
    assert loader.batch_sampler.finished_passes == 0  # Lightning's way: the code after the last batch never ran
    whole_passes(loader)
    assert isinstance(loader.batch_sampler, WholePasses) and len(loader) == 3
    assert take_len_batches(loader) == [[0, 1], [2, 3], [4, 5]]
    assert loader.batch_sampler.finished_passes == 1  # the wrapped sampler's attribute, through the wrapper


def test_torch_batch_samplers_and_endless_streams_are_left_alone():
    plain = DataLoader(range(6), batch_sampler=BatchSampler(SequentialSampler(range(6)), 2, False))
    endless = DataLoader(range(6), batch_sampler=CleansUpAfterItsLastBatch(InfiniteSampler(range(6), shuffle=False)))
    for loader in (plain, endless):
        before = loader.batch_sampler
        whole_passes(loader)
        assert loader.batch_sampler is before
