"""``MMLogger`` and ``print_log``: MMEngine's formatted, rank-aware logger."""

from __future__ import annotations

import inspect
import logging
import os
import os.path as osp
import sys
import warnings
from getpass import getuser
from logging import Logger, LogRecord, handlers
from socket import gethostname
from typing import Any

import torch

from mm2lightning.dist import get_rank, get_world_size, is_distributed
from mm2lightning.utils.manager import ManagerMixin, _lock

_ANSI = dict(red=31, green=32, yellow=33, white=97, underline=4, blink=5)


def _can_colorize() -> bool:
    """Whether stdout takes colour codes (termcolor's rules, which MMEngine's formatter follows)."""
    if os.environ.get("ANSI_COLORS_DISABLED") or os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb" or not hasattr(sys.stdout, "fileno"):
        return False
    try:
        return os.isatty(sys.stdout.fileno())
    except OSError:
        return sys.stdout.isatty()


def _colored(text: str, color: str, attrs: list[str]) -> str:
    """``termcolor.colored(text, color, attrs=attrs)``."""
    if not _can_colorize():
        return text
    for code in (color, *attrs):
        text = f"\033[{_ANSI[code]}m{text}"
    return text + "\033[0m"


class FilterDuplicateWarning(logging.Filter):
    """Drop a warning whose message was logged before.

    Args:
        name: Name of the filter.
    """

    def __init__(self, name: str = "mmengine") -> None:
        super().__init__(name)
        self.seen: set[Any] = set()

    def filter(self, record: LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        if record.msg not in self.seen:
            self.seen.add(record.msg)
            return True
        return False


class MMFormatter(logging.Formatter):
    """MMEngine's log format: ``time - logger name - LEVEL - message``, coloured on a terminal; errors also
    give the place in the code.

    Args:
        color: Colour the level (not for files).
        blink: Make ``INFO`` and ``DEBUG`` blink (needs ``color``).
        **kwargs: ``logging.Formatter`` arguments.
    """

    _color_mapping: dict[str, str] = dict(ERROR="red", WARNING="yellow", INFO="white", DEBUG="green")

    def __init__(self, color: bool = True, blink: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if blink and not color:
            raise AssertionError("blink should only be available when color is True")
        error_prefix = self._get_prefix("ERROR", color, blink=True)
        warn_prefix = self._get_prefix("WARNING", color, blink=True)
        info_prefix = self._get_prefix("INFO", color, blink)
        debug_prefix = self._get_prefix("DEBUG", color, blink)
        self.err_format = (
            f"%(asctime)s - %(name)s - {error_prefix} - %(pathname)s - %(funcName)s - %(lineno)d - %(message)s"
        )
        self.warn_format = f"%(asctime)s - %(name)s - {warn_prefix} - %(message)s"
        self.info_format = f"%(asctime)s - %(name)s - {info_prefix} - %(message)s"
        self.debug_format = f"%(asctime)s - %(name)s - {debug_prefix} - %(message)s"

    def _get_prefix(self, level: str, color: bool, blink: bool = False) -> str:
        if not color:
            return level
        return _colored(level, self._color_mapping[level], ["underline", "blink"] if blink else ["underline"])

    def format(self, record: LogRecord) -> str:
        formats = {
            logging.ERROR: self.err_format,
            logging.WARNING: self.warn_format,
            logging.INFO: self.info_format,
            logging.DEBUG: self.debug_format,
        }
        if record.levelno in formats:
            self._style._fmt = formats[record.levelno]
        return logging.Formatter.format(self, record)


def _env_int(*names: str, default: int) -> int:
    for name in names:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return default


def _rank() -> int:
    """The global rank; before the process group exists (a Runner builds its logger before Lightning starts
    it), the launcher's (torchrun's, SLURM's)."""
    return get_rank() if is_distributed() else _env_int("RANK", "SLURM_PROCID", default=0)


def _world_size() -> int:
    return get_world_size() if is_distributed() else _env_int("WORLD_SIZE", "SLURM_NTASKS", default=1)


def _device_id() -> int | str:
    """The GPU index of this process (``CUDA_VISIBLE_DEVICES``' entry at ``LOCAL_RANK``), as MMEngine."""
    local_rank = int(os.getenv("LOCAL_RANK", "0"))
    if not torch.cuda.is_available():
        return local_rank
    visible = os.getenv("CUDA_VISIBLE_DEVICES")
    devices = visible.split(",") if visible is not None else list(range(torch.cuda.device_count()))
    try:
        return int(devices[local_rank])
    except ValueError:  # a MIG device name
        return devices[local_rank]


def _host_info() -> str:
    try:
        return f"{getuser()}@{gethostname()}"
    except Exception as error:  # getuser fails in some containers
        warnings.warn(f"Host or user not found: {error}", stacklevel=2)
        return ""


def _file_handler_classes() -> dict[str, type[logging.FileHandler]]:
    """The ``logging.handlers`` file handler classes by name (``RotatingFileHandler``, ...)."""
    return {
        name: cls
        for name, cls in vars(handlers).items()
        if not name.startswith("__") and inspect.isclass(cls) and issubclass(cls, logging.FileHandler)
    }


class _StdoutHandler(logging.StreamHandler):
    """A stream handler writing to the ``sys.stdout`` of the moment (MMEngine's binds the stream it was built with,
    which a later redirection, e.g. a test's capture, may have closed)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # always the current sys.stdout


class MMLogger(Logger, ManagerMixin):
    """MMEngine's logger: a ``logging.Logger`` reached by instance name, printing to stdout on rank 0 only
    (errors on every rank) and writing ``log_file`` when given.

    Not registered with ``logging.getLogger``: third-party logging configuration does not touch it. In
    distributed runs only rank 0 writes ``log_file``; with ``distributed=True`` (or ``log_level='DEBUG'``)
    every rank writes its own ``<name>_<user@host>_device<id>_rank<rank><suffix>`` beside it.

    Examples:
        >>> logger = MMLogger.get_instance('runner', log_file='work_dir/run.log')
        >>> logger.info('hello')  # printed and written to run.log
        >>> MMLogger.get_current_instance() is logger
        True

    Args:
        name: Instance name (for ``get_instance``).
        logger_name: The ``Logger``'s ``name``, shown in each line.
        log_file: A file to write the log to.
        log_level: Level of the handlers.
        file_mode: Mode the log file is opened with.
        distributed: Write a log file on every rank.
        file_handler_cfg: ``dict(type=<a logging.handlers file handler class name>, ...)`` instead of a
            plain ``FileHandler``.
    """

    def __init__(
        self,
        name: str,
        logger_name: str = "mmengine",
        log_file: str | None = None,
        log_level: int | str = "INFO",
        file_mode: str = "w",
        distributed: bool = False,
        file_handler_cfg: dict[str, Any] | None = None,
    ) -> None:
        Logger.__init__(self, logger_name)
        ManagerMixin.__init__(self, name)
        if isinstance(log_level, str):
            if log_level not in logging._nameToLevel:
                raise KeyError(
                    f"log_level {log_level!r} is not a logging level; use one of {list(logging._nameToLevel)}"
                )
            log_level = logging._nameToLevel[log_level]
        global_rank = _rank()

        stream_handler = _StdoutHandler()
        stream_handler.setFormatter(MMFormatter(color=True, datefmt="%m/%d %H:%M:%S"))
        stream_handler.setLevel(log_level if global_rank == 0 else logging.ERROR)
        stream_handler.addFilter(FilterDuplicateWarning(logger_name))
        self.handlers.append(stream_handler)

        if log_file is not None:
            is_distributed_log = (log_level <= logging.DEBUG or distributed) and _world_size() > 1
            if is_distributed_log:
                filename, suffix = osp.splitext(osp.basename(log_file))
                host = _host_info()
                host_part = f"_{host}" if host else ""
                filename = f"{filename}{host_part}_device{_device_id()}_rank{global_rank}{suffix}"
                log_file = osp.join(osp.dirname(log_file), filename)
            if global_rank == 0 or is_distributed_log:
                file_handler = self._file_handler(log_file, file_mode, file_handler_cfg)
                file_handler.setFormatter(MMFormatter(color=False, datefmt="%Y/%m/%d %H:%M:%S"))
                file_handler.setLevel(log_level)
                file_handler.addFilter(FilterDuplicateWarning(logger_name))
                self.handlers.append(file_handler)
        self._log_file = log_file

    @staticmethod
    def _file_handler(log_file: str, file_mode: str, cfg: dict[str, Any] | None) -> logging.FileHandler:
        if cfg is None:
            return logging.FileHandler(log_file, file_mode)
        if "type" not in cfg:
            raise AssertionError(f"file_handler_cfg needs a 'type' (e.g. 'RotatingFileHandler'), got {cfg}")
        cfg = dict(cfg)
        handler_type = cfg.pop("type")
        classes = _file_handler_classes()
        if handler_type not in classes:
            raise ValueError(f"`logging.handlers` does not contain {handler_type}; it has {sorted(classes)}")
        cfg.setdefault("filename", log_file)
        return classes[handler_type](**cfg)

    @property
    def log_file(self) -> str | None:
        """The file this process writes (``None`` when none)."""
        return self._log_file

    @classmethod
    def get_current_instance(cls) -> MMLogger:
        """The most recently created logger; one named ``'mmengine'`` is created if there is none."""
        if not cls._instance_dict:
            cls.get_instance("mmengine")
        return super().get_current_instance()

    def callHandlers(self, record: LogRecord) -> None:  # noqa: N802 - logging's name
        """Hand ``record`` to this logger's own handlers only (no parents: nothing is printed twice)."""
        for handler in self.handlers:
            if record.levelno >= handler.level:
                handler.handle(record)

    def setLevel(self, level: int | str) -> None:  # noqa: N802 - logging's name
        """Set the level and clear the level caches of all ``MMLogger`` instances."""
        self.level = logging._checkLevel(level)  # type: ignore[attr-defined]
        with _lock:
            for logger in MMLogger._instance_dict.values():
                logger._cache.clear()


def print_log(msg: Any, logger: Logger | str | None = None, level: int = logging.INFO) -> None:
    """Print ``msg`` or log it.

    Args:
        msg: The message.
        logger: ``None``: ``print``; a ``logging.Logger``: that logger; ``'silent'``:
            nothing; ``'current'``: :meth:`MMLogger.get_current_instance`; another
            string: the ``MMLogger`` instance of that name.
        level: The logging level (not used by ``print``).

    Raises:
        ValueError: No ``MMLogger`` instance has the given name.
        TypeError: ``logger`` is of another type.
    """
    if logger is None:
        print(msg)
    elif isinstance(logger, logging.Logger):
        logger.log(level, msg)
    elif logger == "silent":
        pass
    elif logger == "current":
        MMLogger.get_current_instance().log(level, msg)
    elif isinstance(logger, str):
        if not MMLogger.check_instance_created(logger):
            raise ValueError(f"MMLogger: {logger} has not been created!")
        MMLogger.get_instance(logger).log(level, msg)
    else:
        raise TypeError(
            '`logger` should be either a logging.Logger object, str, "silent", "current" or None, '
            f"but got {type(logger)}"
        )
