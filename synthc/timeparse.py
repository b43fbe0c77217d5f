"""Instants and durations of the spec language, resolved without reading a clock.

Absolute: ``2024-01-01``, ``2024-01-01T10:00:00Z``, ``2024-01-01 10:00:00+02:00``
(naive means UTC). Relative to ``as_of``: ``-90d``, ``0d``, ``+12h``, ``1.5w``
(units s, m, h, d, w).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

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


# --------------------------------------------------------------------------- durations, steps, rates

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|mo|y)\s*$")
_FIXED_US = {"ms": 1_000, **_UNIT_US}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*/\s*(s|sec|m|min|h|hour|d|day|w|week)\s*$")
_RATE_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400,
                 "w": 604800, "week": 604800}  # fmt: skip


def duration_us(text: str) -> int:
    """A fixed duration (``30s``, ``15m``, ``24h``, ``7d``, ``1.5h``, ``250ms``) in µs;
    days and weeks count 24 hours. Calendar units (mo, y) are refused."""
    match = _DURATION.match(str(text))
    if not match or match.group(2) in ("mo", "y"):
        raise TimeParseError(
            f"`{text}` is not a duration (expected a number and a unit: ms, s, m, h, d, w, e.g. 24h)"
        )
    return round(float(match.group(1)) * _FIXED_US[match.group(2)])


@dataclass(frozen=True)
class Step:
    """A time index step: exactly one of a fixed length, calendar days or months."""

    us: int = 0
    days: int = 0
    months: int = 0

    def text(self) -> str:
        if self.months:
            return f"{self.months // 12}y" if self.months % 12 == 0 else f"{self.months}mo"
        if self.days:
            return f"{self.days // 7}w" if self.days % 7 == 0 else f"{self.days}d"
        return format_duration(self.us)


def index_step(text: str, timezone: str) -> Step:
    """``every`` of a time index. s, m, h (and ms) are fixed lengths; d and w are calendar
    days on the local clock of ``timezone`` (fixed 24 h in UTC); mo and y are calendar
    months and must be whole numbers."""
    match = _DURATION.match(str(text))
    if not match:
        raise TimeParseError(f"`{text}` is not a step (expected a number and a unit: s, m, h, d, w, mo, y)")
    amount, unit = match.groups()
    if unit in ("mo", "y", "d", "w") and not float(amount).is_integer():
        raise TimeParseError(f"`{text}`: calendar steps ({unit}) take a whole number")
    if unit in ("mo", "y"):
        return Step(months=int(float(amount)) * (12 if unit == "y" else 1))
    if unit in ("d", "w") and timezone != "UTC":
        return Step(days=int(float(amount)) * (7 if unit == "w" else 1))
    return Step(us=round(float(amount) * _FIXED_US[unit]))


def format_duration(us: int) -> str:
    """µs -> the largest unit that divides it: ``86400000000`` -> ``1d``."""
    for unit, size in (("w", _UNIT_US["w"]), ("d", US_PER_DAY), ("h", _UNIT_US["h"]), ("m", _UNIT_US["m"]),
                       ("s", _UNIT_US["s"]), ("ms", 1_000)):  # fmt: skip
        if us and us % size == 0:
            return f"{us // size}{unit}"
    return f"{us}us"


def rate_per_second(value: object) -> float:
    """``100/s``, ``5/min``, ``3/h``, ``1000/d`` or a plain number (per second)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _RATE.match(str(value))
    if not match:
        raise TimeParseError(f"`{value}` is not a rate (expected e.g. 100/s, 5/min, 3/h or 1000/d)")
    return float(match.group(1)) / _RATE_SECONDS[match.group(2)]


def local_instant_us(text: str, timezone: str) -> int:
    """An absolute date/datetime; without an offset it is a wall-clock time in ``timezone``
    (the earlier of two at a DST fall-back; a time in a spring-forward gap moves forward)."""
    raw = str(text).strip()
    try:
        parsed = (
            datetime.combine(date.fromisoformat(raw), datetime.min.time())
            if len(raw) == 10
            else datetime.fromisoformat(raw)
        )
    except ValueError:
        raise TimeParseError(
            f"`{text}` is not a date or datetime (expected e.g. 2024-01-31 or 2024-01-31T12:00:00)"
        ) from None
    if parsed.tzinfo is None:
        zone = UTC if timezone == "UTC" else zone_info(timezone)
        parsed = parsed.replace(tzinfo=zone, fold=0)
        # a wall time in a spring-forward gap does not exist: round trip moves it forward
        parsed = parsed.astimezone(UTC)
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def zone_info(name: str) -> tzinfo:
    """The IANA zone ``name``; TimeParseError if this machine does not know it."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeParseError(
            f"`{name}` is not a time zone (expected an IANA name like UTC or Europe/Berlin)"
        ) from None
