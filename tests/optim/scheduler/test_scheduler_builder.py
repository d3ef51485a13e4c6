"""build_param_schedulers: the config forms MMEngine's Runner accepts, default ``end``, and errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from mm2lightning.optim.optim_wrapper import OptimWrapper
from mm2lightning.optim.optim_wrapper_dict import OptimWrapperDict
from mm2lightning.optim.scheduler import INF, CosineAnnealingLR, LinearLR, MultiStepLR, StepLR, build_param_schedulers


def wrapper(lr: float = 0.1) -> OptimWrapper:
    return OptimWrapper(torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr, momentum=0.9))


def gan() -> OptimWrapperDict:
    return OptimWrapperDict(generator=wrapper(0.1), discriminator=wrapper(0.2))


def test_none_builds_nothing() -> None:
    assert build_param_schedulers(None, wrapper()) == []
    assert build_param_schedulers(None, gan()) == {"generator": [], "discriminator": []}


def test_single_wrapper_accepts_a_dict_a_scheduler_and_a_mixed_list() -> None:
    optim_wrapper = wrapper()
    (single,) = build_param_schedulers(dict(type="MultiStepLR", milestones=[2]), optim_wrapper)
    assert isinstance(single, MultiStepLR) and single.optimizer is optim_wrapper
    built = StepLR(optim_wrapper, step_size=3)
    assert build_param_schedulers(built, optim_wrapper) == [built]
    mixed = build_param_schedulers((built, dict(type=LinearLR, start_factor=0.5, end=2)), optim_wrapper)
    assert mixed[0] is built and isinstance(mixed[1], LinearLR)
    assert optim_wrapper.param_groups[0]["lr"] == pytest.approx(0.05)


def test_default_end_follows_by_epoch_and_never_overrides() -> None:
    cfgs = [
        dict(type="StepLR", step_size=1),
        dict(type="StepLR", step_size=1, by_epoch=False),
        dict(type="StepLR", step_size=1, end=2),
    ]
    original = copy.deepcopy(cfgs)
    ends = [s.end for s in build_param_schedulers(cfgs, wrapper(), max_epochs=4, max_iters=40)]
    assert ends == [4, 40, 2]
    assert cfgs == original, "the config must not be modified"
    assert [s.end for s in build_param_schedulers(cfgs, wrapper())] == [INF, INF, 2]
    assert [s.end for s in build_param_schedulers(cfgs, wrapper(), max_epochs=4)] == [4, INF, 2]


def test_epoch_length_converts_to_iter_based() -> None:
    cfg = dict(type="CosineAnnealingLR", begin=1, T_max=2, convert_to_iter_based=True)
    (scheduler,) = build_param_schedulers(cfg, wrapper(), epoch_length=5, max_epochs=3)
    assert isinstance(scheduler, CosineAnnealingLR)
    assert (scheduler.by_epoch, scheduler.begin, scheduler.end, scheduler.T_max) == (False, 5, 15, 10)
    with pytest.raises(ValueError, match="needs the epoch length"):
        build_param_schedulers(cfg, wrapper(), max_epochs=3)


def test_optim_wrapper_dict_builds_a_shared_config_for_each_wrapper() -> None:
    optim_wrapper = gan()
    built = build_param_schedulers([dict(type="MultiStepLR", milestones=[1], gamma=0.5)], optim_wrapper)
    assert list(built) == ["generator", "discriminator"]
    gen, disc = built["generator"][0], built["discriminator"][0]
    assert gen is not disc
    assert gen.optimizer is optim_wrapper["generator"] and disc.optimizer is optim_wrapper["discriminator"]
    assert (gen.base_values, disc.base_values) == ([0.1], [0.2])


def test_optim_wrapper_dict_builds_per_name_configs() -> None:
    optim_wrapper = gan()
    prebuilt = StepLR(optim_wrapper["discriminator"], step_size=2)
    cfg = {
        "generator": dict(type="MultiStepLR", milestones=[2]),
        "discriminator": [prebuilt, dict(type="LinearLR", end=3)],
    }
    built = build_param_schedulers(cfg, optim_wrapper, max_epochs=10)
    assert [type(s) for s in built["generator"]] == [MultiStepLR]
    assert built["generator"][0].end == 10
    assert built["discriminator"][0] is prebuilt and isinstance(built["discriminator"][1], LinearLR)
    empty = build_param_schedulers({"generator": None, "discriminator": []}, gan())
    assert empty == {"generator": [], "discriminator": []}


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"generator": dict(type="StepLR", step_size=1)}, r"missing \['discriminator'\], unknown \[\]"),
        (
            {"generator": [], "discriminator": [], "critic": []},
            r"must be the optim wrapper names \['generator', 'discriminator'\]; missing \[\], unknown \['critic'\]",
        ),
    ],
)
def test_per_name_config_must_name_exactly_the_wrappers(cfg: dict[str, Any], match: str) -> None:
    optim_wrapper = gan()
    with pytest.raises(KeyError, match=match):
        build_param_schedulers(cfg, optim_wrapper)
    assert optim_wrapper["generator"].param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize(
    ("cfg", "error", "match"),
    [
        (
            [dict(type="StepLR", step_size=1), dict(step_size=1)],
            KeyError,
            r"param_scheduler\[1\] must contain the key 'type'.*but got keys \['step_size'\]",
        ),
        (dict(milestones=[1]), KeyError, r"param_scheduler must contain the key 'type'.*for an OptimWrapperDict"),
        (
            [dict(type="StepLR", step_size=1), 3],
            TypeError,
            r"param_scheduler\[1\] must be None, a scheduler.*but got int: 3",
        ),
        ("StepLR", TypeError, "param_scheduler must be None, a scheduler.*but got str: 'StepLR'"),
    ],
)
def test_bad_configs_fail_before_building_anything(cfg: Any, error: type, match: str) -> None:
    optim_wrapper = wrapper()
    with pytest.raises(error, match=match):
        build_param_schedulers(cfg, optim_wrapper)
    assert "initial_lr" not in optim_wrapper.param_groups[0], "no scheduler may be built from a bad config"


def test_per_name_entries_are_checked_with_their_name() -> None:
    with pytest.raises(TypeError, match=r"param_scheduler\['discriminator'\] must be None.*but got float"):
        build_param_schedulers({"generator": None, "discriminator": 0.1}, gan())


def test_unknown_scheduler_type_is_reported_by_the_registry() -> None:
    with pytest.raises(KeyError, match="'StepLr' is not registered.*Did you mean: 'StepLR'"):
        build_param_schedulers(dict(type="StepLr", step_size=1), wrapper())
