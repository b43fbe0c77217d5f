"""Sharded runs of LLM plans: every shard's cache keys and rows are the whole run's.

LLM columns run against the local HTTP server (`FakeOpenAI`) through LiteLLM, with real
SQLite caches. That server answers identical prompts identically whatever the provider
seed, so equal rows alone would not catch a wrong occurrence index: the tests compare
the cache keys (which carry it) with a whole run's, exactly. The LLM source runs on the
offline ``fake/`` model, whose answers vary with the seed (distinct records per call)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from runtime.cache import Cache
from runtime.execute import execute, sample_column
from runtime.llm.outcome import LLMOptions, TooManyFailures, UpstreamMissing
from runtime.llm.run import LLMRun
from runtime.plan import Plan
from runtime.shards import Shard, merge_frames, open_shard_llm, read_shard, shard_frames, shard_metadata
from runtime.writers import write
from synthc.compiler import compile_source
from tests.support.llm_specs import (  # noqa: F401 - the *_fixture names are pytest fixtures
    requests,
    server_fixture,
    shared_server_fixture,
    spec,
)
from tests.support.openai_server import FakeOpenAI, server_error

ROWS, N = 40, 3  # shards of rows 0..12, 13..25, 26..39
CAT = "cat: {type: category, values: [red, blue]}"
# Many identical prompts on both sides of every shard boundary: occurrence indices count them.
NOTE = 'note: {type: llm, model: writer, prompt: "Say one thing about {{ cat }}", nulls: 0.25}'
# Reads `note`: its prompts repeat too (the server answers a prompt the same way every time).
INFO = (
    'info: {type: llm, model: writer, prompt: "Classify: {{ note }}", nulls: 0.1, output: '
    "{type: object, properties: {tone: {enum: [calm, loud]}}, required: [tone]}}"
)
TITLE = 'title: {type: llm, model: writer, prompt: "Name a {{ cat }} thing"}'
SHARDS = [Shard(k, N) for k in range(1, N + 1)]

SOURCE = """
synthc: 1
rows: 20
seed: 5
models:
  writer: {model: fake/writer, retries: 0}
source:
  type: llm
  model: writer
  prompt: Invent customers of a bike shop.
  per_call: 3
  schema:
    type: object
    properties:
      name: {type: string}
      bike: {enum: [road, gravel, city]}
    required: [name, bike]
columns:
  pitch: {type: llm, model: writer, prompt: "Sell a {{ bike }} bike"}
"""


def keys(cache: Path) -> set[str]:
    with Cache.open(cache, readonly=True) as opened:
        return {key for batch in opened.entries() for key, _ in batch}


def whole(plan: Plan, cache: Path) -> pl.DataFrame:
    with LLMRun(plan, LLMOptions(cache=cache), sample_column) as run:
        return pl.concat(list(execute(plan, llm=run)))


def run_shard(plan: Plan, shard: Shard, cache: Path, folder: Path, chunk_rows: int = 5) -> Path:
    out = folder / f"part-{shard.k}.parquet"
    frames = shard_frames(plan, shard, chunk_rows=chunk_rows, llm_options=LLMOptions(cache=cache))
    write(frames, out, "parquet", metadata=shard_metadata(plan, shard))
    return out


def merged(parts: Sequence[Path]) -> pl.DataFrame:
    return pl.concat(list(merge_frames([read_shard(p) for p in parts], chunk_rows=7)))


def llm_cells(frame: pl.DataFrame, start: int, stop: int, columns: Sequence[str]) -> int:
    """Non-null LLM cells of rows start..stop-1: the calls an empty cache needs for them."""
    rows = frame.slice(start, stop - start)
    return sum(rows.height - rows[c].null_count() for c in columns)


# --------------------------------------------------------------------------- LLM columns


def test_shards_in_order_with_their_own_caches_give_the_whole_runs_keys_and_rows(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    plan = compile_source(spec(ROWS, [CAT, NOTE, INFO]))
    expected = whole(plan, tmp_path / "a.db")
    called = requests(server)
    whole_keys = keys(tmp_path / "a.db")
    assert called == len(whole_keys) == llm_cells(expected, 0, ROWS, ["note", "info"])
    assert expected["info"].null_count() > expected["note"].null_count() > 0
    assert expected["note"].drop_nulls().n_unique() == 2  # identical prompts, identical answers

    parts, shard_keys, previous = [], set(), None
    for shard in SHARDS:  # each shard's cache starts as the earlier shards' caches, merged
        cache = tmp_path / f"shard-{shard.k}.db"
        if previous is not None:
            shutil.copy(previous, cache)
        before: set[str] = keys(cache) if previous is not None else set()
        server.reset()
        parts.append(run_shard(plan, shard, cache, tmp_path))
        new = keys(cache) - before
        start, stop = shard.rows(ROWS)
        # the counting pass called nothing: every request was one of this shard's cells
        assert requests(server) == len(new) == llm_cells(expected, start, stop, ["note", "info"])
        shard_keys |= new
        previous = cache
    assert shard_keys == whole_keys
    assert_frame_equal(merged(parts), expected)


def test_shards_sharing_one_cache_and_cache_merge(server: FakeOpenAI, tmp_path: Path) -> None:
    plan = compile_source(spec(ROWS, [CAT, NOTE, INFO]))
    expected = whole(plan, tmp_path / "a.db")
    server.reset()
    parts = [run_shard(plan, shard, tmp_path / "shared.db", tmp_path, chunk_rows=k) for k, shard in
             zip((1, 4, 1000), SHARDS, strict=True)]  # fmt: skip
    assert requests(server) == len(keys(tmp_path / "a.db"))
    assert keys(tmp_path / "shared.db") == keys(tmp_path / "a.db")
    assert_frame_equal(merged(parts), expected)
    # a whole run over the shards' cache calls nothing
    server.reset()
    assert_frame_equal(whole(plan, tmp_path / "shared.db"), expected)
    assert requests(server) == 0


def test_a_dependent_column_needs_the_earlier_shards_answers(server: FakeOpenAI, tmp_path: Path) -> None:
    plan = compile_source(spec(ROWS, [CAT, NOTE, INFO]))
    cache = tmp_path / "empty.db"
    with pytest.raises(UpstreamMissing) as caught:
        run_shard(plan, SHARDS[1], cache, tmp_path)
    assert requests(server) == 0  # found during the counting pass, before any call
    message = str(caught.value)
    assert "shard 2/3" in message and "`info` reads `note`" in message
    assert "synthc cache merge" in message and "unsharded" in message
    assert caught.value.column == "info" and caught.value.row is not None and caught.value.row < 13
    # after shard 1 (same cache), shard 2 runs
    run_shard(plan, SHARDS[0], cache, tmp_path)
    run_shard(plan, SHARDS[1], cache, tmp_path)


def test_independent_columns_shard_in_any_order_with_separate_caches(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    plan = compile_source(spec(ROWS, [CAT, NOTE, TITLE]))
    expected = whole(plan, tmp_path / "a.db")
    parts: dict[int, Path] = {}
    union: set[str] = set()
    for shard in (SHARDS[2], SHARDS[0], SHARDS[1]):
        server.reset()
        cache = tmp_path / f"own-{shard.k}.db"
        parts[shard.k] = run_shard(plan, shard, cache, tmp_path, chunk_rows=3)
        start, stop = shard.rows(ROWS)
        assert requests(server) == len(keys(cache)) == llm_cells(expected, start, stop, ["note", "title"])
        union |= keys(cache)
    assert union == keys(tmp_path / "a.db")
    assert_frame_equal(merged([parts[3], parts[1], parts[2]]), expected)


def test_shards_replay_offline_from_the_merged_cache(server: FakeOpenAI, tmp_path: Path) -> None:
    plan = compile_source(spec(ROWS, [CAT, NOTE, INFO]))
    expected = whole(plan, tmp_path / "a.db")
    server.reset()
    offline = LLMOptions(cache=tmp_path / "a.db", offline=True)
    parts = []
    for shard in reversed(SHARDS):
        out = tmp_path / f"offline-{shard.k}.parquet"
        write(shard_frames(plan, shard, chunk_rows=6, llm_options=offline), out, "parquet",
              metadata=shard_metadata(plan, shard))  # fmt: skip
        parts.append(out)
    assert requests(server) == 0
    assert_frame_equal(merged(parts), expected)


# --------------------------------------------------------------------------- LLM source


def test_source_shards_give_the_whole_runs_records_and_keys(tmp_path: Path) -> None:
    plan = compile_source(SOURCE)
    expected = whole(plan, tmp_path / "a.db")
    assert expected.select("name", "bike").n_unique() == 20
    union: set[str] = set()
    parts: dict[int, Path] = {}
    for shard in (SHARDS[1], SHARDS[2], SHARDS[0]):  # any order, each with its own cache
        cache = tmp_path / f"own-{shard.k}.db"
        parts[shard.k] = run_shard(plan, shard, cache, tmp_path, chunk_rows=2)
        union |= keys(cache)
    assert union == keys(tmp_path / "a.db")
    # shard 1 made only the calls its rows need: fewer than the whole run
    assert len(keys(tmp_path / "own-1.db")) < len(keys(tmp_path / "own-3.db"))
    assert_frame_equal(merged([parts[1], parts[2], parts[3]]), expected)


def test_a_dry_run_shard_with_the_callers_run_calls_nothing(server: FakeOpenAI, tmp_path: Path) -> None:
    plan = compile_source(spec(ROWS, [CAT, NOTE, INFO]))
    expected = whole(plan, tmp_path / "a.db")
    server.reset()
    shard = SHARDS[1]
    start, stop = shard.rows(ROWS)
    dry = LLMOptions(cache=tmp_path / "none.db", dry_run=True)
    with open_shard_llm(plan, shard, dry) as run:  # the caller's run: its tallies stay readable
        frame = pl.concat(list(shard_frames(plan, shard, chunk_rows=4, llm=run)))
        tallies = run.tallies
    assert requests(server) == 0 and not (tmp_path / "none.db").exists()
    assert frame.height == stop - start and frame["note"].null_count() == frame.height
    notes = llm_cells(expected, start, stop, ["note"])
    assert tallies["note"].would_call == notes
    assert tallies["note"].cells == stop - start  # the counted rows are not tallied
    # an `info` cell would be called where its `note` would be and its own `nulls` spare it:
    # where the whole run has an answer
    assert tallies["info"].would_call == llm_cells(expected, start, stop, ["info"])


def test_a_shard_with_failed_cells_is_not_written(server: FakeOpenAI, tmp_path: Path) -> None:
    plan = compile_source(spec(ROWS, [CAT, TITLE], retries=0))
    server.set_faults(server_error(500, requests=range(1, 3)))
    with pytest.raises(TooManyFailures, match="2 LLM cells failed"):
        run_shard(plan, SHARDS[2], tmp_path / "c.db", tmp_path)
    assert not (tmp_path / "part-3.parquet").exists()
    assert requests(server) == SHARDS[2].rows(ROWS)[1] - SHARDS[2].rows(ROWS)[0]
