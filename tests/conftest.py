"""Shared fixtures: the reference implementation (mmengine) when installed."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def mmengine():
    """Real mmengine, the reference for parity tests; skip when it is absent."""
    return pytest.importorskip(
        "mmengine", reason="parity tests need mmengine (pip install -e '.[test]'); the README's test command installs it"
    )


@pytest.fixture
def log_text(tmp_path, request):
    """A new current mm2lightning ``MMLogger`` writing to a file (where MMEngine-style messages go, as
    ``print_log(..., logger='current')``); call the fixture's value to read what was written."""
    from mm2lightning.logging import MMLogger

    path = tmp_path / "current.log"
    MMLogger.get_instance(f"test_{request.node.name}_{tmp_path.name}", log_file=str(path), log_level="INFO")
    return lambda: path.read_text() if path.exists() else ""


@pytest.fixture(autouse=True)
def _process_state_restored():
    """Each test ends with the process-wide state it found: the default scopes (a Runner's ``default_scope``
    stays current in a process, ours and, for a toolbox on mmengine's registries, MMEngine's), torch's
    deterministic-algorithms flag (``randomness=dict(deterministic=True)`` sets it for the process) and the
    environment (a Runner's ``seed_everything`` sets ``PL_GLOBAL_SEED``, with which the Lightning processes
    that later tests start would reseed)."""
    import os
    import sys

    import torch

    from mm2lightning.registry import DefaultScope

    deterministic = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())

    scopes = [DefaultScope]
    if "mmengine.registry" in sys.modules:
        scopes.append(sys.modules["mmengine.registry"].DefaultScope)
    saved = [cls._instance_dict.copy() for cls in scopes]
    environment = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(environment)
    for cls, instances in zip(scopes, saved):
        cls._instance_dict.clear()
        cls._instance_dict.update(instances)
    torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
