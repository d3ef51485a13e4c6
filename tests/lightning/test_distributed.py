"""Distributed training with 2 gloo processes on CPU: Lightning's DDP, SeparateDDPStrategy, model wrappers, 2 nodes.

Each case runs ``ddp_worker.py`` (Lightning re-launches it for rank 1); every rank saves the gradients it
saw at each optimizer step (after sync) and inside accumulation windows (before sync), and its parameters.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from mm2lightning import MMLightningModule
from mm2lightning.model import BaseModel

from ddp_worker import BATCH, GAN_ACC_OPTIM, NET_EMA, NET_OPTIM
from gan import make_gan_class, ring_dataset
from models import Net, net_data

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_worker(case: str, out: Path, *extra: str, env: dict | None = None, worker: Path = WORKER) -> None:
    """``python WORKER CASE OUT EXTRA...`` as rank 0 (Lightning launches rank 1 from it)."""
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), **(env or {})}
    result = subprocess.run([sys.executable, str(worker), case, str(out), *extra], env=env, timeout=180,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def run_two_nodes(case: str, out: Path, worker: Path = WORKER) -> None:
    """The worker as 2 nodes of 1 process each, over loopback."""
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "NUM_NODES": "2", "DEVICES": "1"}
    procs = [
        subprocess.Popen([sys.executable, str(worker), case, str(out)],
                         env={**os.environ, **env, "NODE_RANK": str(node)},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for node in (0, 1)
    ]
    assert [p.wait(timeout=180) for p in procs] == [0, 0]


def load(out: Path, name: str) -> list[dict]:
    return [torch.load(out / f"{name}_rank{r}.pt", weights_only=False) for r in (0, 1)]


def assert_sync_pattern(ranks: list[dict], windows_local: bool = True) -> None:
    """Per iteration: equal gradients on sync steps, different ones inside no-sync windows."""
    r0, r1 = ranks
    assert r0["error"] is None and r1["error"] is None
    assert len(r0["grads"]) == len(r1["grads"]) > 0
    kinds = set()
    for (step0, kind0, g0), (step1, kind1, g1) in zip(r0["grads"], r1["grads"]):
        assert (step0, kind0) == (step1, kind1)
        kinds.add(kind0)
        if kind0 == "synced":
            assert torch.equal(g0, g1), f"step {step0}: synced gradients differ across ranks"
        elif windows_local:
            assert (g0 - g1).abs().max() > 1e-4, f"step {step0}: gradients were synced inside an accumulation window"
    assert kinds == {"synced", "local"}
    for key, value in r0["params"].items():
        assert torch.equal(value, r1["params"][key]), key


def concatenated_batches(n: int, epochs_batches: int) -> list[list[int]]:
    """Global batch i = rank 0's batch i then rank 1's (rank r holds samples r, r + 2, ...)."""
    return [[r + 2 * j for r in (0, 1) for j in range(i * BATCH, (i + 1) * BATCH)] for i in range(epochs_batches)]


def single_process(module: MMLightningModule, data: list) -> MMLightningModule:
    loader = DataLoader(data, batch_sampler=concatenated_batches(len(data), len(data) // (2 * BATCH)))
    L.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False).fit(module, loader)
    return module


def assert_equals_reference(params: dict, reference: MMLightningModule) -> None:
    for key, value in reference.model.state_dict().items():
        assert (params[key] - value).abs().max().item() <= 1e-6, key


def test_whole_model_ddp_with_accumulation_equals_one_process_on_the_concatenated_batch(tmp_path):
    """Also with hooks: the runner view's rank/world_size/distributed, master_only once, EMA as one process."""
    run_worker("net_ddp", tmp_path)
    ranks = load(tmp_path, "net_ddp")
    assert_sync_pattern(ranks)
    assert ranks[0]["global_step"] == 10
    reference = single_process(MMLightningModule(Net(), optim_wrapper=NET_OPTIM, hooks=[NET_EMA]), net_data())
    assert_equals_reference(ranks[0]["params"], reference)
    assert [r["view"] for r in ranks] == [(0, 2, True), (1, 2, True)]
    assert (tmp_path / "master_only.txt").read_text() == "rank 0\n"
    ema = reference.hook_driver.hooks.at("after_train_iter")[0].ema_model.state_dict()
    for rank in ranks:
        for key, value in ema.items():
            assert (rank["ema"][key].double() - value.double()).abs().max().item() <= 1e-6, key


def test_separate_ddp_gan_sync_reference_checkpoint_and_resume(tmp_path):
    run_worker("gan_separate", tmp_path)
    ranks = load(tmp_path, "gan_separate")
    assert_sync_pattern(ranks)
    assert ranks[0]["children_during_fit"] == {  # one DDP per trainable child, DDP kwargs passed through
        "data_preprocessor": ("BaseDataPreprocessor", None), "generator": ("_ChildDDP", True),
        "discriminator": ("_ChildDDP", True),
    }
    assert ranks[0]["child_types"] == {"data_preprocessor": "BaseDataPreprocessor", "generator": "Sequential",
                                       "discriminator": "Sequential"}  # plain again after fit
    assert [r["predicted"] for r in ranks] == [16, 16]  # predict after fit (no distributed sampler here)
    reference = MMLightningModule(make_gan_class(BaseModel)(noise_seeds=[1, 2]), optim_wrapper=GAN_ACC_OPTIM)
    assert_equals_reference(ranks[0]["params"], single_process(reference, ring_dataset(48)))

    checkpoint = torch.load(tmp_path / "ckpt" / "epoch=0.ckpt", weights_only=True)
    assert not [k for k in checkpoint["state_dict"] if "module." in k]
    fresh = make_gan_class(BaseModel)()
    fresh.load_state_dict({k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()})

    run_worker("gan_separate", tmp_path, "resume")
    resumed = load(tmp_path, "gan_separate_resumed")
    assert resumed[0]["error"] is None and resumed[0]["global_step"] == 12
    for key, value in ranks[0]["params"].items():
        assert torch.equal(resumed[0]["params"][key], value), key
        assert torch.equal(resumed[1]["params"][key], value), key


@pytest.mark.parametrize("case", ["custom_separate", "custom_whole"])
def test_users_wrapper_subclass_runs(tmp_path, case):
    """The migration guide's CustomDistributedDataParallel: two updates per batch, augmentation on then off."""
    run_worker(case, tmp_path)
    for rank in load(tmp_path, case):
        assert rank["error"] is None
        assert rank["iterations"] == 4 and rank["inner_count"] == 8
        assert rank["flags"] == [True, False] * 4


def test_gan_under_whole_model_ddp_with_find_unused_parameters(tmp_path):
    """Works, and equals one process. One DDP holds every parameter, so the generator's synced backward also
    averages the discriminator's half-accumulated gradients: more communication, the same numbers (averaging is
    linear). SeparateDDPStrategy keeps each child's window local (test above)."""
    run_worker("gan_ddp_find_unused", tmp_path)
    ranks = load(tmp_path, "gan_ddp_find_unused")
    assert_sync_pattern(ranks, windows_local=False)
    reference = MMLightningModule(make_gan_class(BaseModel)(noise_seeds=[1, 2]), optim_wrapper=GAN_ACC_OPTIM)
    assert_equals_reference(ranks[0]["params"], single_process(reference, ring_dataset(48)))


def test_gan_under_whole_model_ddp_names_the_two_fixes(tmp_path):
    run_worker("gan_ddp_unused", tmp_path)
    error = torch.load(tmp_path / "gan_ddp_unused_rank0.pt", weights_only=False)["error"]
    assert "strategy='ddp_separate'" in error and "find_unused_parameters=True" in error


def test_two_nodes_over_loopback(tmp_path):
    run_two_nodes("net_ddp", tmp_path)
    ranks = load(tmp_path, "net_ddp")
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert_sync_pattern(ranks)
