"""MMEngine's ``launcher='mpi'``: processes started by Open MPI's ``mpirun``, as a Lightning cluster environment.

MMEngine's ``init_dist('mpi')`` reads Open MPI's variables (``OMPI_COMM_WORLD_SIZE``, ``..._RANK``,
``..._LOCAL_RANK``), takes the rendezvous from ``MASTER_ADDR`` (required) and ``MASTER_PORT`` (default 29500)
and sets ``WORLD_SIZE`` and ``RANK`` from them. :func:`mpi_trainer_args` does the same and gives the Trainer
an :class:`OpenMPIEnvironment` (Lightning's own ``MPIEnvironment`` needs ``mpi4py``; this one reads the
variables, as MMEngine).
"""

from __future__ import annotations

import os
from typing import Any

from lightning.fabric.plugins.environments import ClusterEnvironment

__all__ = ["OpenMPIEnvironment", "mpi_trainer_args"]

_WORLD = ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE")


class OpenMPIEnvironment(ClusterEnvironment):
    """The processes ``mpirun`` started: ranks from ``OMPI_COMM_WORLD_*``, rendezvous at ``MASTER_ADDR:MASTER_PORT``."""

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        return os.environ["MASTER_ADDR"]

    @property
    def main_port(self) -> int:
        return int(os.environ.get("MASTER_PORT", 29500))

    @staticmethod
    def detect() -> bool:
        return all(name in os.environ for name in _WORLD)

    def world_size(self) -> int:
        return int(os.environ["OMPI_COMM_WORLD_SIZE"])

    def set_world_size(self, size: int) -> None:
        pass  # mpirun decides

    def global_rank(self) -> int:
        return int(os.environ["OMPI_COMM_WORLD_RANK"])

    def set_global_rank(self, rank: int) -> None:
        pass  # mpirun decides

    def local_rank(self) -> int:
        return int(os.environ["OMPI_COMM_WORLD_LOCAL_RANK"])

    def node_rank(self) -> int:
        return self.global_rank() // int(os.environ["OMPI_COMM_WORLD_LOCAL_SIZE"])


def mpi_trainer_args() -> dict[str, Any]:
    """Trainer arguments under ``mpirun``: devices per node, nodes and the :class:`OpenMPIEnvironment`; sets
    ``MASTER_PORT`` (29500 unless set), ``WORLD_SIZE`` and ``RANK`` as MMEngine's ``init_dist('mpi')``.

    Raises:
        RuntimeError: An ``OMPI_COMM_WORLD_*`` variable is missing (not started by Open MPI's ``mpirun``).
        KeyError: ``MASTER_ADDR`` is not set (MMEngine's error).
    """
    missing = [name for name in _WORLD if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"launcher='mpi' expects the processes to be started by Open MPI's mpirun, but {', '.join(missing)} "
            "is not set"
        )
    if "MASTER_ADDR" not in os.environ:
        raise KeyError("The environment variable MASTER_ADDR is not set")
    os.environ.setdefault("MASTER_PORT", "29500")
    os.environ["WORLD_SIZE"] = os.environ["OMPI_COMM_WORLD_SIZE"]
    os.environ["RANK"] = os.environ["OMPI_COMM_WORLD_RANK"]
    world, local = int(os.environ["OMPI_COMM_WORLD_SIZE"]), int(os.environ["OMPI_COMM_WORLD_LOCAL_SIZE"])
    return dict(devices=local, num_nodes=world // local, plugins=[OpenMPIEnvironment()])
