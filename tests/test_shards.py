"""Sharded runs: `synthc run --shard K/N` and `synthc merge` give exactly the rows of a
single run, for every kind of step; bad shards and bad merges are refused clearly."""

from __future__ import annotations

import itertools
from pathlib import Path

import polars as pl
import pytest

from runtime.execute import execute
from runtime.shards import Shard, ShardError, split_steps
from synthc.cli import run
from synthc.compiler import compile_source

SPEC = """
synthc: 1
seed: 3
index: {start: 2024-01-01, periods: 700, every: 1h, entities: {sensor: 7}}
columns:
  v: {type: series, base: 10, walk: {sd: 1}, noise: {sd: 1, ar1: 0.5}, anomalies: {rate: 0.01, kind: level_shift}}
  k: {type: int, min: 1, max: 50}
  tag: {type: category, values: [a, b, c]}
steps:
  - filter: "k > 5"
  - sample: {fraction: 0.8}
  - dedupe: [k, tag, sensor]
  - shuffle: true
  - sample: {n: 500}
"""

EVENTS = """
synthc: 1
seed: 8
arrivals: {rate: 2/s, from: 2024-01-01, to: 2024-01-01T03:00:00, profile: ramp, entities: {user: 30}}
columns:
  amount: {type: float, dist: lognormal, mu: 2, sigma: 1, round: 2}
steps:
  - sessionize: {by: user, time: timestamp, gap: 5m, sequence: n}
  - limit: 15000
"""


def single(text: str) -> pl.DataFrame:
    return pl.concat(list(execute(compile_source(text))))


def shard_and_merge(tmp_path: Path, spec_text: str, n: int, order: list[int] | None = None) -> pl.DataFrame:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text)
    files = []
    for k in range(1, n + 1):
        out = tmp_path / f"part-{k}.parquet"
        assert run(["run", str(spec), "--shard", f"{k}/{n}", "--out", str(out), "--quiet"]) == 0
        files.append(str(out))
    merged = tmp_path / "merged.parquet"
    shuffled = [files[i - 1] for i in order] if order else files
    assert run(["merge", str(merged), *shuffled, "--quiet"]) == 0
    return pl.read_parquet(merged)


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_merged_shards_equal_a_single_run(tmp_path: Path, n: int) -> None:
    order = list(range(n, 0, -1))  # the merge orders shards by K, not by the command line
    assert shard_and_merge(tmp_path, SPEC, n, order).equals(single(SPEC))


def test_event_streams_with_sessions_and_limit_shard_too(tmp_path: Path) -> None:
    whole = single(EVENTS)
    assert whole.height == 15000
    assert shard_and_merge(tmp_path, EVENTS, 4).equals(whole)


def test_more_shards_than_rows(tmp_path: Path) -> None:
    text = "synthc: 1\nrows: 2\ncolumns:\n  x: {type: int, min: 1, max: 9}\n"
    assert shard_and_merge(tmp_path, text, 5).equals(single(text))


def test_shard_rows_cover_every_row_once() -> None:
    for total in (0, 1, 7, 1000, 1001):
        for n in (1, 2, 3, 8):
            bounds = [Shard(k, n).rows(total) for k in range(1, n + 1)]
            assert bounds[0][0] == 0 and bounds[-1][1] == total
            assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))


def test_steps_split_at_the_first_global_step() -> None:
    plan = compile_source(SPEC)
    local, rest = split_steps(plan.steps)
    assert [s.KIND for s in local] == ["filter", "sample"]
    assert [s.KIND for s in rest] == ["dedupe", "shuffle", "sample"]


@pytest.mark.parametrize("text", ["3/2", "0/4", "1/0", "a/b", "2", "1/2/3", "-1/2"])
def test_bad_shards_are_usage_errors(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("synthc: 1\nrows: 10\ncolumns:\n  x: {type: int, min: 1, max: 9}\n")
    out = tmp_path / "p.parquet"
    assert run(["run", str(spec), "--shard", text, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not a shard" in err and "Traceback" not in err
    assert not out.exists()
    with pytest.raises(ValueError, match="not a shard"):
        Shard.parse(text)


def test_shards_need_a_parquet_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("synthc: 1\nrows: 10\ncolumns:\n  x: {type: int, min: 1, max: 9}\n")
    assert run(["run", str(spec), "--shard", "1/2", "--out", str(tmp_path / "p.csv")]) == 2
    assert run(["run", str(spec), "--shard", "1/2"]) == 2
    assert "Parquet" in capsys.readouterr().err


def _parts(tmp_path: Path, text: str, n: int, name: str) -> list[Path]:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(text)
    outs = []
    for k in range(1, n + 1):
        out = tmp_path / f"{name}-{k}.parquet"
        assert run(["run", str(spec), "--shard", f"{k}/{n}", "--out", str(out), "--quiet"]) == 0
        outs.append(out)
    return outs


def test_bad_merges_are_refused_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _parts(tmp_path, SPEC, 2, "a")
    b = _parts(tmp_path, SPEC.replace("seed: 3", "seed: 4"), 2, "b")
    c = _parts(tmp_path, SPEC, 3, "c")
    out = tmp_path / "merged.parquet"
    out.write_bytes(b"keep me")
    cases = {
        "different plans": [a[0], b[1]],
        "different N": [a[0], c[1], c[2]],
        "missing": [c[0], c[2]],
        "twice": [a[0], a[0], a[1]],
    }
    for words, parts in cases.items():
        assert run(["merge", str(out), *map(str, parts)]) == 1, words
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.strip(), words
    assert out.read_bytes() == b"keep me"  # nothing overwritten
    not_a_shard = tmp_path / "plain.parquet"
    pl.DataFrame({"x": [1]}).write_parquet(not_a_shard)
    assert run(["merge", str(out), str(not_a_shard)]) == 1
    assert "not a synthc shard" in capsys.readouterr().err


def test_target_specs_are_not_sharded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = (
        "synthc: 1\ntarget_rows: 5\ncolumns:\n  x: {type: int, min: 1, max: 9}\nsteps:\n  - filter: 'x > 3'\n"
    )
    spec = tmp_path / "target.yaml"
    spec.write_text(target)
    out = tmp_path / "target.parquet"
    assert run(["run", str(spec), "--shard", "1/2", "--out", str(out)]) == 1
    assert not out.exists()
    assert "target_rows" in capsys.readouterr().err
    with pytest.raises(ShardError):
        from runtime.shards import check_shardable

        check_shardable(compile_source(target))


def test_llm_shards_through_the_cli_equal_a_whole_run(tmp_path: Path) -> None:
    """Shards of a spec with a dependent LLM column, sharing one cache, merge into the
    whole run's rows (the offline fake model; the HTTP cases are in test_llm_shards.py)."""
    text = (
        "synthc: 1\nrows: 40\nmodels:\n  w: {model: fake/writer}\ncolumns:\n"
        "  topic: {type: category, values: [a, b]}\n"
        "  body: {type: llm, model: w, prompt: 'about {{ topic }}'}\n"
        "  reply: {type: llm, model: w, prompt: 'answer {{ body }}'}\n"
    )
    spec = tmp_path / "llm.yaml"
    spec.write_text(text)
    cache = tmp_path / "shared.db"
    whole = tmp_path / "whole.parquet"
    assert (
        run(
            ["run", str(spec), "--out", str(whole), "--cache", str(tmp_path / "w.db"), "--quiet", "--no-lock"]
        )
        == 0
    )
    parts = []
    for k in (1, 2, 3):
        part = tmp_path / f"p{k}.parquet"
        assert (
            run(["run", str(spec), "--shard", f"{k}/3", "--out", str(part), "--cache", str(cache), "--quiet"])
            == 0
        )
        parts.append(str(part))
    merged = tmp_path / "merged.parquet"
    assert run(["merge", str(merged), *parts, "--quiet"]) == 0
    assert pl.read_parquet(merged).equals(pl.read_parquet(whole))
