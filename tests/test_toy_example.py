"""The toy example (lightning.Trainer + MMLightningModule) equals MMEngine's Runner on the migration guide's toy model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "toy"
sys.path.insert(0, str(EXAMPLE))

import train as toy  # noqa: E402


@pytest.mark.parametrize(
    "options",
    [dict(), dict(accumulative_counts=4), dict(clip_grad=0.05), dict(scheduler=True)],
    ids=["plain", "accumulate4", "clip", "warmup+multistep"],
)
def test_matches_mmengine_runner(mmengine, tmp_path, options):
    from mmengine_reference import run_toy

    ref_model, ref_history = run_toy(
        tmp_path,
        toy.optim_wrapper_cfg(options.get("accumulative_counts", 1), options.get("clip_grad")),
        toy.WARMUP_THEN_STEPS if options.get("scheduler") else None,
    )
    module, history = toy.train(**options)
    assert len(history) == len(ref_history) == 125
    for ours, ref in zip(history, ref_history):
        assert ours.keys() == ref.keys()
        assert all(abs(ours[k] - ref[k]) <= 1e-6 for k in ours)
    for p, q in zip(module.model.parameters(), ref_model.parameters()):
        assert (p - q).abs().max().item() <= 1e-6


def test_plain_run_ends_at_mmengine_reference_numbers():
    module, history = toy.train()
    model = module.model
    assert model.linear.weight.item() == pytest.approx(0.23316538333892822, abs=1e-6)
    assert model.linear.bias.item() == pytest.approx(0.7770956158638, abs=1e-6)


@pytest.mark.parametrize("amp", ["bfloat16", "float16"])
def test_amp_options_train(amp):
    _, history = toy.train(amp=amp)
    assert history[-1]["loss"] < 0.1 * history[0]["loss"]


def test_script_runs_and_prints_the_final_loss():
    out = subprocess.run(
        [sys.executable, str(EXAMPLE / "train.py"), "--accumulative-counts", "3", "--scheduler"],
        check=True, capture_output=True, text=True,
    ).stdout
    assert "iterations: 125" in out and "final loss: loss=" in out


def test_config_through_the_cli_ends_at_mmengine_reference_numbers(tmp_path):
    import os

    command = Path(sys.executable).with_name("mm2lightning")
    env = dict(os.environ, PYTHONPATH=str(EXAMPLE))
    done = subprocess.run(
        [str(command), "train", str(EXAMPLE / "config.py"), "--work-dir", str(tmp_path),
         "--cfg-options", "trainer_cfg.enable_progress_bar=False"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    state = torch.load(tmp_path / "epoch_5.ckpt", weights_only=True)["state_dict"]
    assert state["model.linear.weight"].item() == pytest.approx(0.23316538333892822, abs=1e-6)
    assert state["model.linear.bias"].item() == pytest.approx(0.7770956158638, abs=1e-6)


def test_the_example_prints_no_warning_of_ours():
    """Run as a new user runs it: no warning from mm2lightning, the example, or about our module's hooks."""
    result = subprocess.run(
        [sys.executable, "-W", "always", str(EXAMPLE / "train.py"), "--epochs", "1"],
        capture_output=True, text=True, check=True, timeout=300,
    )
    import mm2lightning

    our_dirs = (str(Path(mm2lightning.__file__).parent) + "/", str(EXAMPLE) + "/")
    ours = [line for line in result.stderr.splitlines() if line.startswith(our_dirs) or "`validation_step`" in line]
    assert not ours, ours
    assert "iterations: 25" in result.stdout
