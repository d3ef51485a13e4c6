"""DefaultSampler and InfiniteSampler yield MMEngine's exact index sequences."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mm2lightning.dataset import DefaultSampler, InfiniteSampler, sampler as ours
from mm2lightning.registry import DATA_SAMPLERS

RANKS = [(0, 1), (0, 2), (1, 2), (2, 3)]


@pytest.fixture
def ref(mmengine):
    import mmengine.dataset.sampler

    return mmengine.dataset.sampler


def _as_rank(monkeypatch, ref_module, rank: int, world_size: int) -> None:
    """Make both implementations see ``rank`` of ``world_size`` processes."""
    monkeypatch.setattr(ours, "get_rank", lambda: rank)
    monkeypatch.setattr(ours, "get_world_size", lambda: world_size)
    if ref_module is not None:
        monkeypatch.setattr(ref_module, "get_dist_info", lambda: (rank, world_size))


@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("round_up", [True, False])
@pytest.mark.parametrize(("rank", "world_size"), RANKS)
def test_default_sampler_equals_mmengine(ref, monkeypatch, size, shuffle, round_up, rank, world_size):
    _as_rank(monkeypatch, ref, rank, world_size)
    dataset = list(range(size))
    mine = DefaultSampler(dataset, shuffle=shuffle, seed=5, round_up=round_up)
    theirs = ref.DefaultSampler(dataset, shuffle=shuffle, seed=5, round_up=round_up)
    for epoch in range(3):
        mine.set_epoch(epoch)
        theirs.set_epoch(epoch)
        assert list(mine) == list(theirs), f"epoch {epoch}"
        assert len(mine) == len(theirs) == len(list(mine))


def test_default_sampler_splits_the_dataset_over_ranks(monkeypatch):
    shares = {}
    for rank in range(3):
        _as_rank(monkeypatch, None, rank, 3)
        sampler = DefaultSampler(list(range(8)), seed=1, round_up=False)
        sampler.set_epoch(4)
        shares[rank] = list(sampler)
    assert sorted(itertools.chain(*shares.values())) == list(range(8))  # each index once, none added
    assert [len(s) for s in shares.values()] == [3, 3, 2]

    padded = []
    for rank in range(3):
        _as_rank(monkeypatch, None, rank, 3)
        padded.append(list(DefaultSampler(list(range(8)), shuffle=False)))
    assert padded == [[0, 3, 6], [1, 4, 7], [2, 5, 0]]  # round_up repeats index 0


def test_default_sampler_shuffles_differently_per_epoch_and_seed():
    sampler = DefaultSampler(list(range(20)), seed=0)
    first = list(sampler)
    assert sorted(first) == list(range(20)) and first != list(range(20))
    assert list(sampler) == first  # the same epoch gives the same order
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert list(DefaultSampler(list(range(20)), seed=1)) != first


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize(("rank", "world_size"), RANKS)
def test_infinite_sampler_equals_mmengine(ref, monkeypatch, shuffle, rank, world_size):
    _as_rank(monkeypatch, ref, rank, world_size)
    mine = InfiniteSampler(list(range(7)), shuffle=shuffle, seed=3)
    theirs = ref.InfiniteSampler(list(range(7)), shuffle=shuffle, seed=3)
    stream = list(itertools.islice(theirs, 50))
    assert list(itertools.islice(mine, 25)) == stream[:25]
    # A second iteration goes on with the stream. (MMEngine's yields nothing once the first
    # iterator was closed, as islice does here; it goes on only while that iterator lives.)
    mine.set_epoch(1)
    assert list(itertools.islice(mine, 25)) == stream[25:]
    assert len(mine) == len(theirs) == 7


def test_infinite_sampler_reshuffles_each_pass_and_continues():
    stream = list(itertools.islice(InfiniteSampler(list(range(5)), seed=0), 20))
    passes = [stream[start : start + 5] for start in range(0, 20, 5)]
    assert all(sorted(p) == list(range(5)) for p in passes)
    assert len({tuple(p) for p in passes}) > 1  # each pass has its own order
    sampler = InfiniteSampler(list(range(5)), seed=0)
    assert list(itertools.islice(sampler, 15)) == stream[:15]
    assert list(itertools.islice(sampler, 5)) == stream[15:]  # a second iteration goes on, not from the start


@pytest.mark.parametrize("cls_name", ["DefaultSampler", "InfiniteSampler"])
def test_seed_none_draws_the_same_seed_as_mmengine(ref, cls_name):
    dataset = list(range(9))
    np.random.seed(123)
    mine = getattr(ours, cls_name)(dataset, seed=None)
    after_mine = np.random.randint(1000)
    np.random.seed(123)
    theirs = getattr(ref, cls_name)(dataset, seed=None)
    after_theirs = np.random.randint(1000)
    assert isinstance(mine.seed, int) and mine.seed == theirs.seed
    assert after_mine == after_theirs  # numpy's global RNG advanced alike
    assert list(itertools.islice(mine, 12)) == list(itertools.islice(theirs, 12))


def test_seed_none_draws_from_numpy():
    np.random.seed(0)
    a = ours.sync_random_seed()
    b = ours.sync_random_seed()
    np.random.seed(0)
    assert a != b and ours.sync_random_seed() == a and 0 <= a < 2**31


def test_empty_dataset():
    sampler = DefaultSampler([], seed=0)
    assert list(sampler) == [] and len(sampler) == 0  # MMEngine divides by zero here
    with pytest.raises(ValueError, match="InfiniteSampler needs a non-empty dataset, but got one of length 0"):
        InfiniteSampler([], seed=0)


def test_samplers_are_registered():
    assert DATA_SAMPLERS.get("DefaultSampler") is DefaultSampler
    assert DATA_SAMPLERS.get("InfiniteSampler") is InfiniteSampler
    built = DATA_SAMPLERS.build(dict(type="DefaultSampler", shuffle=False), default_args=dict(dataset=[1, 2], seed=0))
    assert list(built) == [0, 1]
