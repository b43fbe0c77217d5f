"""Fixed-width byte rows -> a Polars String Series, without a Python loop.

Polars has no fast constructor for strings built in NumPy (object or ``S`` arrays go
through per-item conversion, ~100 ms per million). So we hand Polars the buffers
directly through the Arrow C data interface (the ``__arrow_c_array__`` PyCapsule
protocol): a ``large_string`` array whose offsets are ``0, w, 2w, ...`` and whose data
is the NumPy array itself. Polars imports it zero-copy and calls the array's ``release``
callback when it drops the data; until then the NumPy buffers are kept in ``_LIVE``.

The release callbacks are made immortal on purpose (one reference is never returned),
so a Series still alive at interpreter exit can never call freed code.
"""

from __future__ import annotations

import ctypes
import itertools
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl


class _ArrowSchema(ctypes.Structure):
    _fields_ = [
        ("format", ctypes.c_char_p),
        ("name", ctypes.c_char_p),
        ("metadata", ctypes.c_void_p),
        ("flags", ctypes.c_int64),
        ("n_children", ctypes.c_int64),
        ("children", ctypes.c_void_p),
        ("dictionary", ctypes.c_void_p),
        ("release", ctypes.c_void_p),
        ("private_data", ctypes.c_void_p),
    ]


class _ArrowArray(ctypes.Structure):
    _fields_ = [
        ("length", ctypes.c_int64),
        ("null_count", ctypes.c_int64),
        ("offset", ctypes.c_int64),
        ("n_buffers", ctypes.c_int64),
        ("n_children", ctypes.c_int64),
        ("buffers", ctypes.c_void_p),
        ("children", ctypes.c_void_p),
        ("dictionary", ctypes.c_void_p),
        ("release", ctypes.c_void_p),
        ("private_data", ctypes.c_void_p),
    ]


_LIVE: dict[int, tuple[Any, ...]] = {}  # private_data key -> buffers the consumer still uses
_KEYS = itertools.count(1)


def _release_array(array: Any, _live: dict[int, tuple[Any, ...]] = _LIVE) -> None:
    _live.pop(array.contents.private_data or 0, None)
    array.contents.release = None


def _release_schema(schema: Any) -> None:
    schema.contents.release = None  # the schema owns nothing; its exporter keeps it alive


_RELEASE_ARRAY = ctypes.CFUNCTYPE(None, ctypes.POINTER(_ArrowArray))(_release_array)
_RELEASE_SCHEMA = ctypes.CFUNCTYPE(None, ctypes.POINTER(_ArrowSchema))(_release_schema)
for _callback in (_RELEASE_ARRAY, _RELEASE_SCHEMA):
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(_callback))  # immortal: see module docstring

_capsule = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)(
    ("PyCapsule_New", ctypes.pythonapi)
)


class _FixedWidthStrings:
    """An exporter of one Arrow ``large_string`` array; used for a single import."""

    def __init__(self, rows: npt.NDArray[np.uint8]) -> None:
        count, width = rows.shape
        data = np.ascontiguousarray(rows)
        offsets = np.arange(0, (count + 1) * width, width, dtype=np.int64)
        buffers = (ctypes.c_void_p * 3)(None, offsets.ctypes.data, data.ctypes.data)
        self._key = next(_KEYS)
        _LIVE[self._key] = (buffers, offsets, data)
        self._schema = _ArrowSchema(b"U", b"", None, 0, 0, None, None, _cast(_RELEASE_SCHEMA), None)
        self._array = _ArrowArray(
            count, 0, 0, 3, 0, ctypes.cast(buffers, ctypes.c_void_p), None, None,
            _cast(_RELEASE_ARRAY), self._key,
        )  # fmt: skip

    def __arrow_c_array__(self, requested_schema: object = None) -> tuple[object, object]:
        return (
            _capsule(ctypes.addressof(self._schema), b"arrow_schema", None),
            _capsule(ctypes.addressof(self._array), b"arrow_array", None),
        )

    def close(self) -> None:
        """Drop the buffers if the consumer never took the array (an import error)."""
        if self._array.release is not None:
            _LIVE.pop(self._key, None)
            self._array.release = None


def _cast(callback: Any) -> int | None:
    return ctypes.cast(callback, ctypes.c_void_p).value


def fixed_width_strings(name: str, rows: npt.NDArray[np.uint8]) -> pl.Series:
    """A String Series whose row i is the UTF-8 text ``rows[i].tobytes()``.

    ``rows`` is an (n, w) uint8 array; every row must be valid UTF-8 (Polars checks)."""
    exporter = _FixedWidthStrings(rows)
    try:
        return pl.Series(exporter).alias(name)
    finally:
        exporter.close()
