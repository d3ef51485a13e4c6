"""Averaged models (EMA, SWA): update rules, interval, buffers and state_dict, against real mmengine."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from mm2lightning.model import (
    BaseAveragedModel,
    ExponentialMovingAverage,
    MomentumAnnealingEMA,
    StochasticWeightAverage,
)
from mm2lightning.model.averaged_model import AveragedModelError
from mm2lightning.registry import MODELS


def _source(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
    """One SGD step on step-dependent data: changes the parameters and the BatchNorm buffers."""
    gen = torch.Generator().manual_seed(100 + step)
    dtype = next(model.parameters()).dtype
    x, y = torch.randn(8, 3, generator=gen, dtype=dtype), torch.randn(8, 2, generator=gen, dtype=dtype)
    optimizer.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()


def _assert_same(ours: nn.Module, ref: nn.Module) -> None:
    ours_sd, ref_sd = ours.state_dict(), ref.state_dict()
    assert list(ours_sd) == list(ref_sd)
    for key in ref_sd:
        assert ours_sd[key].dtype == ref_sd[key].dtype, key
        assert torch.equal(ours_sd[key], ref_sd[key]), key
    for (name, p), (ref_name, ref_p) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
        assert name == ref_name and torch.equal(p, ref_p) and p.requires_grad == ref_p.requires_grad


CASES = [
    ("ExponentialMovingAverage", dict(momentum=0.1)),
    ("ExponentialMovingAverage", dict(momentum=0.1, interval=3)),
    ("ExponentialMovingAverage", dict(momentum=0.2, update_buffers=True)),
    ("ExponentialMovingAverage", dict(momentum=0.2, interval=3, update_buffers=True, device="cpu")),
    ("ExponentialMovingAverage", dict()),
    ("MomentumAnnealingEMA", dict(momentum=0.01, gamma=5)),
    ("MomentumAnnealingEMA", dict(momentum=0.05, gamma=10, interval=3, update_buffers=True)),
    ("MomentumAnnealingEMA", dict()),
    ("StochasticWeightAverage", dict()),
    ("StochasticWeightAverage", dict(interval=3)),
    ("StochasticWeightAverage", dict(update_buffers=True)),
    ("StochasticWeightAverage", dict(interval=3, update_buffers=True)),
]


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_updates_match_mmengine(mmengine, name, kwargs):
    from mmengine.model import averaged_model as mm_averaged

    source = _source()
    ours = MODELS.build(dict(type=name, **kwargs), default_args=dict(model=source))
    ref = getattr(mm_averaged, name)(source, **kwargs)
    assert type(ours).__name__ == name
    _assert_same(ours, ref)
    optimizer = torch.optim.SGD(source.parameters(), lr=0.3)
    for step in range(20):
        _train_step(source, optimizer, step)
        ours.update_parameters(source)
        ref.update_parameters(source)
        _assert_same(ours, ref)
    assert int(ours.steps) == 20
    x = torch.randn(5, 3)
    ours.eval(), ref.eval()
    assert torch.equal(ours(x), ref(x))


def test_state_dict_loads_across(mmengine):
    """mmengine's state_dict (``module.*`` + ``steps``) loads into ours and both go on identically."""
    from mmengine.model import MomentumAnnealingEMA as MMMomentumAnnealingEMA

    source = _source()
    optimizer = torch.optim.SGD(source.parameters(), lr=0.3)
    ref = MMMomentumAnnealingEMA(source, momentum=0.01, gamma=4, update_buffers=True)
    for step in range(7):
        _train_step(source, optimizer, step)
        ref.update_parameters(source)
    ours = MomentumAnnealingEMA(_source(seed=1), momentum=0.01, gamma=4, update_buffers=True)
    ours.load_state_dict(ref.state_dict())
    assert "steps" in ours.state_dict() and all(k == "steps" or k.startswith("module.") for k in ours.state_dict())
    _assert_same(ours, ref)
    for step in range(7, 14):
        _train_step(source, optimizer, step)
        ours.update_parameters(source)
        ref.update_parameters(source)
        _assert_same(ours, ref)


def test_moved_averaged_model_keeps_updating(mmengine):
    """``.to()`` after construction: updates reach the moved module (with averaged buffers too)."""
    from mmengine.model import ExponentialMovingAverage as MMExponentialMovingAverage

    source = _source()
    ours = ExponentialMovingAverage(source, momentum=0.1, update_buffers=True).double()
    source.double()
    ref = MMExponentialMovingAverage(source, momentum=0.1, update_buffers=True)
    optimizer = torch.optim.SGD(source.parameters(), lr=0.3)
    for step in range(5):
        _train_step(source, optimizer, step)
        ours.update_parameters(source)
        ref.update_parameters(source)
        _assert_same(ours, ref)


@pytest.mark.parametrize(
    ("cls_name", "kwargs"),
    [
        ("ExponentialMovingAverage", dict(momentum=0.0)),
        ("ExponentialMovingAverage", dict(momentum=1.0)),
        ("ExponentialMovingAverage", dict(momentum=-0.5)),
        ("MomentumAnnealingEMA", dict(momentum=2.0)),
        ("MomentumAnnealingEMA", dict(gamma=0)),
        ("MomentumAnnealingEMA", dict(gamma=-3)),
    ],
)
def test_argument_errors_match_mmengine(mmengine, cls_name, kwargs):
    from mmengine.model import averaged_model as mm_averaged

    with pytest.raises(AssertionError) as ref_err:
        getattr(mm_averaged, cls_name)(_source(), **kwargs)
    phrase = str(ref_err.value).split("but got")[0].rstrip(", ")
    with pytest.raises(AssertionError, match=r"but got") as err:
        MODELS.build(dict(type=cls_name, **kwargs), default_args=dict(model=_source()))
    assert isinstance(err.value, (AveragedModelError, ValueError))
    assert phrase in str(err.value)


@pytest.mark.parametrize("interval", [0, -2, 1.5, True])
def test_interval_must_be_positive_int(interval):
    """Stricter than MMEngine, which fails on (or misuses) such an interval only at the second update."""
    with pytest.raises(AveragedModelError, match=rf"interval must be a positive int.*{interval!r}"):
        StochasticWeightAverage(_source(), interval=interval)


def test_large_momentum_warns(log_text):
    ExponentialMovingAverage(_source(), momentum=0.9)
    assert "usually a small number" in log_text() and "0.9" in log_text()


def test_registered_names():
    for cls in (ExponentialMovingAverage, MomentumAnnealingEMA, StochasticWeightAverage):
        assert issubclass(cls, BaseAveragedModel) and MODELS.get(cls.__name__) is cls


def test_steps_written_directly_are_read_again():
    """The host-side step count follows the buffer: zeroed in place or replaced, the next update sees it."""
    model = nn.Linear(2, 2)
    ema = ExponentialMovingAverage(model, momentum=0.5)
    ema.update_parameters(model)
    ema.update_parameters(model)
    ema.steps.zero_()  # as after a reset: the next update copies the source
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update_parameters(model)
    assert torch.equal(ema.module.weight, model.weight) and int(ema.steps) == 1
    ema.steps = torch.tensor(5)
    ema.update_parameters(model)
    assert int(ema.steps) == 6
