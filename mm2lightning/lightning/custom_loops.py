"""MMEngine's custom validation and test loops: ``val_cfg``/``test_cfg`` naming a ``LOOPS`` type (a toolbox's
loop, or the user's), built as MMEngine builds them and run through their own ``run()`` by ``Runner.val()`` and
``Runner.test()``, in one process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mm2lightning.registry import LOOPS

_OWN_LOOPS = {"val": "ValLoop", "test": "TestLoop"}


def is_custom_loop(stage: str, loop_cfg: Any) -> bool:
    """Whether ``loop_cfg`` (a ``val_cfg``/``test_cfg`` dict) names a loop other than MMEngine's own."""
    if not isinstance(loop_cfg, Mapping) or loop_cfg.get("type") is None:
        return False
    loop_type, own = loop_cfg["type"], _OWN_LOOPS[stage]
    if isinstance(loop_type, str):
        return loop_type.removeprefix("mmengine.") != own
    return f"{loop_type.__module__}.{loop_type.__qualname__}" != f"mmengine.runner.loops.{own}"


def build_custom_loop(loop_cfg: Mapping[str, Any], runner: Any, dataloader: Any, evaluator: Any) -> Any:
    """The loop, as MMEngine's ``build_val_loop``/``build_test_loop``: ``LOOPS.build`` in the Runner's scope with
    the runner, the stage's dataloader (a config is built by the loop, through ``runner.build_dataloader``) and its
    evaluator."""
    return LOOPS.build(dict(loop_cfg), default_args=dict(runner=runner, dataloader=dataloader, evaluator=evaluator))


def record_metrics(runner: Any, stage: str, loop: Any, metrics: Mapping[str, Any]) -> None:
    """What MMEngine's built-in hooks do after a custom loop's epoch (they are not hooks under mm2lightning):
    ``RuntimeInfoHook`` puts ``<stage>/<metric>`` in the hub, ``LoggerHook`` prints the ``LogProcessor``'s line."""
    from mm2lightning.lightning.logging import _is_scalar

    hub = runner.message_hub
    for key, value in metrics.items():
        (hub.update_scalar if _is_scalar(value) else hub.update_info)(f"{stage}/{key}", value)
    if runner.module.logger_hook is None:
        return
    state = _LoopRunner(runner, loop)
    _, line = runner.log_processor.get_log_after_epoch(state, len(loop.dataloader), stage)
    runner.logger.info(line)


class _LoopRunner:
    """What the ``LogProcessor`` reads of the Runner after a custom loop (no training in the run)."""

    _train_loop = None

    def __init__(self, runner: Any, loop: Any) -> None:
        self.message_hub, self.model = runner.message_hub, runner.model
        self.iter, self.epoch, self.max_epochs = runner.iter, runner.epoch, runner.max_epochs
        self.max_iters = max(runner.module.max_iters, 0)  # known once a fit ran; not read for evaluation lines
        self.val_loop = self.test_loop = loop
