"""Loading MMEngine checkpoints with torch's weights-only unpickler and inert stand-ins for what they pickle.

``torch.load(weights_only=True)`` refuses MMEngine's checkpoints: they pickle
``HistoryBuffer`` objects and numpy values. Allowlisting the real numpy classes
would let a file rebuild arrays from any dtype it describes (an object field over
raw bytes reads a forged pointer). :func:`restricted_load` keeps torch's
weights-only unpickler, which checks every opcode (what may be called, built,
appended to), and allowlists, under MMEngine's and numpy's names, only stand-ins:

* :class:`HistoryBufferData` for MMEngine's ``HistoryBuffer`` (plain attributes), and
  ``getattr(HistoryBuffer, 'min' | 'max' | 'current' | 'mean')``, which its pickled
  state names, answered by the name;
* numpy arrays, dtypes and scalars rebuilt from checked raw bytes, for boolean and
  numeric dtypes only (no object, structured, string or datetime dtypes).

The stand-ins are in torch's process-wide allowlist for the duration of a load
only, under a lock (so that concurrent loads do not remove each other's); entries
the process added under the same names step aside meanwhile and are restored.
Sparse tensors are validated. Only ``torch.save``'s zip format is read.
"""

from __future__ import annotations

import math
import pickle
import pickletools
import re
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
from pathlib import Path
from typing import Any

import torch

_HISTORY_BUFFER = "mmengine.logging.history_buffer.HistoryBuffer"
_HISTORY_BUFFER_STATISTICS = frozenset({"min", "max", "current", "mean"})
_NUMERIC_DTYPE = re.compile(r"^[?bBhHiIlLqQpPefdgFDG]$|^[biufc]\d{1,2}$")  # bool, integer, float, complex


class RefusedGlobal(pickle.UnpicklingError):
    """The file names a global outside the allowlist (resolving it could run code)."""

    def __init__(self, name: str, why: str = "it is not on the allowlist of inert globals") -> None:
        super().__init__(f"the file refers to {name}, and {why}")
        self.name = name


class HistoryBufferData:
    """Loaded in place of MMEngine's ``HistoryBuffer``: its logged values as inert data.

    Attributes:
        log_history: The logged values (a numpy array).
        count_history: How many samples each value averages (a numpy array).
        max_length: The buffer's capacity.
    """

    log_history: Any = None
    count_history: Any = None
    max_length: int | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise ValueError(f"HistoryBuffer state must be a dict, not {type(state).__name__}")
        self.log_history = state.get("_log_history")
        self.count_history = state.get("_count_history")
        self.max_length = state.get("max_length")

    def __repr__(self) -> str:
        return f"HistoryBufferData(log_history={self.log_history!r}, count_history={self.count_history!r})"


def _history_buffer_statistic(obj: Any, name: Any) -> str:
    """Stands in for ``builtins.getattr``: only ``getattr(HistoryBuffer, <statistic>)``, answered by the name."""
    if obj is HistoryBufferData and isinstance(name, str) and name in _HISTORY_BUFFER_STATISTICS:
        return name
    owner = "HistoryBuffer" if obj is HistoryBufferData else getattr(obj, "__name__", type(obj).__name__)
    raise RefusedGlobal(
        f"builtins.getattr({owner}, {name!r})", "only HistoryBuffer's statistics methods are allowed through getattr"
    )


# ------------------------------------------------------------------------------------------------- numpy
class _NdarrayClass:
    """Stands in for ``numpy.ndarray`` where a pickle passes the class as an argument; never built."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise RefusedGlobal("a numpy.ndarray object", "arrays are rebuilt through _reconstruct only")


class _DtypeState:
    """``numpy.dtype(code, align, copy)`` and its pickled state, checked; :attr:`dtype` builds the real one."""

    def __init__(self, code: Any, align: Any = False, copy: Any = True) -> None:
        if not isinstance(code, str) or not _NUMERIC_DTYPE.match(code):
            raise RefusedGlobal(f"numpy.dtype({code!r})", "only boolean and numeric dtypes are loaded")
        self.code = code
        self.byteorder = "="

    def __setstate__(self, state: Any) -> None:
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags) for a builtin dtype
        if not (isinstance(state, tuple) and len(state) == 8 and state[1] in ("<", ">", "|", "=")):
            raise ValueError(f"unexpected numpy dtype state of {type(state).__name__}")
        if state[2:5] != (None, None, None) or state[5:7] != (-1, -1):
            raise RefusedGlobal("numpy.dtype with fields or sub-arrays", "only boolean and numeric dtypes are loaded")
        self.byteorder = state[1]

    @property
    def dtype(self) -> Any:
        import numpy as np

        code = getattr(self, "code", None)  # absent when the file built the object without __init__
        if type(self) is not _DtypeState or not isinstance(code, str) or not _NUMERIC_DTYPE.match(code):
            raise RefusedGlobal(f"numpy.dtype({code!r})", "only boolean and numeric dtypes are loaded")
        dtype = np.dtype(code)
        if dtype.kind not in "biufc" or dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
            raise RefusedGlobal(f"numpy.dtype({code!r})", "only boolean and numeric dtypes are loaded")
        return dtype.newbyteorder(self.byteorder) if self.byteorder in "<>" else dtype


def _dtype_of(value: Any) -> Any:
    if type(value) is not _DtypeState:
        raise ValueError(f"expected a numpy dtype, got {type(value).__name__}")
    return value.dtype


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, str):  # pickle protocol 2 writes bytes as latin-1 text
        data = data.encode("latin-1")
    if not isinstance(data, (bytes, bytearray)):
        raise RefusedGlobal("numpy data that is not raw bytes", "object arrays are not loaded")
    return bytes(data)


class _ArrayState:
    """``numpy.core.multiarray._reconstruct(ndarray, ...)`` and its pickled state; :attr:`array` is a new array."""

    array: Any = None

    def __init__(self, cls: Any, shape: Any = None, typecode: Any = None) -> None:
        if cls is not _NdarrayClass:
            raise RefusedGlobal(f"numpy _reconstruct of {getattr(cls, '__name__', cls)!r}", "only ndarray is loaded")

    def __setstate__(self, state: Any) -> None:
        import numpy as np

        # (version, shape, dtype, is_fortran, raw data)
        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[1], tuple)):
            raise ValueError(f"unexpected numpy array state of {type(state).__name__}")
        _, shape, dtype, is_fortran, data = state
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ValueError(f"bad numpy array shape of {len(shape)} dimensions")
        dtype, data = _dtype_of(dtype), _as_bytes(data)
        if math.prod(shape) * dtype.itemsize != len(data):
            raise ValueError(
                f"numpy array of shape {shape} and dtype {dtype} needs {math.prod(shape) * dtype.itemsize} bytes, "
                f"the file holds {len(data)}"
            )
        flat = np.frombuffer(data, dtype=dtype)
        self.array = flat.reshape(shape, order="F" if is_fortran else "C").copy(order="A")  # own, writable data


def _scalar(dtype: Any, data: Any) -> Any:
    """Stands in for ``numpy.core.multiarray.scalar``."""
    import numpy as np

    dtype, data = _dtype_of(dtype), _as_bytes(data)
    if len(data) != dtype.itemsize:
        raise ValueError(f"numpy scalar of dtype {dtype} needs {dtype.itemsize} bytes, got {len(data)}")
    return np.frombuffer(data, dtype=dtype)[0]


def _empty_bytes(*args: Any) -> bytes:
    """Stands in for ``builtins.bytes``, which pickle protocol 2 calls without arguments for ``b''`` only."""
    if args:
        raise RefusedGlobal("builtins.bytes with arguments", "only bytes() is allowed")
    return b""


_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")  # the names numpy 1.x / 2.x write
_STAND_INS: list[tuple[Any, str]] = [
    (HistoryBufferData, _HISTORY_BUFFER),
    (_history_buffer_statistic, "builtins.getattr"),
    (_empty_bytes, "builtins.bytes"),
    (_NdarrayClass, "numpy.ndarray"),
    (_DtypeState, "numpy.dtype"),
    *[(_ArrayState, f"{module}._reconstruct") for module in _NUMPY_MODULES],
    *[(_scalar, f"{module}.scalar") for module in _NUMPY_MODULES],
]
_LOAD_LOCK = threading.Lock()  # one load at a time holds the stand-ins in torch's allowlist


def _materialize(obj: Any, seen: set[int] | None = None) -> Any:
    """Replace the numpy stand-ins by real arrays and dtypes, in containers and HistoryBufferData."""
    if isinstance(obj, _ArrayState):
        return obj.array
    if isinstance(obj, _DtypeState):
        return obj.dtype
    seen = set() if seen is None else seen
    if id(obj) in seen:  # shared or self-referencing containers
        return obj
    seen.add(id(obj))
    if isinstance(obj, dict):
        for key, value in obj.items():
            obj[key] = _materialize(value, seen)
    elif isinstance(obj, list):
        obj[:] = [_materialize(value, seen) for value in obj]
    elif type(obj) is tuple:
        return tuple(_materialize(value, seen) for value in obj)
    elif isinstance(obj, HistoryBufferData):
        obj.log_history = _materialize(obj.log_history, seen)
        obj.count_history = _materialize(obj.count_history, seen)
    return obj


def _name(entry: Any) -> str:
    return entry[1] if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__qualname__}"


@contextmanager
def _stand_ins_allowed() -> Iterator[None]:
    """The stand-ins in torch's allowlist for one load; entries of the process under the same names step aside."""
    names = {name for _, name in _STAND_INS}
    before = torch.serialization.get_safe_globals()
    with _LOAD_LOCK:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals([g for g in before if _name(g) not in names] + _STAND_INS)
        try:
            yield
        finally:
            torch.serialization.clear_safe_globals()
            torch.serialization.add_safe_globals(before)


def restricted_load(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(weights_only=True)`` of a ``torch.save`` zip file, with the stand-ins of this module.

    Sparse tensors are validated (torch skips it by default).

    Raises:
        pickle.UnpicklingError: torch's weights-only unpickler or a stand-in refused a global or an object (the
            message names it).
        ValueError: Malformed numpy or HistoryBuffer data.
    """
    with _stand_ins_allowed(), torch.sparse.check_sparse_tensor_invariants():
        loaded = torch.load(path, map_location=map_location, weights_only=True)
    return _materialize(loaded)


def pickled_globals(path: str | Path) -> set[str]:
    """The globals the pickle in a ``torch.save`` zip file names (``module.name``), read without unpickling."""
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
        data = archive.read(name)
    found = set()
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name == "STACK_GLOBAL":  # protocol 4+: names come from the stack; torch.save writes protocol 2
            found.add("<STACK_GLOBAL>")
        elif opcode.name in ("GLOBAL", "INST"):
            module, qualname = arg.split(" ", 1)
            if (module, qualname) in NAME_MAPPING:
                module, qualname = NAME_MAPPING[(module, qualname)]
            elif module in IMPORT_MAPPING:
                module = IMPORT_MAPPING[module]
            found.add(f"{module}.{qualname}")
    return found


def torch_default_globals() -> set[str]:
    """The globals ``torch.load(weights_only=True)`` allows without any ``add_safe_globals``."""
    from torch._weights_only_unpickler import _get_allowed_globals

    return set(_get_allowed_globals())
