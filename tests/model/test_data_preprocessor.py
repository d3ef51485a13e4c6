"""BaseDataPreprocessor, ImgDataPreprocessor and stack_batch: parity with mmengine and errors."""

from __future__ import annotations

import copy
from collections import OrderedDict, namedtuple

import numpy as np
import pytest
import torch

from mm2lightning.model import BaseDataPreprocessor, ImgDataPreprocessor, stack_batch
from mm2lightning.registry import MODELS

Pair = namedtuple("Pair", ["img", "meta"])


def _images(shapes, seed=0, dtype=torch.uint8):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, shape, generator=gen).to(dtype) for shape in shapes]


def assert_same(ours, ref):
    """Same container types and structure, tensors equal (exactly) with the same dtype and device."""
    assert type(ours) is type(ref), (type(ours), type(ref))
    if isinstance(ref, torch.Tensor):
        assert ours.dtype == ref.dtype and ours.device == ref.device
        torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    elif isinstance(ref, dict):
        assert list(ours) == list(ref)
        for key in ref:
            assert_same(ours[key], ref[key])
    elif isinstance(ref, (list, tuple)):
        assert len(ours) == len(ref)
        for a, b in zip(ours, ref):
            assert_same(a, b)
    elif isinstance(ref, np.ndarray):
        assert ours is ref
    elif hasattr(ref, "all_items"):  # mmengine data element
        assert ours.keys() == ref.keys()
        for key in ref.keys():
            assert_same(ours.get(key), ref.get(key))
    else:
        assert ours == ref


# --------------------------------------------------------------------------------------------------
# ImgDataPreprocessor


IMG_CONFIGS = [
    dict(),
    dict(mean=[127.5, 120.0, 100.0], std=[58.0, 57.0, 60.0], bgr_to_rgb=True, pad_size_divisor=4, pad_value=-1),
    dict(mean=[127.5], std=[127.5], pad_size_divisor=8, pad_value=2.5),
    dict(mean=[0, 10, 20], std=[1, 2, 3], rgb_to_bgr=True),  # int mean/std: int64 buffers, as mmengine
    dict(pad_size_divisor=5, pad_value=7, bgr_to_rgb=True),
]


@pytest.mark.parametrize("cfg", IMG_CONFIGS)
@pytest.mark.parametrize("container", [list, tuple])
def test_img_list_matches_mmengine(mmengine, cfg, container):
    from mmengine.model import ImgDataPreprocessor as MMImg

    images = container(_images([(3, 5, 7), (3, 8, 4), (3, 6, 6)]))
    samples = [dict(id=i) for i in range(3)]
    ours = ImgDataPreprocessor(**cfg)(dict(inputs=images, data_samples=samples, extra="x"), True)
    ref = MMImg(**cfg)(dict(inputs=images, data_samples=samples, extra="x"), True)
    assert_same(ours, ref)
    assert ours["inputs"].dtype == torch.float32


def test_img_gray_list_matches_mmengine(mmengine):
    from mmengine.model import ImgDataPreprocessor as MMImg

    cfg = dict(mean=[127.5], std=[127.5], pad_size_divisor=4, pad_value=-1)
    images = _images([(1, 3, 5), (1, 2, 2)], seed=3)
    ours = ImgDataPreprocessor(**cfg)(dict(inputs=images))
    ref = MMImg(**cfg)(dict(inputs=images))
    assert_same(ours, ref)
    assert ours["inputs"].shape == (2, 1, 4, 8)
    assert ours["data_samples"] is None
    assert (ours["inputs"][1, :, 2:, :] == -1).all() and (ours["inputs"][1, :, :, 2:] == -1).all()


@pytest.mark.parametrize("cfg", IMG_CONFIGS)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float64])
def test_img_stacked_tensor_matches_mmengine(mmengine, cfg, dtype):
    from mmengine.model import ImgDataPreprocessor as MMImg

    batch = torch.stack(_images([(3, 5, 7)] * 2, seed=1)).to(dtype)
    ours = ImgDataPreprocessor(**cfg)(dict(inputs=batch, data_samples=[1, 2]))
    ref = MMImg(**cfg)(dict(inputs=batch, data_samples=[1, 2]))
    assert_same(ours, ref)


# Every input form MMEngine's ImgDataPreprocessor accepts or refuses, under every option: the same output,
# or an instance of MMEngine's exception type whose message contains MMEngine's phrase.
PARITY_CONFIGS = {
    "plain": dict(),
    "mean3": dict(mean=[127.5, 120.0, 100.0], std=[58.0, 57.0, 60.0]),
    "mean1": dict(mean=[127.5], std=[127.5]),
    "mean1_std3": dict(mean=[10.0], std=[1.0, 2.0, 3.0]),
    "mean3_int_bgr_to_rgb": dict(mean=[0, 10, 20], std=[1, 2, 3], bgr_to_rgb=True),
    "rgb_to_bgr": dict(rgb_to_bgr=True),
    "mean1_bgr_to_rgb": dict(mean=[127.5], std=[127.5], bgr_to_rgb=True),
    "mean3_pad4": dict(mean=[127.5, 120.0, 100.0], std=[58.0, 57.0, 60.0], pad_size_divisor=4, pad_value=-1),
    "mean1_pad8": dict(mean=[127.5], std=[127.5], pad_size_divisor=8, pad_value=2.5),
    "pad5_int_value": dict(pad_size_divisor=5, pad_value=7),
    "non_blocking": dict(mean=[127.5, 120.0, 100.0], std=[58.0, 57.0, 60.0], non_blocking=True),
}
PARITY_INPUTS = {
    "gray_2d_one": lambda: _images([(5, 7)]),
    "gray_2d_same_h": lambda: _images([(5, 7), (5, 4)]),
    "gray_2d_sizes": lambda: _images([(5, 7), (6, 4)]),
    "gray_1hw_sizes": lambda: _images([(1, 5, 7), (1, 6, 4)]),
    "rgb_sizes": lambda: _images([(3, 5, 7), (3, 8, 4), (3, 6, 6)]),
    "rgb_tuple": lambda: tuple(_images([(3, 5, 7), (3, 5, 7)])),
    "rgb_float64": lambda: _images([(3, 5, 7), (3, 3, 9)], dtype=torch.float64),
    "four_channels": lambda: _images([(4, 5, 7), (4, 5, 6)]),
    "two_channels": lambda: _images([(2, 5, 7)]),
    "rgb_and_gray": lambda: _images([(3, 5, 7), (1, 5, 7)]),
    "2d_and_1hw": lambda: _images([(5, 7), (1, 5, 7)]),
    "empty_list": lambda: [],
    "not_tensors": lambda: [*_images([(3, 5, 7)]), 1],
    "batch_rgb": lambda: torch.stack(_images([(3, 5, 7)] * 2)),
    "batch_rgb_float64": lambda: torch.stack(_images([(3, 5, 7)] * 2, dtype=torch.float64)),
    "batch_gray": lambda: torch.stack(_images([(1, 5, 7)] * 2)),
    "batch_two_channels": lambda: torch.stack(_images([(2, 5, 7)] * 2)),
    "batch_four_channels": lambda: torch.stack(_images([(4, 6, 6)] * 2)),
    "tensor_3d": lambda: _images([(3, 5, 7)])[0],
    "tensor_2d": lambda: _images([(5, 7)])[0],
    "tensor_5d": lambda: _images([(1, 2, 3, 5, 7)])[0],
    "ndarray": lambda: np.zeros((1, 3, 4, 4)),
}


def mmengine_phrase(error: BaseException) -> str:
    """MMEngine's message up to its details (shapes print as ``torch.Size`` there, tuples here)."""
    return str(error).split(", but got")[0].split(" but got")[0]


def assert_raises_like(call, ref_error: BaseException) -> None:
    with pytest.raises(type(ref_error)) as error:
        call()
    assert mmengine_phrase(ref_error) in str(error.value), (str(ref_error), str(error.value))


@pytest.mark.parametrize("inputs", list(PARITY_INPUTS))
@pytest.mark.parametrize("cfg", list(PARITY_CONFIGS))
def test_img_every_input_form_and_option_matches_mmengine(mmengine, cfg, inputs):
    from mmengine.model import ImgDataPreprocessor as MMImg

    cfg = PARITY_CONFIGS[cfg]
    data = dict(inputs=PARITY_INPUTS[inputs](), data_samples=[dict(id=0)])
    snapshot = copy.deepcopy(data)
    try:
        ref = MMImg(**cfg)(copy.deepcopy(data))
    except Exception as ref_error:  # noqa: BLE001 - whatever MMEngine raises, ours must raise too
        assert_raises_like(lambda: ImgDataPreprocessor(**cfg)(data), ref_error)
        return
    ours = ImgDataPreprocessor(**cfg)(data)
    assert_same(ours, ref)
    assert torch.equal(ours["inputs"], ref["inputs"])
    assert ours["inputs"].dtype == torch.float32
    assert_same(data["data_samples"], snapshot["data_samples"])


@pytest.mark.parametrize(
    "cfg",
    [
        dict(bgr_to_rgb=True, rgb_to_bgr=True),
        dict(mean=[1.0, 2.0, 3.0]),
        dict(std=[1.0]),
        dict(mean=[1.0, 2.0], std=[1.0]),
        dict(mean=[1.0], std=[1.0, 2.0, 3.0, 4.0]),
        dict(mean=[], std=[]),
        dict(mean=[1.0, 2.0], std=[1.0, 2.0], bgr_to_rgb=True, rgb_to_bgr=True),  # the flip is checked first
        dict(mean=0.5, std=0.5),  # not sized: TypeError in both
    ],
)
def test_img_constructor_refuses_what_mmengine_refuses(mmengine, cfg):
    from mmengine.model import ImgDataPreprocessor as MMImg

    with pytest.raises(Exception) as ref_error:  # noqa: PT011 - the type is what is compared
        MMImg(**cfg)
    assert_raises_like(lambda: ImgDataPreprocessor(**cfg), ref_error.value)
    if isinstance(ref_error.value, AssertionError):
        with pytest.raises(ValueError):  # our natural type too
            ImgDataPreprocessor(**cfg)


def test_img_missing_inputs_is_a_key_error_as_in_mmengine(mmengine):
    from mmengine.model import ImgDataPreprocessor as MMImg

    with pytest.raises(KeyError) as ref_error:
        MMImg()(dict(img=[torch.zeros(3, 2, 2)]))
    with pytest.raises(KeyError) as error:
        ImgDataPreprocessor()(dict(img=[torch.zeros(3, 2, 2)]))
    assert str(ref_error.value) in str(error.value) and isinstance(error.value, ValueError)
    assert str(error.value).startswith("ImgDataPreprocessor expects a dict with an 'inputs' key")


def test_img_buffers_are_non_persistent_and_absent_without_normalisation():
    pp = ImgDataPreprocessor(mean=[1, 2, 3], std=[4, 5, 6])
    assert pp.mean.shape == (3, 1, 1) and pp.std.shape == (3, 1, 1)
    assert pp._enable_normalize and dict(pp.named_buffers()).keys() == {"mean", "std"}
    assert pp.state_dict() == {}
    plain = ImgDataPreprocessor()
    assert not plain._enable_normalize and not hasattr(plain, "mean") and not hasattr(plain, "std")


def test_img_built_from_registry():
    pp = MODELS.build(dict(type="ImgDataPreprocessor", mean=[0.5], std=[2.0], bgr_to_rgb=True))
    assert isinstance(pp, ImgDataPreprocessor) and pp._channel_conversion and pp.pad_size_divisor == 1


@pytest.mark.parametrize(
    "cfg, match",
    [
        (dict(bgr_to_rgb=True, rgb_to_bgr=True), r"bgr_to_rgb and rgb_to_bgr cannot both be True"),
        (dict(mean=[1.0, 2.0, 3.0]), r"mean and std must be both None .* but got mean=\[1.0, 2.0, 3.0\], std=None"),
        (dict(std=[1.0]), r"mean and std must be both None .* but got mean=None, std=\[1.0\]"),
        (dict(mean=[1.0, 2.0], std=[1.0]), r"`mean` should have 1 or 3 values, to be compatible .* but got 2 values"),
        (dict(mean=[1.0], std=[1.0, 2.0, 3.0, 4.0]), r"`std` should have 1 or 3 values, to be compatible .* but got 4"),
        (dict(pad_size_divisor=0), r"pad_size_divisor must be a positive int, but got 0"),
    ],
)
def test_img_init_errors(cfg, match):
    with pytest.raises(ValueError, match=match) as error:
        ImgDataPreprocessor(**cfg)
    # MMEngine asserts each of these but pad_size_divisor, which it does not check
    assert isinstance(error.value, AssertionError) == ("pad_size_divisor" not in cfg)


@pytest.mark.parametrize(
    "data, exc, match",
    [
        ((torch.zeros(3, 4, 4),), TypeError, r"expects a dict with an 'inputs' key .*but got tuple"),
        ([torch.zeros(3, 4, 4)], TypeError, r"expects a dict with an 'inputs' key .*but got list"),
        (dict(img=[torch.zeros(3, 4, 4)]), KeyError, r"expects a dict with an 'inputs' key, but got keys \['img'\]"),
        (dict(inputs=torch.zeros(3, 4, 4)), AssertionError, r"should be a NCHW tensor .*with shape: \(3, 4"),
        (dict(inputs=np.zeros((1, 3, 4, 4))), TypeError, r"list/tuple of tensors or an .* tensor, but got ndarray"),
        (dict(inputs=[torch.zeros(3, 4, 4), 1]), TypeError, r"but got list"),
        (dict(inputs=[]), AssertionError, r"empty list of inputs.*`tensor_list` could not be an empty list"),
    ],
)
def test_img_forward_input_errors(data, exc, match):
    with pytest.raises(exc, match=match) as error:
        ImgDataPreprocessor(mean=[0.0], std=[1.0])(data)
    assert isinstance(error.value, (TypeError, ValueError))  # our natural types, whatever MMEngine's is


@pytest.mark.parametrize(
    "inputs, shape",
    [
        ([torch.zeros(1, 4, 4)], r"\(1, 4, 4\)"),
        ([torch.zeros(4, 4)], r"\(4, 4\)"),
        ([torch.zeros(3, 4, 4), torch.zeros(4, 4, 4)], r"\(4, 4, 4\)"),
    ],
)
def test_img_three_value_mean_needs_three_channel_images(inputs, shape):
    pp = ImgDataPreprocessor(mean=[1.0, 2.0, 3.0], std=[1.0, 1.0, 1.0])
    phrase = r"If the mean has 3 values, the input tensor should in shape of \(3, H, W\)"
    with pytest.raises(AssertionError, match=rf"{phrase}, but got the tensor with shape {shape}") as error:
        pp(dict(inputs=inputs))
    assert isinstance(error.value, ValueError)


def test_img_three_value_mean_on_a_batch_is_broadcast_as_mmengine():
    """MMEngine checks single images only: a batch is broadcast, (N, 1, H, W) to 3 channels, others refused."""
    pp = ImgDataPreprocessor(mean=[1.0, 2.0, 3.0], std=[1.0, 1.0, 1.0])
    out = pp(dict(inputs=torch.full((2, 1, 4, 4), 3.0)))["inputs"]
    assert out.shape == (2, 3, 4, 4) and out[:, :, 0, 0].tolist() == [[2.0, 1.0, 0.0]] * 2
    with pytest.raises(RuntimeError, match=r"do not fit inputs of shape \(2, 2, 4, 4\).*must match") as error:
        pp(dict(inputs=torch.zeros(2, 2, 4, 4)))
    assert isinstance(error.value, ValueError)


@pytest.mark.parametrize("inputs", [[torch.zeros(1, 4, 4)], torch.zeros(2, 2, 4, 4)])
def test_img_channel_flip_needs_three_channels(inputs):
    with pytest.raises(IndexError, match=r"bgr_to_rgb/rgb_to_bgr needs inputs with 3 channels.*out of bounds") as e:
        ImgDataPreprocessor(bgr_to_rgb=True)(dict(inputs=inputs))
    assert isinstance(e.value, ValueError)


def test_img_one_value_mean_accepts_any_channel_count():
    out = ImgDataPreprocessor(mean=[2.0], std=[2.0])(dict(inputs=torch.full((1, 4, 2, 2), 6.0)))
    assert out["inputs"].shape == (1, 4, 2, 2) and (out["inputs"] == 2.0).all()


# --------------------------------------------------------------------------------------------------
# BaseDataPreprocessor


def _nested_batch(mmengine_structures=None):
    gen = torch.Generator().manual_seed(5)
    batch = dict(
        inputs=[torch.randn(3, 2, 2, generator=gen), torch.randn(3, 2, 2, generator=gen)],
        data_samples=(dict(label=torch.tensor([1]), name="a"), None),
        pair=Pair(torch.arange(3), b"raw"),
        nested=OrderedDict(x=[(torch.ones(2), 3, "s")], arr=np.zeros(2), n=None, f=1.5),
    )
    if mmengine_structures is not None:
        bboxes = torch.rand(2, 4, generator=gen)
        batch["instances"] = mmengine_structures.InstanceData(bboxes=bboxes, metainfo=dict(k=1))
    return batch


def test_base_cast_data_matches_mmengine(mmengine):
    from mmengine import structures
    from mmengine.model import BaseDataPreprocessor as MMBase

    batch = _nested_batch(structures)
    for training in (True, False):
        assert_same(BaseDataPreprocessor()(batch, training), MMBase()(batch, training))
    # List and tuple batches (default_collate of tuples yields a list) keep their type.
    for raw in ([torch.ones(2, 1, 1), torch.zeros(2, 1, 1)], (torch.ones(1), "label")):
        assert_same(BaseDataPreprocessor()(raw), MMBase()(raw))
    ours = BaseDataPreprocessor()(batch)
    assert type(ours["nested"]) is dict  # Mapping -> plain dict, as mmengine
    assert type(ours["pair"]) is Pair and ours["nested"]["arr"] is batch["nested"]["arr"]


def test_cast_data_moves_tensors_and_data_elements_with_non_blocking():
    calls = []

    class BaseDataElement:  # matched by class name: mmengine's structures need no import
        def to(self, *args, **kwargs):
            calls.append((args, kwargs))
            return "moved"

    class InstanceData(BaseDataElement):
        pass

    class HasTo:  # a `.to` method alone is not enough
        def to(self, *args, **kwargs):
            raise AssertionError("must not be called")

    pp = BaseDataPreprocessor(non_blocking=True).to("meta")
    out = pp(dict(a=InstanceData(), b=[torch.ones(2)], c=HasTo()))
    assert out["a"] == "moved" and calls == [((torch.device("meta"),), dict(non_blocking=True))]
    assert out["b"][0].device.type == "meta"
    assert isinstance(out["c"], HasTo)
    assert pp._non_blocking is True and BaseDataPreprocessor()._non_blocking is False


def test_base_device_follows_to_and_cpu():
    pp = BaseDataPreprocessor()
    assert pp.device == torch.device("cpu")
    with pytest.raises(AttributeError):
        pp.device = torch.device("meta")
    assert pp.to("meta") is pp and pp.device == torch.device("meta")
    pp.to(torch.float64)  # dtype only: device unchanged
    assert pp.device == torch.device("meta")
    assert pp.cpu() is pp and pp.device == torch.device("cpu")
    pp.to(device=torch.device("meta"), dtype=torch.float16)
    assert pp.device == torch.device("meta")
    pp.to(torch.zeros(1))  # device taken from a tensor, as nn.Module.to
    assert pp.device == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_base_cuda_sets_indexed_device():
    pp = BaseDataPreprocessor().cuda()
    assert pp.device == torch.device("cuda", torch.cuda.current_device())
    out = pp(dict(inputs=[torch.ones(2)]))
    assert out["inputs"][0].device == pp.device


# --------------------------------------------------------------------------------------------------
# stack_batch


@pytest.mark.parametrize(
    "shapes, divisor, value",
    [
        ([(3, 5, 7), (3, 8, 4)], 1, 0),
        ([(3, 5, 7), (3, 8, 4)], 16, -1.5),
        ([(3, 4, 4), (3, 4, 4)], 1, 0),  # no padding: plain stack
        ([(3, 4, 4), (3, 4, 4)], 3, 9),
        ([(2, 5), (2, 3)], 2, 1),  # 2-D
        ([(1, 2, 3, 4), (1, 4, 3, 2)], 2, 0),  # 4-D
        ([(4,), (4,)], 3, 0),  # 1-D: only dim 0, never padded
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_stack_batch_matches_mmengine(mmengine, shapes, divisor, value, dtype):
    from mmengine.model.utils import stack_batch as mm_stack_batch

    if dtype == torch.uint8:
        value = abs(value)
    tensors = _images(shapes, seed=2, dtype=dtype)
    assert_same(stack_batch(tensors, divisor, value), mm_stack_batch(tensors, divisor, value))


@pytest.mark.parametrize(
    "tensors, kwargs, exc, match",
    [
        ((torch.zeros(3, 2, 2),), {}, TypeError, r"expects a list of tensors, but got tuple"),
        ([], {}, ValueError, r"empty list"),
        ([torch.zeros(3, 2, 2), torch.zeros(2, 2)], {}, ValueError, r"same number of dimensions, but got \[3, 2\]"),
        ([torch.zeros(3, 2, 2)], dict(pad_size_divisor=0), ValueError, r"must be a positive int, but got 0"),
    ],
)
def test_stack_batch_errors(tensors, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        stack_batch(tensors, **kwargs)
