"""The mm2lightning command: the same experiment from .py, .yaml and .json configs, test, convert, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch  # noqa: F401 - imported now, its log handler writes to pytest's capture, not to capsys'
import pytest
import torch

from mm2lightning.cli import main
from mm2lightning.config import Config

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "configs"
COMMAND = Path(sys.executable).with_name("mm2lightning")  # the console script installed with the package


@pytest.fixture(autouse=True)
def user_module_on_path(monkeypatch):
    """custom_imports=dict(imports=['cli_toy']) finds the user's module, as on PYTHONPATH."""
    monkeypatch.syspath_prepend(str(HERE))


def run_command(*args: str) -> subprocess.CompletedProcess:
    assert COMMAND.is_file(), f"the console script is not installed at {COMMAND} (pip install -e .)"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([str(COMMAND), *args], capture_output=True, text=True, timeout=300, env=env)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_the_same_experiment_as_py_yaml_and_json_gives_the_same_result(tmp_path):
    results = {}
    for suffix in ("py", "yaml", "json"):
        work_dir = tmp_path / suffix
        done = run_command("train", str(CONFIGS / f"toy.{suffix}"), "--work-dir", str(work_dir),
                           "--cfg-options", "train_cfg.max_epochs=2", "optim_wrapper.optimizer.lr=0.02")
        assert done.returncode == 0, done.stderr[-3000:]
        # max_keep_ckpts=2 from the YAML base, max_epochs=2 from the command line
        assert sorted(p.name for p in work_dir.glob("epoch_*.ckpt")) == ["epoch_1.ckpt", "epoch_2.ckpt"]
        checkpoint = torch.load(work_dir / "epoch_2.ckpt", map_location="cpu", weights_only=True)
        assert checkpoint["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.02)  # override applied
        assert checkpoint["state_dict"]["model.body.0.weight"].shape == (6, 2)  # the child's model.hidden
        results[suffix] = checkpoint["state_dict"]
        saved = Config.fromfile(work_dir / f"toy.{suffix}")  # the config as run, saved in work_dir as MMEngine does
        assert saved.train_cfg.max_epochs == 2 and saved.optim_wrapper.optimizer.lr == 0.02
        assert saved.work_dir == str(work_dir)
    for name, value in results["py"].items():
        assert torch.equal(value, results["yaml"][name]) and torch.equal(value, results["json"][name]), name


def test_train_resume_test_and_convert_in_process(tmp_path, capsys):
    work_dir = tmp_path / "run"
    config = str(CONFIGS / "toy.yaml")
    assert main(["train", config, "--work-dir", str(work_dir), "--cfg-options", "train_cfg.max_epochs=1"]) == 0
    first = (work_dir / "epoch_1.ckpt").stat().st_mtime_ns
    keep_all = "default_hooks.checkpoint.max_keep_ckpts=-1"
    assert main(["train", config, "--work-dir", str(work_dir), "--resume", "--cfg-options", keep_all]) == 0
    assert (work_dir / "epoch_1.ckpt").stat().st_mtime_ns == first  # resumed after epoch 1: not written again
    last = work_dir / "epoch_3.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 15  # 1 + 2 more epochs of 5 iterations

    capsys.readouterr()
    assert main(["test", config, str(last), "--work-dir", str(tmp_path / "test")]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("mse=") and float(line[4:]) > 0

    out = tmp_path / "mmengine" / "epoch_3.pth"
    assert main(["convert", str(last), str(out)]) == 0
    converted = torch.load(out, weights_only=True)
    assert converted["meta"]["epoch"] == 3 and converted["meta"]["iter"] == 15
    for name, value in weights(last).items():
        assert torch.equal(converted["state_dict"][name.removeprefix("model.")], value)


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "toy.yaml", "--cfg-options", "model.type=NoSuchModel"], "NoSuchModel"),
        (["train", "toy.yaml", "--cfg-options", "train_dataloader.sampler.type=NoSuchSampler"], "NoSuchSampler"),
        (["train", "no_model.yaml"], "no 'model'"),
        (["train", "toy.yaml", "--cfg-options", "train_cfg.max_epochs=None"], "max_epochs must be a positive integer"),
        (["train", "toy.txt"], ".txt"),
        (["train", "missing.py"], "missing.py"),
        (["train", "toy.yaml", "--cfg-options", "optim_wrapper.optimizer.lr0.1"], "KEY=VALUE"),
        (["train", "toy.yaml", "--cfg-options", "=3"], "KEY=VALUE"),
        (["test", "toy.yaml", "missing.ckpt"], "missing.ckpt"),
        (["convert", "missing.ckpt", "out.pth"], "missing.ckpt"),
    ],
    ids=["unknown-model", "unknown-sampler", "missing-model", "bad-value", "suffix", "no-file", "no-equals",
         "empty-key", "no-checkpoint", "convert-no-file"],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, message):
    args = [str(CONFIGS / a) if a.endswith((".yaml", ".txt", ".py", ".ckpt")) else a for a in args]
    assert main([*args[:2], *args[2:], *(["--work-dir", str(tmp_path)] if args[0] != "convert" else [])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"mm2lightning {args[0]}: error: ") and message in err, err
    assert not list(tmp_path.glob("*.ckpt"))


def test_console_script_reports_bad_input_with_exit_status_2(tmp_path):
    done = run_command("train", str(CONFIGS / "toy.yaml"), "--work-dir", str(tmp_path), "--cfg-options", "lr")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]  # after Lightning's own notices, if any
    assert last.startswith("mm2lightning train: error: ConfigError: ") and "KEY=VALUE" in last


def test_resume_from_a_weights_only_file_exits_2(tmp_path, capsys):
    weights_file = tmp_path / "weights.pth"
    torch.save({"body.0.weight": torch.zeros(6, 2)}, weights_file)
    args = ["train", str(CONFIGS / "toy.yaml"), "--work-dir", str(tmp_path / "run"), "--resume", str(weights_file)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "CheckpointError" in err and "holds only weights" in err


def test_an_error_in_user_code_while_building_names_its_place(tmp_path, capsys):
    args = ["train", str(CONFIGS / "toy.yaml"), "--work-dir", str(tmp_path), "--cfg-options", "model.type=CliBrokenModel"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err]
    assert "TypeError: " in err and f"(raised at {HERE / 'cli_toy.py'}:" in err
