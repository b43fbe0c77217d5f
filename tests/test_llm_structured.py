"""Structured output: schema → Polars type, answer text → validated value → column cell."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.llm.fake import _Draws, schema_value
from runtime.llm.structured import (
    MAX_ANSWER_CHARS,
    MAX_ECHO_CHARS,
    InvalidAnswer,
    conform,
    instructions,
    parse_answer,
    repair_messages,
    response_format,
    struct_dtype,
    supports_native_schema,
    validator,
)
from tests.test_llm_fake import json_schemas

ROOT = Path(__file__).resolve().parents[1]
TRIAGE = {
    "type": "object",
    "properties": {
        "urgency": {"enum": ["low", "medium", "high"]},
        "topic": {"type": "string"},
        "score": {"type": "integer"},
    },
    "required": ["urgency", "topic"],
}


# --------------------------------------------------------------------------------------------
# struct_dtype
# --------------------------------------------------------------------------------------------

DTYPES: list[tuple[str, dict[str, Any], pl.DataType]] = [
    ("string", {"type": "string", "maxLength": 5}, pl.String()),
    ("enum-strings", {"enum": ["a", "b"]}, pl.String()),
    ("const-string", {"const": "x"}, pl.String()),
    ("enum-ints", {"enum": [1, 2, None]}, pl.Int64()),
    ("enum-bools", {"enum": [True, False]}, pl.Boolean()),
    ("integer", {"type": "integer"}, pl.Int64()),
    ("number", {"type": "number"}, pl.Float64()),
    ("boolean", {"type": "boolean"}, pl.Boolean()),
    ("nullable", {"type": ["integer", "null"]}, pl.Int64()),
    ("null-first", {"type": ["null", "string"]}, pl.String()),
    ("pydantic-optional", {"anyOf": [{"type": "number"}, {"type": "null"}], "title": "X"}, pl.Float64()),
    ("array", {"type": "array", "items": {"type": "string"}}, pl.List(pl.String())),
    (
        "object",
        {
            "type": "object",
            "properties": {"b": {"type": "integer"}, "a": {"type": "array", "items": {"type": "boolean"}}},
        },
        pl.Struct({"b": pl.Int64(), "a": pl.List(pl.Boolean())}),
    ),
    (
        "ref",
        {"$defs": {"p": {"type": "number"}}, "type": "object", "properties": {"x": {"$ref": "#/$defs/p"}}},
        pl.Struct({"x": pl.Float64()}),
    ),
    ("mixed-types", {"type": ["integer", "string"]}, pl.String()),
    ("any-of-mixture", {"anyOf": [{"type": "integer"}, {"type": "string"}]}, pl.String()),
    ("one-of-mixture", {"oneOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]}, pl.String()),
    ("object-without-properties", {"type": "object"}, pl.String()),
    ("array-without-items", {"type": "array"}, pl.String()),
    ("tuple", {"type": "array", "prefixItems": [{"type": "integer"}]}, pl.String()),
    ("empty", {}, pl.String()),
    ("enum-mixed", {"enum": [1, "a"]}, pl.String()),
    ("null", {"type": "null"}, pl.String()),
    ("unknown-ref", {"$ref": "#/$defs/missing"}, pl.String()),
]


@pytest.mark.parametrize(("schema", "dtype"), [d[1:] for d in DTYPES], ids=[d[0] for d in DTYPES])
def test_struct_dtype(schema: dict[str, Any], dtype: pl.DataType) -> None:
    assert struct_dtype(schema) == dtype


def test_struct_fields_keep_property_order() -> None:
    dtype = struct_dtype(TRIAGE)
    assert isinstance(dtype, pl.Struct)
    assert [f.name for f in dtype.fields] == ["urgency", "topic", "score"]


def test_recursive_ref_becomes_json_text() -> None:
    tree = {
        "$defs": {"node": {"type": "object", "properties": {"label": {"type": "string"},
                  "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
        "$ref": "#/$defs/node",
    }  # fmt: skip
    dtype = struct_dtype(tree)
    assert dtype == pl.Struct({"label": pl.String(), "children": pl.List(pl.String())})
    value = {"label": "root", "children": [{"label": "leaf", "children": []}]}
    cell = conform(value, tree)
    assert cell == {"label": "root", "children": ['{"children":[],"label":"leaf"}']}
    assert pl.Series("t", [cell], dtype=dtype).to_list() == [cell]


# --------------------------------------------------------------------------------------------
# conform
# --------------------------------------------------------------------------------------------


def test_conform_fills_drops_and_converts() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "x": {"type": "number"},
            "meta": {"type": "object"},
            "tags": {"type": "array", "items": {"type": "integer"}},
            "any": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        },
    }
    value = {"n": 3.0, "x": 2, "meta": {"b": [1, 2], "a": "é"}, "tags": [1.0, 2], "extra": True}
    assert conform(value, schema) == {
        "n": 3,
        "x": 2.0,
        "meta": '{"a":"é","b":[1,2]}',
        "tags": [1, 2],
        "any": None,
    }
    assert type(conform(value, schema)["n"]) is int
    assert conform(None, schema) is None
    assert conform("7", {"anyOf": [{"type": "integer"}, {"type": "string"}]}) == '"7"'


def test_conform_never_builds_a_value_the_column_cannot_hold() -> None:
    assert conform(2**70, {"type": "integer"}) is None
    assert conform(float("inf"), {"type": "number"}) is None
    assert conform(10**400, {"type": "number"}) is None
    assert conform(2.5, {"type": "integer"}) is None
    assert conform(True, {"type": "integer"}) is None
    assert conform("x", {"type": "object", "properties": {"a": {"type": "string"}}}) is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=json_schemas(), seed=st.integers(0, 2**32))
def test_any_valid_answer_fits_its_column(schema: dict[str, Any], seed: int) -> None:
    values = [schema_value(schema, _Draws(seed + i)) for i in range(3)]
    assert all(jsonschema.Draft202012Validator(schema).is_valid(v) for v in values)
    cells = [conform(v, schema) for v in values] + [None]
    series = pl.Series("c", cells, dtype=struct_dtype(schema))
    assert series.dtype == struct_dtype(schema)
    assert series.to_list() == cells
    text = [parse_answer(json.dumps(v), schema) for v in values]  # an answer round-trips
    assert text == values


# --------------------------------------------------------------------------------------------
# parse_answer
# --------------------------------------------------------------------------------------------

GOOD = {"urgency": "low", "topic": "billing"}
FORMS = {
    "bare": '{"urgency": "low", "topic": "billing"}',
    "whitespace": '\n  {"urgency":"low","topic":"billing"}  \n',
    "fence": 'Here you go:\n```json\n{"urgency": "low", "topic": "billing"}\n```\nAnything else?',
    "fence-untagged": '```\n{"urgency": "low", "topic": "billing"}\n```',
    "prose": 'Sure! {"urgency": "low", "topic": "billing"} Hope that helps.',
    "prose-with-a-brace": 'Use {curly} braces: {"urgency": "low", "topic": "billing"}',
}


@pytest.mark.parametrize("text", FORMS.values(), ids=FORMS.keys())
def test_accepted_forms(text: str) -> None:
    assert parse_answer(text, TRIAGE) == GOOD


REJECTED = {
    "enum": ('{"urgency": "urgent", "topic": "x"}', "at $.urgency: 'urgent' is not one of ['low', 'medium', 'high']"),
    "required": ('{"urgency": "low"}', "at $: 'topic' is a required property"),
    "type": ('{"urgency": "low", "topic": "x", "score": 1.5}', "at $.score: 1.5 is not of type 'integer'"),
    "syntax": ('{"urgency": "low" "topic": "x"}', "not JSON: Expecting ',' delimiter at char 18"),
    "prose-syntax": ('Here: {"urgency": "low",} ok', "not JSON: Expecting property name enclosed in double quotes at char 24"),
    "fence-syntax": ('```json\n{"urgency": }\n```', "not JSON (in the fenced block): Expecting value at char 12"),
    "two-objects": ('{"urgency": "low"} or {"urgency": "high"}', "2 JSON objects in the answer; expected exactly one"),
    "no-json": ("I cannot help with that.", "not JSON: Expecting value at char 0"),
    "empty": ("   ", "empty answer: expected JSON"),
    "nan": ('{"urgency": "low", "topic": "x", "score": NaN}', "not JSON: NaN is not valid JSON"),
    "infinity": ("Infinity", "not JSON: Infinity is not valid JSON"),
    "not-an-object": ('"low"', "at $: 'low' is not of type 'object'"),
}  # fmt: skip


@pytest.mark.parametrize(("text", "message"), REJECTED.values(), ids=REJECTED.keys())
def test_rejected_answers_say_why_in_one_line(text: str, message: str) -> None:
    with pytest.raises(InvalidAnswer) as info:
        parse_answer(text, TRIAGE)
    assert str(info.value) == message == info.value.message


def test_nested_paths_and_long_messages() -> None:
    schema = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"type": "object", "properties": {"q": {"type": "integer"}}}}
        },
    }
    with pytest.raises(InvalidAnswer, match=r"^at \$\.items\[1\]\.q: 'two' is not of type 'integer'$"):
        parse_answer('{"items": [{"q": 1}, {"q": "two"}]}', schema)
    with pytest.raises(InvalidAnswer) as info:
        parse_answer(json.dumps({"urgency": "x" * 5000, "topic": "t"}), TRIAGE)
    assert len(str(info.value)) <= 300 and "\n" not in str(info.value)


def test_hostile_answers_are_rejected_quickly() -> None:
    hostile = [
        "x" * (MAX_ANSWER_CHARS + 1),
        "[" * MAX_ANSWER_CHARS,
        '{"a":[' * (MAX_ANSWER_CHARS // 6),
        "{" * MAX_ANSWER_CHARS,
        '{"k": "' + "{" * (MAX_ANSWER_CHARS - 10),
        '{"a": {"b": 1,' * (MAX_ANSWER_CHARS // 15),
        "```json\n" * (MAX_ANSWER_CHARS // 8),
    ]
    for text in hostile:
        started = time.perf_counter()
        with pytest.raises(InvalidAnswer):
            parse_answer(text, TRIAGE)
        assert time.perf_counter() - started < 0.5, text[:30]
    with pytest.raises(InvalidAnswer, match="answer too large: 1000001 characters"):
        parse_answer("x" * (MAX_ANSWER_CHARS + 1), TRIAGE)


def test_validators_are_cached_by_content() -> None:
    reordered = dict(reversed(list(TRIAGE.items())))
    assert validator(TRIAGE) is validator(reordered)
    assert validator(TRIAGE) is not validator({"type": "object"})
    with pytest.raises(jsonschema.SchemaError):
        validator({"type": "no-such-type"})


# --------------------------------------------------------------------------------------------
# What is sent
# --------------------------------------------------------------------------------------------


def test_instructions() -> None:
    text = instructions(TRIAGE)
    assert text == instructions(json.loads(json.dumps(TRIAGE)))
    assert text.startswith("Answer with only a JSON object, no prose")
    assert text.endswith(json.dumps(TRIAGE, separators=(",", ":")))
    assert "JSON array" in instructions({"type": "array", "items": {}})
    assert "JSON value" in instructions({"enum": [1, 2]})


def test_response_format() -> None:
    assert response_format(TRIAGE, "triage") == {
        "type": "json_schema",
        "json_schema": {"name": "triage", "schema": TRIAGE, "strict": False},
    }
    assert response_format(TRIAGE, "ticket body (v2)!")["json_schema"]["name"] == "ticket_body__v2__"
    assert response_format(TRIAGE, "é" * 100)["json_schema"]["name"] == "_" * 64
    assert response_format(TRIAGE, "")["json_schema"]["name"] == "output"


def test_repair_messages() -> None:
    messages = ({"role": "system", "content": "Classify."}, {"role": "user", "content": "Ticket: help"})
    repaired = repair_messages(
        messages, '{"urgency": "urgent"}', "at $.urgency: 'urgent' is not one of [...]"
    )
    assert repaired[:2] == messages
    assert repaired[2] == {"role": "assistant", "content": '{"urgency": "urgent"}'}
    assert repaired[3]["role"] == "user"
    assert "at $.urgency: 'urgent' is not one of [...]" in repaired[3]["content"]
    assert "only the corrected JSON" in repaired[3]["content"]
    long = repair_messages(messages, "y" * 50_000, "not JSON")
    assert long[2]["content"].startswith("y" * MAX_ECHO_CHARS)
    assert len(long[2]["content"]) < MAX_ECHO_CHARS + 100
    assert long == repair_messages(messages, "y" * 50_000, "not JSON")


def test_fake_models_take_schemas_natively_without_litellm() -> None:
    code = (
        "import sys; from runtime.llm.structured import supports_native_schema as s; "
        "print(s('fake/w'), 'litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]


@pytest.mark.slow  # imports LiteLLM (about 3 s) when no earlier test did
def test_native_schema_support_of_real_models() -> None:
    assert supports_native_schema("openai/gpt-4o-mini") is True
    assert supports_native_schema("openai/no-such-model") is False
    assert supports_native_schema("nosuch/model") is False
    assert supports_native_schema("fake/anything") is True
