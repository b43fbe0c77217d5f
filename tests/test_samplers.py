"""Samplers: determinism properties, scalar references, dtypes, derived columns."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import uuid

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import rng
from runtime.plan import (
    BoolColumn,
    CategoryColumn,
    Choice,
    Column,
    Dist,
    ExpressionColumn,
    NumberColumn,
    PersonColumn,
    SequenceColumn,
    TemplateColumn,
    TimeColumn,
    UUIDColumn,
)
from runtime.samplers import Chunk, SampleError, sample
from runtime.samplers.base import mulhi, uniform_ints
from runtime.samplers.categorical import pick


def num(name: str, dtype: str, dist: str, nulls: float = 0.0, **params: float) -> NumberColumn:
    bounds = {k: params.pop(k) for k in ("min", "max") if k in params}
    return NumberColumn(
        name,
        dtype,
        Dist(dist, tuple(sorted(params.items()))),
        nulls=nulls,
        **bounds,  # type: ignore[arg-type]
    )


CATEGORY = CategoryColumn("cat", (Choice(None, ("a", "b", "c"), (0.5, 0.3, 0.2)),))
# Every sampled column kind and every distribution; derived columns are tested separately.
COLUMNS: list[Column] = [
    UUIDColumn("id"),
    SequenceColumn("seq", start=10, step=3),
    SequenceColumn("code", format="ORD-{:06d}"),
    SequenceColumn("odd", format="{:x}!"),
    num("ui", "int", "uniform", min=-5, max=5),
    num("uf", "float", "uniform", min=-1.5, max=2.5),
    num("nf", "float", "normal", mean=10, sd=2),
    num("ni", "int", "normal", mean=10, sd=2, min=0),
    num("ln", "float", "lognormal", mu=1, sigma=0.5),
    num("ex", "float", "exponential", scale=3),
    num("po", "int", "poisson", lam=4),
    num("pobig", "int", "poisson", lam=5000),
    num("bi", "int", "binomial", n=20, p=0.3),
    num("ga", "float", "gamma", shape=2.5, scale=2),
    num("gas", "float", "gamma", shape=0.3, scale=1),
    num("be", "float", "beta", a=2, b=5),
    num("zi", "int", "zipf", a=2),
    BoolColumn("flag", p=0.3),
    CATEGORY,
    CategoryColumn("n", (Choice(None, (1, 2, 3), (1 / 3, 1 / 3, 1 / 3)),), nulls=0.2),
    TimeColumn("ts", "datetime", 0, 10**15),
    TimeColumn("day", "date", 0, 20_000, nulls=0.1),
    PersonColumn("who", "name"),
    PersonColumn("mail", "email", locale="de_DE"),
    PersonColumn("tel", "phone", locale="fr_FR"),
    PersonColumn("firm", "company", locale="ja_JP"),
    PersonColumn("addr", "street_address", locale="ja_JP"),
]
IDS = [c.name for c in COLUMNS]


def run(col: Column, start: int, stop: int, seed: int = 1, frame: pl.DataFrame | None = None) -> pl.Series:
    return sample(col, Chunk(seed, start, stop, pl.DataFrame() if frame is None else frame, {}))


@pytest.mark.parametrize("col", COLUMNS, ids=IDS)
def test_any_chunking_gives_the_same_values(col: Column) -> None:
    whole = run(col, 0, 1000)
    pieces = pl.concat([run(col, a, b) for a, b in ((0, 1), (1, 300), (300, 301), (301, 1000))])
    assert whole.len() == 1000 and whole.name == col.name
    assert whole.equals(pieces)


@pytest.mark.parametrize("col", COLUMNS, ids=IDS)
def test_row_values_do_not_depend_on_the_row_count(col: Column) -> None:
    assert run(col, 0, 10).equals(run(col, 0, 10_000).head(10))
    assert run(col, 9_990, 10_000).equals(run(col, 0, 10_000).tail(10))


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(COLUMNS),
    st.integers(0, 2**40),
    st.lists(st.integers(1, 120), min_size=1, max_size=5),
    st.integers(0, 2**63 - 1),
)
def test_property_any_split_any_offset(col: Column, start: int, sizes: list[int], seed: int) -> None:
    bounds = np.cumsum([start, *sizes])
    whole = run(col, int(bounds[0]), int(bounds[-1]), seed)
    parts = [run(col, int(a), int(b), seed) for a, b in itertools.pairwise(bounds)]
    assert whole.equals(pl.concat(parts))


@pytest.mark.parametrize("col", COLUMNS, ids=IDS)
def test_other_seed_or_name_changes_values(col: Column) -> None:
    if isinstance(col, SequenceColumn):
        pytest.skip("sequences do not draw")
    base = run(col, 0, 200)
    assert not base.equals(run(col, 0, 200, seed=2))


def test_adding_columns_never_changes_a_column() -> None:
    alone = run(CATEGORY, 0, 500)
    # whatever was computed before (other columns in the frame) is irrelevant
    frame = pl.DataFrame({c.name: run(c, 0, 500) for c in COLUMNS if c.name != CATEGORY.name})
    assert run(CATEGORY, 0, 500, frame=frame).equals(alone)
    # person columns draw from the group stream: other groups and fields do not disturb it
    first = run(PersonColumn("f", "first_name"), 0, 500)
    _ = run(PersonColumn("g", "first_name", group="other"), 0, 500)
    assert run(PersonColumn("f2", "first_name"), 0, 500).equals(first.alias("f2"))


EXPECTED_DTYPES = {
    "id": pl.String, "seq": pl.Int64, "code": pl.String, "odd": pl.String, "ui": pl.Int64,
    "uf": pl.Float64, "nf": pl.Float64, "ni": pl.Int64, "ln": pl.Float64, "ex": pl.Float64,
    "po": pl.Int64, "pobig": pl.Int64, "bi": pl.Int64, "ga": pl.Float64, "gas": pl.Float64,
    "be": pl.Float64, "zi": pl.Int64, "flag": pl.Boolean, "cat": pl.String, "n": pl.Int64,
    "ts": pl.Datetime("us", "UTC"), "day": pl.Date, "who": pl.String, "mail": pl.String,
    "tel": pl.String, "firm": pl.String, "addr": pl.String,
}  # fmt: skip


@pytest.mark.parametrize("col", COLUMNS, ids=IDS)
def test_dtype_is_the_contracted_one(col: Column) -> None:
    assert run(col, 0, 50).dtype == EXPECTED_DTYPES[col.name]


# --------------------------------------------------------------------------- scalar references


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=20), st.integers(1, 2**64))
def test_mulhi_is_the_exact_high_word(words: list[int], factor: int) -> None:
    got = mulhi(np.array(words, dtype=np.uint64), factor).tolist()
    assert got == [(w * factor) >> 64 for w in words]


@settings(max_examples=100, deadline=None)
@given(
    st.integers(-(2**62), 2**62),
    st.one_of(st.integers(0, 2**21), st.integers(0, 2**62 - 1)),  # max stays inside Int64
    st.integers(0, 10_000),
)
def test_uniform_int_matches_scalar_reference(low: int, width: int, start: int) -> None:
    col = NumberColumn("u", "int", Dist("uniform", ()), min=low, max=low + width)
    got = run(col, start, start + 20).to_list()
    words = [rng.bits_scalar(1, "u", 0, start + i) for i in range(20)]
    size = width + 1
    if size <= 2**21:
        assert got == [low + (((w >> 32) * size) >> 32) for w in words]
    else:
        assert got == [low + ((w * size) >> 64) for w in words]
    assert all(low <= v <= low + width for v in got)


def test_uniform_int_is_inclusive_of_both_bounds() -> None:
    values = set(run(num("d", "int", "uniform", min=1, max=6), 0, 2000).to_list())
    assert values == {1, 2, 3, 4, 5, 6}
    full = NumberColumn("w", "int", Dist("uniform", ()), min=-(2**63), max=2**63 - 1)
    assert run(full, 0, 5).to_list() == [rng.bits_scalar(1, "w", 0, i) - 2**63 for i in range(5)]


@settings(max_examples=50, deadline=None)
@given(st.floats(-1e6, 1e6), st.floats(0, 1e6), st.integers(0, 2**40))
def test_uniform_float_matches_scalar_reference(low: float, width: float, start: int) -> None:
    got = run(num("f", "float", "uniform", min=low, max=low + width), start, start + 10).to_list()
    want = [low + width * rng.uniform_scalar(1, "f", 0, start + i) for i in range(10)]
    assert got == pytest.approx(want, rel=1e-12, abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(st.floats(-100, 100), st.floats(0.01, 100), st.integers(0, 2**40))
def test_normal_matches_box_muller_reference(mean: float, sd: float, start: int) -> None:
    got = run(num("z", "float", "normal", mean=mean, sd=sd), start, start + 10).to_list()
    want = []
    for i in range(10):
        u1, u2 = rng.uniform_scalar(1, "z", 0, start + i), rng.uniform_scalar(1, "z", 1, start + i)
        want.append(mean + sd * math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2))
    assert got == pytest.approx(want, rel=1e-9, abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 10), min_size=1, max_size=6).filter(lambda w: sum(w) > 0), st.integers(0, 2**40))
def test_category_matches_scalar_reference(weights: list[float], start: int) -> None:
    values = tuple(f"v{i}" for i in range(len(weights)))
    total = sum(weights)
    col = CategoryColumn("c", (Choice(None, values, tuple(w / total for w in weights)),))
    normalized = [w / total for w in weights]
    target_total = float(np.cumsum(normalized)[-1])
    want = []
    for i in range(30):
        target = rng.uniform_scalar(1, "c", 0, start + i) * target_total
        acc, chosen = 0.0, values[-1]
        for v, w in zip(values[:-1], normalized, strict=False):
            acc += w
            if acc > target:
                chosen = v
                break
        want.append(chosen)
    got = run(col, start, start + 30).to_list()
    assert got == want
    assert all(weights[values.index(v)] > 0 for v in got)


def test_pick_never_picks_zero_weights() -> None:
    u = rng.uniform(0, "p", 0, 0, 10_000)
    assert set(pick([0.0, 0.5, 0.0, 0.5, 0.0], u).tolist()) == {1, 3}


@settings(max_examples=50, deadline=None)
@given(st.floats(0, 1), st.integers(0, 2**40))
def test_bool_matches_scalar_reference(p: float, start: int) -> None:
    got = run(BoolColumn("b", p), start, start + 20).to_list()
    assert got == [rng.uniform_scalar(1, "b", 0, start + i) < p or p >= 1 for i in range(20)]


def test_uniform_ints_handle_the_full_int64_range() -> None:
    words = np.array([0, 2**63, 2**64 - 1], dtype=np.uint64)
    assert uniform_ints(words, -(2**63), 2**63 - 1).tolist() == [-(2**63), 0, 2**63 - 1]


# --------------------------------------------------------------------------- kinds


def test_uuid_is_canonical_v4_and_matches_the_uuid_module() -> None:
    got = run(UUIDColumn("id"), 5, 205).to_list()
    for i, text in enumerate(got):
        hi, lo = rng.bits_scalar(1, "id", 0, 5 + i), rng.bits_scalar(1, "id", 1, 5 + i)
        assert text == str(uuid.UUID(int=(hi << 64) | lo, version=4))
        assert uuid.UUID(text).version == 4 and text[19] in "89ab" and text == text.lower()
    assert len(set(run(UUIDColumn("id"), 0, 100_000).to_list())) == 100_000


def test_sequence_values_and_formats() -> None:
    assert run(SequenceColumn("s", start=10, step=3), 2, 5).to_list() == [16, 19, 22]
    assert run(SequenceColumn("s", start=5, step=-2), 0, 5).to_list() == [5, 3, 1, -1, -3]
    assert run(SequenceColumn("s", format="ORD-{:06d}"), 0, 2).to_list() == ["ORD-000001", "ORD-000002"]
    assert run(SequenceColumn("s", format="{{x}}{:4d}."), 0, 1).to_list() == ["{x}   1."]
    assert run(SequenceColumn("s", format="{:x}-{:x}"[:4]), 254, 256).to_list() == ["ff", "100"]
    assert run(SequenceColumn("s", start=-1, format="{:03d}"), 0, 2).to_list() == ["-01", "000"]
    with pytest.raises(SampleError, match="column `s`"):
        run(SequenceColumn("s", format="{:s}"), 0, 2)
    with pytest.raises(SampleError, match="int64"):
        run(SequenceColumn("s", start=2**63 - 2), 0, 5)


@pytest.mark.parametrize(
    "col, low, high",
    [
        (num("a", "float", "normal", mean=0, sd=10, min=-1, max=1), -1, 1),
        (num("b", "int", "normal", mean=0, sd=10, min=-1.5, max=2.5), -1, 2),
        (num("c", "int", "zipf", a=1.1, max=50), 1, 50),
        (num("d", "float", "exponential", scale=1, min=0.1, max=0.5), 0.1, 0.5),
    ],
)
def test_min_max_clip(col: NumberColumn, low: float, high: float) -> None:
    values = run(col, 0, 5000)
    assert values.min() == low and values.max() == high  # type: ignore[operator]


def test_round_rounds_floats_and_ints_round_half_to_even() -> None:
    values = run(NumberColumn("r", "float", Dist("uniform", ()), min=0, max=10, round=2), 0, 100)
    assert all(v == round(v, 2) for v in values.to_list())
    # uniform on [0.5, 0.5] is exactly 0.5 before rounding: half to even gives 0
    assert set(run(num("h", "int", "normal", mean=2.5, sd=1e-300), 0, 5).to_list()) == {2}


def test_time_bounds_and_dtypes() -> None:
    start, end = 1_700_000_000_000_000, 1_700_000_000_000_003
    values = run(TimeColumn("t", "datetime", start, end), 0, 400)
    micros = values.dt.epoch("us").to_list()
    assert set(micros) == {start, start + 1, start + 2, start + 3}
    days = run(TimeColumn("d", "date", 19_000, 19_001), 0, 50).to_list()
    assert set(days) == {dt.date(2022, 1, 8), dt.date(2022, 1, 9)}


def test_nulls_apply_to_every_kind_and_leave_values_alone() -> None:
    for col in COLUMNS:
        from dataclasses import replace

        plain = run(replace(col, nulls=0.0), 0, 2000)  # type: ignore[type-var]
        holey = run(replace(col, nulls=0.25), 0, 2000)  # type: ignore[type-var]
        mask = holey.is_null()
        assert 300 < mask.sum() < 700, col.name
        assert holey.filter(~mask).equals(plain.filter(~mask)), col.name


# --------------------------------------------------------------------------- conditional category


def test_given_picks_the_parents_choice_and_nulls_unknown_parents() -> None:
    col = CategoryColumn(
        "plan",
        (
            Choice("laptop", ("pro", "basic"), (0.5, 0.5)),
            Choice("phone", ("basic",), (1.0,)),
        ),
        given="product",
    )
    parent = pl.Series("product", ["laptop", "phone", "tablet", None] * 250)
    got = run(col, 0, 1000, frame=parent.to_frame())
    rows = pl.DataFrame({"product": parent, "plan": got})
    assert rows.filter(pl.col("product") == "phone")["plan"].unique().to_list() == ["basic"]
    assert set(rows.filter(pl.col("product") == "laptop")["plan"].to_list()) == {"pro", "basic"}
    assert (
        rows.filter(pl.col("product").is_in(["tablet"]) | pl.col("product").is_null())["plan"].null_count()
        == 500
    )
    # a row's value depends on its own parent only, not on which chunk it is in
    tail = run(col, 500, 1000, frame=parent.slice(500).to_frame())
    assert tail.equals(got.slice(500))


def test_given_matches_string_keys_to_non_string_parents() -> None:
    col = CategoryColumn("c", (Choice("1", ("one",), (1.0,)), Choice(True, ("yes",), (1.0,))), given="p")
    assert run(col, 0, 2, frame=pl.DataFrame({"p": [1, 2]})).to_list() == ["one", None]
    assert run(col, 0, 2, frame=pl.DataFrame({"p": [True, False]})).to_list() == ["yes", None]


def test_category_value_types() -> None:
    assert run(CategoryColumn("b", (Choice(None, (True, False), (0.5, 0.5)),)), 0, 5).dtype == pl.Boolean
    assert run(CategoryColumn("f", (Choice(None, (1, 2.5), (0.5, 0.5)),)), 0, 5).dtype == pl.Float64


# --------------------------------------------------------------------------- derived


def test_expression_over_the_frame_and_broadcast() -> None:
    frame = pl.DataFrame({"price": [1.5, 2.0], "qty": [2, 3]})
    got = run(ExpressionColumn("total", "price * qty", ("price", "qty")), 0, 2, frame=frame)
    assert got.to_list() == [3.0, 6.0] and got.name == "total"
    assert run(ExpressionColumn("k", "1 + 2", ()), 0, 3).to_list() == [3, 3, 3]
    with pytest.raises(SampleError, match="column `bad`"):
        run(ExpressionColumn("bad", "nope + 1", ("nope",)), 0, 2, frame=frame)


def test_expression_nulls_do_not_touch_the_input_frame() -> None:
    frame = pl.DataFrame({"x": list(range(1000))})
    got = run(ExpressionColumn("y", "x", ("x",), nulls=0.5), 0, 1000, frame=frame)
    assert 300 < got.null_count() < 700
    assert frame["x"].null_count() == 0


def test_template_renders_rows_with_vars_and_python_values() -> None:
    frame = pl.DataFrame(
        {"product": ["laptop", "phone"], "n": [1, 2],
         "at": [dt.datetime(2024, 1, 2, tzinfo=dt.UTC), None]}
    ).with_columns(pl.col("at").cast(pl.Datetime("us", "UTC")))  # fmt: skip
    col = TemplateColumn("s", "{{ company }}: {{ product | title }} #{{ n }} {{ at.year if at else '-' }}",
                         ("product", "n", "at"))  # fmt: skip
    got = sample(col, Chunk(0, 0, 2, frame, {"company": "Acme"}))
    assert got.to_list() == ["Acme: Laptop #1 2024", "Acme: Phone #2 -"]
    assert got.dtype == pl.String


@pytest.mark.parametrize(
    "template, message",
    [
        ("{{ missing }}", "UndefinedError"),
        ("{{ n + 'x' }}", "TypeError"),
        ("{{ n.__class__.__mro__ }}", "column `t`, row 7"),
        ("{{ [1] | random }}", "random"),
    ],
)
def test_template_errors_name_the_column_and_row(template: str, message: str) -> None:
    frame = pl.DataFrame({"n": [1]})
    with pytest.raises(SampleError, match=message):
        sample(TemplateColumn("t", template, ("n",)), Chunk(0, 7, 8, frame, {}))


def test_zero_copy_string_buffers_are_released_with_their_series() -> None:
    from runtime.samplers import arrow

    before = len(arrow._LIVE)
    series = [run(UUIDColumn("id"), 0, 1000) for _ in range(5)]
    assert len(arrow._LIVE) == before + 5
    copy = series[0].str.slice(0, 8)  # derived data may share the buffer: still alive
    del series
    assert len(arrow._LIVE) == before + 1
    del copy
    assert len(arrow._LIVE) == before
