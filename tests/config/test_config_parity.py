"""Parity with real mmengine: loaded configs, parsed overrides and merge_from_dict give the same dicts."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mm2lightning.config import Config, ConfigError, parse_cfg_options

DATA = Path(__file__).parent / "data"
FIXTURES = [
    "base_model.py",
    "base_schedule.yaml",
    "base_runtime.json",
    "experiment.py",
    "experiment_child.yaml",
    "same_experiment.py",
    "same_experiment.yaml",
    "same_experiment.json",
    "with_class.py",
]
OVERRIDES = [
    "a.b=1",
    "lr=0.1",
    "eps=1e-3",
    "flags=true",
    "off=False",
    "nothing=None",
    "lowercase_none=none",
    "c=[1,2]",
    "d=(1,2)",
    "e=x,y",
    "nested=[(1,2),[a,b],c]",
    "single=(1)",
    "empty_list=[]",
    "empty_tuple=()",
    "empty=",
    "trailing=1,",
    "quoted='abc'",
    'dq="1"',
    "spaced=[1, 2, 3]",
    "path=data/coco",
    "url=http://x.org/a=b",
    "neg=-3",
]


def _mmengine_parse(mmengine, options: list[str]) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cfg-options", nargs="+", action=mmengine.config.DictAction)
    return parser.parse_args(["--cfg-options", *options]).cfg_options


@pytest.mark.parametrize("name", FIXTURES)
def test_fromfile_equals_mmengine(mmengine, name):
    ours = Config.fromfile(DATA / name).to_dict()
    assert ours == mmengine.config.Config.fromfile(str(DATA / name)).to_dict()


def test_fixture_chain_exercises_inheritance():
    """Guard the fixtures: the parity test above covers merging, _delete_, list replacement and base refs."""
    cfg = Config.fromfile(DATA / "experiment_child.yaml")
    assert cfg.model.backbone == dict(type="ResNet", depth=152, out_indices=(0, 1, 2, 3), frozen_stages=-1)
    assert cfg.model.neck == dict(type="PAFPN", in_channels=[256, 512], out_channels=128)  # _delete_: no num_outs
    assert cfg.model.head.anchor == dict(scales=[4, 8], ratios=[0.5, 1.0, 2.0])
    assert cfg.param_scheduler == [dict(type="CosineAnnealingLR", T_max=12, by_epoch=True)]
    assert cfg.train_pipeline == [dict(type="LoadImage")]
    assert (cfg.max_epochs, cfg.depth_from_base, cfg.train_cfg.max_epochs) == (12, 50, 24)
    assert cfg.work_dir == "./work_dirs/base_runtime" and cfg.widths == [32, 64]
    assert cfg.scheduler_copy == cfg.param_scheduler
    assert "itertools" not in cfg and "_double" not in cfg and "_base_" not in cfg


def test_reads_yaml_dumped_by_mmengine_with_tuples(mmengine, tmp_path):
    values = dict(scale=(1333, 800), pipeline=[dict(type="Resize", sizes=[(1, 2), (3, 4)])])
    mmengine.config.Config(values).dump(str(tmp_path / "dumped.yaml"))
    assert "!!python/tuple" in (tmp_path / "dumped.yaml").read_text()
    ours = Config.fromfile(tmp_path / "dumped.yaml").to_dict()
    assert ours == mmengine.config.Config.fromfile(str(tmp_path / "dumped.yaml")).to_dict() == values
    assert isinstance(ours["pipeline"][0]["sizes"][1], tuple)


def test_parse_cfg_options_equals_mmengine_dict_action(mmengine):
    ours = parse_cfg_options(OVERRIDES)
    reference = _mmengine_parse(mmengine, OVERRIDES)
    assert ours == reference
    assert [type(v) for v in ours.values()] == [type(v) for v in reference.values()]
    assert ours["lowercase_none"] == "none" and ours["nothing"] is None  # loss reduction='none' stays a string


@pytest.mark.parametrize(
    "options",
    [
        {"optim_wrapper.optimizer.lr": 0.1, "optim_wrapper.optimizer.type": "Adam"},
        {"model.backbone.depth": 18, "model.new.key": [1, 2]},  # creates missing dicts
        {"train_pipeline.1.scale": (640, 640), "train_pipeline.0": dict(type="LoadImageFromFile")},  # list indices
        {"model.neck": dict(_delete_=True, type="Identity")},
        {"model.neck": dict(out_channels=64)},  # a dict value merges
        {"param_scheduler": [dict(type="ConstantLR")]},
        {"log_level": "DEBUG", "brand_new": None},
    ],
)
def test_merge_from_dict_equals_mmengine(mmengine, options):
    ours = Config.fromfile(DATA / "experiment.py")
    reference = mmengine.config.Config.fromfile(str(DATA / "experiment.py"))
    ours.merge_from_dict(options)
    reference.merge_from_dict(options)
    assert ours.to_dict() == reference.to_dict()


def test_fromfile_cfg_options_from_parsed_strings_equal_mmengine(mmengine):
    strings = ["optim_wrapper.optimizer.lr=0.5", "train_cfg.max_epochs=3", "model.head.anchor.scales=[2,4]"]
    ours = Config.fromfile(DATA / "experiment.py", cfg_options=parse_cfg_options(strings))
    reference = mmengine.config.Config.fromfile(str(DATA / "experiment.py"))
    reference.merge_from_dict(_mmengine_parse(mmengine, strings))
    assert ours.to_dict() == reference.to_dict()
    assert ours.optim_wrapper.optimizer.lr == 0.5 and ours.model.head.anchor.scales == [2, 4]


def test_child_dict_over_base_non_dict_is_refused_as_mmengine(mmengine, tmp_path):
    (tmp_path / "base.yaml").write_text("clip_grad: null\n")
    (tmp_path / "child.py").write_text("_base_ = 'base.yaml'\nclip_grad = dict(max_norm=1)\n")
    with pytest.raises(TypeError, match="clip_grad"):
        mmengine.config.Config.fromfile(str(tmp_path / "child.py"))
    with pytest.raises(ConfigError, match="cannot merge a dict into 'clip_grad'"):
        Config.fromfile(tmp_path / "child.py")
