"""``--launcher mpi``: processes started by Open MPI's ``mpirun`` (its ``OMPI_COMM_WORLD_*`` variables, as MMEngine's
``init_dist('mpi')`` reads them) train as the same processes started by torchrun."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mm2lightning.lightning.mpi_environment import OpenMPIEnvironment
from mm2lightning.lightning.runner_args import launcher_trainer_args

HERE = Path(__file__).resolve().parent
CONFIG = str(HERE / "configs" / "toy.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_", "MASTER_", "OMPI_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    return env


def test_mpi_launched_processes_train_as_torchrun_launched_ones(tmp_path):
    train = [sys.executable, "-m", "mm2lightning.cli", "train", CONFIG, "--cfg-options", "train_cfg.max_epochs=2"]
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
         *train[1:], "--launcher", "pytorch", "--work-dir", str(tmp_path / "torchrun")],
        capture_output=True, text=True, timeout=300, env=clean_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # what mpirun -n 2 gives each process (MASTER_PORT left to MMEngine's default would collide between tests)
    port = str(free_port())
    processes = [
        subprocess.Popen(
            [*train, "--launcher", "mpi", "--work-dir", str(tmp_path / "mpi")],
            env=dict(clean_env(), OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_RANK=str(rank),
                     OMPI_COMM_WORLD_LOCAL_RANK=str(rank), OMPI_COMM_WORLD_LOCAL_SIZE="2",
                     MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
    mpi = torch.load(tmp_path / "mpi" / "epoch_2.ckpt", weights_only=True)
    reference = torch.load(tmp_path / "torchrun" / "epoch_2.ckpt", weights_only=True)
    assert mpi["global_step"] == reference["global_step"]
    for key, value in reference["state_dict"].items():
        torch.testing.assert_close(mpi["state_dict"][key], value, rtol=0, atol=1e-6, msg=key)


def test_mpi_variables_map_to_devices_nodes_and_mmengines_environment(monkeypatch):
    for name in ("MASTER_PORT", "WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in dict(OMPI_COMM_WORLD_SIZE="8", OMPI_COMM_WORLD_RANK="5", OMPI_COMM_WORLD_LOCAL_RANK="1",
                            OMPI_COMM_WORLD_LOCAL_SIZE="4", MASTER_ADDR="10.0.0.1").items():  # fmt: skip
        monkeypatch.setenv(name, value)
    world = launcher_trainer_args("mpi")
    assert (world["devices"], world["num_nodes"]) == (4, 2)
    (environment,) = world["plugins"]
    assert isinstance(environment, OpenMPIEnvironment) and OpenMPIEnvironment.detect()
    assert (environment.world_size(), environment.global_rank(), environment.local_rank(), environment.node_rank()) == (
        8, 5, 1, 1)
    assert (environment.main_address, environment.main_port) == ("10.0.0.1", 29500)
    # as MMEngine's _init_dist_mpi: the default port, WORLD_SIZE and RANK set for torch.distributed and user code
    assert (os.environ["MASTER_PORT"], os.environ["WORLD_SIZE"], os.environ["RANK"]) == ("29500", "8", "5")


def test_mpi_launcher_outside_mpirun_names_what_is_missing(monkeypatch):
    for name in ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MASTER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2")
    with pytest.raises(RuntimeError, match="Open MPI's mpirun, but OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_RANK, "
                                           "OMPI_COMM_WORLD_LOCAL_RANK is not set"):  # fmt: skip
        launcher_trainer_args("mpi")
    for name, value in dict(OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_RANK="0", OMPI_COMM_WORLD_LOCAL_RANK="0").items():
        monkeypatch.setenv(name, value)
    with pytest.raises(KeyError, match="The environment variable MASTER_ADDR is not set"):  # MMEngine's error
        launcher_trainer_args("mpi")
