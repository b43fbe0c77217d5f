"""Shaped datasets end to end: a time index, an event stream and seed files through the
compiler and the executor: row counts, prefixes, seeds, chunking, target_rows, and seed
files that change under a compiled plan."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import synthc
from runtime.errors import ExecutionError, TargetNotReached
from runtime.execute import execute
from runtime.plan import SeedFile
from synthc.cli import run
from synthc.compiler import compile_path, compile_source

INDEX_SPEC = """
synthc: 1
seed: 4
index:
  start: 2024-03-30
  end: 2024-04-03
  every: 15m
  timezone: Europe/Berlin
  entities: {site: [north, south], sensor_id: {type: sequence, format: "S{:02d}", count: 3}}
columns:
  load:
    type: series
    base: 50
    seasonality: [{period: 24h, amplitude: 10}]
    noise: {sd: 2, ar1: 0.7}
    walk: {sd: 0.3}
    anomalies: [{rate: 0.01, scale: 4, kind: level_shift}, {rate: 0.01, kind: dropout}]
    vary: {base: 0.1}
  label: {type: template, template: "{{ site }}/{{ sensor_id }}: {{ load | round(1) if load is not none else 'n/a' }}"}
  high: {type: expression, expr: "load > 55"}
"""


def frames(plan: object, chunk_rows: int) -> pl.DataFrame:
    return pl.concat(list(execute(plan, chunk_rows=chunk_rows)))  # type: ignore[arg-type]


def test_index_rows_are_time_major_and_chunk_independent() -> None:
    plan = compile_source(INDEX_SPEC)
    assert plan.rows == 4 * 24 * 4 * 6 - 4 * 6  # 4 days, one of them 23 hours long (DST)
    whole = frames(plan, 1 << 20)
    assert whole.columns == ["timestamp", "site", "sensor_id", "load", "label", "high"]
    assert whole["timestamp"].is_sorted()
    assert whole.head(6)["site"].to_list() == ["north"] * 3 + ["south"] * 3
    assert whole.head(6)["sensor_id"].to_list() == ["S01", "S02", "S03"] * 2
    for size in (1, 7, 100, 1000):
        assert frames(plan, size).equals(whole), size
    assert whole["label"][0].startswith("north/S01: ")


def test_rows_override_keeps_a_prefix_of_a_shaped_dataset() -> None:
    full = synthc.generate(text=INDEX_SPEC)
    head = synthc.generate(text=INDEX_SPEC, rows=37)
    assert head.equals(full.head(37))
    assert synthc.generate(text=INDEX_SPEC, rows=10**9).height == full.height


ARRIVALS_SPEC = """
synthc: 1
seed: 1
arrivals: {rate: 3/s, from: 2024-01-01, to: 2024-01-01T06:00:00, profile: ramp,
           entities: {user: 40}}
columns:
  amount: {type: float, dist: exponential, scale: 20, round: 2}
"""


def test_arrivals_rows_follow_the_seed() -> None:
    plan = compile_source(ARRIVALS_SPEC)
    df = synthc.generate(text=ARRIVALS_SPEC)
    assert df.height == plan.rows
    other = synthc.generate(text=ARRIVALS_SPEC, seed=2)
    assert other.height == plan.with_overrides(seed=2).rows != plan.rows
    assert df["timestamp"].is_sorted() and df["user"].min() == 1 and df["user"].max() == 40
    # a ramp from 1 to 3: the last hour has about 3x the events of the first
    hour = df["timestamp"].dt.hour()
    assert 2.2 < (hour == 5).sum() / (hour == 0).sum() < 3.6


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    (tmp_path / "products.csv").write_text("sku,name,price\nA,lamp,10.5\nB,chair,99\nC,desk,250\nD,pen,1.2\n")
    (tmp_path / "cities.jsonl").write_text(
        '{"city": "Berlin", "pop": 3}\n{"city": "Hamburg", "pop": 2}\n{"city": "Bonn", "pop": 0}\n'
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "synthc: 1\nseed: 9\nfrom: {path: products.csv, shuffle: true}\n"
        "columns:\n  city: {type: lookup, path: cities.jsonl, column: city, weights: pop}\n"
        "  net: {type: expression, expr: 'price / 1.19'}\n"
    )
    return spec


def test_from_gives_one_row_per_seed_row(seeded: Path) -> None:
    df = synthc.generate(path=seeded)
    assert df.columns == ["sku", "name", "price", "city", "net"]
    assert sorted(df["sku"]) == ["A", "B", "C", "D"]  # a permutation of the file's rows
    assert df["sku"].to_list() != ["A", "B", "C", "D"] or df["sku"].to_list() == sorted(df["sku"])
    assert set(df["city"]) <= {"Berlin", "Hamburg"}  # weight 0 is never drawn
    assert df["price"].dtype == pl.Float64


def test_a_changed_seed_file_is_noticed(seeded: Path, tmp_path: Path) -> None:
    plan = compile_path(seeded)
    assert isinstance(plan.source, SeedFile)
    (tmp_path / "products.csv").write_text("sku,name,price\nA,lamp,11\n")
    # compiling again sees the new bytes (the plan cache does not hand out the old plan)
    again = compile_path(seeded)
    assert isinstance(again.source, SeedFile) and again.source.digest != plan.source.digest
    assert again.rows == 1
    # the old plan refuses to run on the new file: no silent mix of old plan and new data
    with pytest.raises(ExecutionError, match="changed since"):
        frames(plan, 1000)


def test_a_missing_seed_file_is_a_diagnostic_not_a_traceback(
    seeded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cities.jsonl").unlink()
    out = tmp_path / "out.parquet"
    assert run(["run", str(seeded), "--out", str(out)]) == 1
    err = capsys.readouterr()
    assert "error[seed-file]" in err.out + err.err and "Traceback" not in err.out + err.err
    assert not out.exists()


TARGET_SPEC = """
synthc: 1
target_rows: 300
columns:
  score: {type: float, dist: normal, mean: 50, sd: 15}
steps:
  - filter: "score > 65"
  - validate: {checks: {score: {max: 90}}, on_fail: drop}
"""


def test_target_rows_keeps_generating_until_enough_rows_pass() -> None:
    plan = compile_source(TARGET_SPEC)
    whole = frames(plan, 1 << 20)
    assert whole.height == 300
    assert whole["score"].min() > 65 and whole["score"].max() <= 90  # type: ignore[operator]
    for size in (1, 64, 999):
        assert frames(plan, size).equals(whole)
    assert synthc.generate(text=TARGET_SPEC, rows=50).equals(whole.head(50))


def test_target_rows_cap_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = TARGET_SPEC.replace("target_rows: 300", "target_rows: 300\nmax_rows: 1000")
    with pytest.raises(TargetNotReached, match=r"only \d+ of 300 rows survived .* 1,000 rows"):
        frames(compile_source(spec), 4096)
    path = tmp_path / "t.yaml"
    path.write_text(spec)
    out = tmp_path / "t.parquet"
    assert run(["run", str(path), "--out", str(out)]) == 1
    text = "".join(capsys.readouterr())
    assert "max_rows" in text and "Traceback" not in text
    assert not out.exists() and list(tmp_path.iterdir()) == [path]  # no partial output


def test_llm_prompts_can_use_a_series(tmp_path: Path) -> None:
    spec = INDEX_SPEC + (
        "models:\n  writer: {model: fake/writer}\n"
        "  note: {type: llm, model: writer, prompt: 'Describe a load of {{ load }} at {{ site }}'}\n"
    ).replace("models:\n", "").replace("  writer: {model: fake/writer}\n", "")
    spec = spec.replace("synthc: 1\n", "synthc: 1\nmodels:\n  writer: {model: fake/writer}\n", 1)
    df = synthc.generate(text=spec, rows=12, cache=tmp_path / "cache.db")
    assert df["note"].null_count() == 0 and df["note"].n_unique() > 1
