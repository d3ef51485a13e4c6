"""Command-line overrides beyond the MMEngine parity cases."""

from __future__ import annotations

import argparse

from mm2lightning.config import Config, DictAction, parse_cfg_options


def test_values_of_each_kind():
    parsed = parse_cfg_options(["a.b=1", "c=[1,2]", "d=(1,2)", "e=None", "f=true", "g=x,y", "h=[[1,(2,3)],4]"])
    assert parsed == {"a.b": 1, "c": [1, 2], "d": (1, 2), "e": None, "f": True, "g": ["x", "y"], "h": [[1, (2, 3)], 4]}


def test_spaces_inside_a_value_are_kept():
    # MMEngine removes every space ('my dir' -> 'mydir'); only the spaces around items are dropped here.
    assert parse_cfg_options(["work_dir=my dir", "names=[a b, c]"]) == {"work_dir": "my dir", "names": ["a b", "c"]}


def test_single_string_and_last_one_wins():
    assert parse_cfg_options("lr=0.1") == {"lr": 0.1}
    assert parse_cfg_options(["lr=0.1", "lr=0.2"]) == {"lr": 0.2}


def test_dict_action_accumulates_repeated_flags_and_applies_to_a_config():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cfg-options", nargs="+", action=DictAction)
    args = parser.parse_args(["--cfg-options", "model.depth=18", "--cfg-options", "model.layers.1=7"])
    assert args.cfg_options == {"model.depth": 18, "model.layers.1": 7}
    cfg = Config(dict(model=dict(type="Net", depth=50, layers=[1, 2])))
    cfg.merge_from_dict(args.cfg_options)
    assert cfg.model.to_dict() == dict(type="Net", depth=18, layers=[1, 7])
    assert parser.parse_args([]).cfg_options is None
