"""A small regression model for the Lightning tests, with seeded random data."""

from __future__ import annotations

import torch
from torch import nn

from mm2lightning.model import BaseModel


class Net(BaseModel):
    """A small regression model with random data, so that resumed and distributed runs have something to get wrong."""

    def __init__(self, data_preprocessor: nn.Module | None = None) -> None:
        super().__init__(data_preprocessor)
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x, y, mode="tensor"):
        out = self.body(x)
        if mode == "loss":
            return dict(loss_mse=(out.float() - y).pow(2), loss_l1=(out.float() - y).abs() * 0.1)
        return out


def net_data(n: int = 40) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(n, 4, generator=gen)
    return list(zip(x, x.sum(1, keepdim=True).sin()))
