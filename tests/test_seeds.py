"""Seed files (runtime.seeds): digests, schemas, dtype text, reads, `from:` rows, lookups."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import xxhash
from polars.testing import assert_frame_equal

from runtime import rng
from runtime.errors import ExecutionError
from runtime.plan import LookupColumn, SeedFile, SeedFormat
from runtime.samplers.base import Chunk
from runtime.seeds import (
    FROM_STREAM,
    file_digest,
    parse_dtype,
    read_seed,
    sample_lookup,
    seed_frame,
    seed_row_count,
    seed_schema,
)

SEED = 99

CSV_TEXT = """id,name,price,day,at,flag
1,apple,1.5,2024-01-02,2024-01-02T10:00:00,true
2,pear,,2024-02-03,2024-02-03T11:30:00,false
3,,2.25,2024-03-04,2024-03-04T12:45:00,true
"""


def write_seed(tmp_path: Path, df: pl.DataFrame, fmt: SeedFormat, name: str = "seed") -> Path:
    path = tmp_path / f"{name}.{fmt}"
    match fmt:
        case "csv":
            df.write_csv(path)
        case "jsonl":
            df.write_ndjson(path)
        case "parquet":
            df.write_parquet(path)
    return path


def seed_file(path: Path, fmt: SeedFormat, **options: Any) -> SeedFile:
    """A SeedFile as the compiler would record it."""
    columns = tuple(seed_schema(path, fmt))
    return SeedFile(str(path), file_digest(path), fmt, columns, seed_row_count(path, fmt), **options)


def lookup(
    path: Path, fmt: SeedFormat, column: str, weights: str | None = None, name: str = "pick"
) -> LookupColumn:
    dtype = dict(seed_schema(path, fmt))[column]
    return LookupColumn(name, str(path), file_digest(path), fmt, column, dtype, weights)


def ids(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"id": pl.int_range(n, eager=True, dtype=pl.Int64), "tag": [f"t{i % 7}" for i in range(n)]}
    )


# --------------------------------------------------------------------------- digest, schema


def test_file_digest_is_xxh3_128_of_the_bytes_streamed(tmp_path: Path) -> None:
    data = bytes(range(256)) * (3 * 4096 + 17)  # a few blocks and a partial one
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert file_digest(path) == xxhash.xxh3_128_hexdigest(data)
    assert file_digest(str(path)) == file_digest(path)


def test_csv_schema_rows_and_types(tmp_path: Path) -> None:
    path = tmp_path / "things.csv"
    path.write_text(CSV_TEXT)
    assert seed_schema(path, "csv") == [
        ("id", "Int64"),
        ("name", "String"),
        ("price", "Float64"),
        ("day", "Date"),
        ("at", "Datetime(time_unit='us', time_zone=None)"),
        ("flag", "Boolean"),
    ]
    assert seed_row_count(path, "csv") == 3


def test_csv_types_are_inferred_from_every_row(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    path.write_text("v\n" + "1\n" * 500 + "2.5\n")
    assert seed_schema(path, "csv") == [("v", "Float64")]
    sf = seed_file(path, "csv")
    assert seed_frame(sf, 0, 499, 501, {}).get_column("v").to_list() == [1.0, 2.5]


def test_jsonl_schema_with_nested_values(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(
        '{"a": 1, "b": {"c": "x", "d": [1, 2]}, "e": null}\n{"a": 2, "b": {"c": "y", "d": []}, "e": null}\n'
    )
    schema = dict(seed_schema(path, "jsonl"))
    assert list(schema) == ["a", "b", "e"]
    assert parse_dtype(schema["b"]) == pl.Struct({"c": pl.String, "d": pl.List(pl.Int64)})
    assert seed_row_count(path, "jsonl") == 2


def many_types() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "i8": pl.Series([1, -2], dtype=pl.Int8),
            "u64": pl.Series([1, 2**63], dtype=pl.UInt64),
            "f32": pl.Series([1.5, None], dtype=pl.Float32),
            "dec": pl.Series([decimal.Decimal("1.25"), decimal.Decimal("2.50")], dtype=pl.Decimal(10, 2)),
            "cat": pl.Series(["a", "b"], dtype=pl.Categorical),
            "enum": pl.Series(["x", "y"], dtype=pl.Enum(["x", "y", "z"])),
            "tz": pl.Series([dt.datetime(2024, 1, 1), None], dtype=pl.Datetime("ms", "Europe/Paris")),
            "dur": pl.Series([dt.timedelta(seconds=3), None], dtype=pl.Duration("ns")),
            "time": [dt.time(10, 30), dt.time(23, 59, 59)],
            "bin": [b"\x00\x01", b""],
            "list": [["a"], []],
            "arr": pl.Series([[1, 2], [3, 4]], dtype=pl.Array(pl.Int16, 2)),
            "struct": [{"k": 1, "it's": "q"}, {"k": None, "it's": None}],
            "bool": [True, None],
        }
    )


def test_parquet_schema_round_trips_through_dtype_text(tmp_path: Path) -> None:
    df = many_types()
    path = write_seed(tmp_path, df, "parquet")
    recorded = seed_schema(path, "parquet")
    assert [name for name, _ in recorded] == df.columns
    for name, text in recorded:
        assert parse_dtype(text) == pl.read_parquet(path).schema[name], name
    sf = seed_file(path, "parquet")
    assert_frame_equal(seed_frame(sf, 0, 0, 2, {}), pl.read_parquet(path))


@pytest.mark.parametrize(
    "dtype",
    [
        pl.Int64(), pl.UInt32(), pl.Int128(), pl.Float64(), pl.String(), pl.Boolean(), pl.Date(), pl.Time(),
        pl.Null(), pl.Binary(), pl.Datetime("us"), pl.Datetime("ns", "UTC"), pl.Duration("ms"),
        pl.Decimal(38, 4), pl.Categorical(), pl.Enum(["a", "b's"]), pl.List(pl.List(pl.String)),
        pl.Array(pl.Float32, (2, 3)), pl.Struct({"a": pl.Int64, "b c": pl.List(pl.Datetime("ms"))}),
    ],
    ids=str,
)  # fmt: skip
def test_parse_dtype_round_trips(dtype: pl.DataType) -> None:
    assert parse_dtype(str(dtype)) == dtype
    assert parse_dtype(repr(dtype)) == dtype


@pytest.mark.parametrize(
    "text", ["__import__('os')", "os.system", "Foo", "Int64 + 1", "Series", "List(print)", "", "DataFrame()"]
)
def test_parse_dtype_rejects_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="not a Polars dtype"):
        parse_dtype(text)


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_read_seed_in_every_format(tmp_path: Path, fmt: SeedFormat) -> None:
    df = ids(20)
    path = write_seed(tmp_path, df, fmt)
    got = read_seed(str(path), fmt, file_digest(path), ["tag", "id"], {})
    assert_frame_equal(got, df.select("tag", "id"))


def test_read_seed_casts_to_the_recorded_types(tmp_path: Path) -> None:
    path = write_seed(tmp_path, ids(5), "csv")
    got = read_seed(str(path), "csv", file_digest(path), None, {}, dtypes={"id": "Float64"})
    assert got.schema == pl.Schema({"id": pl.Float64, "tag": pl.String})
    with pytest.raises(ExecutionError, match="types the spec was compiled with"):
        read_seed(str(path), "csv", file_digest(path), None, {}, dtypes={"tag": "Int64"})


def test_read_seed_refuses_a_changed_file(tmp_path: Path) -> None:
    path = write_seed(tmp_path, ids(5), "csv")
    digest = file_digest(path)
    path.write_text(path.read_text() + "5,t5\n")
    with pytest.raises(
        ExecutionError, match=r"changed since the spec was compiled: run `synthc check` again"
    ):
        read_seed(str(path), "csv", digest, None, {})


def test_read_seed_reports_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "gone.csv"
    with pytest.raises(ExecutionError, match=f"seed file {missing} is missing"):
        read_seed(str(missing), "csv", "0" * 32, None, {})
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(ExecutionError, match="cannot be read as parquet"):
        read_seed(str(junk), "parquet", file_digest(junk), None, {})


def test_read_seed_reads_a_file_once_per_run(tmp_path: Path) -> None:
    path = write_seed(tmp_path, ids(5), "parquet")
    memo: dict[Any, Any] = {}
    first = read_seed(str(path), "parquet", file_digest(path), None, memo)
    digest = file_digest(path)
    path.unlink()
    assert_frame_equal(read_seed(str(path), "parquet", digest, ["id", "tag"], memo), first)
    assert all(key[0] == "seeds" for key in memo)


def test_a_path_is_never_a_glob(tmp_path: Path) -> None:
    path = write_seed(tmp_path, ids(3), "csv", name="data[1]*")
    write_seed(tmp_path, ids(9), "csv", name="data1x")
    assert seed_row_count(path, "csv") == 3
    assert read_seed(str(path), "csv", file_digest(path), None, {}).height == 3


# --------------------------------------------------------------------------- from: rows


def test_seed_frame_without_shuffle_is_the_file(tmp_path: Path) -> None:
    path = tmp_path / "things.csv"
    path.write_text(CSV_TEXT)
    sf = seed_file(path, "csv")
    got = pl.concat([seed_frame(sf, SEED, s, min(s + 2, 3), {}) for s in (0, 2)])
    assert_frame_equal(got, pl.read_csv(path, try_parse_dates=True))
    assert got.get_column("name").to_list() == ["apple", "pear", None]


def chunked(sf: SeedFile, total: int, size: int) -> pl.DataFrame:
    memo: dict[Any, Any] = {}
    return pl.concat([seed_frame(sf, SEED, s, min(s + size, total), memo) for s in range(0, total, size)])


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_seed_frame_shuffle_is_a_seeded_permutation(tmp_path: Path, fmt: SeedFormat) -> None:
    path = write_seed(tmp_path, ids(500), fmt)
    sf = seed_file(path, fmt, shuffle=True)
    whole = seed_frame(sf, SEED, 0, 500, {})
    assert sorted(whole.get_column("id").to_list()) == list(range(500))
    expected = np.argsort(rng.bits(SEED, FROM_STREAM, 0, 0, 500), kind="stable")
    assert whole.get_column("id").to_list() == expected.tolist()
    assert whole.get_column("id").to_list() != list(range(500))
    assert seed_frame(sf, SEED + 1, 0, 500, {}).get_column("id").to_list() != expected.tolist()
    for size in (1, 7, 64):
        assert_frame_equal(chunked(sf, 500, size), whole)


def test_seed_frame_shuffle_with_limit_is_chunk_invariant(tmp_path: Path) -> None:
    path = write_seed(tmp_path, ids(300), "jsonl")
    sf = seed_file(path, "jsonl", shuffle=True, limit=40)
    whole = seed_frame(sf, SEED, 0, 40, {})
    assert whole.height == 40 and whole.get_column("id").n_unique() == 40
    assert (
        whole.get_column("id").to_list()
        == seed_frame(seed_file(path, "jsonl", shuffle=True), SEED, 0, 40, {})["id"].to_list()
    )
    for size in (1, 7, 40):
        assert_frame_equal(chunked(sf, 40, size), whole)
    with pytest.raises(ExecutionError, match="gives 40 rows"):
        seed_frame(sf, SEED, 30, 41, {})


def test_seed_frame_checks_the_recorded_rows(tmp_path: Path) -> None:
    path = write_seed(tmp_path, ids(10), "parquet")
    sf = seed_file(path, "parquet")
    wrong = SeedFile(sf.path, sf.digest, sf.format, sf.columns, 11)
    with pytest.raises(ExecutionError, match="has 10 rows, the plan expects 11"):
        seed_frame(wrong, SEED, 0, 5, {})


# --------------------------------------------------------------------------- lookups


def draw(col: LookupColumn, n: int, size: int | None = None) -> pl.Series:
    memo: dict[Any, Any] = {}
    step = size or n
    parts = [sample_lookup(col, Chunk(SEED, s, min(s + step, n), memo=memo)) for s in range(0, n, step)]
    return pl.concat(parts)


def test_lookup_uniform_counts(tmp_path: Path) -> None:
    path = write_seed(tmp_path, pl.DataFrame({"name": ["a", "b", "c", "d"]}), "csv")
    n = 40_000
    values = draw(lookup(path, "csv", "name"), n)
    assert values.name == "pick" and values.dtype == pl.String
    sd = math.sqrt(n * 0.25 * 0.75)
    for name in "abcd":
        assert abs(int((values == name).sum()) - n / 4) < 6 * sd


def test_lookup_weighted_proportions(tmp_path: Path) -> None:
    df = pl.DataFrame({"name": ["a", "b", "c", "d", "e"], "w": [1, 2, 3, 4, 0]})
    path = write_seed(tmp_path, df, "parquet")
    n = 50_000
    values = draw(lookup(path, "parquet", "name", weights="w"), n)
    for name, w in zip("abcd", (1, 2, 3, 4), strict=True):
        p = w / 10
        assert abs(int((values == name).sum()) - n * p) < 6 * math.sqrt(n * p * (1 - p)), name
    assert (values == "e").sum() == 0


def test_lookup_is_chunk_invariant_and_keeps_nulls_and_types(tmp_path: Path) -> None:
    df = pl.DataFrame({"v": [1.5, None, 3.0], "w": [1.0, 1.0, 0.5]})
    path = write_seed(tmp_path, df, "jsonl")
    for weights in (None, "w"):
        col = lookup(path, "jsonl", "v", weights=weights)
        whole = draw(col, 500)
        assert whole.dtype == pl.Float64
        assert whole.null_count() > 0 and set(whole.drop_nulls().to_list()) == {1.5, 3.0}
        for size in (1, 7, 64):
            assert draw(col, 500, size).to_list() == whole.to_list()


def test_lookup_casts_to_the_recorded_type(tmp_path: Path) -> None:
    path = write_seed(tmp_path, pl.DataFrame({"n": [1, 2, 3]}), "csv")
    col = LookupColumn("n2", str(path), file_digest(path), "csv", "n", "Float64")
    assert draw(col, 10).dtype == pl.Float64


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([0, 0, 0], "are all zero"),
        ([1, -1, 2], "negative or non-finite weight"),
        ([1.0, float("nan"), 2.0], "negative or non-finite weight"),
        ([1, None, 2], "missing weight"),
        (["1", "2", "3"], "not a number"),
    ],
)
def test_lookup_rejects_bad_weights(tmp_path: Path, weights: list[Any], message: str) -> None:
    path = write_seed(tmp_path, pl.DataFrame({"v": ["a", "b", "c"], "w": weights}), "parquet")
    with pytest.raises(ExecutionError, match=message) as info:
        draw(lookup(path, "parquet", "v", weights="w"), 10)
    assert info.value.column == "pick"
    assert "weights column `w`" in str(info.value) or "weights in `w`" in str(info.value)


def test_lookup_of_a_changed_file_fails(tmp_path: Path) -> None:
    path = write_seed(tmp_path, pl.DataFrame({"v": ["a"]}), "csv")
    col = lookup(path, "csv", "v")
    path.write_text("v\nb\n")
    with pytest.raises(ExecutionError, match="changed since the spec was compiled"):
        draw(col, 3)
