"""The LLM transport through LiteLLM, against the local OpenAI-compatible server.

Real HTTP to 127.0.0.1; every call has a timeout and every loop is bounded. LiteLLM is
imported once for the module (about 2-3 s) and once more in the network-guard subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from runtime.llm import Completion, CompletionRequest, LiteLLMTransport, TransportError, load_litellm
from runtime.llm.transport import cost_usd, retry_after_seconds, sent_params
from tests.support.openai_server import (
    FakeOpenAI,
    Rule,
    disconnect,
    expected_content,
    expected_text,
    fake_usage,
    hang,
    malformed_json,
    missing_key,
    rate_limit,
    server_error,
    truncated,
)

ROOT = Path(__file__).resolve().parents[1]
FAKE_KEY = "sk-synthc-test-4f1c2b9e7d"
MESSAGES = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a river."})


@pytest.fixture(scope="module")
def litellm() -> Iterator[ModuleType]:
    saved = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = FAKE_KEY
    try:
        yield load_litellm()
    finally:
        if saved is None:
            os.environ.pop("OPENAI_API_KEY", None)
        else:
            os.environ["OPENAI_API_KEY"] = saved


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeOpenAI]:
    yield from FakeOpenAI.serve(latency=0.0, max_lifetime=120.0)


@pytest.fixture
def server(shared_server: FakeOpenAI, litellm: ModuleType) -> FakeOpenAI:
    shared_server.clear_faults()
    shared_server.require_auth = False
    shared_server.reset()
    return shared_server


def make_request(server: FakeOpenAI, **changes: Any) -> CompletionRequest:
    fields: dict[str, Any] = {
        "model": "openai/fake-model",
        "messages": MESSAGES,
        "params": {},
        "api_base": server.base_url,
        "timeout": 5.0,
    }
    fields.update(changes)
    return CompletionRequest(**fields)


def complete(request: CompletionRequest) -> Completion:
    async def once() -> Completion:
        transport = LiteLLMTransport()
        try:
            return await transport.complete(request)
        finally:
            await transport.aclose()

    return asyncio.run(once())


def fail(request: CompletionRequest) -> TransportError:
    with pytest.raises(TransportError) as info:
        complete(request)
    return info.value


def test_importing_the_transport_does_not_import_litellm() -> None:
    code = "import sys, runtime.llm, runtime.llm.transport; print(sorted(m for m in ('litellm', 'openai', 'httpx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_plain_text_answer_and_usage(server: FakeOpenAI) -> None:
    answer = complete(make_request(server))
    text = expected_text([dict(m) for m in MESSAGES])
    usage = fake_usage([dict(m) for m in MESSAGES], text)
    assert answer == Completion(
        text=text,
        model="fake-model",
        finish_reason="stop",
        prompt_tokens=usage["prompt_tokens"],
        completion_tokens=usage["completion_tokens"],
        cost=None,
    )
    stats = server.stats()
    assert (stats.total_requests, stats.chat_requests, stats.by_status) == (1, 1, {200: 1})
    assert server.headers[0]["authorization"] == f"Bearer {FAKE_KEY}"


def test_the_body_carries_messages_params_and_response_format(server: FakeOpenAI) -> None:
    schema = {"type": "object", "properties": {"river": {"type": "string"}}, "required": ["river"]}
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema, "strict": True},
    }
    params = {"temperature": 0.3, "max_tokens": 200, "seed": 7, "top_p": 0.9}
    answer = complete(make_request(server, params=params, response_format=response_format))
    [body] = server.bodies
    assert body["messages"] == [dict(m) for m in MESSAGES]
    assert {k: body.get(k) for k in params} == params
    assert body["response_format"] == response_format
    assert body["model"] == "fake-model"
    assert "stream" not in body or body["stream"] is False
    assert answer.text == expected_content(body)
    assert set(json.loads(answer.text)) == {"river"}


def test_json_object_mode(server: FakeOpenAI) -> None:
    answer = complete(make_request(server, response_format={"type": "json_object"}))
    assert server.bodies[0]["response_format"] == {"type": "json_object"}
    assert isinstance(json.loads(answer.text), dict)


FAULTS: list[tuple[str, Rule, str, int | None, float | None]] = [
    ("429-retry-after", rate_limit(2), "rate_limit", 429, 2.0),
    ("429-retry-after-ms", rate_limit(1.5, header="ms"), "rate_limit", 429, 1.5),
    ("429-both", rate_limit(0.25, header="both"), "rate_limit", 429, 0.25),
    ("429-no-header", rate_limit(None, header="none"), "rate_limit", 429, None),
    ("500", server_error(500), "server", 500, None),
    ("502", server_error(502), "server", 502, None),
    ("503", server_error(503), "server", 503, None),
    ("disconnect", disconnect(), "connection", None, None),
    ("reset", disconnect(reset=True), "connection", None, None),
    ("401", missing_key(), "auth", 401, None),
    ("malformed-json", malformed_json(), "bad_response", None, None),
]


@pytest.mark.parametrize(
    ("rule", "kind", "status", "retry_after"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS]
)
def test_each_fault_maps_to_its_kind_with_one_request(
    server: FakeOpenAI, rule: Rule, kind: str, status: int | None, retry_after: float | None
) -> None:
    server.set_faults(rule)
    error = fail(make_request(server))
    assert (error.kind, error.status, error.retry_after) == (kind, status, retry_after)
    assert "\n" not in str(error)
    assert str(error).startswith("openai/fake-model: ")
    assert FAKE_KEY not in str(error)
    stats = server.stats()
    assert (stats.total_requests, stats.chat_requests) == (1, 1)
    assert sum(stats.faults.values()) == 1


def test_rejected_key_names_the_variable(server: FakeOpenAI) -> None:
    server.set_faults(missing_key())
    error = fail(make_request(server))
    assert error.kind == "auth"
    assert "OPENAI_API_KEY" in str(error)
    assert FAKE_KEY not in str(error) and FAKE_KEY not in repr(error)


def test_hang_longer_than_the_timeout_is_a_timeout(server: FakeOpenAI) -> None:
    server.set_faults(hang(3.0, times=1))
    started = time.monotonic()
    error = fail(make_request(server, timeout=0.3))
    assert time.monotonic() - started < 2.0
    assert (error.kind, error.status) == ("timeout", None)
    assert "0.3 s" in str(error)
    assert server.stats().chat_requests == 1


def test_truncated_answer_is_a_completion_with_length(server: FakeOpenAI) -> None:
    server.set_faults(truncated())
    answer = complete(make_request(server))
    full = expected_text([dict(m) for m in MESSAGES])
    assert answer.finish_reason == "length"
    assert answer.text == full[: len(full) // 2]
    assert server.stats().chat_requests == 1


def test_missing_default_key_is_auth_naming_the_variable(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    error = fail(make_request(server))
    assert error.kind == "auth"
    assert "OPENAI_API_KEY" in str(error)
    assert server.stats().total_requests == 0


def test_named_key_variable(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNTHC_TEST_KEY", raising=False)
    error = fail(make_request(server, api_key_env="SYNTHC_TEST_KEY"))
    assert error.kind == "auth" and "SYNTHC_TEST_KEY" in str(error)
    assert server.stats().total_requests == 0
    monkeypatch.setenv("SYNTHC_TEST_KEY", "sk-other-key-123456")
    complete(make_request(server, api_key_env="SYNTHC_TEST_KEY"))
    assert server.headers[0]["authorization"] == "Bearer sk-other-key-123456"
    server.set_faults(missing_key())
    error = fail(make_request(server, api_key_env="SYNTHC_TEST_KEY"))
    assert error.kind == "auth" and "SYNTHC_TEST_KEY" in str(error)
    assert "sk-other-key-123456" not in str(error)


@pytest.mark.parametrize("model", ["nosuch/some-model", "not-a-known-model"])
def test_unknown_provider_is_bad_request(server: FakeOpenAI, model: str) -> None:
    error = fail(make_request(server, model=model))
    assert (error.kind, error.status) == ("bad_request", None)
    assert model in str(error) and "provider/model" in str(error)
    assert server.stats().total_requests == 0


def test_server_down_is_a_connection_error(litellm: ModuleType) -> None:
    with FakeOpenAI() as gone:
        base_url = gone.base_url
    error = fail(CompletionRequest("openai/fake-model", MESSAGES, {}, api_base=base_url, timeout=5.0))
    assert (error.kind, error.status) == ("connection", None)
    assert base_url in str(error)


def test_fifty_concurrent_calls(server: FakeOpenAI) -> None:
    server.latency = 0.02
    requests = [make_request(server, messages=({"role": "user", "content": f"item {i}"},)) for i in range(50)]

    async def run_all() -> list[Completion]:
        transport = LiteLLMTransport()
        try:
            return await asyncio.gather(*(transport.complete(r) for r in requests))
        finally:
            await transport.aclose()

    try:
        answers = asyncio.run(run_all())
    finally:
        server.latency = 0.0
    assert [a.text for a in answers] == [expected_text([dict(r.messages[0])]) for r in requests]
    stats = server.stats()
    assert (stats.total_requests, stats.chat_requests, stats.by_status) == (50, 50, {200: 50})
    assert stats.peak_in_flight > 1


def test_cost_comes_from_the_bundled_cost_map(server: FakeOpenAI, litellm: ModuleType) -> None:
    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    bundled = json.loads(
        (Path(litellm.__file__).parent / "model_prices_and_context_window_backup.json").read_text()
    )["gpt-4o-mini"]
    answer = complete(make_request(server, model="openai/gpt-4o-mini"))
    assert answer.model == "gpt-4o-mini"
    expected = (
        answer.prompt_tokens * bundled["input_cost_per_token"]
        + answer.completion_tokens * bundled["output_cost_per_token"]
    )
    assert isinstance(answer.cost, float)
    assert answer.cost == pytest.approx(expected, rel=1e-9)
    assert complete(make_request(server)).cost is None  # fake-model is not in the map


def test_no_callbacks_are_registered(server: FakeOpenAI, litellm: ModuleType) -> None:
    names = ("callbacks", "success_callback", "failure_callback", "_async_success_callback")
    before = {n: list(getattr(litellm, n)) for n in names}
    complete(make_request(server))
    server.set_faults(server_error(500))
    fail(make_request(server))
    assert {n: list(getattr(litellm, n)) for n in names} == before
    assert litellm.suppress_debug_info is True


def test_seed_is_left_out_for_providers_that_take_none(
    server: FakeOpenAI, litellm: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPINFRA_API_KEY", FAKE_KEY)
    params = {"temperature": 0.3, "seed": 7}
    request = make_request(server, model="deepinfra/fake-model", params=params)

    async def direct() -> None:  # what LiteLLM does with the seed left in
        await litellm.acompletion(
            model=request.model, messages=list(MESSAGES), api_base=request.api_base, num_retries=0, **params
        )

    with pytest.raises(litellm.UnsupportedParamsError):
        asyncio.run(direct())
    assert server.stats().total_requests == 0
    answer = complete(request)
    assert answer.text == expected_text([dict(m) for m in MESSAGES])
    [body] = server.bodies
    assert body["temperature"] == 0.3 and "seed" not in body
    assert request.params == params  # the request itself (and so its cache key) keeps the seed


def test_sent_params(litellm: ModuleType) -> None:
    def sent(model: str, provider: str) -> dict[str, Any]:
        return sent_params(CompletionRequest(model, MESSAGES, {"seed": 1, "top_p": 0.5}), provider)

    assert sent("openai/gpt-4o-mini", "openai") == {"seed": 1, "top_p": 0.5}
    assert sent("fake/writer", "fake") == {"seed": 1, "top_p": 0.5}
    assert sent("anthropic/claude-haiku-4-5", "anthropic") == {"top_p": 0.5}
    assert sent("aiml/some-model", "aiml") == {"seed": 1, "top_p": 0.5}  # LiteLLM cannot tell: kept
    assert sent_params(CompletionRequest("anthropic/x", MESSAGES, {"top_p": 1}), "anthropic") == {"top_p": 1}


def test_fake_models_need_no_key_no_server_and_cost_nothing(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    answer = complete(CompletionRequest("fake/writer", MESSAGES, {"max_tokens": 50, "seed": 3}))
    assert (answer.model, answer.finish_reason, answer.cost) == ("fake/writer", "stop", 0.0)
    assert 0 < len(answer.text) <= 200 and answer.completion_tokens <= 50
    assert server.stats().total_requests == 0
    assert cost_usd("fake/writer", "fake", 1000, 1000) == 0.0


def test_aclose_leaves_no_task_behind(server: FakeOpenAI) -> None:
    async def run() -> list[str]:
        transport = LiteLLMTransport()
        requests = [make_request(server), CompletionRequest("fake/w", MESSAGES, {})] * 10
        await asyncio.gather(*(transport.complete(r) for r in requests))
        await transport.aclose()
        await asyncio.sleep(0)
        return [repr(t) for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    assert asyncio.run(run()) == []
    assert asyncio.run(run()) == []  # the next loop starts afresh


def test_params_may_not_override_what_the_transport_sets() -> None:
    with pytest.raises(ValueError, match="api_key"):
        CompletionRequest("openai/x", MESSAGES, {"api_key": "k", "temperature": 0})
    with pytest.raises(ValueError, match="timeout"):
        CompletionRequest("openai/x", MESSAGES, {}, timeout=0)


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"Retry-After": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480.0) == 10.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({"retry-after": "-1"}) is None
    assert retry_after_seconds(None) is None


GUARD = textwrap.dedent(
    """
    import asyncio, json, os, socket, sys
    attempts = []
    LOCAL = {"127.0.0.1", "localhost", "::1"}

    class Blocked(OSError):
        pass

    def check(address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, bytes):
            host = host.decode()
        if host is not None and host not in LOCAL and not isinstance(address, str | bytes):
            attempts.append(str(host))
            raise Blocked(f"network access to {host} is blocked in this test")

    real_connect, real_connect_ex, real_getaddrinfo = (
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo)

    def connect(self, address):
        if self.family != socket.AF_UNIX:
            check(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family != socket.AF_UNIX:
            check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        check((host,))
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo

    try:  # the guard works: the connection is refused, and recorded
        socket.create_connection(("203.0.113.7", 443), timeout=1)
        sys.exit("the guard let a connection to 203.0.113.7 through")
    except Blocked:
        pass
    assert attempts == ["203.0.113.7"], attempts
    attempts.clear()

    os.environ["OPENAI_API_KEY"] = "sk-guard-test-000000"
    from runtime.llm.transport import CompletionRequest, LiteLLMTransport, TransportError
    from tests.support.openai_server import FakeOpenAI, server_error

    async def main(base_url):
        transport = LiteLLMTransport()
        messages = ({"role": "user", "content": "hello"},)
        ok = await transport.complete(CompletionRequest("openai/gpt-4o-mini", messages, {}, api_base=base_url))
        try:
            await transport.complete(CompletionRequest("openai/fake-model", messages, {}, api_base=base_url))
        except TransportError as error:
            return ok, error.kind
        finally:
            await transport.aclose()
        return ok, None

    with FakeOpenAI(faults=[server_error(500, model="fake-model")]) as server:
        ok, kind = asyncio.run(main(server.base_url))
        requests = server.stats().total_requests
    print(json.dumps({"attempts": attempts, "cost": ok.cost, "kind": kind, "requests": requests}))
    """
)


@pytest.mark.slow  # a fresh interpreter imports LiteLLM
def test_no_network_beyond_the_api_base() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM")}
    out = subprocess.run(
        [sys.executable, "-c", GUARD], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(out.stdout.splitlines()) == 1, out.stdout  # nothing else printed on stdout
    result = json.loads(out.stdout)
    assert result["attempts"] == []
    assert isinstance(result["cost"], float)
    assert (result["kind"], result["requests"]) == ("server", 2)
