"""``mm2lightning.dist`` against real ``mmengine.dist``: in one process, and in 2 gloo processes under Lightning DDP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist

import mm2lightning.dist as our_dist

mm_dist = pytest.importorskip("mmengine.dist", reason="parity tests need mmengine (pip install -e '.[test]')")

WORKER = Path(__file__).resolve().parent / "dist_worker.py"
NOT_OFFERED = {"init_dist", "infer_launcher"}  # Lightning starts the processes and the process group


def same(a, b) -> bool:
    """Deep equality that also compares types, and tensors' dtype and device."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and (a.dtype, a.device) == (b.dtype, b.device) and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return type(a) is type(b) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def test_every_mmengine_dist_name_imports_from_mm2lightning_dist():
    names = set(mm_dist.__all__) - NOT_OFFERED
    namespace: dict = {}
    exec(f"from mm2lightning.dist import {', '.join(sorted(names))}", namespace)
    assert names <= set(our_dist.__all__)
    code = (
        "import sys, mm2lightning.dist\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'mmengine', 'torchmetrics')"
        " or m.startswith('mm2lightning.evaluator'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def run_both(fn, make=None):
    """``fn(lib, data)`` for each library on fresh data (``make()``); return ``(results, data afterwards)`` pairs."""
    outcome = []
    for lib in (our_dist, mm_dist):
        data = make() if make else None
        outcome.append((fn(lib, data), data))
    return outcome


def test_single_process_semantics_equal_mmengine():
    assert not torch_dist.is_initialized()

    def info(lib, _):
        return (lib.get_dist_info(), lib.get_rank(), lib.get_world_size(), lib.get_local_rank(), lib.get_local_size(),
                lib.is_distributed(), lib.is_main_process(), lib.get_backend(), lib.get_local_group(),
                lib.get_comm_device(), lib.barrier())

    ours, ref = run_both(info)
    assert same(ours, ref) and ours[0] == ((0, 1), 0, 1, 0, 1, False, True, None, None, torch.device("cpu"), None)

    tensor = lambda: torch.tensor([1.5, -2.0, 3.0])  # noqa: E731
    for op in ("sum", "mean", "max", "product", "bxor"):
        ours, ref = run_both(lambda lib, d: lib.all_reduce(d, op), tensor)
        assert same(ours, ref) and same(ours, (None, tensor()))
    ours, ref = run_both(lambda lib, d: lib.broadcast(d, src=0), tensor)
    assert same(ours, ref) and same(ours, (None, tensor()))
    for call in ("all_gather", "gather", "all_gather_object", "gather_object"):
        ours, ref = run_both(lambda lib, d: getattr(lib, call)(d), tensor)
        assert same(ours, ref) and ours[0][0] is ours[1]  # [data] itself
    ours, ref = run_both(lambda lib, d: lib.broadcast_object_list(d, 0), lambda: ["foo", 12, {1: 2}])
    assert same(ours, ref) and same(ours, (None, ["foo", 12, {1: 2}]))
    obj = {"a": [1]}
    assert our_dist.broadcast_object(obj, src=0) is obj
    ours, ref = run_both(lambda lib, d: lib.all_reduce_dict(d, "mean"), lambda: {"k": tensor()})
    assert same(ours, ref) and same(ours, (None, {"k": tensor()}))
    for kwargs in ({}, {"coalesce": False}, {"bucket_size_mb": 1}):
        ours, ref = run_both(lambda lib, d: lib.all_reduce_params(d, **kwargs), lambda: [tensor(), tensor().long()])
        assert same(ours, ref) and same(ours, (None, [tensor(), tensor().long()]))

    results = list(range(6))
    for device in ("cpu", "gpu", "npu"):
        ours, ref = run_both(lambda lib, _: lib.collect_results(results, 4, device))
        assert same(ours, ref) and ours[0] == [0, 1, 2, 3]
    ours, ref = run_both(lambda lib, _: (lib.collect_results_cpu(results, 5), lib.collect_results_gpu(results, 9)))
    assert same(ours, ref) and ours[0] == ([0, 1, 2, 3, 4], results)

    for lib in (our_dist, mm_dist):
        np.random.seed(3)
        seeds = [lib.sync_random_seed(), lib.sync_random_seed()]
        assert seeds == [int(x) for x in np.random.RandomState(3).randint(2**31, size=2)]
        assert all(type(seed) is int for seed in seeds)

    def master(lib, _):
        calls = []
        wrapped = lib.master_only(lambda x: calls.append(x) or x * 2)
        return wrapped(21), calls, wrapped.__name__

    ours, ref = run_both(master)
    assert same(ours, ref) and ours[0] == (42, [21], "<lambda>")


def test_data_device_helpers_equal_mmengine():
    cpu = torch.device("cpu")
    nested = {"a": torch.ones(2), "b": [torch.zeros(1), (torch.arange(2),)]}
    for data in (torch.ones(1), [torch.ones(1)], nested):
        assert our_dist.get_data_device(data) == mm_dist.get_data_device(data) == cpu
        assert same(our_dist.cast_data_device(data, cpu), mm_dist.cast_data_device(data, cpu))
    ours, ref = run_both(lambda lib, d: lib.cast_data_device({"x": torch.ones(2)}, cpu, out=d),
                         lambda: {"x": torch.zeros(2)})
    assert same(ours, ref) and same(ours[1], {"x": torch.ones(2)})
    for bad, out in (([], None), ({}, None), ("text", None), ([1], None), (torch.ones(1), [torch.ones(1)]),
                     ({"a": torch.ones(1)}, {"a": torch.ones(1), "b": torch.ones(1)})):
        errors = []
        for lib in (our_dist, mm_dist):
            with pytest.raises((TypeError, ValueError)) as info:
                lib.cast_data_device(bad, cpu, out) if out is not None else lib.get_data_device(bad)
            errors.append(info.type)
        assert errors[0] is errors[1], bad


def test_errors_name_what_was_wrong(monkeypatch):
    with pytest.raises(ValueError, match=r"reduce op should be one of .*'sum', 'mean'.*but got 'avg'"):
        our_dist.all_reduce(torch.ones(1), "avg")  # mmengine checks the op only in distributed runs
    with pytest.raises(TypeError, match="needs a list to fill in place, but got tuple"):
        our_dist.broadcast_object_list(("a",))
    monkeypatch.setattr(our_dist.utils, "_LOCAL_PROCESS_GROUP", object())
    with pytest.raises(RuntimeError, match="init_local_group was already called"):
        our_dist.init_local_group(0, 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_helper_equals_mmengine_under_lightning_ddp(tmp_path):
    pytest.importorskip("lightning")
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "LOCAL_WORLD_SIZE", "WORLD_SIZE", "RANK")}
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    done = subprocess.run([sys.executable, str(WORKER), str(tmp_path)], env=env, cwd=tmp_path, timeout=180,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]

    deviations = {"local_before_init", "collect_results_bad_device"}  # checked below
    for rank, record in enumerate(ranks):
        for name, (ours, ref) in record.items():
            if name not in deviations:
                assert same(ours, ref), f"rank {rank}, {name}: ours {ours!r} != mmengine {ref!r}"
    r0, r1 = ({name: ours for name, (ours, _) in record.items()} for record in ranks)

    assert (r0["dist_info"], r1["dist_info"]) == ((0, 2), (1, 2)) and r1["dist_info_group"] == (1, 2)
    assert r0["backend"] == ("gloo", "gloo", torch.device("cpu"), torch.device("cpu")) and r0["default_group"] is True
    assert (r0["is_main_process"], r1["is_main_process"]) == ((True, True), (False, False))
    # master_only ran exactly once across the ranks, on rank 0, for each library
    assert (r0["master_only"], r1["master_only"]) == ((42, "write"), (None, "write"))
    for tag in ("ours", "mmengine"):
        assert (tmp_path / f"master_{tag}_rank0.txt").read_text() == "called\n"
        assert not (tmp_path / f"master_{tag}_rank1.txt").exists()
    # rank 0's draw on both ranks, and numpy's state advanced alike on each rank, as MMEngine's
    expected_seed = int(np.random.RandomState(100).randint(2**31))
    assert r0["sync_random_seed"][0] == r1["sync_random_seed"][0] == expected_seed
    assert r0["sync_random_seed_group"] == r1["sync_random_seed_group"] == int(np.random.RandomState(7).randint(2**31))

    first, second = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0, 6.0])
    expected = {"sum": first + second, "SUM": first + second, "mean": (first + second) / 2,
                "max": second, "min": first, "product": first * second}
    for r in (r0, r1):
        for op, value in expected.items():
            assert same(r[f"all_reduce_{op}"], (None, value)), op
        assert same(r["all_reduce_mean_int"], (None, torch.tensor([2, 3, 4])))  # 2.5 3.5 4.5 truncated in place
        assert same(r["all_reduce_band_group"], (None, (first.long() + 8) & (second.long() + 8)))
        assert same(r["broadcast_src1"], (None, second))
        assert same(r["broadcast_src0_group"], (None, first))
        assert same(r["broadcast_object_list_src1"], (None, ["rank1", {1: [1, 1]}]))
        assert same(r["all_gather"], [first, second]) and same(r["all_gather_group"], [first.long(), second.long()])
        assert r["all_gather_object"] == [{"rank": 0, "items": [0]}, {"rank": 1, "items": [0, 1]}]
        assert same(r["all_reduce_dict_mean"], (None, {"b": (first + second) / 2, "a": (first + second).reshape(3, 1)}))
        assert same(r["all_reduce_params"], (None, [torch.full((2,), 3.0), torch.full((3,), 30.0), torch.tensor([1])]))
        assert same(r["all_reduce_params_buckets"],
                    (None, [torch.full((2,), 2.0), torch.full((3,), 20.0), torch.tensor([1])]))
        assert same(r["all_reduce_params_one_by_one"], (None, [torch.full((2,), 1.5), torch.full((3,), 15.0)]))
        assert r["local_after_init"] == (None, r["dist_info"][0], 2, 2)
    assert same(r0["gather_dst0"], [first, second]) and r1["gather_dst0"] == []
    assert r0["gather_dst1_group"] == [] and same(r1["gather_dst1_group"], [first, second])
    assert (r0["gather_object_dst0"], r1["gather_object_dst0"]) == ([("rank", 0), ("rank", 1)], None)
    assert (r0["gather_object_dst1_group"], r1["gather_object_dst1_group"]) == (None, [("rank", 0), ("rank", 1)])

    in_order = [f"s{i}" for i in range(7)]
    for name in ("collect_results_cpu", "collect_results_tmpdir", "collect_results_gpu_fn"):
        assert (r0[name], r1[name]) == (in_order, None), name
    assert r0["collect_results_gpu_mode"] == ["a0", "a1", "a2", "a3", "a4"]  # uneven parts, no padding
    assert r0["collect_results_cpu_fn"] == ["a0", "a1", "a2", "a3"]
    assert r1["collect_results_gpu_mode"] is r1["collect_results_cpu_fn"] is None
    # deviation: mmengine raises NotImplementedError for a bad device, mm2lightning a ValueError naming the choices
    assert [r["collect_results_bad_device"] for r in (r0, r1)] == [("raised", "ValueError")] * 2
    assert ranks[0]["collect_results_bad_device"][1] == ("raised", "NotImplementedError")
    # ours keeps a given tmpdir (emptied), mmengine deletes it
    assert list((tmp_path / "parts_mm2lightning.dist").iterdir()) == []
    assert not (tmp_path / "parts_mmengine.dist").exists()

    # without init_local_group: ours reads Lightning's LOCAL_RANK where mmengine raises;
    # the local size (no LOCAL_WORLD_SIZE under Lightning) and the local group raise in both
    for rank, record in enumerate(ranks):
        ours, ref = record["local_before_init"]
        assert ours == (rank, ("raised", "RuntimeError"), ("raised", "RuntimeError"))
        assert ref == (("raised", "RuntimeError"),) * 3
