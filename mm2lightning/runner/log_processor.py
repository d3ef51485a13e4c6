"""``LogProcessor``: MMEngine's smoothing and formatting of the message hub's scalars at a log step."""

from __future__ import annotations

import copy
import datetime
import re
from collections import OrderedDict
from itertools import chain
from typing import Any

import numpy as np
import torch


class LogProcessor:
    """Turns ``runner.message_hub.log_scalars`` into the values MMEngine's ``LoggerHook`` writes and prints.

    At a log step, :meth:`get_log_after_iter` gives ``(tag, log_str)``: ``tag``
    holds every ``<mode>/<key>`` scalar without the prefix (with it when
    ``log_with_hierarchy``), as the mean over the last ``window_size`` values
    for keys matching ``mean_pattern`` and as the latest value for the others,
    plus the ``custom_cfg`` statistics, ``epoch``/``iter`` (and ``memory`` on
    CUDA); ``log_str`` is MMEngine's ``Epoch(train) [e][i/n]  lr: ...  loss: ...``
    line. :meth:`get_log_after_epoch` does the same for validation and test
    metrics. The same numbers as MMEngine's ``LogProcessor`` on the same hub.

    ``runner`` is anything with MMEngine Runner's ``message_hub``, ``iter``,
    ``epoch``, ``max_epochs``, ``max_iters``, ``model``, ``_train_loop`` (``None``
    when not training) and ``train_loop``/``val_loop``/``test_loop`` whose
    ``dataloader`` has a length: MMEngine's own Runner, or the view
    mm2lightning's Lightning module passes.

    Args:
        window_size: The default smoothing window.
        by_epoch: ``Epoch(...)`` lines with the iteration in the epoch, else ``Iter(...)`` lines.
        custom_cfg: Extra statistics: dicts with ``data_src`` (a key without the
            ``train/`` prefix), ``method_name`` (``'mean'``, ``'min'``, ``'max'``,
            ``'current'`` or a registered ``HistoryBuffer`` statistic), ``window_size``
            (an int, ``'epoch'`` or ``'global'``) and ``log_name`` (default:
            ``data_src``, replacing the default statistic; a ``data_src`` may be
            replaced once).
        num_digits: Digits shown after the point.
        log_with_hierarchy: Keep the ``train/``/``val/`` prefixes in ``tag``.
        mean_pattern: Keys averaged over the window (a regular expression).

    Raises:
        AssertionError: A ``custom_cfg`` entry has no ``data_src``, repeats a
            ``log_name``, or uses ``window_size='epoch'`` with ``by_epoch=False`` (as MMEngine).
    """

    def __init__(
        self,
        window_size: int = 10,
        by_epoch: bool = True,
        custom_cfg: list[dict[str, Any]] | None = None,
        num_digits: int = 4,
        log_with_hierarchy: bool = False,
        mean_pattern: str = r".*(loss|time|data_time|grad_norm).*",
    ) -> None:
        self.window_size = window_size
        self.by_epoch = by_epoch
        self.custom_cfg = custom_cfg if custom_cfg else []
        self.num_digits = num_digits
        self.log_with_hierarchy = log_with_hierarchy
        self.mean_pattern = re.compile(mean_pattern)
        self._check_custom_cfg()

    # ------------------------------------------------------------------ iterations
    def get_log_after_iter(self, runner: Any, batch_idx: int, mode: str) -> tuple[dict[str, Any], str]:
        """``(tag, log_str)`` after iteration ``batch_idx`` (in its loop) of ``mode`` (``'train'``, ``'val'``,
        ``'test'``)."""
        if mode not in ("train", "test", "val"):
            raise AssertionError(f"mode must be 'train', 'val' or 'test', but got {mode!r}")
        parsed_cfg = self._parse_windows_size(runner, batch_idx, self.custom_cfg)
        log_tag = self._collect_scalars(parsed_cfg, runner, mode)
        if self.log_with_hierarchy:  # tag keys keep their train/val/test prefix; log_tag's do not
            tag = self._collect_scalars(parsed_cfg, runner, mode, True)
        else:
            tag = dict(log_tag)  # a shallow copy suffices: log_tag only loses keys below

        lr_items = []
        for key, value in tag.items():
            if key.endswith("lr"):
                key = self._remove_prefix(key, f"{mode}/")
                log_tag.pop(key)
                lr_items.append(f"{key}: {value:.{self.num_digits}e}")
        lr_str = " ".join(lr_items)
        training = _training_built(runner)
        if self.by_epoch:
            dataloader_len = self._get_dataloader_size(runner, mode)
            cur_iter_str = str(self._get_iter(runner, batch_idx)).rjust(len(str(dataloader_len)))
            if mode in ("train", "val"):
                cur_epoch = self._get_epoch(runner, mode)
                cur_epoch_str = f"[{cur_epoch}]"
                if training:  # right-align the epoch under the widest one
                    cur_epoch_str = cur_epoch_str.rjust(len(str(runner.max_epochs)) + 3, " ")
                tag["epoch"] = cur_epoch
                log_str = f"Epoch({mode}){cur_epoch_str}[{cur_iter_str}/{dataloader_len}]  "
            else:
                log_str = f"Epoch({mode}) [{cur_iter_str}/{dataloader_len}]  "
        elif mode == "train":
            cur_iter_str = str(self._get_iter(runner, batch_idx)).rjust(len(str(runner.max_iters)))
            log_str = f"Iter({mode}) [{cur_iter_str}/{runner.max_iters}]  "
        else:
            dataloader_len = self._get_dataloader_size(runner, mode)
            log_str = f"Iter({mode}) [{str(batch_idx + 1).rjust(len(str(dataloader_len)))}/{dataloader_len}]  "
        tag["iter"] = runner.iter + 1 if training else 0
        log_str += f"{lr_str}  "
        if all(item in log_tag for item in ("time", "data_time")) and "eta" in runner.message_hub.runtime_info:
            eta_str = str(datetime.timedelta(seconds=int(runner.message_hub.get_info("eta"))))
            log_str += f"eta: {eta_str}  "
            log_str += (
                f"time: {log_tag['time']:.{self.num_digits}f}  data_time: {log_tag['data_time']:.{self.num_digits}f}  "
            )
            log_tag.pop("time")
            log_tag.pop("data_time")
        if torch.cuda.is_available():
            max_memory = self._get_max_memory(runner)
            log_str += f"memory: {max_memory}  "
            tag["memory"] = max_memory
        if mode in ("train", "val"):
            log_items = []
            for name, val in log_tag.items():
                if mode == "val" and not name.startswith("val/loss"):
                    continue
                if isinstance(val, float):
                    val = f"{val:.{self.num_digits}f}"
                log_items.append(f"{name}: {val}")
            log_str += "  ".join(log_items)
        return tag, log_str

    # ---------------------------------------------------------------------- epochs
    def get_log_after_epoch(
        self, runner: Any, batch_idx: int, mode: str, with_non_scalar: bool = False
    ) -> tuple[dict[str, Any], str]:
        """``(tag, log_str)`` after a validation or test epoch of ``batch_idx`` iterations: the metrics
        (``val/<name>`` scalars), and the epoch means of ``time``/``data_time`` when logged."""
        if mode not in ("test", "val"):
            raise AssertionError(f"`_get_metric_log_str` only accept val or test mode, but got {mode}")
        dataloader_len = self._get_dataloader_size(runner, mode)
        if not self.by_epoch:
            log_str = f"Iter({mode}) [{dataloader_len}/{dataloader_len}]  "
        elif mode == "val":
            log_str = f"Epoch({mode}) [{self._get_epoch(runner, mode)}][{dataloader_len}/{dataloader_len}]  "
        else:
            log_str = f"Epoch({mode}) [{dataloader_len}/{dataloader_len}]  "

        custom_cfg_copy = copy.deepcopy(self.custom_cfg)
        custom_keys = [self._remove_prefix(cfg["data_src"], f"{mode}/") for cfg in custom_cfg_copy]
        for key in ("time", "data_time"):
            if key not in custom_keys:
                custom_cfg_copy.append(dict(data_src=key, window_size="epoch", method_name="mean"))
        parsed_cfg = self._parse_windows_size(runner, batch_idx, custom_cfg_copy)
        ori_tag = self._collect_scalars(parsed_cfg, runner, mode, self.log_with_hierarchy)
        non_scalar_tag = self._collect_non_scalars(runner, mode)
        tag: OrderedDict[str, Any] = OrderedDict()
        time_tag: OrderedDict[str, Any] = OrderedDict()
        for key, value in ori_tag.items():
            target = time_tag if key in (f"{mode}/time", f"{mode}/data_time", "time", "data_time") else tag
            target[key] = value
        log_items = []
        log_str += "  "
        for name, val in chain(tag.items(), non_scalar_tag.items(), time_tag.items()):
            if isinstance(val, float):
                val = f"{val:.{self.num_digits}f}"
            if isinstance(val, (torch.Tensor, np.ndarray)):
                val = f"\n{val}\n"
            log_items.append(f"{name}: {val}")
        log_str += "  ".join(log_items)
        if with_non_scalar:
            tag.update(non_scalar_tag)
        tag.update(time_tag)
        return tag, log_str

    # --------------------------------------------------------------------- helpers
    def _collect_scalars(
        self, custom_cfg: list[dict[str, Any]], runner: Any, mode: str, reserve_prefix: bool = False
    ) -> OrderedDict[str, Any]:
        """The statistics of the ``<mode>/`` scalars: window means, latest values, then ``custom_cfg``'s."""
        tag: OrderedDict[str, Any] = OrderedDict()
        mode_history_scalars: OrderedDict[str, Any] = OrderedDict()
        for prefix_key, log_buffer in runner.message_hub.log_scalars.items():
            if prefix_key.startswith(mode):
                key = prefix_key if reserve_prefix else self._remove_prefix(prefix_key, f"{mode}/")
                mode_history_scalars[key] = log_buffer
        for key, buffer in mode_history_scalars.items():
            if self.mean_pattern.search(key) is not None:
                tag[key] = buffer.mean(self.window_size)
            else:
                tag[key] = buffer.current()
        for log_cfg in custom_cfg:
            log_cfg = dict(log_cfg)  # popped below
            data_src = log_cfg.pop("data_src")
            log_name = log_cfg.pop("log_name", data_src)
            if reserve_prefix:
                data_src, log_name = f"{mode}/{data_src}", f"{mode}/{log_name}"
            if data_src in mode_history_scalars:
                tag[log_name] = mode_history_scalars[data_src].statistics(**log_cfg)
        return tag

    def _collect_non_scalars(self, runner: Any, mode: str) -> OrderedDict[str, Any]:
        """The ``<mode>/`` runtime information (non-scalar metrics)."""
        mode_infos: OrderedDict[str, Any] = OrderedDict()
        for prefix_key, value in runner.message_hub.runtime_info.items():
            if prefix_key.startswith(mode):
                key = prefix_key if self.log_with_hierarchy else self._remove_prefix(prefix_key, f"{mode}/")
                mode_infos[key] = value
        return mode_infos

    @staticmethod
    def _remove_prefix(string: str, prefix: str) -> str:
        return string[len(prefix) :] if string.startswith(prefix) else string

    def _check_custom_cfg(self) -> None:
        """MMEngine's checks: each entry has ``data_src``; ``log_name`` unique; no ``'epoch'`` window when
        not ``by_epoch``."""
        check_set = set()
        for log_cfg in self.custom_cfg:
            if "data_src" not in log_cfg:
                raise AssertionError(f"each custom_cfg entry needs a 'data_src' (the logged key), got {log_cfg}")
            data_src = log_cfg["data_src"]
            log_name = log_cfg.get("log_name", data_src)
            if log_name in check_set:
                raise AssertionError(
                    f"Found duplicate {log_name} for {data_src}. Please check your `custom_cfg` for "
                    f"`log_processor`. You should neither define duplicate `{log_name}` for {data_src} nor do not "
                    f"define any {log_name} for multiple {data_src}, See more information in the docstring of "
                    "LogProcessor"
                )
            check_set.add(log_name)
        for log_cfg in self.custom_cfg:
            if not self.by_epoch and log_cfg["window_size"] == "epoch":
                raise AssertionError("window_size cannot be epoch if LoggerHook.by_epoch is False.")

    def _parse_windows_size(
        self, runner: Any, batch_idx: int, custom_cfg: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """``custom_cfg`` with ``'epoch'``/``'global'`` windows as iteration counts."""
        custom_cfg = [dict(log_cfg) for log_cfg in (self.custom_cfg if custom_cfg is None else custom_cfg)]
        for log_cfg in custom_cfg:
            window_size = log_cfg.get("window_size", None)
            if window_size is None or isinstance(window_size, int):
                continue
            if window_size == "epoch":
                log_cfg["window_size"] = batch_idx + 1
            elif window_size == "global":
                log_cfg["window_size"] = runner.iter + 1
            else:
                raise TypeError(f"window_size should be int, epoch or global, but got invalid {window_size}")
        return custom_cfg

    @staticmethod
    def _get_max_memory(runner: Any) -> int:
        """Peak CUDA memory in MB since the last call (then reset), as MMEngine."""
        memory = torch.cuda.max_memory_allocated(device=getattr(runner.model, "output_device", None))
        torch.cuda.reset_peak_memory_stats()
        return int(memory) // (1024 * 1024)

    def _get_iter(self, runner: Any, batch_idx: int) -> int:
        return batch_idx + 1 if self.by_epoch else runner.iter + 1

    @staticmethod
    def _get_epoch(runner: Any, mode: str) -> int:
        if mode == "train":
            return runner.epoch + 1
        if mode == "val":
            return runner.epoch if _training_built(runner) else 0  # the epoch is counted before validation
        raise ValueError(f"runner mode should be 'train' or 'val', but got {mode}")

    @staticmethod
    def _get_cur_loop(runner: Any, mode: str) -> Any:
        if mode == "train":
            return runner.train_loop
        return runner.val_loop if mode == "val" else runner.test_loop

    def _get_dataloader_size(self, runner: Any, mode: str) -> int:
        return len(self._get_cur_loop(runner, mode).dataloader)


def _training_built(runner: Any) -> bool:
    """Whether the runner has a training loop (MMEngine: ``_train_loop`` is built, not a config or ``None``)."""
    return not (isinstance(runner._train_loop, dict) or runner._train_loop is None)
