"""Exception types that are also the type MMEngine raises for the same misuse.

Where MMEngine ``assert``s, we raise a natural type (``ValueError``,
``TypeError``, ``KeyError``) that is also an ``AssertionError``, so both
``except ValueError`` and MMEngine users' ``except AssertionError`` catch it.
Each message keeps our explanation and contains MMEngine's phrase. The mapping
is listed in ``docs/errors.md``.
"""

from __future__ import annotations


class MMEngineAssertionError(AssertionError):
    """Base of our errors raised where MMEngine asserts."""


class AssertValueError(ValueError, MMEngineAssertionError):
    """A ``ValueError`` that is also MMEngine's ``AssertionError``."""


class AssertTypeError(TypeError, MMEngineAssertionError):
    """A ``TypeError`` that is also MMEngine's ``AssertionError``."""


class AssertKeyError(KeyError, MMEngineAssertionError):
    """A ``KeyError`` that is also MMEngine's ``AssertionError``."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""


class TypeAttributeError(TypeError, AttributeError):
    """A ``TypeError`` that is also the ``AttributeError`` MMEngine's code hits for the same misuse."""


class EmptySequenceError(ValueError, IndexError):
    """A ``ValueError`` that is also the ``IndexError`` MMEngine's code hits on an empty list."""


__all__ = ["AssertKeyError", "EmptySequenceError", "AssertTypeError", "AssertValueError", "MMEngineAssertionError", "TypeAttributeError"]
