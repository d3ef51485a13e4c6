"""Behaviour of the parameter schedulers on their own: validation, warnings, step counting, state."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import warnings
import weakref
from typing import Any

import pytest
import torch

import mm2lightning.optim.scheduler as sched
from mm2lightning.optim.optim_wrapper import OptimWrapper
from mm2lightning.optim.optim_wrapper_dict import OptimWrapperDict
from mm2lightning.registry import PARAM_SCHEDULERS


def sgd(lr: float = 0.1, **kwargs: Any) -> torch.optim.SGD:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr, momentum=0.9, **kwargs)


def two_group_wrapper() -> OptimWrapper:
    groups = [
        {"params": [torch.nn.Parameter(torch.zeros(2))]},
        {"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 0.05},
    ]
    return OptimWrapper(torch.optim.SGD(groups, lr=0.1, momentum=0.9))


def lrs(optimizer: Any) -> list[float]:
    return [group["lr"] for group in optimizer.param_groups]


# ---------------------------------------------------------------- construction
@pytest.mark.parametrize("cls", [sched.StepLR, sched.StepMomentum, sched.OneCycleLR, sched.ReduceOnPlateauLR])
@pytest.mark.parametrize("bad", [None, [{"lr": 0.1}], torch.nn.Linear(1, 1)])
def test_optimizer_of_the_wrong_type_is_a_type_error(cls: type, bad: Any) -> None:
    kwargs = {"step_size": 1} if cls in (sched.StepLR, sched.StepMomentum) else {}
    expected = rf"{cls.__name__}: optimizer must be a torch.optim.Optimizer or a BaseOptimWrapper"
    expected += rf".*got {type(bad).__name__}"
    with pytest.raises(TypeError, match=expected):
        cls(bad, **kwargs)


def test_an_optim_wrapper_dict_needs_one_scheduler_per_wrapper() -> None:
    wrappers = OptimWrapperDict(gen=OptimWrapper(sgd()), disc=OptimWrapper(sgd()))
    with pytest.raises(TypeError, match="one scheduler per wrapper of an OptimWrapperDict"):
        sched.StepLR(wrappers, step_size=1)


@pytest.mark.parametrize(("begin", "end"), [(3, 3), (5, 2)])
def test_end_must_be_after_begin(begin: int, end: int) -> None:
    with pytest.raises(ValueError, match=f"end must be larger than begin, but got begin={begin}, end={end}"):
        sched.LinearLR(sgd(), begin=begin, end=end)


@pytest.mark.parametrize("last_step", [-2, 1.5, True])
def test_last_step_must_be_an_int_from_minus_one(last_step: Any) -> None:
    with pytest.raises(ValueError, match="last_step must be an int >= -1"):
        sched.StepLR(sgd(), step_size=1, last_step=last_step)


def test_resuming_by_last_step_needs_initial_values() -> None:
    with pytest.raises(KeyError, match=r"param 'initial_lr' is not specified in param_groups\[0\] when resuming"):
        sched.StepLR(sgd(), step_size=1, last_step=3)
    optimizer = sgd()
    optimizer.param_groups[0]["initial_lr"] = 1.0
    scheduler = sched.MultiStepLR(optimizer, milestones=[4], last_step=3)  # construction makes step 4
    assert scheduler.last_step == 4 and scheduler.base_values == [1.0]
    assert lrs(optimizer) == pytest.approx([0.01])


def test_initial_value_is_set_once_and_shared_by_later_schedulers() -> None:
    optimizer = sgd()
    sched.ConstantLR(optimizer, factor=0.5, end=3)
    later = sched.StepLR(optimizer, step_size=1)
    assert optimizer.param_groups[0]["initial_lr"] == 0.1
    assert later.base_values == [0.1] and lrs(optimizer) == [0.05]


def test_construction_steps_once_and_values_freeze_outside_the_range() -> None:
    optimizer = sgd()
    scheduler = sched.LinearLR(optimizer, start_factor=0.5, begin=2, end=5)
    assert (scheduler._global_step, scheduler.last_step, lrs(optimizer)) == (0, -1, [0.1])
    seen = []
    for _ in range(7):
        optimizer.step()
        scheduler.step()
        seen.append(lrs(optimizer)[0])
    assert seen == pytest.approx([0.1, 0.05, 0.075, 0.1, 0.1, 0.1, 0.1])  # untouched before begin
    assert scheduler.last_step == 2 and scheduler.get_last_value() == lrs(optimizer)


def test_base_param_settings_of_a_two_group_wrapper_is_scheduled() -> None:
    wrapper = two_group_wrapper()
    scheduler = sched.MultiStepLR(wrapper, milestones=[1], gamma=0.5)
    wrapper.step()
    scheduler.step()
    assert wrapper.base_param_settings["initial_lr"] == 0.1
    assert lrs(wrapper) == pytest.approx([0.05, 0.025, 0.05])  # the two groups, then base_param_settings
    assert wrapper.get_lr() == {"base_lr": [pytest.approx(0.05)], "lr": [pytest.approx(0.05), pytest.approx(0.025)]}


# ------------------------------------------------------------ step counting
def test_scheduler_step_before_optimizer_step_warns() -> None:
    optimizer = sgd()
    scheduler = sched.StepLR(optimizer, step_size=1)
    with pytest.warns(UserWarning, match=r"before `optimizer.step\(\)`.*how-to-adjust-learning-rate"):
        scheduler.step()


def test_optimizer_step_replaced_after_construction_warns() -> None:
    optimizer = sgd()
    scheduler = sched.StepLR(optimizer, step_size=1)
    optimizer.step = lambda: None
    with pytest.warns(UserWarning, match="overridden after parameter value scheduler initialization"):
        scheduler.step()


def test_right_order_does_not_warn_and_the_counter_wraps_once() -> None:
    optimizer = sgd()
    first = sched.StepLR(optimizer, step_size=1)
    wrapped = optimizer.step
    second = sched.ExponentialLR(optimizer, gamma=0.5)
    assert optimizer.step is wrapped and optimizer._global_step == -1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimizer.step()
        first.step()
        second.step()
    assert optimizer._global_step == 0


def test_counter_works_on_a_step_that_is_already_a_plain_callable() -> None:
    optimizer, calls = sgd(), []
    optimizer.step = lambda *args, **kwargs: calls.append((args, kwargs))
    sched.StepLR(optimizer, step_size=1)
    optimizer.step(closure=None)
    assert calls == [((), {"closure": None})] and optimizer._global_step == 0


def test_counter_on_an_optim_wrapper_keeps_no_reference_cycle() -> None:
    wrapper = OptimWrapper(sgd())
    scheduler = sched.StepLR(wrapper, step_size=1)
    wrapper.step()
    assert wrapper._global_step == 0
    ref = weakref.ref(wrapper)
    gc.disable()
    try:
        del wrapper, scheduler
        assert ref() is None
    finally:
        gc.enable()


# ---------------------------------------------------------------- momentum
def test_momentum_of_adam_is_betas_0_written_back() -> None:
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=0.1, betas=(0.9, 0.99))
    scheduler = sched.StepMomentum(optimizer, step_size=1, gamma=0.5)
    assert scheduler.use_betas and scheduler.param_name == "momentum"
    optimizer.step()
    scheduler.step()
    group = optimizer.param_groups[0]
    assert group["betas"] == (0.45, 0.99) and group["momentum"] == 0.45 and group["initial_momentum"] == 0.9


def test_reduce_on_plateau_momentum_writes_betas_on_metric_steps() -> None:
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=0.1, betas=(0.9, 0.99))
    scheduler = sched.ReduceOnPlateauMomentum(optimizer, patience=0, factor=0.5)
    for loss in (1.0, 2.0):
        scheduler.step()
        scheduler.step({"loss": loss})
    assert optimizer.param_groups[0]["betas"] == (0.45, 0.99)


def test_momentum_needs_momentum_or_betas() -> None:
    optimizer = torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    with pytest.raises(ValueError, match="neither 'momentum' nor 'betas'"):
        sched.CosineAnnealingMomentum(optimizer, T_max=3)


# ------------------------------------------------------------ argument checks
@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda o: sched.ConstantLR(o, factor=1.5), "factor must lie in"),
        (lambda o: sched.LinearLR(o, start_factor=-0.1), "start_factor must lie in"),
        (lambda o: sched.LinearLR(o, end_factor=2.0), "end_factor must lie in"),
        (lambda o: sched.CosineAnnealingLR(o, T_max=3, eta_min=0.0, eta_min_ratio=0.1), "exactly one of eta_min"),
        (lambda o: sched.CosineRestartLR(o, periods=[2]), "exactly one of eta_min"),
        (lambda o: sched.CosineRestartLR(o, periods=[2, 3], eta_min=0.0), "the same length, but got 2 and 1"),
        (lambda o: sched.OneCycleParamScheduler(o, "momentum", eta_max=1.0), "only schedules the learning rate"),
        (lambda o: sched.OneCycleLR(o, eta_max=1.0, total_steps=0), "total_steps must be a positive integer"),
        (lambda o: sched.OneCycleLR(o, eta_max=1.0, total_steps=5, pct_start=1), "pct_start must be a float"),
        (lambda o: sched.OneCycleLR(o, eta_max=1.0, total_steps=5, anneal_strategy="exp"), "'cos' or 'linear'"),
        (lambda o: sched.OneCycleLR(o, eta_max=[1.0, 2.0], total_steps=5), "expected 1 values for eta_max"),
        (lambda o: sched.ReduceOnPlateauLR(o, by_epoch=False), "only supports by_epoch=True"),
        (lambda o: sched.ReduceOnPlateauLR(o, factor=1.0), "factor must be < 1.0"),
        (lambda o: sched.ReduceOnPlateauLR(o, rule="more"), "rule must be 'less' or 'greater'"),
        (lambda o: sched.ReduceOnPlateauLR(o, threshold_rule="pct"), "threshold_rule must be 'rel' or 'abs'"),
        (lambda o: sched.ReduceOnPlateauLR(o, threshold=-1), "threshold must be >= 0"),
        (lambda o: sched.ReduceOnPlateauLR(o, min_value=[0.0, 0.1]), "expected 1 values for min_value"),
    ],
)
def test_invalid_arguments_are_value_errors(build: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build(sgd())


def test_one_cycle_cannot_step_past_total_steps() -> None:
    optimizer = sgd()
    scheduler = sched.OneCycleLR(optimizer, eta_max=1.0, total_steps=2)
    assert optimizer.param_groups[0]["initial_lr"] == 0.04 and optimizer.param_groups[0]["max_lr"] == 1.0
    for _ in range(2):
        optimizer.step()
        scheduler.step()
    optimizer.step()
    with pytest.raises(ValueError, match="Tried to step 4 times. The specified number of total steps is 2"):
        scheduler.step()


# ---------------------------------------------------------- reduce on plateau
def test_reduce_on_plateau_counts_epochs_and_checks_metrics() -> None:
    optimizer = sgd()
    scheduler = sched.ReduceOnPlateauLR(optimizer, patience=0, factor=0.5, begin=1)
    assert scheduler.need_val_args and not sched.StepLR.need_val_args
    assert (scheduler._global_step, lrs(optimizer), scheduler.get_last_value()) == (0, [0.1], [0.1])
    scheduler.step({"loss": 1.0})  # epoch 0 is before begin: ignored, no KeyError either
    scheduler.step({"acc": 1.0})
    scheduler.step()  # counts an epoch
    with pytest.raises(TypeError, match="metrics must be a dict, but got list"):
        scheduler.step([1.0])
    with pytest.raises(KeyError, match=r"monitor 'loss' is not in the metrics \['acc'\]"):
        scheduler.step({"acc": 1.0})
    scheduler.step({"loss": 1.0})
    scheduler.step({"loss": 1.0})
    assert lrs(optimizer) == [0.05] and scheduler.best == 1.0


def test_reduce_on_plateau_per_group_min_value_also_bounds_base_param_settings() -> None:
    wrapper = two_group_wrapper()
    scheduler = sched.ReduceOnPlateauLR(wrapper, patience=0, factor=0.1, min_value=[0.02, 0.03])
    assert scheduler.min_values == [0.02, 0.03, 0.03]
    for loss in (1.0, 1.0, 1.0):
        scheduler.step({"loss": loss})
    assert lrs(wrapper) == [0.02, 0.03, 0.03]


# ------------------------------------------------ build_iter_from_epoch, state
def test_build_iter_from_epoch_scales_epoch_arguments() -> None:
    scheduler = sched.MultiStepLR.build_iter_from_epoch(sgd(), milestones=[1, 3], begin=0.5, end=4, epoch_length=3)
    assert (scheduler.by_epoch, scheduler.begin, scheduler.end) == (False, 1, 12)
    assert scheduler.milestones == {3: 1, 9: 1}
    endless = sched.CosineRestartLR.build_iter_from_epoch(
        sgd(), periods=[2, 2], restart_weights=[1, 1], eta_min=0.0, epoch_length=5
    )
    assert (endless.end, endless.periods, endless.cumulative_periods) == (sched.INF, [10, 10], [10, 20])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"by_epoch": False, "epoch_length": 2}, "only by_epoch=True"), ({"epoch_length": 0}, "positive integer")],
)
def test_build_iter_from_epoch_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sched.StepLR.build_iter_from_epoch(sgd(), step_size=1, **kwargs)


def test_reduce_on_plateau_cannot_be_converted_to_iter_based() -> None:
    cfg = {"type": "ReduceOnPlateauLR", "convert_to_iter_based": True}
    with pytest.raises(ValueError, match="cannot be iteration-based or use convert_to_iter_based"):
        PARAM_SCHEDULERS.build(cfg, default_args={"optimizer": sgd(), "epoch_length": 5})


def test_state_dict_is_every_attribute_but_the_optimizer() -> None:
    optimizer = sgd()
    scheduler = sched.StepLR(optimizer, step_size=2, gamma=0.5)
    state = scheduler.state_dict()
    assert "optimizer" not in state
    common = {"_global_step", "_last_value", "base_values", "begin", "by_epoch", "end", "last_step"}
    assert set(state) == common | {"param_name", "verbose", "step_size", "gamma"}
    other = sched.StepLR(sgd(), step_size=9)
    other.load_state_dict(state)
    assert other.step_size == 2 and other.optimizer is not optimizer


def test_verbose_logs_each_new_value(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mm2lightning.optim.scheduler"):
        sched.ConstantLR(sgd(), factor=0.5, verbose=True)
    assert "Adjusting parameter value of group 0 to 5.0000e-02." in caplog.text


def test_every_class_is_registered_and_lightning_is_not_imported() -> None:
    for name in sched.__all__:
        obj = getattr(sched, name)
        if isinstance(obj, type) and issubclass(obj, sched._ParamScheduler) and not name.startswith("_"):
            assert PARAM_SCHEDULERS.get(name) is obj
    code = "import sys, mm2lightning.optim.scheduler; assert not {'lightning', 'mmengine'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
