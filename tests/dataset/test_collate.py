"""pseudo_collate and default_collate return exactly what MMEngine's return."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
import torch

from mm2lightning.dataset import COLLATE_FUNCTIONS, default_collate, pseudo_collate, worker_init_fn
from mm2lightning.registry import FUNCTIONS

Pair = namedtuple("Pair", ["x", "y"])

BATCHES = {
    "tuples": [(torch.full((2,), float(i)), i) for i in range(3)],
    "dicts_of_tensors": [dict(inputs=torch.rand(3), label=torch.tensor(i), name=f"s{i}") for i in range(3)],
    "nested_lists": [[torch.tensor([i]), [i, float(i)], dict(k=[i, i + 1])] for i in range(2)],
    "strings": ["a", "bb", "c"],
    "bytes": [b"a", b"b"],
    "ints": [1, 2, 3],
    "floats": [1.5, 2.5],
    "named_tuples": [Pair(torch.ones(2) * i, str(i)) for i in range(3)],
    "numpy": [np.arange(3) + i for i in range(2)],
    "ranges": [range(2), range(2)],
}


def assert_same(a, b, path="batch"):
    """Equal values of the same types, recursively (tensors by value, dtype and shape)."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), path
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for key in a:
            assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


@pytest.mark.parametrize("name", sorted(BATCHES))
@pytest.mark.parametrize("fn", ["pseudo_collate", "default_collate"])
def test_collate_equals_mmengine(mmengine, fn, name):
    import mmengine.dataset

    ours = {"pseudo_collate": pseudo_collate, "default_collate": default_collate}[fn]
    assert_same(ours(BATCHES[name]), getattr(mmengine.dataset, fn)(BATCHES[name]))


def test_pseudo_collate_transposes_without_stacking():
    batch = pseudo_collate(BATCHES["dicts_of_tensors"])
    assert list(batch) == ["inputs", "label", "name"]
    assert isinstance(batch["inputs"], list) and len(batch["inputs"]) == 3
    assert all(a is s["inputs"] for a, s in zip(batch["inputs"], BATCHES["dicts_of_tensors"]))
    assert batch["name"] == ["s0", "s1", "s2"]
    tuples = pseudo_collate(BATCHES["tuples"])
    assert isinstance(tuples, list) and tuples[1] == (0, 1, 2)  # a list per field; leaves stay as zip gives them


def test_default_collate_stacks():
    batch = default_collate(BATCHES["dicts_of_tensors"])
    assert batch["inputs"].shape == (3, 3) and batch["label"].tolist() == [0, 1, 2]
    assert batch["name"] == ["s0", "s1", "s2"]
    pair = default_collate(BATCHES["named_tuples"])
    assert isinstance(pair, Pair) and pair.x.shape == (3, 2) and pair.y == ("0", "1", "2")


def test_data_elements_stay_lists(mmengine):
    from mmengine.dataset import default_collate as mm_default_collate
    from mmengine.structures import BaseDataElement

    samples = [dict(inputs=torch.ones(2), data_samples=BaseDataElement(metainfo=dict(i=i))) for i in range(2)]
    for batch in (default_collate(samples), mm_default_collate(samples)):
        assert batch["inputs"].shape == (2, 2)
        assert batch["data_samples"] == [s["data_samples"] for s in samples]
        assert all(a is s["data_samples"] for a, s in zip(batch["data_samples"], samples))


@pytest.mark.parametrize("fn", [pseudo_collate, default_collate])
def test_collate_errors(fn):
    lengths = r"every sample's sequence must have the same length, but got lengths \[2, 1\]"
    with pytest.raises(RuntimeError, match=rf"{fn.__name__}: {lengths}"):
        fn([[1, 2], [3]])
    with pytest.raises(ValueError, match=rf"{fn.__name__} needs a non-empty batch \(a list of samples\), but got \[\]"):
        fn([])


def test_registered_under_mmengine_names():
    assert FUNCTIONS.get("pseudo_collate") is pseudo_collate
    assert FUNCTIONS.get("default_collate") is default_collate
    assert COLLATE_FUNCTIONS is FUNCTIONS


def test_worker_init_fn_seeds_every_library(mmengine):
    import random

    from mmengine.dataset import worker_init_fn as mm_worker_init_fn

    draws = []
    for init in (worker_init_fn, mm_worker_init_fn):
        init(worker_id=1, num_workers=4, rank=2, seed=10)
        draws.append((random.random(), np.random.rand(), torch.rand(1).item()))
    random.seed(19)
    np.random.seed(19)
    torch.manual_seed(19)  # 4 * 2 + 1 + 10
    assert draws[0] == draws[1] == (random.random(), np.random.rand(), torch.rand(1).item())
