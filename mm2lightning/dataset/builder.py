"""``build_dataloader``: a ``DataLoader`` from an MMEngine dataloader config, as ``Runner.build_dataloader``."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from torch.utils.data import DataLoader, IterableDataset

from mm2lightning.dataset.utils import worker_init_fn as default_worker_init_fn
from mm2lightning.dist import get_rank, get_world_size
from mm2lightning.registry import DATA_SAMPLERS, DATASETS, FUNCTIONS

_SAMPLER_EXAMPLE = "dict(type='DefaultSampler', shuffle=True)"


class _SlicedDataset:
    """The first ``length`` samples of ``dataset``; other attributes come from ``dataset``."""

    def __init__(self, dataset: Any, length: int) -> None:
        self._dataset = dataset
        self._length = length

    def __getattr__(self, name: str) -> Any:
        if name == "_dataset":  # not set yet (e.g. while unpickling in a worker): avoid endless recursion
            raise AttributeError(name)
        return getattr(self._dataset, name)

    def __getitem__(self, idx: int) -> Any:
        return self._dataset[idx]

    def __len__(self) -> int:
        return self._length


def _pop_function(cfg: dict[str, Any], key: str, default: Any = None) -> Callable[..., Any] | None:
    """Pop ``cfg[key]``: a callable, ``None``, or ``dict(type=name or callable, **bound_kwargs)``."""
    spec = cfg.pop(key, default)
    if spec is None or callable(spec):
        return spec
    if not isinstance(spec, Mapping):
        raise TypeError(
            f"dataloader config {key!r} must be a callable or a dict with 'type' (a name in the 'function' "
            f"registry or a callable), but got {type(spec).__name__}: {spec!r}"
        )
    kwargs = dict(spec)
    if "type" not in kwargs:
        raise ValueError(f"dataloader config {key!r} must contain the key 'type', but got keys {sorted(kwargs)}")
    fn = kwargs.pop("type")
    scope = kwargs.pop("_scope_", None)  # as MMEngine: the function is looked up in that scope
    if isinstance(fn, str):
        with FUNCTIONS.switch_scope_and_registry(scope) as functions:
            fn = functions.get_or_raise(fn)
    elif not callable(fn):
        raise TypeError(
            f"dataloader config {key}['type'] must be a name in the 'function' registry or a callable, "
            f"but got {type(fn).__name__}: {fn!r}"
        )
    return partial(fn, **kwargs)


def _batch_size(cfg: Mapping[str, Any]) -> int:
    """The batch size set in the dataloader config or in its ``batch_sampler`` config."""
    if "batch_size" in cfg:
        return cfg["batch_size"]
    batch_sampler = cfg.get("batch_sampler")
    if isinstance(batch_sampler, Mapping) and "batch_size" in batch_sampler:
        return batch_sampler["batch_size"]
    raise ValueError("num_batch_per_epoch needs a batch_size in the dataloader config or in its batch_sampler config")


def _build_dataset(cfg: dict[str, Any]) -> Any:
    if "dataset" not in cfg:
        raise ValueError(
            f"dataloader config must contain the key 'dataset' (a dataset config dict or a dataset), "
            f"but got keys {sorted(cfg)}"
        )
    dataset = cfg.pop("dataset")
    if isinstance(dataset, Mapping):
        dataset = DATASETS.build(dataset)
        if hasattr(dataset, "full_init"):
            dataset.full_init()
    elif not (isinstance(dataset, IterableDataset) or hasattr(dataset, "__getitem__")):
        raise TypeError(
            "dataloader config 'dataset' must be a dataset config dict, a map-style dataset (with __getitem__) "
            f"or an IterableDataset, but got {type(dataset).__name__}: {dataset!r}"
        )
    num_batch_per_epoch = cfg.pop("num_batch_per_epoch", None)
    if num_batch_per_epoch is None:
        return dataset
    if isinstance(num_batch_per_epoch, bool) or not isinstance(num_batch_per_epoch, int) or num_batch_per_epoch <= 0:
        raise ValueError(f"num_batch_per_epoch must be a positive int, but got {num_batch_per_epoch!r}")
    num_samples = num_batch_per_epoch * _batch_size(cfg) * get_world_size()
    return _SlicedDataset(dataset, min(num_samples, len(dataset)))


def _build_samplers(cfg: dict[str, Any], dataset: Any, seed: int | None) -> tuple[Any, Any]:
    """Pop and build ``sampler`` and ``batch_sampler``; return ``(sampler, batch_sampler)``."""
    if "sampler" not in cfg:
        raise ValueError(
            f"dataloader config must contain the key 'sampler' (e.g. {_SAMPLER_EXAMPLE}), but got keys {sorted(cfg)}"
        )
    sampler = cfg.pop("sampler")
    if isinstance(sampler, Mapping):
        sampler = DATA_SAMPLERS.build(sampler, default_args=dict(dataset=dataset, seed=seed))
    elif sampler is not None and not hasattr(sampler, "__iter__"):
        raise TypeError(
            f"dataloader config 'sampler' must be a sampler config dict (e.g. {_SAMPLER_EXAMPLE}) or a sampler, "
            f"but got {type(sampler).__name__}: {sampler!r}"
        )
    batch_sampler = cfg.pop("batch_sampler", None)
    if isinstance(batch_sampler, Mapping):
        default_args = dict(sampler=sampler)
        if "batch_size" in cfg:
            default_args["batch_size"] = cfg.pop("batch_size")
        batch_sampler = DATA_SAMPLERS.build(batch_sampler, default_args=default_args)
    return sampler, batch_sampler


def build_dataloader(
    cfg: Mapping[str, Any] | DataLoader, seed: int | None = None, diff_rank_seed: bool = False
) -> DataLoader:
    """Build a ``DataLoader`` from an MMEngine dataloader config, as ``Runner.build_dataloader``.

    Keys of ``cfg``:

    - ``dataset`` (required): a config built through ``DATASETS`` (then its
      ``full_init()`` is called when it has one), or a dataset.
    - ``sampler`` (required): a config built through ``DATA_SAMPLERS`` with
      ``dataset`` and ``seed`` as default arguments, a sampler, or ``None``
      (the ``DataLoader``'s own sampling).
    - ``batch_sampler``: a config built through ``DATA_SAMPLERS`` with
      ``sampler`` and ``batch_size`` (moved out of ``cfg``), or a batch sampler.
    - ``collate_fn``: ``dict(type=name or callable, **bound_kwargs)``, a
      callable, or ``None`` (torch's ``default_collate``); defaults to
      ``dict(type='pseudo_collate')``, which does not stack tensors.
    - ``worker_init_fn``: the same forms. Without it, and when ``seed`` is
      given, workers are seeded by :func:`~mm2lightning.dataset.worker_init_fn`
      (``disable_subprocess_warning`` may then be set too).
    - ``num_batch_per_epoch``: keep only the first
      ``num_batch_per_epoch * batch_size * world_size`` samples.
    - everything else (``batch_size``, ``num_workers``, ``persistent_workers``,
      ``pin_memory``, ``drop_last``, ...) goes to ``DataLoader``.

    ``DefaultSampler`` and ``InfiniteSampler`` split the data across ranks themselves: under plain Lightning
    DDP, build the Trainer with ``use_distributed_sampler=False`` (the Runner does), or Lightning splits it
    a second time.

    Args:
        cfg: The config, or a ``DataLoader``, which is returned unchanged.
        seed: The run's seed, for the sampler and the workers.
        diff_rank_seed: When ``True`` the sampler gets ``seed=None`` so that it
            draws one seed shared by all ranks (the run seed then differs per rank).

    Returns:
        The dataloader.
    """
    if isinstance(cfg, DataLoader):
        return cfg
    if not isinstance(cfg, Mapping):
        raise TypeError(
            f"build_dataloader expects a DataLoader or a dataloader config dict, but got {type(cfg).__name__}: {cfg!r}"
        )
    cfg = dict(copy.deepcopy(cfg))
    dataset = _build_dataset(cfg)
    sampler, batch_sampler = _build_samplers(cfg, dataset, None if diff_rank_seed else seed)
    if "worker_init_fn" in cfg:
        init_fn = _pop_function(cfg, "worker_init_fn")
    elif seed is not None:
        disable_warning = cfg.pop("disable_subprocess_warning", False)
        if not isinstance(disable_warning, bool):
            raise TypeError(f"disable_subprocess_warning must be a bool, but got {disable_warning!r}")
        init_fn = partial(
            default_worker_init_fn,
            num_workers=cfg.get("num_workers"),
            rank=get_rank(),
            seed=seed,
            disable_subprocess_warning=disable_warning,
        )
    else:
        init_fn = None
    collate_fn = _pop_function(cfg, "collate_fn", dict(type="pseudo_collate"))
    try:
        return DataLoader(
            dataset,
            sampler=sampler if batch_sampler is None else None,
            batch_sampler=batch_sampler,
            collate_fn=collate_fn,
            worker_init_fn=init_fn,
            **cfg,
        )
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"DataLoader rejected the dataloader config (keys {sorted(cfg)}): {exc}") from exc
