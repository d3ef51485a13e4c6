"""FSDP2 (``MMFSDPStrategy``) against DDP: per-rank memory and time per iteration, 2 CPU processes (gloo).

An MLP ``BaseModel`` (4 Linear layers of width ``hidden``, ReLU, cross-entropy) in
``MMLightningModule(model, optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)))`` (Adam: optimizer
state = 2x the parameters) trains on the same data from the same seed under two FSDP2 setups and DDP:

- ``fsdp``: ``MMFSDPStrategy(auto_wrap_policy={nn.Linear})``, every Linear a shard unit, torch's default
  resharding (here every unit is a root, so each keeps its gathered parameters from forward to backward);
- ``fsdp_reshard``: the same with ``reshard_after_forward=True``: every unit frees its gathered parameters after
  forward and gathers them again in backward (the lowest peak memory, one all-gather more per unit);
- ``ddp``: Lightning's ``strategy='ddp'``.

Per rank:

- bytes of parameters + gradients + optimizer state, from the real tensors (a DTensor's local shard) in
  ``on_before_optimizer_step`` of optimizer step ``MEASURE_STEP`` (0-based: gradients and Adam's state exist);
  DDP's reducer buckets and FSDP's transient all-gather buffers are not counted;
- time per iteration: the median over the timed iterations (after the warm-up) of the time between the ends of
  consecutive iterations; runs alternate (fsdp, ddp, fsdp, ...), the ratio FSDP/DDP is the median of the
  per-round ratios (with min-max);
- whether FSDP ends at DDP's weights (every rank's gathered ``full_tensor()``, within 1e-5).

Each run is a subprocess (``bench_fsdp.py --worker <json>``), rank 0; Lightning re-launches the same command for
rank 1. Each rank writes JSON and its final weights; the driver (this process, without ``--worker``) compares.

    python benchmarks/bench_fsdp.py                     # widths 256, 1024, 2048, 3 rounds (~10 min on 2 cores)
    python benchmarks/bench_fsdp.py --quick --rounds 1  # smoke run, ~30 s (tests/test_benchmark_fsdp_smoke.py)
    python benchmarks/bench_fsdp.py --out benchmarks/results_fsdp.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from rank_runs import rank_run

STRATEGIES = ("fsdp", "fsdp_reshard", "ddp")
FSDP = STRATEGIES[:2]
WORLD = 2
DEPTH = 4  # Linear layers
CLASSES = 10
MEASURE_STEP = 2  # bytes are measured before the 3rd optimizer step (Adam's state exists after the 1st)
FULL = dict(widths=[256, 1024, 2048], warmup=10, measured=100, rounds=3, batch=64)
QUICK = dict(widths=[64], warmup=3, measured=10, rounds=1, batch=16)
TARGET_BYTES, TARGET_TIME, TOL = 0.55, 1.3, 1e-5
POOL = 16  # distinct synthetic batches, cycled


# ---------------------------------------------------------------------------------------------- worker (one rank)
def build_model(hidden: int, seed: int):
    import torch
    import torch.nn.functional as F
    from torch import nn

    from mm2lightning.model import BaseModel

    class MLP(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(seed)
            layers: list[nn.Module] = []
            for _ in range(DEPTH - 1):
                layers += [nn.Linear(hidden, hidden), nn.ReLU()]
            self.body = nn.Sequential(*layers, nn.Linear(hidden, CLASSES))

        def forward(self, inputs, targets=None, mode: str = "tensor"):
            out = self.body(inputs)
            return dict(loss_ce=F.cross_entropy(out, targets)) if mode == "loss" else out

    return MLP()


def build_loader(spec: dict[str, Any], iterations: int):
    """``WORLD * iterations`` pre-collated batches; Lightning's DistributedSampler gives rank r batches r, r+2, ..."""
    import torch
    from torch.utils.data import DataLoader

    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    pool = [dict(inputs=torch.randn(spec["batch"], spec["hidden"], generator=gen),
                 targets=torch.randint(0, CLASSES, (spec["batch"],), generator=gen)) for _ in range(POOL)]
    data = [pool[i % POOL] for i in range(WORLD * iterations)]
    return DataLoader(data, batch_size=1, collate_fn=lambda items: items[0], shuffle=False)


def nbytes(tensors) -> int:
    """Bytes of the tensors as this rank holds them (a DTensor: its local shard)."""
    total = 0
    for t in tensors:
        if t is not None:
            t = t.to_local() if hasattr(t, "to_local") else t
            total += t.numel() * t.element_size()
    return total


def worker_main(spec_json: str) -> None:
    spec = json.loads(spec_json)
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(1)
    import lightning.pytorch as pl
    from torch import nn

    from mm2lightning import MMFSDPStrategy, MMLightningModule

    iterations = spec["warmup"] + spec["measured"] + 1  # one more: nothing end-of-run in the timed window
    model = build_model(spec["hidden"], spec["seed"])
    module = MMLightningModule(model, optim_wrapper=dict(optimizer=dict(type="AdamW", lr=1e-3)))
    stamps: list[float] = []
    memory: dict[str, int] = {}

    class Probe(pl.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
            if trainer.global_step == MEASURE_STEP and not memory:
                params = list(pl_module.model.parameters())
                state = pl_module.optim_wrapper.optimizer.state
                memory.update(params=nbytes(params), grads=nbytes(p.grad for p in params),
                              optim_state=nbytes(v for s in state.values() for v in s.values()
                                                 if isinstance(v, torch.Tensor)))

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            stamps.append(time.perf_counter())

    strategy = dict(
        fsdp=lambda: MMFSDPStrategy(auto_wrap_policy={nn.Linear}),
        fsdp_reshard=lambda: MMFSDPStrategy(auto_wrap_policy={nn.Linear}, reshard_after_forward=True),
        ddp=lambda: "ddp",
    )[spec["strategy"]]()
    trainer = pl.Trainer(accelerator="cpu", devices=WORLD, strategy=strategy, max_steps=iterations, logger=False,
                         callbacks=[Probe()], enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, use_distributed_sampler=True)
    trainer.fit(module, build_loader(spec, iterations))
    weights = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone()  # a collective for DTensors
               for k, v in module.model.state_dict().items()}
    rank = trainer.global_rank
    first = spec["warmup"] - 1  # the end of the last warm-up iteration opens the timed window
    times = [(b - a) * 1e3 for a, b in zip(stamps, stamps[1:])][first : first + spec["measured"]]
    out = Path(spec["result_dir"])
    torch.save(weights, out / f"weights{rank}.pt")
    (out / f"rank{rank}.json").write_text(json.dumps(dict(
        rank=rank, steps=trainer.global_step, ms_per_iter=statistics.median(times), times_ms=times,
        bytes=sum(memory.values()), bytes_parts=memory, params=sum(v.numel() for v in weights.values()),
    )))
    if rank == 0:  # wait for rank 1, so that the next run starts on idle cores
        for proc in getattr(trainer.strategy.launcher, "procs", []):
            proc.wait(timeout=spec["timeout"])


# ---------------------------------------------------------------------------------------------- driver
def run_one(spec: dict[str, Any], timeout: float, verbose: bool) -> list[dict[str, Any]]:
    """One run (rank 0 here; Lightning launches rank 1): each rank's JSON result plus its final weights."""
    import torch

    with rank_run(__file__, "--worker", spec, WORLD, timeout, verbose) as (result_dir, results):
        for r, res in enumerate(results):
            res["weights"] = torch.load(result_dir / f"weights{r}.pt", weights_only=True)
    return results


def max_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a) if a.keys() == b.keys() else 1e9


def _mib(n: float) -> str:
    return f"{n:,.0f} ({n / 2**20:.2f} MiB)"


def report(runs: dict[int, dict[str, list[list[dict[str, Any]]]]], rounds: int) -> tuple[str, str]:
    """The Markdown tables and the targets line; ``runs[hidden][strategy][round][rank]``."""
    rows = ["| hidden | strategy | parameters | rank 0 bytes (params+grads+Adam state) | rank 1 bytes "
            "| rank 0 ms/iter | rank 1 ms/iter |", "|---:|---|---:|---:|---:|---:|---:|"]
    ratio_rows = ["| hidden | setup | bytes /DDP rank 0 | rank 1 | time /DDP rank 0 (min–max) | rank 1 (min–max) "
                  "| max weight diff | same weights |", "|---:|---|---:|---:|---:|---:|---:|:---:|"]
    verdicts: dict[str, dict[str, Any]] = {}
    for hidden, by in runs.items():
        for s in STRATEGIES:
            ms = [statistics.median(rnd[r]["ms_per_iter"] for rnd in by[s]) for r in range(WORLD)]
            rows.append(f"| {hidden} | {s} | {by[s][0][0]['params']:,} | {_mib(by[s][0][0]['bytes'])} | "
                        f"{_mib(by[s][0][1]['bytes'])} | {ms[0]:.3f} | {ms[1]:.3f} |")
        for s in FSDP:
            byte_ratio = [by[s][0][r]["bytes"] / by["ddp"][0][r]["bytes"] for r in range(WORLD)]
            per_round = [[f[r]["ms_per_iter"] / d[r]["ms_per_iter"] for f, d in zip(by[s], by["ddp"])]
                         for r in range(WORLD)]
            time_ratio = [statistics.median(v) for v in per_round]
            diff = max(max_diff(res["weights"], d[0]["weights"])  # every rank of every run against DDP's of its round
                       for f, d in zip(by[s], by["ddp"]) for res in f + d)
            same = "yes" if diff <= TOL else "no"
            ratio_rows.append(f"| {hidden} | {s} | {byte_ratio[0]:.3f} | {byte_ratio[1]:.3f} | "
                              + " | ".join(f"{time_ratio[r]:.3f} ({min(v):.3f}–{max(v):.3f})"
                                           for r, v in enumerate(per_round))
                              + f" | {diff:.1e} | same weights: {same} |")
            verdicts[s] = dict(hidden=hidden, bytes=max(byte_ratio), time=max(time_ratio), same=same)
    targets = "\n".join(
        f"Targets, {s} (hidden {v['hidden']}, {WORLD} ranks, {rounds} round(s)): "
        f"bytes /DDP {v['bytes']:.3f} <= {TARGET_BYTES}: {'PASS' if v['bytes'] <= TARGET_BYTES else 'FAIL'}; "
        f"time /DDP {v['time']:.3f} <= {TARGET_TIME}: {'PASS' if v['time'] <= TARGET_TIME else 'FAIL'}; "
        f"same weights: {v['same']} ({'PASS' if v['same'] == 'yes' else 'FAIL'})"
        for s, v in verdicts.items()
    )
    return "\n".join(rows) + "\n\n" + "\n".join(ratio_rows), targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: width 64, 3 warm-up + 10 timed iterations")
    parser.add_argument("--rounds", type=int, default=None, help="runs of each strategy, alternating (default 3)")
    parser.add_argument("--widths", default=None, help="comma-separated hidden widths (default 256,1024,2048)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up iterations (default 10)")
    parser.add_argument("--iters", type=int, default=None, help="timed iterations per run (default 100)")
    parser.add_argument("--batch", type=int, default=None, help="batch size per rank (default 64)")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown report to this file")
    parser.add_argument("--verbose", action="store_true", help="show the runs' own output")
    parser.add_argument("--timeout", type=float, default=600, help="seconds one run may take")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        worker_main(args.worker)
        return 0
    cfg = dict(QUICK if args.quick else FULL)
    for key, value in (("rounds", args.rounds), ("warmup", args.warmup), ("measured", args.iters),
                       ("batch", args.batch)):
        if value is not None:
            cfg[key] = value
    if args.widths:
        cfg["widths"] = [int(w) for w in args.widths.split(",")]
    if cfg["warmup"] <= MEASURE_STEP or cfg["measured"] < 1 or cfg["rounds"] < 1:
        parser.error(f"need --warmup > {MEASURE_STEP}, --iters >= 1 and --rounds >= 1")

    started = time.perf_counter()
    runs: dict[int, dict[str, list[list[dict[str, Any]]]]] = {}
    for hidden in cfg["widths"]:
        runs[hidden] = {s: [] for s in STRATEGIES}
        for r in range(cfg["rounds"]):
            for s in STRATEGIES:  # interleaved: fsdp, fsdp_reshard, ddp, fsdp, ...
                spec = dict(strategy=s, hidden=hidden, seed=0, batch=cfg["batch"],
                            warmup=cfg["warmup"], measured=cfg["measured"])
                t0 = time.perf_counter()
                results = run_one(spec, args.timeout, args.verbose)
                runs[hidden][s].append(results)
                print(f"[hidden {hidden}, round {r + 1}/{cfg['rounds']}] {s}: ms/iter "
                      + " ".join(f"rank {x['rank']} {x['ms_per_iter']:.3f}" for x in results)
                      + f" (run {time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    tables, targets = report(runs, cfg["rounds"])
    import lightning
    import torch

    command = "python benchmarks/bench_fsdp.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = (
        "# mm2lightning FSDP benchmark: MMFSDPStrategy (FSDP2) vs DDP\n\n"
        f"Command: `{command.strip()}` ({time.perf_counter() - started:.0f} s)\n\n"
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}\n"
        f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores; {WORLD} processes (gloo, 127.0.0.1), "
        "1 torch thread each\n"
        f"- versions: Python {platform.python_version()}, torch {torch.__version__}, "
        f"lightning {lightning.__version__}\n"
        f"- model: MLP of {DEPTH} Linear layers (hidden → hidden ×{DEPTH - 1}, hidden → {CLASSES}), ReLU, "
        f"cross-entropy; batch {cfg['batch']} per rank; AdamW lr 1e-3; fsdp = `MMFSDPStrategy(auto_wrap_policy="
        "{nn.Linear})`, fsdp_reshard = the same with `reshard_after_forward=True`, ddp = Lightning's "
        "`strategy='ddp'`\n"
        f"- {cfg['warmup']} warm-up + {cfg['measured']} timed iterations per run, {cfg['rounds']} round(s) "
        "alternating the setups; ms/iter: median over the rounds of each run's median iteration; time ratio: median "
        "of the per-round ratios (min–max); bytes measured at the optimizer step of iteration "
        f"{MEASURE_STEP + 1} (local shards of DTensors; DDP's gradient buckets not counted); same weights: every "
        f"rank's gathered final weights of both strategies within {TOL:g} of DDP's rank 0\n\n"
        + tables + "\n\n" + targets + "\n"
    )
    print("\n" + text, flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
