"""The Runner with a toolbox scope, in process: what hooks see, EMA, loops and scopes it refuses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from mm2lightning.config import Config
from mm2lightning.registry import ToolboxNotInstalledError
from mm2lightning.runner import Runner

pytest.importorskip("mmengine", reason="minitb is built on mmengine's registries")
HERE = Path(__file__).resolve().parent
CONFIG = HERE / "minitb" / ".mim" / "configs" / "mini" / "mini_cls.py"
sys.path.insert(0, str(HERE))
from minitb_data import write_minitb_data  # noqa: E402


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("MINITB_DATA", str(write_minitb_data(tmp_path / "data")))
    monkeypatch.syspath_prepend(str(HERE))
    config = Config.fromfile(CONFIG)
    config.work_dir = str(tmp_path / "work")
    config.train_cfg.max_epochs = 1
    config.trainer_cfg = dict(enable_progress_bar=False, enable_model_summary=False)
    return config


def test_toolbox_hooks_see_the_visualizer_and_the_hub(cfg):
    runner = Runner.from_cfg(cfg)
    assert type(runner.visualizer).__name__ == "Visualizer" and runner.visualizer.instance_name == runner.experiment_name
    runner.train()
    (hook,) = [h for h in runner.module.hook_driver.hooks if type(h).__name__ == "MiniShrinkHook"]
    assert hook.iters == 9 and runner.message_hub.get_info("minitb_iters") == 9


def test_mmengines_ema_hook_in_a_toolbox_config_is_ours_and_saves_the_averaged_weights(cfg):
    cfg.custom_hooks = [*cfg.custom_hooks, dict(type="EMAHook", momentum=0.1)]
    runner = Runner.from_cfg(cfg)
    runner.train()
    (ema,) = [h for h in runner.module.hook_driver.hooks if type(h).__name__ == "EMAHook"]
    assert type(ema).__module__ == "mm2lightning.hooks.ema_hook"
    checkpoint = torch.load(Path(cfg.work_dir) / "epoch_1.ckpt", weights_only=True)
    assert "ema_state_dict" in checkpoint


def test_a_custom_val_loop_runs_in_val(cfg):
    cfg.val_cfg = dict(type="MiniTwicePassValLoop", passes=3)  # any LOOPS type: its run() is called
    runner = Runner.from_cfg(cfg)
    assert type(runner.val_loop).__name__ == "MiniTwicePassValLoop" and runner.val_loop.runner is runner
    metrics = runner.val()
    assert metrics["passes"] == 3 and "mini/top1" in metrics
    assert runner.message_hub.get_scalar("val/mini/top1").current() == metrics["mini/top1"]


def test_an_unknown_loop_type_names_itself(cfg):
    cfg.test_cfg = dict(type="NoSuchLoop")
    with pytest.raises(KeyError, match="NoSuchLoop"):
        Runner.from_cfg(cfg).test()


def test_a_config_of_a_toolbox_that_is_not_installed_names_the_package(cfg):
    cfg.default_scope = "mmdet"
    with pytest.raises(ToolboxNotInstalledError, match="pip install mmdet"):
        Runner.from_cfg(cfg)


def test_evaluator_forms_of_a_toolbox_config(cfg, minitb_metric):
    """dict(type='Evaluator', metrics=[...], _scope_=...) as a pkg:: base writes it, and a toolbox metric object."""
    from mm2lightning.evaluator import build_evaluator

    evaluator = build_evaluator(dict(type="Evaluator", metrics=[dict(type="MiniAccuracy")], _scope_="minitb"))
    assert [type(m).__name__ for m in evaluator.metrics] == ["MiniAccuracy"]
    assert build_evaluator(minitb_metric).metrics == [minitb_metric]


@pytest.fixture
def minitb_metric(cfg):
    from minitb.evaluation import MiniAccuracy

    return MiniAccuracy()


def test_a_config_on_a_pkg_base_carries_the_scope_into_mmengines_own_settings(cfg, tmp_path):
    """``_base_ = 'minitb::...'`` adds ``_scope_`` to every dict with a ``type``, loops and built-in hooks
    included (as MMEngine's Config): the Runner takes them as MMEngine does."""
    user = tmp_path / "user.py"
    user.write_text("_base_ = ['minitb::mini/mini_cls_iter.py']\n")
    config = Config.fromfile(user)
    assert config.train_cfg._scope_ == config.val_cfg._scope_ == config.default_hooks.logger._scope_ == "minitb"
    config.work_dir = cfg.work_dir
    runner = Runner.from_cfg(config)
    assert runner.trainer.max_steps == 14 and runner.trainer.log_every_n_steps == 2
