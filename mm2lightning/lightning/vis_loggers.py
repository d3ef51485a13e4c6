"""MMEngine's ``visualizer`` config on Lightning: its ``vis_backends`` become Lightning loggers.

``loggers_from_vis_backends`` maps each backend config to the Lightning logger that plays its part
(``LocalVisBackend`` -> :class:`LocalVisLogger`, which writes MMEngine's ``vis_data`` files;
``TensorboardVisBackend`` -> ``TensorBoardLogger``; ``WandbVisBackend`` -> ``WandbLogger``;
``MLflowVisBackend`` -> ``MLFlowLogger``). ``build_visualizer`` builds the visualizer object toolbox hooks
use (``runner.visualizer.add_datasample(...)``) without backends of its own: each logger is attached to
it as a :class:`LoggerVisBackend`, so what the visualizer draws or records goes to the loggers.

Example:
    >>> loggers = loggers_from_vis_backends([dict(type='LocalVisBackend')], log_dir, 'exp')
    >>> visualizer = build_visualizer(cfg.visualizer, 'exp', log_dir, loggers=loggers)
"""

from __future__ import annotations

import importlib.util
import json
import os
import weakref
from argparse import Namespace
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import loggers as pl_loggers
from lightning.pytorch.loggers import Logger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from mm2lightning.registry import VISUALIZERS

#: MMEngine's ``Runner.build_visualizer`` default backends (when the config sets no ``visualizer``).
DEFAULT_VIS_BACKENDS: list[dict[str, Any]] = [dict(type="LocalVisBackend")]
#: MMEngine's own visualizer names (its ``VISUALIZERS`` root), built from mmengine when it is installed.
MMENGINE_VISUALIZERS = ("Visualizer",)
#: ``WandbVisBackend(watch_kwargs=...)`` per logger, used by ``LoggerVisBackend.add_graph``.
_WATCH_KWARGS: weakref.WeakKeyDictionary[Logger, dict[str, Any]] = weakref.WeakKeyDictionary()


def _json_default(obj: Any) -> Any:
    """MMEngine's JSON ``set_default`` (sets, ranges, numpy), and tensors."""
    if isinstance(obj, (set, range)):
        return list(obj)
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj)} is unsupported for json dump")


class LocalVisLogger(Logger):
    """MMEngine's ``LocalVisBackend`` as a Lightning logger: scalars, config and images under ``save_dir``.

    Each :meth:`log_metrics` call appends one JSON line ``{**metrics, 'step': step}`` to
    ``scalar_save_file`` (and to ``json_log_path``, MMEngine's ``LoggerHook`` ``<timestamp>.json``), as
    ``LocalVisBackend.add_scalars(metrics, step, file_path=json_log_path)``. Only rank 0 writes.

    Args:
        save_dir: The directory of all files (MMEngine's ``<log_dir>/vis_data``).
        img_save_dir: Image directory, relative to ``save_dir``.
        config_save_file: Config file name (``.py``), relative to ``save_dir``.
        scalar_save_file: Scalars file name (``.json``), relative to ``save_dir``.
        json_log_path: Another ``.json`` file, relative to ``save_dir``, that :meth:`log_metrics` also appends to.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike[str],
        img_save_dir: str = "vis_image",
        config_save_file: str = "config.py",
        scalar_save_file: str = "scalars.json",
        json_log_path: str | None = None,
    ) -> None:
        super().__init__()
        for arg, value, suffix in [("config_save_file", config_save_file, "py"),
                                   ("scalar_save_file", scalar_save_file, "json"),
                                   ("json_log_path", json_log_path, "json")]:
            if value is not None and value.split(".")[-1] != suffix:
                raise ValueError(f"LocalVisBackend's {arg} must end with '.{suffix}', got {value!r}")
        self._save_dir = os.fspath(save_dir)
        self.img_save_dir = os.path.join(self._save_dir, img_save_dir)
        self.config_save_file = os.path.join(self._save_dir, config_save_file)
        self.scalar_save_file = os.path.join(self._save_dir, scalar_save_file)
        self.json_log_path = json_log_path

    @property
    def name(self) -> str:
        """Empty: files go straight into ``save_dir``, as MMEngine's."""
        return ""

    @property
    def version(self) -> str:
        """Empty: files go straight into ``save_dir``, as MMEngine's."""
        return ""

    @property
    def save_dir(self) -> str:
        """The directory of all files."""
        return self._save_dir

    @property
    def log_dir(self) -> str:
        """The directory of all files (``save_dir``)."""
        return self._save_dir

    @property
    @rank_zero_experiment
    def experiment(self) -> LocalVisLogger:
        """The logger itself (as ``LocalVisBackend.experiment``), its directory created."""
        os.makedirs(self._save_dir, exist_ok=True)
        return self

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Append ``{**metrics, 'step': step}`` to the scalars file and ``json_log_path``."""
        self.log_scalars(metrics, 0 if step is None else step, self.json_log_path)

    @rank_zero_only
    def log_scalars(self, scalar_dict: Mapping[str, Any], step: int = 0, file_path: str | None = None) -> None:
        """``LocalVisBackend.add_scalars``: one line to the scalars file, and to ``file_path`` when given."""
        line = dict(scalar_dict)
        line.setdefault("step", step)
        paths = [self.scalar_save_file]
        if file_path is not None:
            if file_path.split(".")[-1] != "json":
                raise ValueError(f"file_path must be a '.json' file, got {file_path!r}")
            extra = os.path.join(self._save_dir, file_path)
            if extra == self.scalar_save_file:
                raise ValueError(f"file_path {file_path!r} is the scalar_save_file: set another file")
            paths.insert(0, extra)
        self.experiment  # noqa: B018 - creates save_dir
        for path in paths:
            with open(path, "a+") as f:
                json.dump(line, f, default=_json_default)
                f.write("\n")

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Write a ``Config`` (or a dict / ``Namespace`` of values) to ``config_save_file``, as ``add_config``."""
        if params is None:
            return
        if not hasattr(params, "dump"):
            from mm2lightning.config import Config

            params = Config(vars(params) if isinstance(params, Namespace) else dict(params))
        self.experiment  # noqa: B018 - creates save_dir
        params.dump(self.config_save_file)

    @rank_zero_only
    def log_image(self, name: str, image: np.ndarray, step: int = 0) -> None:
        """``LocalVisBackend.add_image``: an RGB ``uint8`` image to ``<img_save_dir>/<name>_<step>.png``."""
        if image.dtype != np.uint8:
            raise ValueError(f"image {name!r} must be uint8, got {image.dtype}")
        try:
            import cv2
        except ImportError as error:
            raise ImportError("writing LocalVisBackend images needs OpenCV: pip install opencv-python") from error
        os.makedirs(self.img_save_dir, exist_ok=True)
        cv2.imwrite(os.path.join(self.img_save_dir, f"{name}_{step}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


# --------------------------------------------------------------------------------------------------- backends
def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def _refuse(backend: str, key: str, instead: str) -> ValueError:
    return ValueError(f"{backend}'s {key!r} has no equivalent in Lightning's logger: {instead}")


def _local(args: dict[str, Any], save_dir: Path, json_log_path: str) -> Logger:
    return LocalVisLogger(save_dir, json_log_path=json_log_path, **args)


def _tensorboard(args: dict[str, Any], save_dir: Path, json_log_path: str) -> Logger:
    if not (_installed("tensorboard") or _installed("tensorboardX")):
        raise ImportError("TensorboardVisBackend needs TensorBoard: pip install tensorboard")
    return pl_loggers.TensorBoardLogger(save_dir, name="", version="", default_hp_metric=False)


def _wandb(args: dict[str, Any], save_dir: Path, json_log_path: str) -> Logger:
    backend = "WandbVisBackend"
    if args.get("define_metric_cfg") is not None:
        raise _refuse(backend, "define_metric_cfg", "call logger.experiment.define_metric(...) on a WandbLogger "
                      "given with Runner(loggers=[...])")
    if args.get("commit", True) is not True:
        raise _refuse(backend, "commit", "WandbLogger commits every log call (commit=False is not supported)")
    if args.get("log_code_name") is not None:
        raise _refuse(backend, "log_code_name", "call logger.experiment.log_code(name=...) yourself")
    watch_kwargs = dict(args.get("watch_kwargs") or {})
    for key in watch_kwargs:
        if key not in ("log", "log_freq", "log_graph"):
            raise _refuse(backend, f"watch_kwargs.{key}", "WandbLogger.watch takes log, log_freq and log_graph")
    if not _installed("wandb"):
        raise ImportError(f"{backend} needs wandb: pip install wandb")
    init_kwargs = dict(args.get("init_kwargs") or {})
    logger = pl_loggers.WandbLogger(save_dir=os.fspath(init_kwargs.pop("dir", save_dir)), **init_kwargs)
    _WATCH_KWARGS[logger] = watch_kwargs
    return logger


def _mlflow(args: dict[str, Any], save_dir: Path, json_log_path: str) -> Logger:
    backend = "MLflowVisBackend"
    for key in ("artifact_suffix", "tracked_config_keys"):
        if key in args:
            raise _refuse(backend, key, "MLFlowLogger uploads no files at the end of the run (log_model uploads "
                          "checkpoints); log artifacts with logger.experiment.log_artifact(logger.run_id, path)")
    if not _installed("mlflow"):
        raise ImportError(f"{backend} needs mlflow: pip install mlflow")
    logger = pl_loggers.MLFlowLogger(
        experiment_name=args.get("exp_name") or "Default",
        run_name=args.get("run_name"),
        tracking_uri=args.get("tracking_uri"),  # None: file:<save_dir>, as MMEngine (not $MLFLOW_TRACKING_URI)
        tags=args.get("tags"),
        save_dir=os.path.abspath(save_dir),
        artifact_location=args.get("artifact_location"),
    )
    if args.get("params") is not None:
        logger.log_hyperparams(args["params"])
    return logger


#: MMEngine backend name -> (its arguments besides ``save_dir``, the Lightning logger builder).
_BACKENDS: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any], Path, str], Logger]]] = {
    "LocalVisBackend": (("img_save_dir", "config_save_file", "scalar_save_file"), _local),
    "TensorboardVisBackend": ((), _tensorboard),
    "WandbVisBackend": (("init_kwargs", "define_metric_cfg", "commit", "log_code_name", "watch_kwargs"), _wandb),
    "MLflowVisBackend": (("exp_name", "run_name", "tags", "params", "tracking_uri", "artifact_suffix",
                          "tracked_config_keys", "artifact_location"), _mlflow),
}
#: MMEngine backends Lightning has no logger for -> what to use instead.
_NO_LOGGER: dict[str, str] = {
    "NeptuneVisBackend": "Lightning 2.6 dropped its NeptuneLogger (Neptune is sunset)",
    "ClearMLVisBackend": "ClearML's Task.init(...) captures a TensorboardVisBackend's events",
    "DVCLiveVisBackend": "use dvclive.lightning.DVCLiveLogger",
    "AimVisBackend": "use aim.pytorch_lightning.AimLogger",
}


def _backend_name(kind: Any) -> str:
    """The MMEngine backend name of a config ``type`` (``'mmengine.LocalVisBackend'``, or mmengine's class)."""
    if isinstance(kind, type):
        name = kind.__name__ if kind.__module__.startswith("mmengine.") else ""
    else:
        name = str(kind).rpartition(".")[2]
    if name in _NO_LOGGER:
        raise ValueError(f"{name}: Lightning has no logger for it: {_NO_LOGGER[name]}, or pass a Lightning logger "
                         "with Runner(loggers=[...])")
    if name not in _BACKENDS:
        raise ValueError(
            f"vis backend type {kind!r} is not supported yet: only MMEngine's backends ({', '.join(_BACKENDS)}) "
            "become Lightning loggers, not a toolbox's own; pass a Lightning logger with Runner(loggers=[...])"
        )
    return name


def loggers_from_vis_backends(
    vis_backends: Sequence[Mapping[str, Any]] | None, log_dir: str | os.PathLike[str], experiment_name: str
) -> list[Logger]:
    """The Lightning loggers that play the parts of a visualizer's ``vis_backends`` configs.

    Args:
        vis_backends: MMEngine backend configs (``None``: no backends).
        log_dir: The visualizer's ``save_dir`` (MMEngine's ``runner.log_dir``, ``<work_dir>/<timestamp>``);
            backends write under ``<log_dir>/vis_data`` unless their config sets ``save_dir``.
        experiment_name: The run's experiment name (names wandb/mlflow runs when their config does not).

    Raises:
        ValueError: A backend that is not MMEngine's, a key with no Lightning equivalent, or no Lightning logger.
        TypeError: A key the MMEngine backend does not take.
        ImportError: The backend's package is not installed.
    """
    loggers = []
    for cfg in vis_backends or []:
        args = dict(cfg)
        name = _backend_name(args.pop("type", None))
        args.pop("name", None)  # the backend's name in the visualizer
        accepted, build = _BACKENDS[name]
        for key in args:
            if key not in accepted + ("save_dir",):
                raise TypeError(f"{name} got an unknown argument {key!r} (it takes: save_dir, {', '.join(accepted)})")
        save_dir = Path(args.pop("save_dir", None) or Path(log_dir) / "vis_data")
        if name == "WandbVisBackend":
            args["init_kwargs"] = {"name": experiment_name, **(args.get("init_kwargs") or {})}
        elif name == "MLflowVisBackend":
            args.setdefault("run_name", experiment_name)
        loggers.append(build(args, save_dir, f"{Path(log_dir).name}.json"))
    return loggers


# -------------------------------------------------------------------------------------------------- visualizer
class LoggerVisBackend:
    """Stands for a vis backend in the visualizer: what it records or draws goes to one Lightning logger.

    Args:
        logger: The Lightning logger (from :func:`loggers_from_vis_backends`).
    """

    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    @property
    def experiment(self) -> Any:
        """The logger's experiment (``LocalVisLogger`` itself, a ``SummaryWriter``, the wandb run, ...)."""
        return self.logger.experiment

    def add_config(self, config: Any, **kwargs: Any) -> None:
        """The config to the logger's hyperparameters (``LocalVisLogger``: ``config.py``)."""
        local = isinstance(self.logger, LocalVisLogger)
        self.logger.log_hyperparams(config if local or not hasattr(config, "to_dict") else config.to_dict())

    def add_graph(self, model: torch.nn.Module, data_batch: Any, **kwargs: Any) -> None:
        """``WandbVisBackend``: ``WandbLogger.watch(model, **watch_kwargs)``; other backends draw no graph."""
        if self.logger in _WATCH_KWARGS:
            self.logger.watch(model, **_WATCH_KWARGS[self.logger])

    def add_image(self, name: str, image: np.ndarray, step: int = 0, **kwargs: Any) -> None:
        """An RGB ``HWC`` image to the logger, as the MMEngine backend it stands for."""
        logger = self.logger
        if isinstance(logger, LocalVisLogger):
            logger.log_image(name, image, step)
        elif isinstance(logger, pl_loggers.TensorBoardLogger):
            logger.experiment.add_image(name, image, step, dataformats="HWC")
        elif isinstance(logger, pl_loggers.WandbLogger):
            logger.log_image(key=name, images=[image])
        elif isinstance(logger, pl_loggers.MLFlowLogger):
            logger.experiment.log_image(logger.run_id, image, name)

    def add_scalar(self, name: str, value: Any, step: int = 0, **kwargs: Any) -> None:
        """One scalar, as :meth:`add_scalars`."""
        self.add_scalars({name: value}, step)

    def add_scalars(self, scalar_dict: Mapping[str, Any], step: int = 0, file_path: str | None = None,
                    **kwargs: Any) -> None:
        """Scalars at ``step`` (``LocalVisLogger``: also to ``file_path``, as ``LocalVisBackend``)."""
        if isinstance(self.logger, LocalVisLogger):
            self.logger.log_scalars(scalar_dict, step, file_path)
        else:
            self.logger.log_metrics(dict(scalar_dict), step)

    def close(self) -> None:
        """Nothing: the Trainer finalizes its loggers."""


def build_visualizer(
    cfg: Mapping[str, Any] | Any | None,
    experiment_name: str,
    log_dir: str | os.PathLike[str],
    loggers: Sequence[Logger] = (),
) -> Any | None:
    """``Runner.build_visualizer``: the visualizer object, its backends replaced by ``loggers``.

    ``None`` gives MMEngine's default ``Visualizer``; a built visualizer is returned as is (with its own
    backends); a dict gets ``name`` (``experiment_name``) and ``save_dir`` (``log_dir``) defaults and is built
    through :data:`~mm2lightning.registry.VISUALIZERS` (toolbox scopes; ``get_instance`` for the
    ``ManagerMixin`` visualizers), with ``vis_backends=None``: each logger is attached as a
    :class:`LoggerVisBackend` named by its class, so ``add_datasample``/``add_image``/``add_scalars`` reach
    the loggers. MMEngine's own ``Visualizer`` needs mmengine: without it, ``None``.

    Raises:
        TypeError: ``cfg`` is neither a dict, a visualizer nor ``None``.
    """
    if cfg is not None and not isinstance(cfg, Mapping):
        if not hasattr(cfg, "add_scalars"):
            raise TypeError(f"visualizer should be Visualizer object, a dict or None, but got {cfg!r}")
        return cfg
    args = dict(cfg if cfg is not None else dict(type="Visualizer"))
    args.setdefault("name", experiment_name)
    args.setdefault("save_dir", os.fspath(log_dir))
    args["vis_backends"] = None
    kind = args.pop("type", None)
    if kind is None:
        raise KeyError(f'the visualizer config must contain the key "type", got {dict(args)!r}')
    with VISUALIZERS.switch_scope_and_registry(args.pop("_scope_", None)) as registry:
        cls = kind if isinstance(kind, type) else registry.get(kind)
        if cls is None and str(kind).rpartition(".")[2] in MMENGINE_VISUALIZERS:
            if not _installed("mmengine"):
                return None
            from mmengine.visualization import Visualizer as cls
        elif cls is None:
            registry.get_or_raise(kind)
        visualizer = cls.get_instance(**args) if hasattr(cls, "get_instance") else cls(**args)
    for logger in loggers:
        visualizer._vis_backends[type(logger).__name__] = LoggerVisBackend(logger)
    return visualizer


def runner_visualizer(
    visualizer: Any, log_dir: Path, experiment_name: str, timestamp: str, replaced: bool
) -> tuple[list[Logger] | None, Any]:
    """The Runner's visualizer (``runner.visualizer``) and the Trainer loggers its ``vis_backends`` stand for.

    ``LocalVisBackend``'s files are written by the visualizer itself, from MMEngine's ``LoggerHook`` values
    (``vis_data/scalars.json`` and ``<timestamp>.json``); the other backends are Trainer loggers.

    Args:
        visualizer: The Runner's ``visualizer`` argument.
        log_dir: ``work_dir/<timestamp>``.
        experiment_name: The visualizer's default name.
        timestamp: Names LoggerHook's ``<timestamp>.json``.
        replaced: Loggers were given to the Runner: they take the backends' place.

    Returns:
        ``(loggers, visualizer)``; ``(None, None)`` without a visualizer config (the default loggers).
    """
    if visualizer is None:
        return None, None
    built = [] if replaced else backend_loggers(visualizer, log_dir, experiment_name, timestamp)
    local = [logger for logger in built if isinstance(logger, LocalVisLogger)]
    vis = build_visualizer(visualizer, experiment_name, log_dir, loggers=local)
    return [logger for logger in built if not isinstance(logger, LocalVisLogger)], vis


def backend_loggers(
    visualizer: Any, log_dir: str | os.PathLike[str], experiment_name: str, timestamp: str
) -> list[Logger]:
    """The Lightning loggers of a visualizer config's ``vis_backends`` (under its ``save_dir``, else ``log_dir``),
    ``LocalVisBackend``'s also writing LoggerHook's ``<timestamp>.json``."""
    backends = visualizer.get("vis_backends") if isinstance(visualizer, Mapping) else None
    save_dir = Path(visualizer.get("save_dir", log_dir)) if isinstance(visualizer, Mapping) else Path(log_dir)
    loggers = loggers_from_vis_backends(backends, save_dir, experiment_name)
    for logger in loggers:
        if isinstance(logger, LocalVisLogger):
            logger.json_log_path = f"{timestamp}.json"
    return loggers
