"""The Python API (``synthc.check / compile / generate / stream / write``)."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import synthc
from runtime.errors import OutputError
from runtime.plan import Plan, plan_hash
from synthc import api

SPEC = """\
synthc: 1
name: people
seed: 5
rows: 50
columns:
  id: {type: uuid}
  n: {type: sequence, start: 10, step: 5}
  score: {type: float, dist: normal, mean: 0, sd: 1, round: 3}
  level: {type: int, dist: uniform, min: 1, max: 9}
  team: {type: category, values: [red, green, blue]}
  active: {type: bool, p: 0.7, nulls: 0.1}
"""

BAD = """\
synthc: 1
columns:
  score: {type: float, dist: normal, mean: 0, sdd: 1}
"""


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "people.yaml"
    path.write_text(SPEC)
    return path


# --------------------------------------------------------------------------- check / compile


def test_check_valid_spec_is_empty_for_text_path_and_pathlike(spec_file: Path) -> None:
    assert synthc.check(SPEC) == []
    assert synthc.check(spec_file) == []
    assert synthc.check(str(spec_file)) == []
    assert synthc.check(text=SPEC) == []
    assert synthc.check(path=spec_file) == []


def test_check_text_and_path_find_the_same_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    from_text = synthc.check(BAD)
    from_path = synthc.check(path)
    assert from_text and from_path
    assert [(d.code, d.span and (d.span.line, d.span.col)) for d in from_text] == [
        (d.code, d.span and (d.span.line, d.span.col)) for d in from_path
    ]
    assert "unknown-key" in {d.code for d in from_text}
    assert all(isinstance(d, synthc.Diagnostic) for d in from_path)
    assert {d.span.file for d in from_path if d.span} == {str(path)}


def test_spec_argument_rule(tmp_path: Path) -> None:
    # one line starting with `synthc:` is text, not a file name
    assert api._source("synthc: 1", None, None) == ("text", "synthc: 1")
    assert api._source("  synthc: 1", None, None)[0] == "text"
    assert api._source("a\nb", None, None)[0] == "text"
    assert api._source("spec.yaml", None, None) == ("path", Path("spec.yaml"))
    assert api._source(tmp_path, None, None) == ("path", tmp_path)
    assert api._source(None, None, "synthc: 1") == ("path", Path("synthc: 1"))
    with pytest.raises(synthc.UsageError):
        api._source("x", "y", None)
    with pytest.raises(synthc.UsageError):
        api._source(None, None, None)


def test_check_of_a_missing_file_is_a_diagnostic(tmp_path: Path) -> None:
    diags = synthc.check(tmp_path / "missing.yaml")
    assert [d.code for d in diags] == ["file-not-found"]


def test_compile_returns_a_plan_and_raises_spec_error_with_every_diagnostic(spec_file: Path) -> None:
    plan = synthc.compile(spec_file)
    assert isinstance(plan, Plan)
    assert plan == synthc.compile(spec_file)
    assert plan_hash(plan) == plan_hash(synthc.compile(SPEC))
    assert (plan.rows, plan.seed, plan.column_order) == (
        50,
        5,
        ("id", "n", "score", "level", "team", "active"),
    )
    with pytest.raises(synthc.SpecError) as info:
        synthc.compile(BAD)
    assert isinstance(info.value, synthc.SynthcError)
    assert "unknown-key" in {d.code for d in info.value.diagnostics}


# --------------------------------------------------------------------------- generate / stream


def test_generate_is_deterministic_and_the_seed_matters(spec_file: Path) -> None:
    first = synthc.generate(spec_file)
    assert first.height == 50
    assert first.columns == ["id", "n", "score", "level", "team", "active"]
    assert_frame_equal(first, synthc.generate(spec_file))
    assert_frame_equal(synthc.generate(spec_file, seed=11), synthc.generate(SPEC, seed=11))
    other = synthc.generate(spec_file, seed=6)
    assert first["id"].to_list() != other["id"].to_list()
    assert first["n"].to_list() == other["n"].to_list() == list(range(10, 260, 5))


def test_rows_override_keeps_the_first_rows(spec_file: Path) -> None:
    small = synthc.generate(spec_file, rows=7)
    assert small.height == 7
    assert_frame_equal(small, synthc.generate(spec_file).head(7))
    assert synthc.generate(spec_file, rows=0).height == 0


def test_generate_accepts_a_compiled_plan(spec_file: Path) -> None:
    plan = synthc.compile(spec_file)
    assert_frame_equal(synthc.generate(plan, rows=9, seed=1), synthc.generate(spec_file, rows=9, seed=1))


@pytest.mark.parametrize("chunk_rows", [1, 7, 50, 1000])
def test_stream_chunks_concatenate_to_generate(spec_file: Path, chunk_rows: int) -> None:
    chunks = list(synthc.stream(spec_file, chunk_rows=chunk_rows))
    assert all(chunk.height <= chunk_rows for chunk in chunks)
    assert_frame_equal(pl.concat(chunks), synthc.generate(spec_file))


def test_stream_reports_progress_and_raises_spec_errors_eagerly(spec_file: Path) -> None:
    seen: list[int] = []
    chunks = synthc.stream(spec_file, chunk_rows=20, progress=seen.append)
    assert seen == []  # lazy: nothing generated yet
    assert sum(chunk.height for chunk in chunks) == 50
    assert seen == [20, 20, 10]
    with pytest.raises(synthc.SpecError):
        synthc.stream(BAD)


@pytest.mark.parametrize(
    "overrides",
    [{"rows": -1}, {"rows": 2_000_000_001}, {"seed": -1}, {"seed": 2**63}, {"rows": True}, {"rows": 1.5}],
)
def test_bad_overrides_are_usage_errors(spec_file: Path, overrides: dict[str, object]) -> None:
    with pytest.raises(synthc.UsageError):
        synthc.generate(spec_file, **overrides)  # type: ignore[arg-type]


def test_bad_chunk_rows_is_a_usage_error(spec_file: Path) -> None:
    with pytest.raises(synthc.UsageError):
        synthc.stream(spec_file, chunk_rows=0)


def test_api_works_inside_a_running_event_loop(spec_file: Path) -> None:
    async def inside() -> pl.DataFrame:
        assert asyncio.get_running_loop() is not None
        return synthc.generate(spec_file, rows=5)

    assert_frame_equal(asyncio.run(inside()), synthc.generate(spec_file, rows=5))


# --------------------------------------------------------------------------- write


def test_write_parquet_with_metadata(spec_file: Path, tmp_path: Path) -> None:
    target = tmp_path / "people.parquet"
    seen: list[int] = []
    result = synthc.write(spec_file, target, rows=30, seed=2, chunk_rows=8, progress=seen.append)
    assert result.rows == 30
    assert sum(seen) == 30
    assert_frame_equal(pl.read_parquet(target), synthc.generate(spec_file, rows=30, seed=2))
    plan = synthc.compile(spec_file).with_overrides(rows=30, seed=2)
    meta = pl.read_parquet_metadata(target)
    assert meta["synthc.plan_hash"] == plan_hash(plan)
    assert meta["synthc.spec_hash"] == plan.spec_hash != ""
    assert meta["synthc.version"] == synthc.__version__
    assert meta["synthc.engine"] == str(plan.engine)


def test_write_same_bytes_for_any_chunk_size(spec_file: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    synthc.write(spec_file, a, chunk_rows=3)
    synthc.write(spec_file, b, chunk_rows=64)
    assert a.read_bytes() == b.read_bytes()


def test_write_format_from_argument_or_extension(spec_file: Path, tmp_path: Path) -> None:
    synthc.write(spec_file, tmp_path / "x.data", format="csv")
    assert pl.read_csv(tmp_path / "x.data").height == 50
    synthc.write(spec_file, tmp_path / "x.json")
    assert len(json.loads((tmp_path / "x.json").read_text())) == 50


def test_write_unknown_format_is_a_usage_error_naming_the_code(spec_file: Path, tmp_path: Path) -> None:
    with pytest.raises(synthc.UsageError, match=r"unknown-format"):
        synthc.write(spec_file, tmp_path / "x.xlsx")
    with pytest.raises(synthc.UsageError, match=r"unknown-format"):
        synthc.write(spec_file, tmp_path / "x.parquet", format="feather")
    assert list(tmp_path.glob("x.*")) == []


def test_write_to_a_missing_directory_raises_output_error(spec_file: Path, tmp_path: Path) -> None:
    with pytest.raises(OutputError):
        synthc.write(spec_file, tmp_path / "missing" / "x.parquet")
    assert not (tmp_path / "missing").exists()


def test_write_stream_jsonl_and_csv(spec_file: Path) -> None:
    buffer = io.BytesIO()
    assert synthc.write_stream(spec_file, buffer, rows=4) == 4
    rows = [json.loads(line) for line in buffer.getvalue().decode().splitlines()]
    assert [row["n"] for row in rows] == [10, 15, 20, 25]
    buffer = io.BytesIO()
    assert synthc.write_stream(spec_file, buffer, rows=3, format="csv") == 3
    assert buffer.getvalue().decode().splitlines()[0] == "id,n,score,level,team,active"
    with pytest.raises(synthc.UsageError, match="unknown-format"):
        synthc.write_stream(spec_file, io.BytesIO(), format="parquet")


# --------------------------------------------------------------------------- package surface


def test_public_names_and_version() -> None:
    for name in synthc.__all__:
        assert getattr(synthc, name) is not None
    assert set(synthc.__all__) <= set(dir(synthc))
    from importlib.metadata import version

    assert synthc.__version__ == version("synthc")
    assert synthc.Plan is Plan
    with pytest.raises(AttributeError):
        synthc.no_such_thing  # noqa: B018
