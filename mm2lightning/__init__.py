"""mm2lightning: train MMEngine-style models with PyTorch Lightning.

The core (:mod:`mm2lightning.model`, :mod:`mm2lightning.optim`,
:mod:`mm2lightning.registry`) is plain PyTorch and does not import Lightning;
``from mm2lightning import MMLightningModule`` imports the Lightning bridge on
first use.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["MMLightningModule", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "MMLightningModule":
        from mm2lightning.lightning import MMLightningModule

        return MMLightningModule
    raise AttributeError(f"module 'mm2lightning' has no attribute {name!r}")
