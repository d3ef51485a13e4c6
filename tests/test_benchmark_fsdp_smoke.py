"""The FSDP benchmark (benchmarks/bench_fsdp.py) runs FSDP2 and DDP with 2 gloo processes and prints its tables."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_fsdp.py"
NUMBER = r"(\d+\.\d+)"
BYTES = r"(\d[\d,]*) \([\d.]+ MiB\)"


def test_quick_run_prints_each_setup_bytes_times_ratios_and_same_weights():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--rounds", "1"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    bytes_per_strategy = {}
    for strategy in ("fsdp", "fsdp_reshard", "ddp"):
        # hidden, strategy, parameters, rank 0 and rank 1 bytes, rank 0 and rank 1 ms/iter
        row = re.search(rf"^\| \d+ \| {strategy} \| [\d,]+ \| {BYTES} \| {BYTES} \| {NUMBER} \| {NUMBER} \|$",
                        out, re.MULTILINE)
        assert row, f"no table row for {strategy} with both ranks' bytes and times:\n{out}"
        sizes = [int(row.group(i).replace(",", "")) for i in (1, 2)]
        assert all(size > 0 for size in sizes)
        assert float(row.group(3)) > 0 and float(row.group(4)) > 0
        bytes_per_strategy[strategy] = sizes
    # per FSDP setup, the ratios row: bytes /DDP for both ranks, time /DDP with its spread, the weights check
    for setup in ("fsdp", "fsdp_reshard"):
        ratio = re.search(rf"^\| \d+ \| {setup} \| {NUMBER} \| {NUMBER} \| {NUMBER} \({NUMBER}–{NUMBER}\) \| "
                          rf"{NUMBER} \({NUMBER}–{NUMBER}\) \| [^|]+ \| same weights: yes \|$", out, re.MULTILINE)
        assert ratio, f"no {setup}/DDP ratio row ending in 'same weights: yes':\n{out}"
        assert all(float(ratio.group(i)) > 0 for i in range(1, 9))
        sharded, ddp = bytes_per_strategy[setup], bytes_per_strategy["ddp"]
        assert abs(float(ratio.group(1)) - sharded[0] / ddp[0]) < 1e-3
        assert re.search(rf"^Targets, {setup} \(hidden \d+, 2 ranks, 1 round\(s\)\): bytes /DDP [\d.]+ <= 0.55: "
                         r"(PASS|FAIL); time /DDP [\d.]+ <= 1.3: (PASS|FAIL); same weights: yes \(PASS\)$",
                         out, re.MULTILINE), out
    assert "torch " in out and "lightning " in out and "CPU cores" in out
