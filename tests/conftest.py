"""Shared fixtures: the reference implementation (mmengine) when installed."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def mmengine():
    """Real mmengine, the reference for parity tests; skip when it is absent."""
    return pytest.importorskip(
        "mmengine", reason="parity tests need mmengine (pip install -e '.[test]'); the README's test command installs it"
    )
