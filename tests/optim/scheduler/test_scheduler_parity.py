"""Parity of every parameter scheduler with real mmengine: same values at every step, same state."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import pytest
import torch

import mm2lightning.optim.scheduler as ours
from mm2lightning.optim.optim_wrapper import OptimWrapper
from mm2lightning.optim.scheduler import build_param_schedulers
from mm2lightning.registry import PARAM_SCHEDULERS

mmengine = pytest.importorskip("mmengine", reason="mmengine is the reference implementation of the parity tests")
import mmengine.optim.scheduler as ref  # noqa: E402
from mmengine.optim import OptimWrapper as RefOptimWrapper  # noqa: E402
from mmengine.registry import PARAM_SCHEDULERS as REF_PARAM_SCHEDULERS  # noqa: E402

LOSSES = [1.0, 0.9, 0.95, 0.95, 0.96, 0.8, 0.85, 0.85, 0.9, 0.9, 0.91, 0.92]
ACCURACIES = [0.5, 0.6, 0.65, 0.66, 0.64, 0.7, 0.7, 0.69, 0.75, 0.74, 0.74, 0.73]

ALL, NO_MOMENTUM = ("LR", "Momentum", "ParamScheduler"), ("LR", "ParamScheduler")
# (type without suffix, kwargs, families, steps, metric sequence fed to ReduceOnPlateau)
CASES: list[tuple[str, dict[str, Any], tuple[str, ...], int, list[float] | None]] = [
    ("Step", dict(step_size=2, gamma=0.5), ALL, 12, None),
    ("Step", dict(step_size=3, gamma=0.5, begin=2, end=9), ALL, 12, None),
    ("MultiStep", dict(milestones=[2, 2, 4], gamma=0.5), ALL, 12, None),
    ("Constant", dict(factor=0.5, end=4), ALL, 12, None),
    ("Constant", dict(factor=0.5, begin=2, end=3), ALL, 12, None),  # total_iters 0: never restored
    ("Exponential", dict(gamma=0.9), ALL, 12, None),
    ("CosineAnnealing", dict(T_max=4, end=5), ALL, 12, None),
    ("CosineAnnealing", dict(T_max=3, eta_min=0.001), ALL, 12, None),  # past T_max, through the trough
    ("CosineAnnealing", dict(eta_min_ratio=0.1, begin=1, end=8), ALL, 12, None),
    ("Linear", dict(start_factor=0.2, end=5), ALL, 12, None),
    ("Linear", dict(start_factor=0.5, end_factor=0.8, begin=2, end=7), ALL, 12, None),
    ("Poly", dict(end=5), ALL, 12, None),
    ("Poly", dict(eta_min=0.001, power=2.0, begin=1, end=9), ALL, 12, None),
    ("OneCycle", dict(eta_max=0.5, total_steps=10), NO_MOMENTUM, 10, None),
    (
        "OneCycle",
        dict(eta_max=0.5, total_steps=10, pct_start=0.25, anneal_strategy="linear", three_phase=True),
        NO_MOMENTUM,
        10,
        None,
    ),
    ("OneCycle", dict(eta_max=0.4, div_factor=10.0, final_div_factor=100.0, begin=1, end=9), NO_MOMENTUM, 12, None),
    ("CosineRestart", dict(periods=[3, 4], restart_weights=[1, 0.5], eta_min=0.001), ALL, 12, None),
    ("CosineRestart", dict(periods=[5], eta_min_ratio=0.1, begin=2), ALL, 12, None),
    ("ReduceOnPlateau", dict(patience=1, factor=0.5, cooldown=1), ALL, 12, LOSSES),
    (
        "ReduceOnPlateau",
        dict(
            monitor="acc", rule="greater", threshold_rule="abs", threshold=0.01, patience=0, factor=0.5, begin=1, end=9
        ),
        ALL,
        12,
        ACCURACIES,
    ),
    ("ReduceOnPlateau", dict(patience=0, factor=0.5, min_value=0.003, eps=1e-3), ALL, 12, LOSSES),
]
SETUPS = ["sgd", "adam", "wrapper_2_groups"]


def make_optimizer(lib: Any, setup: str) -> Any:
    """The same optimizer for both libraries; ``lib`` gives the OptimWrapper class."""
    if setup == "sgd":
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, momentum=0.9, weight_decay=0.01)
    if setup == "adam":
        return torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=0.1, betas=(0.9, 0.999), weight_decay=0.01)
    groups = [
        {"params": [torch.nn.Parameter(torch.zeros(2))]},
        {"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 0.05, "momentum": 0.8, "weight_decay": 0.02},
    ]
    optimizer = torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=0.01)
    return (OptimWrapper if lib is ours else RefOptimWrapper)(optimizer)


def snapshot(optimizer: Any) -> list[dict[str, Any]]:
    """Every hyper-parameter of every group (including ``base_param_settings``)."""
    return [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]


def comparable_state(scheduler: Any) -> dict[str, Any]:
    """The state dict, without OneCycle's annealing choice (a function in mmengine, a name here)."""
    return {k: v for k, v in scheduler.state_dict().items() if k not in ("anneal_func", "anneal_strategy")}


def run(scheduler: Any, optimizer: Any, steps: int, metrics: list[float] | None, monitor: str) -> list[Any]:
    """Step as the runner does and return the optimizer's groups before each step and at the end."""
    trace = []
    for i in range(steps):
        trace.append(snapshot(optimizer))
        optimizer.step()
        scheduler.step()
        if metrics is not None:  # ReduceOnPlateau: after_train_epoch, then after_val_epoch with metrics
            scheduler.step({monitor: metrics[i]})
    return [*trace, snapshot(optimizer)]


def build(lib: Any, family: str, base: str, kwargs: dict[str, Any], optimizer: Any) -> Any:
    kwargs = dict(kwargs)
    if family == "ParamScheduler":
        kwargs["param_name"] = "lr" if base == "OneCycle" else "weight_decay"
    return getattr(lib, base + family)(optimizer, **kwargs)


PARAMS = [
    pytest.param(family, setup, case, id=f"{case[0]}{family}-{i}-{setup}")
    for i, case in enumerate(CASES)
    for family in case[2]
    for setup in SETUPS
]


@pytest.mark.parametrize(("family", "setup", "case"), PARAMS)
def test_each_scheduler_alone_matches_mmengine(family: str, setup: str, case: tuple) -> None:
    base, kwargs, _, steps, metrics = case
    monitor = kwargs.get("monitor", "loss")
    optimizers = {lib: make_optimizer(lib, setup) for lib in (ours, ref)}
    schedulers = {lib: build(lib, family, base, kwargs, optimizers[lib]) for lib in (ours, ref)}
    traces = {lib: run(schedulers[lib], optimizers[lib], steps, metrics, monitor) for lib in (ours, ref)}

    assert traces[ours] == traces[ref]
    assert schedulers[ours].get_last_value() == schedulers[ref].get_last_value()
    assert comparable_state(schedulers[ours]) == comparable_state(schedulers[ref])
    key = {"LR": "lr", "Momentum": "momentum"}.get(family, "lr" if base == "OneCycle" else "weight_decay")
    assert len({snap[0][key] for snap in traces[ours]}) > 1, "the case must change the scheduled value"


@pytest.mark.parametrize("setup", ["sgd", "wrapper_2_groups"])
@pytest.mark.parametrize("case", [pytest.param(case, id=f"{case[0]}-{i}") for i, case in enumerate(CASES)])
def test_resume_from_state_dict_continues_identically(case: tuple, setup: str) -> None:
    """Stop after 5 steps, rebuild optimizer + scheduler, load both state dicts, go on.

    Ours resumes from its own state and from mmengine's (checkpoint compatibility).
    """
    base, kwargs, _, steps, metrics = case
    monitor, split = kwargs.get("monitor", "loss"), 5
    full_optimizer = make_optimizer(ours, setup)
    full = run(build(ours, "LR", base, kwargs, full_optimizer), full_optimizer, steps, metrics, monitor)
    for lib in (ours, ref):
        first_optimizer = make_optimizer(lib, setup)
        first = build(lib, "LR", base, kwargs, first_optimizer)
        head = run(first, first_optimizer, split, metrics, monitor)
        saved = copy.deepcopy((first_optimizer.state_dict(), first.state_dict()))

        optimizer = make_optimizer(ours, setup)
        scheduler = build(ours, "LR", base, kwargs, optimizer)
        optimizer.load_state_dict(saved[0])
        scheduler.load_state_dict(saved[1])
        tail = run(scheduler, optimizer, steps - split, metrics and metrics[split:], monitor)
        assert head[:-1] + tail == full, f"resuming from {lib.__name__}'s state"


def simulate_epochs(schedulers: list[Any], optimizer: Any, epochs: int, iters: int) -> list[float]:
    """The runner's order: optimizer step, iter-based schedulers per iteration, epoch-based ones per epoch."""
    lrs = []
    for _ in range(epochs):
        for _ in range(iters):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            for scheduler in schedulers:
                if not scheduler.by_epoch:
                    scheduler.step()
        for scheduler in schedulers:
            if scheduler.by_epoch:
                scheduler.step()
    return lrs


def build_reference(cfgs: list[dict[str, Any]], optimizer: Any, epochs: int, iters: int) -> list[Any]:
    """mmengine's Runner: default end = max epochs (by_epoch) or max iters, then PARAM_SCHEDULERS.build."""
    built = []
    for cfg in copy.deepcopy(cfgs):
        cfg.setdefault("end", epochs if cfg.get("by_epoch", True) else epochs * iters)
        built.append(REF_PARAM_SCHEDULERS.build(cfg, default_args=dict(optimizer=optimizer, epoch_length=iters)))
    return built


def test_spec_warmup_then_cosine_by_epoch_trace() -> None:
    cfgs = [
        dict(type="LinearLR", start_factor=0.1, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
        dict(type="CosineAnnealingLR", by_epoch=True, begin=1, T_max=3),
    ]
    wrapper = OptimWrapper(make_optimizer(ours, "sgd"))
    schedulers = build_param_schedulers(cfgs, wrapper, epoch_length=5, max_epochs=4)
    linear, cosine = schedulers
    assert (type(linear), linear.by_epoch, linear.begin, linear.end) == (ours.LinearLR, False, 0, 5)
    assert (type(cosine), cosine.by_epoch, cosine.begin, cosine.end) == (ours.CosineAnnealingLR, True, 1, 4)
    lrs = simulate_epochs(schedulers, wrapper, epochs=4, iters=5)
    expected = [0.01, 0.0325, 0.055, 0.0775, 0.1] + [0.1] * 5 + [0.075] * 5 + [0.025] * 5
    assert lrs == pytest.approx(expected, abs=1e-12)

    ref_wrapper = RefOptimWrapper(make_optimizer(ref, "sgd"))
    ref_lrs = simulate_epochs(build_reference(cfgs, ref_wrapper, 4, 5), ref_wrapper, 4, 5)
    assert lrs == ref_lrs


@pytest.mark.parametrize(
    "cfgs",
    [
        pytest.param(
            [
                dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=7),
                dict(type="MultiStepLR", milestones=[2, 3], gamma=0.1),
            ],
            id="warmup-by-iter-then-multistep-by-epoch",
        ),
        pytest.param(
            [
                dict(type="MultiStepLR", milestones=[3, 8], gamma=0.5, by_epoch=False),
                dict(type="ExponentialLR", gamma=0.9, by_epoch=False, begin=5, end=15),
                dict(type="ConstantLR", factor=0.5, begin=1, end=3),
                dict(type="CosineAnnealingMomentum", T_max=10, eta_min=0.5, by_epoch=False),
            ],
            id="overlapping-ranges-multiply",
        ),
        pytest.param(
            [
                dict(type="PolyLR", power=2.0, eta_min=0.001, convert_to_iter_based=True),
                dict(type="StepMomentum", step_size=1, gamma=0.9),
            ],
            id="poly-converted-with-default-end-and-step-momentum",
        ),
    ],
)
def test_composed_schedulers_match_mmengine(cfgs: list[dict[str, Any]]) -> None:
    optimizer = make_optimizer(ours, "wrapper_2_groups")
    schedulers = build_param_schedulers(cfgs, optimizer, epoch_length=5, max_epochs=4, max_iters=20)
    lrs = simulate_epochs(schedulers, optimizer, 4, 5)
    ref_optimizer = make_optimizer(ref, "wrapper_2_groups")
    ref_lrs = simulate_epochs(build_reference(cfgs, ref_optimizer, 4, 5), ref_optimizer, 4, 5)
    assert lrs == ref_lrs
    assert snapshot(optimizer) == snapshot(ref_optimizer)
    assert len(set(lrs)) > 3


CONVERTIBLE = [
    dict(type="StepLR", step_size=1, gamma=0.5, begin=1, end=3),
    dict(type="MultiStepLR", milestones=[1, 2]),
    dict(type="ConstantLR", factor=0.5, end=2),
    dict(type="ExponentialLR", gamma=0.9, end=2),
    dict(type="CosineAnnealingLR", T_max=2, begin=1),
    dict(type="LinearLR", start_factor=0.25, end=1),
    dict(type="PolyLR", end=3, power=2.0),
    dict(type="OneCycleLR", eta_max=0.5, total_steps=3),
    dict(type="CosineRestartLR", periods=[1, 2], restart_weights=[1.0, 0.5], eta_min=0.001),
    dict(type="CosineAnnealingMomentum", T_max=2),
    dict(type="StepParamScheduler", param_name="weight_decay", step_size=1),
]


@pytest.mark.parametrize("cfg", CONVERTIBLE, ids=[c["type"] for c in CONVERTIBLE])
def test_convert_to_iter_based_builds_like_mmengine(cfg: dict[str, Any]) -> None:
    cfg = dict(cfg, convert_to_iter_based=True)
    optimizer = make_optimizer(ours, "sgd")
    scheduler = PARAM_SCHEDULERS.build(copy.deepcopy(cfg), default_args=dict(optimizer=optimizer, epoch_length=3))
    ref_optimizer = make_optimizer(ref, "sgd")
    ref_scheduler = REF_PARAM_SCHEDULERS.build(cfg, default_args=dict(optimizer=ref_optimizer, epoch_length=3))
    assert scheduler.by_epoch is False
    assert comparable_state(scheduler) == comparable_state(ref_scheduler)
    assert run(scheduler, optimizer, 9, None, "") == run(ref_scheduler, ref_optimizer, 9, None, "")


def parameters(cls: type) -> list[tuple[str, Any, Any]]:
    """Name, kind and default of each constructor parameter (annotations aside)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(cls).parameters.values()]


@pytest.mark.parametrize("name", sorted(ref.__all__))
def test_public_names_and_constructor_signatures_match_mmengine(name: str) -> None:
    """Configs port unchanged: same names, same parameters (LR/Momentum classes forward to the generic ones)."""
    assert name in ours.__all__
    assert parameters(getattr(ours, name)) == parameters(getattr(ref, name))


# CosineAnnealing{LR,Momentum,ParamScheduler}: every eta_min form MMEngine accepts, by_epoch either way,
# T_max given or taken from end - begin (or INF: the value stays put), stepped directly and converted.
ETA_FORMS = {
    "eta_min": dict(eta_min=0.001),
    "ratio": dict(eta_min_ratio=0.1),
    "neither": {},
    "eta_min_0": dict(eta_min=0.0),
}
T_MAX_FORMS = {
    "T_max": dict(T_max=4),
    "T_max_begin_end": dict(T_max=5, begin=2, end=9),
    "end_only": dict(end=7),
    "begin_end": dict(begin=1, end=6),
    "neither_INF": {},
}
COSINE_PARAMS = [
    pytest.param(family, eta, span, by_epoch, setup, id=f"{family}-{eta}-{span}-by_epoch={by_epoch}-{setup}")
    for family in ALL
    for eta in ETA_FORMS
    for span in T_MAX_FORMS
    for by_epoch in (True, False)
    for setup in ("sgd", "adam", "wrapper_2_groups")
]


@pytest.mark.parametrize(("family", "eta", "span", "by_epoch", "setup"), COSINE_PARAMS)
def test_cosine_annealing_accepted_combinations_match_mmengine(
    family: str, eta: str, span: str, by_epoch: bool, setup: str
) -> None:
    kwargs = dict(ETA_FORMS[eta], **T_MAX_FORMS[span], by_epoch=by_epoch)
    optimizers = {lib: make_optimizer(lib, setup) for lib in (ours, ref)}
    schedulers = {lib: build(lib, family, "CosineAnnealing", kwargs, optimizers[lib]) for lib in (ours, ref)}
    traces = {lib: run(schedulers[lib], optimizers[lib], 12, None, "") for lib in (ours, ref)}

    assert traces[ours] == traces[ref]
    assert schedulers[ours].get_last_value() == schedulers[ref].get_last_value()
    assert comparable_state(schedulers[ours]) == comparable_state(schedulers[ref])
    assert schedulers[ours].by_epoch is by_epoch
    key = {"LR": "lr", "Momentum": "momentum"}.get(family, "weight_decay")
    values = {snap[0][key] if key in snap[0] else snap[0]["betas"][0] for snap in traces[ours]}
    moved = max(values) - min(values) > 1e-9  # T_max = INF: only rounding, as in mmengine
    assert moved == (span != "neither_INF"), "any finite T_max moves the value; T_max = INF keeps it"


@pytest.mark.parametrize("family", ALL)
@pytest.mark.parametrize("extra", [dict(T_max=4), dict(end=6), dict(), dict(by_epoch=False)])
def test_cosine_annealing_with_eta_min_and_ratio_raises_what_mmengine_raises(family: str, extra: dict) -> None:
    kwargs = dict(extra, eta_min=0.01, eta_min_ratio=0.1)
    with pytest.raises(AssertionError) as ref_error:
        build(ref, family, "CosineAnnealing", kwargs, make_optimizer(ref, "sgd"))
    optimizer = make_optimizer(ours, "sgd")
    before = snapshot(optimizer)
    with pytest.raises(type(ref_error.value)) as error:
        build(ours, family, "CosineAnnealing", kwargs, optimizer)
    assert isinstance(error.value, ValueError)  # our natural type too
    assert str(ref_error.value) in str(error.value)  # MMEngine's phrase
    assert "exactly one of eta_min and eta_min_ratio" in str(error.value)  # ours
    assert snapshot(optimizer) == before, "nothing written into the optimizer"


@pytest.mark.parametrize("family", ALL)
def test_cosine_annealing_build_iter_from_epoch_with_both_eta_min_forms_raises_like_mmengine(family: str) -> None:
    kwargs = dict(T_max=2, eta_min=0.0, eta_min_ratio=0.1, epoch_length=3)
    if family == "ParamScheduler":
        kwargs["param_name"] = "weight_decay"
    with pytest.raises(AssertionError) as ref_error:
        getattr(ref, "CosineAnnealing" + family).build_iter_from_epoch(make_optimizer(ref, "sgd"), **kwargs)
    with pytest.raises(type(ref_error.value), match="Either `eta_min` or `eta_min_ratio should be specified"):
        getattr(ours, "CosineAnnealing" + family).build_iter_from_epoch(make_optimizer(ours, "sgd"), **kwargs)


CONVERTED_COSINE = [
    dict(eta_min_ratio=0.1, T_max=2, begin=1),
    dict(eta_min_ratio=0.1, begin=1, end=3),  # T_max from the converted end - begin
    dict(eta_min_ratio=0.25, T_max=3),
    dict(eta_min=0.01, T_max=2, end=4),
    dict(),
]


@pytest.mark.parametrize("family", ALL)
@pytest.mark.parametrize(
    "kwargs", CONVERTED_COSINE, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()) or "defaults"
)
@pytest.mark.parametrize("via", ["build_iter_from_epoch", "convert_to_iter_based"])
def test_cosine_annealing_converted_to_iter_based_matches_mmengine(family: str, kwargs: dict, via: str) -> None:
    kwargs = dict(kwargs)
    if family == "ParamScheduler":
        kwargs["param_name"] = "weight_decay"
    optimizers = {lib: make_optimizer(lib, "wrapper_2_groups") for lib in (ours, ref)}
    schedulers = {}
    for lib, registry in ((ours, PARAM_SCHEDULERS), (ref, REF_PARAM_SCHEDULERS)):
        if via == "build_iter_from_epoch":
            cls = getattr(lib, "CosineAnnealing" + family)
            schedulers[lib] = cls.build_iter_from_epoch(optimizers[lib], epoch_length=4, **kwargs)
        else:
            cfg = dict(kwargs, type="CosineAnnealing" + family, convert_to_iter_based=True)
            schedulers[lib] = registry.build(cfg, default_args=dict(optimizer=optimizers[lib], epoch_length=4))
    traces = {lib: run(schedulers[lib], optimizers[lib], 12, None, "") for lib in (ours, ref)}

    assert schedulers[ours].by_epoch is False
    assert comparable_state(schedulers[ours]) == comparable_state(schedulers[ref])
    assert traces[ours] == traces[ref]
    if "T_max" in kwargs:
        assert schedulers[ours].T_max == kwargs["T_max"] * 4
