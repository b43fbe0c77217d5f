"""Rate and concurrency limits for the LLM scheduler, with no sleeping of their own.

- `TokenBucket` answers "how long until this much is allowed" and reserves it at once, so
  callers queue in arrival order and sleep exactly that long (no polling, no busy-wait).
- `AdaptiveLimit` is a concurrency limit that shrinks on rate limiting and grows back on
  success (AIMD, as TCP does), handing freed slots to waiters first-come, first-served.

Both live on one event loop and need no locks. Timing never changes an answer: these only
decide when a call starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

# A bucket holds this many seconds of its rate: the largest burst it lets through at once.
BURST_SECONDS = 1.0


class LimitClosed(Exception):
    """Raised to waiters of a closed `AdaptiveLimit` (the run is stopping)."""


class TokenBucket:
    """``per_minute`` units a minute (requests, or estimated tokens), reserved in order.

    `reserve` takes the units now and returns the seconds to wait before using them (0.0
    when they were available). Over any window of ``t`` seconds at most
    ``capacity + rate * t`` units are granted; one reservation larger than the capacity is
    allowed and simply waits longer."""

    def __init__(self, per_minute: float, now: float) -> None:
        if not per_minute > 0:
            raise ValueError(f"a rate must be positive, got {per_minute!r}")
        self.rate = per_minute / 60.0  # units per second
        self.capacity = max(1.0, self.rate * BURST_SECONDS)
        self._level = self.capacity  # negative: units already promised to waiting callers
        self._updated = now

    def reserve(self, amount: float, now: float) -> float:
        """Take `amount` units; the seconds until they may be used (never negative)."""
        self._level = min(self.capacity, self._level + (now - self._updated) * self.rate)
        self._updated = now
        self._level -= amount
        return max(0.0, -self._level / self.rate)


class AdaptiveLimit:
    """At most ``limit`` holders at once; ``limit`` moves between 1 and ``maximum``.

    `decrease` halves the limit (a 429), at most once per window: a failure of a call that
    started before the previous decrease does not count again, so one burst of 429s from
    calls already in flight halves once. `increase` adds ``1 / limit`` (a success): about
    one slot per round of successful calls. Waiters are served in arrival order."""

    def __init__(self, maximum: int) -> None:
        if maximum < 1:
            raise ValueError(f"concurrency must be at least 1, got {maximum!r}")
        self.maximum = maximum
        self._limit = float(maximum)
        self._active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._last_decrease = float("-inf")
        self._closed = False

    @property
    def limit(self) -> int:
        """The current number of slots (an integer between 1 and ``maximum``)."""
        return int(self._limit)

    @property
    def active(self) -> int:
        return self._active

    async def acquire(self) -> None:
        """Wait for a slot; raises `LimitClosed` if the limit is (or gets) closed."""
        if self._closed:
            raise LimitClosed
        if not self._waiters and self._active < self.limit:
            self._active += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the slot is handed over by _wake (already counted in _active)
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()  # handed a slot while being cancelled: give it back
            else:
                self._discard(waiter)
            raise

    def release(self) -> None:
        self._active -= 1
        self._wake()

    def increase(self) -> None:
        self._limit = min(float(self.maximum), self._limit + 1.0 / self._limit)
        self._wake()

    def decrease(self, started: float, now: float) -> bool:
        """Halve the limit (not below 1) unless a decrease already happened since
        `started` (the failing call's start time, on the clock of `now`); True when halved."""
        if started < self._last_decrease:
            return False
        self._last_decrease = now
        self._limit = max(1.0, self._limit / 2.0)
        return True

    def close(self) -> None:
        """Fail every waiter (and later acquire) with `LimitClosed`; holders keep their slots."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(LimitClosed())

    def _wake(self) -> None:
        while self._waiters and self._active < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._active += 1
                waiter.set_result(None)

    def _discard(self, waiter: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)


def estimated_tokens(messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> int:
    """Tokens a call may use, for a TPM bucket: characters of the messages' contents / 4,
    plus ``max_tokens`` (or ``max_completion_tokens``) when set. An estimate, on purpose:
    no tokenizer is loaded to pace requests."""
    chars = sum(len(json.dumps(m.get("content"), ensure_ascii=False)) for m in messages)
    limit = params.get("max_tokens", params.get("max_completion_tokens"))
    return chars // 4 + (limit if isinstance(limit, int) and not isinstance(limit, bool) else 0)
