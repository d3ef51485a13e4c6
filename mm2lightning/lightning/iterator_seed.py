"""The draw MMEngine's ``IterBasedTrainLoop`` makes before the weights are initialised.

MMEngine's iteration-based loop creates its data iterator when it is built, before ``init_weights``; creating
a ``DataLoader`` iterator draws its base seed from torch's global generator. Lightning creates the iterator
after the weights are initialised. :class:`IteratorSeed` makes that draw at MMEngine's moment and has the
first iterator take it from a copy of the generator, so the global generator's stream (weight initialisation,
dropout, ...) and the iterator's base seed (its workers' seeds) are MMEngine's.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader


class IteratorSeed(pl.Callback):
    """Draws the first training iterator's base seed early; later iterators draw from the global generator."""

    def __init__(self) -> None:
        self._state: torch.Tensor | None = None
        self._generator: torch.Generator | None = None

    def draw(self) -> None:
        """Call where MMEngine builds its loop: draw as the iterator would, keeping the state it drew from."""
        self._state = torch.get_rng_state()
        torch.empty((), dtype=torch.int64).random_()

    def attach(self, loader: DataLoader) -> None:
        """The first iterator of ``loader`` takes the early draw (a loader with its own generator keeps it)."""
        if self._state is None or loader.generator is not None:
            return
        self._generator = torch.Generator()
        self._generator.set_state(self._state)
        loader.generator = self._generator
        self._state = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.release(trainer.train_dataloader)

    def release(self, loader: Any) -> None:
        """The first iterator exists: the next ones draw from the global generator, as MMEngine's."""
        if self._generator is not None and getattr(loader, "generator", None) is self._generator:
            loader.generator = None
        self._generator = None
