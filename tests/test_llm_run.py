"""LLM columns end to end through the Python API: spec YAML → compile → run → LiteLLM →
HTTP to the local fake OpenAI server → SQLite cache → rows.

Counts are exact (the server's counters, the run's `RunStats` and tallies); values are
the ones the fake server is known to answer (`expected_text` / `expected_json`)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from runtime.cache import Cache, CachedResponse
from runtime.llm.outcome import TooManyFailures
from runtime.llm.prompts import ColumnRequests, column_params, output_schema
from runtime.plan import LLMColumn
from synthc import api
from tests.support.llm_specs import (  # noqa: F401 - the *_fixture names are pytest fixtures
    BODY,
    INPUTS,
    TRIAGE,
    cache_models,
    entries,
    expected_body,
    expected_triage,
    requests,
    server_fixture,
    shared_server_fixture,
    spec,
    user_message,
)
from tests.support.openai_server import FakeOpenAI, expected_text, missing_key, server_error

N = 8  # rows; the tickets spec makes 2 LLM calls per row


def check_tickets(frame: pl.DataFrame) -> None:
    """Every row holds exactly what the fake server answers for its prompt."""
    assert frame.height > 0
    for row in frame.iter_rows(named=True):
        assert row["body"] == expected_body(row["product"], row["n"])
        assert row["triage"] == expected_triage(row["body"])


# --------------------------------------------------------------------------- values


def test_struct_column_holds_the_answers_the_server_gives(server: FakeOpenAI, tmp_path: Path) -> None:
    frame = api.generate(spec(N), cache=tmp_path / "cache.db")
    assert requests(server) == 2 * N
    assert frame.columns == ["n", "product", "body", "triage"]
    dtype = frame.schema["triage"]
    assert isinstance(dtype, pl.Struct)
    assert {field.name: field.dtype for field in dtype.fields} == {"urgency": pl.String, "topic": pl.String}
    check_tickets(frame)
    first = frame.row(0, named=True)
    assert first["n"] == 1
    assert first["body"] == expected_text(user_message(f"Write a ticket about a {first['product']} (#1)"))
    assert set(frame["triage"].struct.field("urgency")) <= {"low", "high"}
    # the schema went to the server as a native json_schema response format
    structured = [body for body in server.bodies if "response_format" in body]
    assert len(structured) == N
    assert {body["response_format"]["type"] for body in structured} == {"json_schema"}


def test_identical_prompts_in_different_rows_are_different_requests(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    text = spec(5, ['review: {type: llm, model: writer, prompt: "Write a product review"}'])
    cache = tmp_path / "cache.db"
    first = api.write(text, tmp_path / "a.parquet", cache=cache)
    assert requests(server) == 5
    assert entries(cache) == 5  # five keys: the occurrence index tells the rows apart
    seeds = [body["seed"] for body in server.bodies]
    assert len(set(seeds)) == 5  # each cell sends its own provider seed
    assert (
        pl.read_parquet(tmp_path / "a.parquet")["review"].to_list()
        == [expected_text(user_message("Write a product review"))] * 5
    )
    assert first.llm is not None and first.llm.tallies["review"].called == 5

    server.reset()
    again = api.write(text, tmp_path / "b.parquet", cache=cache)
    assert requests(server) == 0
    assert again.llm is not None and again.llm.tallies["review"].cached == 5
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_changing_a_prompt_re_requests_that_column_and_what_depends_on_it(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    title = 'title: {type: llm, model: writer, prompt: "Name a {{ product }}"}'  # reads no LLM column
    cache = tmp_path / "cache.db"

    def called(columns: list[str]) -> dict[str, tuple[int, int]]:
        server.reset()
        result = api.write(spec(N, columns), tmp_path / "out.parquet", cache=cache)
        assert result.llm is not None
        tallies = {name: (t.cached, t.called) for name, t in result.llm.tallies.items()}
        assert sum(called for _, called in tallies.values()) == requests(server)
        return tallies

    base = [*INPUTS, BODY, TRIAGE, title]
    assert called(base) == {"body": (0, N), "triage": (0, N), "title": (0, N)}
    titles = pl.read_parquet(tmp_path / "out.parquet")["title"]
    assert called(base) == {"body": (N, 0), "triage": (N, 0), "title": (N, 0)}

    new_triage = TRIAGE.replace('"Classify: ', '"Classify this ticket: ')
    assert called([*INPUTS, BODY, new_triage, title]) == {"body": (N, 0), "triage": (0, N), "title": (N, 0)}

    new_body = BODY.replace('"Write a ticket', '"Write a short ticket')
    assert called([*INPUTS, new_body, TRIAGE, title]) == {"body": (0, N), "triage": (0, N), "title": (N, 0)}
    frame = pl.read_parquet(tmp_path / "out.parquet")
    assert_frame_equal(frame.select("title"), titles.to_frame())
    assert frame["body"][0] == expected_text(
        user_message(f"Write a short ticket about a {frame['product'][0]} (#1)")
    )


def test_fallback_answers_when_the_primary_model_always_fails(server: FakeOpenAI, tmp_path: Path) -> None:
    server.set_faults(server_error(500, model="gpt-4o-mini"))
    text = spec(6, [*INPUTS, BODY], retries=1, fallbacks=["openai/fallback-model"])
    cache = tmp_path / "cache.db"
    result = api.write(text, tmp_path / "out.parquet", cache=cache)
    assert result.llm is not None and result.llm.ok and result.llm.errors == ()
    # each cell: the primary twice (one retry), then the fallback once
    assert server.stats().by_model == {"gpt-4o-mini": 12, "fallback-model": 6}
    stats = result.llm.stats
    assert (stats.calls, stats.retries, stats.fallbacks, stats.answered) == (18, 6, 6, 6)
    assert cache_models(cache) == (("fallback-model", 6),)  # who answered, not who was asked
    for row in pl.read_parquet(tmp_path / "out.parquet").iter_rows(named=True):
        assert row["body"] == expected_body(row["product"], row["n"])

    server.reset()
    server.clear_faults()
    api.write(text, tmp_path / "again.parquet", cache=cache)
    assert requests(server) == 0  # the fallback's answers are the cells' answers


def test_a_prompt_can_use_vars_a_field_and_a_template_of_llm_columns(server: FakeOpenAI) -> None:
    columns = [
        *INPUTS,
        BODY,
        TRIAGE,
        'short: {type: template, template: "{{ body[:14] }}"}',  # computed from an LLM column
        'tag: {type: llm, model: writer, system: "You tag {{ company }} tickets.",'
        ' prompt: "Tag {{ short }} ({{ triage.urgency }})"}',
    ]
    text = spec(4, columns).replace("columns:", "vars: {company: Acme}\ncolumns:")
    frame = api.generate(text, cache=False)
    assert requests(server) == 12
    for row in frame.iter_rows(named=True):
        assert row["short"] == row["body"][:14]
        messages = [
            {"role": "system", "content": "You tag Acme tickets."},
            {"role": "user", "content": f"Tag {row['short']} ({row['triage']['urgency']})"},
        ]
        assert row["tag"] == expected_text(messages)


def test_nulls_on_an_llm_column_make_no_request(server: FakeOpenAI, tmp_path: Path) -> None:
    body = BODY[:-1] + ", nulls: 0.5}"
    result = api.write(spec(12, [*INPUTS, body]), tmp_path / "out.parquet", cache=tmp_path / "cache.db")
    frame = pl.read_parquet(tmp_path / "out.parquet")
    nulls = frame["body"].null_count()
    assert 0 < nulls < 12
    assert result.llm is not None
    tally = result.llm.tallies["body"]
    assert (tally.cells, tally.nulls, tally.called, tally.failed) == (12, nulls, 12 - nulls, 0)
    assert requests(server) == 12 - nulls
    assert result.llm.errors == ()
    for row in frame.drop_nulls("body").iter_rows(named=True):
        assert row["body"] == expected_body(row["product"], row["n"])


def test_chunk_size_changes_neither_keys_nor_values(server: FakeOpenAI, tmp_path: Path) -> None:
    text = spec(7, ['review: {type: llm, model: writer, prompt: "Write a product review"}', *INPUTS, BODY])
    cache = tmp_path / "cache.db"
    api.write(text, tmp_path / "small.parquet", cache=cache, chunk_rows=2)
    assert requests(server) == 14
    assert entries(cache) == 14  # occurrence indexes continue across chunks
    server.reset()
    api.write(text, tmp_path / "one.parquet", cache=cache)
    assert requests(server) == 0
    assert_frame_equal(pl.read_parquet(tmp_path / "small.parquet"), pl.read_parquet(tmp_path / "one.parquet"))


def test_operational_settings_keep_the_cache_and_params_do_not(server: FakeOpenAI, tmp_path: Path) -> None:
    cache = tmp_path / "cache.db"
    api.generate(spec(N), cache=cache)
    assert requests(server) == 2 * N
    server.reset()
    # endpoint, concurrency, retries, back-off and timeout decide how calls are made, not what they answer
    moved = spec(N, concurrency=1, retries=0, backoff=1, timeout=9, api_base="${FAKE_BASE}/")
    api.generate(moved, cache=cache)
    assert requests(server) == 0
    colder = spec(N, [*INPUTS, BODY, TRIAGE[:-1] + ", params: {temperature: 0}}"])
    api.generate(colder, cache=cache)
    assert requests(server) == N  # triage's params changed: its cells are asked again
    assert {body.get("temperature") for body in server.bodies} == {0}


# --------------------------------------------------------------------------- the API


def test_write_reports_what_the_cells_did(server: FakeOpenAI, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    result = api.write(spec(N), out, cache=tmp_path / "cache.db")
    assert result.rows == N
    summary = result.llm
    assert summary is not None
    assert summary.ok and summary.errors == () and summary.errors_path is None
    assert summary.allowed_failures == 0
    tallies = {name: (t.cells, t.cached, t.called, t.failed) for name, t in summary.tallies.items()}
    assert tallies == {"body": (N, 0, N, 0), "triage": (N, 0, N, 0)}
    stats = summary.stats
    assert (stats.calls, stats.answered, stats.cache_hits, stats.retries, stats.failures) == (
        2 * N,
        2 * N,
        0,
        0,
        0,
    )
    assert stats.prompt_tokens > 0 and stats.completion_tokens > 0
    assert stats.cost > 0 and stats.unknown_cost_calls == 0  # gpt-4o-mini has a price
    check_tickets(pl.read_parquet(out))

    again = api.write(spec(N), out, cache=tmp_path / "cache.db")
    assert again.llm is not None
    assert (again.llm.stats.calls, again.llm.stats.cache_hits) == (0, 2 * N)


def test_generate_with_failures_allowed_gives_nulls(server: FakeOpenAI, tmp_path: Path) -> None:
    server.set_faults(missing_key(contains="(#2)"))  # the row with n = 2: auth fails, no retry
    cache = tmp_path / "cache.db"
    frame = api.generate(spec(N), cache=cache, max_failures="100%")
    assert requests(server) == 2 * N - 1  # row 2's triage is never asked (its input failed)
    failed = frame.filter(pl.col("n") == 2).row(0, named=True)
    assert (failed["body"], failed["triage"]) == (None, None)
    check_tickets(frame.filter(pl.col("n") != 2))
    assert entries(cache) == 2 * N - 2

    with pytest.raises(TooManyFailures, match=r"2 LLM cells failed \(allowed: 0\).*`body`, row 1"):
        api.generate(spec(N), cache=cache)


def test_agenerate_and_generate_work_inside_a_running_event_loop(server: FakeOpenAI, tmp_path: Path) -> None:
    cache = tmp_path / "cache.db"

    async def from_a_coroutine() -> tuple[pl.DataFrame, pl.DataFrame]:
        awaited = await api.agenerate(spec(N), cache=cache)
        assert requests(server) == 2 * N
        server.reset()
        blocking = api.generate(spec(N + 2), cache=cache)  # sync, while this loop runs
        return awaited, blocking

    awaited, blocking = asyncio.run(from_a_coroutine())
    assert requests(server) == 4  # the two new rows
    check_tickets(awaited)
    check_tickets(blocking)
    assert_frame_equal(blocking.head(N), awaited)


# --------------------------------------------------------------------------- bounded work


def test_calls_in_flight_never_exceed_the_concurrency(server: FakeOpenAI, tmp_path: Path) -> None:
    server.latency = 0.02
    result = api.write(
        spec(40, [*INPUTS, BODY], concurrency=3), tmp_path / "out.parquet", cache=tmp_path / "cache.db"
    )
    assert result.llm is not None
    assert result.llm.stats.calls == requests(server) == 40
    assert result.llm.stats.peak_in_flight == 3
    assert server.stats().peak_in_flight <= 3


def test_a_fully_cached_run_of_many_rows_makes_no_call(server: FakeOpenAI, tmp_path: Path) -> None:
    rows = 20_000
    text = spec(rows, ['review: {type: llm, model: writer, prompt: "Write a product review"}'])
    plan = api.compile(text)
    col = plan.column("review")
    assert isinstance(col, LLMColumn)
    alias = plan.model("writer")
    keyed = ColumnRequests(alias.model, column_params(alias, col), output_schema(col), plan.seed).keys(
        [({"role": "user", "content": "Write a product review"},)] * rows
    )
    cache = tmp_path / "cache.db"
    with Cache.open(cache) as opened:  # answer k for occurrence k: row order must map to it
        opened.put_many(
            (item[0], CachedResponse(f"review {k}", "gpt-4o-mini", 5, 2, None, "stop"))
            for k, item in enumerate(keyed)
            if item is not None
        )
    started = time.perf_counter()
    result = api.write(text, tmp_path / "out.parquet", cache=cache, chunk_rows=7_000)
    seconds = time.perf_counter() - started
    assert requests(server) == 0
    assert result.llm is not None and result.llm.tallies["review"].cached == rows
    assert result.llm.stats.calls == 0
    reviews = pl.read_parquet(tmp_path / "out.parquet")["review"].to_list()
    assert reviews == [f"review {k}" for k in range(rows)]
    assert seconds < 10, seconds
