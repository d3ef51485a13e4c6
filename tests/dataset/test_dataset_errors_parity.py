"""Each misuse MMEngine's ``dataset`` (collate functions) refuses: ours raises an instance of its type with its phrase.

Every case runs the same inputs on mmengine and on mm2lightning (see docs/errors.md).
"""

from __future__ import annotations

import pytest
from error_parity import assert_same_error
import torch

pytest.importorskip("mmengine")
import mmengine.dataset  # noqa: E402

import mm2lightning.dataset as our_dataset  # noqa: E402

CASES = [
    ("pseudo_empty", lambda o: o.pseudo_collate([]), IndexError, "list index out of range"),
    ("default_empty", lambda o: o.default_collate([]), IndexError, "list index out of range"),
    ("pseudo_unequal_lists", lambda o: o.pseudo_collate([[1, 2], [1]]), RuntimeError,
     "each data_itement in list of batch should be of equal size"),
    ("pseudo_unequal_tuples", lambda o: o.pseudo_collate([(1, 2), (1,)]), RuntimeError,
     "each data_itement in list of batch should be of equal size"),
    ("default_unequal_lists", lambda o: o.default_collate([[1, 2], [1]]), RuntimeError,
     "each data_itement in list of batch should be of equal size"),
    ("default_unequal_nested", lambda o: o.default_collate([dict(a=(1, 2)), dict(a=(1,))]), RuntimeError,
     "each data_itement in list of batch should be of equal size"),
    ("default_unequal_tensors", lambda o: o.default_collate([torch.zeros(2), torch.zeros(3)]), RuntimeError,
     "stack expects each tensor to be equal size"),
]


@pytest.mark.parametrize(("fn", "mm_type", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_same_error_as_mmengine(fn, mm_type, phrase):
    assert_same_error(fn, mmengine.dataset, our_dataset, mm_type, phrase)


def test_empty_batch_is_still_a_value_error():
    with pytest.raises(ValueError, match="needs a non-empty batch"):
        our_dataset.pseudo_collate([])
