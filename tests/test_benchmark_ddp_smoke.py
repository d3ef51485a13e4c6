"""The DDP benchmark (benchmarks/bench_ddp.py) runs both strategies with 2 gloo processes and prints its table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_ddp.py"
NUMBER = r"(\d+\.\d+)"


def test_quick_run_prints_both_strategies_and_their_ratio():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--rounds", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for strategy in ("whole", "separate"):
        # rank 0 and rank 1 times, and both ranks of the run ending at the same weights as rank 0 of whole
        times = rf"{NUMBER} \| [\d.]+–[\d.]+"
        row = re.search(rf"^\| {strategy} \| {times} \| {times} \|.*\| yes \|$", out, re.MULTILINE)
        assert row, f"no table row for {strategy} with both ranks' times and the same weights:\n{out}"
        assert float(row.group(1)) > 0 and float(row.group(2)) > 0
    assert re.search(r"^\| whole \|.*\| whole module \(\d[\d,]*\); find_unused=True \|", out, re.MULTILINE), out
    assert re.search(r"^\| separate \|.*\| generator \([\d,]+\), discriminator \([\d,]+\); find_unused=False \|",
                     out, re.MULTILINE), out
    assert re.search(rf"^\| single \| {NUMBER} \|", out, re.MULTILINE), out
    ratio = re.search(rf"^\| rank 0 \| \*\*{NUMBER}\*\* \| {NUMBER} \|", out, re.MULTILINE)
    assert ratio, f"no separate / whole ratio:\n{out}"
    assert float(ratio.group(1)) > 0
