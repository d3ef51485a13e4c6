"""The toolboxes' ``tools/test.py`` output flags: ``--show``, ``--show-dir``, ``--wait-time``, ``--interval``
and ``--out-item``, applied as the toolbox that owns the config applies them.

The toolboxes turn on their ``default_hooks.visualization`` hook in three ways, told apart here by the hook's
own arguments:

- ``enable`` (mmpretrain's ``VisualizationHook``, mmpose's): ``enable=True``, ``show``, ``wait_time``,
  ``interval`` and ``out_dir=show_dir``, always all five;
- ``test_out_dir`` (mmdet's ``DetVisualizationHook``): ``draw=True``; ``show`` and ``wait_time`` with
  ``--show``; ``test_out_dir=show_dir`` (under ``work_dir/<timestamp>``) with ``--show-dir``;
- ``draw`` alone (mmseg's ``SegVisualizationHook``): as mmdet's, but ``--show-dir`` becomes the
  visualizer's ``save_dir`` (the images go to ``<show_dir>/vis_data/vis_image``).

The hook then draws through ``runner.visualizer`` during ``runner.test()``, as under MMEngine.
"""

from __future__ import annotations

import inspect
import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from mm2lightning.config import ConfigError

__all__ = ["apply_visualization_flags", "dump_metrics", "metrics_format"]

_NO_HOOK = (
    "VisualizationHook must be included in default_hooks. refer to usage "
    "\"visualization=dict(type='VisualizationHook')\""
)


def _hook_class(hook: Mapping[str, Any] | Any, default_scope: str | None) -> type:
    from mm2lightning.registry import HOOKS

    kind = hook.get("type") if isinstance(hook, Mapping) else type(hook)
    if isinstance(kind, type):
        return kind
    if not isinstance(kind, str):
        raise ConfigError(f"default_hooks.visualization: 'type' must be a hook name or class, but got {kind!r}")
    scope = hook.get("_scope_", default_scope)
    key = kind if "." in kind or scope in (None, "mmengine") else f"{scope}.{kind}"
    found = HOOKS.get(key)
    if found is None:
        raise ConfigError(f"default_hooks.visualization: hook type {key!r} is not registered")
    return found


def _style(hook_class: type) -> Literal["enable", "test_out_dir", "draw"]:
    params = inspect.signature(hook_class).parameters
    for style in ("enable", "test_out_dir", "draw"):
        if style in params:
            return style  # type: ignore[return-value]
    raise ConfigError(
        f"--show/--show-dir: default_hooks.visualization is {hook_class.__name__}, which takes neither 'enable' "
        "nor 'draw'; turn it on in the config instead"
    )


def apply_visualization_flags(
    cfg: Any, *, show: bool, show_dir: str | None, wait_time: float = 2.0, interval: int | None = None
) -> None:
    """Turn on the config's ``default_hooks.visualization`` for ``--show``/``--show-dir``, as its toolbox does.

    Args:
        cfg: The config (changed in place).
        show: ``--show``: the hook displays each drawn sample in a window.
        show_dir: ``--show-dir``: where the drawn images are saved.
        wait_time: ``--wait-time``: seconds each window stays (the toolboxes' default, 2).
        interval: ``--interval``: draw every ``interval`` samples (mmpretrain's flag; its default, 1, on
            ``enable`` hooks; other hooks keep theirs unless it is given).

    Raises:
        ConfigError: The config has no ``default_hooks.visualization``, or a hook this does not know how
            to turn on.
    """
    if not show and show_dir is None:
        if interval is not None:
            raise ConfigError("--interval: it only acts with --show or --show-dir")
        return
    hooks = cfg.get("default_hooks") or {}
    hook = hooks.get("visualization")
    if hook is None:
        raise ConfigError(f"--show/--show-dir: {_NO_HOOK}")
    if not isinstance(hook, Mapping):
        raise ConfigError("--show/--show-dir: default_hooks.visualization must be a config dict to be turned on")
    style = _style(_hook_class(hook, cfg.get("default_scope")))
    if style == "enable":  # mmpretrain's tools/test.py
        hook.update(enable=True, show=show, wait_time=wait_time, out_dir=show_dir,
                    interval=1 if interval is None else interval)  # fmt: skip
        return
    hook["draw"] = True  # mmdet's and mmseg's trigger_visualization_hook
    if show:
        hook.update(show=True, wait_time=wait_time)
    if interval is not None:
        hook["interval"] = interval
    if show_dir:
        if style == "test_out_dir":
            hook["test_out_dir"] = show_dir
        else:
            if not isinstance(cfg.get("visualizer"), Mapping):
                raise ConfigError("--show-dir: the config has no visualizer dict to give the directory to")
            cfg.visualizer["save_dir"] = show_dir


_METRICS_FORMATS = {".pkl": "pickle", ".pickle": "pickle", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}


def metrics_format(out: str | os.PathLike[str]) -> str:
    """The format ``mmengine.dump`` writes ``out`` in, by its suffix; a :class:`ConfigError` for another suffix."""
    suffix = Path(out).suffix.lower()
    if suffix not in _METRICS_FORMATS:
        raise ConfigError(f"--out {out}: unsupported format {suffix!r}; use .pkl, .pickle, .json, .yaml or .yml")
    return _METRICS_FORMATS[suffix]


def dump_metrics(metrics: Mapping[str, Any], out: str | os.PathLike[str]) -> None:
    """``--out FILE --out-item metrics``: the test metrics to ``FILE`` as ``mmengine.dump`` writes them."""
    kind = metrics_format(out)
    plain = {key: value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value
             for key, value in metrics.items()}  # fmt: skip
    if kind == "pickle":
        Path(out).write_bytes(pickle.dumps(plain, protocol=2))  # mmengine's PickleHandler protocol
    elif kind == "json":
        Path(out).write_text(json.dumps(plain))
    else:
        import yaml

        Path(out).write_text(yaml.dump(plain, Dumper=yaml.Dumper))
