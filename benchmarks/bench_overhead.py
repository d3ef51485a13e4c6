"""Per-iteration overhead of mm2lightning against plain PyTorch, Lightning and MMEngine's Runner.

The same model, data, seed and optimizer (SGD with momentum) run as

  (a) plain        - a plain PyTorch loop: forward, loss, backward, step, zero_grad;
  (b) lightning    - a hand-written LightningModule under manual optimization that logs
                     nothing (Lightning's own floor);
  (c) mm2lightning - ``MMLightningModule`` around an mm2lightning ``BaseModel``, with its
                     default logging (CSVLogger, ``log_every_n_steps=50``);
  (d) mmengine     - MMEngine's ``Runner`` with its default hooks and logging (LoggerHook
                     every 10 iterations, text log, ``scalars.json``), when installed;
  (e) runner       - mm2lightning's ``Runner`` with the same arguments as (d);
  (f) compiled     - (e) with ``cfg.compile=True`` (``torch.compile``'s default backend on ``train_step``,
                     as MMEngine's ``compile``); only when asked for (``--variants runner,compiled``).

Each run is its own subprocess with the allocator's defaults (and first frees one 30 MB block, as a real run's
loading does: see MALLOCS). In a round one run per
variant starts; they warm up side by side, then take turns in lock-step, one timed
chunk each ((a) chunk 1, (b) chunk 1, ..., (a) chunk 2, ...) while the others wait
outside their chunks, and all of them leave (teardown) only after the last chunk. A
ratio is paired: the two variants' chunks of the same turn, over every turn of every
round; the report gives its median and interquartile range. See benchmarks/README.md.

    python benchmarks/bench_overhead.py                      # both workloads, 7 rounds (~18 min on 2 cores)
    python benchmarks/bench_overhead.py --out benchmarks/results.md
    python benchmarks/bench_overhead.py --quick              # smoke run (well under a minute)
    python benchmarks/bench_overhead.py --profile /tmp/prof  # cProfile of each variant's timed window
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

RESULT_MARK = "BENCH_RESULT "
VARIANTS = {  # name -> letter
    "plain": "a", "lightning": "b", "mm2lightning": "c", "mmengine": "d", "runner": "e", "compiled": "f",
}  # fmt: skip
DEFAULT_VARIANTS = ("plain", "lightning", "mm2lightning", "mmengine", "runner")
LR, MOMENTUM = 0.01, 0.9
RATIOS = {"c/b": ("mm2lightning", "lightning"), "c/d": ("mm2lightning", "mmengine"),
          "b/d": ("lightning", "mmengine"), "e/c": ("runner", "mm2lightning"), "e/d": ("runner", "mmengine"),
          "f/e": ("compiled", "runner")}
TARGETS = {("mlp", "c/b"): 1.10, ("mlp", "e/d"): 1.05, ("conv", "c/b"): 1.03, ("conv", "c/d"): 1.00}
MAX_SPREAD = 0.02  # the width of a ratio's confidence interval, relative to it, that a verdict can rest on


@dataclass(frozen=True)
class Workload:
    title: str
    batch_size: int
    warmup: int  # iterations before the first chunk
    chunk: int  # iterations per timed chunk: a multiple of every logging period (10, 50) and the CSV flush (100)
    chunks: int  # timed chunks per run
    mallocs: tuple[str, ...]  # the allocator settings it runs under, one table each


WORKLOADS = {
    "mlp": Workload("tiny MLP 32-64-10, batch 16", 16, warmup=100, chunk=500, chunks=10, mallocs=("settled",)),
    "conv": Workload("ConvNet 3x(conv3x3+ReLU) on 32x32 RGB, batch 32", 32, warmup=20, chunk=100, chunks=6,
                     mallocs=("settled", "default")),
}
# A process that never freed a large block keeps glibc's initial mmap threshold (128 KB): the ConvNet's activation
# buffers, freed every iteration, are unmapped or trimmed off the heap and page-faulted back on the next, how often
# depending on the heap's layout, so a fresh process's speed is a lottery (10-20 % between processes of the same
# variant on this VM). A real run frees large blocks early (a checkpoint, a dataset, a state dict), and glibc raises
# its threshold to the size of a freed mapped block (up to 32 MB): "settled" frees one 30 MB block first, with no
# other change to the allocator. "default" is the fresh process; "steady" sets the thresholds by environment.
MALLOCS = {
    "default": ("a fresh process: glibc's defaults, no large block freed yet", {}),
    "settled": ("glibc's defaults, after one 30 MB block was freed (as loading a checkpoint or a dataset does)", {}),
    "steady": ("steady allocator: MALLOC_MMAP_THRESHOLD_=33554432, MALLOC_TRIM_THRESHOLD_=1073741824",
               {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}),
}
SETTLE_BYTES = 30 * 2**20  # under glibc's 32 MB cap of its dynamic mmap threshold
QUICK = dict(warmup=20, chunk=100, chunks=2)
TAIL = 1  # iterations after the last chunk, so that nothing end-of-run happens inside it
POOL = 64  # distinct synthetic batches, cycled


# ---------------------------------------------------------------------------------------------- model and data
def build_net(workload: str, seed: int):
    """The network, seeded: every variant starts from the same weights."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    if workload == "mlp":
        return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(64, 10),
    )  # fmt: skip


class BatchDataset:
    """A map-style dataset of pre-collated ``(inputs, labels)`` batches, cycled."""

    def __init__(self, batches: list, length: int) -> None:
        self.batches = batches
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        return self.batches[index % len(self.batches)]


def first(items: list):
    """``collate_fn``: the batch is already collated."""
    return items[0]


def build_loader(workload: str, iterations: int, seed: int, device: str):
    """A DataLoader of ``iterations`` synthetic batches on ``device``: one pre-collated batch per index, so
    that data loading is a small, equal part of every variant's step (and MMEngine gets a batch sampler)."""
    import torch
    from torch.utils.data import DataLoader

    gen = torch.Generator().manual_seed(seed + 1)
    size = WORKLOADS[workload].batch_size
    shape = (size, 32) if workload == "mlp" else (size, 3, 32, 32)
    batches = [(torch.randn(shape, generator=gen).to(device), torch.randint(0, 10, (size,), generator=gen).to(device))
               for _ in range(POOL)]
    return DataLoader(BatchDataset(batches, iterations), batch_size=1, collate_fn=first, shuffle=False)


def checksum(net) -> float:
    return float(sum(p.detach().double().sum() for p in net.parameters()))


# ---------------------------------------------------------------------------------------------- the timed window
class Window:
    """Times ``chunks`` chunks of ``chunk`` iterations after ``warmup``, taking turns with the other runs.

    Called with the 0-based batch index from the same point of every loop (after the optimizer step
    and zero_grad). At the end of iteration ``warmup - 1`` and after each chunk it tells the driver
    ("R") and waits for its go ("G"), outside every chunk; after the last chunk the go releases the
    run to its end. Without a driver (``ctrl=None``) the chunks run back to back.
    """

    def __init__(self, warmup: int, chunk: int, chunks: int, sync: Callable[[], None],
                 ctrl: tuple[int, int] | None = None, profiler: Any = None) -> None:
        self.first, self.chunk = warmup - 1, chunk
        self.last = self.first + chunk * chunks
        self.sync, self.ctrl, self.profiler = sync, ctrl, profiler
        self.chunks_ms: list[float] = []
        self.t_open = 0.0

    def __call__(self, batch_idx: int) -> None:
        if batch_idx < self.first or batch_idx > self.last or (batch_idx - self.first) % self.chunk:
            return
        self.sync()
        if batch_idx > self.first:
            self.chunks_ms.append((time.perf_counter() - self.t_open) * 1e3 / self.chunk)
            if self.profiler is not None:
                self.profiler.disable()
        if self.ctrl is not None:
            go_fd, ready_fd = self.ctrl
            os.write(ready_fd, b"R")
            if os.read(go_fd, 1) != b"G":
                raise RuntimeError("the benchmark driver went away")
        if batch_idx < self.last:
            if self.profiler is not None:
                self.profiler.enable()
            self.t_open = time.perf_counter()


# ---------------------------------------------------------------------------------------------- variants
def run_plain(net, loader, device: str, window: Window, work_dir: str):
    import torch
    import torch.nn.functional as F

    net.to(device).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    for batch_idx, (inputs, labels) in enumerate(loader):
        loss = F.cross_entropy(net(inputs), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        window(batch_idx)


def _stamp(window: Window):
    import lightning.pytorch as pl

    class Stamp(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            window(batch_idx)

    return Stamp()


def _trainer(device: str, window: Window, work_dir: str):
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    return pl.Trainer(
        accelerator="gpu" if device.startswith("cuda") else "cpu", devices=1, max_epochs=1,
        logger=CSVLogger(work_dir),  # log_every_n_steps: Lightning's default (50)
        callbacks=[_stamp(window)], enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
    )  # fmt: skip


def run_lightning(net, loader, device: str, window: Window, work_dir: str):
    import lightning.pytorch as pl
    import torch
    import torch.nn.functional as F

    class ManualModule(pl.LightningModule):
        def __init__(self, net) -> None:
            super().__init__()
            self.automatic_optimization = False
            self.net = net

        def training_step(self, batch, batch_idx) -> None:
            opt = self.optimizers()
            inputs, labels = batch
            self.manual_backward(F.cross_entropy(self.net(inputs), labels))
            opt.step()
            opt.zero_grad()

        def configure_optimizers(self):
            return torch.optim.SGD(self.net.parameters(), lr=LR, momentum=MOMENTUM)

    _trainer(device, window, work_dir).fit(ManualModule(net), loader)


def _classifier(base_model: type, net):
    """``net`` in a ``BaseModel`` (MMEngine's or ours) with a cross-entropy loss."""
    import torch.nn.functional as F

    class Classifier(base_model):
        def __init__(self, net) -> None:
            super().__init__()
            self.net = net

        def forward(self, inputs, labels=None, mode="tensor"):
            logits = self.net(inputs)
            return dict(loss=F.cross_entropy(logits, labels)) if mode == "loss" else logits

    return Classifier(net)


def run_mm2lightning(net, loader, device: str, window: Window, work_dir: str):
    from mm2lightning import MMLightningModule
    from mm2lightning.model import BaseModel

    optim_wrapper = dict(optimizer=dict(type="SGD", lr=LR, momentum=MOMENTUM))
    _trainer(device, window, work_dir).fit(MMLightningModule(_classifier(BaseModel, net), optim_wrapper), loader)


def _runner_args(model, loader, work_dir: str, stamp) -> dict[str, Any]:
    """What (d) and (e) give their Runner: MMEngine's defaults but the checkpoint files."""
    return dict(
        model=model, work_dir=work_dir, train_dataloader=loader, train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=LR, momentum=MOMENTUM)),
        default_hooks=dict(checkpoint=None), custom_hooks=[stamp],
    )  # fmt: skip


def run_mmengine(net, loader, device: str, window: Window, work_dir: str):
    import logging

    from mmengine.hooks import Hook
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Stamp(Hook):
        priority = "LOWEST"  # after LoggerHook: the same point of the loop as the other variants

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            window(batch_idx)

    model = _classifier(BaseModel, net).to(device)
    Runner(**_runner_args(model, loader, work_dir, Stamp())).train()
    logging.getLogger("mmengine").handlers.clear()


def run_runner(net, loader, device: str, window: Window, work_dir: str, cfg: dict | None = None):
    from mm2lightning.model import BaseModel
    from mm2lightning.runner import Runner

    trainer_cfg = dict(accelerator="gpu" if device.startswith("cuda") else "cpu", enable_progress_bar=False,
                       enable_model_summary=False)
    args = _runner_args(_classifier(BaseModel, net), loader, work_dir, _stamp(window))
    Runner(**args, trainer_cfg=trainer_cfg, cfg=cfg).train()


def run_compiled(net, loader, device: str, window: Window, work_dir: str):
    run_runner(net, loader, device, window, work_dir, cfg=dict(compile=True))  # compiled in the warm-up


RUNNERS = {"plain": run_plain, "lightning": run_lightning, "mm2lightning": run_mm2lightning,
           "mmengine": run_mmengine, "runner": run_runner, "compiled": run_compiled}
IMPORTS = {"lightning": "lightning.pytorch", "mm2lightning": "mm2lightning.lightning", "mmengine": "mmengine.runner",
           "runner": "mm2lightning.lightning.runner",
           "compiled": "mm2lightning.lightning.runner"}


# ---------------------------------------------------------------------------------------------- one run (child)
def run_one(spec: dict[str, Any], profiler: Any = None) -> dict[str, Any]:
    """Run one variant on one workload; return its chunk times, peak memory and final-parameter checksum."""
    import importlib

    import torch

    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if spec["threads"] > 0:
        torch.set_num_threads(spec["threads"])
    variant, device = spec["variant"], spec["device"]
    if variant in IMPORTS:
        importlib.import_module(IMPORTS[variant])
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    window = Window(spec["warmup"], spec["chunk"], spec["chunks"], sync, spec.get("ctrl"), profiler)
    if spec["malloc"] == "settled":  # glibc raises its mmap threshold to a freed mapped block's size
        torch.empty(SETTLE_BYTES, dtype=torch.uint8)  # allocated and freed at once
    iterations = spec["warmup"] + spec["chunk"] * spec["chunks"] + TAIL
    loader = build_loader(spec["workload"], iterations, spec["seed"], device)
    net = build_net(spec["workload"], spec["seed"])
    with tempfile.TemporaryDirectory(prefix=f"bench_{variant}_") as work_dir:
        RUNNERS[variant](net, loader, device, window, work_dir)
    if len(window.chunks_ms) != spec["chunks"]:
        raise RuntimeError(f"{variant}: {len(window.chunks_ms)} of {spec['chunks']} chunks timed: the run stopped early")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)
    return dict(spec, chunks_ms=window.chunks_ms, peak_rss_mb=maxrss, checksum=checksum(net),
                threads_seen=torch.get_num_threads())


def child_main(spec: dict[str, Any]) -> None:
    if spec.get("core") is not None:
        os.sched_setaffinity(0, {spec["core"]})
    profiler = None
    if spec.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    result = run_one(spec, profiler)
    if profiler is not None:
        profiler.dump_stats(spec["profile"])
    print(RESULT_MARK + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------- the driver
class Run:
    """One child process running one variant, with its control pipes and output file."""

    def __init__(self, spec: dict[str, Any], lockstep: bool = True) -> None:
        self.name = f"{spec['variant']} on {spec['workload']}"
        self.output = tempfile.TemporaryFile(mode="w+")
        fds: tuple[int, ...] = ()
        if lockstep:
            go_r, self.go_w = os.pipe()  # driver -> child
            self.ready_r, ready_w = os.pipe()  # child -> driver
            spec = dict(spec, ctrl=[go_r, ready_w])
            fds = (go_r, ready_w)
        cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
        env = dict(os.environ, **MALLOCS[spec["malloc"]][1])
        self.proc = subprocess.Popen(cmd, stdout=self.output, stderr=subprocess.STDOUT, pass_fds=fds, env=env)
        for fd in fds:
            os.close(fd)

    def wait_ready(self, timeout: float) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.ready_r, selectors.EVENT_READ)
            if not sel.select(timeout):
                raise RuntimeError(f"{self.name}: no answer within {timeout:.0f} s")
        if os.read(self.ready_r, 1) != b"R":
            self.proc.wait()
            raise RuntimeError(f"{self.name} failed (exit code {self.proc.returncode})")

    def go(self) -> None:
        os.write(self.go_w, b"G")

    def finish(self, timeout: float) -> tuple[dict[str, Any], str]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.output.seek(0)
        text = self.output.read()
        lines = [line for line in text.splitlines() if line.startswith(RESULT_MARK)]
        if self.proc.returncode != 0 or not lines:
            raise RuntimeError(f"{self.name} failed (exit code {self.proc.returncode}):\n{text[-5000:]}")
        return json.loads(lines[-1][len(RESULT_MARK):]), text

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for fd in (getattr(self, "go_w", None), getattr(self, "ready_r", None)):
            if fd is not None:
                os.close(fd)
        self.output.close()


def run_round(specs: list[dict[str, Any]], verbose: bool, timeout: float) -> list[dict[str, Any]]:
    """One run per spec, in lock-step chunk by chunk; their results in spec order.

    With two cores or more the runs share one core (they take turns on it) and the driver has another.
    """
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) > 1:
        os.sched_setaffinity(0, cores[:-1])
        specs = [dict(spec, core=cores[-1]) for spec in specs]
    runs = [Run(spec) for spec in specs]
    try:
        for run in runs:  # all warmed up and waiting
            run.wait_ready(timeout)
        for _ in range(specs[0]["chunks"]):
            for run in runs:
                run.go()
                run.wait_ready(timeout)
        for run in runs:  # every chunk is timed: all may end now
            run.go()
        results = []
        for run in runs:
            result, text = run.finish(timeout)
            if verbose:
                print(text)
            if 0 < result["threads"] != result["threads_seen"]:
                print(f"warning: {run.name} ran with {result['threads_seen']} threads, not {result['threads']}",
                      file=sys.stderr)
            results.append(result)
        return results
    except Exception:
        for run in runs:
            run.output.seek(0)
            sys.stderr.write(f"--- output of {run.name} ---\n{run.output.read()[-3000:]}\n")
        raise
    finally:
        for run in runs:
            run.close()


# ---------------------------------------------------------------------------------------------- the report
def quartiles(values: list[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile)."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def paired_ratios(runs: list[dict[str, Any]], num: str, den: str) -> list[list[float]]:
    """Per round, ``num``'s chunk over ``den``'s chunk of the same turn."""
    by = {(r["round"], r["variant"]): r["chunks_ms"] for r in runs}
    rounds = sorted({r["round"] for r in runs})
    return [[x / y for x, y in zip(by[r, num], by[r, den])] for r in rounds]


def median_ci(per_round: list[list[float]], resamples: int = 2000) -> tuple[float, float]:
    """95 % confidence interval of the median of the pooled values, by resampling whole rounds (a run's own
    speed, from its process, is shared by its chunks; the rounds are the independent draws)."""
    rng = random.Random(0)
    medians = sorted(statistics.median([x for r in rng.choices(per_round, k=len(per_round)) for x in r])
                     for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def table(workload: str, runs: list[dict[str, Any]]) -> str:
    """The Markdown tables of one workload: times per variant, then the paired ratios."""
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in runs)]
    chunks = {v: [c for r in runs if r["variant"] == v for c in r["chunks_ms"]] for v in variants}
    med = {v: quartiles(chunks[v])[1] for v in variants}
    ref = next((r["checksum"] for r in runs if r["variant"] == "plain"), None)
    lines = ["| variant | ms/iter (median of chunks) | IQR of chunks | x (a) | peak RSS MB | same weights as (a) |",
             "|---|---:|---:|---:|---:|:---:|"]
    for v in variants:
        q1, _, q3 = quartiles(chunks[v])
        sums = [r["checksum"] for r in runs if r["variant"] == v]
        same = "n/a" if ref is None else "yes" if all(abs(s - ref) <= 1e-4 * max(1.0, abs(ref)) for s in sums) else "NO"
        rss = statistics.median(r["peak_rss_mb"] for r in runs if r["variant"] == v)
        times_plain = f"{med[v] / med['plain']:.3f}" if "plain" in med else "n/a"
        lines.append(f"| ({VARIANTS[v]}) {v} | {med[v]:.4f} | {q1:.4f}–{q3:.4f} | {times_plain} | {rss:.1f} | {same} |")
    lines += ["", "| ratio (paired chunks) | median | 95 % CI of the median | spread (CI / median) | IQR of the chunk "
              "ratios | target |", "|---|---:|---:|---:|---:|---|"]
    for name, (num, den) in RATIOS.items():
        if num in med and den in med:
            per_round = paired_ratios(runs, num, den)
            q1, ratio, q3 = quartiles([x for r in per_round for x in r])
            low, high = median_ci(per_round)
            spread = (high - low) / ratio
            target = TARGETS.get((workload, name))
            verdict = "" if target is None else f"≤ {target:.2f}: {'met' if high <= target else 'NOT met'}"
            flag = "" if spread < MAX_SPREAD else " (over 2 %)"
            lines.append(f"| {name} | **{ratio:.3f}** | {low:.3f}–{high:.3f} | {spread:.1%}{flag} | {q1:.3f}–{q3:.3f} | "
                         f"{verdict} |")
    return "\n".join(lines)


def environment(args: argparse.Namespace, device: str) -> str:
    import torch

    versions = [f"torch {torch.__version__}"]
    for mod in ("lightning", "mmengine"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            versions.append(f"{mod} not installed")
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    dev = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"CPU ({cpu}, {os.cpu_count()} cores)"
    return (f"- device: `{device}`: {dev}; torch threads per run: {args.threads or 'default'}\n- versions: Python {platform.python_version()}, {', '.join(versions)}\n"
            f"- rounds: {args.rounds}{' (--quick)' if args.quick else ''}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="mlp,conv", help="comma-separated: mlp, conv (default: both)")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help="comma-separated subset of " + ", ".join(VARIANTS) + " (default: all but compiled; "
                        "mmengine: when installed)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 7; 1 with --quick)")
    parser.add_argument("--chunks", type=int, default=None, help="timed chunks per run (default: per workload)")
    parser.add_argument("--quick", action="store_true", help="short runs, 1 round: a smoke test")
    parser.add_argument("--malloc", choices=list(MALLOCS), help="only this allocator setting (default: each "
                        "workload's: glibc's defaults after one 30 MB block freed, and for the ConvNet also a fresh "
                        "process's)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when available)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run; 0: torch's default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    parser.add_argument("--raw", type=Path, help="write every run's chunk times (JSON) to this file")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="instead: cProfile each variant's timed window, one run each, into DIR/<workload>_<variant>.prof")
    parser.add_argument("--verbose", action="store_true", help="show the runs' own output")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a run may take to reach its next turn")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child_main(json.loads(args.child))
        return 0

    import importlib.util

    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    workloads = [w for w in args.workloads.split(",") if w]
    variants = [v for v in args.variants.split(",") if v]
    for given, known, what in ((workloads, WORKLOADS, "workload"), (variants, VARIANTS, "variant")):
        if unknown := [x for x in given if x not in known]:
            parser.error(f"unknown {what}(s) {unknown}; choose from {list(known)}")
    if "mmengine" in variants and importlib.util.find_spec("mmengine") is None:
        print("mmengine is not installed: skipping variant (d) mmengine", file=sys.stderr)
        variants.remove("mmengine")
    args.rounds = args.rounds or (1 if args.quick else 7)

    def spec_for(workload: str, variant: str, malloc: str = "default", **extra: Any) -> dict[str, Any]:
        wl = WORKLOADS[workload]
        sizes = QUICK if args.quick else dict(warmup=wl.warmup, chunk=wl.chunk, chunks=wl.chunks)
        if args.chunks:
            sizes = dict(sizes, chunks=args.chunks)
        return dict(workload=workload, variant=variant, device=device, threads=args.threads, seed=args.seed,
                    malloc=malloc, **sizes, **extra)

    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        for workload in workloads:
            for variant in variants:
                out = args.profile / f"{workload}_{variant}.prof"
                run = Run(spec_for(workload, variant, profile=str(out)), lockstep=False)
                try:
                    result, _ = run.finish(args.timeout)
                finally:
                    run.close()
                ms = statistics.median(result["chunks_ms"])
                print(f"{out}: ({VARIANTS[variant]}) {variant}, {ms:.4f} ms/iter under the profiler")
        return 0

    started = time.perf_counter()
    sections, raw = [], []
    for workload in workloads:
        for malloc in [args.malloc] if args.malloc else WORKLOADS[workload].mallocs:
            runs = []
            for r in range(args.rounds):
                order = variants[r % len(variants):] + variants[: r % len(variants)]  # each variant leads in turn
                results = run_round([spec_for(workload, v, malloc) for v in order], args.verbose, args.timeout)
                for result in results:
                    result["round"] = r
                runs += results
                print(f"[{workload}, {malloc} malloc, round {r + 1}/{args.rounds}] ms/iter: " + "  ".join(
                    f"({VARIANTS[x['variant']]}) {statistics.median(x['chunks_ms']):.4f}" for x in results),
                    file=sys.stderr, flush=True)  # fmt: skip
            raw += runs
            spec = spec_for(workload, variants[0])
            section = (f"## {WORKLOADS[workload].title}: {MALLOCS[malloc][0]}\n\n{spec['warmup']} warm-up iterations, "
                       f"then {spec['chunks']} chunks of {spec['chunk']} iterations per run, {args.rounds} round{'s' if args.rounds > 1 else ''}."
                       f"\n\n{table(workload, runs)}")
            print("\n" + section + "\n", flush=True)
            sections.append(section)
    command = " ".join(["python benchmarks/bench_overhead.py", *(argv if argv is not None else sys.argv[1:])])
    report = (f"# mm2lightning overhead benchmark\n\nCommand: `{command}` ({time.perf_counter() - started:.0f} s, "
              f"{time.strftime('%Y-%m-%d')})\n\n{environment(args, device)}\n\n" + "\n\n".join(sections) + "\n")
    if args.raw is not None:
        args.raw.write_text(json.dumps(raw, indent=1))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
        print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
