"""Instants and durations of the spec language, resolved without reading a clock.

Absolute: ``2024-01-01``, ``2024-01-01T10:00:00Z``, ``2024-01-01 10:00:00+02:00``
(naive means UTC). Relative to ``as_of``: ``-90d``, ``0d``, ``+12h``, ``1.5w``
(units s, m, h, d, w).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

_RELATIVE = re.compile(r"^\s*([+-]?)(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_US = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000, "w": 604_800_000_000}
US_PER_DAY = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TimeParseError(ValueError):
    """The text is neither an absolute instant nor a relative offset."""


def is_relative(text: str) -> bool:
    return bool(_RELATIVE.match(text))


def relative_us(text: str) -> int:
    """``-90d`` -> microseconds (negative into the past)."""
    match = _RELATIVE.match(text)
    if not match:
        raise TimeParseError(f"`{text}` is not a relative offset like -90d or +12h")
    sign, amount, unit = match.groups()
    value = round(float(amount) * _UNIT_US[unit])
    return -value if sign == "-" else value


def absolute_us(text: str) -> int:
    """An ISO 8601 date or datetime -> microseconds since the epoch (UTC)."""
    raw = text.strip()
    try:
        if len(raw) == 10:
            parsed = datetime.combine(date.fromisoformat(raw), datetime.min.time())
        else:
            parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise TimeParseError(
            f"`{text}` is not a date or datetime (expected e.g. 2024-01-31 or 2024-01-31T12:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def instant_us(text: str, as_of_us: int | None) -> int:
    """Absolute or relative; a relative offset needs ``as_of_us`` (else TimeParseError)."""
    if is_relative(text):
        if as_of_us is None:
            raise TimeParseError(f"the relative date `{text}` needs `as_of` at the top of the spec")
        return as_of_us + relative_us(text)
    return absolute_us(text)


def format_us(us: int) -> str:
    """Microseconds since the epoch -> ``2025-01-01T00:00:00Z`` (for plan dumps)."""
    try:
        moment = _EPOCH + timedelta(microseconds=us)
    except OverflowError:
        return f"{us}us"
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{moment.microsecond:06d}Z" if moment.microsecond else f"{stamp}Z"
