"""Sharded checkpoint folders (torch's distributed checkpoint, as strategy='fsdp_mm' saves them), read whole and safely."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp

from mm2lightning.runner.checkpoint import CheckpointError, checkpoint_kind, load_checkpoint_file
from mm2lightning.runner.sharded_checkpoint import is_sharded_checkpoint, sharded_checkpoint_meta


def write_folder(path: Path, extra: dict | None = None) -> dict[str, torch.Tensor]:
    weights = {"model.layer.weight": torch.randn(3, 2), "model.layer.bias": torch.randn(3)}
    optimizer = {
        "state": {"model.layer.weight": {"momentum_buffer": torch.ones(3, 2)}, "model.layer.bias": {}},
        "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": ["model.layer.weight", "model.layer.bias"]}],
    }
    dcp.save({"state_dict": weights, "optimizer_0": optimizer, **(extra or {})}, checkpoint_id=path, no_dist=True)
    torch.save({"epoch": 1, "global_step": 6, "pytorch-lightning_version": "2.6", "loops": {}}, path / "meta.pt")
    return weights


def test_a_folder_reads_as_one_lightning_checkpoint(tmp_path):
    weights = write_folder(tmp_path / "epoch_1.ckpt")
    assert is_sharded_checkpoint(tmp_path / "epoch_1.ckpt") and not is_sharded_checkpoint(tmp_path)
    checkpoint = load_checkpoint_file(tmp_path / "epoch_1.ckpt")
    assert checkpoint_kind(checkpoint) == "lightning" and checkpoint["global_step"] == 6
    assert checkpoint["state_dict"].keys() == weights.keys()
    assert all(torch.equal(checkpoint["state_dict"][k], v) for k, v in weights.items())
    # the optimizer state keyed by index, as Optimizer.state_dict() has it
    optimizer = checkpoint["optimizer_states"][0]
    assert optimizer["param_groups"][0]["params"] == [0, 1] and optimizer["param_groups"][0]["lr"] == 0.1
    assert torch.equal(optimizer["state"][0]["momentum_buffer"], torch.ones(3, 2))
    meta, has_optimizer = sharded_checkpoint_meta(tmp_path / "epoch_1.ckpt")
    assert has_optimizer and meta["global_step"] == 6 and "state_dict" not in meta


class Payload:
    """Unpickling this would run a command."""

    def __reduce__(self):
        return os.system, ("touch pwned",)


def test_an_index_naming_other_globals_is_refused_without_running_it(tmp_path, monkeypatch):
    folder = tmp_path / "epoch_1.ckpt"
    write_folder(folder)
    (folder / ".metadata").write_bytes(pickle.dumps(Payload()))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=r"could run code.*(posix|os)\.system, which is not checkpoint metadata"):
        load_checkpoint_file(folder)
    assert not (tmp_path / "pwned").exists()


def test_a_non_tensor_item_is_read_weights_only(tmp_path, monkeypatch):
    folder = tmp_path / "epoch_1.ckpt"
    write_folder(folder, extra={"note": Payload()})  # DCP stores non-tensor items as torch.save bytes
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint_file(folder)
    assert not (tmp_path / "pwned").exists()


def test_a_directory_that_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="a directory, not a checkpoint"):
        load_checkpoint_file(tmp_path)
