"""The Runner object as MMEngine's for the code that holds it: attributes, loops, builders, checkpoint methods."""

from __future__ import annotations

import inspect
import uuid

import numpy as np
import pytest
import torch
from test_runner_logging import _data, _run, make_metric, make_model_class

from mm2lightning.evaluator import BaseMetric
from mm2lightning.model import BaseModel
from mm2lightning.optim import OptimWrapper
from mm2lightning.runner import Runner
from mm2lightning.runner.options import OPTIONS

COUNTERS = ("epoch", "iter", "max_epochs", "max_iters", "val_interval", "val_begin", "rank", "world_size",
            "distributed", "model_name", "launcher", "deterministic")


def _runner(runner_cls, base, metric_base, work_dir, **overrides):
    """The logging tests' experiment, built but not run."""
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    kwargs = dict(
        model=make_model_class(base)(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=_data(), sampler=dict(type="DefaultSampler", shuffle=True), batch_size=4,
                              collate_fn=dict(type="default_collate")),
        train_cfg=dict(by_epoch=True, max_epochs=3, val_interval=2, val_begin=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05)),
        param_scheduler=[dict(type="LinearLR", start_factor=0.1, by_epoch=False, end=12)],
        val_dataloader=DataLoader(_data()[:12], batch_size=4), val_cfg=dict(), val_evaluator=[make_metric(metric_base)],
        default_hooks=dict(checkpoint=None), randomness=dict(seed=0), experiment_name=f"surface_{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    kwargs.update(overrides)
    if runner_cls is Runner:
        kwargs["trainer_cfg"] = dict(enable_progress_bar=False, enable_model_summary=False)
    return runner_cls(**kwargs)


def test_attributes_before_and_after_training_equal_mmengines(mmengine, tmp_path):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    ours = _runner(Runner, BaseModel, BaseMetric, tmp_path / "ours")
    ref = _runner(MMRunner, MMBaseModel, MMBaseMetric, tmp_path / "mmengine")
    for stage in ("before", "after"):
        for name in COUNTERS:
            assert getattr(ours, name) == getattr(ref, name), (stage, name)
        assert ours.default_scope.scope_name == ref.default_scope.scope_name == "mmengine"
        assert (ours.train_loop.epoch, ours.train_loop.max_iters) == (ref.train_loop.epoch, ref.train_loop.max_iters)
        assert len(ours.train_dataloader) == len(ref.train_dataloader) == 10
        assert len(ours.val_loop.dataloader) == len(ref.val_loop.dataloader) == 3
        assert type(ours.val_evaluator.metrics[0]).__name__ == type(ref.val_evaluator.metrics[0]).__name__
        if stage == "before":  # configs until training builds them, as MMEngine
            assert ours.optim_wrapper == ref.optim_wrapper and isinstance(ours.optim_wrapper, dict)
            assert ours.param_schedulers == ref.param_schedulers
            ours.train()
            ref.train()
        else:
            assert type(ours.optim_wrapper).__name__ == type(ref.optim_wrapper).__name__ == "OptimWrapper"
            assert [type(s).__name__ for s in ours.param_schedulers] == [type(s).__name__ for s in ref.param_schedulers]
    assert ours.log_dir.endswith(ours.timestamp) and ref.log_dir.endswith(ref.timestamp)
    assert ours.val_loop.run()["mse"] == pytest.approx(ref.val_loop.run()["mse"], abs=1e-6)


def test_the_builders_take_mmengines_arguments(mmengine, tmp_path):
    from mmengine.runner import Runner as MMRunner

    for name in ("build_dataloader", "build_model", "build_optim_wrapper", "build_param_scheduler",
                 "build_evaluator", "build_log_processor", "save_checkpoint", "resume", "load_checkpoint"):
        ours, theirs = inspect.signature(getattr(Runner, name)), inspect.signature(getattr(MMRunner, name))
        assert list(ours.parameters) == list(theirs.parameters), name
    loader_cfg = dict(dataset=_data(), sampler=dict(type="DefaultSampler", shuffle=True), batch_size=4,
                      collate_fn=dict(type="default_collate"))
    ours = [b[1].tolist() for b in Runner.build_dataloader(dict(loader_cfg), seed=3)]
    theirs = [b[1].tolist() for b in MMRunner.build_dataloader(dict(loader_cfg), seed=3)]
    assert ours == theirs  # static, as toolbox scripts call it: the same batches for the same seed

    runner = _runner(Runner, BaseModel, BaseMetric, tmp_path)
    wrapper = runner.build_optim_wrapper(dict(optimizer=dict(type="SGD", lr=0.1)))
    assert isinstance(wrapper, OptimWrapper) and wrapper.optimizer.param_groups[0]["lr"] == 0.1
    with pytest.raises(RuntimeError, match="`build_optim_wrapper` should be called before `build_param_scheduler`"):
        runner.build_param_scheduler(dict(type="LinearLR"))
    assert runner.build_log_processor(dict(window_size=3)).window_size == 3
    assert runner.build_model(dict(type="torch.nn.Linear", in_features=1, out_features=1)).out_features == 1


def test_save_checkpoint_resume_and_load_or_resume(tmp_path):
    first = _runner(Runner, BaseModel, BaseMetric, tmp_path / "a", train_cfg=dict(by_epoch=True, max_epochs=1))
    with pytest.raises(TypeError, match="should be an `OptimWrapper`"):  # MMEngine's, before the wrapper is built
        first.save_checkpoint(tmp_path, "early.pth")
    first.save_checkpoint(tmp_path, "early.pth", save_optimizer=False, meta=dict(note="before"))
    assert torch.load(tmp_path / "early.pth", weights_only=True)["meta"]["note"] == "before"
    first.train()
    first.save_checkpoint(tmp_path, "manual.pth", meta=dict(note="mine"), save_param_scheduler=False)
    saved = torch.load(tmp_path / "manual.pth", weights_only=True)
    assert saved["meta"]["note"] == "mine" and "param_schedulers" not in saved["mm2lightning"]
    assert "note" not in first.module.checkpoint_meta  # only that file's meta

    second = _runner(Runner, BaseModel, BaseMetric, tmp_path / "b", train_cfg=dict(by_epoch=True, max_epochs=2))
    second.resume(tmp_path / "manual.pth")
    second.train()
    assert second.epoch == 2 and second.iter == 20  # went on from the saved epoch
    with pytest.raises(NotImplementedError, match="resume_optimizer=False"):
        second.resume(tmp_path / "manual.pth", resume_optimizer=False)

    third = _runner(Runner, BaseModel, BaseMetric, tmp_path / "c", load_from=str(tmp_path / "manual.pth"))
    third.load_or_resume()  # the weights now, once, as MMEngine's
    for name, value in first.model.state_dict().items():
        assert torch.equal(third.model.state_dict()[name], value), name


class CountingHook:
    priority = "NORMAL"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def before_train_epoch(self, runner) -> None:
        self.calls.append(f"epoch {runner.epoch}")

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.calls.append("iter")


def test_register_hook_and_call_hook(tmp_path):
    runner = _runner(Runner, BaseModel, BaseMetric, tmp_path, train_cfg=dict(by_epoch=True, max_epochs=1))
    assert runner.hooks == []
    hook = CountingHook()
    runner.register_hook(hook, priority="HIGH")
    assert runner.hooks == [hook] and hook.priority == "HIGH"
    runner.call_hook("before_train_epoch")
    assert hook.calls == ["epoch 0"]
    runner.train()
    assert hook.calls[1:] == ["epoch 0"] + ["iter"] * 10
    second = CountingHook()
    runner.register_custom_hooks([second])  # as MMEngine's: each through register_hook, by priority
    assert runner.hooks == [hook, second]


@pytest.mark.parametrize("name", sorted(o.name for o in OPTIONS if o.place == "Runner attribute" and o.status == "refused"))
def test_an_mmengine_attribute_not_offered_names_itself_and_why(tmp_path, name):
    runner = _runner(Runner, BaseModel, BaseMetric, tmp_path)
    with pytest.raises(AttributeError, match=f"Runner.{name} \\(MMEngine's\\) is not offered by mm2lightning: "):
        getattr(runner, name)
    assert not hasattr(runner, name)


def test_every_mmengine_runner_attribute_is_listed(mmengine, tmp_path):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    ref = _runner(MMRunner, MMBaseModel, MMBaseMetric, tmp_path)
    public = {n for n in dir(MMRunner) if not n.startswith("_")} | {n for n in vars(ref) if not n.startswith("_")}
    listed = {o.name for o in OPTIONS if o.place == "Runner attribute"}
    assert public == listed, (sorted(public - listed), sorted(listed - public))
    ours = _runner(Runner, BaseModel, BaseMetric, tmp_path / "ours")
    offered = {o.name for o in OPTIONS if o.place == "Runner attribute" and o.status != "refused"}
    missing = [name for name in offered if not hasattr(ours, name) and hasattr(ref, name)]
    assert not missing, missing
    with pytest.raises(AttributeError, match="Runner.test_dataloader: this Runner has none"):
        ours.test_dataloader  # noqa: B018 - no test loop, as MMEngine's (an AttributeError there too)


def test_logger_hub_randomness_and_lr_scaling_methods_as_mmengines(mmengine, tmp_path):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    ours = _runner(Runner, BaseModel, BaseMetric, tmp_path / "ours")
    ref = _runner(MMRunner, MMBaseModel, MMBaseMetric, tmp_path / "mmengine")
    assert ours.build_logger() is ours.logger and ref.build_logger() is ref.logger  # by the experiment's name
    assert ours.build_logger(name="other").instance_name == ref.build_logger(name="other").instance_name == "other"
    assert ours.build_message_hub() is ours.message_hub and ref.build_message_hub() is ref.message_hub
    with pytest.raises(TypeError, match="message_hub should be dict or None"):
        ours.build_message_hub("hub")

    draws = []
    for runner in (ours, ref):
        runner.set_randomness(123)
        draws.append((runner.seed, torch.rand(3)))
    assert draws[0][0] == draws[1][0] == 123 and torch.equal(draws[0][1], draws[1][1])

    rates = []
    for runner in (ours, ref):
        wrapper = runner.build_optim_wrapper(dict(optimizer=dict(type="SGD", lr=0.08)))
        runner.scale_lr(wrapper, dict(enable=True, base_batch_size=16))  # batch 4 on 1 process: x 0.25
        runner.scale_lr(wrapper, dict(enable=False, base_batch_size=16))  # no effect
        rates.append(wrapper.optimizer.param_groups[0]["lr"])
    assert rates[0] == rates[1] == pytest.approx(0.02)
    with pytest.raises(AssertionError, match="Lack of `base_batch_size`"):
        ours.scale_lr(wrapper, dict(enable=True))


def test_get_hooks_info_and_its_log_line_equal_mmengines(mmengine, tmp_path):
    """Built-in hooks (Lightning callbacks here) listed where MMEngine's run, around the MMEngine hooks, with a
    default hook replaced by None and a hook registered later; the constructor logs it, as MMEngine's."""
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.hooks import Hook as MMHook
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    class TrainCounter(MMHook):  # mmengine's Hook subclass: the same class for both Runners
        priority = 45

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            pass

    infos, lines = [], []
    for runner_cls, base, metric, name in ((Runner, BaseModel, BaseMetric, "ours"),
                                           (MMRunner, MMBaseModel, MMBaseMetric, "mmengine")):  # fmt: skip
        runner = _runner(runner_cls, base, metric, tmp_path / name, custom_hooks=[dict(type="EMAHook"), TrainCounter()],
                         default_hooks=dict(checkpoint=None, sampler_seed=None, logger=dict(type="LoggerHook", interval=5)))
        runner.register_hook(TrainCounter(), priority="LOW")
        infos.append(runner.get_hooks_info())
        log = next((tmp_path / name).glob("*/*.log")).read_text()
        lines.append(log.split("Hooks will be executed in the following order:\n")[1].split(" -------------------- \n")[:3])
    assert infos[0] == infos[1] and "(45          ) TrainCounter" in infos[0]
    assert lines[0] == lines[1]


def test_loop_builders_as_mmengines(mmengine, tmp_path):
    """build_train_loop/build_val_loop/build_test_loop: objects as they are, MMEngine's loop configs give the loops
    this Runner runs, a custom loop class is built with the Runner, its data and evaluator and runs its own run()."""
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner
    from mmengine.runner import ValLoop

    from mm2lightning.runner.options import UnsupportedOptionError

    class DoubleCheckLoop(ValLoop):  # a toolbox-style loop: its own run(), one more metric
        def run(self):
            metrics = dict(super().run())
            return dict(metrics, batches=len(self.dataloader))

    runners = dict(ours=_runner(Runner, BaseModel, BaseMetric, tmp_path / "ours"),
                   mmengine=_runner(MMRunner, MMBaseModel, MMBaseMetric, tmp_path / "mmengine"))  # fmt: skip
    results = {}
    for name, runner in runners.items():
        train_cfg = dict(by_epoch=True, max_epochs=3, val_interval=2, val_begin=1)
        train_loop = runner.build_train_loop(train_cfg)
        assert runner.build_train_loop(train_loop) is train_loop
        custom = runner.build_val_loop(dict(type=DoubleCheckLoop))
        assert isinstance(custom, DoubleCheckLoop) and custom.runner is runner and len(custom.dataloader) == 3
        val = runner.build_val_loop(dict(type="ValLoop"))
        results[name] = (train_loop.max_epochs, train_loop.max_iters, dict(val.run()), dict(custom.run()))
        for builder in (runner.build_train_loop, runner.build_val_loop, runner.build_test_loop):
            with pytest.raises(TypeError, match="_loop should be a Loop object or dict, but got 3"):
                builder(3)
        with pytest.raises(RuntimeError, match="Only one of `type` or `by_epoch` can exist in `loop_cfg`."):
            runner.build_train_loop(dict(type="EpochBasedTrainLoop", by_epoch=True, max_epochs=1))
    assert results["ours"][:2] == results["mmengine"][:2] == (3, 30)
    for ours, theirs in zip(results["ours"][2:], results["mmengine"][2:]):
        assert list(ours) == list(theirs) and "mse" in ours
        for key, value in theirs.items():
            np.testing.assert_allclose(ours[key], value, rtol=0, atol=1e-6, err_msg=key)
    assert results["ours"][3]["batches"] == 3
    ours = runners["ours"]
    with pytest.raises(UnsupportedOptionError, match="build_train_loop.*Lightning's fit loop runs train_cfg"):
        ours.build_train_loop(dict(by_epoch=True, max_epochs=5))  # not the Runner's train_cfg
    with pytest.raises(UnsupportedOptionError, match=r"build_val_loop\(fp16=True\) other than val_cfg's"):
        ours.build_val_loop(dict(fp16=True))


def test_build_visualizer_writes_as_mmengines(mmengine, tmp_path):
    """A visualizer config (its LocalVisBackend a Lightning logger here) and the default one write MMEngine's
    scalars.json lines."""
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    lines = {}
    for name, (runner_cls, base, metric) in dict(ours=(Runner, BaseModel, BaseMetric),
                                                 mmengine=(MMRunner, MMBaseModel, MMBaseMetric)).items():  # fmt: skip
        runner = _runner(runner_cls, base, metric, tmp_path / name)
        side = runner.build_visualizer(dict(type="Visualizer", name=f"side_{name}_{uuid.uuid4().hex[:6]}",
                                            vis_backends=[dict(type="LocalVisBackend")], save_dir=str(tmp_path / f"side_{name}")))  # fmt: skip
        side.add_scalars(dict(loss=0.5, acc=0.25), step=3)
        runner.build_visualizer().add_scalars(dict(lr=0.1), step=1)  # the default: under the Runner's log_dir
        lines[name] = ((tmp_path / f"side_{name}" / "vis_data" / "scalars.json").read_text(),
                       (tmp_path / name / runner.timestamp / "vis_data" / "scalars.json").read_text())
    assert lines["ours"] == lines["mmengine"] and '"loss": 0.5' in lines["ours"][0]


def test_a_loop_object_as_val_cfg_runs_where_mmengines_runner_runs_it(mmengine, tmp_path):
    """val_cfg given as a loop object (MMEngine's build_val_loop takes it as it is): its run() at each validation."""
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner
    from torch.utils.data import DataLoader

    from mmengine.runner.base_loop import BaseLoop

    class CountingLoop(BaseLoop):  # a loop object, bound to its runner once both exist
        def __init__(self, dataloader) -> None:
            super().__init__(None, dataloader)
            self.epochs = []

        def run(self) -> dict:
            self.epochs.append(self.runner.epoch)
            return dict(batches=len(self.dataloader))

    seen = {}
    for name, runner_cls, base, metric in (("ours", Runner, BaseModel, BaseMetric),
                                           ("mmengine", MMRunner, MMBaseModel, MMBaseMetric)):  # fmt: skip
        loader = DataLoader(_data()[:12], batch_size=4)
        loop = CountingLoop(loader)
        runner = _runner(runner_cls, base, metric, tmp_path / name, val_cfg=loop, val_dataloader=loader)
        loop._runner = runner
        runner.train()
        assert runner.val_loop is loop
        seen[name] = loop.epochs
    assert seen["ours"] == seen["mmengine"] == [2, 3]


def test_auto_scale_lr_next_to_a_constructor_scales_as_mmengines(mmengine, tmp_path):
    """auto_scale_lr with an optim_wrapper built by a constructor (paramwise rates): every group's rate as MMEngine's."""
    import copy

    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    optim_wrapper = dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9), constructor="DefaultOptimWrapperConstructor",
                         paramwise_cfg=dict(bias_lr_mult=2.0))
    rates = {}
    for name, (runner_cls, base, metric) in dict(ours=(Runner, BaseModel, BaseMetric),
                                                 mmengine=(MMRunner, MMBaseModel, MMBaseMetric)).items():  # fmt: skip
        runner = _runner(runner_cls, base, metric, tmp_path / name, optim_wrapper=copy.deepcopy(optim_wrapper),
                         auto_scale_lr=dict(enable=True, base_batch_size=16), param_scheduler=None,
                         train_cfg=dict(by_epoch=True, max_epochs=1))
        runner.train()
        rates[name] = [group["lr"] for group in runner.optim_wrapper.optimizer.param_groups]
    assert rates["ours"] == pytest.approx(rates["mmengine"], rel=1e-12)
    assert sorted(set(rates["ours"])) == pytest.approx([0.05 * 4 / 16, 2 * 0.05 * 4 / 16])  # batch 4, 1 process
