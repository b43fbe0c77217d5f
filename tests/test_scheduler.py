"""The scheduler against the local OpenAI-compatible server, through LiteLLM.

Real HTTP to 127.0.0.1 with tiny back-offs. Counts are exact (server counters and
`RunStats`); times are only lower bounds, except where giving up promptly is the point.
Cases that need structured output import `runtime.llm.structured` through the scheduler."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from runtime.cache import Cache
from runtime.llm import LiteLLMTransport, load_litellm
from runtime.llm.limits import AdaptiveLimit, LimitClosed, TokenBucket, estimated_tokens
from runtime.llm.scheduler import (
    MAX_REPAIRS,
    BudgetExceeded,
    CellAnswer,
    CellFailure,
    CellRequest,
    Route,
    RouteError,
    RunStats,
    Scheduler,
)
from runtime.plan import ModelAlias
from tests.support.openai_server import (
    FakeOpenAI,
    FakeRequest,
    Rule,
    disconnect,
    expected_content,
    expected_text,
    fake_usage,
    hang,
    malformed_json,
    missing_key,
    prose,
    rate_limit,
    server_error,
    truncated,
)

KEY_ENV = "SYNTHC_TEST_KEY"
FAKE_KEY = "sk-synthc-scheduler-7a3e91c2"
PRIMARY, SECOND = "openai/fake-model", "openai/gpt-4o-mini"  # gpt-4o-mini has a price
SCHEMA = {
    "type": "object",
    "properties": {"urgency": {"enum": ["low", "medium", "high"]}, "topic": {"type": "string"}},
    "required": ["urgency", "topic"],
}

Result = CellAnswer | CellFailure


@pytest.fixture(scope="module")
def litellm() -> ModuleType:
    return load_litellm()


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeOpenAI]:
    yield from FakeOpenAI.serve(latency=0.0, max_lifetime=300.0)


@pytest.fixture
def server(shared_server: FakeOpenAI, litellm: ModuleType, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    shared_server.clear_faults()
    shared_server.latency = 0.0
    shared_server.reset()
    return shared_server


def make_route(server: FakeOpenAI, **changes: Any) -> Route:
    fields: dict[str, Any] = {
        "alias": "writer",
        "models": (PRIMARY,),
        "params": {},
        "api_base": server.base_url,
        "api_key_env": KEY_ENV,
        "concurrency": 4,
        "rpm": None,
        "tpm": None,
        "timeout": 5.0,
        "retries": 3,
        "backoff": 0.01,
    }
    fields.update(changes)
    return Route(**fields)


def make_cells(n: int, *, schema: dict[str, Any] | None = None, **params: Any) -> list[CellRequest]:
    return [
        CellRequest(
            column="body",
            row=i,
            key=f"key-{i}-{schema is not None}",
            alias="writer",
            messages=(
                {"role": "system", "content": "You write support tickets."},
                {"role": "user", "content": f"Write ticket number {i}."},
            ),
            params=params,
            output_schema=schema,
        )
        for i in range(n)
    ]


def run_cells(
    route: Route,
    cells: Sequence[CellRequest],
    *,
    cache: Cache | None = None,
    max_cost: float | None = None,
    schedulers: list[Scheduler] | None = None,
) -> tuple[list[Result], RunStats, float]:
    """Run `cells` concurrently on one scheduler (appended to `schedulers` when given);
    (results, stats, elapsed seconds)."""
    stats = RunStats()

    async def main() -> list[Result]:
        transport = LiteLLMTransport()
        scheduler = Scheduler({route.alias: route}, transport, cache, stats=stats, max_cost=max_cost)
        if schedulers is not None:
            schedulers.append(scheduler)
        try:
            return await asyncio.gather(*(scheduler.run(cell) for cell in cells))
        finally:
            scheduler.close()  # every answer committed before the cache is inspected
            await transport.aclose()

    started = time.monotonic()
    results = asyncio.run(main())
    return results, stats, time.monotonic() - started


def answers(results: Sequence[Result]) -> list[CellAnswer]:
    assert all(isinstance(r, CellAnswer) for r in results), results
    return [r for r in results if isinstance(r, CellAnswer)]


def failures(results: Sequence[Result]) -> list[CellFailure]:
    assert all(isinstance(r, CellFailure) for r in results), results
    return [r for r in results if isinstance(r, CellFailure)]


def plain(messages: Sequence[Any]) -> list[dict[str, Any]]:
    return [dict(m) for m in messages]


def arrival_times(
    server: FakeOpenAI, latency: Callable[[int], float] = lambda number: 0.0
) -> dict[int, float]:
    """Record when each chat request arrives (through the latency hook, which then delays
    request ``number`` by ``latency(number)``); returns the dict it fills."""
    times: dict[int, float] = {}

    def record(request: FakeRequest) -> float:
        times[request.number] = time.monotonic()
        return latency(request.number)

    server.latency = record
    return times


# --------------------------------------------------------------------------------------------
# Clean runs, retries, fallbacks
# --------------------------------------------------------------------------------------------


def test_clean_run_is_one_request_per_cell(server: FakeOpenAI) -> None:
    cells = make_cells(10)
    results, stats, _ = run_cells(make_route(server), cells)
    got = answers(results)
    assert [a.value for a in got] == [expected_text(plain(c.messages)) for c in cells]
    usage = [fake_usage(plain(c.messages), a.value) for c, a in zip(cells, got, strict=True)]
    assert [a.response.prompt_tokens for a in got] == [u["prompt_tokens"] for u in usage]
    assert {a.response.model for a in got} == {"fake-model"}
    assert all(a.response.cost is None and a.response.finish_reason == "stop" for a in got)
    s = server.stats()
    assert (s.chat_requests, s.by_status) == (10, {200: 10})
    assert (stats.calls, stats.answered, stats.retries, stats.failures, stats.in_flight) == (10, 10, 0, 0, 0)
    assert stats.prompt_tokens == sum(u["prompt_tokens"] for u in usage)
    assert stats.completion_tokens == sum(u["completion_tokens"] for u in usage)
    assert (stats.cost, stats.unknown_cost_calls) == (0.0, 10)
    assert server.headers[0]["authorization"] == f"Bearer {FAKE_KEY}"


def test_429_with_retry_after_is_retried_after_the_wait(server: FakeOpenAI) -> None:
    server.set_faults(rate_limit(0.3, requests=range(1, 4)))
    results, stats, elapsed = run_cells(make_route(server, concurrency=3), make_cells(6))
    assert len(answers(results)) == 6
    s = server.stats()
    assert (s.chat_requests, s.by_status) == (9, {429: 3, 200: 6})
    assert (stats.retries, stats.rate_limited, stats.calls, stats.failures) == (3, 3, 9, 0)
    assert elapsed >= 0.3


def test_retry_after_pauses_every_cell_of_the_model(server: FakeOpenAI) -> None:
    server.set_faults(rate_limit(0.6, requests=1))
    # Request 1 gets the 429 at once; request 2 takes 0.3 s, so without a model-wide pause
    # request 3 would start at about 0.3 s instead of after 0.6 s.
    times = arrival_times(server, lambda number: 0.0 if number == 1 else 0.3)
    results, stats, _ = run_cells(make_route(server, concurrency=2), make_cells(4))
    assert len(answers(results)) == 4
    assert server.stats().chat_requests == 5 and stats.retries == 1
    assert all(times[n] >= times[1] + 0.6 for n in times if n >= 3), times


def test_server_errors_then_success(server: FakeOpenAI) -> None:
    server.set_faults(server_error(500, requests=range(1, 3)), server_error(503, requests=3))
    results, stats, _ = run_cells(make_route(server, concurrency=1), make_cells(3))
    assert len(answers(results)) == 3
    assert server.stats().by_status == {500: 2, 503: 1, 200: 3}
    assert (stats.retries, stats.calls, stats.fallbacks) == (3, 6, 0)


def test_timeout_is_retried(server: FakeOpenAI) -> None:
    server.set_faults(hang(2.0, times=1))
    cells = make_cells(1)
    results, stats, _ = run_cells(make_route(server, timeout=0.5), cells)
    [answer] = answers(results)
    assert answer.value == expected_text(plain(cells[0].messages))
    assert (server.stats().chat_requests, stats.retries, stats.calls) == (2, 1, 2)


@pytest.mark.parametrize(
    "rule",
    [
        malformed_json(requests=1),
        disconnect(requests=1),
        server_error(502, requests=1),
        rate_limit(None, requests=1),
    ],
    ids=["malformed-json", "disconnect", "502", "429-without-retry-after"],
)
def test_retryable_failures_are_retried(server: FakeOpenAI, rule: Rule) -> None:
    server.set_faults(rule)
    results, stats, _ = run_cells(make_route(server), make_cells(2))
    assert len(answers(results)) == 2
    s = server.stats()
    assert (s.chat_requests, sum(s.faults.values()), stats.retries, stats.calls) == (3, 1, 1, 3)


def test_rate_limiting_halves_the_concurrency_once_then_it_grows_back(server: FakeOpenAI) -> None:
    server.set_faults(rate_limit(0.05, requests=range(1, 5)))
    schedulers: list[Scheduler] = []
    results, stats, _ = run_cells(make_route(server, concurrency=4), make_cells(4), schedulers=schedulers)
    assert len(answers(results)) == 4 and stats.rate_limited == 4
    # The four 429s answer calls that all started together: one halving (4 -> 2), then
    # four successes add 1/limit each: 2 -> 2.5 -> 2.9 -> 3.24 -> 3.55.
    assert schedulers[0].concurrency("writer") == 3


def test_truncated_answer_fails_with_length_without_retrying(server: FakeOpenAI) -> None:
    server.set_faults(truncated())
    results, stats, _ = run_cells(make_route(server), make_cells(2, max_tokens=300))
    for failure in failures(results):
        assert (failure.kind, failure.attempts, failure.model) == ("length", 1, PRIMARY)
        assert "max_tokens=300" in failure.message and "raise max_tokens" in failure.message
    assert (server.stats().chat_requests, stats.retries, stats.failures_by_kind) == (2, 0, {"length": 2})
    assert stats.completion_tokens > 0  # the truncated answers were paid for


def test_length_falls_back_and_the_cell_cost_sums_every_answer(server: FakeOpenAI) -> None:
    server.set_faults(truncated(model="fake-model"))
    cells = make_cells(1)
    results, stats, _ = run_cells(make_route(server, models=(PRIMARY, SECOND)), cells)
    [answer] = answers(results)
    first, second = server.bodies
    assert (first["model"], second["model"]) == ("fake-model", "gpt-4o-mini")
    assert answer.value == expected_content(second)
    full = fake_usage(plain(cells[0].messages), answer.value)
    assert answer.response.model == "gpt-4o-mini"
    assert answer.response.prompt_tokens == 2 * full["prompt_tokens"]  # both calls were paid
    assert answer.response.completion_tokens == stats.completion_tokens > full["completion_tokens"]
    assert answer.response.cost is not None and answer.response.cost == pytest.approx(stats.cost)
    assert (stats.fallbacks, stats.calls, stats.unknown_cost_calls) == (1, 2, 1)


def test_fallback_after_the_primary_keeps_failing(server: FakeOpenAI) -> None:
    server.set_faults(server_error(500, model="fake-model"))
    results, stats, _ = run_cells(make_route(server, models=(PRIMARY, SECOND), retries=2), make_cells(1))
    [answer] = answers(results)
    assert answer.response.model == "gpt-4o-mini"
    assert server.stats().by_model == {"fake-model": 3, "gpt-4o-mini": 1}
    assert (stats.retries, stats.fallbacks, stats.calls) == (2, 1, 4)


def test_rejected_key_goes_to_the_fallback_without_retrying(server: FakeOpenAI) -> None:
    server.set_faults(missing_key(model="fake-model"))
    results, stats, _ = run_cells(make_route(server, models=(PRIMARY, SECOND)), make_cells(2))
    assert {a.response.model for a in answers(results)} == {"gpt-4o-mini"}
    assert server.stats().by_model == {"fake-model": 2, "gpt-4o-mini": 2}
    assert (stats.retries, stats.fallbacks) == (0, 2)


def test_every_call_failing(server: FakeOpenAI) -> None:
    server.set_faults(server_error(503))
    route = make_route(server, models=(PRIMARY, SECOND), retries=2)
    results, stats, _ = run_cells(route, make_cells(5))
    for failure in failures(results):
        assert (failure.kind, failure.attempts, failure.model) == ("server", 6, SECOND)
        assert failure.message.startswith(f"{PRIMARY}: server error (HTTP 503)")
        assert f"; {SECOND}: server error" in failure.message
        assert "\n" not in failure.message and FAKE_KEY not in failure.message
    assert server.stats().by_model == {"fake-model": 15, "gpt-4o-mini": 15}
    assert (stats.calls, stats.retries, stats.fallbacks, stats.answered) == (30, 20, 5, 0)
    assert (stats.failures, stats.failures_by_column) == (5, {"body": 5})
    assert stats.failures_by_kind == {"server": 5}


def test_a_missing_key_fails_without_a_request(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    results, stats, _ = run_cells(make_route(server), make_cells(2))
    for failure in failures(results):
        assert failure.kind == "auth" and KEY_ENV in failure.message
    assert (server.stats().total_requests, stats.retries, stats.failures) == (0, 0, 2)


# --------------------------------------------------------------------------------------------
# Rate limits the provider sets, and ours
# --------------------------------------------------------------------------------------------


def test_retry_after_over_the_cap_gives_up_at_once(server: FakeOpenAI) -> None:
    server.set_faults(rate_limit(3600))
    results, stats, elapsed = run_cells(make_route(server, concurrency=1), make_cells(5))
    got = failures(results)
    assert [f.kind for f in got] == ["rate_limit_wait"] * 5
    assert [f.attempts for f in got] == [1, 0, 0, 0, 0]
    assert "asks to wait 3600 s, over the 120 s this run waits" in got[0].message
    assert {f.message for f in got} == {got[0].message}
    assert (server.stats().chat_requests, stats.retries, stats.failures) == (1, 0, 5)
    assert elapsed < 30


def test_a_model_given_up_sends_its_cells_to_the_fallback(server: FakeOpenAI) -> None:
    server.set_faults(rate_limit(3600, model="fake-model"))
    route = make_route(server, models=(PRIMARY, SECOND), concurrency=1)
    results, stats, _ = run_cells(route, make_cells(4))
    assert {a.response.model for a in answers(results)} == {"gpt-4o-mini"}
    assert server.stats().by_model == {"fake-model": 1, "gpt-4o-mini": 4}
    assert (stats.fallbacks, stats.rate_limited) == (4, 1)


def test_concurrency_cap(litellm: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    with FakeOpenAI(latency=0.1) as fresh:
        results, stats, _ = run_cells(make_route(fresh, concurrency=3), make_cells(12))
        peak = fresh.stats().peak_in_flight
    assert len(answers(results)) == 12
    assert stats.peak_in_flight == 3 and peak <= 3


def test_rpm_limit(server: FakeOpenAI) -> None:
    times = arrival_times(server)
    # 600/min: a burst of 10, then one every 0.1 s: the (10 + k)th no sooner than k / 10 s.
    before = time.monotonic()
    results, _, _ = run_cells(make_route(server, rpm=600, concurrency=20), make_cells(15))
    assert len(answers(results)) == 15
    arrivals = sorted(t - before for t in times.values())
    assert len(arrivals) == 15
    assert all(arrivals[9 + k] >= k / 10 for k in range(1, 6)), arrivals


def test_tpm_limit(server: FakeOpenAI) -> None:
    cells = make_cells(5, max_tokens=50)
    tokens = estimated_tokens(cells[0].messages, cells[0].params)
    system, user = (json.dumps(m["content"]) for m in cells[0].messages)
    assert tokens == 50 + len(system + user) // 4
    # 12000/min = 200 a second (also the burst): 5 cells need (5 * tokens - 200) / 200 s.
    results, _, elapsed = run_cells(make_route(server, tpm=12_000), cells)
    assert len(answers(results)) == 5
    assert elapsed >= (5 * tokens - 200) / 200


# --------------------------------------------------------------------------------------------
# Structured output
# --------------------------------------------------------------------------------------------


def test_native_schema_is_sent_and_validated(server: FakeOpenAI) -> None:
    results, stats, _ = run_cells(make_route(server, models=(SECOND,)), make_cells(3, schema=SCHEMA))
    for answer, body in zip(answers(results), server.bodies, strict=True):
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"] == SCHEMA
        assert answer.value == json.loads(expected_content(body))
        assert answer.value["urgency"] in ("low", "medium", "high")
    assert (stats.calls, stats.repairs) == (3, 0)


def test_prose_is_repaired(server: FakeOpenAI) -> None:
    server.set_faults(prose(times=1))
    cells = make_cells(1, schema=SCHEMA)
    results, stats, _ = run_cells(make_route(server, models=(SECOND,)), cells)
    [answer] = answers(results)
    first, second = server.bodies
    assert first["messages"] == plain(cells[0].messages)
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert second["messages"][2]["content"].startswith("Sure! Here is what you asked for")
    assert answer.value == json.loads(expected_content(second))
    assert (stats.calls, stats.repairs, stats.retries) == (2, 1, 0)
    assert answer.response.prompt_tokens == stats.prompt_tokens  # both calls


def test_prose_every_time_is_invalid_after_the_repairs(server: FakeOpenAI) -> None:
    server.set_faults(prose())
    results, stats, _ = run_cells(make_route(server, models=(SECOND,)), make_cells(2, schema=SCHEMA))
    for failure in failures(results):
        assert (failure.kind, failure.attempts, failure.model) == ("invalid", 1 + MAX_REPAIRS, SECOND)
        assert "does not match the output schema" in failure.message and "\n" not in failure.message
    assert (server.stats().chat_requests, stats.repairs) == (2 * (1 + MAX_REPAIRS), 2 * MAX_REPAIRS)


def test_without_native_schemas_the_instructions_go_in_the_prompt(server: FakeOpenAI) -> None:
    from runtime.llm.structured import instructions, supports_native_schema

    assert not supports_native_schema(PRIMARY)
    cells = make_cells(1, schema=SCHEMA)
    results, _, _ = run_cells(make_route(server), cells)
    [failure] = failures(results)  # the fake answers prose when asked without a schema
    assert failure.kind == "invalid"
    body = server.bodies[0]
    assert "response_format" not in body or body["response_format"] is None
    assert body["messages"][0] == dict(cells[0].messages[0])
    assert body["messages"][1]["content"] == f"Write ticket number 0.\n\n{instructions(SCHEMA)}"


# --------------------------------------------------------------------------------------------
# Cache, budget, stop
# --------------------------------------------------------------------------------------------


def test_answers_are_cached_and_reused(server: FakeOpenAI, tmp_path: Path) -> None:
    server.set_faults(server_error(500, contains="number 2"))
    cells = make_cells(3)
    with Cache.open(tmp_path / "cache.db") as cache:
        results, _, _ = run_cells(make_route(server, retries=1), cells, cache=cache)
        assert [type(r).__name__ for r in results] == ["CellAnswer", "CellAnswer", "CellFailure"]
        stored = cache.get(cells[0].key)
        assert isinstance(results[0], CellAnswer) and stored == results[0].response
        assert cache.get(cells[2].key) is None  # failures are never cached
        server.reset()
        again, stats2, _ = run_cells(make_route(server, retries=1), cells[:2], cache=cache)
    assert [r.value for r in answers(again)] == [r.value for r in answers(results[:2])]
    assert (server.stats().chat_requests, stats2.cache_hits, stats2.calls) == (0, 2, 0)


def test_budget_stops_new_calls(server: FakeOpenAI) -> None:
    route = make_route(server, models=(SECOND,), concurrency=1)
    [probe], _, _ = run_cells(route, make_cells(1))
    assert isinstance(probe, CellAnswer) and probe.response.cost
    budget = 2.5 * probe.response.cost
    server.reset()
    stats = RunStats()

    async def main() -> tuple[int, BudgetExceeded | None]:
        transport = LiteLLMTransport()
        scheduler = Scheduler({"writer": route}, transport, None, stats=stats, max_cost=budget)
        done = 0
        try:
            for cell in make_cells(6):
                await scheduler.run(cell)
                done += 1
        except BudgetExceeded as exceeded:
            return done, exceeded
        finally:
            await transport.aclose()
        return done, None

    done, exceeded = asyncio.run(main())
    assert done == 3 and exceeded is not None
    assert exceeded.spent == stats.cost >= exceeded.max_cost and "--max-cost" in str(exceeded)
    assert (server.stats().chat_requests, stats.calls) == (3, 3)


def test_zero_budget_starts_nothing(server: FakeOpenAI) -> None:
    with pytest.raises(BudgetExceeded):
        run_cells(make_route(server), make_cells(2), max_cost=0.0)
    assert server.stats().total_requests == 0


def test_stop_returns_waiting_cells_promptly(server: FakeOpenAI) -> None:
    # Cell 1 is rate limited at once with a 100 s Retry-After (under the cap: waited for),
    # pausing the model; cell 0 is in flight for 0.5 s; cells 2-4 wait for a slot or the pause.
    server.set_faults(rate_limit(100, contains="number 1"))
    server.latency = lambda request: 0.0 if "number 1" in request.last_user_text else 0.5
    stats = RunStats()

    async def main() -> list[Result]:
        transport = LiteLLMTransport()
        scheduler = Scheduler({"writer": make_route(server, concurrency=2)}, transport, None, stats=stats)
        try:
            tasks = [asyncio.ensure_future(scheduler.run(cell)) for cell in make_cells(5)]
            for _ in range(1000):  # at most 10 s
                if stats.rate_limited:
                    break
                await asyncio.sleep(0.01)
            scheduler.stop()
            return await asyncio.gather(*tasks)
        finally:
            await transport.aclose()

    started = time.monotonic()
    results = asyncio.run(main())
    assert time.monotonic() - started < 30
    assert isinstance(results[0], CellAnswer)  # in flight when stopped: finished
    assert [r.kind for r in results[1:] if isinstance(r, CellFailure)] == ["stopped"] * 4
    assert [r.attempts for r in results[1:] if isinstance(r, CellFailure)] == [1, 0, 0, 0]
    assert server.stats().chat_requests == 2
    assert (stats.calls, stats.failures, stats.answered, stats.rate_limited) == (2, 0, 1, 1)


# --------------------------------------------------------------------------------------------
# Routes and limits, without a server
# --------------------------------------------------------------------------------------------


def test_route_from_alias_resolves_variables() -> None:
    alias = ModelAlias(
        name="writer",
        model="openai/gpt-4o-mini",
        fallbacks=("anthropic/claude-3-5-haiku-latest",),
        params='{"temperature":0.9}',
        api_base="http://${HOST}:${PORT}/v1",
        concurrency=8,
        rpm=100,
    )
    route = Route.from_alias(alias, {"HOST": "127.0.0.1", "PORT": "9999"})
    assert route.models == ("openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest")
    assert route.api_base == "http://127.0.0.1:9999/v1"
    assert (route.params, route.concurrency, route.rpm, route.retries) == ({"temperature": 0.9}, 8, 100, 3)
    with pytest.raises(RouteError, match=r"model 'writer'.*\$\{PORT\}.*PORT is not set"):
        Route.from_alias(alias, {"HOST": "127.0.0.1"})
    with pytest.raises(RouteError, match="PORT is empty"):
        Route.from_alias(alias, {"HOST": "h", "PORT": ""})
    assert Route.from_alias(replace(alias, api_base=None), {}).api_base is None


def test_token_bucket() -> None:
    bucket = TokenBucket(600, now=0.0)  # 10 a second, burst 10
    assert [bucket.reserve(1, now=0.0) for _ in range(10)] == [0.0] * 10
    assert bucket.reserve(1, now=0.0) == pytest.approx(0.1)
    assert bucket.reserve(1, now=0.0) == pytest.approx(0.2)
    assert bucket.reserve(1, now=1.0) == 0.0  # refilled meanwhile (promises kept)
    big = TokenBucket(60, now=0.0)  # 1 a second, burst 1: a reservation of 5 waits 4 s
    assert big.reserve(5, now=0.0) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        TokenBucket(0, now=0.0)


def test_adaptive_limit_halves_once_per_window_and_grows_back() -> None:
    async def main() -> None:
        limit = AdaptiveLimit(8)
        for _ in range(8):
            await limit.acquire()
        waiter = asyncio.ensure_future(limit.acquire())
        await asyncio.sleep(0)
        assert not waiter.done()
        assert limit.decrease(started=1.0, now=2.0) and limit.limit == 4
        assert not limit.decrease(started=1.5, now=2.1)  # started before the last decrease
        assert limit.decrease(started=2.5, now=3.0) and limit.limit == 2
        for _ in range(7):
            limit.release()
        assert limit.active == 2  # 8 - 7, plus the slot handed to the waiter
        await asyncio.sleep(0)
        assert waiter.done()
        for _ in range(10):
            limit.increase()
        assert limit.limit == 4  # about one slot per round of successes: 2 → 2.5 → 2.9 → ...
        for _ in range(30):
            limit.increase()
        assert limit.limit == 8
        blocked = [asyncio.ensure_future(limit.acquire()) for _ in range(8)]
        await asyncio.sleep(0)
        assert sum(t.done() for t in blocked) == 6
        limit.close()
        results = await asyncio.gather(*blocked, return_exceptions=True)
        assert sum(isinstance(r, LimitClosed) for r in results) == 2
        with pytest.raises(LimitClosed):
            await limit.acquire()

    asyncio.run(main())
