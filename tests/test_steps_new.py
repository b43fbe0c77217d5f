"""The steps unnest, validate, sample and sessionize (runtime.steps, runtime.checks,
runtime.sessions): semantics, errors, and independence from the chunking."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from runtime import rng
from runtime.errors import ExecutionError
from runtime.plan import Check, Filter, Sample, Sessionize, Shuffle, Step, Unnest, Validate
from runtime.steps import (
    SAMPLE_STREAM,
    apply_steps,
    describe,
    hidden_columns,
    hidden_key_names,
    shuffle_key_names,
)

SEED = 20240501


def run(df: pl.DataFrame, steps: Sequence[Step], chunk: int | None = None, seed: int = SEED) -> pl.DataFrame:
    """``df`` as a source would hand it on (chunks with hidden keys), through ``steps``."""
    size = max(df.height, 1) if chunk is None else chunk
    frames = [
        df.slice(start, size).hstack(hidden_columns(seed, steps, start, min(start + size, df.height)))
        for start in range(0, max(df.height, 1), size)
    ]
    out = list(apply_steps(frames, steps, chunk_rows=size))
    assert out, "every step passes on at least one frame"
    return pl.concat(out, how="vertical").drop(hidden_key_names(steps), strict=False)


def assert_chunk_invariant(
    df: pl.DataFrame, steps: Sequence[Step], sizes: Sequence[int] = (1, 3, 7, 100)
) -> None:
    whole = run(df, steps)
    for size in sizes:
        assert_frame_equal(run(df, steps, size), whole)


def numbers(n: int) -> pl.DataFrame:
    return pl.DataFrame({"x": pl.int_range(n, eager=True, dtype=pl.Int64)})


# --------------------------------------------------------------------------- hidden keys


def test_hidden_key_names_cover_shuffles_and_samples() -> None:
    steps: list[Step] = [Shuffle(), Sample(n=3), Filter("x > 1"), Sample(fraction=0.5)]
    names = hidden_key_names(steps)
    assert names == ["__shuffle_key_0", "__sample_key_0", "__sample_key_1"]
    assert shuffle_key_names(steps) == names
    assert [s.name for s in hidden_columns(1, steps, 5, 9)] == names
    assert all(s.len() == 4 and s.dtype == pl.UInt64 for s in hidden_columns(1, steps, 5, 9))


def test_sample_keys_come_from_their_own_stream_per_occurrence() -> None:
    steps: list[Step] = [Sample(n=1), Sample(n=1)]
    first, second = hidden_columns(3, steps, 10, 20)
    assert first.to_list() == rng.bits(3, SAMPLE_STREAM, 0, 10, 20).tolist()
    assert second.to_list() == rng.bits(3, SAMPLE_STREAM, 1, 10, 20).tolist()


def test_steps_consume_their_keys() -> None:
    steps: list[Step] = [Sample(fraction=0.9), Shuffle(), Sample(n=5)]
    frames = [numbers(10).hstack(hidden_columns(1, steps, 0, 10))]
    (out,) = list(apply_steps(frames, steps, chunk_rows=10))
    assert out.columns == ["x"]


# --------------------------------------------------------------------------- unnest


def structs() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "a": [1, 2, 3],
            "s": [{"u": 1, "v": "x"}, {"u": None, "v": "y"}, None],
            "b": [True, False, True],
        }
    )


def test_unnest_puts_the_fields_in_place_of_the_column() -> None:
    out = run(structs(), [Unnest("s")])
    assert out.columns == ["a", "u", "v", "b"]
    assert out.get_column("u").to_list() == [1, None, None]
    assert out.get_column("v").to_list() == ["x", "y", None]


def test_unnest_with_a_prefix() -> None:
    out = run(structs(), [Unnest("s", prefix="s_")], chunk=1)
    assert out.columns == ["a", "s_u", "s_v", "b"]
    assert out.schema["s_u"] == pl.Int64
    assert describe(Unnest("s", prefix="s_")) == "unnest: {column: s, prefix: s_}"


def test_unnest_of_a_non_struct_column_names_the_step() -> None:
    with pytest.raises(ExecutionError, match=r"step `unnest: a` failed: column `a` is Int64, not a struct"):
        run(structs(), [Unnest("a")])


def test_unnest_of_a_missing_column_or_a_clash_is_an_execution_error() -> None:
    with pytest.raises(ExecutionError, match="unnest: nope"):
        run(structs(), [Unnest("nope")])
    with pytest.raises(ExecutionError, match="unnest: s"):
        run(structs().rename({"a": "u"}), [Unnest("s")])


# --------------------------------------------------------------------------- validate


def people() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "age": [25, 17, None, 70, 40],
            "score": [0.5, 1.5, 0.2, None, -0.1],
            "email": ["a@x.io", "bad", None, "c@y.org", "d@z.com"],
            "tier": ["gold", "silver", "gold", "tin", None],
        }
    )


def flags(df: pl.DataFrame, *checks: Check) -> list[bool]:
    out = run(df, [Validate(tuple(checks), on_fail="flag", flag="ok")])
    assert out.columns == [*df.columns, "ok"]
    return list(out.get_column("ok").to_list())


def test_min_and_max_are_inclusive_and_nulls_pass() -> None:
    assert flags(people(), Check("age", min=18, max=70)) == [True, False, True, True, True]
    assert flags(people(), Check("score", min=0, max=1.5)) == [True, True, True, True, False]
    assert flags(people(), Check("score", min=0.0, not_null=True)) == [True, True, True, False, False]


def test_min_and_max_on_times_use_the_plan_units() -> None:
    epoch = dt.datetime(1970, 1, 1)
    df = pl.DataFrame({"t": [epoch + dt.timedelta(microseconds=v) for v in (5, 10, 15)]})
    df = df.with_columns(pl.col("t").cast(pl.Datetime("ns")).alias("t_ns"), pl.col("t").dt.date().alias("d"))
    assert flags(df, Check("t", min=10)) == [False, True, True]
    assert flags(df, Check("t_ns", max=10)) == [True, True, False]
    assert flags(df, Check("d", min=0, max=0)) == [True, True, True]


def test_regex_values_and_lengths() -> None:
    df = people()
    assert flags(df, Check("email", regex=r"^[^@]+@[^@]+\.[a-z]+$")) == [True, False, True, True, True]
    assert flags(df, Check("tier", values=("gold", "silver"))) == [True, True, True, False, True]
    assert flags(df, Check("age", values=(25, 40, 70))) == [True, False, True, True, True]
    assert flags(df, Check("age", values=(25.0, "17"))) == [True, False, True, False, False]
    assert flags(df, Check("email", min_length=4, max_length=6)) == [True, False, True, False, False]
    assert flags(df, Check("tier", not_null=True)) == [True, True, True, True, False]


def test_all_checks_must_pass_for_the_flag() -> None:
    got = flags(
        people(), Check("age", min=18), Check("tier", values=("gold", "tin")), Check("email", regex="@")
    )
    assert got == [True, False, True, True, True]


def test_json_schema_on_a_struct_column() -> None:
    schema = json.dumps(
        {
            "type": "object",
            "properties": {"u": {"type": "integer", "minimum": 1}, "v": {"enum": ["x", "z"]}},
            "required": ["u"],
        }
    )
    # row 2's u is null (fails "integer"); row 3 is a null struct (passes, not_null unset)
    assert flags(structs(), Check("s", schema=schema)) == [True, False, True]
    assert flags(structs(), Check("s", schema=schema, not_null=True)) == [True, False, False]


def test_json_schema_on_a_string_column_parses_json_first() -> None:
    df = pl.DataFrame({"j": ['{"n": 1}', '{"n": "one"}', "not json", None, "[1]"]})
    schema = json.dumps({"type": "object", "properties": {"n": {"type": "number"}}})
    assert flags(df, Check("j", schema=schema)) == [True, False, False, True, False]


def test_on_fail_drop_keeps_passing_rows_in_order() -> None:
    step = Validate((Check("age", min=18),), on_fail="drop")
    out = run(people(), [step], chunk=2)
    assert out.columns == people().columns
    assert out.get_column("age").to_list() == [25, None, 70, 40]
    assert_chunk_invariant(people(), [step], sizes=(1, 2, 3))


def test_on_fail_fail_names_check_column_count_and_first_value() -> None:
    step = Validate((Check("age", min=0), Check("email", regex="@", min_length=3)))
    with pytest.raises(ExecutionError) as info:
        run(people(), [step])
    message = str(info.value)
    assert message.startswith("step `validate: {checks: {age: {min: 0}, email: {regex: @, min_length: 3}}")
    assert "check `regex: @` on column `email`: 1 row failed in this chunk; first value: 'bad'" in message
    assert info.value.column is None  # a step fails, not the column's definition


def test_on_fail_fail_counts_the_failures_of_the_chunk() -> None:
    step = Validate((Check("x", max=2),))
    with pytest.raises(
        ExecutionError, match="check `max: 2` on column `x`: 3 rows failed in this chunk; first value: 3"
    ):
        run(numbers(6), [step])
    assert_frame_equal(run(numbers(3), [step]), numbers(3))  # nothing fails: rows unchanged


def test_validate_on_a_wrong_column_type_names_the_step() -> None:
    with pytest.raises(
        ExecutionError, match=r"step `validate: .*` failed: check `regex: \^1` on column `age`.*Int64"
    ):
        run(people(), [Validate((Check("age", regex="^1"),))])
    with pytest.raises(ExecutionError, match="check `min: 1` on column `email`"):
        run(people(), [Validate((Check("email", min=1),))])
    with pytest.raises(ExecutionError, match="no column `nope`"):
        run(people(), [Validate((Check("nope", min=1),))])


def test_flag_on_an_existing_column_is_an_error() -> None:
    with pytest.raises(ExecutionError, match="`age` already exists"):
        run(people(), [Validate((Check("age", min=1),), on_fail="flag", flag="age")])


# --------------------------------------------------------------------------- sample


def test_sample_fraction_rate_is_within_tolerance() -> None:
    n, p = 200_000, 0.3
    kept = run(numbers(n), [Sample(fraction=p)], chunk=65_536).height
    assert abs(kept - n * p) < 6 * math.sqrt(n * p * (1 - p))


def test_sample_fraction_keeps_rows_whose_key_is_below_the_threshold() -> None:
    n, p = 5000, 0.25
    keys = rng.bits(SEED, SAMPLE_STREAM, 0, 0, n)
    expected = np.flatnonzero(keys < np.uint64(int(p * 2**64)))
    assert run(numbers(n), [Sample(fraction=p)]).get_column("x").to_list() == expected.tolist()
    assert run(numbers(n), [Sample(fraction=1.0)]).height == n
    assert run(numbers(n), [Sample(fraction=0.0)]).height == 0


def test_sample_n_is_exact_and_keeps_the_original_order() -> None:
    n = 3000
    keys = rng.bits(SEED, SAMPLE_STREAM, 0, 0, n)
    expected = np.sort(np.argsort(keys, kind="stable")[:100])
    out = run(numbers(n), [Sample(n=100)], chunk=256)
    assert out.get_column("x").to_list() == expected.tolist()


def test_sample_n_keys_belong_to_the_original_rows() -> None:
    # a filter before the sample changes which rows arrive, not their keys
    n = 2000
    keys = rng.bits(SEED, SAMPLE_STREAM, 0, 0, n)
    odd = np.arange(1, n, 2)
    expected = np.sort(odd[np.argsort(keys[odd], kind="stable")[:50]])
    out = run(numbers(n), [Filter("x % 2 = 1"), Sample(n=50)], chunk=64)
    assert out.get_column("x").to_list() == expected.tolist()


def test_sample_n_edge_sizes() -> None:
    assert_frame_equal(run(numbers(10), [Sample(n=50)], chunk=3), numbers(10))
    empty = run(numbers(10), [Sample(n=0)], chunk=3)
    assert empty.height == 0 and empty.schema == numbers(0).schema
    assert run(numbers(0), [Sample(n=5)]).height == 0


def test_sample_n_hands_rows_on_in_chunks() -> None:
    steps: list[Step] = [Sample(n=25)]
    frames = [
        numbers(100).slice(s, 10).hstack(hidden_columns(1, steps, s, s + 10)) for s in range(0, 100, 10)
    ]
    heights = [df.height for df in apply_steps(frames, steps, chunk_rows=10)]
    assert heights == [10, 10, 5]


@pytest.mark.parametrize("step", [Sample(n=37), Sample(fraction=0.2)], ids=describe)
def test_sample_is_chunk_invariant(step: Sample) -> None:
    df = numbers(1000).with_columns((pl.col("x") * 7 % 13).alias("y"))
    assert_chunk_invariant(df, [step], sizes=(1, 7, 1000))
    assert_chunk_invariant(df, [Filter("y > 3"), step, Sample(n=20)], sizes=(1, 7, 1000))


# --------------------------------------------------------------------------- sessionize


def events(n: int, entities: int, seed: int = 0) -> pl.DataFrame:
    """Events in time order (ties included), entities drawn at random; some nulls."""
    gen = np.random.default_rng(seed)
    times = np.cumsum(gen.choice([0, 1, 5, 20, 60], size=n))
    users = gen.integers(0, entities, size=n).astype(object)
    users[gen.random(n) < 0.03] = None
    return pl.DataFrame(
        {"user": users.tolist(), "t": times, "n": np.arange(n)}, schema_overrides={"user": pl.Int64}
    )


def reference_sessions(df: pl.DataFrame, gap: int) -> tuple[list[str | None], list[int | None]]:
    """Sessions row by row, in plain Python."""
    last: dict[int, tuple[int, int, int]] = {}
    sessions: list[str | None] = []
    sequence: list[int | None] = []
    for user, t in zip(df.get_column("user").to_list(), df.get_column("t").to_list(), strict=True):
        if user is None:
            sessions.append(None)
            sequence.append(None)
            continue
        prev = last.get(user)
        if prev is None or t - prev[0] > gap:
            number, pos = (prev[1] + 1 if prev else 1), 1
        else:
            number, pos = prev[1], prev[2] + 1
        last[user] = (t, number, pos)
        sessions.append(f"{user}-{number}")
        sequence.append(pos)
    return sessions, sequence


def test_sessionize_matches_a_row_by_row_reference() -> None:
    df = events(600, 7)
    out = run(df, [Sessionize("user", "t", 30, session="sid", sequence="seq")], chunk=50)
    sessions, sequence = reference_sessions(df, 30)
    assert out.columns == ["user", "t", "n", "sid", "seq"]
    assert out.get_column("n").to_list() == list(range(600))  # row order unchanged
    assert out.get_column("sid").to_list() == sessions
    assert out.get_column("seq").to_list() == sequence
    assert out.schema["sid"] == pl.String and out.schema["seq"] == pl.Int64


def test_sessionize_gap_is_exclusive() -> None:
    df = pl.DataFrame({"user": ["a", "a", "a", "b"], "t": [0, 30, 61, 61]})
    out = run(df, [Sessionize("user", "t", 30, sequence="seq")])
    assert out.get_column("session_id").to_list() == ["a-1", "a-1", "a-2", "b-1"]
    assert out.get_column("seq").to_list() == [1, 2, 1, 1]


def test_sessionize_is_chunk_invariant() -> None:
    df = events(400, 5, seed=1)
    assert_chunk_invariant(df, [Sessionize("user", "t", 25, sequence="seq")], sizes=(1, 3, 100, 400))
    assert_chunk_invariant(df, [Sessionize("user", "t", 25)], sizes=(1, 3, 100))


def test_sessionize_on_datetimes_and_dates() -> None:
    start = dt.datetime(2024, 1, 1)
    minutes = [0, 10, 50, 55, 200]
    base = pl.DataFrame({"user": ["u"] * 5, "t": [start + dt.timedelta(minutes=m) for m in minutes]})
    for unit in ("us", "ns", "ms"):
        df = base.with_columns(pl.col("t").cast(pl.Datetime(unit)))
        out = run(df, [Sessionize("user", "t", 30 * 60_000_000, sequence="seq")], chunk=2)
        assert out.get_column("session_id").to_list() == ["u-1", "u-1", "u-2", "u-2", "u-3"], unit
    days = pl.DataFrame(
        {"user": [1, 1, 1], "d": [dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 5)]}
    )
    out = run(days, [Sessionize("user", "d", 86_400_000_000)], chunk=1)
    assert out.get_column("session_id").to_list() == ["1-1", "1-1", "1-2"]


def test_sessionize_rejects_rows_out_of_time_order() -> None:
    df = pl.DataFrame({"user": ["a", "b", "a"], "t": [10, 5, 9]})
    for chunk in (1, 3):  # caught within a chunk and across chunks
        with pytest.raises(ExecutionError, match="sessionize needs rows in time order: sort by t first"):
            run(df, [Sessionize("user", "t", 30)], chunk=chunk)


def test_sessionize_bad_columns_name_the_step() -> None:
    df = pl.DataFrame({"user": ["a"], "t": ["noon"]})
    with pytest.raises(ExecutionError, match=r"sessionize: \{by: user, time: t, gap: 30m.*`t` is String"):
        run(df, [Sessionize("user", "t", 30 * 60_000_000)])
    with pytest.raises(ExecutionError, match="sessionize"):
        run(df, [Sessionize("nobody", "t", 1)])
