"""The user module a config names in custom_imports: a model, a data set and a metric, registered by name."""

import torch
from torch import nn

from mm2lightning.evaluator import BaseMetric
from mm2lightning.model import BaseModel
from mm2lightning.registry import DATASETS, METRICS, MODELS


@MODELS.register_module()
class CliToyModel(BaseModel):
    def __init__(self, hidden: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x, y, mode="tensor"):
        out = self.body(x)
        if mode == "loss":
            return dict(loss=(out - y).pow(2).mean())
        if mode == "predict":
            return [(out - y).pow(2).mean()]
        return out


@DATASETS.register_module()
class CliToySet(torch.utils.data.Dataset):
    def __init__(self, size: int = 20, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(size, 2, generator=gen)
        self.y = self.x.sum(1, keepdim=True).cos()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


@METRICS.register_module()
class CliMSE(BaseMetric):
    def process(self, data_batch, data_samples) -> None:
        self.results.extend(float(v) for v in data_samples)

    def compute_metrics(self, results) -> dict:
        return dict(mse=sum(results) / len(results))


@MODELS.register_module()
class CliBrokenModel(BaseModel):
    """A model with a bug in __init__ (for the CLI's error location)."""

    def __init__(self, hidden: int = 4, sizes=None) -> None:
        super().__init__()
        self.width = sizes["in"]

    def forward(self, *args, **kwargs):
        raise NotImplementedError
