"""Time index row source: timestamps (fixed, calendar days across DST, months), entity
keys, row layout and the frame's dtypes, all independent of the chunking."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from runtime.errors import ExecutionError
from runtime.plan import Dist, Entity, NumberColumn, TimeIndex
from runtime.shapes import source_frame, source_rows
from runtime.shapes.entities import entity_columns, entity_count, entity_keys
from runtime.shapes.timeindex import index_frame, index_rows, local_us, row_positions, timestamps_us

HOUR = 3_600_000_000
BERLIN = ZoneInfo("Europe/Berlin")


def us(when: dt.datetime) -> int:
    return int(when.timestamp()) * 1_000_000 + when.microsecond


def local(when_us: int, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(when_us / 1e6, dt.UTC).astimezone(zone)


def arange(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64)


# --------------------------------------------------------------------------- timestamps


def test_fixed_steps_are_start_plus_t_steps() -> None:
    ix = TimeIndex(start=1_700_000_000_000_000, periods=10, step_us=15 * 60_000_000)
    got = timestamps_us(ix, arange(10))
    assert got.tolist() == [1_700_000_000_000_000 + t * 15 * 60_000_000 for t in range(10)]


def test_calendar_days_keep_the_local_time_across_dst_in_berlin() -> None:
    # 09:00 local from 2024-03-28 over the spring change (03-31) and the autumn one (10-27)
    start = us(dt.datetime(2024, 3, 28, 9, tzinfo=BERLIN))
    ix = TimeIndex(start=start, periods=220, step_days=1, timezone="Europe/Berlin")
    stamps = timestamps_us(ix, arange(220))
    days = [local(int(s), BERLIN) for s in stamps]
    assert all((d.hour, d.minute) == (9, 0) for d in days)
    assert [d.date() for d in days] == [dt.date(2024, 3, 28) + dt.timedelta(days=t) for t in range(220)]
    gaps = np.diff(stamps) // HOUR
    assert gaps[2] == 23  # 03-30 -> 03-31: the day has 23 hours
    assert gaps[212] == 25  # 10-26 -> 10-27: 25 hours
    assert set(gaps.tolist()) == {23, 24, 25}


def test_a_local_time_in_the_dst_gap_moves_forward_by_the_gap() -> None:
    start = us(dt.datetime(2024, 3, 30, 2, 30, tzinfo=BERLIN))
    ix = TimeIndex(start=start, periods=3, step_days=1, timezone="Europe/Berlin")
    days = [local(int(s), BERLIN) for s in timestamps_us(ix, arange(3))]
    assert [(d.day, d.hour, d.minute) for d in days] == [(30, 2, 30), (31, 3, 30), (1, 2, 30)]


def test_an_ambiguous_local_time_takes_the_earliest_instant() -> None:
    start = us(dt.datetime(2024, 10, 26, 2, 30, tzinfo=BERLIN))
    ix = TimeIndex(start=start, periods=2, step_days=1, timezone="Europe/Berlin")
    second = int(timestamps_us(ix, arange(2))[1])
    assert second == us(dt.datetime(2024, 10, 27, 0, 30, tzinfo=dt.UTC))  # 02:30 CEST


def test_months_from_jan_31_clip_to_the_month_end_and_count_from_the_start() -> None:
    start = us(dt.datetime(2024, 1, 31, 10, tzinfo=BERLIN))
    ix = TimeIndex(start=start, periods=14, step_months=1, timezone="Europe/Berlin")
    days = [local(int(s), BERLIN) for s in timestamps_us(ix, arange(14))]
    assert [(d.year, d.month, d.day) for d in days] == [
        (2024, 1, 31), (2024, 2, 29), (2024, 3, 31), (2024, 4, 30), (2024, 5, 31), (2024, 6, 30),
        (2024, 7, 31), (2024, 8, 31), (2024, 9, 30), (2024, 10, 31), (2024, 11, 30), (2024, 12, 31),
        (2025, 1, 31), (2025, 2, 28),
    ]  # fmt: skip
    assert all(d.hour == 10 for d in days)  # local time kept through CET and CEST


def test_quarterly_steps_in_utc() -> None:
    ix = TimeIndex(start=us(dt.datetime(2023, 11, 30, tzinfo=dt.UTC)), periods=4, step_months=3)
    days = [local(int(s), ZoneInfo("UTC")).date() for s in timestamps_us(ix, arange(4))]
    assert days == [dt.date(2023, 11, 30), dt.date(2024, 2, 29), dt.date(2024, 5, 30), dt.date(2024, 8, 30)]


def test_local_us_is_the_wall_clock() -> None:
    ix = TimeIndex(start=0, periods=1, step_us=HOUR, timezone="Europe/Berlin")
    summer = us(dt.datetime(2024, 7, 1, 12, tzinfo=dt.UTC))
    winter = us(dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC))
    got = local_us(ix, np.array([summer, winter], dtype=np.int64))
    assert got.tolist() == [summer + 2 * HOUR, winter + HOUR]
    utc = TimeIndex(start=0, periods=1, step_us=HOUR)
    assert local_us(utc, np.array([summer])).tolist() == [summer]


def test_an_unknown_time_zone_is_an_execution_error() -> None:
    ix = TimeIndex(start=0, periods=3, step_days=1, timezone="Mars/Olympus")
    with pytest.raises(ExecutionError, match="Mars/Olympus"):
        timestamps_us(ix, arange(3))
    fixed = TimeIndex(start=0, periods=3, step_us=HOUR, timezone="Mars/Olympus")
    with pytest.raises(ExecutionError, match="Mars/Olympus"):
        index_frame(fixed, 0, 0, 3, {})


# --------------------------------------------------------------------------- rows and entities


def test_rows_are_time_major() -> None:
    ix = TimeIndex(start=0, periods=4, step_us=HOUR, entities=(Entity("a", 2), Entity("b", 3)))
    assert index_rows(ix) == 24 == source_rows(ix, 0)
    t, combo = row_positions(ix, 5, 14)
    assert t.tolist() == [0, 1, 1, 1, 1, 1, 1, 2, 2]
    assert combo.tolist() == [5, 0, 1, 2, 3, 4, 5, 0, 1]


def test_entity_keys_from_values_column_and_counts() -> None:
    memo: dict[object, object] = {}
    named = Entity("site", 3, values=("north", "south", "east"))
    assert entity_keys(named, 0, memo).to_list() == ["north", "south", "east"]
    counted = Entity("sensor_id", 4)
    keys = entity_keys(counted, 0, memo)
    assert keys.name == "sensor_id" and keys.dtype == pl.Int64 and keys.to_list() == [1, 2, 3, 4]
    sampled = Entity("w", 50, column=NumberColumn("w", "int", Dist("uniform", ()), min=0, max=10**9))
    first = entity_keys(sampled, 7, memo)
    assert first.len() == 50 and first.n_unique() > 45
    assert entity_keys(sampled, 7, {}).equals(first)  # a pure function of (entity, seed)
    assert not entity_keys(sampled, 8, {}).equals(first)
    assert entity_count(()) == 1 and entity_count((named, counted)) == 12


def test_two_dimensions_first_varies_slowest() -> None:
    dims = (Entity("a", 2, values=("x", "y")), Entity("b", 3))
    a, b = entity_columns(dims, 0, arange(6), {})
    assert a.to_list() == ["x", "x", "x", "y", "y", "y"]
    assert b.to_list() == [1, 2, 3, 1, 2, 3]


def test_index_frame_dtypes_and_chunk_invariance() -> None:
    dims = (Entity("site", 2, values=("n", "s")), Entity("sensor", 3))
    ix = TimeIndex(start=0, periods=50, step_days=1, timezone="Europe/Berlin", column="at", entities=dims)
    full = index_frame(ix, 3, 0, 300, {})
    assert dict(full.schema) == (
        {"at": pl.Datetime("us", "Europe/Berlin"), "site": pl.String, "sensor": pl.Int64}
    )
    assert full.height == 300
    for size in (1, 7, 64):
        memo: dict[object, object] = {}
        parts = [source_frame(ix, 3, s, min(s + size, 300), memo) for s in range(0, 300, size)]
        assert pl.concat(parts).equals(full)
    assert (
        full.get_column("at").dt.timestamp("us").to_numpy()[::6].tolist()
        == timestamps_us(ix, arange(50)).tolist()
    )


def test_index_without_entities_has_only_the_timestamp() -> None:
    ix = TimeIndex(start=0, periods=5, step_us=HOUR)
    frame = index_frame(ix, 0, 1, 4, {})
    assert frame.columns == ["timestamp"] and frame.height == 3
    assert index_frame(ix, 0, 2, 2, {}).height == 0
