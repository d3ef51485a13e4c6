"""The overhead benchmark (benchmarks/bench_overhead.py) runs and prints its table."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_overhead.py"


def test_quick_run_prints_a_table_row_per_variant():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--workloads", "mlp", "--rounds", "1", "--device", "cpu"],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout
    variants = {"a": "plain", "b": "lightning", "c": "mm2lightning", "e": "runner"}
    if importlib.util.find_spec("mmengine") is not None:
        variants["d"] = "mmengine"
    assert "## tiny MLP" in out
    for letter, name in variants.items():
        row = re.search(rf"^\| \({letter}\) {name} \| (\d+\.\d+) \|.*\| yes \|$", out, re.MULTILINE)
        assert row, f"no table row for ({letter}) {name} with the same final weights as (a):\n{out}"
        assert float(row.group(1)) > 0
    for ratio in ("c/b", "e/c"):  # paired: median, interquartile range, spread
        assert re.search(rf"^\| {ratio} \| \*\*\d+\.\d+\*\* \| \d+\.\d+–\d+\.\d+ \| \d+\.\d%", out, re.MULTILINE), out
