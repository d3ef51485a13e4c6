"""Every ``mm2lightning.dist`` helper next to ``mmengine.dist``'s, under Lightning DDP: ``python dist_worker.py OUT``.

Lightning's DDP launcher re-runs this command for rank 1. Once the strategy has
made the gloo process group, each rank calls every helper of both libraries on
the same inputs (inside ``on_train_start``) and saves ``{name: (ours, mmengine's)}``
to ``OUT/rank<r>.pt``; a raised exception is recorded as ``("raised", type name)``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import mmengine.dist as mm_dist
import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn
from torch.utils.data import DataLoader

import mm2lightning.dist as our_dist

LIBS = {"ours": our_dist, "mmengine": mm_dist}
SIZE = 7  # rank 0 holds samples 0 2 4 6, rank 1 samples 1 3 5 and 0 (the sampler's padding)


def _call(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # recorded for the test to compare
        return ("raised", type(exc).__name__)


def _in_place(fn: Callable[[Any, Any], Any], make: Callable[[], Any]) -> Callable[[Any], Any]:
    """Call ``fn(lib, data)`` on fresh data; record its return value and the data afterwards."""

    def run(lib: Any) -> Any:
        data = make()
        return _call(lambda: fn(lib, data)), data

    return run


def _seed(lib: Any, rank: int) -> tuple[int, Any]:
    np.random.seed(100 + rank)  # each rank's numpy RNG differs; rank 0's draw must win
    seed = lib.sync_random_seed()
    return seed, np.random.get_state()[1].copy()


def checks(rank: int, out: Path) -> dict[str, Callable[[Any], Any]]:
    """Name -> ``run(lib)``, run once per library with the same inputs."""
    group = torch_dist.new_group([0, 1])  # an explicit group, besides the default one (group=None)
    base = torch.arange(3, dtype=torch.float32) + 1 + 3 * rank  # rank 0: 1 2 3, rank 1: 4 5 6
    shard = [f"s{i}" for i in range(SIZE)][rank::2] + (["s0"] if rank else [])
    uneven = ["a0", "a2", "a4"] if rank == 0 else ["a1", "a3"]

    def params() -> list[torch.Tensor]:
        return [torch.full((2,), 1.0 + rank), torch.full((3,), 10.0 * (rank + 1)), torch.tensor([rank])]

    def master(lib: Any) -> Any:
        @lib.master_only
        def write(tag: str) -> int:
            with open(out / f"master_{tag}_rank{rank}.txt", "a") as f:
                f.write("called\n")
            return 42

        return write(next(k for k, v in LIBS.items() if v is lib)), write.__name__

    named: dict[str, Callable[[Any], Any]] = {
        "dist_info": lambda lib: lib.get_dist_info(),
        "dist_info_group": lambda lib: lib.get_dist_info(group),
        "rank_world": lambda lib: (lib.get_rank(), lib.get_world_size(),
                                   lib.get_rank(group), lib.get_world_size(group)),
        "is_distributed": lambda lib: lib.is_distributed(),
        "is_main_process": lambda lib: (lib.is_main_process(), lib.is_main_process(group)),
        "backend": lambda lib: (lib.get_backend(), lib.get_backend(group),
                                lib.get_comm_device(), lib.get_comm_device(group)),
        "default_group": lambda lib: lib.get_default_group() is torch_dist.distributed_c10d._get_default_group(),
        "barrier": lambda lib: (lib.barrier(), lib.barrier(group)),
        "master_only": master,
        "data_device": lambda lib: (lib.get_data_device({"a": base, "b": [base]}),
                                    lib.cast_data_device([base], torch.device("cpu"))),
        "sync_random_seed": lambda lib: _seed(lib, rank),
        "sync_random_seed_group": lambda lib: (np.random.seed(7 + rank), lib.sync_random_seed(group))[1],
        "broadcast_src1": _in_place(lambda lib, d: lib.broadcast(d, src=1), base.clone),
        "broadcast_src0_group": _in_place(lambda lib, d: lib.broadcast(d, 0, group), base.clone),
        "broadcast_object_list_src1": _in_place(lambda lib, d: lib.broadcast_object_list(d, src=1),
                                                lambda: [f"rank{rank}", {rank: [rank] * 2}]),
        "all_gather": lambda lib: lib.all_gather(base),
        "all_gather_group": lambda lib: lib.all_gather(base.long(), group),
        "gather_dst0": lambda lib: lib.gather(base, dst=0),
        "gather_dst1_group": lambda lib: lib.gather(base, 1, group),
        "all_gather_object": lambda lib: lib.all_gather_object({"rank": rank, "items": list(range(rank + 1))}),
        "gather_object_dst0": lambda lib: lib.gather_object(("rank", rank), dst=0),
        "gather_object_dst1_group": lambda lib: lib.gather_object(("rank", rank), 1, group),
        "all_reduce_dict_mean": _in_place(lambda lib, d: lib.all_reduce_dict(d, op="mean"),
                                          lambda: {"b": base.clone(), "a": base.reshape(3, 1) * 2}),
        "all_reduce_params": _in_place(lambda lib, d: lib.all_reduce_params(d), params),
        "all_reduce_params_buckets": _in_place(lambda lib, d: lib.all_reduce_params(d, bucket_size_mb=1, op="max"),
                                               params),
        "all_reduce_params_one_by_one": _in_place(lambda lib, d: lib.all_reduce_params(d, coalesce=False, op="mean"),
                                                  lambda: params()[:2]),
        "collect_results_cpu": lambda lib: lib.collect_results(shard, SIZE),
        "collect_results_tmpdir": lambda lib: lib.collect_results(shard, SIZE, "cpu",
                                                                  str(out / f"parts_{lib.__name__}")),
        "collect_results_gpu_mode": lambda lib: lib.collect_results(uneven, 5, device="gpu"),
        "collect_results_cpu_fn": lambda lib: lib.collect_results_cpu(uneven, 4),
        "collect_results_gpu_fn": lambda lib: lib.collect_results_gpu(shard, SIZE),
        "collect_results_bad_device": lambda lib: _call(lambda: lib.collect_results(shard, SIZE, device="cuda")),
        "local_before_init": lambda lib: (_call(lib.get_local_rank), _call(lib.get_local_size),
                                          _call(lib.get_local_group)),
    }
    for op in ("sum", "mean", "max", "min", "product", "SUM"):
        named[f"all_reduce_{op}"] = _in_place(lambda lib, d, op=op: lib.all_reduce(d, op=op), base.clone)
    named["all_reduce_mean_int"] = _in_place(lambda lib, d: lib.all_reduce(d, "mean"), lambda: base.long())
    named["all_reduce_band_group"] = _in_place(lambda lib, d: lib.all_reduce(d, "band", group), lambda: base.long() + 8)
    named["local_after_init"] = lambda lib: (
        lib.init_local_group(0, 2), lib.get_local_rank(), lib.get_local_size(),
        torch_dist.get_world_size(lib.get_local_group()),
    )
    return named


class RecordDist(L.Callback):
    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rank = trainer.global_rank
        record = {
            name: tuple(_call(lambda: run(lib)) for lib in LIBS.values())
            for name, run in checks(rank, self.out).items()
        }
        torch.save(record, self.out / f"rank{rank}.pt")


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 1)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return self.layer(batch).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(torch.zeros(4, 2), batch_size=2)


def main() -> None:
    out = Path(sys.argv[1])
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[RecordDist(out)])
    trainer.fit(Tiny())


if __name__ == "__main__":
    main()
