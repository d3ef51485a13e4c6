"""Batch helpers for models, as in ``mmengine.model.utils``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mm2lightning.errors import AssertTypeError, AssertValueError


def stack_batch(
    tensor_list: list[torch.Tensor], pad_size_divisor: int = 1, pad_value: int | float = 0
) -> torch.Tensor:
    """Stack tensors into a batch, padding them right/bottom to a common shape.

    Every dimension except the first (the channel dimension, never padded) is
    padded up to the largest size in the batch, rounded up to a multiple of
    ``pad_size_divisor``. When no padding is needed this is ``torch.stack``.

    Args:
        tensor_list: Tensors with the same number of dimensions, e.g. ``(C, H, W)``.
        pad_size_divisor: Padded sizes are multiples of this. Defaults to 1.
        pad_value: The value written into the padding. Defaults to 0.

    Returns:
        A tensor of shape ``(len(tensor_list), C, *padded_sizes)``.

    Raises:
        TypeError: ``tensor_list`` is not a list (also an ``AssertionError``, as MMEngine).
        ValueError: The list is empty, the tensors' numbers of dimensions differ
            (both also ``AssertionError``, as MMEngine), or ``pad_size_divisor``
            is not a positive integer.
    """
    if not isinstance(tensor_list, list):
        raise AssertTypeError(
            f"stack_batch expects a list of tensors, but got {type(tensor_list).__name__} "
            f"(Expected input type to be list, but got {type(tensor_list)})"
        )
    if not tensor_list:
        raise AssertValueError("`tensor_list` could not be an empty list: stack_batch has nothing to stack")
    ndims = [tensor.dim() for tensor in tensor_list]
    if len(set(ndims)) != 1:
        raise AssertValueError(
            f"stack_batch needs tensors with the same number of dimensions, but got {ndims} "
            f"(Expected the dimensions of all tensors must be the same, but got {ndims})"
        )
    if not isinstance(pad_size_divisor, int) or pad_size_divisor < 1:
        raise ValueError(f"pad_size_divisor must be a positive int, but got {pad_size_divisor!r}")

    shapes = [tuple(tensor.shape[1:]) for tensor in tensor_list]
    target = [-(-max(sizes) // pad_size_divisor) * pad_size_divisor for sizes in zip(*shapes)]
    if all(list(shape) == target for shape in shapes):
        return torch.stack(tensor_list)
    padded = []
    for tensor, shape in zip(tensor_list, shapes):
        # F.pad takes (left, right) pairs starting from the last dimension.
        pad: list[int] = []
        for size, size_to in zip(reversed(shape), reversed(target)):
            pad += [0, size_to - size]
        padded.append(F.pad(tensor, pad, value=pad_value))
    return torch.stack(padded)
