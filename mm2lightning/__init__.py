"""mm2lightning: train MMEngine-style models with PyTorch Lightning.

The core (:mod:`mm2lightning.model`, :mod:`mm2lightning.optim`,
:mod:`mm2lightning.registry`) is plain PyTorch and does not import Lightning;
``from mm2lightning import MMLightningModule`` (or ``SeparateDDPStrategy``,
``MMDDPStrategy``, ``MMFSDPStrategy``) imports the Lightning bridge on first use.
"""

from typing import Any

__version__ = "0.1.0"
_LIGHTNING_NAMES = ("MMDDPStrategy", "MMFSDPStrategy", "MMLightningModule", "SeparateDDPStrategy")
__all__ = [*_LIGHTNING_NAMES, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LIGHTNING_NAMES:
        import mm2lightning.lightning

        return getattr(mm2lightning.lightning, name)
    raise AttributeError(f"module 'mm2lightning' has no attribute {name!r}")
