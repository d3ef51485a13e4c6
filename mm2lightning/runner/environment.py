"""MMEngine's ``env_cfg``: the process environment a Runner sets up before it builds anything."""

from __future__ import annotations

import datetime
import multiprocessing as mp
import os
import platform
import warnings
from collections.abc import Mapping
from typing import Any

import torch

from mm2lightning.runner.options import UnsupportedOptionError

_ENV_KEYS = ("cudnn_benchmark", "mp_cfg", "dist_cfg", "resource_limit")
_MP_KEYS = ("mp_start_method", "opencv_num_threads")
_DIST_KEYS = ("backend", "timeout", "init_backend")


def check_env_cfg(env_cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """``env_cfg`` as a dict, its keys checked: what MMEngine's ``setup_env`` reads, or an error naming the key."""
    env_cfg = {k: v for k, v in dict(env_cfg or {}).items() if k != "_scope_"}
    unknown = sorted(set(env_cfg) - set(_ENV_KEYS))
    if unknown:
        raise UnsupportedOptionError(f"env_cfg has unknown keys {unknown}; MMEngine reads {list(_ENV_KEYS)}")
    unknown = sorted(set(env_cfg.get("mp_cfg") or {}) - set(_MP_KEYS))
    if unknown:  # MMEngine: a TypeError from set_multi_processing
        raise UnsupportedOptionError(f"env_cfg.mp_cfg has unknown keys {unknown}; expected {list(_MP_KEYS)}")
    dist_cfg = dict(env_cfg.get("dist_cfg") or {})
    unknown = sorted(set(dist_cfg) - set(_DIST_KEYS))
    if unknown:
        raise UnsupportedOptionError(
            f"env_cfg.dist_cfg {unknown}: mm2lightning gives the process group Lightning starts only backend and "
            "timeout"
        )
    if dist_cfg.get("init_backend", "torch") != "torch":
        raise UnsupportedOptionError(
            f"env_cfg.dist_cfg init_backend={dist_cfg['init_backend']!r}: Lightning starts the process group "
            "with torch.distributed; leave init_backend out"
        )
    return env_cfg


def setup_env(env_cfg: Mapping[str, Any], distributed: bool) -> None:
    """Set up the process as MMEngine's ``Runner.setup_env``: cuDNN's benchmark mode, the multiprocessing start
    method, OpenCV's threads, OMP/MKL threads of distributed processes and the open-file limit.

    The process group itself is Lightning's (see :func:`process_group_args`).
    """
    if env_cfg.get("cudnn_benchmark"):
        torch.backends.cudnn.benchmark = True
    mp_cfg = dict(env_cfg.get("mp_cfg") or {})
    _set_multi_processing(mp_cfg.get("mp_start_method", "fork"), mp_cfg.get("opencv_num_threads", 0), distributed)
    if platform.system() != "Windows":
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(env_cfg.get("resource_limit", 4096), soft), hard), hard))


def _set_multi_processing(start_method: str, opencv_num_threads: int, distributed: bool) -> None:
    """MMEngine's ``set_multi_processing``."""
    if platform.system() != "Windows":
        current = mp.get_start_method(allow_none=True)
        if current is not None and current != start_method:
            warnings.warn(
                f"Multi-processing start method `{start_method}` is different from the previous setting "
                f"`{current}`. It will be force set to `{start_method}` (env_cfg.mp_cfg.mp_start_method).",
                stacklevel=3,
            )
        mp.set_start_method(start_method, force=True)
    try:
        import cv2
    except ImportError:
        pass
    else:
        cv2.setNumThreads(opencv_num_threads)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if distributed and variable not in os.environ:
            warnings.warn(
                f"Setting {variable} environment variable for each process to be 1 in default, to avoid your "
                "system being overloaded, please further tune the variable for optimal performance in your "
                "application as needed.",
                stacklevel=3,
            )
            os.environ[variable] = "1"


def process_group_args(env_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``env_cfg.dist_cfg`` as Lightning strategy arguments (``process_group_backend``, ``timeout``).

    MMEngine's default backend, ``'nccl'``, needs GPUs: on a machine without CUDA it becomes ``'gloo'``, with a
    warning.
    """
    dist_cfg = dict(env_cfg.get("dist_cfg") or {})
    kwargs: dict[str, Any] = {}
    backend = dist_cfg.get("backend")
    if backend == "nccl" and not torch.cuda.is_available():
        warnings.warn("env_cfg.dist_cfg backend='nccl' needs CUDA devices: using 'gloo'", stacklevel=3)
        backend = "gloo"
    if backend is not None:
        kwargs["process_group_backend"] = backend
    timeout = dist_cfg.get("timeout")
    if timeout is not None:
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
            raise TypeError(  # as MMEngine's init_dist
                f"Timeout for distributed training must be provided as timeout in seconds, but we've received the "
                f"type {type(timeout)}. Please specify the timeout like this: dist_cfg=dict(backend='nccl', "
                "timeout=1800)"
            )
        kwargs["timeout"] = datetime.timedelta(seconds=timeout)
    return kwargs
