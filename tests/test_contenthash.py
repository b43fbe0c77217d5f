"""Content hash: chunking- and format-independent, exact, per column, documented encoding."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

import synthc
from runtime.contenthash import (
    CONTENT_VERSION,
    ContentHash,
    ContentHasher,
    content_hash,
    diff_columns,
    dtype_text,
)
from runtime.errors import ExecutionError
from runtime.execute import execute, run_plan
from runtime.plan import OutputFormat

ROOT = Path(__file__).resolve().parents[1]

MIXED = pl.DataFrame(
    {
        "i": [1, None, 3, -4, 5, 6, None, 8, 9, 10],
        "f": [0.5, float("nan"), None, -0.0, 0.0, 1e300, -1.5, float("inf"), 2.0, 3.0],
        "b": [True, None, False, True, True, False, None, True, False, True],
        "s": ["a", None, "", "héllo", "x" * 40, "b", "", None, "ünï", "z"],
        "bin": [b"\x00\xff", None, b"", b"ab", b"c", None, b"\x01", b"", b"zz", b"\n"],
        "d": [date(2020, 1, 1), None, date(1969, 12, 31), *[date(2024, 2, 29)] * 7],
        "t": [datetime(2024, 1, 1, 10, tzinfo=UTC), None, *[datetime(1999, 12, 31, tzinfo=UTC)] * 8],
        "dur": [timedelta(seconds=k) for k in range(10)],
        "tod": [time(k, 30) for k in range(10)],
        "l": [[1, 2], None, [], [None], [3], [], [4, 5, 6], None, [7], []],
        "st": [{"a": k, "b": str(k)} if k % 3 else None for k in range(10)],
        "ls": [[{"x": k}] * (k % 3) if k != 4 else None for k in range(10)],
        "cat": pl.Series(["x", "y", None, "x", "y", "x", "x", "y", None, "x"], dtype=pl.Categorical),
        "enum": pl.Series(["x", "y", None, "x", "y", "x", "x", "y", None, "x"], dtype=pl.Enum(["x", "y"])),
        "dec": pl.Series([Decimal("1.50"), None, *[Decimal("-2.25")] * 8], dtype=pl.Decimal(10, 2)),
        "arr": pl.Series([[k, k + 1] if k != 2 else None for k in range(10)], dtype=pl.Array(pl.Int64, 2)),
        "big": pl.Series([2**100, None, *range(8)], dtype=pl.Int128),
        "n": pl.Series([None] * 10, dtype=pl.Null),
        "f32": pl.Series([1.5, None, float("nan"), *range(7)], dtype=pl.Float32),
    },
    schema_overrides={"t": pl.Datetime("us", "UTC")},
)


def chunks(df: pl.DataFrame, size: int) -> Iterator[pl.DataFrame]:
    yield from (df.slice(o, size) for o in range(0, df.height, size))


def changed(a: pl.DataFrame, b: pl.DataFrame) -> list[str]:
    return diff_columns(content_hash([a]), content_hash([b]))


# --------------------------------------------------------------------------- chunking


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_same_hash_for_every_chunk_size(size: int) -> None:
    whole = content_hash([MIXED])
    assert content_hash(chunks(MIXED, size)) == whole
    assert whole.rows == MIXED.height
    assert [name for name, _ in whole.columns] == MIXED.columns


def test_empty_frames_hash_stably_and_add_nothing() -> None:
    empty = content_hash([MIXED.clear()])
    assert empty == content_hash([MIXED.clear(), MIXED.clear()])
    assert empty.rows == 0 and empty.schema == content_hash([MIXED]).schema
    assert empty != content_hash([MIXED.clear().drop("n")])
    assert content_hash([MIXED.clear(), MIXED.head(4), MIXED.clear(), MIXED.tail(6)]) == content_hash([MIXED])
    assert content_hash([]) == ContentHasher().result()
    two = pl.DataFrame(schema={"a": pl.Int64, "b": pl.String})
    assert content_hash([two]).total == _reference_total(two) == "361d1c6fbdd56a73340b7de124be72c6"


def test_schema_change_between_chunks_is_an_error() -> None:
    hasher = ContentHasher()
    hasher.update(pl.DataFrame({"a": [1]}))
    with pytest.raises(ExecutionError, match="differ from the first chunk"):
        hasher.update(pl.DataFrame({"a": [1.0]}))


@settings(max_examples=40, deadline=None)
@given(
    ints=st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=0, max_size=60),
    data=st.data(),
)
def test_concatenation_of_random_splits_hashes_like_the_whole(
    ints: list[int | None], data: st.DataObject
) -> None:
    n = len(ints)
    texts = data.draw(st.lists(st.one_of(st.none(), st.text(max_size=8)), min_size=n, max_size=n))
    floats = data.draw(st.lists(st.one_of(st.none(), st.floats()), min_size=n, max_size=n))
    lists = data.draw(
        st.lists(st.one_of(st.none(), st.lists(st.integers(-5, 5), max_size=4)), min_size=n, max_size=n)
    )
    df = pl.DataFrame(
        {"i": ints, "s": texts, "f": floats, "l": lists},
        schema={"i": pl.Int64, "s": pl.String, "f": pl.Float64, "l": pl.List(pl.Int64)},
    )
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=6)))
    bounds = [0, *cuts, n]
    parts = [df.slice(a, b - a) for a, b in itertools.pairwise(bounds)]
    assert content_hash(parts) == content_hash([df])


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize(
    ("column", "edit"),
    [
        ("i", pl.when(pl.int_range(pl.len()) == 3).then(-5).otherwise(pl.col("i"))),  # one value
        ("f", pl.when(pl.int_range(pl.len()) == 0).then(None).otherwise(pl.col("f"))),  # value → null
        ("s", pl.when(pl.col("s") == "").then(None).otherwise(pl.col("s"))),  # "" → null
        ("i", pl.col("i").cast(pl.Float64)),  # 1 (i64) → 1.0 (f64)
        ("st", pl.col("st").struct.with_fields(pl.field("b").str.replace("4", "x"))),  # a struct field
        ("l", pl.col("l").list.eval(pl.element().replace(5, 50))),  # a list element
        ("ls", pl.col("ls").list.eval(pl.element().struct.with_fields(pl.field("x") + 1))),
        ("t", pl.col("t").dt.convert_time_zone("Europe/Paris")),  # same instants, other zone
        ("cat", pl.col("cat").cast(pl.String)),  # same strings, other dtype
        ("bin", pl.when(pl.col("bin") == b"ab").then(pl.lit(b"ac")).otherwise(pl.col("bin"))),
    ],
)
def test_each_change_changes_exactly_that_column(column: str, edit: pl.Expr) -> None:
    edited = MIXED.with_columns(edit.alias(column))
    assert not edited.equals(MIXED) or edited.schema != MIXED.schema
    assert changed(MIXED, edited) == [column]
    assert content_hash([MIXED]).total != content_hash([edited]).total


def test_nulls_empties_and_zeros_are_told_apart() -> None:
    pairs = [
        (pl.Series("c", ["", None]), pl.Series("c", [None, ""])),
        (pl.Series("c", [[], None]), pl.Series("c", [None, []])),
        (pl.Series("c", [{"a": None}, None]), pl.Series("c", [None, {"a": None}])),
        (pl.Series("c", [0.0]), pl.Series("c", [-0.0])),
        (pl.Series("c", [0, None]), pl.Series("c", [None, 0])),
        (pl.Series("c", ["ab", "c"]), pl.Series("c", ["a", "bc"])),  # same bytes, other lengths
        (pl.Series("c", [[1, 2], [3]]), pl.Series("c", [[1], [2, 3]])),
        (pl.Series("c", [1], dtype=pl.Int32), pl.Series("c", [1], dtype=pl.Int64)),
    ]
    for a, b in pairs:
        assert changed(a.to_frame(), b.to_frame()) == ["c"], (a, b)


def test_hash_ignores_what_lies_under_nulls() -> None:
    """Values hidden under a null (masked lists, strings, structs) are not hashed."""
    df = pl.DataFrame(
        {"l": [[1, 2], [3], [4, 5]], "s": ["aa", "bbb", "c"], "st": [{"a": 1}, {"a": 2}, {"a": 3}]}
    )
    masked = df.with_columns(
        pl.when(pl.Series([True, False, True])).then(pl.all()).otherwise(None).name.keep()
    )
    built = pl.DataFrame(
        {"l": [[1, 2], None, [4, 5]], "s": ["aa", None, "c"], "st": [{"a": 1}, None, {"a": 3}]}
    )
    assert content_hash([masked]) == content_hash([built])
    assert content_hash([masked.slice(1)]) == content_hash([built.slice(1)])


def test_nan_bit_patterns_are_canonical() -> None:
    nan_bits = [0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001, 0x7FFFFFFFFFFFFFFF]
    hashes = {
        content_hash([pl.DataFrame({"x": np.array([1, bits], dtype=np.uint64).view(np.float64)})])
        for bits in nan_bits
    }
    assert len(hashes) == 1
    f32 = [0x7FC00000, 0xFFC00000, 0x7F800001]
    assert (
        len(
            {
                content_hash([pl.DataFrame({"x": np.array([b], dtype=np.uint32).view(np.float32)})])
                for b in f32
            }
        )
        == 1
    )
    assert changed(pl.DataFrame({"x": [float("nan")]}), pl.DataFrame({"x": [float("inf")]})) == ["x"]


def test_column_order_changes_total_but_not_column_hashes() -> None:
    a = content_hash([MIXED])
    b = content_hash([MIXED.select(reversed(MIXED.columns))])
    assert a.total != b.total
    assert dict(a.columns) == dict(b.columns) and dict(a.schema) == dict(b.schema)
    assert diff_columns(a, b) == []
    renamed = content_hash([MIXED.rename({"i": "j"})])
    assert dict(renamed.columns)["j"] == dict(a.columns)["i"]  # the hash is of the values


def test_diff_columns_reports_presence_dtype_and_hash() -> None:
    a = ContentHash(
        3, (("x", "h1"), ("y", "h2"), ("z", "h3")), (("x", "i64"), ("y", "str"), ("z", "f64")), "t"
    )
    b = ContentHash(
        3,
        (("w", "h0"), ("y", "h2"), ("x", "h9"), ("z", "h3")),
        (("w", "i64"), ("y", "str"), ("x", "i64"), ("z", "f32")),
        "u",
    )
    assert diff_columns(a, b) == ["x", "z", "w"]
    assert diff_columns(a, a) == []
    assert diff_columns(b, a) == ["w", "x", "z"]


def test_encoding_matches_the_documented_streams() -> None:
    """An independent encoder of the docstring's rules, for i64, f64, str and list[i64]."""
    df = pl.DataFrame(
        {"i": [1, None, -3], "f": [0.5, None, float("nan")], "s": ["ab", None, "é"], "l": [[1, 2], None, []]}
    )
    assert content_hash(chunks(df, 2)).total == _reference_total(df)
    # Pinned: lock files record v1 hashes; changing the encoding needs a new CONTENT_VERSION.
    assert _reference_total(df) == "bd94af001dc88cf632450dc3b9649a40"


def test_dtype_text_is_synthc_own() -> None:
    assert dtype_text(pl.Datetime("ms", "Europe/Paris")) == "datetime[ms,Europe/Paris]"
    assert dtype_text(pl.List(pl.Struct({"a b": pl.Int8, "c": pl.Array(pl.Float32, 2)}))) == (
        'list[struct{"a b":i8,"c":array[f32,2]}]'
    )
    assert dtype_text(pl.Enum(["x", "y"])) == 'enum["x","y"]'
    assert dtype_text(pl.Int64) == "i64"
    with pytest.raises(ExecutionError, match="cannot hash"):
        dtype_text(pl.Object())


def _reference_total(df: pl.DataFrame) -> str:
    def h(data: bytes) -> str:
        return xxhash.xxh3_128(data).hexdigest()

    def canon(value: object) -> str:
        return h(json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode())

    def fixed(values: list[object], fmt: str) -> bytes:
        out = np.array([0 if v is None else v for v in values], dtype=fmt)
        if out.dtype.kind == "f":
            out[np.isnan(out)] = np.uint64(0x7FF8000000000000).view(np.float64)
        return out.tobytes()

    def lengths(values: Sequence[object]) -> bytes:
        return np.array([0 if v is None else len(v) for v in values], dtype="<u8").tobytes()  # type: ignore[arg-type]

    def streams(values: list[object], dtype: pl.DataType, path: str) -> list[tuple[str, str]]:
        out = [(path + "valid", h(bytes(int(v is not None) for v in values)))]
        match dtype:
            case pl.Int64():
                out.append((path + "values", h(fixed(values, "<i8"))))
            case pl.Float64():
                out.append((path + "values", h(fixed(values, "<f8"))))
            case pl.String():
                data = [None if v is None else str(v).encode() for v in values]
                out += [
                    (path + "lengths", h(lengths(data))),
                    (path + "bytes", h(b"".join(d or b"" for d in data))),
                ]
            case pl.List():
                items = [x for v in values if v is not None for x in v]  # type: ignore[attr-defined]
                out.append((path + "lengths", h(lengths(values))))
                out += streams(items, dtype.inner, path + '"item"/')  # type: ignore[arg-type]
        return out

    schema = [[name, dtype_text(dtype)] for name, dtype in df.schema.items()]
    columns = [
        [name, canon([CONTENT_VERSION, text, df.height, streams(df[name].to_list(), df.schema[name], "")])]
        for name, text in schema
    ]
    return canon({"version": CONTENT_VERSION, "rows": df.height, "schema": schema, "columns": columns})


# --------------------------------------------------------------------------- writers


def test_every_format_gives_the_same_content(tmp_path: Path) -> None:
    plan = dataclasses.replace(synthc.compile(ROOT / "examples" / "ecommerce_orders.yaml"), rows=3000)
    expected = content_hash(execute(plan, chunk_rows=1000))
    formats: list[OutputFormat] = ["parquet", "csv", "jsonl", "json"]
    results = {fmt: run_plan(plan, tmp_path / f"out.{fmt}", fmt, chunk_rows=700) for fmt in formats}
    for fmt, result in results.items():
        assert result.content == expected, fmt
    assert expected.rows == 3000 and len(expected.columns) == len(plan.column_order)
    # Parquet keeps every dtype, so reading it back (as `verify` could) hashes the same.
    assert content_hash([pl.read_parquet(tmp_path / "out.parquet")]) == expected
    other = run_plan(dataclasses.replace(plan, seed=plan.seed + 1), tmp_path / "other.parquet", "parquet")
    assert other.content is not None and diff_columns(expected, other.content)
