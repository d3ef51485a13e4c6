"""Each misuse MMEngine's ``registry`` refuses: ours raises an instance of MMEngine's type with its phrase.

Every case runs the same inputs on mmengine and on mm2lightning (see docs/errors.md).
"""

from __future__ import annotations

import types

import pytest
from error_parity import assert_same_error

pytest.importorskip("mmengine")
import mmengine.registry  # noqa: E402

import mm2lightning.registry as our_registry  # noqa: E402

mm_ns = types.SimpleNamespace(
    Registry=mmengine.registry.Registry,
    build_from_cfg=mmengine.registry.build_from_cfg,
    build_scheduler_from_cfg=mmengine.registry.build_scheduler_from_cfg,
)


class A:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class B:
    pass


def _reg(o):
    reg = o.Registry("thing")
    reg.register_module(module=A)
    return reg


def _register_twice(o):
    reg = _reg(o)
    reg.register_module(name="A", module=B)


CASES = [
    # ---- registry.py
    ("get_non_str", lambda o: _reg(o).get(1), TypeError, "The key argument of `Registry.get` must be a str"),
    ("force_not_bool", lambda o: _reg(o).register_module(force=1), TypeError, "force must be a boolean"),
    ("name_invalid", lambda o: _reg(o).register_module(name=1), TypeError,
     "name must be None, an instance of str, or a sequence of str"),
    ("module_not_callable", lambda o: _reg(o).register_module(name="x", module=5), TypeError,
     "module must be Callable"),
    ("registered_twice", _register_twice, KeyError, "A is already registered in thing"),
    # ---- build_functions.py: build_from_cfg
    ("cfg_not_dict", lambda o: o.build_from_cfg("A", _reg(o)), TypeError, "cfg should be a dict, ConfigDict or Config"),
    ("cfg_no_type", lambda o: o.build_from_cfg(dict(a=1), _reg(o)), KeyError,
     '`cfg` or `default_args` must contain the key "type"'),
    ("registry_not_registry", lambda o: o.build_from_cfg(dict(type="A"), object()), TypeError,
     "registry must be a mmengine.Registry object"),
    ("default_args_not_dict", lambda o: o.build_from_cfg(dict(type="A"), _reg(o), default_args=1), TypeError,
     "default_args should be a dict, ConfigDict, Config or None"),
    ("type_not_registered", lambda o: o.build_from_cfg(dict(type="Nope"), _reg(o)), KeyError,
     "Nope is not in the"),
    ("type_not_registered_hint", lambda o: o.build_from_cfg(dict(type="Nope"), _reg(o)), KeyError,
     "Please check whether the value of `Nope` is correct or it was registered as expected"),
    ("type_invalid", lambda o: o.build_from_cfg(dict(type=1), _reg(o)), TypeError, "type must be a str or valid type"),
    # ---- build_functions.py: build_scheduler_from_cfg
    ("scheduler_cfg_not_dict", lambda o: o.build_scheduler_from_cfg("A", _reg(o)), AssertionError,
     "cfg should be a dict, ConfigDict or Config"),
    ("scheduler_registry_not_registry", lambda o: o.build_scheduler_from_cfg(dict(type="A"), object()),
     AssertionError, "registry should be a mmengine.Registry object"),
    ("scheduler_convert_no_epoch_length",
     lambda o: o.build_scheduler_from_cfg(dict(type="A", convert_to_iter_based=True), _reg(o)), AssertionError,
     "Only epoch-based parameter scheduler can be converted to iter-based, and `epoch_length` should be set"),
    ("scheduler_convert_not_by_epoch",
     lambda o: o.build_scheduler_from_cfg(dict(type="A", convert_to_iter_based=True, by_epoch=False), _reg(o),
                                          default_args=dict(epoch_length=2)),
     AssertionError,
     "Only epoch-based parameter scheduler can be converted to iter-based, and `epoch_length` should be set"),
    ("scheduler_type_not_registered",
     lambda o: o.build_scheduler_from_cfg(dict(type="Nope", convert_to_iter_based=True), _reg(o),
                                          default_args=dict(epoch_length=2)),
     KeyError, "Nope is not in the"),
    ("scheduler_type_invalid",
     lambda o: o.build_scheduler_from_cfg(dict(type=1, convert_to_iter_based=True), _reg(o),
                                          default_args=dict(epoch_length=2)),
     TypeError, "type must be a str or valid type"),
]


@pytest.mark.parametrize(("fn", "mm_type", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_same_error_as_mmengine(fn, mm_type, phrase):
    assert_same_error(fn, mm_ns, our_registry, mm_type, phrase)


def test_registering_the_same_object_twice_is_allowed():
    """Deliberate: MMEngine refuses re-registering even the same class (KeyError); we accept it (idempotent)."""
    reg = our_registry.Registry("thing")
    reg.register_module(module=A)
    reg.register_module(module=A)
    assert reg.get("A") is A


def test_name_may_be_a_tuple_as_in_mmengine():
    reg = our_registry.Registry("thing")
    reg.register_module(name=("X", "Y"), module=A)
    assert reg.get("X") is A and reg.get("Y") is A
