"""EMAHook under mm2lightning's Runner equals MMEngine's Runner: weights, validation, checkpoints, resume."""

from __future__ import annotations

import pytest
import torch

from mm2lightning.runner import load_checkpoint_file, to_mmengine

from test_hook_parity import data, make_metric_cls, make_model_cls  # noqa: E402 - tests/hooks on sys.path


def build(package: str, work_dir, hook, max_epochs: int = 3, **extra):
    """The hook-parity model's Runner with ``hook`` (an EMA hook in most tests); returns it and the list
    validation metrics go to."""
    if package == "mmengine":
        from mmengine.evaluator import BaseMetric
        from mmengine.hooks import Hook
        from mmengine.model import BaseModel
        from mmengine.runner import Runner

        extra.setdefault("log_level", "WARNING")
    else:
        from mm2lightning.evaluator import BaseMetric
        from mm2lightning.hooks import Hook
        from mm2lightning.model import BaseModel
        from mm2lightning.runner import Runner

        extra.setdefault("trainer_cfg", dict(enable_progress_bar=False, enable_model_summary=False))
    records = []

    class RecordMetrics(Hook):
        priority = "LOWEST"

        def after_val_epoch(self, runner, metrics=None):
            records.append(dict(metrics))

    torch.manual_seed(0)
    args = dict(
        model=make_model_cls(BaseModel)(),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=data(20, 1), batch_size=4, sampler=dict(type="DefaultSampler", shuffle=True),
                              collate_fn=dict(type="default_collate")),
        val_dataloader=dict(dataset=data(10, 2), batch_size=4, sampler=dict(type="DefaultSampler", shuffle=False),
                            collate_fn=dict(type="default_collate")),
        val_evaluator=[make_metric_cls(BaseMetric)()],
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
        custom_hooks=[hook, RecordMetrics()],
        randomness=dict(seed=3),
    )
    return Runner(**dict(args, **extra)), records


def run(package: str, work_dir, ema, max_epochs: int = 3, **extra):
    """Train with :func:`build`'s Runner; return the runner, the EMA hook and the validation metrics."""
    runner, records = build(package, work_dir, ema, max_epochs, **extra)
    runner.train()
    hook = next(h for h in runner._hooks if type(h).__name__ == "EMAHook") if package == "mmengine" else next(
        h for h in runner._hook_driver.hooks if type(h).__name__ == "EMAHook")
    return runner, hook, records


def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_close(ours: dict, ref: dict) -> None:
    assert sorted(ours) == sorted(ref)
    for key, value in ref.items():
        assert (ours[key].double() - value.double()).abs().max().item() <= 1e-6, key


EMA_CFG = dict(type="EMAHook", momentum=0.2, begin_iter=2)


@pytest.mark.parametrize("hook_given_as", ["our config", "mmengine instance", "mmengine class in a config"])
def test_ema_hook_equals_mmengine_runner(mmengine, tmp_path, hook_given_as):
    ref_runner, ref_hook, ref_metrics = run("mmengine", tmp_path / "mmengine", dict(EMA_CFG))
    ema = {
        "our config": dict(EMA_CFG),
        "mmengine instance": mmengine.hooks.EMAHook(momentum=0.2, begin_iter=2),
        "mmengine class in a config": dict(EMA_CFG, type=mmengine.hooks.EMAHook),
    }[hook_given_as]
    runner, hook, metrics = run("mm2lightning", tmp_path / "ours", ema)

    assert_close(state(runner.model), state(ref_runner.model))  # raw weights
    assert_close(state(hook.ema_model), state(ref_hook.ema_model))  # averaged weights and steps
    assert len(metrics) == len(ref_metrics) == 3  # validation ran on the averaged weights
    for got, want in zip(metrics, ref_metrics):
        assert got["acc"] == pytest.approx(want["acc"], abs=1e-6)

    saved = load_checkpoint_file(tmp_path / "ours" / "epoch_3.ckpt")
    ref_saved = torch.load(tmp_path / "mmengine" / "epoch_3.pth", weights_only=False)  # the test's own file
    ours_weights = {k.removeprefix("model."): v for k, v in saved["state_dict"].items()}
    assert_close(ours_weights, ref_saved["state_dict"])  # the averaged weights, for inference tools
    assert_close(saved["ema_state_dict"], ref_saved["ema_state_dict"])  # the raw weights, for resuming
    assert_close(ours_weights, {k.removeprefix("module."): v for k, v in state(hook.ema_model).items() if k != "steps"})
    converted = to_mmengine(saved)  # mm2lightning convert: MMEngine's layout keeps what hooks added
    assert_close(converted["ema_state_dict"], ref_saved["ema_state_dict"])
    assert_close(converted["state_dict"], ref_saved["state_dict"])


def test_ema_resume_from_a_mid_run_checkpoint_equals_the_uninterrupted_run(tmp_path):
    full_runner, full_hook, full_metrics = run("mm2lightning", tmp_path / "full", dict(EMA_CFG))
    runner, hook, metrics = run("mm2lightning", tmp_path / "full", dict(EMA_CFG), resume=True,
                                load_from=str(tmp_path / "full" / "epoch_1.ckpt"))
    assert runner.trainer.global_step == 15 and len(metrics) == 2  # it resumed after epoch 1
    for key, value in state(full_runner.model).items():
        assert torch.equal(state(runner.model)[key], value), key
    for key, value in state(full_hook.ema_model).items():
        assert torch.equal(state(hook.ema_model)[key], value), key
    assert metrics == full_metrics[1:]


def test_ema_checkpoints_of_mmengine_resume_and_evaluate_as_in_mmengine(mmengine, tmp_path, monkeypatch):
    """MMEngine's own EMA checkpoints: resuming from epoch_1.pth, and Runner.val() with load_from=epoch_3.pth."""
    run("mmengine", tmp_path / "mmengine", dict(EMA_CFG))
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # mmengine 0.10.7 on torch >= 2.6 needs it to load
    ref_runner, ref_hook, _ = run("mmengine", tmp_path / "mm_resumed", dict(EMA_CFG), resume=True,
                                  load_from=str(tmp_path / "mmengine" / "epoch_1.pth"))
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    runner, hook, _ = run("mm2lightning", tmp_path / "resumed", dict(EMA_CFG), resume=True,
                          load_from=str(tmp_path / "mmengine" / "epoch_1.pth"))
    assert runner.trainer.global_step == 15
    assert_close(state(runner.model), state(ref_runner.model))
    assert_close(state(hook.ema_model), state(ref_hook.ema_model))

    # Runner.val() with load_from: EMAHook copies the checkpoint's state_dict (the averaged weights) into its
    # averaged model and validation runs on them, as in MMEngine.
    checkpoint = str(tmp_path / "mmengine" / "epoch_3.pth")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    ref_metrics = build("mmengine", tmp_path / "mm_val", dict(EMA_CFG), load_from=checkpoint)[0].val()
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    metrics = build("mm2lightning", tmp_path / "val", dict(EMA_CFG), load_from=checkpoint)[0].val()
    assert metrics["acc"] == pytest.approx(ref_metrics["acc"], abs=1e-6)


def test_mmengine_early_stopping_hook_stops_where_mmengine_stops(mmengine, tmp_path):
    """mmengine's own EarlyStoppingHook sets runner.train_loop.stop_training; training ends after the same epoch."""
    def early_stopping():  # 'less': the metric (-MSE) goes -0.44, -0.83, -0.38: no better at epoch 3, which stops
        return mmengine.hooks.EarlyStoppingHook(monitor="acc", rule="less", patience=1)

    ref_runner, ref_records = build("mmengine", tmp_path / "mmengine", early_stopping(), max_epochs=5)
    ref_runner.train()
    runner, records = build("mm2lightning", tmp_path / "ours", early_stopping(), max_epochs=5)
    runner.train()
    assert len(records) == len(ref_records) == 3 and runner.trainer.global_step == ref_runner.iter == 15
    assert [r["acc"] for r in records] == pytest.approx([r["acc"] for r in ref_records], abs=1e-6)


ITERATION_BASED = dict(
    train_dataloader=dict(dataset=data(20, 1), batch_size=4, sampler=dict(type="InfiniteSampler", shuffle=True),
                          collate_fn=dict(type="default_collate")),
    train_cfg=dict(by_epoch=False, max_iters=12, val_interval=6),
    default_hooks=dict(checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=4)),
)


def test_iteration_based_ema_equals_mmengine_and_resumes_mid_stream(mmengine, tmp_path, monkeypatch):
    """IterBasedTrainLoop with InfiniteSampler (5 batches a pass): the run equals MMEngine's, and a resume after
    the first pass (iter_8) or inside it (iter_4) equals the uninterrupted run, as MMEngine's resume does."""
    ref_runner, ref_hook, ref_metrics = run("mmengine", tmp_path / "mmengine", dict(EMA_CFG), **ITERATION_BASED)
    runner, hook, metrics = run("mm2lightning", tmp_path / "full", dict(EMA_CFG), **ITERATION_BASED)
    assert_close(state(runner.model), state(ref_runner.model))
    assert_close(state(hook.ema_model), state(ref_hook.ema_model))
    assert [m["acc"] for m in metrics] == pytest.approx([m["acc"] for m in ref_metrics], abs=1e-6)
    for name in ("iter_4.ckpt", "iter_8.ckpt"):
        resumed, resumed_hook, _ = run("mm2lightning", tmp_path / "resumed", dict(EMA_CFG), resume=True,
                                       load_from=str(tmp_path / "full" / name), **ITERATION_BASED)
        for key, value in state(runner.model).items():
            assert torch.equal(state(resumed.model)[key], value), (name, key)
        for key, value in state(hook.ema_model).items():
            assert torch.equal(state(resumed_hook.ema_model)[key], value), (name, key)
