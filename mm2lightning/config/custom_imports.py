"""MMEngine's ``custom_imports``: import the user's modules named in a config, so their registered types resolve."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping
from typing import Any


def import_custom_modules(spec: Mapping[str, Any] | None) -> None:
    """Import MMEngine's ``custom_imports=dict(imports=[...], allow_failed_imports=False)``.

    The modules' ``register_module`` calls run, so the config's ``type`` names resolve. ``imports`` may be a
    name or a list; with ``allow_failed_imports`` a module that fails to import is skipped with a warning.

    Raises:
        ImportError: A module cannot be imported and ``allow_failed_imports`` is not set.
    """
    if not spec:
        return
    names = spec.get("imports", [])
    for name in [names] if isinstance(names, str) else names:
        try:
            importlib.import_module(name)
        except ImportError as error:
            if not spec.get("allow_failed_imports", False):
                message = f"custom_imports: cannot import {name!r} ({error}); is its folder on PYTHONPATH?"
                raise ImportError(message) from error
            warnings.warn(f"custom_imports: {name!r} failed to import and is skipped", UserWarning, stacklevel=3)
