"""The toy model and data of MMEngine's migration guide (docs/en/migration/model.md)."""

from __future__ import annotations

import torch
from torch import nn

from mm2lightning.model import BaseModel
from mm2lightning.registry import DATASETS, MODELS


@MODELS.register_module()
class ToyModel(BaseModel):
    """``nn.Linear(1, 1)`` trained on ones -> ones with a squared and an absolute loss."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, img: torch.Tensor, label: torch.Tensor, mode: str = "tensor"):
        feat = self.linear(img)
        if mode == "loss":
            return dict(loss1=(feat - label).pow(2), loss2=(feat - label).abs())
        if mode == "predict":
            return [f for f in feat]
        return feat


def toy_dataset() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """50 samples of ``(ones(1, 1), ones(1, 1))``."""
    return [(torch.ones(1, 1), torch.ones(1, 1))] * 50


@DATASETS.register_module()
class ToyDataset(torch.utils.data.Dataset):
    """:func:`toy_dataset` as a registered data set, for configs (``dataset=dict(type='ToyDataset')``)."""

    def __init__(self) -> None:
        self.items = toy_dataset()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.items[index]
