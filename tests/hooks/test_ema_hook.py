"""EMAHook driven call by call next to mmengine's EMAHook on a stub runner: averaged and source weights,
checkpoint dicts, resume/load paths and argument errors must be identical."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from mm2lightning.hooks import HOOKS, EMAHook
from mm2lightning.registry import RegistryError

ITERS_PER_EPOCH = 5
MAX_EPOCHS = 3


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def _assert_equal(ours: Any, ref: Any, where: str = "") -> None:
    """Nested dicts/tensors are equal: same keys in the same order, torch.equal values."""
    if isinstance(ref, dict):
        assert isinstance(ours, dict) and list(ours) == list(ref), where
        for key in ref:
            _assert_equal(ours[key], ref[key], f"{where}.{key}")
    elif isinstance(ref, torch.Tensor):
        assert ours.dtype == ref.dtype and torch.equal(ours, ref), where
    else:
        assert ours == ref, where


class _Pair:
    """Our EMAHook and mmengine's, each on its own copy of the same model and stub runner."""

    def __init__(self, cfg: dict, seed: int = 0, wrap: bool = False, resume: bool = False) -> None:
        from mmengine.hooks import EMAHook as MMEMAHook

        self.hooks = [EMAHook(**cfg), MMEMAHook(**cfg)]
        self.models = [_model(seed), _model(seed)]
        self.optimizers = [torch.optim.SGD(m.parameters(), lr=0.3) for m in self.models]
        self.runners = [
            SimpleNamespace(
                model=nn.DataParallel(m) if wrap else m, epoch=0, iter=0, max_epochs=MAX_EPOCHS,
                max_iters=MAX_EPOCHS * ITERS_PER_EPOCH, _resume=resume,
            )
            for m in self.models
        ]

    def call(self, point: str, *args: Any) -> None:
        """Call ``point`` on both hooks (each argument a pair: ours, theirs), then compare the weights."""
        for i, (hook, runner) in enumerate(zip(self.hooks, self.runners)):
            getattr(hook, point)(runner, *(arg[i] for arg in args))
        self.check(point)

    def check(self, where: str) -> None:
        _assert_equal(self.models[0].state_dict(), self.models[1].state_dict(), f"{where}: source")
        if hasattr(self.hooks[1], "ema_model"):
            assert self.hooks[0].src_model is self.models[0]
            _assert_equal(self.hooks[0].ema_model.state_dict(), self.hooks[1].ema_model.state_dict(), f"{where}: ema")

    def train_iter(self, it: int) -> None:
        """One SGD step on both models (in train mode), then ``after_train_iter`` at iteration ``it``."""
        gen = torch.Generator().manual_seed(100 + it)
        x, y = torch.randn(8, 3, generator=gen), torch.randn(8, 2, generator=gen)
        for model, optimizer, runner in zip(self.models, self.optimizers, self.runners):
            model.train()
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
            runner.iter, runner.epoch = it, it // ITERS_PER_EPOCH
        self.call("after_train_iter", (it % ITERS_PER_EPOCH,) * 2)

    def eval_epoch(self, stage: str) -> None:
        """A validation/test epoch: swap in, evaluate (outputs must match), swap back."""
        self.call(f"before_{stage}_epoch")
        x = torch.randn(6, 3)
        with torch.no_grad():
            outputs = [model.eval()(x) for model in self.models]
        assert torch.equal(*outputs)
        self.call(f"after_{stage}_epoch", ({"acc": 1.0},) * 2)

    def save(self) -> list[dict]:
        """``before_save_checkpoint`` on MMEngine-layout dicts; returns deep copies, as written to disk."""
        checkpoints = [{"state_dict": m.state_dict(), "meta": {"epoch": 1}} for m in self.models]
        self.call("before_save_checkpoint", checkpoints)
        _assert_equal(checkpoints[0], checkpoints[1], "checkpoint")
        assert list(checkpoints[0]) == ["state_dict", "meta", "ema_state_dict"]
        return copy.deepcopy(checkpoints)


CFGS = [
    dict(),
    dict(momentum=0.1, interval=3),
    dict(momentum=0.1, update_buffers=True, begin_iter=4),
    dict(ema_type="MomentumAnnealingEMA", momentum=0.01, gamma=5, begin_epoch=2),
    dict(ema_type="StochasticWeightAverage", interval=2, update_buffers=True),
]


@pytest.mark.parametrize("wrap", [False, True], ids=["plain", "wrapped"])
@pytest.mark.parametrize("cfg", CFGS, ids=lambda cfg: ",".join(f"{k}={v}" for k, v in cfg.items()) or "default")
def test_training_validation_and_checkpoints_match_mmengine(mmengine, cfg, wrap):
    pair = _Pair(cfg, wrap=wrap)
    pair.call("before_run")
    pair.call("before_train")
    saved = None
    for it in range(MAX_EPOCHS * ITERS_PER_EPOCH):
        pair.train_iter(it)
        if (it + 1) % ITERS_PER_EPOCH == 0:
            pair.eval_epoch("val")
            if it + 1 == 2 * ITERS_PER_EPOCH:
                saved = pair.save()
    pair.eval_epoch("test")

    # resume from the epoch-2 checkpoint on fresh models: ema_state_dict swapped back and loaded
    resumed = _Pair(cfg, seed=1, wrap=wrap, resume=True)
    resumed.call("before_run")
    resumed.call("after_load_checkpoint", saved)
    _assert_equal(saved[0], saved[1], "resumed checkpoint")
    for model, checkpoint in zip(resumed.models, saved):
        model.load_state_dict(checkpoint["state_dict"])  # what the Runner does after the hook
    resumed.call("before_train")
    for it in range(2 * ITERS_PER_EPOCH, MAX_EPOCHS * ITERS_PER_EPOCH):
        resumed.train_iter(it)
    resumed.eval_epoch("val")
    # ... and ends where the uninterrupted run ended
    _assert_equal(resumed.hooks[0].ema_model.state_dict(), pair.hooks[0].ema_model.state_dict(), "resumed ema")


@pytest.mark.parametrize("resume", [True, False], ids=["resume", "load"])
def test_load_without_ema_state_dict_matches_mmengine(mmengine, log_text, resume):
    source = _model(seed=3).state_dict()
    checkpoints = [{"state_dict": copy.deepcopy(source), "meta": {}} for _ in range(2)]
    pair = _Pair(dict(momentum=0.1, update_buffers=True), resume=resume)
    pair.call("before_run")
    pair.call("after_load_checkpoint", checkpoints)
    assert ("There is no `ema_state_dict` in checkpoint" in log_text()) is resume
    _assert_equal(pair.hooks[0].ema_model.module.state_dict(), source, "ema module")
    _assert_equal(checkpoints[0], checkpoints[1], "checkpoint")


def test_load_with_ema_state_dict_without_resume_matches_mmengine(mmengine, log_text):
    """Not resuming: the averaged weights saved under ``state_dict`` become the averaged model."""
    trained = _Pair(dict(momentum=0.1))
    trained.call("before_run")
    for it in range(4):
        trained.train_iter(it)
    saved = trained.save()
    pair = _Pair(dict(momentum=0.1), seed=2)
    pair.call("before_run")
    pair.call("after_load_checkpoint", saved)
    assert " - WARNING - " not in log_text()
    _assert_equal(pair.hooks[0].ema_model.module.state_dict(), trained.hooks[0].ema_model.module.state_dict())
    assert int(pair.hooks[0].ema_model.steps) == 0  # `steps` is not in `state_dict`


def _mismatched_state_dict() -> dict:
    state = _model(seed=4).state_dict()
    state["0.weight"] = torch.zeros(5, 3)  # wrong shape
    state["extra.weight"] = torch.ones(2)  # unexpected
    del state["3.bias"]  # missing
    del state["1.num_batches_tracked"]  # missing, but not reported
    return state


def test_non_strict_load_skips_and_reports_mismatches(mmengine, log_text):
    pair = _Pair(dict())
    pair.call("before_run")
    pair.call("after_load_checkpoint", [{"state_dict": _mismatched_state_dict()} for _ in range(2)])
    text = log_text()
    assert "size mismatch for 0.weight" in text
    assert "unexpected key in source state_dict: extra.weight" in text
    assert "missing keys in source state_dict: 3.bias\n" in text + "\n"
    assert "num_batches_tracked" not in text


def test_strict_load_raises_like_mmengine(mmengine):
    pair = _Pair(dict(strict_load=True))
    pair.call("before_run")
    for hook, runner in zip(pair.hooks, pair.runners):
        with pytest.raises(RuntimeError, match="do not match exactly") as err:
            hook.after_load_checkpoint(runner, {"state_dict": _mismatched_state_dict()})
        assert "3.bias" in str(err.value) and "extra.weight" in str(err.value) and "0.weight" in str(err.value)
    pair.check("strict load")


@pytest.mark.parametrize(
    ("cfg", "point"),
    [
        (dict(begin_iter=2, begin_epoch=1), "__init__"),
        (dict(begin_iter=-1), "__init__"),
        (dict(begin_epoch=-1), "__init__"),
        (dict(begin_iter=16), "before_train"),  # max_iters=15
        (dict(begin_epoch=4), "before_train"),  # max_epochs=3
    ],
)
def test_argument_errors_match_mmengine(mmengine, cfg, point):
    from mmengine.hooks import EMAHook as MMEMAHook

    runner = SimpleNamespace(model=_model(), max_epochs=3, max_iters=15)
    messages = []
    for cls in (MMEMAHook, EMAHook):
        with pytest.raises(AssertionError) as err:
            hook = cls(**cfg)
            hook.before_run(runner)
            hook.before_train(runner)
        messages.append(str(err.value))
    assert isinstance(err.value, ValueError)
    assert messages[0].split("but got")[0].rstrip(", ") in messages[1]
    # a valid bound passes
    if point == "before_train":
        at_bound = SimpleNamespace(
            model=_model(), max_epochs=cfg.get("begin_epoch", 0), max_iters=cfg.get("begin_iter", 0)
        )
        hook = EMAHook(**cfg)
        hook.before_run(at_bound)
        hook.before_train(at_bound)


def test_unregistered_ema_type_names_the_registry_and_close_names(mmengine):
    from mmengine.hooks import EMAHook as MMEMAHook

    runner = SimpleNamespace(model=_model())
    with pytest.raises(KeyError):
        MMEMAHook(ema_type="ExponentialMovingAvg").before_run(runner)
    with pytest.raises(KeyError) as err:
        EMAHook(ema_type="ExponentialMovingAvg").before_run(runner)
    assert isinstance(err.value, RegistryError)
    assert "'model' registry" in str(err.value) and "'ExponentialMovingAverage'" in str(err.value)


def test_registered_and_priority():
    assert HOOKS.get("EMAHook") is EMAHook
    assert EMAHook.priority == "NORMAL"
    hook = HOOKS.build(dict(type="EMAHook", momentum=0.5, interval=2))
    assert hook.ema_cfg == dict(type="ExponentialMovingAverage", momentum=0.5, interval=2)
