"""BaseTTAModel against mmengine's: the views of a batch, the wrapped model's test_step on each, merged."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mm2lightning.model import BaseModel, BaseTTAModel


def make_classes(base_model: type, base_tta: type) -> tuple[type, type]:
    class Scorer(base_model):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.linear = nn.Linear(3, 2)

        def forward(self, inputs, labels=None, mode="tensor"):
            scores = self.linear(torch.stack(inputs) if isinstance(inputs, list) else inputs).softmax(-1)
            return [dict(score=s, gt=int(g)) for s, g in zip(scores, labels)] if mode == "predict" else scores

    class AverageTTA(base_tta):
        def merge_preds(self, data_samples_list):
            return [dict(score=torch.stack([v["score"] for v in views]).mean(0), gt=views[0]["gt"])
                    for views in data_samples_list]

    return Scorer, AverageTTA


def _views() -> dict:
    gen = torch.Generator().manual_seed(1)
    batch = [torch.randn(3, generator=gen) for _ in range(4)]
    return dict(inputs=[batch, [-x for x in batch]], labels=[[0, 1, 1, 0], [0, 1, 1, 0]])  # 2 views of 4 samples


@pytest.mark.parametrize("form", ["dict", "tuple"])
def test_test_step_merges_the_views_as_mmengines(mmengine, form):
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.model import BaseTTAModel as MMBaseTTAModel

    results = []
    for base_model, base_tta in ((BaseModel, BaseTTAModel), (MMBaseModel, MMBaseTTAModel)):
        scorer, tta = make_classes(base_model, base_tta)
        data = _views() if form == "dict" else tuple(_views().values())
        results.append(tta(module=scorer()).test_step(data))
    ours, theirs = results
    assert len(ours) == len(theirs) == 4
    for a, b in zip(ours, theirs):
        assert torch.allclose(a["score"], b["score"]) and a["gt"] == b["gt"]
    assert not torch.allclose(ours[0]["score"], make_classes(BaseModel, BaseTTAModel)[0]().test_step(
        dict(inputs=_views()["inputs"][0], labels=[0, 1, 1, 0]))[0]["score"])  # the flipped view counts


def test_bad_modules_and_data_are_refused_as_mmengine():
    scorer, tta = make_classes(BaseModel, BaseTTAModel)
    with pytest.raises(TypeError, match="should be a `nn.Module` instance or a dict"):
        tta(module=3)
    with pytest.raises(AssertionError, match="must implement `test_step`"):
        tta(module=nn.Linear(1, 1))
    with pytest.raises(TypeError, match="should be a dict, tuple or a list"):
        tta(module=scorer()).test_step(torch.zeros(2))


def test_a_checkpoint_loads_into_the_wrapped_model_as_mmengines(mmengine, tmp_path):
    from mm2lightning.runner import Runner

    scorer, tta = make_classes(BaseModel, BaseTTAModel)
    trained = scorer()
    with torch.no_grad():
        trained.linear.weight.add_(1.0)
    torch.save(dict(state_dict=trained.state_dict()), tmp_path / "scorer.pth")
    runner = Runner(model=tta(module=scorer()), work_dir=str(tmp_path))
    runner.load_checkpoint(tmp_path / "scorer.pth")  # the plain model's keys, as MMEngine's load_state_dict
    assert torch.equal(runner.model.module.linear.weight, trained.linear.weight)
