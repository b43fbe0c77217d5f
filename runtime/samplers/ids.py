"""``uuid`` and ``sequence`` columns."""

from __future__ import annotations

import re
import string

import numpy as np
import polars as pl

from runtime.plan import SequenceColumn, UUIDColumn
from runtime.samplers.arrow import fixed_width_strings
from runtime.samplers.base import U64, Chunk, SampleError, Stream

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def sample_uuid(col: UUIDColumn, chunk: Chunk) -> pl.Series:
    """Canonical lowercase UUIDv4 strings. The 128 bits are draw 0 (high word) and draw 1
    (low word); the version nibble is set to 4 and the variant bits to 10, exactly as
    ``uuid.UUID(int=(hi << 64) | lo, version=4)`` does.

    Built without a per-row loop: each 32-bit quarter becomes 8 hex digits with SWAR
    arithmetic on uint64 (:func:`_hex8`), the 36 characters are assembled as nine
    big-endian 4-byte units (dashes included), and the rows go to Polars zero-copy."""
    s = Stream.of(col.name, chunk)
    hi = (s.bits(0) & _U(0xFFFFFFFFFFFF0FFF)) | _U(0x4000)
    lo = (s.bits(1) & _U(0x3FFFFFFFFFFFFFFF)) | _U(0x8000000000000000)
    a, b = _hex8(hi >> _U(32)), _hex8(hi & _M32)
    c, d = _hex8(lo >> _U(32)), _hex8(lo & _M32)
    units = np.empty((9, s.size), dtype=">u4")  # unit k = characters 4k .. 4k+3
    units[0], units[1] = a >> _U(32), a & _M32  # xxxxxxxx
    units[2] = _U(0x2D000000) | (b >> _U(40))  # -xxx
    units[3] = ((b >> _U(8)) & _U(0xFF000000)) | _U(0x2D0000) | ((b >> _U(16)) & _U(0xFFFF))  # x-xx
    units[4] = ((b & _U(0xFFFF)) << _U(16)) | _U(0x2D00) | (c >> _U(56))  # xx-x
    units[5] = ((c >> _U(24)) & _U(0xFFFFFF00)) | _U(0x2D)  # xxx-
    units[6], units[7], units[8] = c & _M32, d >> _U(32), d & _M32
    text = np.ascontiguousarray(units.T).view(np.uint8).reshape(s.size, 36)
    return fixed_width_strings(col.name, text)


_U = np.uint64
_M32 = _U(0xFFFFFFFF)


def _hex8(x: U64) -> U64:
    """32-bit values -> uint64 whose 8 bytes, most significant first, are the values'
    lowercase hex digits: spread the nibbles into bytes, then add '0', plus 39 more
    for the nibbles >= 10 (to reach 'a')."""
    x = (x | (x << _U(16))) & _U(0x0000FFFF0000FFFF)
    x = (x | (x << _U(8))) & _U(0x00FF00FF00FF00FF)
    x = (x | (x << _U(4))) & _U(0x0F0F0F0F0F0F0F0F)
    letters = ((x + _U(0x0606060606060606)) >> _U(4)) & _U(0x0101010101010101)
    x += _U(0x3030303030303030)
    x += letters * _U(0x27)
    return x


def sample_sequence(col: SequenceColumn, chunk: Chunk) -> pl.Series:
    """``start + step * row`` (global row index) as Int64; with ``format``, the Python
    format string applied to each value (vectorized for prefix + ``{:0Nd}``/``{:Nd}``/
    ``{}`` + suffix over non-negative values, a per-row Python fallback otherwise)."""
    first = col.start + col.step * chunk.start
    last = col.start + col.step * max(chunk.start, chunk.stop - 1)
    if min(first, last) < _INT64_MIN or max(first, last) > _INT64_MAX:
        raise SampleError(col.name, f"sequence value out of the int64 range at row {chunk.stop - 1}")
    rows = np.arange(chunk.start, chunk.stop, dtype=np.int64)
    values = pl.Series(col.name, rows * col.step + col.start, dtype=pl.Int64)
    if col.format is None:
        return values
    simple = _simple_format(col.format)
    if simple is not None and min(first, last) >= 0:
        prefix, width, fill, suffix = simple
        digits = values.cast(pl.String)
        digits = digits.str.zfill(width) if fill == "0" else digits.str.pad_start(width, " ")
        return (prefix + digits + suffix).alias(col.name)
    try:
        return pl.Series(col.name, [col.format.format(v) for v in values.to_list()], dtype=pl.String)
    except (ValueError, IndexError, KeyError) as exc:
        raise SampleError(col.name, f"format {col.format!r} failed: {exc}") from exc


_SPEC = re.compile(r"(0?)(\d*)d?")


def _simple_format(fmt: str) -> tuple[str, int, str, str] | None:
    """(prefix, width, fill, suffix) when ``fmt`` is ``prefix{:0Nd}suffix`` or similar."""
    try:
        parts = list(string.Formatter().parse(fmt))
    except ValueError:
        return None
    fields = [p for p in parts if p[1] is not None]
    if len(fields) != 1 or fields[0][1] not in ("", "0") or fields[0][3] is not None:
        return None
    match = _SPEC.fullmatch(fields[0][2] or "")
    if match is None:
        return None
    index = parts.index(fields[0])
    prefix = "".join(p[0] for p in parts[: index + 1])
    suffix = "".join(p[0] for p in parts[index + 1 :])
    width = int(match.group(2) or 0)
    return prefix, width, "0" if match.group(1) else " ", suffix
