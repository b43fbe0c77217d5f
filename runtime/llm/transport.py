"""The LLM transport: one chat completion in, one `Completion` or one `TransportError` out.

The scheduler sees only `Transport` (``await transport.complete(request)``); it owns retries,
back-off, rate limits and fallbacks. `LiteLLMTransport` is the implementation through
LiteLLM; a faster path for OpenAI-compatible servers can replace it behind the same protocol.

Guarantees of `LiteLLMTransport`:
- One call is at most one HTTP request: LiteLLM and the OpenAI SDK never retry on their own
  (``num_retries=0``, ``max_retries=0``).
- Every failure is a `TransportError` with a `kind` the scheduler can act on; the mapping
  goes by LiteLLM's exception classes (see `classify`), never by message text.
- LiteLLM is imported on first use only (`load_litellm`), offline: the bundled cost map, no
  remote config, no ``.env`` loading, no callbacks. The only network traffic is the request
  itself, to its ``api_base`` (or the provider's default endpoint).
- API keys are read from the environment at call time and never appear in a message.
- ``fake/...`` models (`runtime.llm.fake`) are answered offline through LiteLLM's custom
  provider mechanism: no key, no network, cost 0.0.
- A ``seed`` in a request's params is sent only to providers LiteLLM says take one; for the
  others it is left out of the call (it stays part of the request, and so of its cache key).
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import importlib
import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, Protocol

from runtime.llm import fake

ErrorKind = Literal[
    "rate_limit", "server", "timeout", "connection", "auth", "bad_request", "bad_response", "not_found"
]

# Arguments the transport sets itself; a request's params may not override them.
RESERVED_PARAMS = frozenset(
    {
        "model", "messages", "response_format", "api_base", "base_url", "api_key", "timeout",
        "num_retries", "max_retries", "stream", "fallbacks", "callbacks", "metadata", "mock_response",
    }
)  # fmt: skip
MAX_DETAIL = 300  # characters of a provider's own message kept in ours
_SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


@dataclass(frozen=True)
class CompletionRequest:
    """One chat completion, as the scheduler asks for it.

    ``model`` is a LiteLLM model string (``"openai/gpt-4o-mini"``); ``params`` are the
    provider parameters (temperature, max_tokens, top_p, seed, ...); ``response_format`` is
    OpenAI's ``{"type": "json_schema", ...}`` or ``{"type": "json_object"}``;
    ``api_key_env`` names the environment variable holding the key (None: LiteLLM's default
    for the provider, e.g. ``OPENAI_API_KEY``); ``timeout`` is in seconds."""

    model: str
    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any]
    response_format: Mapping[str, Any] | None = None
    api_base: str | None = None
    api_key_env: str | None = None
    timeout: float = 60.0

    def __post_init__(self) -> None:
        clash = sorted(RESERVED_PARAMS.intersection(self.params))
        if clash:
            raise ValueError(f"params may not set {', '.join(clash)}: the transport sets them")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be positive, got {self.timeout!r}")


@dataclass(frozen=True)
class Completion:
    """A finished answer. ``model`` is the model that answered, as the provider reports it;
    ``cost`` is in USD from LiteLLM's bundled cost map, None when the model is not in it.
    A ``finish_reason`` of ``"length"`` is an answer, not an error: the scheduler decides."""

    text: str
    model: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: float | None


class TransportError(Exception):
    """A call that produced no answer. ``kind`` says what the scheduler may do about it;
    ``status`` is the HTTP status when a response arrived; ``retry_after`` (seconds) comes
    from the response's ``retry-after-ms`` or ``Retry-After`` header when present.
    ``str()`` is one line for a person and never contains an API key."""

    def __init__(
        self, kind: ErrorKind, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"TransportError({self.kind!r}, {self.message!r}, status={self.status!r})"


class Transport(Protocol):
    async def complete(self, request: CompletionRequest) -> Completion:
        """The answer to `request`, or `TransportError`; exactly one attempt."""
        ...


# --------------------------------------------------------------------------------------------
# Loading LiteLLM
# --------------------------------------------------------------------------------------------


@functools.cache
def load_litellm() -> ModuleType:
    """LiteLLM, imported once, configured to stay offline.

    Before the import: the bundled cost map and Anthropic beta-header config instead of
    fetching them from GitHub, and ``LITELLM_MODE=PRODUCTION`` so LiteLLM does not load a
    ``.env`` file into the environment (keys come from the real environment only). Each is a
    ``setdefault``: a person's explicit setting wins. After the import: no debug banners on
    stdout (LiteLLM prints "Give Feedback / Get Help" on every error otherwise). LiteLLM
    1.106 has no telemetry switch left; no callback is registered. Nothing is changed per
    request."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
    os.environ.setdefault("LITELLM_MODE", "PRODUCTION")
    # Imported by name so mypy does not analyse LiteLLM (huge); the boundary is typed here.
    module = importlib.import_module("litellm")
    litellm: Any = module
    litellm.suppress_debug_info = True
    if hasattr(litellm, "telemetry"):  # older LiteLLM versions
        litellm.telemetry = False
    fake.register(module)
    return module


@dataclass(frozen=True)
class _Classes:
    """LiteLLM's and the OpenAI SDK's exception classes, looked up once."""

    by_class: tuple[tuple[type[BaseException], ErrorKind], ...]  # precise classes, in order
    by_cause: tuple[tuple[type[BaseException], ErrorKind], ...]  # what catch-alls wrap
    catch_all: tuple[tuple[type[BaseException], ErrorKind], ...]
    api_error: type[BaseException]  # LiteLLM's generic error with a status
    bad_request: type[BaseException]  # also: LiteLLM cannot tell the provider
    not_mapped: type[BaseException]  # the cost map has no such model


@functools.cache
def _classes() -> _Classes:
    litellm = load_litellm()
    ex = litellm.exceptions
    openai = importlib.import_module("openai")
    return _Classes(
        by_class=(
            (ex.Timeout, "timeout"),
            (ex.RateLimitError, "rate_limit"),
            (ex.AuthenticationError, "auth"),
            (ex.PermissionDeniedError, "auth"),
            (ex.NotFoundError, "not_found"),
            (ex.BadRequestError, "bad_request"),  # also context window, unsupported params
            (ex.UnprocessableEntityError, "bad_request"),
            (ex.ServiceUnavailableError, "server"),
            (ex.BadGatewayError, "server"),
            (ex.APIResponseValidationError, "bad_response"),
        ),
        by_cause=(
            (openai.APITimeoutError, "timeout"),
            (TimeoutError, "timeout"),
            (openai.APIConnectionError, "connection"),
            (ConnectionError, "connection"),
            (json.JSONDecodeError, "bad_response"),
        ),
        catch_all=(
            (ex.InternalServerError, "server"),
            (ex.APIConnectionError, "connection"),
        ),
        api_error=ex.APIError,
        bad_request=ex.BadRequestError,
        not_mapped=ex.ModelNotMappedError,
    )


# --------------------------------------------------------------------------------------------
# Classifying failures
# --------------------------------------------------------------------------------------------


def _chain(exc: BaseException, limit: int = 12) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < limit:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _response_headers(exc: BaseException) -> Mapping[str, str] | None:
    """The HTTP response headers behind `exc`, or None when no response arrived."""
    headers = getattr(exc, "litellm_response_headers", None)
    return headers if isinstance(headers, Mapping) else None


def classify(exc: BaseException) -> ErrorKind | None:
    """The kind of a LiteLLM failure, from classes only (None: not a LiteLLM failure).

    Precise classes first (429, 401/403, 404, 400/422, 502/503, timeout). LiteLLM's OpenAI
    path reports a dropped connection, a refused connection and an unparseable body all as
    ``InternalServerError`` with an invented status 500; those are told apart by the
    exception they wrap (``__cause__``/``__context__``), unless an HTTP response did arrive
    (LiteLLM then attaches its headers), in which case it was a real 5xx."""
    classes = _classes()
    for cls, kind in classes.by_class:
        if isinstance(exc, cls):
            return kind
    if _response_headers(exc) is None:
        for cause in _chain(exc):
            for cls, kind in classes.by_cause:
                if isinstance(cause, cls):
                    return kind
    for cls, kind in classes.catch_all:
        if isinstance(exc, cls):
            return kind
    status = getattr(exc, "status_code", None)
    if isinstance(exc, classes.api_error) and isinstance(status, int):
        return "bad_request" if 400 <= status < 500 else "server"
    return None


def retry_after_seconds(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (preferred, as OpenAI's SDK does) or
    ``Retry-After`` (seconds or an HTTP date); None when absent or unreadable."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = _number(lowered.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    value = lowered.get("retry-after")
    seconds = _number(value)
    if seconds is not None or value is None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


# --------------------------------------------------------------------------------------------
# Messages (one line, no secrets)
# --------------------------------------------------------------------------------------------


def _secrets(extra: Sequence[str] = ()) -> list[str]:
    """Values that must never appear in a message: the environment's keys and tokens."""
    values = [v for k, v in os.environ.items() if any(m in k.upper() for m in _SECRET_MARKERS)]
    return sorted({v for v in [*values, *extra] if len(v) >= 6}, key=len, reverse=True)


def _one_line(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def _detail(exc: BaseException) -> str:
    """The provider's own error message when its body carried one, else the root cause."""
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):
        return str(body["message"])
    root = list(_chain(exc))[-1]
    return f"{type(root).__name__}: {root}" if str(root) else type(root).__name__


def _describe(kind: ErrorKind, request: CompletionRequest, exc: BaseException, status: int | None) -> str:
    http = f" (HTTP {status})" if status is not None else ""
    where = request.api_base or "the provider's endpoint"
    match kind:
        case "rate_limit":
            return f"rate limited{http}: {_detail(exc)}"
        case "server":
            return f"server error{http}: {_detail(exc)}"
        case "timeout":
            return f"no answer from {where} within {request.timeout:g} s"
        case "connection":
            return f"cannot reach {where}: {_detail(exc)}"
        case "auth":
            return f"the API key was rejected{http}; check {_key_hint(request)}"
        case "bad_request":
            return f"request rejected{http}: {_detail(exc)}"
        case "bad_response":
            return f"the answer could not be read: {_detail(exc)}"
        case "not_found":
            return f"not found{http}: {_detail(exc)}"


def _key_hint(request: CompletionRequest) -> str:
    """The environment variable holding the key, as precisely as is known."""
    if request.api_key_env is not None:
        return f"the environment variable {request.api_key_env}"
    provider = _provider(request)
    # LiteLLM has no public "which variable" lookup for a key that is present; for nearly
    # every provider it is <PROVIDER>_API_KEY, so name it when that variable is set.
    guess = f"{provider.upper()}_API_KEY" if provider else None
    if guess and guess in os.environ:
        return f"the environment variable {guess}"
    return f"the API key variable LiteLLM reads for provider {provider or '?'}"


@functools.lru_cache(maxsize=256)
def _provider_of(model: str, api_base: str | None) -> str | None:
    try:
        _, provider, _, _ = load_litellm().get_llm_provider(model=model, api_base=api_base)
    except _classes().bad_request:  # LiteLLM cannot tell the provider
        return None
    return str(provider)


def _provider(request: CompletionRequest) -> str | None:
    return _provider_of(request.model, request.api_base)


@functools.lru_cache(maxsize=256)
def _takes_seed(model: str, provider: str) -> bool:
    """Whether LiteLLM sends ``seed`` to `provider` for `model`. An unmapped provider
    (LiteLLM answers None) gets it: LiteLLM does not check parameters it cannot look up."""
    try:
        supported = load_litellm().get_supported_openai_params(model=model, custom_llm_provider=provider)
    except Exception:  # LiteLLM's lookup failing is no reason to fail the call
        return True
    return supported is None or "seed" in supported


def sent_params(request: CompletionRequest, provider: str) -> dict[str, Any]:
    """The provider parameters actually passed for `request`: its ``params`` without a
    ``seed`` the provider does not take (so the call does not fail on it)."""
    params = dict(request.params)
    if "seed" in params and not _takes_seed(request.model, provider):
        del params["seed"]
    return params


# --------------------------------------------------------------------------------------------
# The transport
# --------------------------------------------------------------------------------------------


class LiteLLMTransport:
    """`Transport` through ``litellm.acompletion``: one attempt per call, no retries."""

    async def complete(self, request: CompletionRequest) -> Completion:
        litellm = load_litellm()
        provider = _provider(request)
        if provider is None:
            raise TransportError(
                "bad_request",
                f"{request.model}: LiteLLM cannot tell which provider serves this model; write it as "
                "'provider/model', e.g. 'openai/gpt-4o-mini' (see https://docs.litellm.ai/docs/providers)",
            )
        api_key = None if provider == fake.PROVIDER else self._api_key(request)
        try:
            response = await litellm.acompletion(
                model=request.model,
                messages=[dict(m) for m in request.messages],
                api_base=request.api_base,
                api_key=api_key,
                timeout=request.timeout,
                response_format=dict(request.response_format) if request.response_format else None,
                num_retries=0,
                max_retries=0,
                **sent_params(request, provider),
            )
        except Exception as exc:
            raise self._error(request, exc, api_key) from exc
        return self._completion(request, response, provider)

    async def aclose(self) -> None:
        """Close LiteLLM's cached HTTP clients and stop its logging worker (call at the end of
        a run, inside its event loop, so no connection or task is left behind: a task pending
        on a closed loop is reported as "Task was destroyed but it is pending"). LiteLLM
        keeps both process-wide; later calls start new ones. No callback is registered, so
        the worker's queue holds only LiteLLM's own bookkeeping, which is dropped."""
        if load_litellm.cache_info().currsize:
            await load_litellm().close_litellm_async_clients()
            # Each finished call schedules a task that starts the worker: let those run first.
            await asyncio.sleep(0)
            worker = importlib.import_module("litellm.litellm_core_utils.logging_worker")
            await worker.GLOBAL_LOGGING_WORKER.stop()

    @staticmethod
    def _api_key(request: CompletionRequest) -> str | None:
        """The key from ``api_key_env``; with none named, check LiteLLM's default variables
        are set (so a missing key is ``auth`` naming them, not a confusing 500)."""
        if request.api_key_env is not None:
            key = os.environ.get(request.api_key_env)
            if not key:
                raise TransportError(
                    "auth", f"{request.model}: no API key: set the environment variable {request.api_key_env}"
                )
            return key
        report = load_litellm().validate_environment(model=request.model, api_base=request.api_base)
        missing = [
            name
            for name in report.get("missing_keys", [])
            if not (request.api_base and name.endswith("_API_BASE"))  # given as api_base
        ]
        if missing:
            names = " and ".join(missing)
            noun = "variable" if len(missing) == 1 else "variables"
            raise TransportError("auth", f"{request.model}: no API key: set the environment {noun} {names}")
        return None

    @staticmethod
    def _error(request: CompletionRequest, exc: Exception, api_key: str | None) -> Exception:
        kind = classify(exc)
        if kind is None:
            return exc  # not a LiteLLM failure (a bug): let it surface unchanged
        headers = _response_headers(exc)
        raw_status = getattr(exc, "status_code", None)
        # Statuses of failures without a response are LiteLLM's invention (408, 500): drop them.
        status = raw_status if isinstance(raw_status, int) and headers is not None else None
        if kind in ("rate_limit", "auth", "not_found", "bad_request") and isinstance(raw_status, int):
            status = raw_status
        message = _describe(kind, request, exc, status)
        secrets = _secrets([api_key] if api_key else [])
        return TransportError(
            kind,
            f"{request.model}: {_one_line(message, secrets)}",
            status=status,
            retry_after=retry_after_seconds(headers),
        )

    @staticmethod
    def _completion(request: CompletionRequest, response: Any, provider: str) -> Completion:
        try:
            choice = response.choices[0]
            text = choice.message.content
            usage = getattr(response, "usage", None)
            prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
            completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise TransportError(
                "bad_response", f"{request.model}: the answer has no usable choice ({type(exc).__name__})"
            ) from exc
        if not isinstance(text, str):
            raise TransportError(
                "bad_response",
                f"{request.model}: the answer has no text (finish_reason={choice.finish_reason!r})",
            )
        model = str(response.model or request.model)
        return Completion(
            text=text,
            model=model,
            finish_reason=choice.finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=_response_cost(response, model, provider, prompt_tokens, completion_tokens),
        )


def _response_cost(
    response: Any, model: str, provider: str, prompt_tokens: int, completion_tokens: int
) -> float | None:
    """The cost LiteLLM already worked out for this response (from the same bundled map),
    else a lookup; None when the model is not priced."""
    hidden = getattr(response, "_hidden_params", None)
    cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
    if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
        return float(cost)
    return cost_usd(model, provider, prompt_tokens, completion_tokens)


def cost_usd(model: str, provider: str | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    """The price of a call from LiteLLM's bundled cost map; None when `model` is not in it;
    0.0 for fake models."""
    if provider == fake.PROVIDER or fake.is_fake(model):
        return 0.0
    litellm = load_litellm()
    try:
        prompt, completion = litellm.cost_per_token(
            model=model,
            custom_llm_provider=provider,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
    except _classes().not_mapped:
        return None
    return float(prompt) + float(completion)
