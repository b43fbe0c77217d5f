"""Lower the columns and steps that came with shaped datasets: ``series`` and ``lookup``
columns, the ``unnest``, ``validate``, ``sample`` and ``sessionize`` steps, and
``target_rows``. Problems become diagnostics at the key at fault."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from runtime import plan as ir
from runtime.defaults import MAX_ROWS
from synthc.diagnostics import SpecPath
from synthc.lower_llm import Reporter
from synthc.resolve_steps import unnest_arg
from synthc.shapes import Shape
from synthc.timeparse import TimeParseError, duration_us

DEFAULT_TREND_PER = "1d"
DEFAULT_ANOMALY_SCALE = 6.0


# --------------------------------------------------------------------------- series


def series_column(
    report: Reporter, data: Mapping[str, Any], name: str, spec: Mapping[str, Any], nulls: float
) -> ir.SeriesColumn | None:
    path: SpecPath = ("columns", name)
    if "index" not in data:
        report.error(
            "needs-index",
            f"column `{name}`: a series needs a time index (`index:` at the top of the spec)",
            (*path, "type"),
            hint="e.g. index: {start: 2024-01-01, end: 2024-02-01, every: 1h}",
        )
        return None
    for key in ("base", "min", "max"):
        if isinstance(spec.get(key), float) and not math.isfinite(spec[key]):
            report.error("bad-value", f"column `{name}`: `{key}` must be a finite number", (*path, key))
    lo, hi = spec.get("min"), spec.get("max")
    if lo is not None and hi is not None and float(lo) > float(hi):
        report.error(
            "min-greater-than-max", f"column `{name}`: min ({lo}) is greater than max ({hi})", (*path, "min")
        )
    noise = _noise(report, name, spec.get("noise"), path)
    growth = spec.get("trend") or {}
    if growth.get("kind") == "exponential" and not float(growth.get("rate", 0)) > -1:
        report.error(
            "bad-value",
            f"column `{name}`: an exponential trend's rate must be more than -1 (a factor 1 + rate per `per`)",
            (*path, "trend", "rate"),
        )
    try:
        trend = _trend(spec.get("trend"))
        seasonality = tuple(_season(s) for s in spec.get("seasonality") or [])
    except TimeParseError as exc:
        report.error("bad-datetime", f"column `{name}`: {exc}", path)
        return None
    for i, season in enumerate(seasonality):
        if season.period_us <= 0:
            report.error("bad-value", f"column `{name}`: a seasonality period must be longer than 0",
                         (*path, "seasonality", i, "period"))  # fmt: skip
    walk = spec.get("walk")
    anomalies = spec.get("anomalies")
    anomaly_list = [anomalies] if isinstance(anomalies, Mapping) else (anomalies or [])
    return ir.SeriesColumn(
        name,
        float(spec.get("base", 0.0)),
        trend,
        seasonality,
        noise,
        None
        if walk is None
        else ir.Walk(walk.get("kind", "arithmetic"), float(walk["sd"]), float(walk.get("drift", 0.0))),
        tuple(
            ir.Anomalies(
                a.get("kind", "spike"), float(a["rate"]), float(a.get("scale", DEFAULT_ANOMALY_SCALE))
            )
            for a in anomaly_list
        ),
        tuple(sorted((str(k), float(v)) for k, v in (spec.get("vary") or {}).items())),
        None if lo is None else float(lo),
        None if hi is None else float(hi),
        None if spec.get("round") is None else int(spec["round"]),
        nulls,
    )


def _trend(spec: Mapping[str, Any] | None) -> ir.Trend | None:
    if spec is None:
        return None
    per = duration_us(str(spec.get("per", DEFAULT_TREND_PER)))
    if per <= 0:
        raise TimeParseError("trend: `per` must be longer than 0")
    return ir.Trend(spec.get("kind", "linear"), float(spec["rate"]), per)


def _season(spec: Mapping[str, Any]) -> ir.Seasonality:
    phase = duration_us(str(spec["phase"])) if "phase" in spec else 0
    return ir.Seasonality(
        duration_us(str(spec["period"])), float(spec["amplitude"]), phase, spec.get("shape", "sine")
    )


def _noise(report: Reporter, name: str, spec: Mapping[str, Any] | None, path: SpecPath) -> ir.Noise | None:
    if spec is None:
        return None
    dist = spec.get("dist", "normal")
    df = float(spec.get("df", 0.0))
    if dist == "student_t" and not df > 2:
        report.error(
            "bad-distribution",
            f"column `{name}`: student_t noise needs `df` greater than 2 (its variance is infinite otherwise)",
            (*path, "noise", "df") if "df" in spec else (*path, "noise"),
            key="df" not in spec,
        )
    elif dist == "normal" and "df" in spec:
        report.error("bad-distribution", f"column `{name}`: `df` belongs to student_t noise",
                     (*path, "noise", "df"), key=True)  # fmt: skip
    return ir.Noise(
        dist, float(spec.get("sd", 1.0)), df if dist == "student_t" else 0.0, float(spec.get("ar1", 0.0))
    )


# --------------------------------------------------------------------------- lookup


def lookup_column(
    report: Reporter, shape: Shape, name: str, spec: Mapping[str, Any], nulls: float
) -> ir.LookupColumn | None:
    info = shape.seeds.get(str(spec["path"]))
    if info is None:
        return None  # the shape pass reported why
    path: SpecPath = ("columns", name)
    for key in ("column", "weights"):
        wanted = spec.get(key)
        if wanted is not None and not info.has(str(wanted)):
            from synthc.resolve import _did_you_mean

            names = [c for c, _ in info.columns]
            report.error(
                "seed-file",
                f"column `{name}`: seed file `{spec['path']}` has no column `{wanted}`",
                (*path, key),
                hint=_did_you_mean(str(wanted), names) or f"its columns: {', '.join(names)}",
            )
            return None
    weights = spec.get("weights")
    if weights is not None and not _numeric(info.dtype(str(weights))):
        report.error(
            "seed-file",
            f"column `{name}`: weights column `{weights}` holds {info.dtype(str(weights))}, not numbers",
            (*path, "weights"),
        )
        return None
    column = str(spec["column"])
    return ir.LookupColumn(
        name, info.path, info.digest, info.format, column, info.dtype(column),
        None if weights is None else str(weights), nulls,
    )  # fmt: skip


def _numeric(dtype: str) -> bool:
    return dtype.startswith(("Int", "UInt", "Float", "Decimal"))


# --------------------------------------------------------------------------- steps


def shaped_step(report: Reporter, kind: str, arg: Any, path: SpecPath) -> ir.Step | None:
    """The IR of an unnest, validate, sample or sessionize step (None for other kinds)."""
    match kind:
        case "unnest":
            column, prefix = unnest_arg(arg)
            return None if column is None else ir.Unnest(column, prefix)
        case "validate":
            checks = tuple(
                _check(report, str(c), spec, (*path, "checks", c)) for c, spec in arg["checks"].items()
            )
            return ir.Validate(checks, arg.get("on_fail", "fail"), str(arg.get("flag", "valid")))
        case "sample":
            return ir.Sample(n=int(arg["n"])) if "n" in arg else ir.Sample(fraction=float(arg["fraction"]))
        case "sessionize":
            try:
                gap = duration_us(str(arg["gap"]))
            except TimeParseError as exc:
                report.error("bad-datetime", f"sessionize: gap: {exc}", (*path, "gap"))
                return None
            seq = arg.get("sequence")
            return ir.Sessionize(str(arg["by"]), str(arg["time"]), gap, str(arg.get("session", "session_id")),
                                 None if seq is None else str(seq))  # fmt: skip
    return None


def _check(report: Reporter, column: str, spec: Mapping[str, Any], path: SpecPath) -> ir.Check:
    lo, hi = spec.get("min"), spec.get("max")
    if lo is not None and hi is not None and float(lo) > float(hi):
        report.error(
            "min-greater-than-max",
            f"validate `{column}`: min ({lo}) is greater than max ({hi})",
            (*path, "min"),
        )
    regex = spec.get("regex")
    if regex is not None:
        try:
            re.compile(str(regex))
        except re.error as exc:
            report.error("bad-value", f"validate `{column}`: regex does not compile: {exc}", (*path, "regex"))
    schema = spec.get("schema")
    if schema is not None:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            report.error(
                "bad-output-schema", f"validate `{column}`: schema: {exc.message}", (*path, "schema")
            )
    values = spec.get("values")
    return ir.Check(
        column,
        lo,
        hi,
        None if regex is None else str(regex),
        None if values is None else tuple(values),
        spec.get("min_length"),
        spec.get("max_length"),
        bool(spec.get("not_null", False)),
        None if schema is None else ir.canonical_json(schema),
    )


# --------------------------------------------------------------------------- target rows


def target(report: Reporter, data: Mapping[str, Any], shape: Shape) -> ir.Target | None:
    """``target_rows`` (and ``max_rows``), refused beside ``rows`` or a row source."""
    if "target_rows" not in data:
        if "max_rows" in data:
            report.error(
                "conflicting-keys", "`max_rows` only applies with `target_rows`", ("max_rows",), key=True
            )
        return None
    if "rows" in data:
        report.error(
            "conflicting-keys",
            "give either `rows` (rows generated) or `target_rows` (rows kept after the steps), not both",
            ("target_rows",),
            key=True,
        )
        return None
    if shape.kind is not None:
        report.error(
            "conflicting-keys",
            f"`target_rows` cannot be used with `{shape.kind}`: the {shape.kind} decides how many rows there are",
            ("target_rows",),
            key=True,
        )
        return None
    rows = int(data["target_rows"])
    cap = int(data.get("max_rows", default_max_rows(rows)))
    if cap < rows:
        report.error("bad-value", f"max_rows ({cap:,}) is less than target_rows ({rows:,})", ("max_rows",))
    if max(cap, rows) > MAX_ROWS:
        where = "max_rows" if "max_rows" in data else "target_rows"
        report.error(
            "too-many-rows",
            f"{where}: generating up to {max(cap, rows):,} rows is more than synthc generates in one run "
            f"({MAX_ROWS:,})",
            (where,),
            hint=None
            if where == "max_rows"
            else "the default cap is 10 x target_rows: set a smaller max_rows",
        )
    return ir.Target(rows, max(cap, rows))


def default_max_rows(target_rows: int) -> int:
    """How many rows a target may generate unless the spec says: 10x, at least 1,000."""
    return max(10 * target_rows, 1000)
