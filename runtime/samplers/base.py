"""What every sampler shares: the chunk it fills, its error, and its draws.

A sampler turns uniform words from :mod:`runtime.rng` into one column's values for rows
``chunk.start .. chunk.stop - 1``. Draws are addressed by ``(seed, stream, draw, row)``
only, so a value never depends on the chunking or on other columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from runtime import rng

# Draw index of the null mask: far above any draw index a value transform uses.
NULL_DRAW = 1_000_000

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]


class SampleError(Exception):
    """A column could not be computed (template or expression failed at runtime).

    The message names the column (and the row when one row is at fault)."""

    def __init__(self, column: str, message: str, *, row: int | None = None) -> None:
        where = f"column `{column}`" if row is None else f"column `{column}`, row {row}"
        super().__init__(f"{where}: {message}")
        self.column = column
        self.row = row


@dataclass(frozen=True)
class Chunk:
    """Rows ``start .. stop - 1`` of a dataset with seed ``seed``.

    ``frame`` holds the columns computed so far for these rows (the inputs of derived
    columns); ``vars`` are the spec's constants (visible to templates). ``source`` is the
    plan's row source (a time index for series columns). ``memo`` lives for one run, across
    its chunks: samplers keep what is expensive to recompute there (block states of walks,
    loaded seed files), keyed so that any entry is a pure function of the plan - a cold
    memo gives the same values, only slower."""

    seed: int
    start: int
    stop: int
    frame: pl.DataFrame = field(default_factory=pl.DataFrame)
    vars: Mapping[str, Any] = field(default_factory=dict)
    source: Any = None
    memo: dict[Any, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Stream:
    """The draws of one named stream over one chunk's rows."""

    seed: int
    name: str
    start: int
    stop: int

    @classmethod
    def of(cls, name: str, chunk: Chunk) -> Stream:
        return cls(chunk.seed, name, chunk.start, chunk.stop)

    @property
    def size(self) -> int:
        return self.stop - self.start

    def bits(self, draw: int) -> U64:
        return rng.bits(self.seed, self.name, draw, self.start, self.stop)

    def uniform(self, draw: int) -> F64:
        """Floats in (0, 1), one per row."""
        return rng.uniform(self.seed, self.name, draw, self.start, self.stop)

    def uniform_at(self, draw: int, rows: I64) -> F64:
        """``uniform(draw)[rows]`` for chunk-relative ``rows`` (sorted), computing only
        the span they cover (rejection loops ask again for the few rows left)."""
        if rows.size == 0:
            return np.empty(0, dtype=np.float64)
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        span = rng.uniform(self.seed, self.name, draw, self.start + lo, self.start + hi)
        return span[rows - lo]


def mulhi(words: U64, factor: int) -> U64:
    """``floor(words * factor / 2**64)`` exactly, for ``0 < factor <= 2**64``.

    The 64x64 -> 128-bit product is assembled from 32-bit halves (NumPy has no uint128).
    Mapping a 64-bit word to ``[0, factor)`` this way is unbiased to within
    ``factor / 2**64`` per value (< 2**-11 for ranges below 2**53)."""
    if factor == 1 << 64:
        return words.copy()
    mask = np.uint64(0xFFFFFFFF)
    shift = np.uint64(32)
    b_lo, b_hi = np.uint64(factor & 0xFFFFFFFF), np.uint64(factor >> 32)
    a_lo, a_hi = words & mask, words >> shift
    lo_lo = a_lo * b_lo
    hi_lo = a_hi * b_lo
    lo_hi = a_lo * b_hi
    # the middle column: three terms below 2**32 each; its carry goes to the high word
    cross = (lo_lo >> shift) + (hi_lo & mask) + (lo_hi & mask)
    high: U64 = a_hi * b_hi + (hi_lo >> shift) + (lo_hi >> shift) + (cross >> shift)
    return high


def uniform_ints(words: U64, low: int, high: int) -> I64:
    """Integers uniform in ``[low, high]`` (inclusive) from 64-bit words.

    Ranges of at most 2**21 values use the top 32 bits: ``((w >> 32) * size) >> 32``
    (cheap, exact in uint64; bias per value <= size / 2**32 <= 2**-11); larger ranges use
    all 64 bits through :func:`mulhi` (bias <= size / 2**64, < 2**-11 below 2**53)."""
    size = high - low + 1
    if size <= _SMALL_RANGE:
        offset = ((words >> np.uint64(32)) * np.uint64(size)) >> np.uint64(32)
    else:
        offset = mulhi(words, size)
    offset += np.uint64(low % (1 << 64))  # wraps to the right int64 bit pattern
    return offset.view(np.int64)


_SMALL_RANGE = 1 << 21


def with_nulls(series: pl.Series, mask: Mask) -> pl.Series:
    """A copy of ``series`` with the rows where ``mask`` is true set to null."""
    if not mask.any():
        return series
    return series.clone().set(pl.Series(mask, dtype=pl.Boolean), None)


def null_mask(name: str, fraction: float, chunk: Chunk) -> Mask:
    """Rows to null: the column's own stream at :data:`NULL_DRAW`, so the mask never
    disturbs the column's values or any other column."""
    result: Mask = Stream.of(name, chunk).uniform(NULL_DRAW) < fraction
    return result
