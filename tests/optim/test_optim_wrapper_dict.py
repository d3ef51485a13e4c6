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


@pytest.mark.parametrize("method", ["update_params", "backward", "step", "optim_context"])
def test_combined_update_is_a_clear_error(method):
    wrappers = OptimWrapperDict(**make_pair()[2])
    arg = nn.Linear(1, 1) if method == "optim_context" else torch.ones(())
    call = (lambda: wrappers.step()) if method == "step" else (lambda: getattr(wrappers, method)(arg))
    with pytest.raises(NotImplementedError, match=rf"OptimWrapperDict.{method} is ambiguous: call it on each wrapper"):
        call()


def test_bad_members_and_keys():
    with pytest.raises(TypeError, match="takes OptimWrapper instances, but got generator=SGD"):
        OptimWrapperDict(generator=torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1))
    with pytest.raises(KeyError, match="no optim wrapper named 'gen'"):
        OptimWrapperDict(**make_pair()[2])["gen"]
