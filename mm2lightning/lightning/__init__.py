"""Everything that imports Lightning: the LightningModule bridge and the optim-wrapper backend."""

from mm2lightning.lightning.backend import LightningBackend
from mm2lightning.lightning.module import MMLightningModule
from mm2lightning.lightning.strategy import MMDDPStrategy, SeparateDDPStrategy

__all__ = ["LightningBackend", "MMDDPStrategy", "MMLightningModule", "SeparateDDPStrategy"]
