"""Each misuse MMEngine's ``model`` refuses: ours raises an instance of MMEngine's type with its phrase.

Every case runs the same inputs on mmengine and on mm2lightning (see docs/errors.md).
weight_init and averaged_model have their own parity tests.
"""

from __future__ import annotations

import pytest
from error_parity import assert_same_error
import torch
from torch import nn

mm_model = pytest.importorskip("mmengine.model")
import mm2lightning.model as our_model  # noqa: E402


def _toy_model(o, **kwargs):
    class Toy(o.BaseModel):
        def __init__(self) -> None:
            super().__init__(**kwargs)
            self.linear = nn.Linear(1, 1)

        def forward(self, *args, mode="tensor", **kw):
            return []

    return Toy()


def _init_with(o, init_cfg):
    class Net(o.BaseModule):
        def __init__(self) -> None:
            super().__init__(init_cfg=init_cfg)
            self.linear = nn.Linear(1, 1)

    Net().init_weights()


# (id, misuse on the module namespace `o`, MMEngine's exception type, MMEngine's phrase)
CASES = [
    # ---- base_model.py
    ("data_preprocessor_type", lambda o: _toy_model(o, data_preprocessor=3), TypeError,
     "data_preprocessor should be a `dict` or `nn.Module` instance"),
    ("loss_not_tensor", lambda o: _toy_model(o).parse_losses(dict(loss=1.0)), TypeError,
     "loss is not a tensor or list of tensors"),
    ("loss_list_of_non_tensors", lambda o: _toy_model(o).parse_losses(dict(loss_a=[1.0])), TypeError,
     "loss_a is not a tensor or list of tensors"),
    ("losses_not_dict", lambda o: _toy_model(o).parse_losses([torch.tensor(1.0)]), AttributeError,
     "object has no attribute 'items'"),
    ("run_forward_bad_data", lambda o: _toy_model(o).val_step(3), TypeError,
     "Output of `data_preprocessor` should be list, tuple or dict"),
    # ---- base_module.py
    ("init_cfg_item_not_dict", lambda o: _init_with(o, [dict(type="Constant", val=1, layer="Linear"), 3]),
     AssertionError, ""),
    # ---- data_preprocessor.py
    ("bgr_and_rgb", lambda o: o.ImgDataPreprocessor(bgr_to_rgb=True, rgb_to_bgr=True), AssertionError,
     "`bgr2rgb` and `rgb2bgr` cannot be set to True at the same time"),
    ("mean_without_std", lambda o: o.ImgDataPreprocessor(mean=(1, 2, 3)), AssertionError,
     "mean and std should be both None or tuple"),
    ("std_without_mean", lambda o: o.ImgDataPreprocessor(std=(1, 2, 3)), AssertionError,
     "mean and std should be both None or tuple"),
    ("mean_2_values", lambda o: o.ImgDataPreprocessor(mean=(1, 2), std=(1, 2, 3)), AssertionError,
     "`mean` should have 1 or 3 values, to be compatible with RGB or gray image, but got 2 values"),
    ("std_2_values", lambda o: o.ImgDataPreprocessor(mean=(1, 2, 3), std=(1, 2)), AssertionError,
     "`std` should have 1 or 3 values, to be compatible with RGB or gray image, but got 2 values"),
    ("mean3_on_hw_list",
     lambda o: o.ImgDataPreprocessor(mean=(1, 2, 3), std=(1, 2, 3))(dict(inputs=[torch.rand(4, 4)])),
     AssertionError, "If the mean has 3 values, the input tensor should in shape of (3, H, W)"),
    ("mean3_on_1chw_list",
     lambda o: o.ImgDataPreprocessor(mean=(1, 2, 3), std=(1, 2, 3))(dict(inputs=[torch.rand(1, 4, 4)])),
     AssertionError, "If the mean has 3 values, the input tensor should in shape of (3, H, W)"),
    ("tensor_not_nchw", lambda o: o.ImgDataPreprocessor()(dict(inputs=torch.rand(3, 4, 4))), AssertionError,
     "The input of `ImgDataPreprocessor` should be a NCHW tensor or a list of tensor"),
    ("inputs_not_tensor", lambda o: o.ImgDataPreprocessor()(dict(inputs=3)), TypeError,
     "Output of `cast_data` should be a dict of list/tuple with inputs and data_samples"),
    ("inputs_empty_list", lambda o: o.ImgDataPreprocessor()(dict(inputs=[])), AssertionError,
     "`tensor_list` could not be an empty list"),
    ("inputs_mixed_ndim", lambda o: o.ImgDataPreprocessor()(dict(inputs=[torch.rand(3, 4, 4), torch.rand(1, 3, 4, 4)])),
     AssertionError, "Expected the dimensions of all tensors must be the same"),
    # ---- utils.py
    ("stack_batch_not_list", lambda o: o.stack_batch((torch.rand(3, 4, 4),)), AssertionError,
     "Expected input type to be list, but got <class 'tuple'>"),
    ("stack_batch_empty", lambda o: o.stack_batch([]), AssertionError, "`tensor_list` could not be an empty list"),
    ("stack_batch_mixed_ndim", lambda o: o.stack_batch([torch.rand(3, 4, 4), torch.rand(3, 4)]), AssertionError,
     "Expected the dimensions of all tensors must be the same, but got [3, 2]"),
]


@pytest.mark.parametrize(("fn", "mm_type", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_same_error_as_mmengine(fn, mm_type, phrase):
    assert_same_error(fn, mm_model, our_model, mm_type, phrase)


def test_ddp_wrapper_forward_error_phrase():
    """MMEngine's MMDistributedDataParallel needs a process group; compare with its source's type and phrase."""
    from mm2lightning.model.wrappers import _run_forward

    with pytest.raises(TypeError, match="Output of `data_preprocessor` should be list, tuple or dict"):
        _run_forward(nn.Linear(1, 1), 3, "predict")
