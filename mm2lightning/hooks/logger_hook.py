"""``LoggerHook``: MMEngine's logging options, validated as MMEngine validates them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

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

    ``out_dir`` (copying the logs elsewhere at the end of the run) is not supported yet and is refused;
    ``out_suffix``, ``keep_local``, ``file_client_args`` and ``backend_args`` only act with it.

    Raises:
        TypeError, ValueError: As MMEngine's, for an option of the wrong type or value.
        UnsupportedOptionError: ``out_dir`` is given (also a ``NotImplementedError``).
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
        if out_dir is not None:
            refuse("LoggerHook", "out_dir", f"out_dir={str(out_dir)!r}")
        self.interval = interval
        self.ignore_last = ignore_last
        self.interval_exp_name = interval_exp_name
        self.out_dir = out_dir
        self.out_suffix = out_suffix
        self.keep_local = keep_local
        self.log_metric_by_epoch = log_metric_by_epoch
