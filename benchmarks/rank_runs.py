"""One distributed benchmark run in a subprocess: rank 0 runs the script's worker, Lightning launches the others.

Shared by ``bench_ddp.py`` and ``bench_fsdp.py``. The worker writes ``rank<r>.json`` (and anything else) into
``spec['result_dir']``; :func:`rank_run` yields that folder and the parsed JSON results, then deletes it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_RANK_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "GLOBAL_RANK", "WORLD_SIZE", "RANK")  # the subprocess is rank 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def rank_run(
    script: str | os.PathLike[str],
    worker_flag: str,
    spec: Mapping[str, Any],
    world: int,
    timeout: float,
    verbose: bool,
    env: Mapping[str, str] | None = None,
) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    """Run ``python SCRIPT WORKER_FLAG <spec as JSON>`` (with ``result_dir`` and ``timeout`` added to the spec).

    Args:
        script: The benchmark script; its worker mode runs one rank.
        worker_flag: The script's hidden flag for worker mode (``--worker``).
        spec: What the worker runs (JSON-serialisable).
        world: Number of ranks whose ``rank<r>.json`` must exist afterwards.
        timeout: Seconds the run may take; then its whole session (every rank) is killed.
        verbose: Print the run's own output.
        env: Extra environment variables (not overriding the caller's).

    Yields:
        The result folder and each rank's JSON result.

    Raises:
        RuntimeError: The run failed or a rank wrote no result (with the run's output).
    """
    name = str(spec.get("strategy", "run"))
    with tempfile.TemporaryDirectory(prefix=f"{Path(script).stem}_{name}_") as result_dir, \
            tempfile.TemporaryFile(mode="w+") as output:  # fmt: skip
        spec = dict(spec, result_dir=result_dir, timeout=timeout)
        run_env = {k: v for k, v in os.environ.items() if k not in _RANK_VARIABLES}
        run_env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
        for key, value in (env or {}).items():
            run_env.setdefault(key, value)
        cmd = [sys.executable, os.path.abspath(script), worker_flag, json.dumps(spec)]
        # A session of its own: on a timeout, the whole run (rank 0 and the ranks it launched) is killed.
        proc = subprocess.Popen(cmd, env=run_env, stdout=output, stderr=subprocess.STDOUT,
                                cwd=Path(script).resolve().parents[1], start_new_session=True)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        output.seek(0)
        text = output.read()
        if verbose:
            print(text, file=sys.stderr)
        files = [Path(result_dir) / f"rank{r}.json" for r in range(world)]
        if proc.returncode != 0 or not all(f.exists() for f in files):
            raise RuntimeError(
                f"{name} run failed (exit code {proc.returncode}; result files: "
                f"{[f.name for f in files if f.exists()]}):\n{text[-5000:]}"
            )
        yield Path(result_dir), [json.loads(f.read_text()) for f in files]
