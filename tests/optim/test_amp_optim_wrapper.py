"""AmpOptimWrapper on CPU (MMEngine refuses CPU), checked against a plain torch.amp loop."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mm2lightning.optim import AmpOptimWrapper


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))


def make_batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 4, generator=gen), torch.randn(8, 1, generator=gen)) for _ in range(n)]


def train(wrapper: AmpOptimWrapper, model: nn.Module, batches, scale_loss_by: float = 1.0) -> list[float]:
    losses = []
    for x, y in batches:
        with wrapper.optim_context(model):
            loss = (model(x).float() - y).pow(2).mean()
        wrapper.update_params(loss * scale_loss_by)
        losses.append(loss.item())
    return losses


def reference_fp16(model: nn.Module, batches, max_norm: float | None = None) -> tuple[nn.Module, torch.amp.GradScaler]:
    """The documented torch.amp recipe: autocast forward, scaled backward, unscale, clip, step, update."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu")
    for x, y in batches:
        with torch.autocast("cpu", dtype=torch.float16):
            loss = (model(x).float() - y).pow(2).mean()
        scaler.scale(loss).backward()
        if max_norm is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
    return model, scaler


@pytest.mark.parametrize("max_norm", [None, 0.1])
def test_float16_matches_plain_torch_amp(max_norm):
    batches = make_batches(6)
    model, ref_model = make_model(), make_model()
    clip = None if max_norm is None else dict(max_norm=max_norm)
    wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.05), dtype="float16", clip_grad=clip)
    train(wrapper, model, batches)
    ref_model, ref_scaler = reference_fp16(ref_model, batches, max_norm)
    for p, q in zip(model.parameters(), ref_model.parameters()):
        assert torch.equal(p, q)
    assert wrapper.loss_scaler.state_dict() == ref_scaler.state_dict()
    if max_norm is not None:
        assert wrapper.grad_norm is not None and torch.isfinite(wrapper.grad_norm)


def test_float16_forward_runs_in_half_and_trains():
    batches = make_batches(1) * 30
    model = make_model()
    wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.05), dtype="float16")
    with wrapper.optim_context(model):
        assert model(batches[0][0]).dtype == torch.float16
    losses = train(wrapper, model, batches)
    assert losses[-1] < 0.5 * losses[0]


def test_bfloat16_trains_without_a_scaler():
    batches = make_batches(1) * 30
    model = make_model()
    wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.05), dtype="bfloat16")
    assert wrapper.loss_scaler is None
    with wrapper.optim_context(model):
        assert model(batches[0][0]).dtype == torch.bfloat16
    losses = train(wrapper, model, batches)
    assert losses[-1] < 0.5 * losses[0]
    assert "loss_scaler" not in wrapper.state_dict()


def test_default_dtype_on_cpu_is_bfloat16():
    wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(make_model().parameters(), lr=0.1))
    assert wrapper.device_type == "cpu"
    assert wrapper.autocast_dtype is torch.bfloat16
    assert wrapper.loss_scaler is None


def test_inf_gradient_skips_the_step_and_lowers_the_scale():
    model = make_model()
    wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.05), dtype="float16")
    before = copy.deepcopy(model.state_dict())
    train(wrapper, model, make_batches(1), scale_loss_by=float("inf"))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert wrapper.loss_scaler.get_scale() == 65536.0 / 2
    train(wrapper, model, make_batches(1))
    assert not all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert wrapper.loss_scaler.get_scale() == 65536.0 / 2


@pytest.mark.parametrize("loss_scale", [512, 512.0])
def test_static_loss_scale_stays_fixed(loss_scale):
    model = make_model()
    wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.05), dtype="float16", loss_scale=loss_scale)
    train(wrapper, model, make_batches(1), scale_loss_by=float("inf"))
    assert wrapper.loss_scaler.get_scale() == 512.0
    train(wrapper, model, make_batches(2))
    assert wrapper.loss_scaler.get_scale() == 512.0


def test_dict_loss_scale_configures_the_scaler():
    model = make_model()
    wrapper = AmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
        dtype="float16",
        loss_scale=dict(init_scale=256.0, growth_interval=1),
    )
    train(wrapper, model, make_batches(2))
    assert wrapper.loss_scaler.get_scale() == 1024.0


def test_state_round_trip_resumes_exactly():
    batches = make_batches(8)
    model = make_model()
    wrapper = AmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), dtype="float16", loss_scale=dict(growth_interval=3)
    )
    train(wrapper, model, batches[:4], scale_loss_by=1.0)
    train(wrapper, model, batches[:1], scale_loss_by=float("inf"))
    state, model_state = copy.deepcopy(wrapper.state_dict()), copy.deepcopy(model.state_dict())
    assert state["loss_scaler"]["scale"] == 32768.0
    train(wrapper, model, batches[4:])

    resumed_model = make_model(seed=5)
    resumed_model.load_state_dict(model_state)
    resumed = AmpOptimWrapper(
        optimizer=torch.optim.SGD(resumed_model.parameters(), lr=0.05, momentum=0.9), dtype="float16"
    )
    resumed.load_state_dict(state)
    assert "loss_scaler" in state  # not mutated
    assert resumed.loss_scaler.state_dict() == state["loss_scaler"]
    train(resumed, resumed_model, batches[4:])
    for p, q in zip(model.parameters(), resumed_model.parameters()):
        assert torch.equal(p, q)
    assert resumed.loss_scaler.state_dict() == wrapper.loss_scaler.state_dict()


@pytest.mark.parametrize(
    "loss_scale, error, match",
    [
        ("static", ValueError, "must be 'dynamic'"),
        (-4.0, ValueError, "positive number"),
        (0, ValueError, "positive number"),
        (True, TypeError, "loss_scale must be 'dynamic'.*got bool"),
        ([512.0], TypeError, "loss_scale must be 'dynamic'.*got list"),
        (dict(scale=2.0), TypeError, "GradScaler arguments"),
    ],
)
def test_bad_loss_scale(loss_scale, error, match):
    with pytest.raises(error, match=match):
        AmpOptimWrapper(optimizer=torch.optim.SGD(make_model().parameters(), lr=0.1), dtype="float16", loss_scale=loss_scale)


def test_bad_dtype():
    with pytest.raises(ValueError, match="dtype must be one of"):
        AmpOptimWrapper(optimizer=torch.optim.SGD(make_model().parameters(), lr=0.1), dtype="half")
