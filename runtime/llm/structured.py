"""Structured LLM output: JSON Schema in, a validated value and its Polars column type out.

An ``llm`` column with an ``output`` schema becomes a struct column. This module holds the
pieces that make that exact and boring:

- `struct_dtype` maps the schema to a Polars type and `conform` shapes a validated answer to
  exactly that type (one classification, `_shape`, serves both, so they cannot disagree);
- `parse_answer` reads an answer's text (bare JSON, a fenced block, or one object inside
  prose) and validates it, raising `InvalidAnswer` with a one-line message and a JSON path;
- `response_format`, `instructions`, `repair_messages` and `supports_native_schema` build
  what is sent: the schema natively when the provider takes it, else as prompt text, and a
  retry that feeds the validation error back.

Everything here is deterministic and needs neither LiteLLM nor the network, except
`supports_native_schema` for real models (it asks LiteLLM's bundled model map).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, assert_never

import jsonschema
import polars as pl
from jsonschema.exceptions import best_match

from runtime.llm.jsonref import resolve_ref

MAX_ANSWER_CHARS = 1_000_000  # longer answers are rejected before any parsing
MAX_ECHO_CHARS = 4_000  # of a bad answer repeated back to the model in a repair turn
MAX_MESSAGE_CHARS = 300  # of one InvalidAnswer message
MAX_OBJECT_CANDIDATES = 64  # "{" positions tried when looking for one object inside prose
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FENCE = re.compile(r"```[ \t]*(?:json|JSON|json5)?[ \t]*\r?\n(.*?)```", re.DOTALL)
_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


class InvalidAnswer(Exception):
    """An answer that is not JSON valid against its schema. ``str()`` is one short line for a
    person, e.g. ``at $.urgency: 'urgent' is not one of ['low', 'medium', 'high']``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------------------------
# Schema → shape → Polars type
# --------------------------------------------------------------------------------------------

Kind = Literal["string", "integer", "number", "boolean", "list", "struct", "json"]


@dataclass(frozen=True)
class _Shape:
    """What a schema's values become in a column: a scalar kind, a list of ``items``, a struct
    of ``fields`` (in property order), or ``json`` (canonical JSON text of any value)."""

    kind: Kind
    items: _Shape | None = None
    fields: tuple[tuple[str, _Shape], ...] = ()


_JSON = _Shape("json")
# Keywords that never constrain a value (annotations and schema plumbing).
_INERT = frozenset(
    {"title", "description", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly",
     "$defs", "definitions", "$schema", "$id", "$anchor"}
)  # fmt: skip
_SCALARS: dict[str, Kind] = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
}


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text, no NaN: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _shape(schema: Any, root: Mapping[str, Any], seen: frozenset[str] = frozenset()) -> _Shape:
    """The column shape of `schema` (a node of `root`). Local ``$ref``s are followed; a
    recursive one becomes ``json``. Anything not listed in `struct_dtype` is ``json``."""
    if not isinstance(schema, Mapping):
        return _JSON
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = resolve_ref(ref, root)
        if target is None or ref in seen or not _only(schema, "$ref"):
            return _JSON
        return _shape(target, root, seen | {ref})
    declared = schema.get("type")
    if declared is None:
        return _untyped_shape(schema, root, seen)
    types = [declared] if isinstance(declared, str) else declared
    if not isinstance(types, list):
        return _JSON
    non_null = [t for t in types if t != "null"]
    if len(non_null) != 1:
        return _JSON
    kind = non_null[0]
    if kind in _SCALARS:
        return _Shape(_SCALARS[kind])
    if kind == "array":
        items = schema.get("items")
        return _Shape("list", items=_shape(items, root, seen)) if isinstance(items, Mapping) else _JSON
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, Mapping) or not properties:
            return _JSON
        fields = tuple((str(name), _shape(sub, root, seen)) for name, sub in properties.items())
        return _Shape("struct", fields=fields)
    return _JSON


def _untyped_shape(schema: Mapping[str, Any], root: Mapping[str, Any], seen: frozenset[str]) -> _Shape:
    """Shapes of schemas without ``type``: an enum/const of one scalar type, or an
    ``anyOf``/``oneOf`` of one schema and ``{"type": "null"}`` (pydantic's optional)."""
    if "const" in schema:
        return _values_shape([schema["const"]])
    if isinstance(schema.get("enum"), list):
        return _values_shape(schema["enum"])
    for word in ("anyOf", "oneOf"):
        branches = schema.get(word)
        if isinstance(branches, list):
            rest = [b for b in branches if not (isinstance(b, Mapping) and dict(b) == {"type": "null"})]
            return _shape(rest[0], root, seen) if len(rest) == 1 and _only(schema, word) else _JSON
    return _JSON


def _only(schema: Mapping[str, Any], keyword: str) -> bool:
    """Whether `keyword` is the only keyword of `schema` that constrains values."""
    return all(key == keyword or key in _INERT for key in schema)


def _values_shape(values: Sequence[Any]) -> _Shape:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, str) for v in present):
        return _Shape("string")
    if present and all(isinstance(v, bool) for v in present):
        return _Shape("boolean")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return _Shape("integer")
    return _JSON


def _dtype(shape: _Shape) -> pl.DataType:
    match shape.kind:
        case "string" | "json":
            return pl.String()
        case "integer":
            return pl.Int64()
        case "number":
            return pl.Float64()
        case "boolean":
            return pl.Boolean()
        case "list":
            assert shape.items is not None
            return pl.List(_dtype(shape.items))
        case "struct":
            return pl.Struct([pl.Field(name, _dtype(sub)) for name, sub in shape.fields])
        case _:
            assert_never(shape.kind)


def struct_dtype(schema: Mapping[str, Any]) -> pl.DataType:
    """The Polars type of a column whose cells are answers valid against `schema`.

    ``object`` with ``properties`` → ``Struct`` (fields in property order); ``string``, or an
    enum/const of strings → ``String``; ``integer`` → ``Int64``; ``number`` → ``Float64``;
    ``boolean`` → ``Boolean``; ``array`` with ``items`` → ``List``; ``type: [X, "null"]``
    and ``anyOf: [X, {type: null}]`` → the type of X; local ``$ref`` is followed. Anything
    else (mixtures, objects without properties, tuples) → ``String`` holding canonical JSON.
    A pure function of the schema."""
    return _dtype(_shape(schema, schema))


def conform(value: Any, schema: Mapping[str, Any]) -> Any:
    """`value` (an answer valid against `schema`) in exactly the shape of `struct_dtype`:
    every struct field present (missing → None), extra properties dropped, integral floats
    (``3.0``) as ints, fallback fields as canonical JSON text. A value that does not fit its
    type (impossible after validation, or an integer beyond Int64) becomes None, so building
    the column never fails."""
    return _conform(value, _shape(schema, schema))


def _conform(value: Any, shape: _Shape) -> Any:
    if value is None:
        return None
    match shape.kind:
        case "json":
            try:
                return canonical_json(value)
            except (TypeError, ValueError):
                return None
        case "string":
            return value if isinstance(value, str) else None
        case "boolean":
            return value if isinstance(value, bool) else None
        case "integer":
            return _as_int(value)
        case "number":
            return _as_float(value)
        case "list":
            assert shape.items is not None
            items = shape.items
            return [_conform(v, items) for v in value] if isinstance(value, list) else None
        case "struct":
            if not isinstance(value, Mapping):
                return None
            return {name: _conform(value.get(name), sub) for name, sub in shape.fields}
        case _:
            assert_never(shape.kind)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    number = int(value)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


# --------------------------------------------------------------------------------------------
# Reading and validating an answer
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _validator(schema_text: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(schema_text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validator(schema: Mapping[str, Any]) -> jsonschema.Draft202012Validator:
    """The Draft 2020-12 validator of `schema`, built once per schema (keyed by its canonical
    JSON). ``format`` is an annotation, not checked, as the draft specifies by default.
    Raises ``jsonschema.SchemaError`` for a schema that is not valid JSON Schema."""
    return _validator(canonical_json(schema))


def parse_answer(text: str, schema: Mapping[str, Any]) -> Any:
    """The JSON value in an answer's `text`, valid against `schema`, or `InvalidAnswer`.

    Accepted forms, tried in this order: the whole text as one JSON document; the first
    fenced block (three backticks, optionally tagged ``json``); exactly one JSON object
    inside prose. NaN and Infinity are not JSON. Texts over `MAX_ANSWER_CHARS` are rejected
    before parsing. The value is returned as parsed; see `conform` for the column shape."""
    value = _read_json(text)
    error = best_match(validator(schema).iter_errors(value))
    if error is not None:
        raise InvalidAnswer(_one_line(f"at {error.json_path}: {error.message}"))
    return value


def _read_json(text: str) -> Any:
    if len(text) > MAX_ANSWER_CHARS:
        raise InvalidAnswer(f"answer too large: {len(text)} characters (the limit is {MAX_ANSWER_CHARS})")
    body = text.strip()
    if not body:
        raise InvalidAnswer("empty answer: expected JSON")
    whole = _loads(body)
    if not isinstance(whole, _Failure):
        return whole
    fence = _FENCE.search(body)
    if fence is not None:
        fenced = _loads(fence.group(1).strip())
        if isinstance(fenced, _Failure):
            raise InvalidAnswer(_one_line(f"not JSON (in the fenced block): {fenced.reason}"))
        return fenced
    found, failure = _objects_in_prose(body)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise InvalidAnswer(f"{len(found)} JSON objects in the answer; expected exactly one")
    # Prose around a broken object: the object's error says more than "Expecting value at 0".
    reason = failure.reason if failure is not None and not body.startswith(("{", "[")) else whole.reason
    raise InvalidAnswer(_one_line(f"not JSON: {reason}"))


@dataclass(frozen=True)
class _Failure:
    reason: str


def _decode_failure(exc: json.JSONDecodeError) -> _Failure:
    message = exc.msg.removesuffix(" at")  # "Unterminated string starting at"
    return _Failure(f"{message} at char {exc.pos}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _loads(text: str) -> Any:
    """The JSON value of all of `text`, or a `_Failure` saying why not."""
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        return _decode_failure(exc)
    except ValueError as exc:  # NaN / Infinity
        return _Failure(str(exc))
    except RecursionError:
        return _Failure("nested too deeply")


def _objects_in_prose(text: str) -> tuple[list[Any], _Failure | None]:
    """The top-level JSON objects found left to right in `text`, and why the first ``{``
    did not start one (if it did not). At most `MAX_OBJECT_CANDIDATES` starts are tried, so
    a hostile answer cannot make this quadratic."""
    found: list[Any] = []
    first_failure: _Failure | None = None
    start = text.find("{")
    for _ in range(MAX_OBJECT_CANDIDATES):
        if start == -1:
            break
        try:
            value, end = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            first_failure = first_failure or _decode_failure(exc)
        except (ValueError, RecursionError) as exc:
            first_failure = first_failure or _Failure(str(exc) or "nested too deeply")
        else:
            found.append(value)  # raw_decode at "{" can only return an object
            start = text.find("{", end)
            continue
        start = text.find("{", start + 1)
    return found, first_failure


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


# --------------------------------------------------------------------------------------------
# What is sent
# --------------------------------------------------------------------------------------------


def instructions(schema: Mapping[str, Any]) -> str:
    """Prompt text asking for JSON matching `schema`, for providers that cannot take a JSON
    Schema natively. Deterministic: the schema is written compactly in its own key order
    (property order is what the model is asked to follow)."""
    declared = schema.get("type")
    what = {"object": "a JSON object", "array": "a JSON array"}.get(str(declared), "a JSON value")
    text = json.dumps(schema, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return f"Answer with only {what}, no prose and no code fence, matching this JSON Schema:\n{text}"


def response_format(schema: Mapping[str, Any], name: str) -> dict[str, Any]:
    """OpenAI's ``response_format`` for `schema`; `name` is reduced to ``[a-zA-Z0-9_-]``
    (other characters become ``_``) and 64 characters. ``strict`` is off: strict mode
    rejects ordinary schemas (optional properties, ``additionalProperties`` left open);
    answers are validated here anyway."""
    clean = _NAME_CHARS.sub("_", name)[:64] or "output"
    return {"type": "json_schema", "json_schema": {"name": clean, "schema": dict(schema), "strict": False}}


def repair_messages(
    messages: Sequence[Mapping[str, Any]], answer_text: str, error_message: str
) -> tuple[dict[str, Any], ...]:
    """The messages of a retry after an invalid answer: the original `messages`, the bad
    answer as the assistant's turn (at most `MAX_ECHO_CHARS`, cut deterministically), then
    a user turn naming the error and asking for only valid JSON."""
    echo = answer_text
    if len(echo) > MAX_ECHO_CHARS:
        echo = echo[:MAX_ECHO_CHARS] + f"\n[… {len(answer_text) - MAX_ECHO_CHARS} more characters cut]"
    request = (
        f"That answer is not valid: {_one_line(error_message)}. "
        "Reply with only the corrected JSON, no prose and no code fence."
    )
    return (
        *(dict(m) for m in messages),
        {"role": "assistant", "content": echo},
        {"role": "user", "content": request},
    )


@functools.lru_cache(maxsize=256)
def supports_native_schema(model: str) -> bool:
    """Whether `model` takes a JSON Schema as ``response_format`` (else: use `instructions`).

    True for offline ``fake/`` models; otherwise LiteLLM's bundled model map decides
    (``litellm.supports_response_schema``; this imports LiteLLM). Any failure of that lookup
    (an unknown model or provider) is False: the prompt route works everywhere."""
    from runtime.llm.fake import is_fake
    from runtime.llm.transport import load_litellm

    if is_fake(model):
        return True
    litellm: Any = load_litellm()
    try:
        return bool(litellm.supports_response_schema(model=model))
    except Exception:
        return False
