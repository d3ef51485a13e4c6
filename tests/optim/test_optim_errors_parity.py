"""Each misuse MMEngine's ``optim`` refuses: ours raises an instance of MMEngine's type with its phrase.

Every case runs the same inputs on mmengine and on mm2lightning (see docs/errors.md).
"""

from __future__ import annotations

import pytest
from error_parity import assert_same_error
import torch
from torch import nn

pytest.importorskip("mmengine")
import mmengine.optim  # noqa: E402
import mmengine.optim.scheduler  # noqa: E402

import mm2lightning.optim as our_optim  # noqa: E402


class _Merged:
    """mmengine.optim, falling back to mmengine.optim.scheduler (which alone exports e.g. CosineRestartLR)."""

    def __getattr__(self, name):
        try:
            return getattr(mmengine.optim, name)
        except AttributeError:
            return getattr(mmengine.optim.scheduler, name)


mm_optim = _Merged()


def _sgd(momentum: float = 0.9) -> torch.optim.SGD:
    return torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1, momentum=momentum)


def _adagrad() -> torch.optim.Adagrad:
    return torch.optim.Adagrad(nn.Linear(2, 2).parameters(), lr=0.1)


def _dict_wrapper(o):
    return o.OptimWrapperDict(a=o.OptimWrapper(_sgd()))


def _step_past_max_counts(o):
    wrapper = o.OptimWrapper(_sgd(), accumulative_counts=2)
    wrapper.initialize_count_status(nn.Linear(2, 2), 0, 4)  # divisible: no remainder window
    wrapper._inner_count = 4  # past max_counts
    wrapper.scale_loss(torch.tensor(1.0))


def _step_one_cycle_past_total(o):
    sched = o.OneCycleLR(_sgd(), eta_max=1.0, total_steps=2)
    for _ in range(4):
        sched.optimizer.step()
        sched.step()


def _reduce_on_plateau_step(o, metrics):
    sched = o.ReduceOnPlateauLR(_sgd(), monitor="loss")
    sched.step(metrics)


# (id, misuse on the module namespace `o`, MMEngine's exception type, MMEngine's phrase)
CASES = [
    # ---- optimizer_wrapper.py
    ("accumulative_counts_0", lambda o: o.OptimWrapper(_sgd(), accumulative_counts=0), AssertionError,
     "_accumulative_counts at least greater than or equal to 1"),
    ("clip_grad_not_dict", lambda o: o.OptimWrapper(_sgd(), clip_grad=[1.0]), AssertionError,
     "If `clip_grad` is not None, it should be a `dict`"),
    ("clip_grad_empty", lambda o: o.OptimWrapper(_sgd(), clip_grad={}), AssertionError,
     "If `clip_grad` is not None, it should be a `dict`"),
    ("clip_grad_bad_type", lambda o: o.OptimWrapper(_sgd(), clip_grad=dict(type="x", max_norm=1)), ValueError,
     'type of clip_grad should be "norm" or "value"'),
    ("clip_grad_only_type", lambda o: o.OptimWrapper(_sgd(), clip_grad=dict(type="norm")), AssertionError,
     "`clip_grad` should contain other arguments besides `type`"),
    ("loss_factor_past_max", _step_past_max_counts, AssertionError, "loss_factor should be larger than zero!"),
    ("optimizer_not_optimizer", lambda o: o.OptimWrapper(object()), AttributeError,
     "object has no attribute 'param_groups'"),
    # ---- optimizer_wrapper_dict.py
    ("dict_member_not_wrapper", lambda o: o.OptimWrapperDict(a=_sgd()), AssertionError,
     "`OptimWrapperDict` only accept OptimWrapper instance"),
    ("dict_update_params", lambda o: _dict_wrapper(o).update_params(torch.tensor(1.0)), NotImplementedError,
     "`update_params` should be called by each optimizer separately"),
    ("dict_backward", lambda o: _dict_wrapper(o).backward(torch.tensor(1.0)), NotImplementedError,
     "`backward` should be called by each optimizer separately"),
    ("dict_step", lambda o: _dict_wrapper(o).step(), NotImplementedError,
     "`step` should be called by each optimizer separately"),
    ("dict_optim_context", lambda o: _dict_wrapper(o).optim_context(nn.Linear(1, 1)), NotImplementedError,
     "`optim_context` should be called by each optimizer separately"),
    ("dict_load_unknown", lambda o: _dict_wrapper(o).load_state_dict({"b": {}}), AssertionError,
     "Mismatched `state_dict`! cannot found b in OptimWrapperDict"),
    ("dict_getitem_unknown", lambda o: _dict_wrapper(o)["b"], AssertionError,
     "Cannot find b in OptimWrapperDict, please check your optimizer constructor."),
    # ---- default_constructor.py / builder.py
    ("constructor_cfg_not_dict", lambda o: o.DefaultOptimWrapperConstructor([1]), TypeError,
     "optimizer_cfg should be a dict"),
    ("constructor_no_optimizer", lambda o: o.DefaultOptimWrapperConstructor(dict(type="OptimWrapper")),
     AssertionError, '`optim_wrapper_cfg` must contain "optimizer" config'),
    ("build_no_optimizer", lambda o: o.build_optim_wrapper(nn.Linear(1, 1), dict(type="OptimWrapper")),
     AssertionError, '`optim_wrapper_cfg` must contain "optimizer" config'),
    ("paramwise_not_dict",
     lambda o: o.DefaultOptimWrapperConstructor(dict(optimizer=dict(type="SGD", lr=0.1)), paramwise_cfg=[1]),
     TypeError, "paramwise_cfg should be None or a dict"),
    ("custom_keys_not_dict",
     lambda o: o.DefaultOptimWrapperConstructor(dict(optimizer=dict(type="SGD", lr=0.1)),
                                                paramwise_cfg=dict(custom_keys=[1])),
     TypeError, "If specified, custom_keys must be a dict"),
    ("custom_decay_no_wd",
     lambda o: o.DefaultOptimWrapperConstructor(dict(optimizer=dict(type="SGD", lr=0.1)),
                                                paramwise_cfg=dict(custom_keys={"a": dict(decay_mult=0.1)})),
     ValueError, "base_wd should not be None"),
    ("bias_decay_no_wd",
     lambda o: o.DefaultOptimWrapperConstructor(dict(optimizer=dict(type="SGD", lr=0.1)),
                                                paramwise_cfg=dict(bias_decay_mult=0.1)),
     ValueError, "base_wd should not be None"),
    # ---- param_scheduler.py: _ParamScheduler
    ("scheduler_not_optimizer", lambda o: o.StepLR(object(), step_size=1), TypeError, "should be an Optimizer"),
    ("scheduler_end_le_begin", lambda o: o.StepLR(_sgd(), step_size=1, begin=5, end=5), ValueError,
     "end should be larger than begin"),
    ("scheduler_last_step", lambda o: o.StepLR(_sgd(), step_size=1, last_step=-2), AssertionError, ""),
    ("scheduler_resume_no_initial", lambda o: o.StepLR(_sgd(), step_size=1, last_step=3), KeyError,
     "param 'initial_lr' is not specified in param_groups[0] when resuming an optimizer"),
    ("iter_from_epoch_not_by_epoch",
     lambda o: o.StepLR.build_iter_from_epoch(_sgd(), step_size=1, by_epoch=False, epoch_length=2),
     AssertionError, "Only epoch-based kwargs whose `by_epoch=True` can be converted to iter-based."),
    ("iter_from_epoch_no_length", lambda o: o.StepLR.build_iter_from_epoch(_sgd(), step_size=1), AssertionError,
     "`epoch_length` must be a positive integer"),
    ("iter_from_epoch_length_0",
     lambda o: o.CosineAnnealingLR.build_iter_from_epoch(_sgd(), T_max=2, eta_min=0, epoch_length=0),
     AssertionError, "`epoch_length` must be a positive integer"),
    ("constant_factor", lambda o: o.ConstantLR(_sgd(), factor=1.5), ValueError,
     "Constant multiplicative factor should between 0 and 1."),
    ("linear_start_factor", lambda o: o.LinearLR(_sgd(), start_factor=-0.1), ValueError,
     "Starting multiplicative factor should between 0 and 1."),
    ("linear_end_factor", lambda o: o.LinearLR(_sgd(), end_factor=2.0), ValueError,
     "Ending multiplicative factor should between 0 and 1."),
    ("cosine_both_eta", lambda o: o.CosineAnnealingLR(_sgd(), T_max=2, eta_min=0.0, eta_min_ratio=0.1),
     AssertionError, "Either `eta_min` or `eta_min_ratio should be specified"),
    ("cosine_restart_both_eta",
     lambda o: o.CosineRestartLR(_sgd(), periods=[2], eta_min=0.0, eta_min_ratio=0.1),
     AssertionError, ""),
    ("cosine_restart_lengths",
     lambda o: o.CosineRestartLR(_sgd(), periods=[2, 2], restart_weights=[1], eta_min=0.0),
     AssertionError, "periods and restart_weights should have the same length."[:-1]),
    ("onecycle_param_name", lambda o: o.OneCycleParamScheduler(_sgd(), "momentum", eta_max=1.0, total_steps=10),
     AssertionError, "OneCycle only works for learning rate updating, but got patam_name as momentum"),
    ("onecycle_total_steps", lambda o: o.OneCycleLR(_sgd(), eta_max=1.0, total_steps=0), ValueError,
     "Expected positive integer total_steps, but got 0"),
    ("onecycle_pct_start", lambda o: o.OneCycleLR(_sgd(), eta_max=1.0, total_steps=10, pct_start=2.0), ValueError,
     "Expected float between 0 and 1 pct_start, but got 2.0"),
    ("onecycle_anneal", lambda o: o.OneCycleLR(_sgd(), eta_max=1.0, total_steps=10, anneal_strategy="x"),
     ValueError, 'anneal_strategy must by one of "cos" or "linear", instead got x'),
    ("onecycle_eta_max_len", lambda o: o.OneCycleLR(_sgd(), eta_max=[1.0, 2.0], total_steps=10), ValueError,
     "expected 1 values for max_lr, got 2"),
    ("onecycle_step_past_total", _step_one_cycle_past_total, ValueError,
     "The specified number of total steps is 2"),
    ("reduce_not_by_epoch", lambda o: o.ReduceOnPlateauLR(_sgd(), monitor="loss", by_epoch=False),
     AssertionError, "only support by_epoch=True"),
    ("reduce_factor", lambda o: o.ReduceOnPlateauLR(_sgd(), monitor="loss", factor=1.0), ValueError,
     "Factor should be < 1.0"),
    ("reduce_min_value_len", lambda o: o.ReduceOnPlateauLR(_sgd(), monitor="loss", min_value=[0.1, 0.2]),
     ValueError, "expected 1 min_lrs, got 2"),
    ("reduce_threshold", lambda o: o.ReduceOnPlateauLR(_sgd(), monitor="loss", threshold=-1.0), ValueError,
     "threshold -1.0 should be >= 0."),
    ("reduce_rule", lambda o: o.ReduceOnPlateauLR(_sgd(), monitor="loss", rule="x"), ValueError,
     "mode x is unknown!"),
    ("reduce_threshold_rule", lambda o: o.ReduceOnPlateauLR(_sgd(), monitor="loss", threshold_rule="x"),
     ValueError, "threshold mode x is unknown!"),
    ("reduce_metrics_not_dict", lambda o: _reduce_on_plateau_step(o, [1.0]), TypeError,
     "metrics type should be dict, but got type <class 'list'>"),
    ("reduce_monitor_missing", lambda o: _reduce_on_plateau_step(o, {"acc": 1.0}), KeyError,
     "but got key loss is not in dict"),
    # ---- momentum_scheduler.py
    ("momentum_unsupported", lambda o: o.StepMomentum(_adagrad(), step_size=1), ValueError,
     "optimizer must support momentum when using momentum scheduler"),
]


@pytest.mark.parametrize(("fn", "mm_type", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_same_error_as_mmengine(fn, mm_type, phrase):
    assert_same_error(fn, mm_optim, our_optim, mm_type, phrase)


def test_amp_dtype_errors_are_mmengine_types():
    """MMEngine's AmpOptimWrapper needs CUDA, so these compare with its source's types and phrases."""
    with pytest.raises(AssertionError, match="dtype should be any of"):
        our_optim.AmpOptimWrapper(optimizer=_sgd(), dtype="int8")
    with pytest.raises(AssertionError, match="dtype should be None or instance of torch.dtype"):
        our_optim.AmpOptimWrapper(optimizer=_sgd(), dtype=3)
    with pytest.raises(TypeError, match='loss_scale must be of type float, dict, or "dynamic"'):
        our_optim.AmpOptimWrapper(optimizer=_sgd(), loss_scale="static")
    with pytest.raises(TypeError, match='loss_scale must be of type float, dict, or "dynamic"'):
        our_optim.AmpOptimWrapper(optimizer=_sgd(), loss_scale=[1.0])
