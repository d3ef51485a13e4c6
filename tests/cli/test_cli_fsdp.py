"""``mm2lightning train --launcher pytorch`` under torchrun with FlexibleRunner's ``FSDPStrategy`` config."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from mm2lightning.runner.checkpoint import convert_checkpoint

HERE = Path(__file__).resolve().parent


def torchrun_train(config: str, work_dir: Path, *options: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_", "MASTER_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
         "-m", "mm2lightning.cli", "train", str(HERE / "configs" / config), "--launcher", "pytorch",
         "--work-dir", str(work_dir), *options],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_fsdp_config_under_torchrun_equals_ddp_resumes_and_loads_full_checkpoints(tmp_path):
    torchrun_train("toy_fsdp.py", tmp_path / "fsdp")
    torchrun_train("toy.py", tmp_path / "ddp")
    # sharded checkpoint folders, rotated as MMEngine's max_keep_ckpts=2 rotates files
    assert sorted(p.name for p in (tmp_path / "fsdp").glob("epoch_*")) == ["epoch_2.ckpt", "epoch_3.ckpt"]
    assert (tmp_path / "fsdp" / "epoch_3.ckpt" / ".metadata").is_file()
    last = (tmp_path / "fsdp" / "last_checkpoint").read_text().strip()
    assert Path(last).name == "epoch_3.ckpt"
    sharded = torch.load(convert_checkpoint(last, tmp_path / "fsdp.pth"), weights_only=True)["state_dict"]
    whole = torch.load(convert_checkpoint(tmp_path / "ddp" / "epoch_3.ckpt", tmp_path / "ddp.pth"),
                       weights_only=True)["state_dict"]
    assert sharded.keys() == whole.keys()
    for key, value in whole.items():
        assert (sharded[key] - value).abs().max().item() <= 1e-6, key

    # resumed from the sharded epoch_2 in fresh processes: the uninterrupted run's epoch_3, bit for bit; saved
    # with state_dict_cfg='full' (MMEngine's FULL_STATE_DICT): one file gathered on rank 0
    torchrun_train("toy_fsdp.py", tmp_path / "resumed", "--resume", str(tmp_path / "fsdp" / "epoch_2.ckpt"),
                   "--cfg-options", "strategy.state_dict_cfg=full")
    assert (tmp_path / "resumed" / "epoch_3.ckpt").is_file()
    resumed = torch.load(tmp_path / "resumed" / "epoch_3.ckpt", weights_only=True)["state_dict"]
    resumed = {key.removeprefix("model."): value for key, value in resumed.items()}
    for key, value in sharded.items():
        assert torch.equal(resumed[key], value), key

    # load_from a full (DDP) checkpoint into the sharded model: one more epoch equals the same under DDP
    options = ("--cfg-options", f"load_from={tmp_path / 'ddp' / 'epoch_3.ckpt'}", "train_cfg.max_epochs=1")
    torchrun_train("toy_fsdp.py", tmp_path / "loaded_fsdp", *options)
    torchrun_train("toy.py", tmp_path / "loaded_ddp", *options)
    loaded = [torch.load(convert_checkpoint(tmp_path / f"loaded_{kind}" / "epoch_1.ckpt", tmp_path / f"{kind}1.pth"),
                         weights_only=True)["state_dict"] for kind in ("fsdp", "ddp")]
    for key, value in loaded[1].items():
        assert not torch.equal(value, whole[key])  # trained on from the loaded weights
        assert (loaded[0][key] - value).abs().max().item() <= 1e-6, key
