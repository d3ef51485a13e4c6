"""Whole-model DDP against SeparateDDPStrategy: a GAN trained by 2 processes on CPU (gloo).

The same GAN (generator and discriminator MLPs, an ``OptimWrapperDict`` built from
a dict of per-submodule configs, a ``train_step`` that updates the discriminator
then the generator), data and seed run under

  whole    - Lightning's ``DDPStrategy(find_unused_parameters=True)``: one DDP over
             the whole LightningModule (a GAN needs find_unused_parameters there);
  separate - mm2lightning's ``SeparateDDPStrategy()``: one DDP per child
             (generator, discriminator), ``find_unused_parameters=False``;
  single   - a reference: one process, no DDP, one rank's batch per iteration
             (what an iteration costs without communication).

``--strategies`` also offers ``separate_unused`` (``SeparateDDPStrategy(find_unused_parameters=True)``),
to tell the cost of DDP's unused-parameter search from that of the all-reduced volume.

Each run is a subprocess (``bench_ddp.py --child <json>``) that is rank 0;
Lightning re-launches the same command for rank 1. The runs alternate (whole,
separate, single, whole, ...), one at a time. Each rank times chunks of whole
iterations after the warm-up from a callback at the end of every iteration and
writes its result as JSON; the report gives the median over the runs of each
run's median chunk. See benchmarks/README.md.

    python benchmarks/bench_ddp.py                          # 3 rounds (~3-4 min on 2 cores)
    python benchmarks/bench_ddp.py --quick                  # smoke run: 1 round, well under a minute
    python benchmarks/bench_ddp.py --out benchmarks/results_ddp.md
    python benchmarks/bench_ddp.py --count-comm --strategies whole,separate   # count the gradient all-reduces
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from rank_runs import rank_run

STRATEGIES = {  # name -> (processes, what runs)
    "whole": (2, "Lightning's `DDPStrategy(find_unused_parameters=True)`: one DDP over the whole LightningModule"),
    "separate": (2, "mm2lightning's `SeparateDDPStrategy()`: one DDP per child with parameters, "
                 "find_unused_parameters=False"),
    "separate_unused": (2, "diagnostic, not run by default: `SeparateDDPStrategy(find_unused_parameters=True)`, "
                        "the same all-reduced elements as separate plus DDP's unused-parameter search"),
    "single": (1, "reference: one process, no DDP (Lightning's default single-device strategy), the same batch "
               "per iteration as one rank: compute and framework cost without communication"),
}
WORLD = 2  # processes of the DDP runs
# glibc settings that keep freed activation buffers in the heap instead of unmapping them and page-faulting them
# back every iteration, for repeatable times (see benchmarks/README.md; --system-malloc turns them off).
STEADY_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}
TAIL = 1  # iterations after the timed window, so that nothing end-of-run happens inside it
POOL = 32  # distinct synthetic batches, cycled (even: rank 0 gets the even ones, rank 1 the odd ones)
DEFAULTS = dict(warmup=50, measured=1500, chunk=100)
QUICK = dict(warmup=10, measured=100, chunk=50)
G_OPTIM = dict(optimizer=dict(type="Adam", lr=1e-4, betas=(0.5, 0.999)))
D_OPTIM = dict(optimizer=dict(type="SGD", lr=0.01, momentum=0.9), clip_grad=dict(max_norm=1.0))


# ---------------------------------------------------------------------------------------------- model and data
def build_gan(spec: dict[str, Any], rank: int):
    """The GAN, seeded: every run and rank starts from the same weights; the noise differs per rank."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from mm2lightning.model import BaseModel

    latent, hidden, dim = spec["latent"], spec["hidden"], spec["dim"]

    def set_requires_grad(module: nn.Module, flag: bool) -> None:
        for param in module.parameters():
            param.requires_grad_(flag)

    class GAN(BaseModel):
        """As tests/lightning/gan.py (MMEngine's GAN tutorial), with wider and deeper MLPs."""

        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(spec["seed"])
            self.generator = nn.Sequential(
                nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, dim)
            )
            self.discriminator = nn.Sequential(
                nn.Linear(dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                nn.Linear(hidden, 1),
            )  # fmt: skip
            self.noise = torch.Generator().manual_seed(spec["seed"] + 1 + rank)

        def forward(self, inputs, data_samples=None, mode="tensor"):
            return self.generator(inputs)

        def train_step(self, data, optim_wrapper):
            real = self.data_preprocessor(data, True)["inputs"]
            z = torch.randn(real.shape[0], latent, generator=self.noise)
            with optim_wrapper["discriminator"].optim_context(self.discriminator):
                fake = self.generator(z).detach()
                pred_fake, pred_real = self.discriminator(fake), self.discriminator(real)
                losses = dict(
                    loss_disc_fake=F.binary_cross_entropy_with_logits(pred_fake, torch.zeros_like(pred_fake)),
                    loss_disc_real=F.binary_cross_entropy_with_logits(pred_real, torch.ones_like(pred_real)),
                )
            loss_disc, log_vars = self.parse_losses(losses)
            optim_wrapper["discriminator"].update_params(loss_disc)
            set_requires_grad(self.discriminator, False)
            with optim_wrapper["generator"].optim_context(self.generator):
                pred = self.discriminator(self.generator(z))
                loss_gen = F.binary_cross_entropy_with_logits(pred, torch.ones_like(pred))
            loss_gen, log_vars_gen = self.parse_losses(dict(loss_gen=loss_gen))
            optim_wrapper["generator"].update_params(loss_gen)
            set_requires_grad(self.discriminator, True)
            log_vars.update(log_vars_gen)
            return log_vars

    return GAN()


class BatchDataset:
    """A map-style dataset of pre-collated ``dict(inputs=...)`` batches, cycled."""

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


def build_loader(spec: dict[str, Any], iterations: int, world: int):
    """``world * iterations`` synthetic batches (a mixture of Gaussians); Lightning's DistributedSampler gives
    each rank its share (rank r: batches r, r + world, ...), so the ranks train on different data."""
    import torch
    from torch.utils.data import DataLoader

    gen = torch.Generator().manual_seed(spec["seed"] + 100)
    centers = 3 * torch.randn(8, spec["dim"], generator=gen)
    batches = []
    for _ in range(POOL):
        k = torch.randint(0, len(centers), (spec["batch"],), generator=gen)
        batches.append(dict(inputs=centers[k] + 0.2 * torch.randn(spec["batch"], spec["dim"], generator=gen)))
    return DataLoader(BatchDataset(batches, world * iterations), batch_size=1, collate_fn=first, shuffle=False)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------- the timed window
class Window:
    """Times chunks of ``chunk`` whole iterations after ``warmup`` iterations, back to back.

    Called with the 0-based batch index at the end of every iteration (after both optimizer steps): it opens
    the first chunk at the end of iteration ``warmup - 1`` and closes one every ``chunk`` iterations, up to
    ``warmup + measured - 1``.
    """

    def __init__(self, warmup: int, measured: int, chunk: int) -> None:
        self.first = warmup - 1
        self.last = warmup + measured - 1
        self.chunk = chunk
        self.n_chunks = measured // chunk
        self.chunks: list[float] = []
        self.t_open: float | None = None
        self.threads: int | None = None

    def __call__(self, batch_idx: int) -> None:
        if batch_idx < self.first or batch_idx > self.last or (batch_idx - self.first) % self.chunk:
            return
        now = time.perf_counter()
        if self.t_open is not None:
            self.chunks.append((now - self.t_open) * 1e3 / self.chunk)
        if batch_idx == self.last:
            import torch

            self.threads = torch.get_num_threads()
            return
        self.t_open = time.perf_counter()

    def chunks_ms(self) -> list[float]:
        if len(self.chunks) != self.n_chunks:
            raise RuntimeError(f"the timed window was not reached: {len(self.chunks)} of {self.n_chunks} chunks")
        return self.chunks


# ---------------------------------------------------------------------------------------------- DDP inspection
def _ddps(trainer, pl_module) -> list[tuple[str, Any]]:
    """The DDP modules of the run: Lightning's around the whole LightningModule, or one per wrapped child."""
    from torch.nn.parallel import DistributedDataParallel

    candidates = [("whole module", trainer.strategy.model)] + list(pl_module.model.named_children())
    return [(name, m) for name, m in candidates if isinstance(m, DistributedDataParallel)]


def ddp_layout(trainer, pl_module) -> list[dict[str, Any]]:
    """Each DDP's name, parameter count and find_unused_parameters, as built for the run."""
    return [
        dict(name=name, params=n_params(ddp.module), find_unused=bool(ddp.find_unused_parameters))
        for name, ddp in _ddps(trainer, pl_module)
    ]


def count_comm(trainer, pl_module, counts: dict[str, dict[str, int]]) -> None:
    """``--count-comm``: a DDP communication hook on every DDP that counts its all-reduce calls and elements, then
    runs PyTorch's default all-reduce hook (a Python hook: slightly different timing than DDP's built-in path)."""
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    def hook(state: dict[str, int], bucket):
        state["calls"] += 1
        state["elements"] += bucket.buffer().numel()
        return default_hooks.allreduce_hook(None, bucket)

    for name, ddp in _ddps(trainer, pl_module):
        counts[name] = dict(calls=0, elements=0)
        ddp.register_comm_hook(counts[name], hook)


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


def child_main(spec_json: str) -> None:
    """One training run on one rank. Rank 0 runs this from the driver's command; Lightning re-runs the same
    command (same argv) for rank 1 with ``LOCAL_RANK=1`` in its environment."""
    spec = json.loads(spec_json)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import torch

    if spec["threads"] > 0:
        torch.set_num_threads(spec["threads"])
        torch.set_num_interop_threads(spec["threads"])
    import lightning.pytorch as pl
    from lightning.pytorch.strategies import DDPStrategy

    from mm2lightning import MMLightningModule, SeparateDDPStrategy

    world = STRATEGIES[spec["strategy"]][0]
    rank = int(os.environ.get("LOCAL_RANK", 0))  # one node: Lightning sets LOCAL_RANK=1 for the rank it launches
    iterations = spec["warmup"] + spec["measured"] + TAIL
    loader = build_loader(spec, iterations, world)
    model = build_gan(spec, rank)
    window = Window(spec["warmup"], spec["measured"], spec["chunk"])
    layout: list[dict[str, Any]] = []
    comm: dict[str, dict[str, int]] = {}

    class Stamp(pl.Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            layout.extend(ddp_layout(trainer, pl_module))
            if spec["count_comm"]:
                count_comm(trainer, pl_module, comm)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            window(batch_idx)

    strategy = {
        "whole": lambda: DDPStrategy(find_unused_parameters=True),
        "separate": lambda: SeparateDDPStrategy(),
        "separate_unused": lambda: SeparateDDPStrategy(find_unused_parameters=True),
        "single": lambda: "auto",
    }[spec["strategy"]]()
    module = MMLightningModule(
        model, optim_wrapper=dict(generator=G_OPTIM, discriminator=D_OPTIM)  # an OptimWrapperDict
    )
    rss_before = _rss_mb()  # after imports, data and model: growth is the Trainer, the process group and the run
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=world,
        strategy=strategy,
        max_epochs=1,
        use_distributed_sampler=True,  # rank r gets batches r, r + world, ... of the loader
        logger=False,  # the strategies are compared, not the loggers: no logger for either
        callbacks=[Stamp()],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(module, loader)
    chunks = window.chunks_ms()
    result = dict(
        spec,
        rank=trainer.global_rank,
        world_size=trainer.world_size,
        iterations=trainer.global_step,
        ms_per_iter=statistics.median(chunks),
        mean_ms_per_iter=statistics.fmean(chunks),
        chunks_ms=chunks,
        peak_rss_mb=_maxrss_mb(),
        rss_growth_mb=_maxrss_mb() - rss_before,
        threads_seen=window.threads,
        checksum=float(sum(p.detach().double().sum() for p in module.model.parameters())),
        params=dict(generator=n_params(module.model.generator), discriminator=n_params(module.model.discriminator)),
        ddps=layout,
        comm={name: {k: v / trainer.global_step for k, v in c.items()} for name, c in comm.items()},
    )
    out = Path(spec["result_dir"]) / f"rank{trainer.global_rank}.json"
    out.write_text(json.dumps(result))
    if trainer.global_rank == 0:  # wait for the ranks Lightning launched, so that the next run starts on idle cores
        for proc in getattr(trainer.strategy.launcher, "procs", []):
            proc.wait(timeout=spec["timeout"])


# ---------------------------------------------------------------------------------------------- driver
def run_one(spec: dict[str, Any], verbose: bool, timeout: float) -> list[dict[str, Any]]:
    """Run one strategy in a subprocess (rank 0; Lightning launches rank 1 from it); return each rank's result."""
    world = STRATEGIES[spec["strategy"]][0]
    env = STEADY_MALLOC if spec["steady_malloc"] else None
    with rank_run(__file__, "--child", spec, world, timeout, verbose, env=env) as (_, results):
        pass
    for result in results:
        if 0 < result["threads"] != result["threads_seen"]:
            print(f"warning: {spec['strategy']} rank {result['rank']} ran with {result['threads_seen']} torch threads, "
                  f"not {result['threads']}", file=sys.stderr)
    return results


def _range(values: list[float]) -> str:
    return f"{min(values):.3f}–{max(values):.3f}"


def _ddps_text(ddps: list[dict[str, Any]]) -> str:
    if not ddps:
        return "none"
    unused = {d["find_unused"] for d in ddps}
    return (", ".join(f"{d['name']} ({d['params']:,})" for d in ddps)
            + (f"; find_unused={unused.pop()}" if len(unused) == 1 else ""))


def table(runs: dict[str, list[list[dict[str, Any]]]]) -> tuple[str, dict[str, float]]:
    """The Markdown tables of the report, and the separate / whole ratios; ``runs[strategy][round][rank]``."""
    ref = runs["whole"][0][0]["checksum"] if "whole" in runs else None
    med: dict[str, list[float]] = {}  # strategy -> median over the runs of each rank's ms/iter
    single = None
    if "single" in runs:
        single = statistics.median(rnd[0]["ms_per_iter"] for rnd in runs["single"])
    lines = [
        "| strategy | rank 0 ms/iter | rank 0 min–max | rank 1 ms/iter | rank 1 min–max | × single "
        "| peak RSS MB rank 0 / 1 | RSS growth MB rank 0 / 1 | DDP modules (parameters) | same weights |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|:---:|",
    ]
    for strategy, rounds in runs.items():
        world = len(rounds[0])
        per_rank = [[rnd[r]["ms_per_iter"] for rnd in rounds] for r in range(world)]
        med[strategy] = [statistics.median(v) for v in per_rank]
        peak = [statistics.median(rnd[r]["peak_rss_mb"] for rnd in rounds) for r in range(world)]
        growth = [statistics.median(rnd[r]["rss_growth_mb"] for rnd in rounds) for r in range(world)]
        # Every rank of every DDP run ends at the same weights: the ranks stayed in sync, and both strategies trained
        # the same model on the same data for the same iterations. (single trains on one rank's data: not comparable.)
        same = "n/a" if ref is None or world == 1 else (
            "yes" if all(abs(res["checksum"] - ref) <= 1e-5 * max(1.0, abs(ref)) for rnd in rounds for res in rnd)
            else "NO"
        )
        rank1 = f"{med[strategy][1]:.3f} | {_range(per_rank[1])}" if world > 1 else "— | —"
        vs_single = f"{med[strategy][0] / single:.2f}" if single else "n/a"
        lines.append(
            f"| {strategy} | {med[strategy][0]:.3f} | {_range(per_rank[0])} | {rank1} | {vs_single} | "
            + " / ".join(f"{x:.1f}" for x in peak) + " | " + " / ".join(f"{x:.1f}" for x in growth)
            + f" | {_ddps_text(rounds[0][0]['ddps'])} | {same} |"
        )
    if any(rnd[0]["comm"] for rounds in runs.values() for rnd in rounds):
        lines += [
            "",
            "| strategy | gradient all-reduce calls / iteration | elements all-reduced / iteration |",
            "|---|---:|---:|",
        ]
        for strategy, rounds in runs.items():
            comm = rounds[0][0]["comm"]
            if comm:
                lines.append(
                    f"| {strategy} | " + " + ".join(f"{c['calls']:g} ({n})" for n, c in comm.items()) + " | "
                    + " + ".join(f"{c['elements']:,.0f} ({n})" for n, c in comm.items()) + " |"
                )
    ratios: dict[str, float] = {}
    if "whole" in runs and "separate" in runs:
        lines += [
            "",
            "| separate / whole | of the medians | paired (median of the per-round ratios) | per round |",
            "|---|---:|---:|---|",
        ]
        for r in range(min(len(runs["whole"][0]), len(runs["separate"][0]))):
            per_round = [s[r]["ms_per_iter"] / w[r]["ms_per_iter"] for w, s in zip(runs["whole"], runs["separate"])]
            ratios[f"rank{r}"] = med["separate"][r] / med["whole"][r]
            lines.append(
                f"| rank {r} | **{ratios[f'rank{r}']:.3f}** | {statistics.median(per_round):.3f} | "
                + ", ".join(f"{x:.3f}" for x in per_round) + " |"
            )
    return "\n".join(lines), ratios


def environment(args: argparse.Namespace, spec: dict[str, Any], params: dict[str, int]) -> str:
    import torch

    versions = [f"torch {torch.__version__}"]
    try:
        versions.append(f"lightning {__import__('lightning').__version__}")
    except ImportError:
        versions.append("lightning not installed")
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    threads = args.threads if args.threads > 0 else "torch default"
    malloc = ", ".join(f"{k}={v}" for k, v in STEADY_MALLOC.items()) if spec["steady_malloc"] else "system defaults"
    total = sum(params.values())
    return (
        f"- device: CPU ({cpu}, {os.cpu_count()} cores); DDP over {WORLD} processes (gloo, 127.0.0.1); "
        f"torch threads per process: {threads}\n"
        f"- versions: Python {platform.python_version()}, {', '.join(versions)}\n"
        f"- model: generator {spec['latent']}-{spec['hidden']}-{spec['hidden']}-{spec['dim']} (ReLU), discriminator "
        f"{spec['dim']}-{spec['hidden']}-{spec['hidden']}-1 (LeakyReLU): {params['generator']:,} + "
        f"{params['discriminator']:,} = {total:,} parameters ({total * 4 / 2**20:.2f} MiB of float32 gradients); "
        f"batch {spec['batch']} per rank; generator Adam, discriminator SGD with momentum and clip_grad "
        "(an OptimWrapperDict from a dict of per-submodule configs)\n"
        f"- malloc: {malloc}"
        + ("\n- `--count-comm`: a counting DDP communication hook on every DDP (times include its cost)"
           if spec["count_comm"] else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None,
                        help="runs of each strategy, alternating (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help=f"short runs (warm-up {QUICK['warmup']}, {QUICK['measured']} timed iterations in chunks "
                        f"of {QUICK['chunk']}) and 1 round: a smoke test, well under a minute")
    parser.add_argument("--warmup", type=int, default=None, help=f"warm-up iterations (default {DEFAULTS['warmup']})")
    parser.add_argument("--iters", type=int, default=None,
                        help=f"timed iterations per run (default {DEFAULTS['measured']}; a multiple of --chunk)")
    parser.add_argument("--chunk", type=int, default=None,
                        help=f"iterations per timed chunk (default {DEFAULTS['chunk']})")
    parser.add_argument("--strategies", default="whole,separate,single",
                        help="comma-separated, run in this order in every round: whole, separate, single (the "
                        "default), separate_unused")
    parser.add_argument("--hidden", type=int, default=256, help="hidden width of both MLPs (default 256)")
    parser.add_argument("--latent", type=int, default=32, help="noise dimension (default 32)")
    parser.add_argument("--dim", type=int, default=64, help="data dimension (default 64)")
    parser.add_argument("--batch", type=int, default=64, help="batch size per rank (default 64)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads in each process (default 1); 0 = torch's default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count-comm", action="store_true",
                        help="count each DDP's all-reduce calls and elements per iteration (a Python comm hook)")
    parser.add_argument("--system-malloc", action="store_true", help="leave glibc's malloc settings as they are")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown report to this file")
    parser.add_argument("--raw", type=Path, default=None, help="write every run's results (JSON) to this file")
    parser.add_argument("--verbose", action="store_true", help="show the runs' own output")
    parser.add_argument("--timeout", type=float, default=600, help="seconds one run may take")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child_main(args.child)
        return 0

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        parser.error(f"unknown strategies {unknown}; choose from {list(STRATEGIES)}")
    sizes = QUICK if args.quick else DEFAULTS
    spec = dict(
        warmup=args.warmup if args.warmup is not None else sizes["warmup"],
        measured=args.iters if args.iters is not None else sizes["measured"],
        chunk=args.chunk if args.chunk is not None else sizes["chunk"],
        hidden=args.hidden, latent=args.latent, dim=args.dim, batch=args.batch,
        threads=args.threads, seed=args.seed, count_comm=args.count_comm,
        steady_malloc=not args.system_malloc and sys.platform.startswith("linux"),
    )  # fmt: skip
    if spec["warmup"] < 1 or spec["chunk"] < 1 or spec["measured"] < spec["chunk"] or spec["measured"] % spec["chunk"]:
        parser.error(f"need --warmup >= 1 and --iters a positive multiple of --chunk ({spec['chunk']})")
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.rounds < 1:
        parser.error("need --rounds >= 1")

    started = time.perf_counter()
    load_before = os.getloadavg()
    runs: dict[str, list[list[dict[str, Any]]]] = {s: [] for s in strategies}
    for r in range(args.rounds):
        for strategy in strategies:  # interleaved: whole, separate, single, whole, separate, single, ...
            t0 = time.perf_counter()
            results = run_one(dict(spec, strategy=strategy), args.verbose, args.timeout)
            runs[strategy].append(results)
            print(f"[round {r + 1}/{args.rounds}] {strategy}: ms/iter "
                  + " ".join(f"rank {x['rank']} {x['ms_per_iter']:.3f}" for x in results)
                  + f" (run {time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started
    text, _ = table(runs)
    params = next(iter(runs.values()))[0][0]["params"]
    command = "python benchmarks/bench_ddp.py " + " ".join(argv if argv is not None else sys.argv[1:])
    strategies_text = "\n".join(f"- **{s}**: {STRATEGIES[s][1]}" for s in strategies)
    report = (
        "# mm2lightning DDP benchmark: whole-model DDP vs SeparateDDPStrategy on a GAN\n\n"
        f"Command: `{command.strip()}` ({elapsed:.0f} s)\n\n"
        + environment(args, spec, params)
        + f"\n- load average (1 min) before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} "
        "(every process on the machine counts, this benchmark's own included)\n\n"
        + strategies_text
        + f"\n\n{spec['warmup']} warm-up + {spec['measured']} timed iterations per run, in chunks of {spec['chunk']}; "
        f"a run's time is the median of its chunks, the table gives the median (and min–max) over {args.rounds} "
        f"run(s) per strategy, the strategies run alternately. One iteration is one `train_step`: a discriminator "
        "and a generator update. × single: rank 0's time over the single-process reference's.\n\n"
        + text
        + "\n"
    )
    print("\n" + report, flush=True)
    if args.raw is not None:
        args.raw.write_text(json.dumps(runs, indent=1))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
        print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
