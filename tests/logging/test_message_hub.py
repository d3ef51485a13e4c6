"""MessageHub and ManagerMixin against mmengine's: instances, scalars, runtime information, state dicts."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import torch

from mm2lightning.logging import HistoryBuffer, MessageHub
from mm2lightning.utils import ManagerMixin


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def _hubs(mmengine):
    from mmengine.logging import MessageHub as MMMessageHub

    name = _name("hub")
    return MessageHub.get_instance(name), MMMessageHub.get_instance(name)


def _plain(value):
    return value.item() if isinstance(value, torch.Tensor) else value


def _assert_same_scalars(ours, ref):
    assert list(ours.log_scalars) == list(ref.log_scalars)
    for key, buffer in ours.log_scalars.items():
        for mine, theirs in zip(buffer.data, ref.log_scalars[key].data):
            assert mine.dtype == theirs.dtype
            np.testing.assert_array_equal(mine, theirs)


def test_instances_as_mmengine(mmengine):
    """get_instance creates once; the current instance is the last *created* one (fetching does not change it)."""
    from mmengine.logging import MessageHub as MMMessageHub

    first, second = _name("a"), _name("b")
    for cls in (MessageHub, MMMessageHub):
        hub_a = cls.get_instance(first)
        hub_b = cls.get_instance(second)
        assert cls.get_instance(first) is hub_a and hub_a.instance_name == first
        assert cls.get_current_instance() is hub_b
        assert cls.check_instance_created(first) and not cls.check_instance_created(_name("none"))
        with pytest.warns(UserWarning, match="has been created"):
            cls.get_instance(first, runtime_info=dict(x=1))


def test_manager_mixin_errors_as_mmengine(mmengine):
    from mmengine.utils import ManagerMixin as MMManagerMixin

    for base in (ManagerMixin, MMManagerMixin):
        with pytest.raises(AssertionError, match="name"):
            type("NoName", (base,), {"__init__": lambda self, x: None})

        class Fresh(base):
            def __init__(self, name=""):
                super().__init__(name)

        with pytest.raises(RuntimeError, match="get_instance"):
            Fresh.get_current_instance()
        with pytest.raises(AssertionError):
            Fresh.get_instance("")


def test_current_instance_defaults_to_mmengine_named_hub():
    class FreshHub(MessageHub):  # its own instances: none yet
        pass

    hub = FreshHub.get_current_instance()
    assert isinstance(hub, FreshHub) and hub.instance_name == "mmengine"


def test_update_scalar_and_scalars_as_mmengine(mmengine):
    ours, ref = _hubs(mmengine)
    updates = [
        ("train/loss", torch.tensor(0.75), 1),
        ("train/loss", 1.5, 2),
        ("train/lr", 0.01, 1),
        ("train/acc", np.array([3]), 1),
        ("train/loss", torch.tensor([[2.25]], dtype=torch.float64), 1),
        ("train/acc", np.float32(4.5), 1),
        ("train/flag", torch.tensor(True), 1),
    ]
    for key, value, count in updates:
        ours.update_scalar(key, value, count)
        ref.update_scalar(key, _plain(value) if isinstance(value, torch.Tensor) else value, count)
    batch = dict(a=torch.tensor(1.0), b=dict(value=torch.tensor(2.0), count=3), c=dict(value=4, count=torch.tensor(2)))
    ours.update_scalars(batch)
    ref.update_scalars(
        dict(a=1.0, b=dict(value=2.0, count=3), c=dict(value=4, count=torch.tensor(2)))
    )
    _assert_same_scalars(ours, ref)
    assert isinstance(ours.get_scalar("train/loss"), HistoryBuffer)
    assert ours.get_scalar("train/loss").mean() == ref.get_scalar("train/loss").mean()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="device tensors are kept unconverted on accelerators only")
def test_update_scalar_keeps_device_tensors_unconverted():
    hub = MessageHub(name=_name("lazy"))
    loss = torch.tensor(3.0, device="cuda", requires_grad=True) * 2
    torch.cuda.set_sync_debug_mode("error")  # update_scalar must not sync (MMEngine's calls .item())
    try:
        hub.update_scalar("train/loss", loss)
        hub.update_scalars(dict(a=loss, b=dict(value=loss, count=2)))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    pending = hub.get_scalar("train/loss")._pending
    assert len(pending) == 1 and pending[0].is_cuda and not pending[0].requires_grad
    assert hub.get_scalar("train/loss").current() == 6.0 and hub.get_scalar("b").mean() == 3.0


def test_scalar_errors_as_mmengine(mmengine):
    ours, ref = _hubs(mmengine)
    for hub in (ours, ref):
        hub.update_scalar("x", 1)
        with pytest.raises(AssertionError, match="resumed keys cannot be modified"):
            hub.update_scalar("x", 1, resumed=False)
        with pytest.raises(AssertionError):
            hub.update_scalar("y", torch.ones(2))
        with pytest.raises(AssertionError):
            hub.update_scalar("y", np.ones(2))
        with pytest.raises(TypeError):
            hub.update_scalar("z", 1, count=1.5)
        with pytest.raises(TypeError):
            hub.update_scalars(dict(z=dict(value=1, count=1.5)))
        with pytest.raises(AssertionError):
            hub.update_scalars([1])
        with pytest.raises(AssertionError):
            hub.update_scalars(dict(w=dict(count=1)))
        with pytest.raises(KeyError, match="not found"):
            hub.get_scalar("missing")
        with pytest.raises(AssertionError):
            hub.update_info_dict([1])
    for cls in (MessageHub, type(ref)):
        with pytest.raises(TypeError, match="should be a dict"):
            cls(name=_name("bad"), runtime_info=[1])
        with pytest.raises(AssertionError):
            cls(name=_name("bad"), log_scalars=dict(a=1))
        with pytest.raises(AssertionError):
            cls(name=_name("bad"), resumed_keys=dict(a=True))


def test_runtime_info_as_mmengine(mmengine):
    ours, ref = _hubs(mmengine)
    for hub in (ours, ref):
        hub.update_info("iter", 3)
        hub.update_info_dict(dict(epoch=1, meta=dict(classes=("a", "b"))))
        hub.update_info("iter", 4)
        assert hub.pop_info("missing", "default") == "default"
    assert dict(ours.runtime_info) == dict(ref.runtime_info)
    assert ours.get_info("iter") == 4 and ours.get_info("nothing", 7) == 7
    assert ours.pop_info("epoch") == ref.pop_info("epoch") == 1


def test_state_dict_saves_the_resumed_keys_and_loads_into_mmengine_and_back(mmengine):
    ours, ref = _hubs(mmengine)
    for hub in (ours, ref):
        hub.update_scalar("train/loss", torch.tensor(0.5) if hub is ours else 0.5)
        hub.update_scalar("train/loss", 0.25)
        hub.update_scalar("train/tmp", 1.0, resumed=False)
        hub.update_info("iter", 10)
        hub.update_info("scratch", object(), resumed=False)
    state, ref_state = ours.state_dict(), ref.state_dict()
    assert list(state["log_scalars"]) == list(ref_state["log_scalars"]) == ["train/loss"]
    assert dict(state["runtime_info"]) == dict(ref_state["runtime_info"]) == {"iter": 10}
    assert dict(state["resumed_keys"]) == dict(ref_state["resumed_keys"])
    np.testing.assert_array_equal(state["log_scalars"]["train/loss"].data[0], [0.5, 0.25])

    loaded = MessageHub(name=_name("loaded"))
    loaded.load_state_dict(state)
    assert loaded.get_scalar("train/loss").mean() == 0.375 and loaded.get_info("iter") == 10
    copied = MessageHub(name=_name("copied"))
    copied.load_state_dict(ours)  # a hub: everything is copied, as MMEngine
    assert set(copied.log_scalars) == {"train/loss", "train/tmp"} and "scratch" in copied.runtime_info


def test_load_state_dict_skips_what_mmengine_skips(mmengine):
    from mmengine.logging import MessageHub as MMMessageHub

    state = dict(
        log_scalars=dict(good=HistoryBuffer([1.0], [1]), bad=[1.0]),
        runtime_info=dict(iter=5),
        resumed_keys=dict(good=True, bad=True, iter=False, unknown=True),
    )
    hub = MessageHub(name=_name("skip"))
    hub.load_state_dict(state)
    ref_state = dict(state, log_scalars=dict(good=mmengine.logging.HistoryBuffer([1.0], [1]), bad=[1.0]))
    ref = MMMessageHub(name=_name("skip"))
    ref.load_state_dict(ref_state)
    assert list(hub.log_scalars) == list(ref.log_scalars) == ["good"]
    assert dict(hub._resumed_keys) == dict(ref._resumed_keys) == dict(good=True, iter=False)
    with pytest.raises(AssertionError, match="must contain key"):
        hub.load_state_dict(dict(log_scalars={}))
