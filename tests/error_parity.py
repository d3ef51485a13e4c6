"""The check every ``*_errors_parity`` test makes: the same misuse on mmengine and on mm2lightning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def raised(fn: Callable[[Any], Any], namespace: Any) -> BaseException:
    """The exception ``fn(namespace)`` raises (the test fails if it raises none)."""
    with pytest.raises(BaseException) as info:
        fn(namespace)
    return info.value


def assert_same_error(fn: Callable[[Any], Any], mm_namespace: Any, our_namespace: Any, mm_type: type, phrase: str
                      ) -> BaseException:
    """MMEngine raises ``mm_type`` with ``phrase``; ours raises an instance of MMEngine's type containing it.

    Returns our exception, for further checks.
    """
    mm_error = raised(fn, mm_namespace)
    assert isinstance(mm_error, mm_type), f"mmengine raised {type(mm_error).__name__}: {mm_error}"
    assert phrase in str(mm_error)
    ours = raised(fn, our_namespace)
    assert isinstance(ours, type(mm_error)), f"ours raised {type(ours).__name__}: {ours}"
    assert phrase in str(ours), f"{phrase!r} not in {str(ours)!r}"
    return ours
