"""Lower the row sources that shape a dataset: ``index``, ``arrivals`` and ``from``.

Times are resolved here (time zones, calendar steps, rates), so the runtime never reads
a clock or a zone database to know what the spec means. Each lowering returns the IR
node and the number of rows it makes; every problem is reported at the key at fault.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from runtime import plan as ir
from runtime.defaults import MAX_ROWS
from synthc.diagnostics import SpecPath
from synthc.lower_llm import Reporter
from synthc.shapes import Shape
from synthc.timeparse import (
    Step,
    TimeParseError,
    duration_us,
    format_duration,
    index_step,
    local_instant_us,
    rate_per_second,
    zone_info,
)

ColumnFn = Callable[[str, Mapping[str, Any], SpecPath], "ir.Column | None"]
_TIME_OF_DAY = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")
US_PER_DAY = 86_400_000_000
# Profile defaults: a ramp ends at 3x its start; a spike is 10x for 1% of the window.
RAMP_HEIGHT, SPIKE_HEIGHT, SPIKE_WIDTH = 3.0, 10.0, 0.01


def lower_row_source(
    report: Reporter, data: Mapping[str, Any], shape: Shape, column: ColumnFn, seed: int
) -> tuple[ir.Source | None, int | None]:
    """(the index, arrivals or seed file, the rows it makes); (None, None) for any other
    spec (an LLM source is lowered with the models) or when the source has errors."""
    match shape.kind:
        case "index":
            index = _index(report, data["index"], column)
            return (index, _rows(report, index)) if index is not None else (None, None)
        case "arrivals":
            return _arrivals(report, data["arrivals"], column, seed)
        case "from":
            return _seed_file(data["from"], shape)
    return None, None


# --------------------------------------------------------------------------- index


def _index(report: Reporter, spec: Mapping[str, Any], column: ColumnFn) -> ir.TimeIndex | None:
    path: SpecPath = ("index",)
    tz = _timezone(report, spec, path)
    start = _instant(report, spec, "start", tz, path)
    try:
        step = index_step(spec["every"], tz or "UTC")
    except TimeParseError as exc:
        report.error("bad-datetime", f"index: every: {exc}", (*path, "every"))
        return None
    if step.us <= 0 and not step.days and not step.months:
        report.error("bad-value", "index: `every` must be longer than 0", (*path, "every"))
        return None
    if ("end" in spec) == ("periods" in spec):
        report.error(
            "conflicting-keys" if "end" in spec else "missing-key",
            "index: give either `end` or `periods`" + (", not both" if "end" in spec else ""),
            path,
            key=True,
            hint="e.g. end: 2024-02-01 (exclusive), or periods: 744",
        )
        return None
    entities = _entities(report, spec.get("entities") or {}, (*path, "entities"), column)
    if tz is None or start is None or entities is None:
        return None
    periods = int(spec["periods"]) if "periods" in spec else _periods(report, spec, start, step, tz)
    if periods is None:
        return None
    return ir.TimeIndex(
        start, periods, step.us, step.days, step.months, tz, str(spec.get("column", "timestamp")), entities
    )


def _periods(report: Reporter, spec: Mapping[str, Any], start: int, step: Step, tz: str) -> int | None:
    path: SpecPath = ("index", "end")
    end = _instant(report, spec, "end", tz, ("index",))
    if end is None:
        return None
    if end <= start:
        report.error(
            "bad-time-range", f"index: end ({spec['end']}) is not after start ({spec['start']})", path
        )
        return None
    if step.us:
        count, rest = divmod(end - start, step.us)
    else:
        count, rest = _calendar_steps(start, end, step, tz)
    if rest:
        report.error(
            "bad-time-range",
            f"index: {spec['start']} .. {spec['end']} is not a whole number of {step.text()} steps "
            f"({count:,} step{'' if count == 1 else 's'} and {format_duration(rest) if step.us else 'a part of one'} left over)",
            path,
            hint=f"use periods: {count}, or an end that is a whole number of steps after start",
        )
        return None
    return count


def _calendar_steps(start: int, end: int, step: Step, tz: str) -> tuple[int, int]:
    """(whole calendar steps from start to end, µs left over after them) on local time."""
    zone = UTC if tz == "UTC" else zone_info(tz)
    a = (
        (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=start))
        .astimezone(zone)
        .replace(tzinfo=None)
    )
    b = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=end)).astimezone(zone).replace(tzinfo=None)
    if step.days:
        whole = (b - a).days // step.days
        reached = a + timedelta(days=whole * step.days)
    else:
        months = (b.year - a.year) * 12 + b.month - a.month
        whole = months // step.months
        while whole > 0 and _add_months(a, whole * step.months) > b:
            whole -= 1
        reached = _add_months(a, whole * step.months)
    rest = round((b - reached).total_seconds() * 1_000_000)
    return whole, rest


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def _rows(report: Reporter, index: ir.TimeIndex) -> int:
    rows = index.periods * math.prod(e.count for e in index.entities)
    if rows > MAX_ROWS:
        report.error(
            "too-many-rows",
            f"index: {index.periods:,} timestamps x {rows // index.periods:,} entities = {rows:,} rows, "
            f"more than synthc generates in one run ({MAX_ROWS:,})",
            ("index",),
            key=True,
        )
    return rows


# --------------------------------------------------------------------------- entities


def _entities(
    report: Reporter, spec: Mapping[str, Any], path: SpecPath, column: ColumnFn
) -> tuple[ir.Entity, ...] | None:
    out: list[ir.Entity] = []
    ok = True
    for name, item in spec.items():
        entity = _entity(report, str(name), item, (*path, name), column)
        ok = ok and entity is not None
        if entity is not None:
            out.append(entity)
    return tuple(out) if ok else None


def _entity(report: Reporter, name: str, item: Any, path: SpecPath, column: ColumnFn) -> ir.Entity | None:
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return ir.Entity(name, item)
    if isinstance(item, list):
        return ir.Entity(name, len(item), values=tuple(item))
    spec = {k: v for k, v in item.items() if k != "count"}
    if spec.get("type") == "category" and "count" not in item:
        values = spec.get("values")
        keys = tuple(values) if isinstance(values, list | Mapping) else ()
        if spec.get("given") is not None:
            report.error("bad-value", f"entity `{name}`: an entity cannot be `given` another column", path)
            return None
        return ir.Entity(name, len(keys), values=keys)
    col = column(name, spec, path)
    return None if col is None else ir.Entity(name, int(item["count"]), column=col)


# --------------------------------------------------------------------------- arrivals


def _arrivals(
    report: Reporter, spec: Mapping[str, Any], column: ColumnFn, seed: int
) -> tuple[ir.Arrivals | None, int | None]:
    path: SpecPath = ("arrivals",)
    tz = _timezone(report, spec, path)
    start, end = _instant(report, spec, "from", tz, path), _instant(report, spec, "to", tz, path)
    rate = _rate(report, spec)
    entities = _entities(report, spec.get("entities") or {}, (*path, "entities"), column)
    if tz is None or start is None or end is None or rate is None or entities is None:
        return None, None
    if end <= start:
        report.error(
            "bad-time-range", f"arrivals: to ({spec['to']}) is not after from ({spec['from']})", (*path, "to")
        )
        return None, None
    if spec.get("per_entity"):
        rate *= math.prod(e.count for e in entities) if entities else 1
    expected = rate * (end - start) / 1e6
    if expected > MAX_ROWS:
        report.error(
            "too-many-rows",
            f"arrivals: {spec['rate']} from {spec['from']} to {spec['to']} would make about {expected:,.0f} "
            f"events, more than synthc generates in one run ({MAX_ROWS:,})",
            (*path, "rate"),
            hint="lower the rate or shorten the window",
        )
        return None, None
    profile = _profile(report, spec.get("profile", "constant"), start, end, tz)
    if profile is None:
        return None, None
    from runtime.shapes.arrivals import arrival_rows, bucket_us_for

    arrivals = ir.Arrivals(
        rate,
        start,
        end,
        bucket_us_for(rate, start, end),
        profile,
        tz,
        str(spec.get("column", "timestamp")),
        entities,
    )
    return arrivals, arrival_rows(arrivals, seed)


def _rate(report: Reporter, spec: Mapping[str, Any]) -> float | None:
    try:
        rate = rate_per_second(spec["rate"])
    except TimeParseError as exc:
        report.error("bad-value", f"arrivals: rate: {exc}", ("arrivals", "rate"))
        return None
    if not math.isfinite(rate) or rate <= 0:
        report.error(
            "bad-value",
            f"arrivals: rate must be more than 0 events per unit, got {spec['rate']}",
            ("arrivals", "rate"),
            hint="e.g. rate: 100/s or rate: 5/min",
        )
        return None
    return rate


def _profile(report: Reporter, spec: Any, start: int, end: int, tz: str) -> ir.Profile | None:
    path: SpecPath = ("arrivals", "profile")
    if isinstance(spec, list):
        return _points(report, spec, path)
    kind = spec if isinstance(spec, str) else str(spec["kind"])
    options = spec if isinstance(spec, Mapping) else {}
    width = round((end - start) * SPIKE_WIDTH)
    if "width" in options:
        try:
            width = duration_us(options["width"])
        except TimeParseError as exc:
            report.error("bad-datetime", f"arrivals: profile: width: {exc}", (*path, "width"))
            return None
    at = (start + end) // 2
    if "at" in options:
        found = _instant(report, options, "at", tz, path)
        if found is None:
            return None
        at = found
    height = float(options.get("height", RAMP_HEIGHT if kind == "ramp" else SPIKE_HEIGHT))
    if kind == "spike":
        return ir.Profile("spike", at_us=at, width_us=max(width, 1), height=height)
    if kind == "ramp":
        return ir.Profile("ramp", height=height)
    return ir.Profile(kind)  # type: ignore[arg-type]  # the schema allows only the names


def _points(report: Reporter, items: list[Any], path: SpecPath) -> ir.Profile | None:
    points: list[tuple[int, float]] = []
    daily: set[bool] = set()
    for i, (when, multiplier) in enumerate(items):
        clock = _TIME_OF_DAY.match(str(when))
        try:
            if clock:
                h, m, s = int(clock.group(1)), int(clock.group(2)), int(clock.group(3) or 0)
                if h > 24 or m > 59 or s > 59 or (h == 24 and (m or s)):
                    raise TimeParseError(f"`{when}` is not a time of day")
                offset = ((h * 60 + m) * 60 + s) * 1_000_000
            else:
                offset = duration_us(str(when))
        except TimeParseError as exc:
            report.error("bad-datetime", f"arrivals: profile point {i + 1}: {exc}", (*path, i, 0),
                         hint="a time of day like 08:30, or an offset from `from` like 6h")  # fmt: skip
            return None
        daily.add(bool(clock))
        points.append((offset, float(multiplier)))
    if len(daily) > 1:
        report.error(
            "bad-value",
            "arrivals: profile points mix times of day (08:00) and offsets (6h)",
            path,
            hint="use times of day for a daily pattern, or offsets from `from` for the whole window",
        )
        return None
    if not any(m > 0 for _, m in points):
        report.error("bad-value", "arrivals: every profile point has multiplier 0: no events", path)
        return None
    return ir.Profile("points", points=tuple(sorted(points)), daily=daily == {True})


# --------------------------------------------------------------------------- from


def _seed_file(spec: Mapping[str, Any], shape: Shape) -> tuple[ir.SeedFile | None, int | None]:
    info = shape.seeds.get(str(spec["path"]))
    if info is None:
        return None, None
    limit = spec.get("limit")
    seed_file = ir.SeedFile(
        info.path,
        info.digest,
        info.format,
        info.columns,
        info.rows,
        bool(spec.get("shuffle", False)),
        None if limit is None else int(limit),
    )
    return seed_file, info.rows if limit is None else min(info.rows, int(limit))


# --------------------------------------------------------------------------- helpers


def _timezone(report: Reporter, spec: Mapping[str, Any], path: SpecPath) -> str | None:
    tz = str(spec.get("timezone", "UTC"))
    if tz == "UTC":
        return tz
    try:
        zone_info(tz)
    except TimeParseError as exc:
        report.error("bad-value", f"{path[0]}: timezone: {exc}", (*path, "timezone"))
        return None
    return tz


def _instant(
    report: Reporter, spec: Mapping[str, Any], key: str, tz: str | None, path: SpecPath
) -> int | None:
    try:
        return local_instant_us(str(spec[key]), tz or "UTC")
    except TimeParseError as exc:
        report.error("bad-datetime", f"{path[0]}: {key}: {exc}", (*path, key))
        return None
