"""Build the parameter schedulers of a run, as MMEngine's ``Runner.build_param_scheduler``."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Union

from mm2lightning.optim.optim_wrapper_dict import OptimWrapperDict
from mm2lightning.optim.scheduler.param_scheduler import OptimizerType, _ParamScheduler
from mm2lightning.registry import PARAM_SCHEDULERS

SchedulerCfg = Union[None, _ParamScheduler, Mapping[str, Any], list[Any], tuple[Any, ...]]

_FORMS = (
    "None, a scheduler, a config dict with 'type', or a list of schedulers and config dicts "
    "(or, for an OptimWrapperDict, a dict without 'type' mapping wrapper names to any of those)"
)


def build_param_schedulers(
    cfg: SchedulerCfg | Mapping[str, SchedulerCfg],
    optim_wrapper: OptimizerType,
    *,
    epoch_length: int | None = None,
    max_epochs: int | None = None,
    max_iters: int | None = None,
) -> list[_ParamScheduler] | dict[str, list[_ParamScheduler]]:
    """Build parameter schedulers for ``optim_wrapper`` from ``cfg``.

    The whole config is checked before anything is built (building a
    scheduler already changes the optimizer). Config dicts are deep-copied
    and built with ``PARAM_SCHEDULERS.build``.

    Args:
        cfg: ``None``, a scheduler, a config dict with ``'type'``, or a list
            of schedulers and config dicts. For an ``OptimWrapperDict`` it may
            also be a dict without ``'type'`` giving one of those per wrapper
            name (every name, and only those); otherwise the same config is
            built for every wrapper.
        optim_wrapper: An optim wrapper (or optimizer), or an ``OptimWrapperDict``.
        epoch_length: Iterations per epoch, for ``convert_to_iter_based``.
        max_epochs: The default ``end`` of configs with ``by_epoch=True`` (the default).
        max_iters: The default ``end`` of configs with ``by_epoch=False``.

    Returns:
        A list of schedulers, or for an ``OptimWrapperDict`` a dict wrapper name -> list.

    Raises:
        TypeError: ``cfg`` or one of its entries has an unsupported type.
        KeyError: A config dict lacks ``'type'``, or a per-name dict misses or
            adds wrapper names.
    """
    if not isinstance(optim_wrapper, OptimWrapperDict):
        return _build_list(_entries(cfg, "param_scheduler"), optim_wrapper, epoch_length, max_epochs, max_iters)
    names = list(optim_wrapper.keys())
    if isinstance(cfg, Mapping) and "type" not in cfg:
        missing, unknown = [n for n in names if n not in cfg], [k for k in cfg if k not in names]
        if missing or unknown:
            raise KeyError(
                f"param_scheduler is a dict without 'type', so its keys must be the optim wrapper names "
                f"{names}; missing {missing}, unknown {unknown}"
            )
        entries = {name: _entries(cfg[name], f"param_scheduler[{name!r}]") for name in names}
    else:
        entries = dict.fromkeys(names, _entries(cfg, "param_scheduler"))
    return {
        name: _build_list(entries[name], optim_wrapper[name], epoch_length, max_epochs, max_iters) for name in names
    }


def _entries(cfg: Any, where: str) -> list[_ParamScheduler | Mapping[str, Any]]:
    """Check one wrapper's config and return it as a list of schedulers and config dicts."""
    items = list(cfg) if isinstance(cfg, (list, tuple)) else [] if cfg is None else [cfg]
    for i, item in enumerate(items):
        at = f"{where}[{i}]" if isinstance(cfg, (list, tuple)) else where
        if isinstance(item, Mapping):
            if "type" not in item:
                raise KeyError(
                    f"{at} must contain the key 'type' (a scheduler name such as 'MultiStepLR'), "
                    f"but got keys {sorted(item)}; expected {_FORMS}"
                )
        elif not isinstance(item, _ParamScheduler):
            raise TypeError(f"{at} must be {_FORMS}, but got {type(item).__name__}: {item!r}")
    return items


def _build_list(
    entries: list[_ParamScheduler | Mapping[str, Any]],
    optim_wrapper: OptimizerType,
    epoch_length: int | None,
    max_epochs: int | None,
    max_iters: int | None,
) -> list[_ParamScheduler]:
    schedulers = []
    for entry in entries:
        if isinstance(entry, _ParamScheduler):
            schedulers.append(entry)
            continue
        cfg = copy.deepcopy(dict(entry))
        default_end = max_epochs if cfg.get("by_epoch", True) else max_iters
        if default_end is not None:
            cfg.setdefault("end", default_end)
        schedulers.append(
            PARAM_SCHEDULERS.build(cfg, default_args={"optimizer": optim_wrapper, "epoch_length": epoch_length})
        )
    return schedulers
