"""Per-iteration overhead of mm2lightning against plain PyTorch, Lightning and MMEngine's Runner.

Runs the same model, data, seed and optimizer (SGD with momentum) as

  (a) plain        - a plain PyTorch loop: forward, loss, backward, step, zero_grad;
  (b) lightning    - a hand-written LightningModule under manual optimization that
                     logs nothing (Lightning's own floor);
  (c) mm2lightning - ``MMLightningModule`` around an mm2lightning ``BaseModel``, with
                     its default logging (CSVLogger, ``log_every_n_steps=50``);
  (d) mmengine     - MMEngine's ``Runner`` with its default hooks and logging
                     (LoggerHook every 10 iterations, LocalVisBackend), when mmengine
                     is installed;
  (e) runner       - mm2lightning's ``Runner`` with the same arguments as (d) (its
                     Trainer logs to a CSVLogger every 10 iterations, MMEngine's default):
                     the cost of the migration path against (c) and against (d).

Each run is its own subprocess (clean peak memory, nothing shared). In a round the
runs of all variants start together, warm up, then take turns in lock-step: 100
timed iterations of (a), then of (b), (c), (d), (a), ... while the others wait, so
that drifts of the machine hit every variant alike. Only whole iterations after the
warm-up are timed, from the same point of every loop: Trainer/Runner construction,
the first iterations and the teardown are left out. See benchmarks/README.md.

    python benchmarks/bench_overhead.py                       # both workloads, 5 rounds (~4 min on 2 cores)
    python benchmarks/bench_overhead.py --quick               # smoke run (well under a minute)
    python benchmarks/bench_overhead.py --out benchmarks/results.md
    python benchmarks/bench_overhead.py --profile --workloads mlp   # cProfile of the timed window of (b) and (c)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import selectors
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

RESULT_MARK = "BENCH_RESULT "
VARIANTS = {  # name -> (letter, description)
    "plain": ("a", "plain PyTorch loop"),
    "lightning": ("b", "LightningModule, manual optimization, no logging"),
    "mm2lightning": ("c", "MMLightningModule + BaseModel, default logging"),
    "mmengine": ("d", "MMEngine Runner, default hooks and logging"),
    "runner": ("e", "mm2lightning Runner, the same arguments as (d)"),
}
LR, MOMENTUM = 0.01, 0.9


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    batch_size: int
    warmup: int  # iterations before the timed window
    measured: int  # timed iterations; a multiple of 100 so that every variant logs/flushes equally often
    quick_warmup: int
    quick_measured: int
    pool: int  # distinct synthetic batches, cycled


WORKLOADS = {
    "mlp": Workload("mlp", "tiny MLP 32-64-10, batch 16", 16, 100, 1500, 50, 300, 64),
    "conv": Workload("conv", "ConvNet 3x(conv3x3+ReLU) on 32x32 RGB, batch 32", 32, 20, 400, 10, 100, 16),
}
CHUNK = 100  # iterations per timed chunk: a multiple of Lightning's log (50) and CSV flush (100) and MMEngine's log (10) periods
# glibc returns the large activation buffers freed every iteration to the kernel (munmap / heap trim) and
# page-faults them back in on the next one; in a VM the cost of that differs from process to process by
# 10-20 %, which swamps the ConvNet's differences. Keeping them in the heap makes runs repeatable (and
# faster, for every variant alike). --system-malloc turns it off.
STEADY_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}
TAIL = 1  # iterations run after the timed window, so that nothing end-of-run happens inside it


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


def build_loader(wl: Workload, iterations: int, seed: int, device: str):
    """A DataLoader yielding ``iterations`` synthetic batches, from a seeded generator (no downloads)."""
    import torch
    from torch.utils.data import DataLoader

    gen = torch.Generator().manual_seed(seed + 1)
    shape = (wl.batch_size, 32) if wl.name == "mlp" else (wl.batch_size, 3, 32, 32)
    batches = [
        (torch.randn(shape, generator=gen).to(device), torch.randint(0, 10, (wl.batch_size,), generator=gen).to(device))
        for _ in range(wl.pool)
    ]
    # One pre-collated batch per index: a real batch sampler (MMEngine's DistSamplerSeedHook needs one) and no
    # per-sample indexing or stacking, so that data loading stays a small, equal part of every variant's step.
    return DataLoader(BatchDataset(batches, iterations), batch_size=1, collate_fn=first, shuffle=False, num_workers=0)


def first(items: list):
    """``collate_fn``: the batch is already collated."""
    return items[0]


def checksum(net) -> float:
    return float(sum(p.detach().double().sum() for p in net.parameters()))


# ---------------------------------------------------------------------------------------------- the timed window
class Window:
    """Times chunks of ``CHUNK`` iterations after the warm-up, taking turns with the other runs.

    Called with the 0-based batch index from the same point of every loop (after the optimizer step and
    zero_grad). At the end of iteration ``warmup - 1`` and every ``CHUNK`` iterations after it, up to
    ``warmup + measured - 1``, it closes the running chunk, tells the driver ("R") and, but for the last,
    waits for the driver's go ("G") before it opens the next one: the waiting is outside every chunk.
    Each chunk holds ``CHUNK`` whole iterations, data loading and logging included, and the same logging
    work in every variant (``CHUNK`` is a multiple of every logging and flushing period involved).
    Without a driver (``ctrl=None``) it times the chunks back to back.
    """

    def __init__(self, warmup: int, measured: int, sync: Callable[[], None], profiler: Any = None,
                 ctrl: tuple[int, int] | None = None) -> None:
        self.first = warmup - 1
        self.last = warmup + measured - 1
        self.chunk = CHUNK if measured % CHUNK == 0 else measured
        self.n_chunks = measured // self.chunk
        self.sync = sync
        self.profiler = profiler
        self.ctrl = ctrl
        self.chunks: list[float] = []
        self.t_open: float | None = None
        self.threads = None

    def _turn(self, last: bool) -> None:
        if self.ctrl is None:
            return
        go_fd, ready_fd = self.ctrl
        os.write(ready_fd, b"R")
        if not last and os.read(go_fd, 1) != b"G":
            raise RuntimeError("the benchmark driver went away")

    def __call__(self, batch_idx: int) -> None:
        if batch_idx < self.first or batch_idx > self.last or (batch_idx - self.first) % self.chunk:
            return
        if self.t_open is not None:
            if self.profiler is not None:
                self.profiler.disable()
            self.sync()
            self.chunks.append((time.perf_counter() - self.t_open) * 1e3 / self.chunk)
        last = batch_idx == self.last
        self._turn(last)
        if last:
            import torch

            self.threads = torch.get_num_threads()
            return
        if self.profiler is not None:
            self.profiler.enable()
        self.sync()
        self.t_open = time.perf_counter()

    def chunks_ms(self) -> list[float]:
        """ms per iteration of each chunk."""
        if len(self.chunks) != self.n_chunks:
            raise RuntimeError("the timed window was not reached: the run stopped early")
        return self.chunks


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
    return net


def _trainer(device: str, window: Window, work_dir: str):
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    class Stamp(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            window(batch_idx)

    return pl.Trainer(
        accelerator="gpu" if device.startswith("cuda") else "cpu",
        devices=1,
        max_epochs=1,
        logger=CSVLogger(work_dir),  # log_every_n_steps: Lightning's default (50)
        callbacks=[Stamp()],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )


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
            loss = F.cross_entropy(self.net(inputs), labels)
            self.manual_backward(loss)
            opt.step()
            opt.zero_grad()

        def configure_optimizers(self):
            return torch.optim.SGD(self.net.parameters(), lr=LR, momentum=MOMENTUM)

    module = ManualModule(net)
    trainer = _trainer(device, window, work_dir)
    trainer.fit(module, loader)
    return net


def _mm2lightning_classifier(net):
    """``net`` in an mm2lightning ``BaseModel`` with a cross-entropy loss (variants (c) and (e))."""
    import torch.nn.functional as F

    from mm2lightning.model import BaseModel

    class Classifier(BaseModel):
        def __init__(self, net) -> None:
            super().__init__()
            self.net = net

        def forward(self, inputs, labels=None, mode="tensor"):
            logits = self.net(inputs)
            if mode == "loss":
                return dict(loss=F.cross_entropy(logits, labels))
            return logits

    return Classifier(net)


def run_mm2lightning(net, loader, device: str, window: Window, work_dir: str):
    from mm2lightning import MMLightningModule

    module = MMLightningModule(
        _mm2lightning_classifier(net), optim_wrapper=dict(optimizer=dict(type="SGD", lr=LR, momentum=MOMENTUM))
    )
    trainer = _trainer(device, window, work_dir)
    trainer.fit(module, loader)
    return net


def run_mmengine(net, loader, device: str, window: Window, work_dir: str, log_level: str = "INFO"):
    import logging

    import torch.nn.functional as F
    from mmengine.hooks import Hook
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Classifier(BaseModel):
        def __init__(self, net) -> None:
            super().__init__()
            self.net = net

        def forward(self, inputs, labels=None, mode="tensor"):
            logits = self.net(inputs)
            if mode == "loss":
                return dict(loss=F.cross_entropy(logits, labels))
            return logits

    class Stamp(Hook):
        priority = "LOWEST"  # after LoggerHook: the same point of the loop as the other variants

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            window(batch_idx)

    model = Classifier(net)
    if device.startswith("cuda"):
        model = model.to(device)
    runner = Runner(
        model=model,
        work_dir=work_dir,
        train_dataloader=loader,
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=LR, momentum=MOMENTUM)),
        default_hooks=dict(checkpoint=None),  # no checkpoint files; every other default hook kept
        custom_hooks=[Stamp()],
        log_level=log_level,
    )
    runner.train()
    logging.getLogger("mmengine").handlers.clear()
    return net


def run_runner(net, loader, device: str, window: Window, work_dir: str):
    import lightning.pytorch as pl

    from mm2lightning.runner import Runner

    class Stamp(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            window(batch_idx)

    runner = Runner(
        model=_mm2lightning_classifier(net),
        work_dir=work_dir,
        train_dataloader=loader,
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=LR, momentum=MOMENTUM)),
        default_hooks=dict(checkpoint=None),  # as (d)
        custom_hooks=[Stamp()],
        trainer_cfg=dict(accelerator="gpu" if device.startswith("cuda") else "cpu", enable_progress_bar=False,
                         enable_model_summary=False),
    )
    runner.train()
    return net


RUNNERS = {
    "plain": run_plain,
    "lightning": run_lightning,
    "mm2lightning": run_mm2lightning,
    "mmengine": run_mmengine,
    "runner": run_runner,
}


# ---------------------------------------------------------------------------------------------- one run (child)
def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def _maxrss_mb() -> float:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024  # bytes on macOS, KiB on Linux


def run_one(spec: dict[str, Any], profiler: Any = None) -> dict[str, Any]:
    """Run one variant on one workload; return its timing, memory and final-parameter checksum."""
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import torch

    if spec["threads"] > 0:
        torch.set_num_threads(spec["threads"])
        torch.set_num_interop_threads(spec["threads"])
    variant, device = spec["variant"], spec["device"]
    # Import the variant's framework before the memory baseline, so that "growth" is the run itself.
    if variant in ("lightning", "mm2lightning", "runner"):
        import lightning.pytorch  # noqa: F401
    if variant == "mm2lightning":
        import mm2lightning.lightning  # noqa: F401
    if variant == "runner":
        import mm2lightning.lightning.runner  # noqa: F401
    if variant == "mmengine":
        import mmengine.runner  # noqa: F401
    wl = WORKLOADS[spec["workload"]]
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    window = Window(spec["warmup"], spec["measured"], sync, profiler, spec.get("ctrl"))
    loader = build_loader(wl, spec["warmup"] + spec["measured"] + TAIL, spec["seed"], device)
    net = build_net(wl.name, spec["seed"])
    baseline: dict[str, float] = {}

    def before_run() -> None:
        baseline["rss"] = _rss_mb()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            baseline["cuda"] = torch.cuda.memory_allocated() / 2**20

    kwargs = {"log_level": spec["mmengine_log_level"]} if variant == "mmengine" else {}
    with tempfile.TemporaryDirectory(prefix=f"bench_{variant}_") as work_dir:
        before_run()  # after imports, data and model: growth is the Trainer/Runner and the run
        net = RUNNERS[variant](net, loader, device, window, work_dir, **kwargs)
    result = dict(
        spec,
        ms_per_iter=statistics.median(window.chunks_ms()),
        mean_ms_per_iter=statistics.fmean(window.chunks_ms()),
        chunks_ms=window.chunks_ms(),
        peak_rss_mb=_maxrss_mb(),
        rss_growth_mb=_maxrss_mb() - baseline["rss"],
        threads_seen=window.threads,
        checksum=checksum(net),
    )
    if cuda:
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["cuda_growth_mb"] = result["peak_cuda_mb"] - baseline["cuda"]
    return result


def child_main(spec_json: str) -> None:
    spec = json.loads(spec_json)
    profiler = None
    if spec.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    result = run_one(spec, profiler)
    if profiler is not None:
        import io
        import pstats

        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream)
        print(f"\n=== cProfile of ({VARIANTS[spec['variant']][0]}) {spec['variant']} on {spec['workload']}: "
              f"{spec['measured']} timed iterations, {result['ms_per_iter']:.3f} ms/iter under the profiler ===")
        stats.sort_stats("tottime").print_stats(spec["profile_top"])
        stats.sort_stats("cumulative").print_stats(spec["profile_top"])
        print(stream.getvalue())
    print(RESULT_MARK + json.dumps(result), flush=True)


class Run:
    """One child process running one variant, with its control pipes and output file."""

    def __init__(self, spec: dict[str, Any], lockstep: bool) -> None:
        self.spec = spec
        self.output = tempfile.TemporaryFile(mode="w+")
        fds: tuple[int, ...] = ()
        if lockstep:
            go_r, self.go_w = os.pipe()  # driver -> child
            self.ready_r, ready_w = os.pipe()  # child -> driver
            spec = dict(spec, ctrl=[go_r, ready_w])
            fds = (go_r, ready_w)
        cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
        env = os.environ.copy()
        if spec.get("steady_malloc"):
            for key, value in STEADY_MALLOC.items():
                env.setdefault(key, value)
        self.proc = subprocess.Popen(cmd, stdout=self.output, stderr=subprocess.STDOUT, pass_fds=fds, env=env)
        for fd in fds:
            os.close(fd)

    def name(self) -> str:
        return f"{self.spec['variant']} on {self.spec['workload']}"

    def wait_ready(self, timeout: float) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.ready_r, selectors.EVENT_READ)
            if not sel.select(timeout):
                raise RuntimeError(f"{self.name()}: no answer within {timeout:.0f} s")
        if os.read(self.ready_r, 1) != b"R":
            self.proc.wait()
            raise RuntimeError(f"{self.name()} failed (exit code {self.proc.returncode})")

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
            raise RuntimeError(f"{self.name()} failed (exit code {self.proc.returncode}):\n{text[-5000:]}")
        return json.loads(lines[-1][len(RESULT_MARK):]), "\n".join(
            line for line in text.splitlines() if not line.startswith(RESULT_MARK)
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for fd in (getattr(self, "go_w", None), getattr(self, "ready_r", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.output.close()


def run_round(specs: list[dict[str, Any]], verbose: bool, timeout: float) -> list[dict[str, Any]]:
    """Start one run per spec, let them take turns chunk by chunk, return their results (in spec order)."""
    runs = [Run(spec, lockstep=True) for spec in specs]
    try:
        for run in runs:  # all warmed up and waiting
            run.wait_ready(timeout)
        for _ in range(specs[0]["measured"] // CHUNK if specs[0]["measured"] % CHUNK == 0 else 1):
            for run in runs:
                run.go()
                run.wait_ready(timeout)
        results = []
        for run in runs:
            result, text = run.finish(timeout)
            if verbose:
                print(text)
            if 0 < result["threads"] != result["threads_seen"]:
                print(f"warning: {run.name()} ran with {result['threads_seen']} torch threads, not {result['threads']}",
                      file=sys.stderr)
            results.append(result)
        return results
    except Exception:
        for run in runs:
            run.output.seek(0)
            sys.stderr.write(f"--- output of {run.name()} ---\n{run.output.read()[-3000:]}\n")
        raise
    finally:
        for run in runs:
            run.close()


def profile(spec: dict[str, Any], timeout: float) -> None:
    run = Run(spec, lockstep=False)
    try:
        _, text = run.finish(timeout)
        print(text)
    finally:
        run.close()


def have_mmengine() -> bool:
    import importlib.util

    return importlib.util.find_spec("mmengine") is not None


def _fmt_ratio(num: float | None, den: float | None) -> str:
    return f"{num / den:.3f}" if num and den else "n/a"


TARGETS = {("mlp", "c/b"): 1.10, ("conv", "c/b"): 1.03, ("conv", "c/d"): 1.0}
RATIOS = {
    "c/a": ("mm2lightning", "plain"),
    "c/b": ("mm2lightning", "lightning"),
    "c/d": ("mm2lightning", "mmengine"),
    "b/d": ("lightning", "mmengine"),
    "e/c": ("runner", "mm2lightning"),
    "e/d": ("runner", "mmengine"),
}


def table(workload: str, runs: list[dict[str, Any]], device: str) -> tuple[str, dict[str, float]]:
    """The Markdown table of one workload, and its ratios."""
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_variant.setdefault(run["variant"], []).append(run)
    med = {v: statistics.median(r["ms_per_iter"] for r in rs) for v, rs in by_variant.items()}
    ref_sum = by_variant["plain"][0]["checksum"] if "plain" in by_variant else None
    cuda = device.startswith("cuda")
    mem_cols = "peak CUDA MB | CUDA growth MB | peak RSS MB" if cuda else "peak RSS MB | RSS growth MB"
    lines = [
        f"| variant | median ms/iter | min–max ms/iter | × plain | {mem_cols} | same weights as (a) |",
        "|---|---:|---:|---:|" + "---:|" * (3 if cuda else 2) + ":---:|",
    ]
    for variant, rs in by_variant.items():
        times = [r["ms_per_iter"] for r in rs]
        mem = (
            [statistics.median(r[k] for r in rs) for k in ("peak_cuda_mb", "cuda_growth_mb", "peak_rss_mb")]
            if cuda
            else [statistics.median(r[k] for r in rs) for k in ("peak_rss_mb", "rss_growth_mb")]
        )
        same = "n/a" if ref_sum is None else (
            "yes" if all(abs(r["checksum"] - ref_sum) <= 1e-4 * max(1.0, abs(ref_sum)) for r in rs) else "NO"
        )
        letter, _ = VARIANTS[variant]
        lines.append(
            f"| ({letter}) {variant} | {med[variant]:.4f} | {min(times):.4f}–{max(times):.4f} | "
            f"{_fmt_ratio(med[variant], med.get('plain'))} | " + " | ".join(f"{m:.1f}" for m in mem) + f" | {same} |"
        )
    ratios = {}
    lines += [
        "",
        "| ratio | of the medians | paired (median over chunks) | target (from the issue; reported, not asserted) |",
        "|---|---:|---:|---|",
    ]
    for name, (num, den) in RATIOS.items():
        if num in med and den in med:
            ratios[name] = med[num] / med[den]
            paired = statistics.median(
                x / y
                for rn, rd in zip(by_variant[num], by_variant[den])
                for x, y in zip(rn["chunks_ms"], rd["chunks_ms"])
            )
            target = TARGETS.get((workload, name))
            verdict = "" if target is None else f"≤ {target:.2f}: {'met' if ratios[name] <= target else 'NOT met'}"
            lines.append(f"| {name} | {ratios[name]:.3f} | {paired:.3f} | {verdict} |")
    return "\n".join(lines), ratios


def environment(args, device: str, variants: list[str]) -> str:
    import torch

    versions = [f"torch {torch.__version__}"]
    for mod in ("lightning", "mmengine"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            versions.append(f"{mod} not installed")
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    dev = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"CPU ({cpu}, {os.cpu_count()} cores)"
    threads = args.threads if args.threads > 0 else f"torch default ({torch.get_num_threads()})"
    return (
        f"- device: `{device}` — {dev}; torch threads: {threads}\n"
        f"- versions: Python {platform.python_version()}, {', '.join(versions)}\n"
        f"- variants: {', '.join(f'({VARIANTS[v][0]}) {v}' for v in variants)}; rounds: {args.rounds}"
        f"{' (--quick)' if args.quick else ''}; MMEngine log_level: {args.mmengine_log_level}\n"
        f"- malloc: {'system defaults' if args.system_malloc or not sys.platform.startswith('linux') else ', '.join(f'{k}={v}' for k, v in STEADY_MALLOC.items())}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="mlp,conv", help="comma-separated: mlp, conv (default: both)")
    parser.add_argument("--variants", default="plain,lightning,mm2lightning,mmengine,runner",
                        help="comma-separated subset of plain, lightning, mm2lightning, mmengine "
                        "(mmengine is skipped when not installed)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="short runs and 1 round: a smoke test (well under a minute)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up iterations (default: per workload)")
    parser.add_argument("--measured", type=int, default=None,
                        help="timed iterations (default: per workload; keep it a multiple of 100)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when available)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads in each run; 0 = torch's default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mmengine-log-level", default="INFO",
                        help="Runner(log_level=...) for (d); INFO is MMEngine's default")
    parser.add_argument("--system-malloc", action="store_true",
                        help="leave glibc's malloc settings as they are (by default the runs keep freed large "
                        "buffers in the heap, for repeatable numbers; see STEADY_MALLOC)")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown report to this file")
    parser.add_argument("--raw", type=Path, default=None, help="write every run's measurements (JSON) to this file")
    parser.add_argument("--profile", action="store_true",
                        help="instead of benchmarking, cProfile the timed window of one run per variant "
                        "(default variants: lightning,mm2lightning) on the first workload")
    parser.add_argument("--profile-top", type=int, default=30, help="rows of each cProfile listing")
    parser.add_argument("--verbose", action="store_true", help="show the runs' own output")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a run may take to reach its next turn")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child_main(args.child)
        return 0

    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    if args.profile and args.variants == parser.get_default("variants"):
        args.variants = "lightning,mm2lightning"
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    if "mmengine" in variants and not have_mmengine():
        print("mmengine is not installed: skipping variant (d) mmengine", file=sys.stderr)
        variants.remove("mmengine")
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 5)
    args.rounds = rounds

    def spec_for(workload: str, variant: str) -> dict[str, Any]:
        wl = WORKLOADS[workload]
        return dict(
            workload=workload,
            variant=variant,
            device=device,
            threads=args.threads,
            seed=args.seed,
            warmup=args.warmup or (wl.quick_warmup if args.quick else wl.warmup),
            measured=args.measured or (wl.quick_measured if args.quick else wl.measured),
            mmengine_log_level=args.mmengine_log_level,
            profile=args.profile,
            profile_top=args.profile_top,
            steady_malloc=not args.system_malloc and sys.platform.startswith("linux"),
        )

    if args.profile:
        for variant in variants:
            profile(spec_for(workloads[0], variant), args.timeout)
        return 0

    started = time.perf_counter()
    load_before = os.getloadavg()
    sections = []
    raw = []
    for workload in workloads:
        runs = []
        for r in range(rounds):
            results = run_round([spec_for(workload, v) for v in variants], args.verbose, args.timeout)
            for result in results:
                result["round"] = r
            runs += results
            raw += results
            print(f"[{workload} round {r + 1}/{rounds}] ms/iter: "
                  + "  ".join(f"({VARIANTS[x['variant']][0]}) {x['ms_per_iter']:.4f}" for x in results),
                  file=sys.stderr, flush=True)
        wl = WORKLOADS[workload]
        text, _ = table(workload, runs, device)
        spec = spec_for(workload, variants[0])
        section = (
            f"## {wl.title}\n\n"
            f"{spec['warmup']} warm-up + {spec['measured']} timed iterations per run, in chunks of {CHUNK}; "
            f"median over {rounds} rounds.\n\n"
            + text
        )
        print("\n" + section + "\n", flush=True)
        sections.append(section)
    elapsed = time.perf_counter() - started
    load = f"load average (1 min) before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}"
    command = "python benchmarks/bench_overhead.py " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:])
    )
    report = (
        "# mm2lightning overhead benchmark\n\n"
        f"Command: `{command.strip()}` ({elapsed:.0f} s)\n\n"
        + environment(args, device, variants)
        + f"\n- {load} (other processes on the machine add noise)\n\n"
        + "\n\n".join(sections)
        + "\n"
    )
    if args.raw is not None:
        args.raw.write_text(json.dumps(raw, indent=1))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
        print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
