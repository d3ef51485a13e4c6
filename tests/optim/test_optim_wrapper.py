"""OptimWrapper: accumulation, clipping and the backend seam, against real mmengine."""

from __future__ import annotations

import copy
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from mm2lightning.optim import OptimWrapper
from mm2lightning.optim.backend import TorchBackend


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


def make_batches(n: int, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(3, 4, generator=gen) * 3, torch.randn(3, 1, generator=gen)) for _ in range(n)]


def run(model: nn.Module, wrapper, batches, max_iters: int | None, epoch_len: int | None = None):
    """Train as MMEngine's Runner does and record the parameters after every iteration."""
    if max_iters is not None:
        wrapper.initialize_count_status(model, 0, max_iters)
    trace = []
    for x, y in batches:
        with wrapper.optim_context(model):
            loss = (model(x) - y).pow(2).mean()
        wrapper.update_params(loss)
        trace.append(torch.cat([p.detach().flatten().clone() for p in model.parameters()]))
    return trace


def assert_traces_equal(ours, ref, tol=1e-6):
    assert len(ours) == len(ref)
    for i, (a, b) in enumerate(zip(ours, ref)):
        diff = (a - b).abs().max().item()
        assert diff <= tol, f"iteration {i + 1}: max abs difference {diff}"


@pytest.mark.parametrize("accumulative_counts", [1, 3, 4])
@pytest.mark.parametrize(
    "clip_grad", [None, dict(max_norm=0.5), dict(type="norm", max_norm=0.3, norm_type=1.0), dict(type="value", clip_value=0.05)]
)
def test_matches_mmengine_every_iteration(mmengine, accumulative_counts, clip_grad):
    from mmengine.optim import OptimWrapper as MMOptimWrapper

    batches = make_batches(10)  # 10 is not a multiple of 3 or 4: the last window uses the smaller divisor
    model_ref, model = make_model(), make_model()
    ref = MMOptimWrapper(
        torch.optim.SGD(model_ref.parameters(), lr=0.1, momentum=0.9),
        accumulative_counts=accumulative_counts,
        clip_grad=copy.deepcopy(clip_grad),
    )
    ours = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        accumulative_counts=accumulative_counts,
        clip_grad=copy.deepcopy(clip_grad),
    )
    assert_traces_equal(run(model, ours, batches, 10), run(model_ref, ref, batches, 10))
    assert ours.inner_count == ref.inner_count == 10
    if clip_grad is not None and clip_grad.get("type", "norm") == "norm":
        assert ours.grad_norm is not None
        assert ours.grad_norm.item() == pytest.approx(ref.message_hub.get_scalar("train/grad_norm").current(), abs=1e-6)


def test_window_runs_across_epochs_with_resume(mmengine):
    """acc=3, 5 iterations per epoch, 2 epochs: updates at 3, 6, 9, 10, the run resumed at iteration 5."""
    from mmengine.optim import OptimWrapper as MMOptimWrapper

    batches = make_batches(10)
    model_ref, model = make_model(), make_model()
    ref = MMOptimWrapper(torch.optim.SGD(model_ref.parameters(), lr=0.1), accumulative_counts=3)
    ours = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=3)
    trace_ref = run(model_ref, ref, batches, 10)
    first = run(model, ours, batches[:5], 10)
    ours.initialize_count_status(model, 5, 10)  # what a resumed run does at the start of epoch 2
    second = [t for t in run(model, ours, batches[5:], None)]
    assert_traces_equal(first + second, trace_ref)


def test_accumulation_factors_and_update_points():
    model = make_model()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=4)
    wrapper.initialize_count_status(model, 0, 10)
    factors, updates = [], []
    for _ in range(10):
        loss = torch.ones((), requires_grad=True)
        factors.append(round(1 / wrapper.scale_loss(loss).item()))
        wrapper.backward(wrapper.scale_loss(loss))
        if wrapper.should_update():
            updates.append(wrapper.inner_count)
    assert factors == [4, 4, 4, 4, 4, 4, 4, 4, 2, 2]
    assert updates == [4, 8, 10]


class RecordingBackend(TorchBackend):
    def __init__(self):
        self.calls = []

    def backward(self, loss, *, sync, **kwargs):
        self.calls.append(("backward", sync))
        super().backward(loss, sync=sync, **kwargs)

    def step(self, optimizer, *, before_step=None, **kwargs):
        self.calls.append(("step", before_step))
        return super().step(optimizer, before_step=before_step, **kwargs)

    @contextmanager
    def no_sync(self, model):
        self.calls.append(("no_sync", None))
        yield


def test_backend_seam_receives_backward_step_and_no_sync():
    model = make_model()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=2)
    wrapper.backend = backend = RecordingBackend()
    wrapper.initialize_count_status(model, 0, 3)
    run(model, wrapper, make_batches(3), None)
    assert backend.calls == [
        ("no_sync", None), ("backward", False),  # iteration 1 accumulates: no sync
        ("backward", True), ("step", None),  # iteration 2 closes the window
        ("backward", True), ("step", None),  # iteration 3 is the run's last: a window of 1
    ]


def test_torch_backend_uses_model_no_sync_when_accumulating():
    entered = []

    class DDPLike(nn.Linear):
        @contextmanager
        def no_sync(self):
            entered.append(True)
            yield

    model = DDPLike(2, 1)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=2)
    with wrapper.optim_context(model):
        pass
    assert entered == [True]
    wrapper.backward(model(torch.ones(1, 2)).sum())
    with wrapper.optim_context(model):  # last of the window: sync
        pass
    assert entered == [True]


def test_zero_grad_sets_none_and_lr_momentum_views():
    model = make_model()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    assert wrapper.get_lr() == {"lr": [0.01]}
    assert wrapper.get_momentum() == {"momentum": [0]}
    wrapper.update_params(model(torch.ones(1, 4)).sum())
    assert all(p.grad is None for p in model.parameters())
    adam = OptimWrapper(torch.optim.Adam(model.parameters(), betas=(0.5, 0.999)))
    assert adam.get_momentum() == {"momentum": [0.5]}


def sgd_two_groups(model: nn.Module) -> torch.optim.SGD:
    groups = [{"params": list(model[0].parameters())}, {"params": list(model[2].parameters()), "lr": 0.1}]
    return torch.optim.SGD(groups, lr=0.01, momentum=0.9)


def test_several_param_groups_track_base_settings(mmengine):
    from mmengine.optim import OptimWrapper as MMOptimWrapper

    model = make_model()
    ours, ref = OptimWrapper(sgd_two_groups(model)), MMOptimWrapper(sgd_two_groups(model))
    assert ours.get_lr() == ref.get_lr() == {"base_lr": [0.01], "lr": [0.01, 0.1]}
    assert len(ours.param_groups) == len(ref.param_groups) == 3
    assert ours.param_groups[-1]["lr"] == ref.param_groups[-1]["lr"] == 0.01
    assert sorted(ours.state_dict()) == sorted(ref.state_dict()) == ["base_param_settings", "param_groups", "state"]


def test_state_dict_round_trip():
    model = make_model()
    ours = OptimWrapper(sgd_two_groups(model))
    ours.update_params(model(torch.ones(2, 4)).sum())
    state = ours.state_dict()
    fresh = OptimWrapper(sgd_two_groups(make_model()))
    fresh.load_state_dict(state)
    assert "base_param_settings" in state  # the caller's dict is not mutated, unlike MMEngine
    buffers = lambda w: [w.optimizer.state[p]["momentum_buffer"] for g in w.optimizer.param_groups for p in g["params"]]
    assert len(buffers(fresh)) == 4
    for a, b in zip(buffers(ours), buffers(fresh)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_accumulative_counts(bad):
    with pytest.raises(ValueError, match=r"accumulative_counts must be an integer >= 1.*got"):
        OptimWrapper(torch.optim.SGD(make_model().parameters(), lr=0.1), accumulative_counts=bad)


@pytest.mark.parametrize(
    "clip_grad, error, match",
    [
        ({}, TypeError, "non-empty dict"),
        ("norm", TypeError, "non-empty dict"),
        (dict(type="max"), ValueError, "'norm' or 'value'"),
        (dict(type="norm"), ValueError, "takes arguments of clip_grad_norm_"),
        (dict(clip_value=0.2), ValueError, "for clip_value, set type='value'"),
    ],
)
def test_bad_clip_grad(clip_grad, error, match):
    with pytest.raises(error, match=match):
        OptimWrapper(torch.optim.SGD(make_model().parameters(), lr=0.1), clip_grad=clip_grad)


def test_clip_grad_dict_is_not_mutated():
    clip = dict(type="value", clip_value=0.1)
    OptimWrapper(torch.optim.SGD(make_model().parameters(), lr=0.1), clip_grad=clip)
    assert clip == dict(type="value", clip_value=0.1)


class TensorBackedLoss:
    """A custom loss object (not a tensor): backward() and division, as MMEngine's OptimWrapper needs."""

    def __init__(self, value: torch.Tensor, calls: list) -> None:
        self.value, self.calls = value, calls

    def __truediv__(self, factor):
        self.calls.append(("div", factor))
        return TensorBackedLoss(self.value / factor, self.calls)

    def backward(self, **kwargs):
        self.calls.append(("backward", kwargs))
        self.value.backward(**kwargs)


def make_wrappers(accumulative_counts: int, max_iters: int | None):
    from mmengine.optim import OptimWrapper as MMOptimWrapper

    pairs = []
    for cls in (OptimWrapper, MMOptimWrapper):
        model = make_model()
        wrapper = cls(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), accumulative_counts=accumulative_counts)
        if max_iters is not None:
            wrapper.initialize_count_status(model, 0, max_iters)
        pairs.append((model, wrapper))
    return pairs


@pytest.mark.parametrize("accumulative_counts, max_iters", [(1, None), (2, None), (3, 5)])
def test_mock_loss_gets_the_calls_mmengine_makes(mmengine, accumulative_counts, max_iters):
    from unittest.mock import MagicMock

    (_, ours), (_, ref) = make_wrappers(accumulative_counts, max_iters)
    calls = []
    for wrapper in (ours, ref):
        loss = MagicMock()
        for _ in range(5):
            wrapper.update_params(loss)
        wrapper.backward(loss, retain_graph=True)
        calls.append((loss.mock_calls, wrapper.inner_count))
    assert calls[0] == calls[1]
    mock_calls, inner_count = calls[0]
    assert inner_count == 6
    assert mock_calls[-1] == ("backward", (), {"retain_graph": True})  # backward once, with the same kwargs
    divisor = accumulative_counts  # MMEngine divides by 1 too when not accumulating
    assert mock_calls[:2] == [("__truediv__", (divisor,), {}), ("__truediv__().backward", (), {})]


@pytest.mark.parametrize("accumulative_counts, max_iters", [(1, None), (2, 5)])
def test_custom_loss_object_trains_as_mmengine(mmengine, accumulative_counts, max_iters):
    batches = make_batches(5)
    traces, call_logs = [], []
    for model, wrapper in make_wrappers(accumulative_counts, max_iters):
        calls, trace = [], []
        for x, y in batches:
            wrapper.update_params(TensorBackedLoss((model(x) - y).pow(2).mean(), calls))
            trace.append(torch.cat([p.detach().flatten().clone() for p in model.parameters()]))
        traces.append(trace)
        call_logs.append(calls)
    assert_traces_equal(*traces, tol=0)
    assert call_logs[0] == call_logs[1]
    assert call_logs[0].count(("backward", {})) == 5
    assert not torch.equal(traces[0][0], traces[0][-1])  # the parameters did move


@pytest.mark.parametrize("loss", [0, 1.5, None, "loss", [torch.ones(())]], ids=repr)
@pytest.mark.parametrize("accumulative_counts", [1, 2])
@pytest.mark.parametrize("method", ["update_params", "backward"])
def test_value_without_backward_is_a_clear_error(mmengine, loss, accumulative_counts, method):
    (_, ours), (_, ref) = make_wrappers(accumulative_counts, None)
    with pytest.raises(Exception) as ref_info:
        getattr(ref, method)(loss)
    with pytest.raises(TypeError, match=rf"must be a tensor \(or an object with a backward\(\) method\), but got {type(loss).__name__}") as info:
        getattr(ours, method)(loss)
    assert isinstance(info.value, type(ref_info.value))  # AttributeError, or TypeError where MMEngine divides first
    assert f"'{type(loss).__name__}' object has no attribute 'backward'" in str(info.value)
    assert ours.inner_count == 0


def test_amp_wrapper_takes_loss_objects_without_a_scaler_and_refuses_them_with_one():
    from unittest.mock import MagicMock

    from mm2lightning.optim import AmpOptimWrapper

    params = make_model().parameters()
    bf16 = AmpOptimWrapper(optimizer=torch.optim.SGD(params, lr=0.1), dtype="bfloat16", device_type="cpu")
    loss = MagicMock()
    bf16.update_params(loss)
    bf16.backward(loss, retain_graph=True)
    assert loss.__truediv__.return_value.backward.call_args_list == [((), {})]  # update_params: (loss / 1).backward()
    assert loss.backward.call_args_list == [((), {"retain_graph": True})] and bf16.inner_count == 2
    with pytest.raises(AttributeError, match="'int' object has no attribute 'backward'"):
        bf16.backward(3)

    fp16 = AmpOptimWrapper(optimizer=torch.optim.SGD(make_model().parameters(), lr=0.1), dtype="float16", device_type="cpu")
    assert fp16.loss_scaler is not None
    loss = MagicMock()
    # MMEngine hands it to GradScaler.scale too, which raises ValueError (or returns a map without backward)
    with pytest.raises(ValueError, match="needs a tensor loss, but got MagicMock.*outputs must be a Tensor"):
        fp16.update_params(loss)
    assert loss.backward.call_count == 0 and fp16.inner_count == 0
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'backward'"):
        fp16.backward(None)


def test_past_max_counts_is_a_clear_error():
    model = make_model()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=2)
    wrapper.initialize_count_status(model, 4, 4)
    with pytest.raises(RuntimeError, match="past the run's max_counts=4"):
        wrapper.scale_loss(torch.ones(()))


def test_non_optimizer_is_a_clear_error():
    with pytest.raises(TypeError, match="must be a torch.optim.Optimizer"):
        OptimWrapper(object())


def test_resume_mid_window_warns_only_when_the_window_gradients_are_lost(caplog):
    model = make_model()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=3)
    with caplog.at_level("WARNING"):
        wrapper.initialize_count_status(model, 5, 10)
    assert "Resumed iteration number 5 is not divisible by accumulative_counts=3" in caplog.text
    caplog.clear()
    model(torch.ones(1, 4)).sum().backward()  # the window's gradients were restored (as the Lightning bridge does)
    with caplog.at_level("WARNING"):
        wrapper.initialize_count_status(model, 5, 10)
    assert "not divisible" not in caplog.text
