"""The data of the Runner's passes as MMEngine's loops give it: custom batch samplers run to their end, a run
resumed mid-epoch gets the data the uninterrupted run would have got, and one resumed from MMEngine's
iteration-based checkpoint loads the batches MMEngine's loop loads."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch.utils.data import BatchSampler, DataLoader

from mm2lightning.dataset import InfiniteSampler


class SkipFirstBatches:
    """Wraps a DataLoader's (batch) sampler: its next pass starts ``count`` batches in; later passes are whole."""

    def __init__(self, sampler: Any, count: int) -> None:
        self.sampler = sampler
        self.count = count

    def __iter__(self) -> Any:
        indices = iter(self.sampler)
        for _ in range(self.count):
            next(indices)
        self.count = 0
        return indices

    def __len__(self) -> int:
        return len(self.sampler)

    def __getattr__(self, name: str) -> Any:  # batch_size, drop_last, set_epoch, ... of the wrapped sampler
        if name == "sampler":  # not set yet (e.g. while copying): no endless recursion
            raise AttributeError(name)
        return getattr(self.sampler, name)


class WholePasses:
    """Wraps a custom batch sampler: each pass runs it to its end before the first batch is used.

    MMEngine's loops iterate the dataloader until it is exhausted; Lightning stops after ``len(dataloader)``
    batches without resuming the sampler after its last batch, so the code a sampler runs there never runs
    (mmdet's ``AspectRatioBatchSampler`` empties its buckets there: the next pass would start with stale ones).
    """

    def __init__(self, batch_sampler: Any) -> None:
        self.batch_sampler = batch_sampler

    def __iter__(self) -> Any:
        return iter(list(self.batch_sampler))

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __getattr__(self, name: str) -> Any:  # batch_size, drop_last, sampler, ... of the wrapped batch sampler
        if name == "batch_sampler":
            raise AttributeError(name)
        return getattr(self.batch_sampler, name)


class FixedEpoch:
    """Wraps a DataLoader's sampler without its ``set_epoch``: Lightning sets the sampler's epoch at every epoch
    (MMEngine's ``DistSamplerSeedHook``); without that hook (``default_hooks=dict(sampler_seed=None)``) MMEngine's
    sampler keeps epoch 0, so every epoch shuffles alike."""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler

    def __iter__(self) -> Any:
        return iter(self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)

    def __getattr__(self, name: str) -> Any:
        if name in ("sampler", "set_epoch"):
            raise AttributeError(name)
        return getattr(self.sampler, name)


def fixed_epoch(loader: DataLoader) -> None:
    """Keep ``loader``'s sampler at its epoch (see :class:`FixedEpoch`): as Lightning finds it, the loader's
    ``sampler`` and its batch sampler's."""
    object.__setattr__(loader, "sampler", FixedEpoch(loader.sampler))  # DataLoader forbids setattr
    batch_sampler = loader.batch_sampler
    batch_sampler = getattr(batch_sampler, "batch_sampler", batch_sampler)  # the one WholePasses wraps
    if getattr(batch_sampler, "sampler", None) is not None:
        batch_sampler.sampler = FixedEpoch(batch_sampler.sampler)


def whole_passes(loader: DataLoader) -> None:
    """Make each pass of ``loader`` run a custom, finite batch sampler to its end (see :class:`WholePasses`)."""
    batch_sampler = loader.batch_sampler
    if batch_sampler is None or type(batch_sampler) is BatchSampler:
        return
    samplers = (loader.sampler, getattr(batch_sampler, "sampler", None))
    if any(cls.__name__ == "InfiniteSampler" for sampler in samplers for cls in type(sampler).__mro__):
        return  # a stream without end (ours or mmengine's InfiniteSampler): nothing runs after a last batch
    object.__setattr__(loader, "batch_sampler", WholePasses(batch_sampler))  # DataLoader forbids setattr


def _resume_in_epoch(loader: DataLoader, epoch: int, count: int) -> None:
    """Make ``loader``'s next pass epoch ``epoch``'s, ``count`` batches in, as MMEngine's loops resume mid-epoch.

    Lightning resumes a mid-epoch checkpoint with its counters at the interrupted batch but the data from the
    epoch's first batch, drawn before it sets the sampler's epoch; here the resumed run gets the batches the
    uninterrupted one would see. The skipped batches are not loaded.
    """
    for sampler in (loader.sampler, loader.batch_sampler):
        if callable(getattr(sampler, "set_epoch", None)):
            sampler.set_epoch(epoch)
    name = "batch_sampler" if loader.batch_sampler is not None else "sampler"
    object.__setattr__(loader, name, SkipFirstBatches(getattr(loader, name), count))  # DataLoader forbids setattr


def position_in_epoch(checkpoint: Mapping[str, Any]) -> tuple[int, int, int]:
    """The epoch, the batches done in it (0 at an epoch end) and all batches done when a Lightning checkpoint was
    saved."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress")
    if not progress:
        return 0, 0, 0
    done = int(progress["total"]["processed"])
    if progress["is_last_batch"]:
        return 0, 0, done
    return int(checkpoint["epoch"]), int(progress["current"]["processed"]), done


def resume_loader(loader: DataLoader, epoch: int, in_epoch: int, in_all: int) -> None:
    """Make a resumed run's ``loader`` give what the uninterrupted run's would (see :func:`position_in_epoch`).

    ``InfiniteSampler`` is one stream across Lightning's epochs: every batch it gave is skipped, as MMEngine's
    ``IterBasedTrainLoop`` does; other samplers start ``in_epoch`` batches into epoch ``epoch``.
    """
    if isinstance(loader.sampler, InfiniteSampler):
        in_epoch = in_all
    if in_epoch:
        _resume_in_epoch(loader, epoch, in_epoch)


def _set_epoch(loader: DataLoader, epoch: int) -> None:
    """As MMEngine's ``_InfiniteDataloaderIterator`` at a new pass: the sampler's (or batch sampler's) epoch."""
    sampler = loader.sampler if callable(getattr(loader.sampler, "set_epoch", None)) else None
    sampler = sampler or getattr(loader.batch_sampler, "sampler", None)
    if callable(getattr(sampler, "set_epoch", None)):
        sampler.set_epoch(epoch)


def _go_on_with(loader: DataLoader, iterator: Any) -> None:
    """The next ``iter(loader)`` returns ``iterator`` (a pass in progress); later ones start new passes."""
    own = type(loader)

    class GoingOn(own):  # type: ignore[valid-type, misc]
        def __iter__(self) -> Any:
            object.__setattr__(self, "__class__", own)
            return iterator

    GoingOn.__name__ = GoingOn.__qualname__ = own.__name__
    object.__setattr__(loader, "__class__", GoingOn)


def replay_batches(loader: DataLoader, count: int, first_pass: Callable[[DataLoader], None]) -> None:
    """Load the first ``count`` batches as MMEngine's ``IterBasedTrainLoop`` does when it resumes, and go on
    from there: passes from the first on, the sampler's epoch set at each new pass, the data pipeline (and its
    random draws) run for every batch; the training takes the pass in progress. ``first_pass`` is called
    once the first iterator exists (its base seed drawn)."""
    iterator, epoch = iter(loader), 0
    first_pass(loader)
    for _ in range(count):
        try:
            next(iterator)
        except StopIteration:
            epoch += 1
            _set_epoch(loader, epoch)
            iterator = iter(loader)
            next(iterator)
    if isinstance(loader.sampler, InfiniteSampler) or count % len(loader):
        _go_on_with(loader, iterator)
