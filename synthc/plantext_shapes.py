"""Text of the plan parts that shape a dataset (for :mod:`synthc.plantext`): the row
source (index, arrivals, seed file), series and lookup columns, the newer steps, and
what decides the row count. Deterministic like the rest of the dump."""

from __future__ import annotations

import json
import math
from pathlib import PurePath
from typing import assert_never

from runtime.plan import (
    Arrivals,
    Check,
    Entity,
    LLMSource,
    LookupColumn,
    Plan,
    Profile,
    Sample,
    SeedFile,
    SeriesColumn,
    Sessionize,
    Source,
    TimeIndex,
    Unnest,
    Validate,
)
from synthc.timeparse import format_duration, format_us


def rows_text(plan: Plan) -> str:
    """The rows line: how many, and what decides it."""
    source = plan.source
    match source:
        case TimeIndex():
            entities = math.prod(e.count for e in source.entities)
            full = source.periods * entities
            text = f"{plan.rows:,}  ({source.periods:,} timestamps x {entities:,} entities)"
            return text if plan.rows == full else f"{text}, the first {plan.rows:,} of {full:,}"
        case Arrivals():
            expected = source.rate * (source.end - source.start) / 1e6
            return f"{plan.rows:,}  (events; {expected:,.0f} expected from the rate)"
        case SeedFile():
            return f"{plan.rows:,}  (rows of {PurePath(source.path).name})"
        case _:
            if plan.target is not None:
                return (
                    f"{plan.target.rows:,} kept  (target_rows; generating at most {plan.target.max_rows:,})"
                )
            return str(plan.rows)


def source_lines(source: Source) -> list[tuple[str, str]]:
    """The source section's (key, value) lines."""
    match source:
        case LLMSource():
            return [
                ("model", source.model),
                ("per_call", str(source.per_call)),
                ("prompt", json.dumps(source.prompt, ensure_ascii=False)),
                ("schema", source.schema),
            ]
        case TimeIndex():
            step = (
                format_duration(source.step_us)
                if source.step_us
                else f"{source.step_days}d (calendar)"
                if source.step_days
                else f"{source.step_months}mo (calendar)"
            )
            return [
                ("kind", "time index"),
                ("start", format_us(source.start)),
                ("every", step),
                ("periods", f"{source.periods:,}"),
                ("timezone", source.timezone),
                ("column", source.column),
                *_entity_rows(source.entities),
            ]
        case Arrivals():
            return [
                ("kind", "arrivals"),
                ("window", f"{format_us(source.start)} .. {format_us(source.end)}"),
                ("rate", f"{source.rate:.6g}/s"),
                ("profile", profile_text(source.profile)),
                ("buckets", format_duration(source.bucket_us)),
                ("timezone", source.timezone),
                ("column", source.column),
                *_entity_rows(source.entities),
            ]
        case SeedFile():
            text = f"{source.path} ({source.format}, {source.rows:,} rows, xxh3 {source.digest})"
            rows = [
                ("kind", "seed file"),
                ("file", text),
                ("columns", ", ".join(c for c, _ in source.columns)),
            ]
            if source.shuffle:
                rows.append(("shuffle", "true"))
            if source.limit is not None:
                rows.append(("limit", f"{source.limit:,}"))
            return rows
        case _:
            assert_never(source)


def _entity_rows(entities: tuple[Entity, ...]) -> list[tuple[str, str]]:
    from synthc.plantext import column_text, scalar

    out = []
    for e in entities:
        if e.values:
            how = ", ".join(scalar(v) for v in e.values)
        elif e.column is not None:
            how = column_text(e.column)
        else:
            how = f"1..{e.count}"
        out.append((f"entity {e.name}", f"{e.count:,}: {how}"))
    return out


def profile_text(profile: Profile) -> str:
    match profile.kind:
        case "ramp":
            return f"ramp to x{profile.height:g}"
        case "spike":
            return f"spike x{profile.height:g} at {format_us(profile.at_us)} for {format_duration(profile.width_us)}"
        case "points":
            where = (
                (lambda us: f"{us // 3_600_000_000:02d}:{us // 60_000_000 % 60:02d}")
                if profile.daily
                else format_duration
            )
            return "points " + ", ".join(f"{where(t)} x{m:g}" for t, m in profile.points)
    return profile.kind


def series_text(col: SeriesColumn) -> str:
    parts = [f"series base={col.base:g}"]
    if col.trend is not None:
        parts.append(f"trend={col.trend.kind}({col.trend.rate:g}/{format_duration(col.trend.per_us)})")
    for s in col.seasonality:
        phase = f" phase={format_duration(s.phase_us)}" if s.phase_us else ""
        parts.append(f"season={s.shape}({format_duration(s.period_us)}, {s.amplitude:g}{phase})")
    if col.noise is not None:
        n = col.noise
        extra = (f" df={n.df:g}" if n.dist == "student_t" else "") + (f" ar1={n.ar1:g}" if n.ar1 else "")
        parts.append(f"noise={n.dist}(sd={n.sd:g}{extra})")
    if col.walk is not None:
        parts.append(f"walk={col.walk.kind}(sd={col.walk.sd:g}, drift={col.walk.drift:g})")
    parts += [f"anomaly={a.kind}(rate={a.rate:g}, scale={a.scale:g})" for a in col.anomalies]
    if col.vary:
        parts.append("vary=" + ",".join(f"{k}:{v:g}" for k, v in col.vary))
    for key, value in (("min", col.min), ("max", col.max), ("round", col.round)):
        if value is not None:
            parts.append(f"{key}={value:g}")
    return " ".join(parts)


def lookup_text(col: LookupColumn) -> str:
    weights = f" weights={col.weights}" if col.weights else ""
    return f"lookup {PurePath(col.path).name}:{col.column}{weights} ({col.dtype})"


def shaped_step_text(step: Unnest | Validate | Sample | Sessionize) -> str:
    match step:
        case Unnest():
            return step.column + (f" prefix={step.prefix}" if step.prefix else "")
        case Validate():
            checks = "; ".join(_check_text(c) for c in step.checks)
            flag = f" flag={step.flag}" if step.on_fail == "flag" else ""
            return f"{checks}  on_fail={step.on_fail}{flag}"
        case Sample():
            return f"n={step.n}" if step.n is not None else f"fraction={step.fraction:g}"
        case Sessionize():
            seq = f" sequence={step.sequence}" if step.sequence else ""
            return f"by={step.by} time={step.time} gap={format_duration(step.gap_us)} session={step.session}{seq}"
        case _:
            assert_never(step)


def _check_text(check: Check) -> str:
    parts = [check.column]
    for key in ("min", "max", "regex", "values", "min_length", "max_length", "schema"):
        value = getattr(check, key)
        if value is not None:
            parts.append(f"{key}={json.dumps(list(value) if key == 'values' else value, ensure_ascii=False)}")
    if check.not_null:
        parts.append("not_null")
    return " ".join(parts)
