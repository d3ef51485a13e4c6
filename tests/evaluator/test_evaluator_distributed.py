"""Two gloo processes on CPU: every rank gets the metrics of exactly the whole dataset."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torchmetrics.classification import MulticlassAccuracy

from mm2lightning.dist import collect_results
from mm2lightning.evaluator import BaseMetric, Evaluator, TorchMetricsAdapter

WORLD_SIZE = 2
LABELS = torch.tensor([0, 1, 2, 0, 1, 2, 0])
PREDS = torch.tensor([1, 1, 2, 1, 1, 0, 0])  # right on samples 1, 2, 4, 6; sample 0 (the padding) is wrong


class SampleAccuracy(BaseMetric):
    """One result per sample, so that padding is dropped exactly."""

    default_prefix = "acc"

    def process(self, data_batch, data_samples):
        score, gt = data_samples
        self.results.extend((score.argmax(1) == gt).tolist())

    def compute_metrics(self, results):
        return {"accuracy": 100 * sum(results) / len(results), "n": len(results)}


def _worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        size = len(LABELS)
        indices = list(range(size))
        indices += indices[: -size % WORLD_SIZE]  # DistributedSampler pads by repeating the first samples
        shard = indices[rank::WORLD_SIZE]  # rank 0: 0 2 4 6, rank 1: 1 3 5 0
        evaluator = Evaluator(
            [SampleAccuracy(), TorchMetricsAdapter(MulticlassAccuracy(num_classes=3, average="micro"), prefix="tm")]
        )
        scores = torch.nn.functional.one_hot(PREDS, 3).float()
        for start in range(0, len(shard), 2):
            batch = shard[start : start + 2]
            evaluator.process((scores[batch], LABELS[batch]))
        report = {
            "metrics": evaluator.evaluate(size),
            "ordered": collect_results([f"s{i}" for i in shard], size),
            "via_files": collect_results([f"s{i}" for i in shard], size, tmpdir=str(Path(out_dir) / "parts")),
        }
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(report))
    finally:
        dist.destroy_process_group()


def test_two_ranks_get_the_metrics_of_the_whole_dataset(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_worker, args=(port, str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE))
    expected = {"acc/accuracy": 100 * 4 / 7, "acc/n": 7, "tm/MulticlassAccuracy": 4 / 7}
    assert rank0["metrics"].keys() == expected.keys()
    for key, value in expected.items():
        assert rank0["metrics"][key] == rank1["metrics"][key]
        assert abs(rank0["metrics"][key] - value) < 1e-6, key
    assert rank0["ordered"] == rank0["via_files"] == [f"s{i}" for i in range(7)]
    assert rank1["ordered"] is None and rank1["via_files"] is None
    assert list((tmp_path / "parts").iterdir()) == []  # rank 0 removed the part files
