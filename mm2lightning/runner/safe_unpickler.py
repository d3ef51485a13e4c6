"""A private, restricted unpickler for ``torch.load``: tensors, plain data, MMEngine's HistoryBuffer, numpy numbers.

``torch.load(weights_only=True)`` refuses MMEngine's checkpoints (they pickle
``HistoryBuffer`` objects and numpy values), and widening its allowlist with
``torch.serialization.safe_globals`` changes process-wide state and lets numpy
rebuild arrays from whatever dtype a file describes. Instead, :func:`restricted_load`
hands ``torch.load`` its own ``pickle_module`` whose unpickler resolves only:

* the globals ``torch.load(weights_only=True)`` allows by default (tensors, storages,
  dtypes, ``OrderedDict``, ...), except tensor subclasses rebuilt with attributes;
* MMEngine's ``HistoryBuffer`` as :class:`HistoryBufferData` (plain attributes), and
  ``getattr(HistoryBuffer, 'min' | 'max' | 'current' | 'mean')``, which its pickled
  state names, answered by the name;
* numpy arrays, dtypes and scalars, through stand-ins that accept boolean and numeric
  dtypes only (no object, structured or sub-array dtypes) and check that the data's
  length matches the shape, then copy the bytes into a new array.

Every other global is refused before anything of it runs: loading never runs code
named by the file.
"""

from __future__ import annotations

import math
import pickle
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
import re
import types
from typing import IO, Any

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
            raise pickle.UnpicklingError(f"HistoryBuffer state must be a dict, not {type(state).__name__}")
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
    """Stands in for ``numpy.ndarray`` where a pickle passes the class as an argument."""


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
            raise pickle.UnpicklingError(f"unexpected numpy dtype state {state!r}")
        if state[2:5] != (None, None, None) or state[5:7] != (-1, -1):
            raise RefusedGlobal("numpy.dtype with fields or sub-arrays", "only boolean and numeric dtypes are loaded")
        self.byteorder = state[1]

    @property
    def dtype(self) -> Any:
        import numpy as np

        dtype = np.dtype(self.code)
        return dtype.newbyteorder(self.byteorder) if self.byteorder in "<>" else dtype


def _dtype_of(value: Any) -> Any:
    if not isinstance(value, _DtypeState):
        raise pickle.UnpicklingError(f"expected a numpy dtype, got {type(value).__name__}")
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
            raise pickle.UnpicklingError(f"unexpected numpy array state of {type(state).__name__}")
        _, shape, dtype, is_fortran, data = state
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise pickle.UnpicklingError(f"bad numpy array shape {shape!r}")
        dtype, data = _dtype_of(dtype), _as_bytes(data)
        if math.prod(shape) * dtype.itemsize != len(data):
            raise pickle.UnpicklingError(
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
        raise pickle.UnpicklingError(f"numpy scalar of dtype {dtype} needs {dtype.itemsize} bytes, got {len(data)}")
    return np.frombuffer(data, dtype=dtype)[0]


def _empty_bytes(*args: Any) -> bytes:
    """Stands in for ``builtins.bytes``, which pickle protocol 2 calls without arguments for ``b''`` only."""
    if args:
        raise RefusedGlobal(f"builtins.bytes with arguments {args!r:.40}", "only bytes() is allowed")
    return b""


def _allowed_globals() -> dict[str, Any]:
    from torch._weights_only_unpickler import _get_allowed_globals  # torch's own default allowlist

    allowed = {name: obj for name, obj in _get_allowed_globals().items() if name != "torch._tensor._rebuild_from_type_v2"}
    allowed[_HISTORY_BUFFER] = HistoryBufferData
    allowed["builtins.getattr"] = _history_buffer_statistic
    allowed["builtins.bytes"] = _empty_bytes
    allowed["numpy.ndarray"] = _NdarrayClass
    allowed["numpy.dtype"] = _DtypeState
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # the names numpy 1.x / 2.x write
        allowed[f"{module}._reconstruct"] = _ArrayState
        allowed[f"{module}.scalar"] = _scalar
    return allowed


def _torch_only_globals() -> dict[str, Any]:
    from torch._weights_only_unpickler import _get_allowed_globals

    return dict(_get_allowed_globals())


class _Unpickler(pickle.Unpickler):
    allowed: dict[str, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in NAME_MAPPING:  # protocol 2 writes Python 2 names (e.g. __builtin__.getattr)
            module, name = NAME_MAPPING[(module, name)]
        elif module in IMPORT_MAPPING:
            module = IMPORT_MAPPING[module]
        qualified = f"{module}.{name}"
        if qualified not in self.allowed:
            raise RefusedGlobal(qualified)
        return self.allowed[qualified]


def _pickle_module(allowed: dict[str, Any]) -> types.SimpleNamespace:
    unpickler = type("RestrictedUnpickler", (_Unpickler,), {"allowed": allowed})

    def load(file: IO[bytes], **kwargs: Any) -> Any:
        return unpickler(file, **kwargs).load()

    return types.SimpleNamespace(__name__="mm2lightning_restricted_pickle", Unpickler=unpickler, load=load)


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


def restricted_load(file: Any, map_location: Any = "cpu", *, torch_only: bool = False) -> Any:
    """``torch.load`` through the restricted unpickler described in this module's docstring.

    Args:
        file: A path or a binary file object.
        map_location: As ``torch.load``'s.
        torch_only: Resolve only what ``torch.load(weights_only=True)`` allows by default (no MMEngine or numpy
            stand-ins), e.g. to check that a file loads anywhere.

    Raises:
        RefusedGlobal: The file names a global outside the allowlist.
    """
    allowed = _torch_only_globals() if torch_only else _allowed_globals()
    loaded = torch.load(file, map_location=map_location, weights_only=False, pickle_module=_pickle_module(allowed))
    return loaded if torch_only else _materialize(loaded)
