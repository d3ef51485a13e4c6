"""The toolboxes' tools/train.py and tools/test.py flags on the mm2lightning command, as the toolboxes apply them."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import lightning.pytorch  # noqa: F401 - imported now, its log handler writes to pytest's capture, not to capsys'
import pytest
import torch

from mm2lightning.cli import main
from mm2lightning.config import Config

HERE = Path(__file__).resolve().parent
CONFIG = str(HERE / "configs" / "toy.yaml")
ONE_EPOCH = ["--cfg-options", "train_cfg.max_epochs=1"]


@pytest.fixture(autouse=True)
def user_module_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def saved_config(work_dir: Path) -> Config:
    """The config as run, which the Runner saves in work_dir (as MMEngine does)."""
    return Config.fromfile(work_dir / "toy.yaml")


def test_amp_makes_the_optim_wrapper_an_amp_one_with_dynamic_loss_scale(tmp_path):
    assert main(["train", CONFIG, "--work-dir", str(tmp_path), "--amp", *ONE_EPOCH]) == 0
    wrapper = saved_config(tmp_path).optim_wrapper
    assert wrapper.type == "AmpOptimWrapper" and wrapper.loss_scale == "dynamic"  # as mmdet's and mmpretrain's
    assert wrapper.accumulative_counts == 2 and wrapper.optimizer.type == "Adam"  # the rest as configured


def test_amp_refuses_a_custom_wrapper_type(tmp_path, capsys):
    args = ["train", CONFIG, "--work-dir", str(tmp_path), "--amp", "--cfg-options", "optim_wrapper.type=MyWrapper"]
    assert main(args) == 2
    assert "--amp: optim_wrapper type 'MyWrapper'" in capsys.readouterr().err


def test_auto_scale_lr_enables_the_configs_scaling(tmp_path, capsys):
    base = ["train", CONFIG, "--work-dir", str(tmp_path), "--auto-scale-lr", *ONE_EPOCH]
    assert main(base) == 2  # the config has no auto_scale_lr, as the toolboxes refuse
    assert 'Can not find "auto_scale_lr"' in capsys.readouterr().err
    assert main([*base, "auto_scale_lr.base_batch_size=8"]) == 0  # batch 4 on 1 device: lr x 0.5
    checkpoint = torch.load(tmp_path / "epoch_1.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["initial_lr"] == pytest.approx(0.005)
    assert saved_config(tmp_path).auto_scale_lr == dict(base_batch_size=8, enable=True)


def test_no_validate_pin_memory_and_persistent_workers(tmp_path):
    flags = ["--no-validate", "--no-pin-memory", "--no-persistent-workers"]
    assert main(["train", CONFIG, "--work-dir", str(tmp_path), *flags, *ONE_EPOCH]) == 0
    cfg = saved_config(tmp_path)
    assert cfg.val_cfg is None and cfg.val_dataloader is None and cfg.val_evaluator is None
    assert cfg.train_dataloader.pin_memory is False and cfg.train_dataloader.persistent_workers is False
    assert cfg.test_dataloader.pin_memory is False
    assert not list(tmp_path.glob("*/metrics.csv")) or "val/mse" not in next(tmp_path.glob("*/metrics.csv")).read_text()


def test_local_rank_sets_the_variable_when_the_launcher_did_not(tmp_path, monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert main(["train", CONFIG, "--work-dir", str(tmp_path), "--local_rank", "0", *ONE_EPOCH]) == 0
    assert os.environ["LOCAL_RANK"] == "0"
    monkeypatch.setenv("LOCAL_RANK", "0")  # torchrun's wins, as in tools/train.py
    assert main(["train", CONFIG, "--work-dir", str(tmp_path / "b"), "--local-rank", "3", *ONE_EPOCH]) == 0
    assert os.environ["LOCAL_RANK"] == "0"


def test_out_dumps_the_predictions_as_mmengines_dump_results(tmp_path):
    assert main(["train", CONFIG, "--work-dir", str(tmp_path), *ONE_EPOCH]) == 0
    out = tmp_path / "results.pkl"
    assert main(["test", CONFIG, str(tmp_path / "epoch_1.ckpt"), "--work-dir", str(tmp_path), "--out", str(out)]) == 0
    with open(out, "rb") as f:
        dumped = pickle.load(f)
    # the model's test_step outputs for the 8 test samples, moved to the CPU, in order
    from cli_toy import CliToyModel, CliToySet

    model = CliToyModel(hidden=6)
    state = torch.load(tmp_path / "epoch_1.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    data = CliToySet(size=8, seed=2)
    expected = [model.test_step((data.x[i : i + 4], data.y[i : i + 4]))[0] for i in (0, 4)]
    assert len(dumped) == 2 and all(torch.allclose(a, b) for a, b in zip(dumped, expected))


def test_out_must_be_a_pickle_file(tmp_path, capsys):
    assert main(["train", CONFIG, "--work-dir", str(tmp_path), *ONE_EPOCH]) == 0
    assert main(["test", CONFIG, str(tmp_path / "epoch_1.ckpt"), "--work-dir", str(tmp_path), "--out", "x.json"]) == 2
    assert "must be a pkl file" in capsys.readouterr().err


def test_test_amp_evaluates_under_autocast(tmp_path, capsys):
    assert main(["train", CONFIG, "--work-dir", str(tmp_path), *ONE_EPOCH]) == 0
    checkpoint = str(tmp_path / "epoch_1.ckpt")
    results = {}
    for flags in ([], ["--amp"]):
        capsys.readouterr()
        assert main(["test", CONFIG, checkpoint, "--work-dir", str(tmp_path / "test"), *flags]) == 0
        results[bool(flags)] = float(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("mse="))
    assert saved_config(tmp_path / "test").test_cfg.fp16 is True  # as mmpretrain's tools/test.py --amp
    assert results[True] != results[False] and results[True] == pytest.approx(results[False], rel=0.05)


@pytest.mark.parametrize("suffix", [".pkl", ".json", ".yaml"])
def test_out_item_metrics_dumps_the_metrics_as_mmengine_dump(tmp_path, capsys, suffix):
    """mmpretrain's --out-item metrics: the printed metrics to --out, in the file mmengine.dump writes."""
    mmengine = pytest.importorskip("mmengine", reason="the dumped file is compared with mmengine.dump's")
    assert main(["train", CONFIG, "--work-dir", str(tmp_path), *ONE_EPOCH]) == 0
    out = tmp_path / f"metrics{suffix}"
    capsys.readouterr()
    args = ["test", CONFIG, str(tmp_path / "epoch_1.ckpt"), "--work-dir", str(tmp_path), "--out", str(out)]
    assert main([*args, "--out-item", "metrics"]) == 0
    mse = float(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("mse="))
    loaded = mmengine.load(str(out))
    assert list(loaded) == ["mse"] and loaded["mse"] == pytest.approx(mse, rel=1e-5)
    reference = tmp_path / f"reference{suffix}"
    mmengine.dump(loaded, str(reference))
    assert out.read_bytes() == reference.read_bytes()
    assert main([*args[:-1], str(tmp_path / "pred.pkl"), "--out-item", "pred"]) == 0  # 'pred': the predictions
    with open(tmp_path / "pred.pkl", "rb") as f:
        assert len(pickle.load(f)) == 2  # two test batches' outputs, as --out alone


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--out-item", "metrics"], "Please use `--out` argument"),  # mmpretrain's ValueError
        (["--out", "m.txt", "--out-item", "metrics"], "unsupported format '.txt'"),
        (["--show-dir", "shown"], "VisualizationHook must be included in default_hooks"),  # the toolboxes' error
        (["--show"], "VisualizationHook must be included in default_hooks"),
        (["--interval", "2"], "--interval: it only acts with --show or --show-dir"),
    ],
)
def test_output_flags_that_cannot_act_exit_2_before_testing(tmp_path, capsys, flags, message):
    assert main(["train", CONFIG, "--work-dir", str(tmp_path), *ONE_EPOCH]) == 0
    capsys.readouterr()
    assert main(["test", CONFIG, str(tmp_path / "epoch_1.ckpt"), "--work-dir", str(tmp_path / "t"), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "t").exists() and not (tmp_path / "m.txt").exists()  # nothing ran, nothing written


def test_show_flags_refuse_a_hook_they_cannot_turn_on(tmp_path, capsys):
    assert main(["train", CONFIG, "--work-dir", str(tmp_path), *ONE_EPOCH]) == 0
    hook = "default_hooks.visualization.type=EMAHook"  # a hook with neither enable nor draw
    assert main(["test", CONFIG, str(tmp_path / "epoch_1.ckpt"), "--show", "--cfg-options", hook]) == 2
    assert "EMAHook, which takes neither 'enable' nor 'draw'" in capsys.readouterr().err
