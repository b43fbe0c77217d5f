"""A time index as a row source: one row per (timestamp, entity combination).

Rows are time-major: row ``r`` is timestamp ``t = r // E`` of entity combination
``r % E`` (``E`` = :func:`~runtime.shapes.entities.entity_count`). Timestamp ``t`` is a pure
function of the index and ``t``, never of the chunking:

- ``step_us``: ``start + t * step_us`` (fixed steps, UTC arithmetic).
- ``step_days``: ``t * step_days`` calendar days on the local wall clock of ``timezone``
  (a daily index at 09:00 stays at 09:00 local across DST changes).
- ``step_months``: ``t * step_months`` calendar months on the local wall clock, the day
  clipped to the month's end (Jan 31 + 1 month = Feb 29 or 28; + 2 months = Mar 31:
  each timestamp is computed from ``start``, never from the previous one).

Local wall-clock times are turned back into instants by Polars (chrono-tz): an ambiguous
local time (the repeated hour when clocks go back) takes the earliest instant; a local
time that does not exist (the hour skipped when clocks go forward) is read with the UTC
offset in effect before the gap, as Python's ``zoneinfo`` does with ``fold=0``, so it
moves forward by the length of the gap (02:30 on a spring-forward day in Berlin becomes
03:30 CEST). Timestamps are microseconds since the epoch (UTC).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from runtime.errors import ExecutionError
from runtime.plan import TimeIndex
from runtime.samplers.base import I64, Mask
from runtime.shapes.entities import entity_columns, entity_count

DAY_US = 86_400_000_000


def index_rows(ix: TimeIndex) -> int:
    """Rows of the index: periods x entity combinations."""
    return ix.periods * entity_count(ix.entities)


def row_positions(ix: TimeIndex, start: int, stop: int) -> tuple[I64, I64]:
    """``(t, combo)`` of rows ``start..stop-1``: the timestamp index and the entity
    combination index of each row (int64 arrays)."""
    combos = max(entity_count(ix.entities), 1)
    rows = np.arange(start, stop, dtype=np.int64)
    t: I64 = rows // combos
    combo: I64 = rows % combos
    return t, combo


def timestamps_us(ix: TimeIndex, t: I64) -> I64:
    """Timestamp ``t`` (any int64 array) of the index, in microseconds since the epoch
    (UTC). See the module docstring for calendar steps and DST."""
    t = np.asarray(t, dtype=np.int64)
    if ix.step_us:
        out: I64 = ix.start + t * ix.step_us
        return out
    local_start = int(local_us(ix, np.array([ix.start], dtype=np.int64))[0])
    if ix.step_days:
        return _localize(ix, local_start + t * (ix.step_days * DAY_US))
    if ix.step_months:
        return _localize(ix, _add_months(local_start, t * ix.step_months))
    raise ExecutionError("time index has no step (step_us, step_days and step_months are all 0)")


def local_us(ix: TimeIndex, utc_us: I64) -> I64:
    """Local wall-clock time of ``ix.timezone`` for instants ``utc_us``: microseconds since
    1970-01-01T00:00 local (what seasonality and calendar steps measure)."""
    utc_us = np.asarray(utc_us, dtype=np.int64)
    if ix.timezone == "UTC" or utc_us.size == 0:
        return utc_us
    try:
        local = (
            pl.Series(utc_us)
            .cast(pl.Datetime("us", "UTC"))
            .dt.convert_time_zone(ix.timezone)
            .dt.replace_time_zone(None)
        )
    except pl.exceptions.PolarsError as exc:
        raise ExecutionError(f"time zone {ix.timezone!r}: {exc}") from exc
    out: I64 = local.to_physical().to_numpy()
    return out


def index_frame(ix: TimeIndex, seed: int, start: int, stop: int, memo: dict[Any, Any]) -> pl.DataFrame:
    """The index's fields for rows ``start..stop-1``: ``ix.column`` as
    ``Datetime("us", ix.timezone)``, then one key column per entity dimension."""
    t, combo = row_positions(ix, start, stop)
    stamps = _row_timestamps(ix, t)
    try:
        column = pl.Series(ix.column, stamps).cast(pl.Datetime("us", "UTC")).dt.convert_time_zone(ix.timezone)
    except pl.exceptions.PolarsError as exc:
        raise ExecutionError(f"time zone {ix.timezone!r}: {exc}") from exc
    return pl.DataFrame([column, *entity_columns(ix.entities, seed, combo, memo)])


def _row_timestamps(ix: TimeIndex, t: I64) -> I64:
    """Timestamps of non-decreasing ``t`` (rows of a chunk), each distinct ``t`` computed once."""
    if t.size == 0:
        return np.empty(0, dtype=np.int64)
    lo = int(t[0])
    distinct = timestamps_us(ix, np.arange(lo, int(t[-1]) + 1, dtype=np.int64))
    out: I64 = distinct[t - lo]
    return out


def _add_months(local_start: int, months: I64) -> I64:
    """``local_start`` (local µs) plus ``months`` calendar months each, day clipped to
    the month's end, time of day kept. Integer arithmetic on datetime64 (exact)."""
    days, time_of_day = divmod(local_start, DAY_US)
    day = np.datetime64(days, "D")
    month0 = int(day.astype("datetime64[M]").astype(np.int64))
    day_of_month = days - int(np.datetime64(month0, "M").astype("datetime64[D]").astype(np.int64))
    month = month0 + months
    first = month.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    length = (month + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) - first
    out: I64 = (first + np.minimum(day_of_month, length - 1)) * DAY_US + time_of_day
    return out


def _localize(ix: TimeIndex, local: I64) -> I64:
    """Instants (UTC µs) of local wall-clock times: ambiguous -> earliest; non-existent ->
    read with the offset in effect a day earlier (before the gap)."""
    if ix.timezone == "UTC" or local.size == 0:
        return local
    utc, missing = _replace_zone(ix.timezone, local)
    if missing.any():
        gap = local[missing]
        before, still = _replace_zone(ix.timezone, gap - DAY_US)
        if still.any():
            raise ExecutionError(f"time zone {ix.timezone!r}: cannot place local time in two successive gaps")
        offset = (gap - DAY_US) - before  # local minus UTC, before the gap
        utc[missing] = gap - offset
    return utc


def _replace_zone(timezone: str, local: I64) -> tuple[I64, Mask]:
    """(UTC µs, missing mask) of local times; missing ones (DST gaps) hold 0."""
    try:
        utc = (
            pl.Series(local)
            .cast(pl.Datetime("us"))
            .dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
            .to_physical()
        )
    except pl.exceptions.PolarsError as exc:
        raise ExecutionError(f"time zone {timezone!r}: {exc}") from exc
    missing = utc.is_null().to_numpy()
    values: I64 = utc.fill_null(0).to_numpy().copy()
    return values, missing
