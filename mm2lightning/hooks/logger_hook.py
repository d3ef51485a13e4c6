"""``LoggerHook``: MMEngine's logging options, validated as MMEngine validates them."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mm2lightning.hooks.hook import Hook
from mm2lightning.runner.options import refuse

DEFAULT_SUFFIXES = (".json", ".log", ".py", "yaml")


class LoggerHook(Hook):
    """MMEngine's ``LoggerHook``: when the training logs are written, and what goes with them.

    It is not driven as a hook: under the Runner (``default_hooks=dict(logger=...)``, a config or an
    instance) ``interval`` becomes the Trainer's ``log_every_n_steps`` and the module's log path
    (``MMLightningModule.logger_hook``) follows the other options as MMEngine's hook does:

    - ``ignore_last``: ``False`` also writes an epoch's last iteration when the epoch length is not
      a multiple of ``interval``;
    - ``interval_exp_name``: the text line ``Exp name: <experiment_name>`` every that many iterations
      and at the end of each epoch;
    - ``log_metric_by_epoch``: validation scalars go to the visualizer against the epoch (``True``)
      or the iteration.

    - after a test, the test epoch's tag (its metrics, and the mean ``time``/``data_time``) goes to
      ``<log_dir>/<json_log_path>`` (:meth:`dump_test_tag`, MMEngine's ``after_test_epoch``);
    - ``out_dir``: at the end of each run the log directory's files ending with ``out_suffix`` are copied to
      ``out_dir/<work_dir's name>/`` (:meth:`copy_logs`), and removed locally with ``keep_local=False``.

    ``file_client_args`` and ``backend_args`` (file backends) are refused: ``out_dir`` is a local path.

    Raises:
        TypeError, ValueError: As MMEngine's, for an option of the wrong type or value.
        UnsupportedOptionError: ``file_client_args`` or ``backend_args`` is given (also a ``NotImplementedError``).
    """

    priority = "BELOW_NORMAL"

    def __init__(
        self,
        interval: int = 10,
        ignore_last: bool = True,
        interval_exp_name: int = 1000,
        out_dir: str | Path | None = None,
        out_suffix: str | Sequence[str] = DEFAULT_SUFFIXES,
        keep_local: bool = True,
        file_client_args: dict[str, Any] | None = None,
        log_metric_by_epoch: bool = True,
        backend_args: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(interval, int):
            raise TypeError("interval must be an integer")
        if interval <= 0:
            raise ValueError("interval must be greater than 0")
        if not isinstance(ignore_last, bool):
            raise TypeError("ignore_last must be a boolean")
        if not isinstance(interval_exp_name, int):
            raise TypeError("interval_exp_name must be an integer")
        if interval_exp_name <= 0:
            raise ValueError("interval_exp_name must be greater than 0")
        if out_dir is not None and not isinstance(out_dir, (str, Path)):
            raise TypeError("out_dir must be a str or Path object")
        if not isinstance(keep_local, bool):
            raise TypeError("keep_local must be a boolean")
        if out_dir is None and file_client_args is not None:
            raise ValueError('file_client_args should be "None" when `out_dir` is notspecified.')
        if file_client_args is not None and backend_args is not None:
            raise ValueError('"file_client_args" and "backend_args" cannot be set at the same time.')
        if not (isinstance(out_suffix, str) or (isinstance(out_suffix, Sequence) and all(isinstance(s, str) for s in out_suffix))):
            raise TypeError(f"out_suffix should be a string or a sequence of string, but got {type(out_suffix)}")
        for name, value in (("file_client_args", file_client_args), ("backend_args", backend_args)):
            if value is not None:
                refuse("LoggerHook", name, f"{name}={value!r}")
        self.interval = interval
        self.ignore_last = ignore_last
        self.interval_exp_name = interval_exp_name
        self.out_dir = out_dir
        self.out_suffix = out_suffix
        self.keep_local = keep_local
        self.log_metric_by_epoch = log_metric_by_epoch
        self.json_log_path: str | None = None  # '<timestamp>.json', set by the Runner (MMEngine's before_run)

    def dump_test_tag(self, tag: dict[str, Any], log_dir: str | Path) -> None:
        """The test epoch's ``tag`` to ``<log_dir>/<json_log_path>`` in JSON, values made JSON-friendly (tensors
        and arrays as lists, others dropped), as MMEngine's ``LoggerHook.after_test_epoch``."""
        if self.json_log_path is not None:
            with open(Path(log_dir) / self.json_log_path, "w") as f:
                json.dump(_json_friendly(tag), f)

    def copy_logs(self, log_dir: str | Path, work_dir: str | Path, logger: Any = None) -> list[Path]:
        """MMEngine's ``after_run``: copy the files under ``log_dir`` whose names end with ``out_suffix`` to
        ``out_dir/<work_dir's name>/`` (same relative paths); with ``keep_local=False`` remove them locally
        (closing ``logger``'s file handlers first). Returns the copies; nothing without ``out_dir``."""
        if self.out_dir is None:
            return []
        target = Path(self.out_dir) / Path(work_dir).name
        suffixes = (self.out_suffix,) if isinstance(self.out_suffix, str) else tuple(self.out_suffix)
        sources = sorted(p for p in Path(log_dir).rglob("*") if p.is_file() and p.name.endswith(suffixes))
        copies = []
        for source in sources:
            copy = target / source.relative_to(log_dir)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy)
            copies.append(copy)
            if logger is not None:
                logger.info(f"The file {source} has been uploaded to {copy}.")
        if not self.keep_local:
            for handler in getattr(logger, "handlers", []):
                if isinstance(handler, logging.FileHandler):
                    handler.close()
            for source in sources:
                source.unlink()
        return copies


def _json_friendly(value: Any) -> Any:
    """MMEngine's ``LoggerHook._process_tags``: lists, dicts and JSON scalars kept, tensors and arrays as lists,
    anything else ``None``."""
    if isinstance(value, (list, tuple)):
        return [_json_friendly(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_friendly(item) for key, item in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.tolist()
    return None
