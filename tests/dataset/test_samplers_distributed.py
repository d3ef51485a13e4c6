"""Two gloo processes on CPU: the samplers share rank 0's drawn seed and split the dataset between the ranks."""

from __future__ import annotations

import importlib.util
import itertools
import json
import socket

import numpy as np
import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD_SIZE = 2
SIZE = 9


def _worker(rank: int, port: int, out_dir: str, with_reference: bool) -> None:
    from mm2lightning.dataset import DefaultSampler, InfiniteSampler, build_dataloader

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        dataset = list(range(SIZE))

        def draw(default_cls, infinite_cls) -> dict:
            np.random.seed(100 + rank)  # each rank's numpy RNG differs; the seed must still be shared
            default = default_cls(dataset, seed=None)
            padded = list(default)
            exact = list(default_cls(dataset, seed=None, round_up=False))
            infinite = infinite_cls(dataset, seed=None)
            head = list(itertools.islice(infinite, 12))
            return dict(seeds=[default.seed, infinite.seed], padded=padded, exact=exact, infinite=head)

        report = dict(ours=draw(DefaultSampler, InfiniteSampler))
        loader = build_dataloader(
            dict(dataset=dataset, sampler=dict(type="DefaultSampler"), batch_size=2), seed=3, diff_rank_seed=True
        )
        report["loader_seed"] = loader.sampler.seed
        report["worker_rank"] = loader.worker_init_fn.keywords["rank"]
        if with_reference:
            from mmengine.dataset import DefaultSampler as MMDefaultSampler
            from mmengine.dataset import InfiniteSampler as MMInfiniteSampler

            report["mmengine"] = draw(MMDefaultSampler, MMInfiniteSampler)
        (out_dir / f"rank{rank}.json").write_text(json.dumps(report))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("samplers")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with_reference = importlib.util.find_spec("mmengine") is not None
    mp.spawn(_worker, args=(port, out_dir, with_reference), nprocs=WORLD_SIZE, join=True)
    return [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]


def test_ranks_share_the_seed_and_split_the_dataset(reports):
    rank0, rank1 = (r["ours"] for r in reports)
    assert rank0["seeds"][0] != rank0["seeds"][1]  # two draws
    assert rank0["seeds"] == rank1["seeds"]  # rank 0's, although each rank's numpy RNG differs
    assert len(rank0["padded"]) == len(rank1["padded"]) == 5
    assert set(rank0["padded"] + rank1["padded"]) == set(range(SIZE))  # 10 indices: one repeated as padding
    assert sorted(rank0["exact"] + rank1["exact"]) == list(range(SIZE))
    stream = [i for pair in zip(rank0["infinite"], rank1["infinite"]) for i in pair]
    assert sorted(stream[:SIZE]) == list(range(SIZE))  # interleaved, the ranks read one pass after another
    assert reports[0]["loader_seed"] == reports[1]["loader_seed"] != 3  # diff_rank_seed: a drawn, shared seed
    assert [r["worker_rank"] for r in reports] == [0, 1]


def test_ranks_equal_mmengine(mmengine, reports):
    for report in reports:
        assert report["ours"] == report["mmengine"]
