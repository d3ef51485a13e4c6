"""Everything that imports Lightning: the LightningModule bridge, the optim-wrapper backend and the hook driver."""

from mm2lightning.lightning.backend import LightningBackend
from mm2lightning.lightning.fsdp import MMFSDPStrategy
from mm2lightning.lightning.hook_driver import HookDriver
from mm2lightning.lightning.module import MMLightningModule
from mm2lightning.lightning.runner_view import RunnerView
from mm2lightning.lightning.strategy import MMDDPStrategy, SeparateDDPStrategy

__all__ = [
    "HookDriver", "LightningBackend", "MMDDPStrategy", "MMFSDPStrategy", "MMLightningModule", "RunnerView",
    "SeparateDDPStrategy",
]
