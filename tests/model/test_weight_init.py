"""Weight initialisation (init_cfg, WEIGHT_INITIALIZERS, the init functions) against mmengine 0.10.7, bit for bit.

Every model is written once against a model API (``mm2lightning.model`` or ``mmengine.model``), built on the same
seed with each, initialised, and compared: parameters and buffers, torch's RNG state afterwards (the same draws
in the same order) and the per-parameter init info each BaseModule logs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import mm2lightning.model as ours_api
from mm2lightning.registry import WEIGHT_INITIALIZERS, RegistryError
from mm2lightning.runner.checkpoint import CheckpointError, load_checkpoint_file, model_state_dict


@pytest.fixture(scope="module")
def mm_api():
    return pytest.importorskip("mmengine.model", reason="parity tests need mmengine (pip install -e '.[test]')")


# ------------------------------------------------------------------------------------------------ models
def make_net(api, init_cfg=None, head_out: int = 2) -> nn.Module:
    """Convs, norms and linears at several depths, on ``api.BaseModule``."""

    class Net(api.BaseModule):
        def __init__(self) -> None:
            super().__init__(init_cfg)
            self.conv1 = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.conv2 = nn.Conv2d(4, 4, 1, bias=False)
            self.head = nn.Linear(4, head_out)
            self.extra = nn.Sequential(nn.Linear(head_out, 3), nn.GroupNorm(1, 3), nn.Conv1d(3, 3, 1))

        def forward(self, x):
            x = self.conv2(self.bn(self.conv1(x)).relu()).mean((2, 3))
            return self.extra[1](self.extra[0](self.head(x)))

    return Net()


def make_nested(api, top_cfg=None) -> nn.Module:
    """Nested BaseModules with their own init_cfg, custom init_weights, a wrapper, a plain module, containers."""

    class Leaf(api.BaseModule):
        def __init__(self, init_cfg=None) -> None:
            super().__init__(init_cfg)
            self.fc = nn.Linear(3, 3)
            self.norm = nn.BatchNorm1d(3)

    class Custom(api.BaseModule):
        def __init__(self) -> None:
            super().__init__(init_cfg=dict(type="Uniform", layer="Linear", a=-0.1, b=0.1))
            self.fc = nn.Linear(3, 3)
            self.leaf = Leaf(dict(type="Constant", layer="BatchNorm1d", val=2))

        def init_weights(self) -> None:
            super().init_weights()
            with torch.no_grad():
                self.fc.weight.add_(torch.randn_like(self.fc.weight))

    class PlainWithInit(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def init_weights(self) -> None:
            nn.init.orthogonal_(self.fc.weight)

    class Root(api.BaseModule):
        def __init__(self) -> None:
            super().__init__(init_cfg=top_cfg or [
                dict(type="Kaiming", layer="Conv2d"),
                dict(type="Normal", layer="Linear", std=0.01),
                dict(type="Constant", layer="_BatchNorm", val=1, bias=0.5),
            ])
            self.conv = nn.Conv2d(3, 3, 1)
            self.leaf = Leaf(dict(type="TruncNormal", layer="Linear", std=0.2))
            self.leaf_default = Leaf()  # no init_cfg: the parent's initialisation stays
            self.custom = Custom()
            self.plain = PlainWithInit()
            self.wrapped = nn.DataParallel(Leaf(dict(type="Xavier", layer="Linear")))
            self.seq = api.Sequential(
                nn.Linear(3, 3), nn.BatchNorm1d(3), init_cfg=dict(type="Kaiming", layer="Linear", distribution="uniform")
            )
            self.mlist = api.ModuleList([nn.Conv2d(3, 3, 1), Leaf()], init_cfg=dict(type="Uniform", layer="Conv2d"))
            self.mdict = api.ModuleDict(
                {"a": nn.Linear(3, 3), "b": Leaf(dict(type="Constant", layer="Linear", val=3))},
                init_cfg=dict(type="Caffe2Xavier", layer="Linear"),
            )

    return Root()


# ------------------------------------------------------------------------------------------------ harness
@pytest.fixture
def init_both(mm_api, monkeypatch):
    """``init_both(build, seed, rename)``: build and init_weights with each API on one seed; assert all equal.

    ``rename`` = (old, new) is applied to mmengine's init info (a checkpoint path that differs by design).
    """
    infos: dict[str, list] = {"ours": [], "ref": []}

    def recorder(key):
        def record(self) -> None:
            infos[key].append({n: self._params_init_info[p]["init_info"] for n, p in self.named_parameters()})

        return record

    monkeypatch.setattr(ours_api.BaseModule, "_dump_init_info", recorder("ours"))
    monkeypatch.setattr(mm_api.BaseModule, "_dump_init_info", recorder("ref"))

    def run(build, seed: int = 0, rename: tuple[str, str] = ("", "")):
        results = []
        for api in (ours_api, mm_api):
            torch.manual_seed(seed)
            model = build(api)
            model.init_weights()
            results.append((model, torch.get_rng_state()))
        (ours, ours_rng), (ref, ref_rng) = results
        assert_same_state(ours, ref)
        assert torch.equal(ours_rng, ref_rng), "a different number of random draws"
        ref_infos = [{k: v.replace(*rename) for k, v in info.items()} for info in infos["ref"]]
        assert infos["ours"] == ref_infos and len(ref_infos) == 1
        infos["ours"].clear()
        infos["ref"].clear()
        torch.manual_seed(seed)
        fresh = build(ours_api)
        changed = [k for k, v in fresh.state_dict().items() if not torch.equal(v, ours.state_dict()[k])]
        assert changed, "init_weights changed nothing: the case tests nothing"
        assert ours.is_init and not hasattr(ours, "_params_init_info")
        return ours, ref, changed

    return run


def assert_same_state(ours: nn.Module, ref: nn.Module) -> None:
    a, b = ours.state_dict(), ref.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


CASES = {
    "constant-conv": dict(type="Constant", val=1, bias=2, layer="Conv2d"),
    "constant-list-bias_prob": dict(type="Constant", val=0.5, layer=["Conv2d", "Linear"], bias_prob=0.01),
    "constant-batchnorm2d": dict(type="Constant", layer="BatchNorm2d", val=0.3, bias=0.1),
    "constant-base-class-names": dict(type="Constant", layer=["_BatchNorm", "_ConvNd"], val=2),
    "xavier-uniform": dict(type="Xavier", gain=2, distribution="uniform", layer="Linear"),
    "xavier-normal-bias": dict(type="Xavier", layer=["Conv2d", "Linear", "Conv1d"], bias=0.1),
    "normal-mean-std": dict(type="Normal", mean=1, std=0.02, layer="Linear"),
    "normal-bias_prob": dict(type="Normal", layer=["Conv2d", "GroupNorm"], bias_prob=0.2),
    "truncnormal-a-b": dict(type="TruncNormal", mean=0.1, std=0.5, a=-0.3, b=0.4, layer=["Conv2d", "Linear"]),
    "truncnormal-default": dict(type="TruncNormal", layer="Linear", bias_prob=0.1),
    "uniform": dict(type="Uniform", a=-1, b=2, layer="Conv2d", bias=-0.5),
    "kaiming-default": dict(type="Kaiming", layer="Conv2d"),
    "kaiming-leaky-fan_in-uniform": dict(
        type="Kaiming", a=0.1, mode="fan_in", nonlinearity="leaky_relu", distribution="uniform", layer=["Conv2d", "Linear"]
    ),
    "kaiming-linear-nonlinearity": dict(type="Kaiming", mode="fan_in", nonlinearity="linear", layer="Linear"),
    "caffe2xavier": dict(type="Caffe2Xavier", layer="Conv2d", bias=0.5),
    "list": [
        dict(type="Kaiming", layer="Conv2d"),
        dict(type="Constant", layer="BatchNorm2d", val=1),
        dict(type="Normal", layer="Linear", std=0.01),
    ],
    "override-with-type": dict(type="Constant", val=1, layer="Conv2d", override=dict(type="Normal", name="head", std=0.01)),
    "override-name-only": dict(type="Normal", layer="Conv2d", std=0.2, bias=2, override=dict(name="extra")),
    "override-list": dict(
        type="Uniform", layer="Linear", override=[dict(name="bn"), dict(type="TruncNormal", name="conv2", std=0.1)]
    ),
    "no-layer-no-effect-but-override": dict(type="Kaiming", override=dict(name="head", type="Constant", val=4)),
}


@pytest.mark.parametrize("init_cfg", list(CASES.values()), ids=list(CASES))
def test_initialisers_match_mmengine(init_both, init_cfg):
    _, _, changed = init_both(lambda api: make_net(api, init_cfg))  # init_both asserts bit-equal weights
    assert changed, "the init_cfg changed no parameter: the case tests nothing"


def test_the_initialiser_class_as_type(init_both):
    _, _, changed = init_both(
        lambda api: make_net(api, [dict(type=api.KaimingInit, layer="Conv2d"), dict(type="Constant", val=1)])
    )
    assert "conv1.weight" in changed


def test_nested_modules_custom_init_weights_and_containers_match_mmengine(init_both):
    ours, _, changed = init_both(make_nested)
    assert ours.custom.is_init and ours.wrapped.module.is_init and ours.mdict["b"].is_init
    assert torch.equal(ours.mdict["b"].fc.weight, torch.full((3, 3), 3.0))  # a child's own init_cfg comes last
    assert "leaf_default.fc.weight" in changed  # the parent's Normal reached the child without init_cfg


def test_a_shared_init_cfg_is_not_consumed(init_both):
    shared = dict(type="Kaiming", layer="Conv2d", override=dict(name="head", type="Constant", val=2))
    ours, _, _ = init_both(lambda api: api.Sequential(make_net(api, shared), make_net(api, shared)))
    assert ours[0].init_cfg == ours[1].init_cfg == shared
    assert torch.equal(ours[1].head.weight, torch.full_like(ours[1].head.weight, 2))


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("constant_init", dict(val=0.7, bias=0.2)),
        ("xavier_init", dict(gain=1.5, distribution="uniform")),
        ("xavier_init", dict(bias=0.3)),
        ("normal_init", dict(mean=0.5, std=0.1, bias=1)),
        ("trunc_normal_init", dict(mean=0, std=0.3, a=-0.2, b=0.5)),
        ("uniform_init", dict(a=-2, b=-1)),
        ("kaiming_init", dict(a=0.2, mode="fan_in", nonlinearity="leaky_relu", distribution="uniform")),
        ("kaiming_init", dict()),
        ("caffe2_xavier_init", dict(bias=0.4)),
    ],
)
def test_init_functions_match_mmengine(mm_api, name, kwargs):
    states = []
    for api in (ours_api, mm_api):
        torch.manual_seed(1)
        module = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Linear(3, 4, bias=False))
        for layer in module:
            getattr(api, name)(layer, **kwargs)
        states.append((module, torch.get_rng_state()))
    assert_same_state(states[0][0], states[1][0])
    assert torch.equal(states[0][1], states[1][1])


def test_bias_init_with_prob_and_initialize_on_a_plain_module(mm_api):
    assert ours_api.bias_init_with_prob(0.01) == mm_api.bias_init_with_prob(0.01) == pytest.approx(-4.59511985)
    cfg = [dict(type="Kaiming", layer="Conv2d", override=dict(name="head")), dict(type="Constant", val=1, layer="_BatchNorm")]
    modules = []
    for api in (ours_api, mm_api):
        torch.manual_seed(2)
        module = nn.Module()
        module.conv, module.bn, module.head = nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2), nn.Linear(2, 2)
        api.initialize(module, cfg)
        modules.append(module)
    assert_same_state(*modules)


def test_update_init_info_records_changed_parameters_and_refuses_new_ones():
    module = nn.Linear(2, 2)
    with pytest.raises(AttributeError, match="Can not find `_params_init_info`"):
        ours_api.update_init_info(module, "x")
    module._params_init_info = {module.weight: dict(init_info="before", tmp_mean_value=module.weight.data.mean())}
    with pytest.raises(RuntimeError, match="Find a new :obj:`Parameter` named `bias`"):
        ours_api.update_init_info(module, "x")
    module.weight.requires_grad_(False).add_(1)
    module._params_init_info[module.bias] = dict(init_info="before", tmp_mean_value=module.bias.data.mean())
    ours_api.update_init_info(module, "changed")
    assert [v["init_info"] for v in module._params_init_info.values()] == ["changed", "before"]


def test_registry_holds_mmengine_names_and_exports_match(mm_api):
    from mmengine.registry import WEIGHT_INITIALIZERS as MM_WEIGHT_INITIALIZERS

    assert set(WEIGHT_INITIALIZERS.module_dict) == set(MM_WEIGHT_INITIALIZERS.module_dict)
    for name, cls in MM_WEIGHT_INITIALIZERS.module_dict.items():
        assert WEIGHT_INITIALIZERS.get(name) is getattr(ours_api, cls.__name__)
    import mmengine.model.weight_init as mm_weight_init

    exported = {name for name in mm_api.__all__ if getattr(mm_weight_init, name, None) is getattr(mm_api, name)}
    assert exported <= set(ours_api.__all__) and len(exported) == 19


# ------------------------------------------------------------------------------------------------ Pretrained
def make_detector(api, init_cfg=None) -> nn.Module:
    """A BaseModel with a Net backbone, trainable for one step (for a Lightning checkpoint)."""

    class Detector(api.BaseModel):
        def __init__(self) -> None:
            super().__init__(init_cfg=init_cfg)
            self.backbone = make_net(api)
            self.cls = nn.Linear(3, 2)

        def forward(self, x, mode="tensor"):
            out = self.cls(self.backbone(x))
            return dict(loss=out.pow(2).mean()) if mode == "loss" else out

    return Detector()


@pytest.fixture(scope="module")
def pretrained(mm_api, tmp_path_factory):
    """A trained Detector's checkpoints: MMEngine's save_checkpoint (``module.``-prefixed keys), a Lightning one."""
    import lightning as L
    from mmengine.runner.checkpoint import get_state_dict, save_checkpoint
    from torch.utils.data import DataLoader

    from mm2lightning import MMLightningModule
    from mm2lightning.runner import convert_checkpoint

    root = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(7)
    model = make_detector(ours_api)
    module = MMLightningModule(model, optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.5)))
    data = DataLoader([dict(x=torch.randn(3, 5, 5)) for _ in range(4)], batch_size=2)
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", default_root_dir=root)
    trainer.fit(module, data)
    trainer.save_checkpoint(root / "lightning.ckpt")
    convert_checkpoint(root / "lightning.ckpt", root / "converted.pth")  # the same weights, for mmengine
    state = get_state_dict(model)
    save_checkpoint({"meta": dict(epoch=1), "state_dict": state}, str(root / "mmengine.pth"))
    save_checkpoint({"state_dict": {f"module.{k}": v for k, v in state.items()}}, str(root / "ddp.pth"))
    torch.save(state, root / "bare.pth")
    return root


@pytest.mark.parametrize(
    "source, prefix",
    [(source, prefix) for source in ("mmengine.pth", "lightning.ckpt", "bare.pth") for prefix in (None, "backbone")]
    + [("ddp.pth", None), ("mmengine.pth", "backbone.")],
)
def test_pretrained_matches_mmengine(init_both, pretrained, source, prefix):
    ref_source = "converted.pth" if source == "lightning.ckpt" else source  # mmengine cannot read Lightning's
    if prefix is None:  # the whole Detector; a pretrained entry listed first is still applied last
        def build(api):
            file = pretrained / (source if api is ours_api else ref_source)
            return make_detector(api, [dict(type="Pretrained", checkpoint=str(file)), dict(type="Normal", layer="Linear")])
    else:  # the backbone's weights only, into a Net
        def build(api):
            file = pretrained / (source if api is ours_api else ref_source)
            return make_net(api, [dict(type="Kaiming", layer="Conv2d"),
                                  dict(type="Pretrained", checkpoint=str(file), prefix=prefix)])
    ours, _, _ = init_both(build, rename=(ref_source, source))
    weights = model_state_dict(load_checkpoint_file(pretrained / "lightning.ckpt"))
    for key, value in ours.state_dict().items():
        assert torch.equal(value, weights[f"backbone.{key}" if prefix else key]), key


def test_pretrained_with_a_shape_mismatch_skips_it_with_a_warning_as_mmengine(init_both, pretrained, log_text):
    def build(api):
        return make_net(api, dict(type="Pretrained", checkpoint=str(pretrained / "converted.pth"), prefix="backbone"),
                        head_out=5)

    ours, _, changed = init_both(build)
    assert "head.weight" not in changed and "conv1.weight" in changed
    text = log_text()
    assert "size mismatch for head.weight" in text and "do not match exactly" in text


def _write_marker(path: str) -> None:
    Path(path).write_text("code from the checkpoint ran")


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_write_marker, (str(self.marker),))


def test_pretrained_refuses_files_that_would_run_code_or_are_not_checkpoints(tmp_path):
    marker = tmp_path / "MARKER"
    torch.save({"state_dict": {"head.weight": torch.ones(2, 4)}, "meta": _RunsCode(marker)}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"evil.pth: not loaded, because loading it could run code"):
        make_net(ours_api, dict(type="Pretrained", checkpoint=str(tmp_path / "evil.pth"))).init_weights()
    assert not marker.exists()
    torch.save({"weights": [1, 2]}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="unrecognised checkpoint layout"):
        make_net(ours_api, dict(type="Pretrained", checkpoint=str(tmp_path / "odd.pth"))).init_weights()


@pytest.mark.parametrize(
    "cfg, ours_error, ref_error, match",
    [
        (dict(checkpoint="{root}/missing.pth"), FileNotFoundError, FileNotFoundError, "missing.pth"),
        (dict(checkpoint="{root}/converted.pth", prefix="neck"), ValueError, AssertionError, r"neck\. is not in the"),
        (dict(checkpoint="{root}/ddp.pth", prefix="backbone"), ValueError, AssertionError, "first names: .'module"),
        (dict(checkpoint="s3://bucket/r50.pth"), ValueError, None, "the scheme is not supported"),
    ],
    ids=["missing-file", "prefix-not-found", "prefix-keeps-module.", "file-backend-url"],
)
def test_pretrained_errors(mm_api, pretrained, cfg, ours_error, ref_error, match):
    cfg = dict(cfg, type="Pretrained", checkpoint=cfg["checkpoint"].format(root=pretrained))
    with pytest.raises(ours_error, match=match):
        make_net(ours_api, cfg).init_weights()
    if ref_error is not None:  # mmengine would need its petrel backend for s3://
        with pytest.raises(ref_error):
            make_net(mm_api, cfg).init_weights()


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "init_cfg, error, match",
    [
        (dict(type="Kaimnig", layer="Conv2d"), KeyError, r"'Kaimnig' is not registered in the 'weight initializer' "
                                                          r"registry\. Did you mean: 'Kaiming'"),
        (dict(type="Kaiming", layer=3), TypeError, "layer must be a str or a list of str"),
        (dict(type="Constant", val=1, bias="1"), TypeError, "bias must be a number"),
        (dict(type="Constant", val=1, bias_prob=1), TypeError, "bias_prob type must be float"),
        (dict(type="Constant", val=1, override=dict(name="neck")), RuntimeError, "module did not have attribute neck"),
        (dict(type="Constant", val=1, override=dict(name="head", val=2)), ValueError, '`override` need "type" key'),
        (dict(type="Constant", val=1, override=dict(type="Normal")), ValueError, '`override` must contain the key "name"'),
        (dict(type="Constant", val=1, override="head"), TypeError, "override must be a dict or a list of dict"),
        (dict(type="Constant", value=1), TypeError, "ConstantInit"),
    ],
    ids=["unknown-type", "bad-layer", "bad-bias", "bad-bias_prob", "override-not-found", "override-no-type",
         "override-no-name", "override-not-dict", "bad-argument"],
)
def test_errors_match_mmengine(mm_api, init_cfg, error, match):
    with pytest.raises(error, match=match):
        make_net(ours_api, init_cfg).init_weights()
    with pytest.raises(error):
        make_net(mm_api, init_cfg).init_weights()


def test_unknown_type_is_a_registry_error_and_bad_arguments_are_named():
    with pytest.raises(RegistryError):
        ours_api.initialize(nn.Linear(1, 1), dict(type="Pretrain"))
    with pytest.raises(TypeError, match="init_cfg must be a dict or a list of dict"):
        ours_api.initialize(nn.Linear(1, 1), "Kaiming")
    with pytest.raises(ValueError, match=r"distribution must be one of \['uniform', 'normal'\], but got 'gaussian'"):
        ours_api.initialize(nn.Linear(1, 1), dict(type="Xavier", layer="Linear", distribution="gaussian"))


def test_init_weights_twice_only_warns(log_text):
    model = make_nested(ours_api)
    model.init_weights()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    model.init_weights()
    lines = [line for line in log_text().splitlines() if " - WARNING - " in line]
    assert len(lines) == 1 and lines[0].endswith("init_weights of Root has been called more than once.")
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# ------------------------------------------------------------------------------------------------ init info log
def test_init_info_is_written_to_file_handlers_as_mmengine(mm_api, tmp_path):
    from mmengine.logging import MMLogger

    from mm2lightning.logging import MMLogger as OursLogger

    for logger_cls, api, name in ((OursLogger, ours_api, "ours"), (MMLogger, mm_api, "ref")):
        logger = logger_cls.get_instance("weight_init_test", log_file=str(tmp_path / f"{name}.log"), log_level="WARNING")
        try:
            torch.manual_seed(0)
            make_net(api, CASES["override-with-type"]).init_weights()
        finally:
            for handler in logger.handlers:
                handler.close()
            logger.handlers.clear()
    text = (tmp_path / "ours.log").read_text()
    assert text == (tmp_path / "ref.log").read_text()
    assert "head.weight - torch.Size([2, 4]): \nNormalInit: mean=0, std=0.01, bias=0 \n" in text


def test_init_info_is_logged_at_info_level_without_a_file_handler(tmp_path, capsys):
    from mm2lightning.logging import MMLogger

    MMLogger.get_instance(f"no_file_{tmp_path.name}", log_level="INFO")  # console only
    make_net(ours_api, dict(type="Constant", layer="Linear", val=1)).init_weights()
    out = capsys.readouterr().out
    assert out.count(" - INFO - ") == len(list(make_net(ours_api).parameters()))
    assert "\nhead.weight - torch.Size([2, 4]): \nConstantInit: val=1, bias=0 \n " in out
