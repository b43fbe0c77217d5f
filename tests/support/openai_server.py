"""A local, deterministic, OpenAI-compatible HTTP server for tests and benchmarks.

`FakeOpenAI` is a real HTTP/1.1 server (asyncio streams, keep-alive, several requests per
connection) bound to 127.0.0.1 on an ephemeral port, running its own event loop in a
background thread::

    with FakeOpenAI(latency=0.05) as server:
        server.base_url            # "http://127.0.0.1:PORT/v1"
        server.set_faults(rate_limit(retry_after=2, requests=range(1, 4)))
        ...                        # call it through LiteLLM (api_base=server.base_url) or raw HTTP
        assert server.stats().faults == {"rate_limit": 3}

As a pytest fixture::

    @pytest.fixture
    def openai_server() -> Iterator[FakeOpenAI]:
        yield from FakeOpenAI.serve(latency=0.0)

Endpoints: ``POST /v1/chat/completions`` (also ``/chat/completions``), ``GET /v1/models``
(also ``/models``), and control endpoints under ``/_fake/`` (``GET /_fake/stats``,
``POST /_fake/reset``, ``POST /_fake/faults``) which are never counted or recorded.

Answers are deterministic functions of the request: plain text is
``"reply-<8 hex> <eight words>."`` from a hash of the messages (`expected_text`); with
``response_format`` ``json_schema`` the content is JSON satisfying the schema, seeded from the
messages and the schema (`expected_json`); ``{"type": "json_object"}`` gives a small object.
`expected_content(body)` predicts the content of any normal answer. Token counts are
``ceil(len(text) / 4)`` per text (prompt: plus 3 per message and 3), see `fake_usage`.

Faults come from a script of `Rule` objects built with the helpers `rate_limit`,
`server_error`, `hang`, `malformed_json`, `truncated`, `prose`, `huge`, `disconnect` and
`missing_key`; each takes matching keywords (`Match`): ``requests`` (1-based numbers among
chat-completion requests: an int or any container such as ``range(1, 4)``), ``contains``
(substring of the last user message), ``model``, ``every`` (every Nth request), ``when`` (a
predicate on `FakeRequest`) and ``times`` (serve the fault this many times, then stop
matching). All given conditions must hold; the first rule that matches and still has
``times`` left wins.

The server is bounded: after ``max_requests`` requests, or ``max_lifetime`` seconds, it stops
by itself (the request over the cap is closed unanswered; later connections are refused).
Run as a script (``python tests/support/openai_server.py --latency 0.05``) it prints its base
URL and serves in its own process; `ServerProcess` wraps that for benchmarks, so the
server does not share the client's interpreter (and GIL).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import random
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, TypedDict, Unpack

HOST = "127.0.0.1"
CREATED = 1_700_000_000  # the fixed "created" of every answer
CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
MODELS_PATHS = frozenset({"/v1/models", "/models"})
MAX_BODY = 64 * 1024 * 1024
MAX_HEAD = 64 * 1024
DEFAULT_MODELS = ("fake-model", "gpt-4o-mini")

FaultKind = Literal[
    "rate_limit",
    "server_error",
    "hang",
    "malformed_json",
    "truncated",
    "prose",
    "huge",
    "disconnect",
    "missing_key",
]
RetryHeader = Literal["seconds", "ms", "both", "none"]
FAULT_KINDS: tuple[str, ...] = FaultKind.__args__  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# Requests, faults and rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeRequest:
    """One request as the server received it."""

    seq: int  # 1-based arrival number among all counted requests
    number: int  # 1-based number among chat-completion requests (0 for other paths)
    method: str
    path: str
    headers: Mapping[str, str]  # names lower-cased
    body: Any  # parsed JSON, or None when empty or not JSON

    @property
    def model(self) -> str | None:
        model = self.body.get("model") if isinstance(self.body, dict) else None
        return model if isinstance(model, str) else None

    @property
    def last_user_text(self) -> str:
        messages = self.body.get("messages") if isinstance(self.body, dict) else None
        if isinstance(messages, list):
            for message in reversed(messages):
                if isinstance(message, dict) and message.get("role") == "user":
                    return _message_text(message)
        return ""


@dataclass(frozen=True)
class Fault:
    """What the server does instead of a normal answer."""

    kind: FaultKind
    retry_after: float | None = 1.0  # rate_limit
    header: RetryHeader = "seconds"  # rate_limit: Retry-After, retry-after-ms, both, none
    status: int = 500  # server_error
    seconds: float = 0.0  # hang
    size: int = 10_000_000  # huge: bytes of content
    reset: bool = False  # disconnect: RST instead of FIN
    message: str | None = None  # error message override


class Match(TypedDict, total=False):
    requests: int | Collection[int]
    contains: str
    model: str
    every: int
    when: Callable[[FakeRequest], bool]
    times: int


@dataclass(frozen=True)
class Rule:
    """A fault and the requests it applies to (all given conditions must hold)."""

    fault: Fault
    requests: Collection[int] | None = None
    contains: str | None = None
    model: str | None = None
    every: int | None = None
    when: Callable[[FakeRequest], bool] | None = None
    times: int | None = None

    def matches(self, request: FakeRequest) -> bool:
        if self.requests is not None and request.number not in self.requests:
            return False
        if self.every is not None and (self.every <= 0 or request.number % self.every != 0):
            return False
        if self.model is not None and request.model != self.model:
            return False
        if self.contains is not None and self.contains not in request.last_user_text:
            return False
        return self.when is None or bool(self.when(request))


def _rule(fault: Fault, match: Match) -> Rule:
    requests = match.get("requests")
    if isinstance(requests, int):
        requests = (requests,)
    return Rule(
        fault=fault,
        requests=requests,
        contains=match.get("contains"),
        model=match.get("model"),
        every=match.get("every"),
        when=match.get("when"),
        times=match.get("times"),
    )


def rate_limit(
    retry_after: float | None = 1.0, *, header: RetryHeader = "seconds", **match: Unpack[Match]
) -> Rule:
    """429 with an OpenAI rate-limit error body and ``Retry-After`` (seconds) and/or
    ``retry-after-ms`` as `header` says (``None`` or ``"none"``: no such header)."""
    return _rule(Fault("rate_limit", retry_after=retry_after, header=header), match)


def server_error(status: int = 500, **match: Unpack[Match]) -> Rule:
    """A 5xx (500, 502, 503, ...) with an OpenAI server_error body."""
    return _rule(Fault("server_error", status=status), match)


def hang(seconds: float, **match: Unpack[Match]) -> Rule:
    """Wait `seconds` (on top of the latency) before answering normally: a client timeout."""
    return _rule(Fault("hang", seconds=seconds), match)


def malformed_json(**match: Unpack[Match]) -> Rule:
    """200 with a body that is not valid JSON (cut off mid-object)."""
    return _rule(Fault("malformed_json"), match)


def truncated(**match: Unpack[Match]) -> Rule:
    """A normal answer cut to half its content, with ``finish_reason: "length"``."""
    return _rule(Fault("truncated"), match)


def prose(**match: Unpack[Match]) -> Rule:
    """Plain prose (no JSON anywhere) even for a structured-output request."""
    return _rule(Fault("prose"), match)


def huge(size: int = 10_000_000, **match: Unpack[Match]) -> Rule:
    """A well-formed answer whose content is `size` bytes of prose."""
    return _rule(Fault("huge", size=size), match)


def disconnect(*, reset: bool = False, **match: Unpack[Match]) -> Rule:
    """Close the connection without any response (RST with `reset`)."""
    return _rule(Fault("disconnect", reset=reset), match)


def missing_key(**match: Unpack[Match]) -> Rule:
    """401 with OpenAI's ``invalid_api_key`` error body."""
    return _rule(Fault("missing_key"), match)


_FAULT_HELPERS: dict[str, Callable[..., Rule]] = {
    "rate_limit": rate_limit,
    "server_error": server_error,
    "hang": hang,
    "malformed_json": malformed_json,
    "truncated": truncated,
    "prose": prose,
    "huge": huge,
    "disconnect": disconnect,
    "missing_key": missing_key,
}


def rule_from_json(spec: Mapping[str, Any]) -> Rule:
    """A rule from JSON data: ``{"fault": "rate_limit", "retry_after": 2, "requests": [1, 2]}``.

    ``requests`` may be an int, a list of ints or ``{"start": a, "stop": b}`` (half-open)."""
    data = dict(spec)
    kind = data.pop("fault", None)
    if kind not in _FAULT_HELPERS:
        raise ValueError(f"unknown fault {kind!r}; expected one of {sorted(_FAULT_HELPERS)}")
    requests = data.get("requests")
    if isinstance(requests, dict):
        data["requests"] = range(int(requests["start"]), int(requests["stop"]))
    elif isinstance(requests, list):
        data["requests"] = frozenset(int(n) for n in requests)
    return _FAULT_HELPERS[kind](**data)


# --------------------------------------------------------------------------------------------
# Deterministic content
# --------------------------------------------------------------------------------------------

_WORDS = (
    "amber", "basil", "cedar", "delta", "ember", "fable", "glade", "harbor",
    "iris", "jasper", "kelp", "lumen", "maple", "nectar", "onyx", "pebble",
    "quartz", "raven", "sage", "tundra", "umber", "velvet", "willow", "xenon",
    "yarrow", "zephyr", "acorn", "birch", "coral", "dune", "fern", "granite",
    "heron", "indigo", "juniper", "kestrel", "lagoon", "meadow", "nimbus", "orchid",
    "prairie", "quill", "ripple", "sierra", "thistle", "upland", "vale", "wren",
    "alder", "brook", "cobalt", "drift", "estuary", "flint", "grove", "hollow",
    "inlet", "jade", "knoll", "lichen", "moss", "north", "oak", "pine",
)  # fmt: skip


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def count_tokens(text: str) -> int:
    """The fake tokenizer: one token per 4 characters, at least 1."""
    return max(1, (len(text) + 3) // 4)


def fake_usage(messages: Any, completion: str) -> dict[str, int]:
    prompt = 3
    if isinstance(messages, list):
        for message in messages:
            prompt += 3 + (count_tokens(_message_text(message)) if isinstance(message, dict) else 0)
    done = count_tokens(completion)
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


def _digest(*parts: Any) -> bytes:
    return hashlib.sha256(b"\x00".join(_canonical(p) for p in parts)).digest()


def expected_text(messages: Any, index: int = 0) -> str:
    """The plain-text answer to `messages` (choice `index`)."""
    digest = _digest(messages, index) if index else _digest(messages)
    words = " ".join(_WORDS[b % len(_WORDS)] for b in digest[4:12])
    return f"reply-{digest[:4].hex()} {words}."


def expected_json(messages: Any, schema: Any, index: int = 0) -> Any:
    """The structured answer to `messages` for a JSON `schema` (choice `index`)."""
    digest = _digest(messages, schema, index)
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    return _SchemaGen(schema, rng).value(schema, 0)


def _structured_schema(body: Mapping[str, Any]) -> tuple[bool, Any]:
    """(structured?, schema or None) from a request's response_format."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return False, None
    kind = fmt.get("type")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
            return True, spec["schema"]
        if isinstance(fmt.get("schema"), dict):
            return True, fmt["schema"]
        return True, None
    return kind == "json_object", None


def _normal_content(body: Mapping[str, Any], index: int = 0) -> str:
    messages = body.get("messages")
    structured, schema = _structured_schema(body)
    if not structured:
        return expected_text(messages, index)
    if schema is None:
        text = expected_text(messages, index)
        return json.dumps({"reply": text.split(" ", 1)[0], "text": text})
    return json.dumps(expected_json(messages, schema, index), ensure_ascii=False)


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def answer_for(body: Mapping[str, Any], index: int = 0) -> tuple[str, str]:
    """(content, finish_reason) of the normal answer to a chat-completion request body.

    A content longer than ``max_tokens`` (or ``max_completion_tokens``) fake tokens is cut to
    ``4 * max_tokens`` characters with finish_reason ``"length"``."""
    content = _normal_content(body, index)
    limit = _max_tokens(body)
    if limit is not None and count_tokens(content) > limit:
        return content[: 4 * limit], "length"
    return content, "stop"


def expected_content(body: Mapping[str, Any], index: int = 0) -> str:
    return answer_for(body, index)[0]


def _prose_content(messages: Any) -> str:
    text = expected_text(messages)
    tag, words = text.split(" ", 1)
    return f"Sure! Here is what you asked for ({tag}): {words} I hope this helps, let me know."


class _SchemaGen:
    """Small deterministic JSON-Schema instance generator (common keywords; the rest ignored)."""

    DEEP = 6  # from this depth on, only required properties and minItems
    LIMIT = 24  # beyond this depth, null

    def __init__(self, root: Any, rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        for _ in range(32):
            ref = schema.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#"):
                return schema
            target: Any = self.root
            for token in (t for t in ref[1:].split("/") if t):
                token = token.replace("~1", "/").replace("~0", "~")
                if isinstance(target, dict) and token in target:
                    target = target[token]
                elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
                    target = target[int(token)]
                else:
                    target = {}
                    break
            if not isinstance(target, dict):
                target = {}
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings}
        return schema

    @staticmethod
    def merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(a)
        for key, value in b.items():
            if key == "properties" and isinstance(value, dict):
                out[key] = {**out.get(key, {}), **value}
            elif key == "required" and isinstance(value, list):
                out[key] = list(dict.fromkeys([*out.get(key, []), *value]))
            else:
                out[key] = value
        return out

    def value(self, schema: Any, depth: int) -> Any:
        if depth > self.LIMIT:
            return None
        if schema is True or schema == {}:
            return self.words(1, 3)
        if not isinstance(schema, dict):
            return None
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return self.rng.choice(enum)
        all_of = schema.get("allOf")
        if isinstance(all_of, list):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for sub in all_of:
                if isinstance(sub, dict):
                    merged = self.merge(merged, self.resolve(sub))
            return self.value(merged, depth)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                rest = {k: v for k, v in schema.items() if k != key}
                chosen = next((o for o in options if not _is_null_schema(o)), options[0])
                return self.value(
                    self.merge(rest, self.resolve(chosen)) if isinstance(chosen, dict) else chosen, depth
                )
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = _infer_type(schema)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, depth)
        if kind == "integer":
            return self.integer(schema)
        if kind == "number":
            return self.number(schema)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self.string(schema)

    def words(self, low: int, high: int) -> str:
        return " ".join(self.rng.choice(_WORDS) for _ in range(self.rng.randint(low, high)))

    def object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        required = [r for r in schema.get("required", []) if isinstance(r, str)]
        out: dict[str, Any] = {}
        for name, sub in props.items():
            if depth >= self.DEEP and name not in required:
                continue
            out[name] = self.value(sub, depth + 1)
        extra = schema.get("additionalProperties")
        extra_schema = extra if isinstance(extra, dict) else {"type": "string"}
        for name in required:
            if name not in out:
                out[name] = self.value(extra_schema, depth + 1)
        wanted = schema.get("minProperties")
        if isinstance(wanted, int) and extra is not False:
            i = 0
            while len(out) < wanted:
                out.setdefault(f"extra_{i}", self.value(extra_schema, depth + 1))
                i += 1
        return out

    def array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        items = schema.get("items")
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems", {})
        prefix = prefix if isinstance(prefix, list) else []
        low = _count(schema.get("minItems")) or 0
        high = _count(schema.get("maxItems"))
        if depth >= self.DEEP:
            count = low
        else:
            top = max(low, 1, 3 if high is None else min(high, 3))
            count = self.rng.randint(max(low, 1), top)
        if high is not None:
            count = min(count, high)
        if items is False:
            count = min(count, len(prefix))
        item_schema = items if isinstance(items, dict) or items is True else {"type": "string"}
        unique = schema.get("uniqueItems") is True
        out: list[Any] = []
        seen: set[bytes] = set()
        attempts = 0
        while len(out) < count and attempts < 20 * count + 20:
            attempts += 1
            i = len(out)
            value = self.value(prefix[i] if i < len(prefix) else item_schema, depth + 1)
            if unique:
                key = _canonical(value)
                if key in seen:
                    continue
                seen.add(key)
            out.append(value)
        return out

    def integer(self, schema: Mapping[str, Any]) -> int:
        low, high, xlow, xhigh = _bounds(schema)
        lo = None if low is None else math.ceil(low)
        hi = None if high is None else math.floor(high)
        if xlow is not None:
            lo = max(lo, math.floor(xlow) + 1) if lo is not None else math.floor(xlow) + 1
        if xhigh is not None:
            hi = min(hi, math.ceil(xhigh) - 1) if hi is not None else math.ceil(xhigh) - 1
        if lo is None and hi is None:
            lo, hi = 0, 100
        elif lo is None:
            lo = hi - 100  # type: ignore[operator]
        elif hi is None:
            hi = lo + 100
        assert lo is not None and hi is not None
        hi = max(hi, lo)
        step = schema.get("multipleOf")
        if isinstance(step, int | float) and not isinstance(step, bool) and step > 0:
            k_lo, k_hi = math.ceil(lo / step), math.floor(hi / step)
            if k_lo <= k_hi:
                value = self.rng.randint(k_lo, k_hi) * step
                return int(value)
        return self.rng.randint(lo, hi)

    def number(self, schema: Mapping[str, Any]) -> float:
        low, high, xlow, xhigh = _bounds(schema)
        lo = max(v for v in (low, xlow) if v is not None) if low is not None or xlow is not None else None
        hi = min(v for v in (high, xhigh) if v is not None) if high is not None or xhigh is not None else None
        if lo is None and hi is None:
            lo, hi = 0.0, 100.0
        elif lo is None:
            lo = hi - 100.0  # type: ignore[operator]
        elif hi is None:
            hi = lo + 100.0
        assert lo is not None and hi is not None
        hi = max(hi, lo)

        def ok(v: float) -> bool:
            return (
                (low is None or v >= low)
                and (high is None or v <= high)
                and (xlow is None or v > xlow)
                and (xhigh is None or v < xhigh)
            )

        step = schema.get("multipleOf")
        if isinstance(step, int | float) and not isinstance(step, bool) and step > 0:
            k_lo, k_hi = math.ceil(lo / step), math.floor(hi / step)
            if k_lo <= k_hi:
                start = self.rng.randint(k_lo, k_hi)
                for k in [*range(start, min(k_hi, start + 50) + 1), *range(k_lo, min(k_hi, k_lo + 50) + 1)]:
                    v = float(round(k * step, 12))
                    q = v / step
                    if ok(v) and q == int(q):
                        return v
        for _ in range(8):
            v = round(lo + (hi - lo) * (0.05 + 0.9 * self.rng.random()), 2)
            if ok(v):
                return v
        return (lo + hi) / 2

    def string(self, schema: Mapping[str, Any]) -> str:
        rng = self.rng
        fmt = schema.get("format")
        if fmt == "date":
            text = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        elif fmt == "date-time":
            text = (
                f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"
            )
        elif fmt == "time":
            text = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"
        elif fmt in ("email", "idn-email"):
            text = f"{rng.choice(_WORDS)}{rng.randint(1, 999)}@example.com"
        elif fmt in ("uri", "url", "iri", "uri-reference"):
            text = f"https://example.com/{rng.choice(_WORDS)}"
        elif fmt == "uuid":
            text = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        elif fmt == "ipv4":
            text = f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        elif fmt in ("hostname", "idn-hostname"):
            text = f"{rng.choice(_WORDS)}.example.com"
        else:
            text = self.words(1, 4)
        low = _count(schema.get("minLength")) or 0
        high = _count(schema.get("maxLength"))
        while len(text) < low:
            text = f"{text} {rng.choice(_WORDS)}"
        if high is not None and len(text) > high:
            text = text[:high]
            if text.endswith(" ") and len(text) - 1 >= low:
                text = text[:-1]
        return text


def _is_null_schema(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"


def _infer_type(schema: Mapping[str, Any]) -> str:
    if any(k in schema for k in ("properties", "required", "additionalProperties", "minProperties")):
        return "object"
    if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
        return "number"
    return "string"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _bounds(schema: Mapping[str, Any]) -> tuple[float | None, float | None, float | None, float | None]:
    low, high = _num(schema.get("minimum")), _num(schema.get("maximum"))
    xlow, xhigh = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    # draft 4: boolean exclusiveMinimum/Maximum modify minimum/maximum
    if xlow is True:
        xlow, low = low, None
    if xhigh is True:
        xhigh, high = high, None
    return low, high, _num(xlow), _num(xhigh)


# --------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------

_REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _error_body(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}}).encode()


def _completion(body: Mapping[str, Any], choices: list[tuple[str, str]]) -> dict[str, Any]:
    messages = body.get("messages")
    model = body.get("model")
    usage = fake_usage(messages, "")
    usage["completion_tokens"] = sum(count_tokens(content) for content, _ in choices)
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return {
        "id": f"chatcmpl-{_digest(body).hex()[:24]}",
        "object": "chat.completion",
        "created": CREATED,
        "model": model if isinstance(model, str) else "fake-model",
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }
            for i, (content, finish) in enumerate(choices)
        ],
        "usage": usage,
        "system_fingerprint": "fp_synthc_fake",
    }


def _sse(completion: Mapping[str, Any], include_usage: bool) -> bytes:
    base = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
        "system_fingerprint": completion["system_fingerprint"],
    }
    events: list[dict[str, Any]] = []
    for choice in completion["choices"]:
        i, content = choice["index"], choice["message"]["content"]
        events.append(
            {
                **base,
                "choices": [
                    {"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                ],
            }
        )
        size = max(1, math.ceil(len(content) / 4))
        for start in range(0, len(content), size):
            piece = content[start : start + size]
            events.append(
                {**base, "choices": [{"index": i, "delta": {"content": piece}, "finish_reason": None}]}
            )
        events.append(
            {**base, "choices": [{"index": i, "delta": {}, "finish_reason": choice["finish_reason"]}]}
        )
    if include_usage:
        events.append({**base, "choices": [], "usage": completion["usage"]})
    parts = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------

Latency = float | Callable[[FakeRequest], float]


@dataclass(frozen=True)
class Stats:
    """A snapshot of the server's counters (control endpoints are never counted)."""

    total_requests: int
    chat_requests: int
    by_path: dict[str, int]
    by_model: dict[str, int]
    by_status: dict[int, int]
    faults: dict[str, int]
    in_flight: int
    peak_in_flight: int
    connections: int
    internal_errors: int

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["by_status"] = {str(k): v for k, v in self.by_status.items()}
        return data


@dataclass
class _Counters:
    total: int = 0
    chat: int = 0
    by_path: Counter[str] = field(default_factory=Counter)
    by_model: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    peak: int = 0
    connections: int = 0
    requests: list[FakeRequest] = field(default_factory=list)
    internal_errors: list[str] = field(default_factory=list)


class FakeOpenAI:
    """A local OpenAI-compatible server on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        latency: Latency = 0.0,
        *,
        faults: Sequence[Rule] = (),
        require_auth: bool = False,
        models: Sequence[str] = DEFAULT_MODELS,
        max_requests: int = 100_000,
        max_lifetime: float = 300.0,
        record: bool = True,
        port: int = 0,
    ) -> None:
        self._lock = threading.Lock()
        self._latency: Latency = latency
        self._rules: list[Rule] = list(faults)
        self._used: list[int] = [0] * len(self._rules)
        self._require_auth = require_auth
        self._models = tuple(models)
        self.max_requests = max_requests
        self.max_lifetime = max_lifetime
        self._record = record
        self._port = port
        self._c = _Counters()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._stop_event: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._stopping = False
        self.stop_reason: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> FakeOpenAI:
        if self._thread is not None:
            raise RuntimeError("FakeOpenAI is already started (a server runs once)")
        self._thread = threading.Thread(target=self._run, name="fake-openai", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError("FakeOpenAI did not start in time")
        if self._error is not None:
            self._thread.join(timeout)
            raise RuntimeError(f"FakeOpenAI failed to start: {self._error!r}") from self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed: it stopped by itself
                loop.call_soon_threadsafe(self._request_stop, "stopped")
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError("FakeOpenAI did not stop in time")

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @classmethod
    def serve(cls, latency: Latency = 0.0, **kwargs: Any) -> Generator[FakeOpenAI, None, None]:
        """For pytest fixtures: ``yield from FakeOpenAI.serve(latency=0.01)``."""
        with cls(latency, **kwargs) as server:
            yield server

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped (by `stop`, a cap or its lifetime)."""
        return self._stopped.wait(timeout)

    @property
    def running(self) -> bool:
        return self._ready.is_set() and not self._stopped.is_set()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self._port}/v1"

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self._port}{path}"

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server's thread (Linux/Unix; 0.0 where unavailable)."""
        thread = self._thread
        if thread is None or thread.ident is None or not hasattr(time, "pthread_getcpuclockid"):
            return 0.0
        try:
            return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except OSError:  # the thread has ended
            return 0.0

    # ---- configuration (thread-safe, effective for the next request) ----------------------

    @property
    def latency(self) -> Latency:
        with self._lock:
            return self._latency

    @latency.setter
    def latency(self, value: Latency) -> None:
        with self._lock:
            self._latency = value

    @property
    def require_auth(self) -> bool:
        with self._lock:
            return self._require_auth

    @require_auth.setter
    def require_auth(self, value: bool) -> None:
        with self._lock:
            self._require_auth = value

    def set_faults(self, *rules: Rule) -> None:
        """Replace the fault script (with fresh `times` counts)."""
        with self._lock:
            self._rules = list(rules)
            self._used = [0] * len(self._rules)

    def add_fault(self, rule: Rule) -> None:
        with self._lock:
            self._rules.append(rule)
            self._used.append(0)

    def clear_faults(self) -> None:
        self.set_faults()

    def reset(self) -> None:
        """Zero all counters and records, restart request numbering and the fault script's
        `times` counts (latency and rules stay)."""
        with self._lock:
            in_flight = self._c.in_flight
            self._c = _Counters(in_flight=in_flight, peak=in_flight)
            self._used = [0] * len(self._rules)

    # ---- observation ----------------------------------------------------------------------

    def stats(self) -> Stats:
        with self._lock:
            c = self._c
            return Stats(
                total_requests=c.total,
                chat_requests=c.chat,
                by_path=dict(c.by_path),
                by_model=dict(c.by_model),
                by_status=dict(c.by_status),
                faults=dict(c.faults),
                in_flight=c.in_flight,
                peak_in_flight=c.peak,
                connections=c.connections,
                internal_errors=len(c.internal_errors),
            )

    @property
    def total_requests(self) -> int:
        with self._lock:
            return self._c.total

    @property
    def chat_requests(self) -> int:
        with self._lock:
            return self._c.chat

    @property
    def peak_in_flight(self) -> int:
        with self._lock:
            return self._c.peak

    @property
    def faults_served(self) -> dict[str, int]:
        with self._lock:
            return dict(self._c.faults)

    @property
    def requests(self) -> list[FakeRequest]:
        """Every counted request, in arrival order (empty with ``record=False``)."""
        with self._lock:
            return list(self._c.requests)

    @property
    def internal_errors(self) -> list[str]:
        """Tracebacks of bugs in the fake itself (each answered with a 500); should stay empty."""
        with self._lock:
            return list(self._c.internal_errors)

    @property
    def bodies(self) -> list[Any]:
        """Parsed JSON bodies of the chat-completion requests, in arrival order."""
        return [r.body for r in self.requests if r.number]

    @property
    def headers(self) -> list[Mapping[str, str]]:
        """Headers (lower-cased names) of the chat-completion requests, in arrival order."""
        return [r.headers for r in self.requests if r.number]

    # ---- event loop -----------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as error:  # reported by start(); the thread must end quietly
            self._error = error
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._stopped.set()
            self._ready.set()

    def _request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()

    async def _main(self) -> None:
        self._stop_event = asyncio.Event()
        server = await asyncio.start_server(
            self._on_connection, HOST, self._port, limit=MAX_HEAD, backlog=2048
        )
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await asyncio.wait_for(self._stop_event.wait(), self.max_lifetime)
        except TimeoutError:
            self._request_stop("max_lifetime")
        self._stopping = True
        server.close()
        for _ in range(10):
            for writer in list(self._writers):
                writer.transport.abort()
            tasks = list(self._tasks)
            if not tasks:
                break
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=2.0)
            await asyncio.sleep(0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2.0)

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        with self._lock:
            self._c.connections += 1
        try:
            while not self._stopping and await self._serve_one(reader, writer):
                pass
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except Exception as error:  # a bug in the fake itself: recorded, and answered with a 500
            with self._lock:
                self._c.internal_errors.append("".join(traceback.format_exception(error)))
            body = _error_body(f"fake server bug: {error!r}", "fake_server_bug", None)
            with contextlib.suppress(Exception):
                await self._send(writer, 500, body, False, count=False)
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read and answer one request; False when the connection must end."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # end of stream
        except asyncio.LimitOverrunError:
            await self._send(
                writer, 431, _error_body("Request headers too large", "invalid_request_error", None), False
            )
            return False
        try:
            method, target, headers, keep_alive = _parse_head(head)
            if headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            raw = await _read_body(reader, headers)
        except _HttpError as error:
            await self._send(
                writer, error.status, _error_body(error.message, "invalid_request_error", None), False
            )
            return False

        path = urllib.parse.urlsplit(target).path if target.startswith("http") else target.split("?", 1)[0]
        if path.startswith("/_fake/"):
            return await self._control(method, path, raw, writer, keep_alive)

        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        is_chat = path in CHAT_PATHS and method == "POST"
        with self._lock:
            c = self._c
            c.total += 1
            seq = c.total
            c.by_path[path] += 1
            number = 0
            if is_chat:
                c.chat += 1
                number = c.chat
            request = FakeRequest(seq, number, method, path, headers, body)
            if self._record:
                c.requests.append(request)
        if seq > self.max_requests:
            self._request_stop("max_requests")
            return False

        if path in CHAT_PATHS:
            if method != "POST":
                return await self._send(
                    writer,
                    405,
                    _error_body(f"Method {method} not allowed", "invalid_request_error", None),
                    keep_alive,
                )
            return await self._chat(request, writer, keep_alive)
        if path in MODELS_PATHS and method == "GET":
            data = {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": CREATED, "owned_by": "synthc-fake"}
                    for m in self._models
                ],
            }
            return await self._send(writer, 200, json.dumps(data).encode(), keep_alive)
        return await self._send(
            writer,
            404,
            _error_body(f"Invalid URL ({method} {path})", "invalid_request_error", "unknown_url"),
            keep_alive,
        )

    async def _control(
        self, method: str, path: str, raw: bytes, writer: asyncio.StreamWriter, keep_alive: bool
    ) -> bool:
        if path == "/_fake/stats" and method == "GET":
            data = self.stats().to_json()
            data["cpu_seconds"] = self.cpu_seconds()
            return await self._send(writer, 200, json.dumps(data).encode(), keep_alive, count=False)
        if path == "/_fake/reset" and method == "POST":
            self.reset()
            return await self._send(writer, 200, b"{}", keep_alive, count=False)
        if path == "/_fake/faults" and method == "POST":
            try:
                specs = json.loads(raw or b"[]")
                self.set_faults(*(rule_from_json(s) for s in specs))
            except (ValueError, TypeError, KeyError) as error:
                return await self._send(
                    writer,
                    400,
                    _error_body(str(error), "invalid_request_error", None),
                    keep_alive,
                    count=False,
                )
            return await self._send(writer, 200, b"{}", keep_alive, count=False)
        return await self._send(
            writer,
            404,
            _error_body("unknown control path", "invalid_request_error", None),
            keep_alive,
            count=False,
        )

    def _pick(self, request: FakeRequest) -> tuple[Fault | None, Latency]:
        with self._lock:
            latency = self._latency
            fault: Fault | None = None
            if self._require_auth and not request.headers.get("authorization", "").startswith("Bearer "):
                fault = Fault("missing_key")
            else:
                for i, rule in enumerate(self._rules):
                    if rule.times is not None and self._used[i] >= rule.times:
                        continue
                    if rule.matches(request):
                        self._used[i] += 1
                        fault = rule.fault
                        break
            if fault is not None:
                self._c.faults[fault.kind] += 1
            return fault, latency

    async def _chat(self, request: FakeRequest, writer: asyncio.StreamWriter, keep_alive: bool) -> bool:
        body = request.body
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            message = (
                "We could not parse the JSON body of your request."
                if body is None
                else "Missing required parameter: 'messages'."
            )
            return await self._send(
                writer, 400, _error_body(message, "invalid_request_error", None), keep_alive
            )
        with self._lock:
            c = self._c
            c.by_model[str(body.get("model"))] += 1
            c.in_flight += 1
            c.peak = max(c.peak, c.in_flight)
        finished = False

        def finish() -> None:  # under the lock: no longer in flight (before the client sees it)
            nonlocal finished
            if not finished:
                finished = True
                self._c.in_flight = max(0, self._c.in_flight - 1)

        try:
            fault, latency = self._pick(request)
            delay = latency(request) if callable(latency) else latency
            if delay > 0:
                await asyncio.sleep(delay)
            return await self._answer(request, body, fault, writer, keep_alive, finish)
        finally:
            with self._lock:
                finish()

    async def _answer(
        self,
        request: FakeRequest,
        body: dict[str, Any],
        fault: Fault | None,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
        finish: Callable[[], None],
    ) -> bool:
        kind = fault.kind if fault is not None else None
        if fault is not None and kind == "missing_key":
            message = fault.message
            if message is None:
                absent = "authorization" not in request.headers
                message = (
                    "You didn't provide an API key. You need to provide your API key in an Authorization "
                    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                    if absent
                    else "Incorrect API key provided. You can find your API key at "
                    "https://platform.openai.com/account/api-keys."
                )
            return await self._send(
                writer,
                401,
                _error_body(message, "invalid_request_error", "invalid_api_key"),
                keep_alive,
                before=finish,
            )
        if fault is not None and kind == "rate_limit":
            headers: list[tuple[str, str]] = [
                ("x-ratelimit-limit-requests", "60"),
                ("x-ratelimit-remaining-requests", "0"),
            ]
            after = fault.retry_after
            if after is not None and fault.header in ("seconds", "both"):
                headers.append(("Retry-After", str(int(after)) if float(after).is_integer() else str(after)))
            if after is not None and fault.header in ("ms", "both"):
                headers.append(("retry-after-ms", str(round(after * 1000))))
            message = fault.message or (
                f"Rate limit reached for {request.model} on requests per min (RPM): Limit 60, Used 60, "
                f"Requested 1. Please try again in {after}s."
            )
            return await self._send(
                writer,
                429,
                _error_body(message, "requests", "rate_limit_exceeded"),
                keep_alive,
                headers,
                before=finish,
            )
        if fault is not None and kind == "server_error":
            message = (
                fault.message or "The server had an error while processing your request. Sorry about that!"
            )
            return await self._send(
                writer, fault.status, _error_body(message, "server_error", None), keep_alive, before=finish
            )
        if fault is not None and kind == "disconnect":
            if fault.reset:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with self._lock:
                finish()
            writer.transport.abort()
            return False
        if fault is not None and kind == "hang":
            await asyncio.sleep(fault.seconds)

        messages = body.get("messages")
        n = body.get("n")
        count = n if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 16 else 1
        choices = [answer_for(body, i) for i in range(count)]
        if kind == "truncated":
            choices = [(content[: max(1, len(content) // 2)], "length") for content, _ in choices]
        elif kind == "prose":
            choices = [(_prose_content(messages), "stop") for _ in choices]
        elif fault is not None and kind == "huge":
            unit = _prose_content(messages) + " "
            text = (unit * (fault.size // len(unit) + 1))[: fault.size]
            choices = [(text, "stop") for _ in choices]
        completion = _completion(body, choices)
        stream = body.get("stream") is True
        if kind == "malformed_json":
            payload = json.dumps(completion).encode()
            cut = payload[: max(1, len(payload) // 2)]
            data = b"data: " + cut + b"\n\ndata: [DONE]\n\n" if stream else cut
            ctype = "text/event-stream" if stream else "application/json"
            return await self._send(writer, 200, data, keep_alive, content_type=ctype, before=finish)
        if stream:
            options = body.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            return await self._send(
                writer,
                200,
                _sse(completion, usage),
                keep_alive,
                content_type="text/event-stream",
                before=finish,
            )
        return await self._send(
            writer, 200, json.dumps(completion, ensure_ascii=False).encode(), keep_alive, before=finish
        )

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        keep_alive: bool,
        extra: Sequence[tuple[str, str]] = (),
        content_type: str = "application/json",
        before: Callable[[], None] | None = None,
        count: bool = True,
    ) -> bool:
        """Write one response; counters are updated before the client can see it."""
        keep_alive = keep_alive and not self._stopping
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
            "Server: synthc-fake-openai",
            *(f"{name}: {value}" for name, value in extra),
        ]
        with self._lock:
            if count:
                self._c.by_status[status] += 1
            if before is not None:
                before()
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        return keep_alive


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str], bool]:
    lines = head[:-4].decode("latin-1").split("\r\n")
    while lines and not lines[0]:
        lines.pop(0)  # RFC 9112: ignore empty lines before the request line
    parts = lines[0].split(" ") if lines else []
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise _HttpError(400, "Malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _HttpError(400, "Malformed header line")
        key, value = name.lower(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    return method, target, headers, keep_alive


async def _read_body(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> bytes:
    encoding = headers.get("transfer-encoding")
    if encoding is not None:
        if encoding.split(",")[-1].strip().lower() != "chunked":
            raise _HttpError(501, f"Unsupported Transfer-Encoding {encoding!r}")
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except (ValueError, asyncio.LimitOverrunError) as error:
                raise _HttpError(400, "Malformed chunked body") from error
            if size < 0 or total + size > MAX_BODY:
                raise _HttpError(413, "Request body too large")
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            total += size
            if await reader.readexactly(2) != b"\r\n":
                raise _HttpError(400, "Malformed chunked body")
    length = headers.get("content-length")
    if length is None:
        return b""
    try:
        size = int(length)
    except ValueError as error:
        raise _HttpError(400, "Invalid Content-Length") from error
    if size < 0:
        raise _HttpError(400, "Invalid Content-Length")
    if size > MAX_BODY:
        raise _HttpError(413, "Request body too large")
    return await reader.readexactly(size)


# --------------------------------------------------------------------------------------------
# In its own process (benchmarks)
# --------------------------------------------------------------------------------------------


class ServerProcess:
    """`FakeOpenAI` in a child process (so it does not share the client's GIL)::

    with ServerProcess(latency=0.05) as server:
        server.base_url; server.stats()["total_requests"]; server.set_faults([...json rules...])
    """

    def __init__(
        self,
        latency: float = 0.0,
        *,
        faults: Sequence[Mapping[str, Any]] = (),
        require_auth: bool = False,
        max_requests: int = 1_000_000,
        max_lifetime: float = 900.0,
        record: bool = False,
        start_timeout: float = 20.0,
    ) -> None:
        self.args = [
            sys.executable,
            __file__,
            "--latency",
            repr(float(latency)),
            "--max-requests",
            str(max_requests),
            "--max-lifetime",
            repr(float(max_lifetime)),
            "--faults",
            json.dumps(list(faults)),
        ]
        if require_auth:
            self.args.append("--require-auth")
        if record:
            self.args.append("--record")
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> ServerProcess:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            ready = selector.select(self.start_timeout)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line.startswith("http://127.0.0.1:"):
            self.__exit__(None, None, None)
            raise RuntimeError(f"fake OpenAI server process did not start (got {line!r})")
        self.base_url = line
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()

    def _control(self, method: str, path: str, data: Any = None) -> Any:
        root = self.base_url.rsplit("/v1", 1)[0]
        payload = None if data is None else json.dumps(data).encode()
        request = urllib.request.Request(root + path, data=payload, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        """The server's `Stats` as JSON, plus ``cpu_seconds`` of its serving thread."""
        result: dict[str, Any] = self._control("GET", "/_fake/stats")
        return result

    def reset(self) -> None:
        self._control("POST", "/_fake/reset", {})

    def set_faults(self, rules: Sequence[Mapping[str, Any]]) -> None:
        """Replace the fault script (`rule_from_json` format)."""
        self._control("POST", "/_fake/faults", list(rules))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI-compatible API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--max-lifetime", type=float, default=900.0)
    parser.add_argument("--faults", default="[]", help="JSON list of rules (see rule_from_json)")
    parser.add_argument("--require-auth", action="store_true")
    parser.add_argument("--record", action="store_true", help="keep every request (memory grows)")
    args = parser.parse_args(argv)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    rules = [rule_from_json(spec) for spec in json.loads(args.faults)]
    server = FakeOpenAI(
        args.latency,
        faults=rules,
        require_auth=args.require_auth,
        max_requests=args.max_requests,
        max_lifetime=args.max_lifetime,
        record=args.record,
        port=args.port,
    )
    with server, contextlib.suppress(KeyboardInterrupt):
        print(server.base_url, flush=True)
        while not server.wait(1.0):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
