"""Offline ``fake/`` models: deterministic answers served through LiteLLM's custom providers.

A model string ``fake/<anything>`` (``fake/writer``) is answered locally, without network,
key or cost, by a ``litellm.CustomLLM`` registered once when LiteLLM is loaded
(`register`, called by `runtime.llm.transport.load_litellm`). Requests go through the same
``litellm.acompletion`` path as real ones, so everything around the call is exercised.

The answer (`respond`) is a pure function of (model, messages, response_format,
max_tokens, seed): a stable hash of them seeds a private generator (so, as with a real
model, another provider ``seed`` gives another answer to the same prompt), and only its ``random()`` is
used (the one method Python promises to keep stable across versions). No clock, no global
randomness. Plain text is a few plausible English sentences; with a ``json_schema``
response format the answer is JSON valid against the schema (generated from it, then
checked with jsonschema); with ``json_object`` it is a small object.

Front ends label these models with `FAKE_LABEL` wherever they name one (`is_fake`).
Importing this module does not import LiteLLM.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from runtime.llm.jsonref import resolve_ref

if TYPE_CHECKING:
    import jsonschema

PROVIDER = "fake"
FAKE_LABEL = "(fake model: offline, not a real LLM)"
CREATED = 1_700_000_000  # the fixed "created" of every answer: never the clock
MAX_DEPTH = 12  # below this nesting depth generated objects keep only required properties
_GIVE_UP_DEPTH = 40  # a schema that recurses through required properties this deep gets null
_ATTEMPTS = 8  # generated JSON is validated; invalid drafts are regenerated this often


def is_fake(model: str) -> bool:
    """Whether `model` names an offline fake model (``fake/<name>``)."""
    return model.startswith(f"{PROVIDER}/") and len(model) > len(PROVIDER) + 1


@dataclass(frozen=True)
class FakeAnswer:
    """What a fake model answers. ``finish_reason`` is ``"length"`` only when plain text had
    to be cut mid-sentence to fit ``max_tokens``; token counts are ``ceil(chars / 4)``."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


def respond(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    response_format: Mapping[str, Any] | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
) -> FakeAnswer:
    """The fake model's answer; a pure function of its arguments (see the module's doc).
    Other parameters (temperature, top_p, ...) do not change it."""
    draws = _Draws(_seed(model, messages, response_format, max_tokens, seed))
    kind = response_format.get("type") if response_format else None
    finish = "stop"
    if kind == "json_schema" and response_format is not None:
        schema = _schema_of(response_format)
        text = json.dumps(schema_value(schema, draws), ensure_ascii=False, separators=(", ", ": "))
    elif kind == "json_object":
        text = json.dumps({"answer": _sentence(draws), "confidence": round(draws.unit(), 2)})
    else:
        text, finish = _prose(draws, None if max_tokens is None else max(1, max_tokens) * 4)
    return FakeAnswer(text, finish, _prompt_tokens(messages), count_tokens(text))


def count_tokens(text: str) -> int:
    """The fake models' token count: ``ceil(len(text) / 4)``."""
    return math.ceil(len(text) / 4)


def _prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    # As OpenAI counts chat prompts, roughly: the texts plus 3 per message and 3 for the reply.
    return sum(count_tokens(_content_text(m.get("content"))) + 3 for m in messages) + 3


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: count their text
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return "" if content is None else json.dumps(content, sort_keys=True, default=str)


def _seed(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    response_format: Any,
    max_tokens: int | None,
    seed: int | None,
) -> int:
    payload = json.dumps(
        [model, [dict(m) for m in messages], response_format, max_tokens, seed],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return int.from_bytes(hashlib.sha256(payload.encode()).digest()[:16], "big")


def _schema_of(response_format: Mapping[str, Any]) -> Any:
    spec = response_format.get("json_schema")
    return spec.get("schema", {}) if isinstance(spec, Mapping) else {}


class _Draws:
    """Uniform draws from a seeded generator; only ``random()`` is used (version-stable)."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def unit(self) -> float:
        return self._random.random()

    def below(self, n: int) -> int:
        return min(int(self.unit() * n), n - 1)

    def between(self, low: int, high: int) -> int:
        return low + self.below(high - low + 1) if high > low else low

    def chance(self, p: float) -> bool:
        return self.unit() < p

    def pick(self, items: Sequence[Any]) -> Any:
        return items[self.below(len(items))]


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------

_OPENERS = (
    "", "", "", "Honestly, ", "Overall, ", "To be fair, ", "Unfortunately, ", "In short, ",
    "Since last Monday, ", "As far as I can tell, ",
)  # fmt: skip
_SUBJECTS = (
    "the device", "the new update", "our order", "the support team", "this product", "the delivery",
    "the app", "the manual", "the battery", "the screen", "the checkout page", "the replacement",
    "the invoice", "the subscription", "the setup process", "the latest release",
)  # fmt: skip
_PREDICATES = (
    "arrived two days late", "works better than expected", "stopped responding after the last update",
    "feels solid and well made", "needs a clearer set of instructions", "was easy to set up",
    "keeps asking me to sign in again", "handled the problem quickly", "is exactly what we needed",
    "could use a longer battery life", "shows an error when I try to pay", "made the whole process simple",
    "charged me twice this month", "runs smoothly on older hardware", "took far too long to load",
    "solved an issue we had for weeks",
)  # fmt: skip
_TAILS = (
    "", "", "", " and I would like to know why", ", which surprised me", " after only a week",
    " on the first try", " every single morning", ", so I am writing to ask for help",
    " despite the good reviews", " for the whole team",
)  # fmt: skip
_ADJECTIVES = (
    "quick", "late", "billing", "broken", "friendly", "missing", "new", "slow", "reliable", "premium",
    "simple", "annual", "urgent", "minor", "secure", "local",
)  # fmt: skip
_NOUNS = (
    "delivery", "question", "refund", "account", "screen", "update", "order", "invoice", "battery",
    "request", "feature", "password", "report", "schedule", "payment", "review",
)  # fmt: skip
_NAMES = ("alex", "sam", "maria", "li", "noah", "ana", "omar", "jo", "kim", "lena")


def _sentence(draws: _Draws) -> str:
    opener = draws.pick(_OPENERS)
    subject = draws.pick(_SUBJECTS)
    clause = f"{subject} {draws.pick(_PREDICATES)}{draws.pick(_TAILS)}"
    text = f"{opener}{clause}" if opener else clause
    return text[0].upper() + text[1:] + "."


def _prose(draws: _Draws, limit: int | None) -> tuple[str, str]:
    """Two to five sentences; at most `limit` characters (whole sentences when one fits,
    else the first one cut at a word: finish reason ``"length"``)."""
    sentences = [_sentence(draws) for _ in range(draws.between(2, 5))]
    text = " ".join(sentences)
    if limit is None or len(text) <= limit:
        return text, "stop"
    kept = ""
    for sentence in sentences:
        candidate = f"{kept} {sentence}" if kept else sentence
        if len(candidate) > limit:
            break
        kept = candidate
    if kept:
        return kept, "stop"
    cut = sentences[0][:limit]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut), "length"


# --------------------------------------------------------------------------------------------
# JSON from a schema
# --------------------------------------------------------------------------------------------


def schema_value(schema: Any, draws: _Draws | None = None) -> Any:
    """A JSON value valid against `schema` (JSON Schema 2020-12), deterministic per `draws`.

    Handles objects (required and some optional properties, ``minProperties``), arrays
    (``items``, ``prefixItems``, ``minItems``/``maxItems``, ``uniqueItems``), ``enum``,
    ``const``, strings (``minLength``/``maxLength``, common ``format``s), integers and
    numbers (bounds, exclusive bounds, integer ``multipleOf``), booleans, null, type lists,
    ``allOf``/``anyOf``/``oneOf`` and local ``$ref``. Not ``pattern``, ``not``, or
    conditionals: a draft is validated and regenerated a few times, and the last draft is
    returned even if invalid (the caller's validation then sees a realistic bad answer)."""
    draws = draws if draws is not None else _Draws(0)
    check = _checker(schema)
    value = _Generator(schema, draws).value(schema, 0)
    for _ in range(_ATTEMPTS - 1):
        if check is None or check.is_valid(value):
            break
        value = _Generator(schema, draws).value(schema, 0)
    return value


def _checker(schema: Any) -> jsonschema.Draft202012Validator | None:
    import jsonschema  # here, not at the top: `is_fake` and `FAKE_LABEL` stay cheap to import

    try:
        return _cached_checker(json.dumps(schema, sort_keys=True, separators=(",", ":")))
    except (TypeError, ValueError, jsonschema.SchemaError):
        return None  # not JSON or not a schema: nothing to check against


@functools.lru_cache(maxsize=128)
def _cached_checker(text: str) -> jsonschema.Draft202012Validator:
    import jsonschema

    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


class _Generator:
    """Walks one schema; `value` is the entry point for any node."""

    def __init__(self, root: Any, draws: _Draws) -> None:
        self.root = root
        self.draws = draws

    def value(self, schema: Any, depth: int) -> Any:
        if schema is True or not isinstance(schema, Mapping):
            return self._string({}) if schema is not False else None
        if depth > _GIVE_UP_DEPTH:
            return None
        schema = self._flatten(schema, depth)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self.draws.pick(schema["enum"])
        match self._type(schema):
            case "object":
                return self._object(schema, depth)
            case "array":
                return self._array(schema, depth)
            case "integer":
                return self._integer(schema)
            case "number":
                return self._number(schema)
            case "boolean":
                return self.draws.chance(0.5)
            case "null":
                return None
            case _:
                return self._string(schema)

    def _flatten(self, schema: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
        """`schema` with ``$ref``, ``allOf`` and one chosen ``anyOf``/``oneOf`` branch merged in."""
        for _ in range(_GIVE_UP_DEPTH - depth):
            merged = dict(schema)
            parts: list[Any] = []
            ref = merged.pop("$ref", None)
            if isinstance(ref, str):
                target = resolve_ref(ref, self.root)
                parts.append({} if target is None else target)
            parts.extend(merged.pop("allOf", None) or [])
            for word in ("anyOf", "oneOf"):
                branches = merged.pop(word, None)
                if isinstance(branches, list) and branches:
                    parts.append(self._branch(branches))
            if not parts:
                return schema
            for part in parts:
                merged = _merge(merged, part) if isinstance(part, Mapping) else merged
            schema = merged
        return schema

    def _branch(self, branches: list[Any]) -> Any:
        useful = [b for b in branches if not (isinstance(b, Mapping) and b.get("type") == "null")]
        return self.draws.pick(useful or branches)

    def _type(self, schema: Mapping[str, Any]) -> str:
        declared = schema.get("type")
        if isinstance(declared, list):
            non_null = [t for t in declared if t != "null"]
            return str(self.draws.pick(non_null)) if non_null else "null"
        if isinstance(declared, str):
            return declared
        if "properties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        return "string"

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        required = [str(r) for r in schema.get("required") or []]
        result: dict[str, Any] = {}
        for name, sub in properties.items():
            if name in required or (depth < MAX_DEPTH and self.draws.chance(0.75)):
                result[name] = self.value(sub, depth + 1)
        extra = schema.get("additionalProperties", True)
        for name in required:
            if name not in result:
                result[name] = self.value(extra if isinstance(extra, Mapping) else {}, depth + 1)
        wanted = int(schema.get("minProperties") or 0)
        n = 0
        while len(result) < wanted and extra is not False:
            n += 1
            result.setdefault(
                f"field_{n}", self.value(extra if isinstance(extra, Mapping) else {}, depth + 1)
            )
        return result

    def _array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", True)
        high = int(schema["maxItems"]) if "maxItems" in schema else 3
        if items is False:
            high = min(high, len(prefix))
        low = int(schema["minItems"]) if "minItems" in schema else min(1, high)
        high = max(low, high)
        if depth >= MAX_DEPTH:
            count = low
        elif "maxItems" in schema:  # asked for up to N (e.g. N records): give most of them, as a model would
            count = self.draws.between(max(low, min(high, 64) - high // 4), min(high, 64))
        else:
            count = self.draws.between(low, min(high, low + 3))
        result: list[Any] = []
        seen: set[str] = set()
        for _ in range(count * 6):
            if len(result) >= count:
                break
            index = len(result)
            item = self.value(prefix[index] if index < len(prefix) else items, depth + 1)
            key = json.dumps(item, sort_keys=True, default=str)
            if schema.get("uniqueItems") and key in seen:
                continue
            seen.add(key)
            result.append(item)
        return result

    def _integer(self, schema: Mapping[str, Any]) -> int:
        low, high = _bounds(schema, integer=True)
        m = _whole_step(schema)
        if m is not None:
            first, last = math.ceil(low / m), math.floor(high / m)
            return self.draws.between(first, last) * m if first <= last else int(low)
        return self.draws.between(int(low), int(high))

    def _number(self, schema: Mapping[str, Any]) -> float:
        if _whole_step(schema) is not None:
            return float(self._integer(schema))
        low, high = _bounds(schema, integer=False)
        exact = low + self.draws.unit() * (high - low)
        for candidate in (round(exact, 2), exact, (low + high) / 2):
            if _within(candidate, schema):
                return candidate
        return low

    def _string(self, schema: Mapping[str, Any]) -> str:
        low = int(schema.get("minLength") or 0)
        high = int(schema["maxLength"]) if "maxLength" in schema else max(low, 60)
        text = _formatted(str(schema.get("format", "")), self.draws)
        if text is None:
            text = (
                _sentence(self.draws)
                if low > 24
                else f"{self.draws.pick(_ADJECTIVES)} {self.draws.pick(_NOUNS)}"
            )
        while len(text) < low:
            text = f"{text} {self.draws.pick(_NOUNS)}"
        if len(text) > high:
            text = text[:high].rstrip()
        return text + "x" * (low - len(text))


def _bounds(schema: Mapping[str, Any], *, integer: bool) -> tuple[float, float]:
    """The inclusive range to draw from (for integers: whole numbers, exclusive bounds moved
    inwards by one); 0-100 when unbounded, 100 wide when bounded on one side."""
    lows = [_num(schema.get("minimum"))]
    highs = [_num(schema.get("maximum"))]
    ex_low, ex_high = _num(schema.get("exclusiveMinimum")), _num(schema.get("exclusiveMaximum"))
    if ex_low is not None:
        lows.append(math.floor(ex_low) + 1.0 if integer else ex_low)
    if ex_high is not None:
        highs.append(math.ceil(ex_high) - 1.0 if integer else ex_high)
    low = max((v for v in lows if v is not None), default=None)
    high = min((v for v in highs if v is not None), default=None)
    if integer:
        low = None if low is None else float(math.ceil(low))
        high = None if high is None else float(math.floor(high))
    if low is None:
        low = 0.0 if high is None else high - 100.0
    if high is None:
        high = low + 100.0
    return low, max(low, high)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _within(value: float, schema: Mapping[str, Any]) -> bool:
    low, high = _num(schema.get("minimum")), _num(schema.get("maximum"))
    ex_low, ex_high = _num(schema.get("exclusiveMinimum")), _num(schema.get("exclusiveMaximum"))
    return (
        (low is None or value >= low)
        and (high is None or value <= high)
        and (ex_low is None or value > ex_low)
        and (ex_high is None or value < ex_high)
    )


def _formatted(fmt: str, draws: _Draws) -> str | None:
    month, day = draws.between(1, 12), draws.between(1, 28)
    match fmt:
        case "date":
            return f"2024-{month:02d}-{day:02d}"
        case "date-time":
            return f"2024-{month:02d}-{day:02d}T{draws.between(0, 23):02d}:{draws.between(0, 59):02d}:00Z"
        case "time":
            return f"{draws.between(0, 23):02d}:{draws.between(0, 59):02d}:00Z"
        case "email":
            return f"{draws.pick(_NAMES)}.{draws.pick(_NAMES)}@example.com"
        case "uuid":
            return str(uuid.UUID(int=draws.below(2**53) << 64 | draws.below(2**53), version=4))
        case "uri" | "url" | "iri":
            return f"https://example.com/{draws.pick(_NOUNS)}/{draws.between(1, 999)}"
        case "hostname":
            return f"{draws.pick(_NOUNS)}.example.com"
        case "ipv4":
            return f"10.{draws.between(0, 255)}.{draws.between(0, 255)}.{draws.between(1, 254)}"
        case _:
            return None


def _whole_step(schema: Mapping[str, Any]) -> int | None:
    """``multipleOf`` when it is a positive whole number (the only steps generated exactly)."""
    step = schema.get("multipleOf")
    if isinstance(step, int | float) and not isinstance(step, bool) and step > 0 and float(step).is_integer():
        return int(step)
    return None


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Both schemas' keywords; properties and required lists are unioned."""
    merged = {**extra, **base}
    if "properties" in base or "properties" in extra:
        merged["properties"] = {**(extra.get("properties") or {}), **(base.get("properties") or {})}
    if "required" in base or "required" in extra:
        names = [*(base.get("required") or []), *(extra.get("required") or [])]
        merged["required"] = list(dict.fromkeys(names))
    return merged


# --------------------------------------------------------------------------------------------
# The LiteLLM provider
# --------------------------------------------------------------------------------------------


def _int_param(optional_params: Mapping[str, Any], *names: str) -> int | None:
    for name in names:
        value = optional_params.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _fill(litellm: Any, model: str, messages: list[Any], model_response: Any, optional_params: Any) -> Any:
    """`model_response` (LiteLLM's ``ModelResponse``) carrying the fake answer."""
    params = optional_params if isinstance(optional_params, Mapping) else {}
    response_format = params.get("response_format")
    if not isinstance(response_format, Mapping):
        response_format = None
    full_model = f"{PROVIDER}/{model}"
    max_tokens = _int_param(params, "max_tokens", "max_completion_tokens")
    answer = respond(full_model, messages, response_format, max_tokens, _int_param(params, "seed"))
    choice = model_response.choices[0]
    choice.message.content = answer.text
    choice.finish_reason = answer.finish_reason
    model_response.model = full_model
    model_response.created = CREATED
    model_response.id = "chatcmpl-fake-" + hashlib.sha256(answer.text.encode()).hexdigest()[:24]
    model_response.usage = litellm.Usage(
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
        total_tokens=answer.prompt_tokens + answer.completion_tokens,
    )
    return model_response


def _handler_class(litellm: Any) -> type[Any]:
    """A ``litellm.CustomLLM`` subclass answering with `respond` (built here, not at import,
    so importing this module does not import LiteLLM)."""

    class FakeLLM(litellm.CustomLLM):  # type: ignore[misc]
        def completion(self, model: str, messages: list[Any], *_: Any, **kwargs: Any) -> Any:
            return _fill(litellm, model, messages, kwargs["model_response"], kwargs.get("optional_params"))

        async def acompletion(self, model: str, messages: list[Any], *_: Any, **kwargs: Any) -> Any:
            return _fill(litellm, model, messages, kwargs["model_response"], kwargs.get("optional_params"))

    return FakeLLM


def register(litellm_module: ModuleType) -> None:
    """Register the ``fake`` provider in ``litellm.custom_provider_map`` (once: calling again
    changes nothing). LiteLLM then routes ``fake/...`` models to it and needs no key."""
    litellm: Any = litellm_module
    if any(item.get("provider") == PROVIDER for item in litellm.custom_provider_map):
        return
    litellm.custom_provider_map.append({"provider": PROVIDER, "custom_handler": _handler_class(litellm)()})
    # LiteLLM repeats this at every call; doing it now makes the provider known to lookups
    # such as get_supported_openai_params before the first call.
    litellm.utils.custom_llm_setup()
