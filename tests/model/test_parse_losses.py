"""BaseModel.parse_losses: parity with mmengine, and clear errors where mmengine fails obscurely."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from mm2lightning.model import BaseModel


class Model(BaseModel):
    def forward(self, inputs, data_samples=None, mode="tensor"):
        return inputs


def _t(*shape: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=dtype).requires_grad_()


LOSS_DICTS = {
    "plain": lambda: dict(loss1=_t(2, 3, seed=0), loss2=_t(4, seed=1), acc=_t(3, seed=2)),
    "lists": lambda: dict(
        loss_cls=[_t(2, seed=3), _t(5, 2, seed=4), _t(seed=5)], acc=[_t(3, seed=6)], loss_bbox=_t(7, seed=7)
    ),
    "user_loss_key": lambda: dict(loss_cls=_t(3, seed=8), loss=_t(2, seed=9), top1=_t(1, seed=10)),
    "order_and_case": lambda: dict(
        acc=_t(2, seed=11), myLoss=_t(2, seed=12), loss_b=_t(3, seed=13), loss_a=_t(seed=14)
    ),
    "float64": lambda: dict(
        loss=_t(4, 4, seed=15, dtype=torch.float64), loss_aux=[_t(3, seed=16, dtype=torch.float64)]
    ),
}


@pytest.fixture
def mm_model(mmengine):
    from mmengine.model import BaseModel as MMBaseModel

    class MMModel(MMBaseModel):
        def forward(self, inputs, data_samples=None, mode="tensor"):
            return inputs

    return MMModel()


@pytest.mark.parametrize("case", sorted(LOSS_DICTS))
def test_matches_mmengine(mm_model, case):
    losses = LOSS_DICTS[case]()
    loss, log_vars = Model().parse_losses(losses)
    ref_loss, ref_log_vars = mm_model.parse_losses(losses)

    assert isinstance(log_vars, OrderedDict)
    assert list(log_vars) == list(ref_log_vars)
    assert list(log_vars)[0] == "loss"
    torch.testing.assert_close(loss, ref_loss, rtol=0, atol=0)
    for key, value in log_vars.items():
        assert value.dtype == ref_log_vars[key].dtype
        torch.testing.assert_close(value, ref_log_vars[key], rtol=0, atol=0)
    # The graph is kept: gradients of the total match mmengine's.
    leaves = [v for vs in losses.values() for v in (vs if isinstance(vs, list) else [vs])]
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    ref_grads = torch.autograd.grad(ref_loss, leaves, allow_unused=True)
    for grad, ref_grad in zip(grads, ref_grads):
        assert (grad is None) == (ref_grad is None)
        if grad is not None:
            torch.testing.assert_close(grad, ref_grad, rtol=0, atol=0)


def test_rules_by_hand():
    losses = dict(loss_a=torch.tensor([1.0, 3.0]), loss_b=[torch.tensor([2.0]), torch.tensor([4.0, 6.0])],
                  acc=torch.tensor([10.0]), Loss=torch.tensor([100.0]))
    loss, log_vars = Model().parse_losses(losses)
    # loss_a mean 2, loss_b = 2 + 5 = 7; 'acc' and 'Loss' (case-sensitive) are logged, not summed.
    assert loss.item() == 9.0
    assert {k: v.item() for k, v in log_vars.items()} == dict(loss=9.0, loss_a=2.0, loss_b=7.0, acc=10.0, Loss=100.0)


def test_user_loss_key_overwrites_logged_total_but_not_returned_total():
    loss, log_vars = Model().parse_losses(dict(loss=torch.tensor(1.0), loss_cls=torch.tensor(2.0)))
    assert loss.item() == 3.0
    assert list(log_vars) == ["loss", "loss_cls"]
    assert log_vars["loss"].item() == 1.0


def test_no_host_sync():
    """Meta tensors have no data: any .item()/host sync in parse_losses would raise."""
    meta = dict(device="meta")
    losses = dict(loss_a=torch.randn(4, **meta), loss_b=[torch.randn(2, **meta)], acc=torch.randn(1, **meta))
    loss, log_vars = Model().parse_losses(losses)
    assert loss.device.type == "meta"
    assert list(log_vars) == ["loss", "loss_a", "loss_b", "acc"]


@pytest.mark.parametrize(
    "losses, match",
    [
        ([torch.tensor(1.0)], r"forward\(mode='loss'\) must return a dict of loss tensors.*but got list"),
        (torch.tensor(1.0), r"forward\(mode='loss'\) must return a dict of loss tensors.*but got Tensor"),
        (dict(loss_x=1.5), r"the loss 'loss_x' must be a tensor or a non-empty list of tensors, but got float"),
        (dict(loss_x=[]), r"the loss 'loss_x' must be .*, but got empty list"),
        (dict(loss_x=[torch.tensor(1.0), 2.0]), r"the loss 'loss_x' must be .*, but got list of \['Tensor', 'float'\]"),
        (dict(loss_x=(torch.tensor(1.0),)), r"the loss 'loss_x' must be .*, but got tuple"),
        (dict(loss_x=torch.tensor(1.0), acc=None), r"the loss 'acc' must be .*, but got NoneType"),
    ],
)
def test_type_errors(losses, match):
    with pytest.raises(TypeError, match=match):
        Model().parse_losses(losses)


@pytest.mark.parametrize("losses", [dict(acc=torch.tensor(1.0), Loss=torch.tensor(2.0)), dict()])
def test_no_loss_key_is_a_value_error(losses):
    keys = str(list(losses)).replace("[", r"\[").replace("]", r"\]")
    with pytest.raises(ValueError, match=rf"no key containing 'loss' \(case-sensitive\).*got keys {keys}"):
        Model().parse_losses(losses)
