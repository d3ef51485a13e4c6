"""BaseModel: construction, the forward contract, train/val/test steps, devices, parity with mmengine."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from mm2lightning.model import BaseDataPreprocessor, BaseModel, ImgDataPreprocessor
from mm2lightning.registry import MODELS


class RecordingPreprocessor(BaseDataPreprocessor):
    """Records the ``training`` flag it is called with."""

    def __init__(self) -> None:
        super().__init__()
        self.training_flags: list[bool] = []

    def forward(self, data, training=False):
        self.training_flags.append(training)
        return super().forward(data, training)


class RecordingModel(BaseModel):
    """Records how forward is called; returns a loss dict in 'loss' mode."""

    def __init__(self, data_preprocessor=None) -> None:
        super().__init__(data_preprocessor)
        self.weight = nn.Parameter(torch.tensor(2.0))
        self.calls: list[tuple] = []

    def forward(self, inputs, data_samples=None, mode="tensor"):
        self.calls.append((inputs, data_samples, mode))
        if mode == "loss":
            return dict(loss_a=(inputs * self.weight).sum(), acc=torch.tensor(0.5))
        return ["prediction", mode]


class FakeOptimWrapper:
    """Duck-typed optim wrapper recording the order of events."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.losses: list[torch.Tensor] = []

    @contextmanager
    def optim_context(self, model):
        self.events.append("enter")
        yield
        self.events.append("exit")

    def update_params(self, loss):
        self.events.append("update")
        self.losses.append(loss)


# --------------------------------------------------------------------------------------------------
# construction


def test_default_preprocessor_is_base_data_preprocessor():
    model = RecordingModel()
    assert type(model.data_preprocessor) is BaseDataPreprocessor
    assert model.init_cfg is None and model.is_init is False


def test_dict_preprocessor_is_built_through_models():
    model = RecordingModel(dict(type="ImgDataPreprocessor", mean=[1.0], std=[2.0], pad_size_divisor=4))
    assert isinstance(model.data_preprocessor, ImgDataPreprocessor) and model.data_preprocessor.pad_size_divisor == 4


def test_module_preprocessor_is_used_as_is():
    pp = RecordingPreprocessor()
    assert RecordingModel(pp).data_preprocessor is pp


@pytest.mark.parametrize("bad", ["BaseDataPreprocessor", [dict(type="BaseDataPreprocessor")], 3])
def test_bad_preprocessor_type(bad):
    match = rf"data_preprocessor should be a `dict` or `nn.Module` instance, but got {type(bad).__name__}"
    with pytest.raises(TypeError, match=match):
        RecordingModel(bad)


def test_forward_is_abstract():
    with pytest.raises(TypeError, match="abstract"):
        BaseModel()


# --------------------------------------------------------------------------------------------------
# forward contract


def test_dict_batch_by_keyword_list_and_tuple_positionally():
    model = RecordingModel()
    x, samples = torch.ones(2), ["s1", "s2"]
    model.val_step(dict(inputs=x, data_samples=samples))
    model.val_step([x, samples])
    model.test_step((x,))
    assert [(c[1], c[2]) for c in model.calls] == [(samples, "predict"), (samples, "predict"), (None, "predict")]
    assert all(torch.equal(c[0], x) for c in model.calls)


class ReturningPreprocessor(BaseDataPreprocessor):
    def __init__(self, output) -> None:
        super().__init__()
        self.output = output

    def forward(self, data, training=False):
        return self.output


@pytest.mark.parametrize("output, name", [(torch.ones(1), "Tensor"), (None, "NoneType"), ("inputs", "str")])
def test_bad_preprocessor_output_raises(output, name):
    model = RecordingModel(ReturningPreprocessor(output))
    match = rf"output of data_preprocessor should be a dict .* or a list/tuple .*, but got {name}"
    with pytest.raises(TypeError, match=match):
        model.val_step(dict(inputs=1))
    with pytest.raises(TypeError, match=match):
        model.train_step(dict(inputs=1), FakeOptimWrapper([]))


def test_val_and_test_step_return_predict_output_and_training_flags():
    pp = RecordingPreprocessor()
    model = RecordingModel(pp)
    assert model.val_step(dict(inputs=torch.ones(1))) == ["prediction", "predict"]
    assert model.test_step(dict(inputs=torch.ones(1))) == ["prediction", "predict"]
    model.train_step(dict(inputs=torch.ones(1)), FakeOptimWrapper([]))
    assert pp.training_flags == [False, False, True]
    assert [c[2] for c in model.calls] == ["predict", "predict", "loss"]


def test_train_step_order_and_return():
    events: list[str] = []

    class Pre(BaseDataPreprocessor):
        def forward(self, data, training=False):
            events.append("preprocess")
            return super().forward(data, training)

    class Model(RecordingModel):
        def forward(self, *args, **kwargs):
            events.append("forward")
            return super().forward(*args, **kwargs)

        def parse_losses(self, losses):
            events.append("parse_losses")
            return super().parse_losses(losses)

    model = Model(Pre())
    wrapper = FakeOptimWrapper(events)
    log_vars = model.train_step(dict(inputs=torch.tensor([1.0, 2.0])), wrapper)
    assert events == ["enter", "preprocess", "forward", "exit", "parse_losses", "update"]
    assert list(log_vars) == ["loss", "loss_a", "acc"]
    assert wrapper.losses[0].item() == 6.0 and wrapper.losses[0].requires_grad


@pytest.mark.parametrize("output, exc, match", [
    (torch.tensor(1.0), TypeError, r"forward\(mode='loss'\) must return a dict of loss tensors .*but got Tensor"),
    ([torch.tensor(1.0)], TypeError, r"forward\(mode='loss'\) must return a dict .*but got list"),
    (dict(acc=torch.tensor(1.0)), ValueError, r"no key containing 'loss' .*got keys \['acc'\]"),
])
def test_train_step_bad_forward_output(output, exc, match):
    class Model(BaseModel):
        def forward(self, inputs, data_samples=None, mode="tensor"):
            return output

    wrapper = FakeOptimWrapper([])
    with pytest.raises(exc, match=match):
        Model().train_step(dict(inputs=torch.ones(1)), wrapper)
    assert wrapper.losses == []


# --------------------------------------------------------------------------------------------------
# devices


class Container(BaseModel):
    """A model with nested preprocessors, one of them inside a plain submodule."""

    def __init__(self, extra: nn.Module | None = None) -> None:
        super().__init__(ImgDataPreprocessor(mean=[1.0], std=[2.0]))
        self.linear = nn.Linear(1, 1)
        self.sub = nn.ModuleDict(dict(pp=BaseDataPreprocessor()))
        if extra is not None:
            self.extra = extra

    def forward(self, inputs, data_samples=None, mode="tensor"):
        return inputs

    def preprocessors(self):
        return [m for m in self.modules() if hasattr(m, "_device")]


def _devices(model):
    return {str(m._device) for m in model.preprocessors()}


@pytest.mark.parametrize(
    "args, kwargs",
    [
        (("cpu",), {}),
        ((torch.device("cpu"),), {}),
        ((torch.device("cpu"), torch.float64), {}),
        ((), dict(device="cpu", dtype=torch.float64)),
        (("cpu",), dict(dtype=torch.float64)),
    ],
)
def test_to_sets_device_of_every_preprocessor(args, kwargs):
    model = Container()
    for m in model.preprocessors():
        m._device = torch.device("meta")  # so that setting 'cpu' is observable
    assert model.to(*args, **kwargs) is model
    assert _devices(model) == {"cpu"}
    expected_dtype = kwargs.get("dtype", args[1] if len(args) > 1 else torch.float32)
    assert model.linear.weight.dtype == expected_dtype


def test_dtype_only_to_keeps_device():
    model = Container().to("meta")
    assert _devices(model) == {"meta"} and model.linear.weight.device.type == "meta"
    model.to(torch.float64)
    model.to(dtype=torch.float16)
    assert _devices(model) == {"meta"} and model.linear.weight.dtype == torch.float16


def test_cpu_sets_device_of_every_preprocessor():
    model = Container()
    for m in model.preprocessors():
        m._device = torch.device("meta")
    assert model.cpu() is model and _devices(model) == {"cpu"}


def test_to_reaches_mmengine_preprocessors_too(mmengine):
    from mmengine.model import BaseDataPreprocessor as MMBase

    model = Container(extra=MMBase()).to("meta")
    assert len(model.preprocessors()) == 3 and _devices(model) == {"meta"}


def test_preprocessor_moves_data_to_model_device():
    model = Container().to("meta")
    out = model.data_preprocessor(dict(inputs=[torch.ones(1, 2, 2)]))
    assert out["inputs"].device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_sets_device_of_every_preprocessor():
    model = Container().cuda()
    assert _devices(model) == {"cuda"} and model.linear.weight.is_cuda
    assert model.val_step(dict(inputs=[torch.ones(1, 2, 2)])).is_cuda
    model.cpu()
    assert _devices(model) == {"cpu"}
    model.to("cuda:0")
    assert _devices(model) == {"cuda:0"}


# --------------------------------------------------------------------------------------------------
# train_step parity with mmengine (the migration guide's toy model)

# Per-iteration losses of mmengine 0.10.7's Runner on this toy (shared/reference spec, section 12).
REFERENCE_LOSSES = [0.692925, 0.619000, 0.550870, 0.488082, 0.430216, 0.376887, 0.327739, 0.282445, 0.240701, 0.202230]


def _toy_model_class(base):
    class ToyModel(base):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(1, 1)

        def forward(self, img, label, mode="tensor"):
            feat = self.linear(img)
            if mode == "loss":
                return dict(loss1=(feat - label).pow(2), loss2=(feat - label).abs())
            return [feat]

    return ToyModel


def _train(model_cls, wrapper_cls, iters=10):
    torch.manual_seed(0)
    model = model_cls()
    wrapper = wrapper_cls(torch.optim.SGD(model.parameters(), lr=0.01))
    loader = DataLoader([(torch.ones(1, 1), torch.ones(1, 1))] * (2 * iters), batch_size=2)
    trace = []
    for batch in loader:
        log_vars = model.train_step(batch, wrapper)
        trace.append(
            (
                [(k, v.item()) for k, v in log_vars.items()],
                [p.detach().clone() for p in model.parameters()],
            )
        )
    return trace


def _assert_traces_equal(ours, ref):
    assert len(ours) == len(ref) == 10
    for i, ((log, params), (ref_log, ref_params)) in enumerate(zip(ours, ref)):
        assert [k for k, _ in log] == [k for k, _ in ref_log] == ["loss", "loss1", "loss2"]
        for (_, v), (_, rv) in zip(log, ref_log):
            assert abs(v - rv) <= 1e-6, f"iteration {i + 1}"
        for p, rp in zip(params, ref_params):
            assert (p - rp).abs().max().item() <= 1e-6, f"iteration {i + 1}"


def test_train_step_matches_mmengine(mmengine):
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.optim import OptimWrapper as MMOptimWrapper

    ref = _train(_toy_model_class(MMBaseModel), MMOptimWrapper)
    ours = _train(_toy_model_class(BaseModel), MMOptimWrapper)
    _assert_traces_equal(ours, ref)
    assert [log[0][1] for log, _ in ours] == pytest.approx(REFERENCE_LOSSES, abs=1e-6)


def test_train_step_with_our_optim_wrapper_matches_mmengine(mmengine):
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.optim import OptimWrapper as MMOptimWrapper

    from mm2lightning.optim.optim_wrapper import OptimWrapper

    ref = _train(_toy_model_class(MMBaseModel), MMOptimWrapper)
    _assert_traces_equal(_train(_toy_model_class(BaseModel), OptimWrapper), ref)
    # An unmodified mmengine model trained through our OptimWrapper.
    _assert_traces_equal(_train(_toy_model_class(MMBaseModel), OptimWrapper), ref)


def test_registered_model_builds_with_preprocessor_config():
    @MODELS.register_module(force=True)
    class RegisteredToy(_toy_model_class(BaseModel)):
        pass

    model = MODELS.build(dict(type="RegisteredToy"))
    assert isinstance(model, RegisteredToy) and type(model.data_preprocessor) is BaseDataPreprocessor
