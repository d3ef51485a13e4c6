"""LogProcessor against mmengine's on the same message hub data: tags, log lines, custom_cfg and its errors."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from mm2lightning.logging import MessageHub
from mm2lightning.runner import LogProcessor

CUSTOM_CFGS = {
    "none": None,
    "windows": [
        dict(data_src="loss", log_name="loss_epoch", method_name="mean", window_size="epoch"),
        dict(data_src="loss", log_name="loss_global", method_name="mean", window_size="global"),
        dict(data_src="loss_cls", log_name="loss_cls_max", method_name="max", window_size=3),
        dict(data_src="acc", method_name="mean", window_size=4),  # replaces the default statistic of acc
        dict(data_src="loss", log_name="loss_min", method_name="min", window_size=2),
        dict(data_src="lr", log_name="lr_now", method_name="current"),
    ],
}


@pytest.fixture(autouse=True)
def _no_cuda_memory(monkeypatch, mmengine):
    """Both processors would read and reset the peak CUDA memory; compare the rest."""
    import mmengine.runner.log_processor as mm_log_processor

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(mm_log_processor, "is_cuda_available", lambda: False)


def _fill(hub, plain: bool, iterations: int = 23, time_keys: bool = True) -> None:
    """What RuntimeInfoHook, IterTimerHook and the optim wrapper put in the hub; tensors for ours."""
    rng = np.random.default_rng(0)
    wrap = (lambda value: torch.tensor(value).item()) if plain else torch.tensor  # float32, .item()'d for mmengine
    for i in range(iterations):
        hub.update_scalar("train/lr", 0.1 * 0.9**i)
        hub.update_scalar("train/base_lr", 0.1)
        hub.update_scalar("train/grad_norm", wrap(float(rng.uniform(0, 5))))
        hub.update_scalar("train/loss", wrap(float(rng.normal(1, 0.2))))
        hub.update_scalar("train/loss_cls", wrap(float(rng.normal(0.5, 0.1))))
        hub.update_scalar("train/acc", wrap(float(rng.uniform(0, 100))))
        if time_keys:
            hub.update_scalar("train/time", float(rng.uniform(0.1, 0.2)))
            hub.update_scalar("train/data_time", float(rng.uniform(0.0, 0.01)))
    hub.update_info("eta", 1234.5)
    for i in range(5):
        hub.update_scalar("val/time", 0.05 + 0.01 * i)
        hub.update_scalar("val/data_time", 0.001 * i)
        hub.update_scalar("test/time", 0.02 + 0.01 * i)
    hub.update_scalar("val/accuracy", wrap(87.5))
    hub.update_scalar("val/loss", wrap(0.25))
    hub.update_info("val/confusion", np.eye(2))
    hub.update_scalar("test/accuracy", 90.0)


def _runner(hub, training: bool = True, iteration: int = 22, epoch: int = 2):
    loop = SimpleNamespace(dataloader=range(8))
    return SimpleNamespace(
        message_hub=hub, iter=iteration, epoch=epoch, max_epochs=12, max_iters=96, model=nn.Linear(1, 1),
        _train_loop=loop if training else None, train_loop=loop,
        val_loop=SimpleNamespace(dataloader=range(5)), test_loop=SimpleNamespace(dataloader=range(5)),
    )


def _pair(mmengine, cfg, time_keys=True):
    from mmengine.logging import MessageHub as MMMessageHub
    from mmengine.runner import LogProcessor as MMLogProcessor

    name = f"proc-{uuid.uuid4().hex}"
    ours_hub, ref_hub = MessageHub.get_instance(name), MMMessageHub.get_instance(name)
    _fill(ours_hub, plain=False, time_keys=time_keys)
    _fill(ref_hub, plain=True, time_keys=time_keys)
    return (LogProcessor(**cfg), ours_hub), (MMLogProcessor(**cfg), ref_hub)


def _assert_same(ours, ref):
    tag, log_str = ours
    ref_tag, ref_log_str = ref
    assert list(tag) == list(ref_tag)
    for key, value in tag.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, ref_tag[key])
        else:
            assert value == ref_tag[key] and type(value) is type(ref_tag[key]), key
    assert log_str == ref_log_str


@pytest.mark.parametrize("custom", sorted(CUSTOM_CFGS))
@pytest.mark.parametrize("by_epoch", [True, False])
@pytest.mark.parametrize("hierarchy", [False, True])
def test_after_iter_as_mmengine(mmengine, custom, by_epoch, hierarchy):
    cfg = dict(window_size=5, by_epoch=by_epoch, custom_cfg=CUSTOM_CFGS[custom], log_with_hierarchy=hierarchy)
    if not by_epoch and custom == "windows":
        # mmengine needs a window_size (not 'epoch') in every entry when not by_epoch
        cfg["custom_cfg"] = [c for c in CUSTOM_CFGS[custom] if c.get("window_size", "epoch") != "epoch"]
    (ours, ours_hub), (ref, ref_hub) = _pair(mmengine, cfg)
    for mode, batch_idx in (("train", 6), ("train", 0), ("val", 3), ("test", 4)):
        _assert_same(
            ours.get_log_after_iter(_runner(ours_hub), batch_idx, mode),
            ref.get_log_after_iter(_runner(ref_hub), batch_idx, mode),
        )


def test_default_processor_and_no_timer_keys_as_mmengine(mmengine):
    (ours, ours_hub), (ref, ref_hub) = _pair(mmengine, {}, time_keys=False)
    tag, _ = result = ours.get_log_after_iter(_runner(ours_hub), 7, "train")
    _assert_same(result, ref.get_log_after_iter(_runner(ref_hub), 7, "train"))
    losses = ours_hub.get_scalar("train/loss").data[0]
    assert tag["loss"] == losses[-10:].mean() and tag["lr"] == ours_hub.get_scalar("train/lr").current()


@pytest.mark.parametrize("mode", ["val", "test"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("with_non_scalar", [False, True])
@pytest.mark.parametrize("by_epoch", [True, False])
def test_after_epoch_as_mmengine(mmengine, mode, training, with_non_scalar, by_epoch):
    (ours, ours_hub), (ref, ref_hub) = _pair(mmengine, dict(by_epoch=by_epoch))
    _assert_same(
        ours.get_log_after_epoch(_runner(ours_hub, training), 5, mode, with_non_scalar),
        ref.get_log_after_epoch(_runner(ref_hub, training), 5, mode, with_non_scalar),
    )


def test_validation_iterations_without_a_training_loop_as_mmengine(mmengine):
    (ours, ours_hub), (ref, ref_hub) = _pair(mmengine, {})
    _assert_same(
        ours.get_log_after_iter(_runner(ours_hub, training=False), 2, "val"),
        ref.get_log_after_iter(_runner(ref_hub, training=False), 2, "val"),
    )


BAD_CFGS = [
    (dict(custom_cfg=[dict(method_name="mean", window_size=2)]), AssertionError),  # no data_src
    (dict(custom_cfg=[dict(data_src="loss", method_name="mean", window_size=2),
                      dict(data_src="loss", method_name="max", window_size=2)]), AssertionError),  # loss replaced twice
    (dict(custom_cfg=[dict(data_src="loss", log_name="l", method_name="mean", window_size=2),
                      dict(data_src="acc", log_name="l", method_name="mean", window_size=2)]), AssertionError),
    (dict(by_epoch=False, custom_cfg=[dict(data_src="loss", method_name="mean", window_size="epoch")]), AssertionError),
    (dict(by_epoch=False, custom_cfg=[dict(data_src="loss", method_name="mean")]), KeyError),  # window_size needed
]


@pytest.mark.parametrize("cfg, error", BAD_CFGS)
def test_bad_custom_cfg_raises_as_mmengine(mmengine, cfg, error):
    from mmengine.runner import LogProcessor as MMLogProcessor

    with pytest.raises(error):
        MMLogProcessor(**cfg)
    with pytest.raises(error):
        LogProcessor(**cfg)


def test_bad_window_and_mode_raise_as_mmengine(mmengine):
    cfg = dict(custom_cfg=[dict(data_src="loss", log_name="x", method_name="mean", window_size="week")])
    (ours, ours_hub), (ref, ref_hub) = _pair(mmengine, cfg)
    for processor, hub in ((ours, ours_hub), (ref, ref_hub)):
        with pytest.raises(TypeError, match="window_size should be int, epoch or global"):
            processor.get_log_after_iter(_runner(hub), 1, "train")
        with pytest.raises(AssertionError):
            processor.get_log_after_iter(_runner(hub), 1, "predict")
        with pytest.raises(AssertionError):
            processor.get_log_after_epoch(_runner(hub), 1, "train")
