"""Each misuse MMEngine's ``config`` refuses: ours raises an instance of MMEngine's type with its phrase.

Every case runs the same inputs on mmengine and on mm2lightning (see docs/errors.md).
"""

from __future__ import annotations

import types

import pytest
from error_parity import assert_same_error

pytest.importorskip("mmengine")
import mmengine.config  # noqa: E402

import mm2lightning.config as our_config  # noqa: E402

mm_ns = types.SimpleNamespace(Config=mmengine.config.Config, ConfigDict=mmengine.config.ConfigDict)
our_ns = types.SimpleNamespace(Config=our_config.Config, ConfigDict=our_config.ConfigDict)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _cases(tmp_path):
    def duplicate_bases(o):
        _write(tmp_path, "b1.py", "a = 1\n")
        _write(tmp_path, "b2.py", "a = 2\n")
        return o.Config.fromfile(_write(tmp_path, "child.py", "_base_ = ['b1.py', 'b2.py']\n"))

    def missing_base(o):
        return o.Config.fromfile(_write(tmp_path, "child2.py", "_base_ = ['nope.py']\n"))

    def child_dict_over_int(o):
        _write(tmp_path, "b3.py", "model = 1\n")
        return o.Config.fromfile(_write(tmp_path, "child3.py", "_base_ = ['b3.py']\nmodel = dict(a=1)\n"))

    def env_missing(o):
        text = "a = '{{$MM2L_SURELY_UNSET_VAR:}}'\n"
        return o.Config.fromfile(_write(tmp_path, "env.py", text))

    def merge_index(o):
        cfg = o.Config(dict(a=[1, 2]))
        cfg.merge_from_dict({"a.5": 3})

    def merge_dict_over_int(o):
        cfg = o.Config(dict(a=1))
        cfg.merge_from_dict({"a": dict(b=1)})

    return [
        ("cfg_dict_not_dict", lambda o: o.Config([1]), TypeError, "cfg_dict must be a dict, but got"),
        ("reserved_key", lambda o: o.Config(dict(filename=1)), KeyError, "filename is reserved for config file"),
        ("config_dict_update_two_args", lambda o: o.ConfigDict().update({}, {}), TypeError,
         "update only accept one positional argument"),
        ("config_dict_missing_attr", lambda o: o.ConfigDict(a=1).b, AttributeError,
         "'ConfigDict' object has no attribute 'b'"),
        ("fromfile_bad_suffix", lambda o: o.Config.fromfile(_write(tmp_path, "c.txt", "a=1")), OSError,
         "Only py/yml/yaml/json type are supported now!"),
        ("fromstring_bad_suffix", lambda o: o.Config.fromstring("a=1", ".txt"), OSError,
         "Only py/yml/yaml/json type are supported now!"),
        ("fromfile_missing", lambda o: o.Config.fromfile(str(tmp_path / "missing.py")), FileNotFoundError,
         "No such file or directory"),
        ("fromfile_syntax", lambda o: o.Config.fromfile(_write(tmp_path, "bad.py", "a = (\n")), SyntaxError,
         "was never closed"),
        ("duplicate_base_keys", duplicate_bases, KeyError, "Duplicate key is not allowed among bases"),
        ("missing_base", missing_base, FileNotFoundError, "No such file or directory"),
        ("child_dict_over_base_int", child_dict_over_int, TypeError,
         "in child config cannot inherit from base because"),
        ("env_var_missing", env_missing, KeyError, "`MM2L_SURELY_UNSET_VAR` cannot be found in `os.environ`."),
        ("merge_index_out_of_range", merge_index, KeyError, "Index 5 exceeds the length of list"),
        ("merge_dict_over_int", merge_dict_over_int, TypeError, "in child config cannot inherit from base because"),
        ("dump_bad_suffix", lambda o: o.Config(dict(a=1)).dump(str(tmp_path / "c.txt")), TypeError,
         "Unsupported format: txt"),
    ]


CASE_IDS = [c[0] for c in _cases(None)]


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_same_error_as_mmengine(case_id, tmp_path):
    _, fn, mm_type, phrase = next(c for c in _cases(tmp_path) if c[0] == case_id)
    ours = assert_same_error(fn, mm_ns, our_ns, mm_type, phrase)
    assert isinstance(ours, (our_config.ConfigError, TypeError, AttributeError))
