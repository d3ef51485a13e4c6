"""Data preprocessors, as ``mmengine.model.BaseDataPreprocessor`` and ``ImgDataPreprocessor``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from typing_extensions import Self

from mm2lightning.model.utils import stack_batch
from mm2lightning.errors import AssertValueError
from mm2lightning.registry import MODELS


def _derives_from(obj: Any, class_name: str) -> bool:
    """Whether a class named ``class_name`` is in ``type(obj).__mro__``.

    Matching by name lets MMEngine's own classes (``mmengine.structures.BaseDataElement``,
    ``mmengine.model.BaseDataPreprocessor``) be handled without importing mmengine.
    """
    return any(cls.__name__ == class_name for cls in type(obj).__mro__)


@MODELS.register_module()
class BaseDataPreprocessor(nn.Module):
    """Moves a batch to the model's device, as ``mmengine.model.BaseDataPreprocessor``.

    Subclasses override :meth:`forward` to add batch-level processing such as
    normalisation, batch resizing, MixUp or CutMix.

    Args:
        non_blocking: Passed to ``Tensor.to`` when moving data to the device.
    """

    def __init__(self, non_blocking: bool | None = False) -> None:
        super().__init__()
        self._non_blocking = non_blocking
        self._device = torch.device("cpu")

    @property
    def device(self) -> torch.device:
        """The device that :meth:`cast_data` moves data to (follows ``to``/``cuda``/``cpu``)."""
        return self._device

    def cast_data(self, data: Any) -> Any:
        """Recursively move the tensors in ``data`` to :attr:`device`.

        Mappings become plain dicts, namedtuples, lists and tuples keep their
        type, tensors and data elements are moved with ``.to``; strings, bytes,
        ``None`` and anything else are returned unchanged.

        Args:
            data: A batch from the dataloader.

        Returns:
            The same structure, with tensors on :attr:`device`.
        """
        kind = type(data)
        if kind is torch.Tensor:  # the common cases first: this runs on every batch
            return data if data.device == self._device else data.to(self._device, non_blocking=self._non_blocking)
        if kind is list:
            return [self.cast_data(item) for item in data]
        if kind is dict or isinstance(data, Mapping):
            return {key: self.cast_data(value) for key, value in data.items()}
        if isinstance(data, (str, bytes)) or data is None:
            return data
        if isinstance(data, tuple) and hasattr(data, "_fields"):  # namedtuple
            return kind(*(self.cast_data(item) for item in data))
        if isinstance(data, Sequence):
            return kind(self.cast_data(item) for item in data)
        if isinstance(data, torch.Tensor) or _derives_from(data, "BaseDataElement"):
            return data.to(self._device, non_blocking=self._non_blocking)
        return data

    def forward(self, data: Any, training: bool = False) -> Any:
        """Move the batch to :attr:`device`.

        Args:
            data: A batch from the dataloader.
            training: ``True`` when called from ``train_step``, ``False`` from
                ``val_step``/``test_step``. Unused here; subclasses use it to
                apply training-time batch augmentation only while training.

        Returns:
            The batch, as :meth:`cast_data` returns it.
        """
        return self.cast_data(data)

    def to(self, *args: Any, **kwargs: Any) -> Self:
        """``nn.Module.to`` that also updates :attr:`device` when a device is given."""
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        if device is not None:
            self._device = torch.device(device)
        return super().to(*args, **kwargs)

    def cuda(self, device: int | torch.device | None = None) -> Self:
        """``nn.Module.cuda`` that also updates :attr:`device` (the current CUDA device by default)."""
        if device is None:
            device = torch.cuda.current_device()
        self._device = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
        return super().cuda(device)

    def cpu(self) -> Self:
        """``nn.Module.cpu`` that also sets :attr:`device` to CPU."""
        self._device = torch.device("cpu")
        return super().cpu()


class ImgDataPreprocessorError(AssertValueError):
    """A misuse of :class:`ImgDataPreprocessor` that MMEngine refuses with an ``assert``.

    A ``ValueError`` that is also the ``AssertionError`` MMEngine raises; each message
    contains MMEngine's phrase for the same misuse.
    """


class MissingInputsError(ValueError, KeyError):
    """``data`` has no ``'inputs'`` key: a ``ValueError`` and, as in MMEngine, a ``KeyError``."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


class ChannelFlipError(ValueError, IndexError):
    """``bgr_to_rgb``/``rgb_to_bgr`` on inputs with too few channels: MMEngine's ``IndexError``."""


class NormalizeShapeError(ValueError, RuntimeError):
    """A ``(N, C, H, W)`` batch whose ``C`` the mean/std cannot broadcast to: torch's ``RuntimeError``,
    which MMEngine lets through."""


@MODELS.register_module()
class ImgDataPreprocessor(BaseDataPreprocessor):
    """Normalises, pads and stacks images, as ``mmengine.model.ImgDataPreprocessor``.

    For ``data['inputs']`` given as a list/tuple of ``(C, H, W)`` tensors (what
    ``pseudo_collate`` yields), each image is channel-flipped if asked, cast to
    float, normalised, then all are padded right/bottom to the batch's largest
    size rounded up to ``pad_size_divisor`` and stacked. For a stacked
    ``(N, C, H, W)`` tensor (``default_collate``), the same steps run on the
    batch and H and W are padded up to the next multiple of ``pad_size_divisor``.

    Args:
        mean: Per-channel mean (3 values) or one value for all channels. ``None``
            (together with ``std``) disables normalisation. With ``bgr_to_rgb``
            these are the R, G, B means.
        std: Per-channel standard deviation, as ``mean``.
        pad_size_divisor: Padded height and width are multiples of this.
        pad_value: The value written into the padding.
        bgr_to_rgb: Flip channels ``[2, 1, 0]`` (BGR input to RGB).
        rgb_to_bgr: Flip channels ``[2, 1, 0]`` (RGB input to BGR).
        non_blocking: Passed to ``Tensor.to`` when moving data to the device.

    Raises:
        ImgDataPreprocessorError: Both flip flags are set, only one of
            ``mean``/``std`` is given, or either has a length other than 1 or 3
            (a ``ValueError`` and, as in MMEngine, an ``AssertionError``).
        ValueError: ``pad_size_divisor`` is not a positive int (MMEngine fails
            only in ``forward``, or pads to a float size).
    """

    def __init__(
        self,
        mean: Sequence[float | int] | None = None,
        std: Sequence[float | int] | None = None,
        pad_size_divisor: int = 1,
        pad_value: float | int = 0,
        bgr_to_rgb: bool = False,
        rgb_to_bgr: bool = False,
        non_blocking: bool | None = False,
    ) -> None:
        super().__init__(non_blocking)
        # Checked in MMEngine's order, each message with MMEngine's phrase.
        if bgr_to_rgb and rgb_to_bgr:
            raise ImgDataPreprocessorError(
                "bgr_to_rgb and rgb_to_bgr cannot both be True: both flip the channels [2, 1, 0]; set one "
                "(`bgr2rgb` and `rgb2bgr` cannot be set to True at the same time)"
            )
        if (mean is None) != (std is None):
            raise ImgDataPreprocessorError(
                f"mean and std must be both None (no normalisation) or both set, "
                f"but got mean={mean!r}, std={std!r} (mean and std should be both None or tuple)"
            )
        self._enable_normalize = mean is not None
        if mean is not None:
            for name, values in (("mean", mean), ("std", std)):
                if len(values) not in (1, 3):
                    raise ImgDataPreprocessorError(
                        f"`{name}` should have 1 or 3 values, to be compatible with RGB or gray image, "
                        f"but got {len(values)} values: {values!r}"
                    )
            self.register_buffer("mean", torch.tensor(mean).view(-1, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(std).view(-1, 1, 1), persistent=False)
        if not isinstance(pad_size_divisor, int) or pad_size_divisor < 1:
            raise ValueError(f"pad_size_divisor must be a positive int, but got {pad_size_divisor!r}")
        self._channel_conversion = bgr_to_rgb or rgb_to_bgr
        self.pad_size_divisor = pad_size_divisor
        self.pad_value = pad_value

    def _convert_and_normalize(self, inputs: torch.Tensor, channel_dim: int) -> torch.Tensor:
        """Flip channels if asked, cast to float, then normalise, as MMEngine does.

        Like MMEngine, a single image (``channel_dim=0``) must be ``(3, H, W)`` for a
        3-value mean, while a batch (``channel_dim=1``) is only broadcast against it.
        """
        if self._channel_conversion:
            try:
                inputs = inputs[:, [2, 1, 0]] if channel_dim else inputs[[2, 1, 0]]
            except IndexError as error:
                raise ChannelFlipError(
                    f"bgr_to_rgb/rgb_to_bgr needs inputs with 3 channels in dimension {channel_dim}, "
                    f"but got a tensor of shape {tuple(inputs.shape)} ({error})"
                ) from error
        inputs = inputs.float()  # after the flip, which is cheaper on the smaller dtype
        if not self._enable_normalize:
            return inputs
        if not channel_dim and self.mean.shape[0] == 3 and (inputs.dim() != 3 or inputs.shape[0] != 3):
            raise ImgDataPreprocessorError(
                "If the mean has 3 values, the input tensor should in shape of (3, H, W), "
                f"but got the tensor with shape {tuple(inputs.shape)}: give (3, H, W) images, "
                "or a 1-value mean/std for gray images"
            )
        try:
            return (inputs - self.mean) / self.std
        except RuntimeError as error:
            raise NormalizeShapeError(
                f"mean/std of {self.mean.shape[0]} value(s) do not fit inputs of shape {tuple(inputs.shape)}: "
                f"a 3-value mean needs 3 (or 1) channels in dimension {channel_dim} ({error})"
            ) from error

    def forward(self, data: dict[str, Any], training: bool = False) -> dict[str, Any]:
        """Move, normalise, pad and stack ``data['inputs']``.

        Args:
            data: A dict with ``'inputs'`` (a list/tuple of ``(C, H, W)`` tensors
                or an ``(N, C, H, W)`` tensor) and usually ``'data_samples'``.
            training: See :meth:`BaseDataPreprocessor.forward`; unused here.

        Returns:
            The dict with ``'inputs'`` replaced by the float ``(N, C, H, W)``
            batch and ``'data_samples'`` defaulting to ``None``.

        Raises:
            TypeError: ``data`` is not a dict, or ``'inputs'`` is neither a
                sequence of tensors nor a tensor.
            MissingInputsError: ``'inputs'`` is missing (a ``KeyError``, as in MMEngine).
            ImgDataPreprocessorError: ``'inputs'`` is a tensor that is not 4-D,
                an empty list, a list of tensors with different numbers of
                dimensions, or a list with an image other than ``(3, H, W)``
                for a 3-value mean (MMEngine's ``AssertionError``).
            ChannelFlipError: The channel flip meets fewer than 3 channels
                (MMEngine's ``IndexError``).
            NormalizeShapeError: A batch's channels do not broadcast against
                mean/std (torch's ``RuntimeError``, as in MMEngine).
        """
        if not isinstance(data, Mapping):
            raise TypeError(
                "ImgDataPreprocessor expects a dict with an 'inputs' key (use pseudo_collate, or "
                f"a dataset that returns dicts), but got {type(data).__name__}"
            )
        if "inputs" not in data:
            raise MissingInputsError(
                f"ImgDataPreprocessor expects a dict with an 'inputs' key, but got keys {list(data)}"
            )
        data = self.cast_data(data)
        inputs = data["inputs"]
        if isinstance(inputs, Sequence) and all(isinstance(item, torch.Tensor) for item in inputs):
            images = [self._convert_and_normalize(image, channel_dim=0) for image in inputs]
            if not images:
                raise ImgDataPreprocessorError(
                    "ImgDataPreprocessor got an empty list of inputs; there is nothing to stack "
                    "(`tensor_list` could not be an empty list)"
                )
            ndims = [image.dim() for image in images]
            if len(set(ndims)) != 1:
                raise ImgDataPreprocessorError(
                    "Expected the dimensions of all tensors must be the same, "
                    f"but got {ndims} (after normalisation) for inputs of shapes "
                    f"{[tuple(image.shape) for image in inputs]}"
                )
            batch_inputs = stack_batch(images, self.pad_size_divisor, self.pad_value)
        elif isinstance(inputs, torch.Tensor):
            if inputs.dim() != 4:
                raise ImgDataPreprocessorError(
                    "The input of `ImgDataPreprocessor` should be a NCHW tensor or a list of tensor, "
                    f"but got a tensor with shape: {tuple(inputs.shape)}"
                )
            inputs = self._convert_and_normalize(inputs, channel_dim=1)
            height, width = inputs.shape[2:]
            pad_h = -height % self.pad_size_divisor
            pad_w = -width % self.pad_size_divisor
            batch_inputs = F.pad(inputs, (0, pad_w, 0, pad_h), "constant", self.pad_value)
        else:
            raise TypeError(
                "ImgDataPreprocessor expects 'inputs' to be a list/tuple of tensors or an (N, C, H, W) "
                f"tensor, but got {type(inputs).__name__} (Output of `cast_data` should be a dict of "
                "list/tuple with inputs and data_samples)"
            )
        data["inputs"] = batch_inputs
        data.setdefault("data_samples", None)
        return data
