"""OptimWrapperDict, against real mmengine."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mm2lightning.optim import OptimWrapper, OptimWrapperDict


def make_pair(wrapper_cls=OptimWrapper, **kwargs):
    torch.manual_seed(0)
    gen, disc = nn.Linear(2, 2), nn.Linear(2, 1)
    return gen, disc, {
        "generator": wrapper_cls(torch.optim.Adam(gen.parameters(), lr=1e-4, betas=(0.5, 0.999)), **kwargs),
        "discriminator": wrapper_cls(torch.optim.SGD(disc.parameters(), lr=0.01), **kwargs),
    }


def test_views_match_mmengine(mmengine):
    from mmengine.optim import OptimWrapper as MMOptimWrapper
    from mmengine.optim import OptimWrapperDict as MMOptimWrapperDict

    ours = OptimWrapperDict(**make_pair()[2])
    ref = MMOptimWrapperDict(**make_pair(MMOptimWrapper)[2])
    assert ours.get_lr() == ref.get_lr() == {"generator.lr": [1e-4], "discriminator.lr": [0.01]}
    assert ours.get_momentum() == ref.get_momentum()
    assert list(ours.keys()) == list(ref.keys()) and len(ours) == len(ref) == 2
    assert "generator" in ours and "encoder" not in ours
    assert ours.state_dict().keys() == ref.state_dict().keys()
    assert {k: len(v) for k, v in ours.param_groups.items()} == {k: len(v) for k, v in ref.param_groups.items()}


def test_each_wrapper_steps_separately():
    gen, disc, wrappers = make_pair()
    wrappers = OptimWrapperDict(**wrappers)
    before = disc.weight.detach().clone()
    wrappers["generator"].update_params(gen(torch.ones(1, 2)).sum())
    assert torch.equal(disc.weight, before)
    disc(torch.ones(1, 2)).sum().backward()
    wrappers.zero_grad()
    assert disc.weight.grad is None


def test_state_dict_round_trip_and_mismatch():
    gen, disc, wrappers = make_pair()
    wrappers = OptimWrapperDict(**wrappers)
    wrappers["generator"].update_params(gen(torch.ones(1, 2)).sum())
    state = wrappers.state_dict()
    fresh = OptimWrapperDict(**make_pair()[2])
    fresh.load_state_dict(state)
    assert fresh["generator"].optimizer.state_dict()["state"][0]["step"] == 1
    with pytest.raises(KeyError, match=r"\['encoder'\].*it has \['generator', 'discriminator'\]"):
        fresh.load_state_dict({"encoder": state["generator"]})


def test_initialize_count_status_is_a_no_op_as_in_mmengine():
    gen, _, wrappers = make_pair(accumulative_counts=2)
    OptimWrapperDict(**wrappers).initialize_count_status(gen, 5, 10)
    assert wrappers["generator"].inner_count == 0 and wrappers["generator"]._max_counts == -1


def test_bad_members_and_keys():
    with pytest.raises(TypeError, match="takes OptimWrapper instances, but got generator=SGD") as info:
        OptimWrapperDict(generator=torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1))
    assert isinstance(info.value, AssertionError)  # MMEngine asserts
    with pytest.raises(KeyError, match="No optim wrapper named 'gen'") as info:
        OptimWrapperDict(**make_pair()[2])["gen"]
    assert isinstance(info.value, AssertionError)


def test_load_state_dict_checks_every_name_before_loading():
    gen, _, wrappers = make_pair()
    wrappers = OptimWrapperDict(**wrappers)
    wrappers["generator"].update_params(gen(torch.ones(1, 2)).sum())
    fresh = OptimWrapperDict(**make_pair()[2])
    with pytest.raises(KeyError, match="Mismatched `state_dict`! cannot found encoder"):
        fresh.load_state_dict({"generator": wrappers["generator"].state_dict(), "encoder": {}})
    assert fresh["generator"].optimizer.state_dict()["state"] == {}  # nothing loaded (MMEngine loads 'generator')


def test_zero_grad_passes_its_arguments_on():
    _, disc, wrappers = make_pair()
    wrappers = OptimWrapperDict(**wrappers)
    disc(torch.ones(1, 2)).sum().backward()
    wrappers.zero_grad(set_to_none=False)
    assert torch.equal(disc.weight.grad, torch.zeros_like(disc.weight))


# ----------------------------------------------------------------- parity with MMEngine, member by member
def build(lib: str):
    """An OptimWrapperDict of the library ``lib`` ('ours' or 'ref'), its model, and its classes."""
    if lib == "ours":
        wrapper_cls, dict_cls = OptimWrapper, OptimWrapperDict
    else:
        from mmengine.optim import OptimWrapper as wrapper_cls
        from mmengine.optim import OptimWrapperDict as dict_cls
    torch.manual_seed(0)
    model = nn.ModuleDict(dict(gen=nn.Linear(2, 2), disc=nn.Linear(2, 1)))
    gen_groups = [{"params": [model["gen"].weight]}, {"params": [model["gen"].bias], "lr": 1e-3}]
    wrappers = dict_cls(
        generator=wrapper_cls(torch.optim.Adam(gen_groups, lr=1e-4, betas=(0.5, 0.999)), accumulative_counts=2),
        discriminator=wrapper_cls(torch.optim.SGD(model["disc"].parameters(), lr=0.01, momentum=0.9)),
    )
    for _ in range(2):  # give the children optimizer state
        wrappers["generator"].update_params(model["gen"](torch.ones(1, 2)).sum())
    wrappers["discriminator"].update_params(model["disc"](torch.ones(1, 2)).sum())
    return wrappers, model, (wrapper_cls, dict_cls)


def loss_of(model):
    return model["disc"](torch.ones(1, 2)).sum()


def grads_after_zero_grad(d, m, classes):
    loss_of(m).backward()
    d.zero_grad()
    return [p.grad for p in m.parameters()]


def enter_optim_context(d, m, classes):
    with d.optim_context(m):
        return "entered"


def counts_after_initialize(d, m, classes):
    result = d.initialize_count_status(m, 5, 10)
    return result, [(w.inner_count, w._max_counts) for w in d.values()]


PARITY_CASES = {
    # construction
    "init_optimizer": (lambda d, m, c: c[1](a=torch.optim.SGD(m.parameters(), lr=0.1)), "`OptimWrapperDict` only accept OptimWrapper instance"),
    "init_mixed": (lambda d, m, c: c[1](a=d["generator"], b=1), "`OptimWrapperDict` only accept OptimWrapper instance"),
    "init_empty": (lambda d, m, c: len(c[1]()), None),
    "init_wrappers": (lambda d, m, c: list(c[1](x=d["generator"]).keys()), None),
    # refused: each wrapper must be used separately
    "update_params": (lambda d, m, c: d.update_params(loss_of(m)), "`update_params` should be called by each optimizer separately"),
    "update_params_kwargs": (lambda d, m, c: d.update_params(loss_of(m), step_kwargs={}, zero_kwargs={}), "`update_params` should be called by each optimizer separately"),
    "backward": (lambda d, m, c: d.backward(loss_of(m)), "`backward` should be called by each optimizer separately"),
    "backward_kwargs": (lambda d, m, c: d.backward(loss_of(m), retain_graph=True), "`backward` should be called by each optimizer separately"),
    "step": (lambda d, m, c: d.step(), "`step` should be called by each optimizer separately"),
    "step_kwargs": (lambda d, m, c: d.step(closure=None), "`step` should be called by each optimizer separately"),
    "optim_context_call": (lambda d, m, c: d.optim_context(m), "`optim_context` should be called by each optimizer separately"),
    "optim_context_enter": (enter_optim_context, "`optim_context` should be called by each optimizer separately"),
    # accumulation state and defaults belong to the children
    "inner_count": (lambda d, m, c: d.inner_count, "'OptimWrapperDict' object has no attribute '_inner_count'"),
    "should_update": (lambda d, m, c: d.should_update(), "'OptimWrapperDict' object has no attribute '_inner_count'"),
    "should_sync": (lambda d, m, c: d.should_sync(), "'OptimWrapperDict' object has no attribute '_inner_count'"),
    "scale_loss": (lambda d, m, c: d.scale_loss(torch.ones(())), "'OptimWrapperDict' object has no attribute '_accumulative_counts'"),
    "defaults": (lambda d, m, c: d.defaults, "'OptimWrapperDict' object has no attribute 'optimizer'"),
    # acting on every child
    "zero_grad": (grads_after_zero_grad, None),
    "initialize_count_status": (counts_after_initialize, None),
    "param_groups": (lambda d, m, c: d.param_groups, None),
    "get_lr": (lambda d, m, c: d.get_lr(), None),
    "get_momentum": (lambda d, m, c: d.get_momentum(), None),
    "state_dict": (lambda d, m, c: d.state_dict(), None),
    "load_state_dict": (lambda d, m, c: (d.load_state_dict(build("ours" if c[0] is OptimWrapper else "ref")[0].state_dict()), d.state_dict()), None),
    "load_state_dict_empty": (lambda d, m, c: d.load_state_dict({}), None),
    "load_state_dict_unknown": (lambda d, m, c: d.load_state_dict({"encoder": {}}), "Mismatched `state_dict`! cannot found encoder in OptimWrapperDict"),
    # mapping views
    "items": (lambda d, m, c: [(k, type(v).__name__, v.get_lr()) for k, v in d.items()], None),
    "keys": (lambda d, m, c: list(d.keys()), None),
    "values": (lambda d, m, c: [v.get_lr() for v in d.values()], None),
    "contains": (lambda d, m, c: ("generator" in d, "encoder" in d, 1 in d), None),
    "len": (lambda d, m, c: len(d), None),
    "getitem": (lambda d, m, c: d["discriminator"].get_momentum(), None),
    "getitem_missing": (lambda d, m, c: d["gen"], "Cannot find gen in OptimWrapperDict, please check your optimizer constructor."),
    "repr": (lambda d, m, c: repr(d), None),
}


def normalise(value):
    if isinstance(value, torch.Tensor):
        return ("tensor", value.tolist())
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(normalise(v) for v in value)
    return value


def outcome(lib, call):
    wrappers, model, classes = build(lib)
    try:
        return normalise(call(wrappers, model, classes)), None
    except Exception as exc:  # noqa: BLE001 - the outcome under comparison
        return None, exc


@pytest.mark.parametrize("case", list(PARITY_CASES))
def test_member_parity_with_mmengine(mmengine, case):
    call, phrase = PARITY_CASES[case]
    ref_value, ref_error = outcome("ref", call)
    value, error = outcome("ours", call)
    if phrase is None:
        assert ref_error is None, f"mmengine raised {ref_error!r}"
        assert error is None, f"we raised {error!r}"
        assert value == ref_value
    else:
        assert ref_error is not None and phrase in str(ref_error), f"mmengine gave {ref_value!r} / {ref_error!r}"
        assert isinstance(error, type(ref_error)), f"we raised {error!r}, mmengine {type(ref_error).__name__}"
        assert phrase in str(error)
