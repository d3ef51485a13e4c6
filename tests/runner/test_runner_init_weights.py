"""Runner.train() initialises the model (init_cfg) as MMEngine's Runner: same initial weights, same final ones."""

from __future__ import annotations

import torch
from torch import nn

import mm2lightning.model as ours_api
from mm2lightning.registry import MODELS
from mm2lightning.runner import Runner
from test_runner import config, quiet  # tests/runner is on sys.path (pytest's rootdir-relative import)

MODEL_NAME = "RunnerInitWeightsNet"


def make_init_net(api) -> type:
    """A regression model with convs, a norm and a nested BaseModule, each initialised by ``init_cfg``.

    ``init_weights`` records torch's RNG state before it runs and the weights right after.
    """

    class Head(api.BaseModule):
        def __init__(self) -> None:
            super().__init__(init_cfg=dict(type="Normal", layer="Linear", std=0.1, bias=0.01))
            self.fc = nn.Linear(8, 1)

        def forward(self, x):
            return self.fc(x)

    class InitNet(api.BaseModel):
        def __init__(self) -> None:
            super().__init__(init_cfg=[
                dict(type="Kaiming", layer="Conv1d", mode="fan_in"),
                dict(type="Constant", layer="_BatchNorm", val=1.0, bias=0.1),
            ])
            self.conv = nn.Conv1d(1, 2, 3, padding=1)
            self.norm = nn.BatchNorm1d(2)
            self.head = Head()

        def init_weights(self) -> None:
            self.rng_before_init = torch.get_rng_state()
            super().init_weights()
            self.initial = {k: v.detach().clone() for k, v in self.state_dict().items()}

        def forward(self, x, y, mode="tensor"):
            out = self.head(self.norm(self.conv(x.unsqueeze(1))).relu().flatten(1))
            if mode == "loss":
                return dict(loss=(out - y).pow(2).mean())
            return out

    return InitNet


MODELS.register_module(name=MODEL_NAME, module=make_init_net(ours_api))


def test_init_cfg_weights_and_training_equal_mmengine_runner(mmengine, tmp_path):
    from mmengine.registry import DATASETS as MM_DATASETS
    from mmengine.registry import MODELS as MM_MODELS
    from mmengine.runner import Runner as MMRunner
    from test_runner import RegressionSet

    MM_MODELS.register_module(name=MODEL_NAME, module=make_init_net(mmengine.model), force=True)
    MM_DATASETS.register_module(name="RunnerTestRegressionSet", module=RegressionSet, force=True)

    ref = MMRunner.from_cfg(mmengine.config.Config(dict(config(tmp_path / "mmengine"), model=dict(type=MODEL_NAME))))
    ref.train()
    ref_model = getattr(ref.model, "module", ref.model)
    runner = Runner.from_cfg(
        dict(config(tmp_path / "ours"), model=dict(type=MODEL_NAME), trainer_cfg=quiet()["trainer_cfg"])
    )
    model = runner.train()

    assert torch.equal(model.rng_before_init, ref_model.rng_before_init), "torch RNG consumed differently before init"
    assert list(model.initial) == list(ref_model.initial)
    for name, value in model.initial.items():
        assert torch.equal(value, ref_model.initial[name]), name
    assert (model.initial["norm.weight"] == 1).all() and (model.initial["norm.bias"] == 0.1).all()
    assert (model.initial["head.fc.bias"] == 0.01).all()
    assert runner.trainer.global_step == 15  # 3 epochs of 5 batches
    for (name, p), q in zip(model.state_dict().items(), ref_model.state_dict().values(), strict=True):
        assert (p - q).abs().max().item() <= 1e-6, name
