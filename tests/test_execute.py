"""Executor: chunked generation, output order, steps, and chunk-size invariance."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import runtime.samplers
from runtime.errors import ExecutionError
from runtime.execute import execute, plan_metadata, run_plan
from runtime.plan import (
    BoolColumn,
    CategoryColumn,
    Choice,
    Dedupe,
    Dist,
    Drop,
    ExpressionColumn,
    Filter,
    Limit,
    NumberColumn,
    Output,
    PersonColumn,
    Plan,
    Rename,
    Select,
    SequenceColumn,
    Shuffle,
    Sort,
    Step,
    TemplateColumn,
    TimeColumn,
    UUIDColumn,
    plan_hash,
)
from runtime.steps import SeenHashes, apply_steps

# --------------------------------------------------------------------------- plans


UNIFORM = Dist("uniform", ())
COLUMNS = (
    SequenceColumn("id"),
    NumberColumn("k", "int", UNIFORM, min=0, max=9),
    NumberColumn("x", "float", UNIFORM, min=0, max=1, nulls=0.2),
    BoolColumn("flag", p=0.3),
    CategoryColumn("cat", (Choice(None, ("a", "b", "c"), (1 / 3, 1 / 3, 1 / 3)),)),
    UUIDColumn("uid"),
    TimeColumn("at", "datetime", 1_700_000_000_000_000, 1_700_100_000_000_000),
    PersonColumn("who", "email"),
    ExpressionColumn("k2", "k * 2 + 1", ("k",)),
    TemplateColumn("label", "{{ cat }}-{{ k }}", ("cat", "k")),
)
ORDER = ("cat", "id", "x", "flag", "k", "uid", "at", "who", "k2", "label")


def make_plan(rows: int = 100, steps: tuple[Step, ...] = (), seed: int = 7) -> Plan:
    return Plan(
        name="t",
        seed=seed,
        rows=rows,
        as_of=0,
        columns=COLUMNS,
        column_order=ORDER,
        steps=steps,
    )


def collect(plan: Plan, chunk_rows: int = 65_536) -> pl.DataFrame:
    return pl.concat(list(execute(plan, chunk_rows=chunk_rows)))


def chunked(df: pl.DataFrame, size: int) -> Iterator[pl.DataFrame]:
    yield from (df.slice(o, size) for o in range(0, max(df.height, 1), size))


# --------------------------------------------------------------------------- execute


def test_columns_come_out_in_declared_order_with_all_rows() -> None:
    df = collect(make_plan(rows=50), chunk_rows=16)
    assert df.columns == list(ORDER)
    assert df["k2"].to_list() == [k * 2 + 1 for k in df["k"]]
    assert df["id"].to_list() == list(range(1, 51))


def test_zero_rows_still_yields_the_schema() -> None:
    frames = list(execute(make_plan(rows=0)))
    assert len(frames) == 1
    assert frames[0].height == 0
    assert frames[0].columns == list(ORDER)


def test_chunk_rows_must_be_positive() -> None:
    with pytest.raises(ValueError):
        execute(make_plan(), chunk_rows=0)


STEP_LISTS: list[tuple[Step, ...]] = [
    (),
    (Filter("k > 3 AND x < 0.8"),),
    (Dedupe(("k", "cat")),),
    (Sort(("k", "cat"), descending=True),),
    (Shuffle(),),
    (Filter("flag"), Shuffle(), Limit(17)),
    (Dedupe(("k",)), Sort(("x",)), Drop(("flag",)), Rename((("k", "kk"),))),
    (Shuffle(), Select(("id", "x")), Shuffle(), Limit(40)),
    (Limit(33), Sort(("cat",))),
]


@settings(max_examples=50, deadline=None)
@given(
    rows=st.integers(0, 300),
    chunk_rows=st.integers(1, 120),
    steps=st.sampled_from(STEP_LISTS),
)
def test_rows_are_identical_for_any_chunk_size(rows: int, chunk_rows: int, steps: tuple[Step, ...]) -> None:
    plan = make_plan(rows=rows, steps=steps)
    assert_frame_equal(collect(plan, chunk_rows=chunk_rows), collect(plan, chunk_rows=1_000))


def test_limit_stops_generating_chunks() -> None:
    generated: list[int] = []
    plan = make_plan(rows=10_000, steps=(Limit(25),))
    df = pl.concat(list(execute(plan, chunk_rows=10, progress=generated.append)))
    assert df.height == 25
    assert generated == [10, 10, 10]  # not the 1,000 chunks the plan has


def test_limit_zero_keeps_schema() -> None:
    frames = list(execute(make_plan(steps=(Limit(0),))))
    assert [f.height for f in frames] == [0]
    assert frames[0].columns == list(ORDER)


def test_shuffle_is_seeded_and_a_permutation() -> None:
    plan = make_plan(rows=500, steps=(Shuffle(),))
    ids = collect(plan, chunk_rows=64)["id"].to_list()
    assert sorted(ids) == list(range(1, 501))
    assert ids != sorted(ids)
    assert ids == collect(plan, chunk_rows=7)["id"].to_list()
    assert ids != collect(replace(plan, seed=8))["id"].to_list()


def test_shuffle_order_follows_the_original_row_index() -> None:
    # Filtering before the shuffle must not move the rows that remain relative to each other.
    plain = collect(make_plan(rows=300, steps=(Shuffle(),)))
    filtered = collect(make_plan(rows=300, steps=(Filter("k < 5"), Shuffle())))
    assert filtered["id"].to_list() == plain.filter(pl.col("k") < 5)["id"].to_list()


def test_hidden_columns_never_reach_the_output() -> None:
    df = collect(make_plan(rows=40, steps=(Shuffle(), Shuffle(), Select(("id",)))))
    assert df.columns == ["id"]
    df = collect(make_plan(rows=40, steps=(Select(("id",)), Shuffle())))
    assert df.columns == ["id"]


def test_sampler_errors_name_the_column(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(col: Any, chunk: Any) -> pl.Series:
        raise pl.exceptions.ComputeError("boom")

    monkeypatch.setattr(runtime.samplers, "sample", failing)
    with pytest.raises(ExecutionError, match="column `id`: boom"):
        collect(make_plan())


def test_a_failing_template_is_an_execution_error() -> None:
    plan = make_plan(rows=5)
    bad = TemplateColumn("label", "{{ 1 / (k - k) }}", ("k",))
    plan = replace(plan, columns=(*COLUMNS[:-1], bad))
    with pytest.raises(ExecutionError, match="label"):
        collect(plan)


def test_run_plan_writes_the_plan_output(tmp_path: Any) -> None:
    out = tmp_path / "rows.parquet"
    plan = replace(make_plan(rows=30), output=Output(str(out), "parquet"), spec_hash="abc")
    result = run_plan(plan)
    assert result.rows == 30
    assert_frame_equal(pl.read_parquet(out), collect(plan))
    meta = pl.read_parquet_metadata(out)
    assert meta["synthc.plan_hash"] == plan_hash(plan)
    assert meta["synthc.spec_hash"] == "abc"
    assert plan_metadata(plan)["synthc.plan_hash"] == plan_hash(plan)


# --------------------------------------------------------------------------- steps


def run_steps(df: pl.DataFrame, steps: tuple[Step, ...], size: int = 2) -> pl.DataFrame:
    return pl.concat(list(apply_steps(chunked(df, size), steps, chunk_rows=size)))


def test_filter_treats_null_as_false() -> None:
    df = pl.DataFrame({"a": [1, None, 3, 4], "b": ["x", "y", None, "z"]})
    out = run_steps(df, (Filter("a > 1 AND b <> 'q'"),))
    assert out.to_dict(as_series=False) == {"a": [4], "b": ["z"]}


def test_filter_error_is_an_execution_error() -> None:
    with pytest.raises(ExecutionError, match="filter: nope > 1"):
        run_steps(pl.DataFrame({"a": [1]}), (Filter("nope > 1"),))


def test_dedupe_keeps_first_occurrence_across_chunks() -> None:
    df = pl.DataFrame({"k": [1, 2, 2, 3, 1, None, 3, None, 4], "i": range(9)})
    out = run_steps(df, (Dedupe(("k",)),), size=2)
    assert out.to_dict(as_series=False) == {"k": [1, 2, 3, None, 4], "i": [0, 1, 3, 5, 8]}


def test_dedupe_on_several_columns() -> None:
    df = pl.DataFrame({"a": [1, 1, 1, 2], "b": ["x", "y", "x", "x"]})
    assert run_steps(df, (Dedupe(("a", "b")),), size=1)["b"].to_list() == ["x", "y", "x"]


def test_drop_select_rename() -> None:
    df = pl.DataFrame({"a": [1], "b": [2], "c": [3]})
    assert run_steps(df, (Drop(("b",)),)).columns == ["a", "c"]
    assert run_steps(df, (Select(("c", "a")),)).columns == ["c", "a"]
    swapped = run_steps(df, (Rename((("a", "b"), ("b", "a"))),))
    assert swapped.to_dict(as_series=False) == {"b": [1], "a": [2], "c": [3]}


def test_sort_is_global_stable_and_puts_nulls_last() -> None:
    df = pl.DataFrame({"k": [2, None, 1, 2, 1, 3], "i": range(6)})
    up = run_steps(df, (Sort(("k",)),))
    assert up.to_dict(as_series=False) == {"k": [1, 1, 2, 2, 3, None], "i": [2, 4, 0, 3, 5, 1]}
    down = run_steps(df, (Sort(("k",), descending=True),))
    assert down.to_dict(as_series=False) == {"k": [3, 2, 2, 1, 1, None], "i": [5, 0, 3, 2, 4, 1]}


def test_blocking_step_hands_rows_on_in_chunks() -> None:
    df = pl.DataFrame({"k": range(10)})
    frames = list(apply_steps(chunked(df, 3), (Sort(("k",), descending=True),), chunk_rows=4))
    assert [f.height for f in frames] == [4, 4, 2]


def test_limit_counts_across_chunks() -> None:
    df = pl.DataFrame({"k": range(10)})
    assert run_steps(df, (Limit(5),), size=3)["k"].to_list() == [0, 1, 2, 3, 4]
    assert run_steps(df, (Limit(50),), size=3).height == 10


@settings(max_examples=100, deadline=None)
@given(batches=st.lists(st.lists(st.integers(0, 2**64 - 1), max_size=20), max_size=20))
def test_seen_hashes_behaves_like_a_set(batches: list[list[int]]) -> None:
    seen, reference = SeenHashes(), set[int]()
    for batch in batches:
        arr = np.array(batch, dtype=np.uint64)
        expected = np.array([v in reference for v in batch], dtype=np.bool_)
        assert (seen.contains(arr) == expected).all()
        new = np.unique(arr[~expected])
        seen.add(new)
        reference.update(int(v) for v in new)
