"""Writers: round trips, atomicity, clear errors, deterministic bytes, streaming."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import runtime.writers as writers
from runtime.errors import OutputError
from runtime.plan import OutputFormat, format_for_path
from runtime.writers import rebatch, write, write_stream

FORMATS: list[OutputFormat] = ["parquet", "csv", "json", "jsonl"]
ROOT = Path(__file__).resolve().parents[1]

SAMPLE = pl.DataFrame(
    {
        "id": [1, 2, None, 4],
        "x": [0.5, -1.25, 3.0, None],
        "name": ["Ann", 'Bo, "Jr"', None, "line\nbreak"],
        "ok": [True, False, None, True],
        "at": [
            datetime(2024, 1, 1, 10, 0, tzinfo=UTC),
            datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC),
            None,
            datetime(1999, 12, 31, tzinfo=UTC),
        ],
        "day": [date(2024, 1, 1), None, date(2000, 2, 29), date(1970, 1, 1)],
    },
    schema_overrides={"at": pl.Datetime("us", "UTC")},
)
NESTED = pl.DataFrame({"id": [1, 2], "s": [{"a": 1, "b": "x"}, {"a": None, "b": "y"}], "l": [[1, 2], []]})


def chunks(df: pl.DataFrame, size: int) -> Iterator[pl.DataFrame]:
    yield from (df.slice(o, size) for o in range(0, max(df.height, 1), size))


def read(path: Path, fmt: OutputFormat, schema: pl.Schema) -> pl.DataFrame:
    match fmt:
        case "parquet":
            return pl.read_parquet(path)
        case "csv":
            return pl.read_csv(path, schema=schema)
        case "json":
            return pl.read_json(path, schema=schema)
        case "jsonl":
            return pl.read_ndjson(path, schema=schema)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


def test_format_for_path() -> None:
    assert format_for_path("a/b.parquet") == "parquet"
    assert format_for_path("b.PQ") == "parquet"
    assert format_for_path("b.csv") == "csv"
    assert format_for_path("b.json") == "json"
    assert format_for_path("b.jsonl") == "jsonl"
    assert format_for_path("b.ndjson") == "jsonl"
    assert format_for_path("b.txt") is None
    assert format_for_path("parquet") is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip(tmp_path: Path, fmt: OutputFormat) -> None:
    path = tmp_path / f"out.{fmt}"
    result = write(chunks(SAMPLE, 3), path, fmt)
    assert result.rows == SAMPLE.height
    assert result.bytes == path.stat().st_size > 0
    assert_frame_equal(read(path, fmt, SAMPLE.schema), SAMPLE)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", ["parquet", "json", "jsonl"])
def test_nested_columns_round_trip(tmp_path: Path, fmt: OutputFormat) -> None:
    path = tmp_path / f"out.{fmt}"
    write(chunks(NESTED, 1), path, fmt)
    assert_frame_equal(read(path, fmt, NESTED.schema), NESTED)


def test_csv_refuses_nested_columns_clearly(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    with pytest.raises(OutputError, match=r"column `s`.*CSV"):
        write(chunks(NESTED, 1), path, "csv")
    assert not path.exists()
    assert leftovers(tmp_path) == []


def test_text_formats_write_iso_datetimes(tmp_path: Path) -> None:
    naive = pl.DataFrame({"t": [datetime(2024, 1, 2, 3, 4, 5, 500000)]})
    write([SAMPLE.head(2)], tmp_path / "a.csv", "csv")
    assert "2024-02-29T23:59:59.123456+00:00" in (tmp_path / "a.csv").read_text()
    write([naive], tmp_path / "b.jsonl", "jsonl")
    assert json.loads((tmp_path / "b.jsonl").read_text()) == {"t": "2024-01-02T03:04:05.500"}


def test_csv_header_once_and_json_is_one_array(tmp_path: Path) -> None:
    write(chunks(SAMPLE, 1), tmp_path / "a.csv", "csv")
    assert (tmp_path / "a.csv").read_text().count("id,x,name") == 1
    write(chunks(SAMPLE, 1), tmp_path / "a.json", "json")
    rows = json.loads((tmp_path / "a.json").read_text())
    assert [r["id"] for r in rows] == [1, 2, None, 4]


@pytest.mark.parametrize("fmt", FORMATS)
def test_zero_rows(tmp_path: Path, fmt: OutputFormat) -> None:
    path = tmp_path / f"out.{fmt}"
    assert write([SAMPLE.clear()], path, fmt).rows == 0
    if fmt == "json":
        assert json.loads(path.read_text()) == []
    if fmt == "parquet":
        assert pl.read_parquet(path).schema == SAMPLE.schema
    if fmt == "csv":
        assert path.read_text().startswith("id,x,name,ok,at,day")


def test_parquet_metadata(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    write([SAMPLE], path, "parquet", metadata={"synthc.plan_hash": "p1", "synthc.spec_hash": "s1"})
    meta = pl.read_parquet_metadata(path)
    assert meta["synthc.plan_hash"] == "p1"
    assert meta["synthc.spec_hash"] == "s1"


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 400), min_size=2, max_size=2))
def test_parquet_bytes_do_not_depend_on_chunking(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int]
) -> None:
    directory = tmp_path_factory.mktemp("pq")
    rows = 1_000
    df = pl.DataFrame(
        {"i": np.arange(rows), "s": [f"v{i % 37}" for i in range(rows)], "f": np.linspace(0, 1, rows)}
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(writers, "ROW_GROUP_ROWS", 128)  # several row groups in a small file
        for n, size in enumerate(sizes):
            write(chunks(df, size), directory / f"{n}.parquet", "parquet", metadata={"k": "v"})
    assert (directory / "0.parquet").read_bytes() == (directory / "1.parquet").read_bytes()


@settings(max_examples=100, deadline=None)
@given(heights=st.lists(st.integers(0, 50), max_size=12), size=st.integers(1, 40))
def test_rebatch_cuts_fixed_size_frames(heights: list[int], size: int) -> None:
    offsets = np.cumsum([0, *heights])
    frames = [pl.DataFrame({"i": np.arange(a, b)}) for a, b in itertools.pairwise(offsets)]
    out = list(rebatch(frames, size))
    total = int(offsets[-1])
    if not frames:
        assert [f.shape for f in out] == [(0, 0)]
        return
    assert pl.concat(out)["i"].to_list() == list(range(total))
    assert all(f.height == size for f in out[:-1])
    assert 0 < out[-1].height <= size or total == 0
    assert all(f.n_chunks() == 1 for f in out)


# --------------------------------------------------------------------------- atomicity


class Boom(Exception):
    pass


def failing(exc: BaseException, after: int = 2) -> Iterator[pl.DataFrame]:
    for _ in range(after):
        yield SAMPLE
    raise exc


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("exc", [Boom("generator failed"), KeyboardInterrupt()])
def test_failure_mid_write_leaves_old_file_and_no_temp(
    tmp_path: Path, fmt: OutputFormat, exc: BaseException
) -> None:
    path = tmp_path / f"out.{fmt}"
    path.write_bytes(b"old contents")
    with pytest.raises(type(exc)):
        write(failing(exc), path, fmt)
    assert path.read_bytes() == b"old contents"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_failure_on_new_path_leaves_nothing(tmp_path: Path, fmt: OutputFormat) -> None:
    with pytest.raises(Boom):
        write(failing(Boom("x"), after=0), tmp_path / f"out.{fmt}", fmt)
    assert list(tmp_path.iterdir()) == []


def test_success_replaces_old_file_with_readable_permissions(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    path.write_text("old")
    write([SAMPLE], path, "csv")
    assert path.read_text().startswith("id,")
    assert path.stat().st_mode & 0o044  # not the 0600 of a temporary file


# --------------------------------------------------------------------------- errors


def test_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "out.csv"
    with pytest.raises(OutputError, match=r"cannot write .*nope/out\.csv: directory .* does not exist"):
        write([SAMPLE], path, "csv")


def test_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="it is a directory"):
        write([SAMPLE], tmp_path, "csv")


def test_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is not a directory"):
        write([SAMPLE], tmp_path / "file" / "out.csv", "csv")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            write([SAMPLE], locked / "out.csv", "csv")
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_disk_full_is_an_output_error_with_no_partial_file(tmp_path: Path, fmt: str) -> None:
    # A file-size limit makes writes fail with EFBIG partway through, like a full disk.
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        import numpy as np, polars as pl
        from runtime.errors import OutputError
        from runtime.writers import write
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        frames = (pl.DataFrame({{"s": [f"row {{i}} {{j}}" for j in range(20_000)]}}) for i in range(40))
        try:
            write(frames, sys.argv[1], "{fmt}")
        except OutputError as exc:
            print(exc)
        """
    )
    path = tmp_path / f"out.{fmt}"
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.strip() == f"cannot write {path}: file too large", proc.stderr
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- streams


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_write_stream(fmt: OutputFormat) -> None:
    out = io.BytesIO()
    assert write_stream(chunks(SAMPLE, 3), out, fmt) == 4
    expected = io.BytesIO()
    write_stream([SAMPLE], expected, fmt)
    assert out.getvalue() == expected.getvalue()
    assert out.getvalue().count(b"\n") >= 4


def test_write_stream_refuses_parquet() -> None:
    with pytest.raises(OutputError, match="parquet"):
        write_stream([SAMPLE], io.BytesIO(), "parquet")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_large_write_streams_instead_of_holding_all_rows(tmp_path: Path, fmt: OutputFormat) -> None:
    # 2,000,000 rows in 31 frames: rows must reach the disk while later frames are still
    # being generated (the writer holds a row group at most, never the whole dataset).
    seen: list[int] = []

    def frames() -> Iterator[pl.DataFrame]:
        for i in range(31):
            temp = [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
            seen.append(temp[0].stat().st_size if temp else -1)
            start = i * 65_536
            yield pl.DataFrame({"i": np.arange(start, min(start + 65_536, 2_000_000))})

    result = write(frames(), tmp_path / f"big.{fmt}", fmt)
    assert result.rows == 2_000_000
    assert seen[0] == 0
    assert seen[-1] > 0
    assert seen[-1] < result.bytes
