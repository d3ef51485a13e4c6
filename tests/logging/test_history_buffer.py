"""HistoryBuffer against mmengine's: the same updates give the same data, statistics, dtypes and errors."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

from mm2lightning.logging import HistoryBuffer

# (value, count) sequences; tensors are fed as tensors to ours and as .item() to mmengine's
SEQUENCES = {
    "ints": [(1, 1), (2, 1), (5, 2), (3, 1)],
    "ints-then-floats": [(1, 1), (2, 1), (2.5, 1), (7, 3)],
    "float32-tensors": [(torch.tensor(v, dtype=torch.float32), 1) for v in (0.1, 2.7, -1.3, 4.4, 0.0, 9.9)],
    "mixed": [(0.5, 1), (torch.tensor(1.25), 2), (3, 1), (torch.tensor([7], dtype=torch.int64), 1), (True, 1)],
    "bool-first": [(True, 1), (torch.tensor(0.3, dtype=torch.float64), 1), (2, 1)],
}


def _plain(value):
    return value.item() if isinstance(value, torch.Tensor) else value


def _feed(ours, ref, sequence):
    for value, count in sequence:
        ours.update(value, count)
        ref.update(_plain(value), count)


def _assert_same(ours, ref):
    for mine, theirs in zip(ours.data, ref.data):
        assert mine.dtype == theirs.dtype
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("name", sorted(SEQUENCES))
@pytest.mark.parametrize("max_length", [1000000, 3])
def test_updates_give_mmengine_data_and_statistics(mmengine, name, max_length):
    from mmengine.logging import HistoryBuffer as MMHistoryBuffer

    ours, ref = HistoryBuffer(max_length=max_length), MMHistoryBuffer(max_length=max_length)
    _feed(ours, ref, SEQUENCES[name])
    _assert_same(ours, ref)
    for window in (None, 1, 2, 3, 100, 0):
        for method in ("mean", "max", "min"):
            assert getattr(ours, method)(window) == getattr(ref, method)(window)
            assert type(getattr(ours, method)(window)) is type(getattr(ref, method)(window))
    assert ours.current() == ref.current() and type(ours.current()) is type(ref.current())
    assert ours.statistics("mean", 2) == ref.statistics("mean", 2)


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_constructor_history_gives_mmengine_dtypes(mmengine, name):
    from mmengine.logging import HistoryBuffer as MMHistoryBuffer

    values, counts = zip(*SEQUENCES[name])
    ours = HistoryBuffer(list(values), list(counts))
    ref = MMHistoryBuffer([_plain(v) for v in values], list(counts))
    _assert_same(ours, ref)
    _feed(ours, ref, [(7, 1), (torch.tensor(0.5), 1)])  # appending after a tensor history
    _assert_same(ours, ref)


def test_reads_between_updates_and_long_histories_match(mmengine):
    """Reads at any point (the pending tensors converted) and the trimming at max_length, over many updates."""
    from mmengine.logging import HistoryBuffer as MMHistoryBuffer

    generator = torch.Generator().manual_seed(0)
    values = torch.randn(3000, generator=generator)
    ours, ref = HistoryBuffer(max_length=700), MMHistoryBuffer(max_length=700)
    for step, value in enumerate(values):
        ours.update(value)
        ref.update(value.item())
        if step % 37 == 0:
            assert ours.mean(10) == ref.mean(10)
    _assert_same(ours, ref)
    assert len(ours.data[0]) == 700


@pytest.mark.skipif(not torch.cuda.is_available(), reason="device tensors are kept unconverted on accelerators only")
def test_device_tensors_stay_on_the_device_until_read_without_a_sync(mmengine):
    from mmengine.logging import HistoryBuffer as MMHistoryBuffer

    ours, ref = HistoryBuffer(max_length=50), MMHistoryBuffer(max_length=50)
    values = [torch.randn((), device="cuda", requires_grad=True) * 2 for _ in range(60)]
    values += [torch.tensor([3], device="cuda"), torch.tensor(0.5, dtype=torch.float64, device="cuda")]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host sync in update raises
    try:
        for value in values:
            ours.update(value)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    pending = ours._pending[0]
    assert isinstance(pending, torch.Tensor) and pending.is_cuda and not pending.requires_grad
    for value in values:
        ref.update(value.item())
    _assert_same(ours, ref)
    assert not ours._pending


def test_cpu_tensors_are_read_at_once_as_item():
    buffer = HistoryBuffer()
    buffer.update(torch.tensor(2.0, requires_grad=True) * 1.5)
    buffer.update(torch.tensor([[7]]))
    assert buffer._pending == [3.0, 7] and buffer.current() == 7


def test_initial_history_longer_than_max_length_warns_and_keeps_the_latest(mmengine):
    from mmengine.logging import HistoryBuffer as MMHistoryBuffer

    with pytest.warns(UserWarning, match="exceeds the max_length"):
        ours = HistoryBuffer([1, 2, 3, 4], [1, 1, 1, 1], max_length=2)
    with pytest.warns(UserWarning, match="exceeds the max_length"):
        ref = MMHistoryBuffer([1, 2, 3, 4], [1, 1, 1, 1], max_length=2)
    _assert_same(ours, ref)


def test_errors_as_mmengine(mmengine):
    from mmengine.logging import HistoryBuffer as MMHistoryBuffer

    for cls in (HistoryBuffer, MMHistoryBuffer):
        with pytest.raises(AssertionError):
            cls([1, 2], [1])
        with pytest.raises(TypeError):
            cls().update("1")
        with pytest.raises(TypeError):
            cls().update(1, count="1")
        with pytest.raises(ValueError, match="empty array"):
            cls().current()
        with pytest.raises(KeyError, match="has not been registered"):
            cls([1], [1]).statistics("median")
        with pytest.raises(AssertionError, match="window size should be int"):
            cls([1], [1]).mean(np.int64(1))
    with pytest.raises(TypeError, match="one-element tensor"):
        HistoryBuffer().update(torch.ones(2))


def test_register_statistics_reads_the_history(mmengine):
    def weighted_last(self, window_size, weight):
        return (self._log_history[-window_size:] * np.array(weight)).sum() / self._count_history[-window_size:].sum()

    registered = HistoryBuffer.register_statistics(weighted_last)
    try:
        buffer = HistoryBuffer()
        for value in (1.0, 2.0, 4.0):
            buffer.update(torch.tensor(value))
        assert buffer.statistics("weighted_last", 2, [2, 1]) == pytest.approx((2 * 2 + 4) / 2)
        with pytest.raises(AssertionError, match="registered twice"):
            HistoryBuffer.register_statistics(weighted_last)
    finally:
        HistoryBuffer._statistics_methods.pop(registered.__name__)


def test_pickle_and_deepcopy_keep_the_history_in_mmengine_layout(mmengine):
    from mmengine.logging import HistoryBuffer as MMHistoryBuffer

    buffer = HistoryBuffer(max_length=5)
    for value in (torch.tensor(1.5), 2, torch.tensor(3.5)):
        buffer.update(value)
    for restored in (pickle.loads(pickle.dumps(buffer)), copy.deepcopy(buffer)):
        _assert_same(restored, buffer)
        assert restored.max_length == 5
    state = buffer.__getstate__()
    assert set(state) == set(MMHistoryBuffer([1], [1]).__getstate__())
    state.pop("statistics_methods")  # mmengine would register ours in its class-wide table
    reference = MMHistoryBuffer.__new__(MMHistoryBuffer)
    reference.__setstate__(state)  # mmengine reads our state
    _assert_same(buffer, reference)


def test_unpickling_an_mmengine_buffer_keeps_our_statistics(mmengine):
    from mmengine.logging import HistoryBuffer as MMHistoryBuffer

    state = MMHistoryBuffer([1.0, 3.0], [1, 1]).__getstate__()
    restored = HistoryBuffer.__new__(HistoryBuffer)
    restored.__setstate__(dict(state))
    assert HistoryBuffer._statistics_methods["mean"] is HistoryBuffer.mean
    assert restored.mean() == 2.0 and restored.max_length == 1000000
