"""Hooks under Lightning see what MMEngine's Runner shows them: the same points, order, counters and data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from mm2lightning.hooks import Hook
from mm2lightning.runner import Runner


def make_model_cls(base):
    class Regression(base):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))

        def forward(self, x, y, mode="tensor"):
            out = self.body(torch.stack(x) if isinstance(x, list) else x)
            y = torch.stack(y) if isinstance(y, list) else y
            if mode == "loss":
                return dict(loss=(out - y).pow(2).mean(), l1=(out - y).abs().mean())
            return [float(v) for v in (out - y).pow(2).mean(1)]

    return Regression


def make_metric_cls(base):
    class NegMSE(base):
        def process(self, data_batch, data_samples) -> None:
            self.results.extend(data_samples)

        def compute_metrics(self, results) -> dict:
            return dict(acc=-sum(results) / len(results))

    return NegMSE


def make_record_hook(base, record: list, tag: str, priority):
    """A hook that records, at every point, what it sees (written once, for either base class)."""

    class Record(base):
        def __init__(self) -> None:
            self.priority = priority

        def _note(self, stage, runner, **extra) -> None:
            record.append((tag, stage, runner.epoch, runner.iter, runner.max_epochs, runner.max_iters, extra))

        def before_run(self, runner):  # mm2lightning knows an epoch-based max_iters from before_train on
            record.append((tag, "before_run", runner.epoch, runner.iter))

        def after_run(self, runner):
            self._note("after_run", runner)

        def before_train(self, runner):
            self._note("before_train", runner, loop=(runner.train_loop.epoch, runner.train_loop.iter))

        def after_train(self, runner):
            self._note("after_train", runner)

        def before_train_epoch(self, runner):
            self._note("before_train_epoch", runner)

        def after_train_epoch(self, runner):
            self._note("after_train_epoch", runner)

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            self._note("before_train_iter", runner, batch_idx=batch_idx, n=len(data_batch["x"]))

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            outputs = {k: round(float(v), 6) for k, v in outputs.items()}
            self._note("after_train_iter", runner, batch_idx=batch_idx, outputs=outputs)

        def before_val(self, runner):
            self._note("before_val", runner)

        def after_val(self, runner):
            self._note("after_val", runner)

        def before_val_epoch(self, runner):
            self._note("before_val_epoch", runner)

        def after_val_epoch(self, runner, metrics=None):
            self._note("after_val_epoch", runner, metrics={k: round(float(v), 6) for k, v in metrics.items()})

        def before_val_iter(self, runner, batch_idx, data_batch=None):
            self._note("before_val_iter", runner, batch_idx=batch_idx)

        def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self._note("after_val_iter", runner, batch_idx=batch_idx, outputs=[round(v, 6) for v in outputs])

        def before_save_checkpoint(self, runner, checkpoint):
            self._note("before_save_checkpoint", runner, keys=sorted(checkpoint["state_dict"]),
                       meta="meta" in checkpoint)

    return Record


def data(n: int, seed: int) -> list:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    return [dict(x=a, y=b) for a, b in zip(x, x.sum(1, keepdim=True).sin())]


def run(package, work_dir: Path, train_cfg: dict, checkpoint: dict, hook_base=None) -> list:
    """Train with ``package``'s Runner and three record hooks of different priorities; return the record.

    ``hook_base``: the hooks' base class (default: the package's own ``Hook``).
    """
    if package == "mmengine":
        from mmengine.evaluator import BaseMetric
        from mmengine.hooks import Hook as HookBase
        from mmengine.model import BaseModel
        from mmengine.runner import Runner as RunnerCls

        extra = dict(log_level="WARNING")
    else:
        from mm2lightning.evaluator import BaseMetric
        from mm2lightning.model import BaseModel

        HookBase, RunnerCls = hook_base or Hook, Runner
        extra = dict(trainer_cfg=dict(enable_progress_bar=False, enable_model_summary=False))
    record: list = []
    hooks = [
        make_record_hook(HookBase, record, "low", "LOW")(),
        make_record_hook(HookBase, record, "high", "HIGH")(),
        make_record_hook(HookBase, record, "int45", 45)(),
    ]
    torch.manual_seed(0)
    runner = RunnerCls(
        model=make_model_cls(BaseModel)(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=data(20, 1), batch_size=4, sampler=dict(type="DefaultSampler", shuffle=True),
            collate_fn=dict(type="default_collate"),
        ),
        val_dataloader=dict(
            dataset=data(10, 2), batch_size=4, sampler=dict(type="DefaultSampler", shuffle=False),
            collate_fn=dict(type="default_collate"),
        ),
        val_evaluator=[make_metric_cls(BaseMetric)()],
        train_cfg=train_cfg,
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05)),
        default_hooks=dict(checkpoint=checkpoint),
        custom_hooks=hooks,
        randomness=dict(seed=3),
        **extra,
    )
    runner.train()
    return record


@pytest.mark.parametrize(
    "train_cfg, checkpoint",
    [
        (dict(by_epoch=True, max_epochs=3, val_interval=2), dict(type="CheckpointHook", by_epoch=False, interval=4)),
        (dict(by_epoch=False, max_iters=9, val_interval=4), dict(type="CheckpointHook", by_epoch=False, interval=3)),
    ],
    ids=["epoch-based", "iteration-based"],
)
@pytest.mark.parametrize("hook_base", ["mm2lightning", "mmengine"])
def test_hooks_see_what_mmengine_runner_shows_them(mmengine, tmp_path, train_cfg, checkpoint, hook_base):
    expected = run("mmengine", tmp_path / "mmengine", train_cfg, checkpoint)
    # hook_base 'mmengine': hooks written against real mmengine.hooks.Hook, unchanged, under our Runner
    base = mmengine.hooks.Hook if hook_base == "mmengine" else Hook
    ours = run("mm2lightning", tmp_path / "ours", train_cfg, checkpoint, hook_base=base)
    assert [r[:2] for r in ours] == [r[:2] for r in expected]  # the points, and the hooks' order at each
    for got, want in zip(ours, expected):
        assert got == want


def test_epoch_checkpoints_differ_from_mmengine_only_where_documented(mmengine, tmp_path):
    """Epoch-end checkpoints are written after the epoch's validation (Lightning's order; README "Not yet"):
    every other point is MMEngine's, and the saves see the same checkpoint, one epoch later in the counter."""
    train_cfg = dict(by_epoch=True, max_epochs=3, val_interval=2)
    checkpoint = dict(type="CheckpointHook", interval=1)
    expected = run("mmengine", tmp_path / "mmengine", train_cfg, checkpoint)
    ours = run("mm2lightning", tmp_path / "ours", train_cfg, checkpoint)

    def split(record):
        saves = [r for r in record if r[1] == "before_save_checkpoint"]
        return [r for r in record if r[1] != "before_save_checkpoint"], saves

    (ours_rest, ours_saves), (ref_rest, ref_saves) = split(ours), split(expected)
    assert ours_rest == ref_rest
    assert len(ours_saves) == len(ref_saves) == 9  # 3 epochs x 3 hooks
    for got, want in zip(ours_saves, ref_saves):
        assert got[:2] == want[:2] and got[3:] == want[3:]  # hook, point, iter, max_*, the checkpoint's keys
        assert got[2] == want[2] + 1  # runner.epoch already counts the epoch
