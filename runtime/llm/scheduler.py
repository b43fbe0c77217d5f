"""The scheduler: runs single LLM cells against their routes, resiliently, on one event loop.

The caller renders messages, computes cache keys, and hands over only the cells its bulk
cache lookup missed; `Scheduler.run` answers one cell with a `CellAnswer` or a
`CellFailure` (data, never an exception), except `BudgetExceeded`.

Guarantees:
- One `Transport.complete` call is one HTTP request; every retry, repair and fallback is a
  new call, counted in `RunStats` (``calls``, ``retries``, ``repairs``, ``fallbacks``).
- Per route (model alias): at most ``concurrency`` calls in flight, fewer after rate
  limiting (halved on a 429, grown back by one slot per round of successes); ``rpm`` and
  ``tpm`` are token buckets (tokens estimated as prompt characters / 4 + ``max_tokens``).
  Waiting is sleeping for a computed time, never polling.
- A 429's ``Retry-After`` pauses every new call to that model until then, not just the
  cell's. One longer than `MAX_RETRY_AFTER` is not waited for: that model is given up for
  the rest of the run (its cells move to the next fallback, or fail with kind
  ``"rate_limit_wait"`` at once, without calling).
- Retryable failures (rate_limit, server, timeout, connection, bad_response) are retried on
  the same model up to ``Route.retries`` times (per model and cell, repairs included), with
  exponential back-off and jitter (capped at `MAX_BACKOFF`); then the next model of the
  route is tried. auth, not_found and bad_request go to the next model at once; so does
  ``finish_reason == "length"`` (the same request would be cut off again).
- A structured answer that fails validation is repaired (the error fed back to the model)
  up to `MAX_REPAIRS` times per model, then the next model is tried; last, kind "invalid".
- A cell's key is looked up once more before any call (a concurrent run may have paid for
  it: a cache hit). Only answers are cached, never failures. The cached usage (tokens, cost) is the sum over
  every call of the cell that returned a completion (repairs, truncated answers on
  fallen-back models) — what the cell cost; failed requests carry no usage. The cost is
  None only when no such call had a known cost.
- Once ``stats.cost >= max_cost`` no call starts (`BudgetExceeded`); after `Scheduler.stop`
  none either (waiting cells return kind "stopped"). Calls in flight finish and are cached.
- Timing (jitter, waits) never changes an answer. Messages are one line and never contain
  an API key (transport messages are already scrubbed; ours name variables, not values).
"""

from __future__ import annotations

import asyncio
import json
import queue
import random
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from runtime.cache import Cache, CachedResponse
from runtime.errors import ExecutionError
from runtime.llm.limits import AdaptiveLimit, LimitClosed, TokenBucket, estimated_tokens
from runtime.llm.transport import Completion, CompletionRequest, ErrorKind, Transport, TransportError
from runtime.plan import ModelAlias

# A Retry-After longer than this (seconds) is not waited for: the model is given up.
MAX_RETRY_AFTER = 120.0
# The longest back-off between two attempts, in seconds (before jitter).
MAX_BACKOFF = 60.0
# Repair calls per model for an answer that does not match the output schema.
MAX_REPAIRS = 2
RETRYABLE: frozenset[str] = frozenset({"rate_limit", "server", "timeout", "connection", "bad_response"})

FailureKind = ErrorKind | Literal["length", "invalid", "rate_limit_wait", "stopped"]

_T = TypeVar("_T")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class RouteError(ExecutionError):
    """A model alias cannot be used as configured (e.g. an unset ``${VAR}``)."""


class BudgetExceeded(ExecutionError):
    """The run has spent ``spent`` USD, at least its ``max_cost``: no new call starts."""

    def __init__(self, spent: float, max_cost: float) -> None:
        super().__init__(
            f"the run has spent ${spent:.4f} of its --max-cost ${max_cost:.4f}; no new LLM calls were started"
        )
        self.spent = spent
        self.max_cost = max_cost


@dataclass(frozen=True)
class Route:
    """The run-time view of one `ModelAlias`: where its calls go and how they are paced.

    ``models`` is the primary model then its fallbacks (LiteLLM model strings); ``params``
    are the alias's params (cells carry their final params); ``api_base`` is resolved."""

    alias: str
    models: tuple[str, ...]
    params: Mapping[str, Any]
    api_base: str | None
    api_key_env: str | None
    concurrency: int
    rpm: int | None
    tpm: int | None
    timeout: float
    retries: int
    backoff: float

    def __post_init__(self) -> None:
        if not self.models or self.concurrency < 1 or self.retries < 0 or self.backoff < 0:
            raise ValueError(
                f"route {self.alias!r}: needs a model, concurrency >= 1, retries >= 0, backoff >= 0"
            )

    @classmethod
    def from_alias(cls, alias: ModelAlias, environ: Mapping[str, str]) -> Route:
        """The route of `alias`, with ``${VAR}`` in ``api_base`` taken from `environ`.

        Raises `RouteError` naming the variable and the alias when one is unset or empty."""
        return cls(
            alias=alias.name,
            models=(alias.model, *alias.fallbacks),
            params=json.loads(alias.params),
            api_base=_resolve(alias.api_base, alias.name, environ),
            api_key_env=alias.api_key_env,
            concurrency=alias.concurrency,
            rpm=alias.rpm,
            tpm=alias.tpm,
            timeout=alias.timeout,
            retries=alias.retries,
            backoff=alias.backoff,
        )


def _resolve(text: str | None, alias: str, environ: Mapping[str, str]) -> str | None:
    if text is None:
        return None

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if not environ.get(name):
            state = "empty" if name in environ else "not set"
            raise RouteError(
                f"model {alias!r}: api_base uses ${{{name}}}, but the environment variable {name} is {state}"
            )
        return environ[name]

    return _VARIABLE.sub(value, text)


@dataclass(frozen=True)
class CellRequest:
    """One LLM cell to answer: its messages and final params, under its cache key."""

    column: str
    row: int
    key: str
    alias: str
    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any]
    output_schema: Mapping[str, Any] | None  # None: free text


@dataclass(frozen=True)
class CellAnswer:
    """``value`` is the validated JSON value when the cell has an output schema, else the
    text; ``response`` is what is (or was) cached for the cell."""

    value: Any
    response: CachedResponse


@dataclass(frozen=True)
class CellFailure:
    """A cell without an answer. ``kind`` is a transport error kind, or "length",
    "invalid", "rate_limit_wait" or "stopped"; ``message`` is one line naming the model(s);
    ``attempts`` counts the calls made; ``model`` is the last model tried (None: none)."""

    kind: FailureKind
    message: str
    attempts: int
    model: str | None


@dataclass
class RunStats:
    """Live counters of a run, read by the progress bar (one event loop: no locks).

    ``calls`` counts requests started (retries and repairs included); ``cache_hits`` is
    incremented by the caller's bulk lookup and by the scheduler's own last-moment lookup;
    ``failures`` counts failed cells (not stopped ones); ``cost`` sums known costs (USD),
    ``unknown_cost_calls`` counts answers whose model has no price."""

    calls: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    cache_hits: int = 0
    answered: int = 0
    retries: int = 0
    fallbacks: int = 0
    repairs: int = 0
    rate_limited: int = 0
    failures: int = 0
    failures_by_column: dict[str, int] = field(default_factory=dict)
    failures_by_kind: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    unknown_cost_calls: int = 0

    def add_usage(self, completion: Completion) -> None:
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        if completion.cost is None:
            self.unknown_cost_calls += 1
        else:
            self.cost += completion.cost

    def add_failure(self, column: str, kind: str) -> None:
        self.failures += 1
        self.failures_by_column[column] = self.failures_by_column.get(column, 0) + 1
        self.failures_by_kind[kind] = self.failures_by_kind.get(kind, 0) + 1


class _Stopped(Exception):
    """The run is stopping: the cell returns a "stopped" failure."""


class _GaveUp(Exception):
    """The model was given up for this run (a Retry-After over the cap)."""


@dataclass
class _ModelState:
    paused_until: float = 0.0  # no new call before this (clock seconds)
    gave_up: str | None = None  # the message, once the model is given up


@dataclass
class _RouteState:
    route: Route
    limit: AdaptiveLimit
    rpm: TokenBucket | None
    tpm: TokenBucket | None
    models: dict[str, _ModelState]


@dataclass
class _Cell:
    """One cell's progress: its calls and what the answered ones cost."""

    request: CellRequest
    state: _RouteState
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None

    def pay(self, completion: Completion) -> None:
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        if completion.cost is not None:
            self.cost = (self.cost or 0.0) + completion.cost


@dataclass(frozen=True)
class _Failed:
    """Why one model of a cell's route gave no answer."""

    kind: FailureKind
    message: str
    model: str


@dataclass
class _Allowance:
    """What one model may still spend on one cell."""

    retries: int
    backoff: float  # seconds before the first retry (doubled each time)
    repairs: int = MAX_REPAIRS
    retried: int = 0  # retries so far (the back-off exponent)


class Scheduler:
    """Answers cells through `transport`, one call at a time per attempt (module docstring).

    ``max_cost`` (USD): once ``stats.cost`` reaches it, `run` raises `BudgetExceeded`
    instead of starting a call (calls already in flight finish and are cached). ``rng``
    draws the back-off jitter (timing only, never an answer). Use one event loop for the
    scheduler's whole life (its waits and the transport's clients belong to that loop)."""

    def __init__(
        self,
        routes: Mapping[str, Route],
        transport: Transport,
        cache: Cache | None,
        *,
        stats: RunStats,
        max_cost: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.routes: Mapping[str, Route] = dict(routes)
        self._transport = transport
        self._cache = cache
        self.stats = stats
        self._max_cost = max_cost
        self._rng = rng or random.Random()
        self._clock = time.monotonic  # asyncio's clock: waits are computed on it
        self._stopping = asyncio.Event()
        self._writer: CacheWriter | None = None
        self._native: dict[str, bool] = {}
        now = self._clock()
        self._states = {
            name: _RouteState(
                route=route,
                limit=AdaptiveLimit(route.concurrency),
                rpm=TokenBucket(route.rpm, now) if route.rpm else None,
                tpm=TokenBucket(route.tpm, now) if route.tpm else None,
                models={model: _ModelState() for model in route.models},
            )
            for name, route in routes.items()
        }

    async def run(self, cell: CellRequest) -> CellAnswer | CellFailure:
        """The answer to `cell`, or why there is none.

        A stopped run (`stop`) makes waiting cells return promptly with kind "stopped"
        (not counted in ``stats.failures``). Raises `BudgetExceeded` when the cell would
        start a call past ``max_cost``, `runtime.cache.CacheError` when the cache fails, and
        ValueError when ``cell.alias`` has no route or its params set what the transport sets."""
        state = self._states.get(cell.alias)
        if state is None:
            raise ValueError(f"no route for model alias {cell.alias!r}")
        cached = await self._cached(cell)
        if cached is not None:
            return cached
        progress = _Cell(cell, state)
        try:
            return await self._answer(progress)
        except _Stopped:
            message = "the run was stopped before this cell was answered"
            return CellFailure("stopped", message, progress.attempts, None)

    def stop(self) -> None:
        """No new call starts; cells waiting for a slot, a pause or a back-off return a
        "stopped" failure promptly. Calls in flight finish (and are cached). Call it on the
        scheduler's event loop (e.g. from ``loop.add_signal_handler``)."""
        self._stopping.set()
        for state in self._states.values():
            state.limit.close()

    def concurrency(self, alias: str) -> int:
        """The current (adaptive) concurrency limit of `alias`'s route."""
        return self._states[alias].limit.limit

    # ---- one cell ---------------------------------------------------------------------

    async def _cached(self, cell: CellRequest) -> CellAnswer | None:
        """A cached answer stored since the caller's bulk lookup (e.g. by a concurrent run)."""
        if self._cache is None:
            return None
        response = self._cache.get(cell.key)
        if response is None:
            return None
        value = _value(cell, response.text)
        if value is _INVALID:
            return None
        self.stats.cache_hits += 1
        return CellAnswer(value, response)

    async def _answer(self, cell: _Cell) -> CellAnswer | CellFailure:
        failures: list[_Failed] = []
        for index, model in enumerate(cell.state.route.models):
            if index:
                self.stats.fallbacks += 1
            outcome = await self._on_model(cell, model)
            if isinstance(outcome, CellAnswer):
                return outcome
            failures.append(outcome)
        last = failures[-1]
        self.stats.add_failure(cell.request.column, last.kind)
        message = "; ".join(failure.message for failure in failures)
        return CellFailure(last.kind, message, cell.attempts, last.model)

    async def _on_model(self, cell: _Cell, model: str) -> CellAnswer | _Failed:
        """The cell's answer from `model`, with retries and repairs, or why not."""
        schema = cell.request.output_schema
        base, response_format = self._structured_request(cell.request, model)
        messages = base
        allowance = _Allowance(retries=cell.state.route.retries, backoff=cell.state.route.backoff)
        while True:
            try:
                completion = await self._call(cell, model, messages, response_format)
            except _GaveUp as gave_up:
                return _Failed("rate_limit_wait", str(gave_up), model)
            except TransportError as error:
                if error.kind not in RETRYABLE or allowance.retries == 0:
                    return _Failed(error.kind, error.message, model)
                await self._back_off(allowance, error)
                continue
            if completion.finish_reason == "length":
                return _Failed("length", _length_message(model, cell.request.params), model)
            if schema is None:
                return self._succeed(cell, completion, completion.text)
            from runtime.llm.structured import InvalidAnswer, parse_answer, repair_messages

            try:
                value = parse_answer(completion.text, schema)
            except InvalidAnswer as invalid:
                if allowance.repairs == 0:
                    return _Failed("invalid", _invalid_message(model, invalid), model)
                allowance.repairs -= 1
                self.stats.repairs += 1
                messages = repair_messages(base, completion.text, _one_line(str(invalid)))
                continue
            return self._succeed(cell, completion, value)

    async def _back_off(self, allowance: _Allowance, error: TransportError) -> None:
        """Wait before a retry: exponential back-off with jitter, or the error's Retry-After
        when longer and not over `MAX_RETRY_AFTER` (a 429's also pauses the whole model)."""
        allowance.retries -= 1
        self.stats.retries += 1
        base = min(MAX_BACKOFF, allowance.backoff * 2.0**allowance.retried)
        allowance.retried += 1
        delay = base / 2 + self._rng.uniform(0.0, base / 2)  # "equal jitter": at least half
        asked = error.retry_after or 0.0
        await self._sleep(max(delay, asked) if asked <= MAX_RETRY_AFTER else delay)

    def close(self) -> None:
        """Wait until every answer handed to the cache writer is committed, and end it.
        Raises the writer's `runtime.cache.CacheError`, if the cache failed."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _succeed(self, cell: _Cell, completion: Completion, value: Any) -> CellAnswer:
        """Hand the answer to the cache writer (committed moments later; if a concurrent run
        stored this key first, the cache keeps that one and this cell keeps its own)."""
        response = CachedResponse(
            text=completion.text,
            model=completion.model,
            prompt_tokens=cell.prompt_tokens,
            completion_tokens=cell.completion_tokens,
            cost=cell.cost,
            finish_reason=completion.finish_reason,
        )
        self.stats.answered += 1
        if self._cache is not None:
            if self._writer is None:
                self._writer = CacheWriter(self._cache)
            self._writer.put(cell.request.key, response)
        return CellAnswer(value, response)

    def _structured_request(
        self, cell: CellRequest, model: str
    ) -> tuple[tuple[Mapping[str, Any], ...], Mapping[str, Any] | None]:
        """The messages and response_format to send `model`: a native JSON Schema format
        when the model takes one, else the schema's instructions in the last user message."""
        schema = cell.output_schema
        if schema is None:
            return cell.messages, None
        from runtime.llm import structured

        if model not in self._native:
            self._native[model] = structured.supports_native_schema(model)
        if self._native[model]:
            return cell.messages, structured.response_format(schema, cell.column)
        return _append_to_last_user(cell.messages, structured.instructions(schema)), None

    # ---- one call ---------------------------------------------------------------------

    async def _call(
        self,
        cell: _Cell,
        model: str,
        messages: tuple[Mapping[str, Any], ...],
        response_format: Mapping[str, Any] | None,
    ) -> Completion:
        """One request, once the route lets it start; updates the route's limits and the
        run's counters with what came back. Raises TransportError, _GaveUp, _Stopped,
        BudgetExceeded."""
        state, route = cell.state, cell.state.route
        request = CompletionRequest(
            model=model,
            messages=messages,
            params=cell.request.params,
            response_format=response_format,
            api_base=route.api_base,
            api_key_env=route.api_key_env,
            timeout=route.timeout,
        )
        await self._enter(state, state.models[model], estimated_tokens(messages, cell.request.params))
        started = self._clock()
        cell.attempts += 1
        stats = self.stats
        stats.calls += 1
        stats.in_flight += 1
        stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        try:
            completion = await self._transport.complete(request)
        except TransportError as error:
            if error.kind == "rate_limit":
                self._on_rate_limit(state, model, error, started)
            raise
        finally:
            stats.in_flight -= 1
            state.limit.release()
        state.limit.increase()
        stats.add_usage(completion)
        cell.pay(completion)
        return completion

    async def _enter(self, state: _RouteState, model: _ModelState, tokens: int) -> None:
        """Wait until a call may start: model not paused, a concurrency slot, rpm/tpm
        allowance, budget left. On return the caller holds a slot of ``state.limit``."""
        await self._wait_pause(model)
        try:
            await state.limit.acquire()
        except LimitClosed:
            raise _Stopped from None
        try:
            now = self._clock()
            delays = [
                bucket.reserve(amount, now)
                for bucket, amount in ((state.rpm, 1), (state.tpm, tokens))
                if bucket is not None
            ]
            await self._sleep(max(delays, default=0.0))
            await self._wait_pause(model)  # a 429 may have arrived meanwhile
            self._check_budget()
        except BaseException:
            state.limit.release()
            raise

    def _on_rate_limit(self, state: _RouteState, model: str, error: TransportError, started: float) -> None:
        """A 429: fewer concurrent calls on the route; pause the model for its Retry-After,
        or give the model up when that is longer than `MAX_RETRY_AFTER`."""
        self.stats.rate_limited += 1
        now = self._clock()
        state.limit.decrease(started, now)
        wait = error.retry_after
        if wait is None:
            return
        model_state = state.models[model]
        if wait > MAX_RETRY_AFTER:
            model_state.gave_up = (
                f"{model}: rate limited; the provider asks to wait {wait:g} s, over the"
                f" {MAX_RETRY_AFTER:g} s this run waits; run again later (answers so far are cached)"
            )
            raise _GaveUp(model_state.gave_up) from error
        model_state.paused_until = max(model_state.paused_until, now + wait)

    async def _wait_pause(self, model: _ModelState) -> None:
        while True:
            if self._stopping.is_set():
                raise _Stopped
            if model.gave_up is not None:
                raise _GaveUp(model.gave_up)
            wait = model.paused_until - self._clock()
            if wait <= 0:
                return
            await self._sleep(wait)

    async def _sleep(self, seconds: float) -> None:
        """Sleep `seconds`, or raise _Stopped as soon as the run stops."""
        if self._stopping.is_set():
            raise _Stopped
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return
        raise _Stopped

    def _check_budget(self) -> None:
        if self._max_cost is not None and self.stats.cost >= self._max_cost:
            raise BudgetExceeded(self.stats.cost, self._max_cost)


_INVALID = object()  # a cached text that does not validate against the cell's schema


def _value(cell: CellRequest, text: str) -> Any:
    """The cell's value from an answer's text (`_INVALID` when it fails validation)."""
    if cell.output_schema is None:
        return text
    from runtime.llm.structured import InvalidAnswer, parse_answer

    try:
        return parse_answer(text, cell.output_schema)
    except InvalidAnswer:
        return _INVALID


def _append_to_last_user(messages: tuple[Mapping[str, Any], ...], text: str) -> tuple[Mapping[str, Any], ...]:
    """`messages` with `text` appended (after a blank line) to the last user message."""
    out = list(messages)
    for index in range(len(out) - 1, -1, -1):
        message = out[index]
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            out[index] = {**message, "content": f"{content}\n\n{text}"}
        else:  # a list of content parts
            out[index] = {**message, "content": [*(content or []), {"type": "text", "text": text}]}
        return tuple(out)
    return (*out, {"role": "user", "content": text})


def _length_message(model: str, params: Mapping[str, Any]) -> str:
    limit = params.get("max_tokens", params.get("max_completion_tokens"))
    at = f" at max_tokens={limit}" if limit is not None else ""
    return f"{model}: the answer was cut off{at} (finish_reason=length); raise max_tokens in the model's or column's params"


def _invalid_message(model: str, invalid: Exception) -> str:
    return _one_line(
        f"{model}: the answer does not match the output schema after {MAX_REPAIRS} repair attempts: {invalid}"
    )


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class CacheWriter:
    """Commits answers on a thread of its own, each in its own transaction, in the order
    they were handed over.

    Why a thread: SQLite releases the GIL while it writes, and getting it back behind
    LiteLLM's busy threads cost the event loop ~0.7 ms per answer (measured), time in which
    no other cell moved; handing an answer over costs microseconds. An answer is committed
    within moments of landing; `close` waits for the last one. If a concurrent run stored
    the same key first, its answer stays in the cache (first answer wins) while this run
    keeps its own. A cache failure is raised by the next `put` or by `close`."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache
        self._queue: queue.SimpleQueue[tuple[str, CachedResponse] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="synthc-cache-writer", daemon=True)
        self._thread.start()

    def put(self, key: str, response: CachedResponse) -> None:
        self._raise()
        self._queue.put((key, response))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._cache.put(*item)
                except BaseException as exc:  # handed to the loop's thread by put/close
                    self._error = exc
