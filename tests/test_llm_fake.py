"""Offline fake models: deterministic answers, valid JSON from schemas, served through LiteLLM.

The end-to-end tests call `LiteLLMTransport` with ``fake/...`` models, i.e. through
``litellm.acompletion`` and the custom-provider registration, never the network."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.llm import FAKE_LABEL, Completion, CompletionRequest, LiteLLMTransport, is_fake, load_litellm
from runtime.llm.fake import PROVIDER, FakeAnswer, _Draws, count_tokens, register, respond, schema_value
from runtime.llm.structured import parse_answer, response_format

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = (
    {"role": "system", "content": "You write realistic customer support tickets."},
    {"role": "user", "content": "Write a negative ticket from Ana about her laptop (pro plan)."},
)
TRIAGE = {
    "type": "object",
    "properties": {"urgency": {"enum": ["low", "medium", "high"]}, "topic": {"type": "string"}},
    "required": ["urgency", "topic"],
}
WORD = re.compile(r"^[A-Za-z,]+$")


# --------------------------------------------------------------------------------------------
# A family of satisfiable schemas (shared with test_llm_structured)
# --------------------------------------------------------------------------------------------

NAMES = ("id", "name", "score", "tags", "kind", "when", "note", "a", "b")


@st.composite
def _integer_schema(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    low = draw(st.none() | st.integers(-1000, 1000))
    if low is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if draw(st.booleans()):
        schema["maximum"] = (low if low is not None else 0) + draw(st.integers(12, 500))
    if draw(st.booleans()):
        schema["multipleOf"] = draw(st.sampled_from([2, 5]))
    return schema


@st.composite
def _number_schema(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number"}
    low = draw(st.none() | st.floats(-1e6, 1e6, allow_nan=False))
    if low is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if draw(st.booleans()):
        base = low if low is not None else 0.0
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = base + draw(st.floats(0.5, 1e4))
    return schema


@st.composite
def _string_schema(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    low = draw(st.none() | st.integers(0, 80))
    if low is not None:
        schema["minLength"] = low
    if draw(st.booleans()):
        schema["maxLength"] = (low or 0) + draw(st.integers(0, 30))
    if draw(st.booleans()):
        schema["format"] = draw(st.sampled_from(["date", "date-time", "email", "uuid", "uri"]))
    return schema


_LEAVES = st.one_of(
    _integer_schema(),
    _number_schema(),
    _string_schema(),
    st.just({"type": "boolean"}),
    st.just({}),
    st.lists(st.text("abcxyz", min_size=1, max_size=6), min_size=1, max_size=4, unique=True).map(
        lambda values: {"enum": values}
    ),
    st.lists(st.integers(-5, 5), min_size=1, max_size=3, unique=True).map(lambda v: {"enum": v}),
    st.sampled_from(["fixed", 3, True]).map(lambda value: {"const": value}),
)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


@st.composite
def _object_schema(draw: st.DrawFn, children: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=0, max_size=5, unique=True))
    properties = {name: draw(children) for name in names}
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = [name for name in names if draw(st.booleans())]
    if required:
        schema["required"] = required
    if draw(st.booleans()):
        schema["additionalProperties"] = False
    return schema


@st.composite
def _array_schema(draw: st.DrawFn, children: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": draw(children)}
    low = draw(st.none() | st.integers(0, 4))
    if low is not None:
        schema["minItems"] = low
    if draw(st.booleans()):
        schema["maxItems"] = (low or 0) + draw(st.integers(0, 4))
    return schema


def _containers(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(_object_schema(children), _array_schema(children), children.map(_nullable))


def json_schemas() -> st.SearchStrategy[dict[str, Any]]:
    """Satisfiable JSON Schemas: scalars with bounds and formats, enums, consts, nullable
    types, and objects/arrays of them nested up to a few levels."""
    return st.recursive(_LEAVES, _containers, max_leaves=12)


# --------------------------------------------------------------------------------------------
# Pure answers
# --------------------------------------------------------------------------------------------


def test_is_fake_and_label() -> None:
    assert is_fake("fake/writer") and is_fake("fake/a/b")
    assert not is_fake("fake/") and not is_fake("openai/gpt-4o-mini") and not is_fake("fakeish/x")
    assert "fake" in FAKE_LABEL and "offline" in FAKE_LABEL


def test_text_is_deterministic_and_depends_on_the_request() -> None:
    first = respond("fake/writer", MESSAGES)
    assert respond("fake/writer", [dict(m) for m in MESSAGES]) == first
    others = {
        respond("fake/other", MESSAGES).text,
        respond("fake/writer", MESSAGES[1:]).text,
        respond("fake/writer", MESSAGES, max_tokens=500).text,
        respond("fake/writer", MESSAGES, seed=1).text,
        respond("fake/writer", MESSAGES, seed=2).text,
        first.text,
    }
    assert len(others) == 6


def test_text_reads_like_sentences() -> None:
    for i in range(40):
        answer = respond("fake/writer", ({"role": "user", "content": f"ticket {i}"},))
        sentences = answer.text.split(". ")
        assert 2 <= len(sentences) <= 5, answer.text
        assert answer.text.endswith(".") and answer.finish_reason == "stop"
        for sentence in sentences:
            words = sentence.rstrip(".").split(" ")
            assert sentence[0].isupper() and len(words) >= 3, sentence
            assert all(WORD.match(w) for w in words), sentence


def test_usage_counts() -> None:
    answer = respond("fake/writer", MESSAGES)
    prompt = sum(count_tokens(m["content"]) + 3 for m in MESSAGES) + 3
    assert (answer.prompt_tokens, answer.completion_tokens) == (prompt, count_tokens(answer.text))
    assert count_tokens("") == 0 and count_tokens("abcd") == 1 and count_tokens("abcde") == 2


@pytest.mark.parametrize("max_tokens", [1, 3, 8, 15, 40, 1000])
def test_max_tokens_bounds_the_text(max_tokens: int) -> None:
    for i in range(20):
        answer = respond("fake/w", ({"role": "user", "content": str(i)},), max_tokens=max_tokens)
        assert len(answer.text) <= max_tokens * 4
        assert answer.completion_tokens <= max_tokens
        whole = answer.text.endswith(".")
        assert answer.finish_reason == ("stop" if whole else "length"), answer


def test_json_object_mode() -> None:
    answer = respond("fake/w", MESSAGES, {"type": "json_object"})
    value = json.loads(answer.text)
    assert set(value) == {"answer", "confidence"} and 0 <= value["confidence"] <= 1


def test_json_schema_answer_is_valid() -> None:
    answer = respond("fake/w", MESSAGES, response_format(TRIAGE, "triage"))
    value = parse_answer(answer.text, TRIAGE)
    assert value["urgency"] in {"low", "medium", "high"} and isinstance(value["topic"], str)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=json_schemas(), seed=st.integers(0, 2**64))
def test_generated_json_is_valid_against_its_schema(schema: dict[str, Any], seed: int) -> None:
    value = schema_value(schema, _Draws(seed))
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(value)]
    assert not errors, (value, errors)
    assert schema_value(schema, _Draws(seed)) == value  # deterministic


SPECIAL = [
    {  # $ref, $defs and recursion through an optional property
        "$defs": {"node": {"type": "object", "properties": {"label": {"type": "string"},
                  "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["label"]}},
        "$ref": "#/$defs/node",
    },
    {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
               {"properties": {"b": {"const": "x"}}, "required": ["b"]}]},
    {"oneOf": [{"type": "string", "maxLength": 3}, {"type": "integer", "minimum": 10}]},
    {"type": "array", "items": {"enum": ["a", "b", "c", "d"]}, "minItems": 4, "uniqueItems": True},
    {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "boolean"}], "items": False},
    {"type": "object", "minProperties": 3, "additionalProperties": {"type": "integer"}},
    {"type": "object", "properties": {"x": {"type": "number", "multipleOf": 5, "maximum": 12}}, "required": ["x"]},
    {"type": "integer", "exclusiveMinimum": 4, "exclusiveMaximum": 6},
    {"type": "string", "minLength": 12, "maxLength": 12},
    {"type": ["null"]},
    True,
]  # fmt: skip


@pytest.mark.parametrize("schema", SPECIAL, ids=range(len(SPECIAL)))
def test_generated_json_for_richer_schemas(schema: Any) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    for seed in range(30):
        value = schema_value(schema, _Draws(seed))
        assert validator.is_valid(value), value


def test_answers_do_not_depend_on_the_process() -> None:
    code = "from runtime.llm.fake import respond; print(respond('fake/w', [{'role': 'user', 'content': 'hi'}]).text)"
    outputs = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        outputs.add(out.stdout)
    assert outputs == {respond("fake/w", [{"role": "user", "content": "hi"}]).text + "\n"}


def test_importing_fake_does_not_import_litellm_or_jsonschema() -> None:
    code = "import sys, runtime.llm.fake; print(sorted(m for m in ('litellm', 'jsonschema') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------
# Through LiteLLM
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def litellm() -> Iterator[ModuleType]:
    yield load_litellm()


def complete_all(requests: Sequence[CompletionRequest]) -> list[Completion]:
    async def run() -> list[Completion]:
        transport = LiteLLMTransport()
        try:
            return list(await asyncio.gather(*(transport.complete(r) for r in requests)))
        finally:
            await transport.aclose()

    return asyncio.run(run())


def expected(request: CompletionRequest) -> FakeAnswer:
    params = request.params
    return respond(
        request.model, request.messages, request.response_format, params.get("max_tokens"), params.get("seed")
    )


def test_text_through_litellm(litellm: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)  # no key is needed
    request = CompletionRequest("fake/writer", MESSAGES, {"temperature": 0.9, "max_tokens": 40, "seed": 7})
    [answer] = complete_all([request])
    want = expected(request)
    assert answer == Completion(
        text=want.text,
        model="fake/writer",
        finish_reason=want.finish_reason,
        prompt_tokens=want.prompt_tokens,
        completion_tokens=want.completion_tokens,
        cost=0.0,
    )
    assert len(answer.text) <= 160
    # temperature does not change a fake answer; the seed and max_tokens do
    same = CompletionRequest("fake/writer", MESSAGES, {"max_tokens": 40, "seed": 7})
    reseeded = CompletionRequest("fake/writer", MESSAGES, {"max_tokens": 40, "seed": 8})
    longer = CompletionRequest("fake/writer", MESSAGES, {"max_tokens": 400, "seed": 7})
    again, *others = complete_all([same, reseeded, longer])
    assert again.text == answer.text
    assert [o.text == answer.text for o in others] == [False, False]
    assert others[0].text == expected(reseeded).text


def test_structured_through_litellm(litellm: ModuleType) -> None:
    requests = [
        CompletionRequest(
            "fake/triage",
            ({"role": "user", "content": f"Classify ticket {i}"},),
            {},
            response_format=response_format(TRIAGE, "triage"),
        )
        for i in range(30)
    ]
    answers = complete_all(requests)
    values = [parse_answer(a.text, TRIAGE) for a in answers]
    assert [a.text for a in answers] == [expected(r).text for r in requests]
    assert {v["urgency"] for v in values} == {"low", "medium", "high"}
    assert all(a.cost == 0.0 and a.model == "fake/triage" and a.finish_reason == "stop" for a in answers)


def test_json_object_through_litellm(litellm: ModuleType) -> None:
    [answer] = complete_all(
        [CompletionRequest("fake/x", MESSAGES, {}, response_format={"type": "json_object"})]
    )
    assert isinstance(json.loads(answer.text), dict)


def test_registration_is_once(litellm: ModuleType) -> None:
    register(litellm)
    register(litellm)
    providers = [item["provider"] for item in litellm.custom_provider_map]
    assert providers.count(PROVIDER) == 1
    assert litellm.get_llm_provider("fake/anything")[1] == PROVIDER


def test_many_concurrent_fake_calls(litellm: ModuleType) -> None:
    requests = [
        CompletionRequest("fake/w", ({"role": "user", "content": f"row {i}"},), {}) for i in range(200)
    ]
    answers = complete_all(requests)
    assert [a.text for a in answers] == [expected(r).text for r in requests]
    assert len({a.text for a in answers}) > 150


GUARD = textwrap.dedent(
    """
    import asyncio, json, socket
    attempts = []

    def blocked(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network access is blocked in this test")

    socket.socket.connect = socket.socket.connect_ex = blocked
    socket.getaddrinfo = socket.create_connection = blocked

    from runtime.llm import CompletionRequest, LiteLLMTransport
    from runtime.llm.structured import response_format

    async def main():
        transport = LiteLLMTransport()
        messages = ({"role": "user", "content": "hello"},)
        schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
        try:
            text = await transport.complete(CompletionRequest("fake/w", messages, {"max_tokens": 20}))
            data = await transport.complete(
                CompletionRequest("fake/w", messages, {}, response_format=response_format(schema, "n")))
        finally:
            await transport.aclose()
        return text.cost, json.loads(data.text)

    cost, data = asyncio.run(main())
    print(json.dumps({"attempts": attempts, "cost": cost, "n": isinstance(data["n"], int)}))
    """
)


@pytest.mark.slow
def test_fake_models_need_no_network_and_no_key() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM") and not k.endswith("_API_KEY")}
    out = subprocess.run(
        [sys.executable, "-c", GUARD], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout) == {"attempts": [], "cost": 0.0, "n": True}
