"""``datetime`` and ``date`` columns."""

from __future__ import annotations

import polars as pl

from runtime.plan import TimeColumn
from runtime.samplers.base import Chunk, Stream, uniform_ints


def sample_time(col: TimeColumn, chunk: Chunk) -> pl.Series:
    """A uniform integer in [start, end] (draw 0): microseconds since the epoch as
    Datetime("us", "UTC") for ``datetime``, days since the epoch as Date for ``date``."""
    ticks = uniform_ints(Stream.of(col.name, chunk).bits(0), col.start, col.end)
    series = pl.Series(col.name, ticks, dtype=pl.Int64)
    if col.dtype == "date":
        return series.cast(pl.Int32).cast(pl.Date)
    return series.cast(pl.Datetime("us", "UTC"))
