"""Check Polars SQL expressions (columns and filter steps) against the plan's types.

Polars is imported only here, and only when a spec has expressions; a type error or a
syntax error becomes a diagnostic at the expression, with Polars' own first line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime import plan as ir
from synthc.diagnostics import Diagnostic, SpecPath
from synthc.loader import SourceMap

_CACHE_FORMAT = 1

if TYPE_CHECKING:
    import polars as pl


def check_expressions(plan: ir.Plan, smap: SourceMap, cache_dir: Path | None = None) -> list[Diagnostic]:
    """Diagnostics for every expression column and filter step Polars rejects.

    Importing Polars costs more than the rest of ``synthc check``, so the verdict is
    cached in ``cache_dir`` (default ``.synthc/checks``), keyed by the Polars version and
    everything the verdict depends on; a missing, unreadable or corrupt entry is a miss."""
    has_filter = any(isinstance(s, ir.Filter) for s in plan.steps)
    if not has_filter and not any(isinstance(c, ir.ExpressionColumn) for c in plan.columns):
        return []
    from synthc.diskcache import JsonCache, cache_root, module_identity

    cache = JsonCache(cache_dir or cache_root() / "checks")
    relevant = {
        "columns": ir.to_data(plan.columns),
        "order": plan.column_order,
        "steps": ir.to_data(plan.steps),
    }
    key = f"polars={module_identity('polars')};format={_CACHE_FORMAT};" + ir.canonical_json(relevant)
    cached = cache.get(key)
    if isinstance(cached, list):
        try:
            return [Diagnostic(str(c), str(m), smap.span(tuple(p)), tuple(p), h) for c, m, p, h in cached]
        except (TypeError, ValueError, AssertionError):
            pass  # a corrupt entry is a miss
    diags = _check(plan, smap)
    cache.put(key, [[d.code, d.message, list(d.path), d.hint] for d in diags])
    return diags


def _check(plan: ir.Plan, smap: SourceMap) -> list[Diagnostic]:
    import polars as pl

    diags: list[Diagnostic] = []
    schema: dict[str, Any] = {}
    for col in plan.columns:
        path: SpecPath = ("columns", col.name, "expr")
        if isinstance(col, ir.ExpressionColumn):
            dtype = _try(pl, schema, col.expr, f"column `{col.name}`", path, smap, diags)
            schema[col.name] = dtype if dtype is not None else pl.Null
        elif isinstance(col, ir.RecordField) and plan.source is not None:
            schema[col.name] = _record_dtype(plan.source, col.name)
        else:
            schema[col.name] = dtype_of(col)
    current = {name: schema[name] for name in plan.column_order if name in schema}
    for i, step in enumerate(plan.steps):
        if isinstance(step, ir.Filter):
            path = ("steps", i, "filter")
            dtype = _try(pl, current, step.expr, f"step {i + 1} (`filter`)", path, smap, diags)
            if dtype is not None and dtype not in (pl.Boolean, pl.Null):
                diags.append(
                    Diagnostic(
                        "expression-error",
                        f"step {i + 1} (`filter`): the expression gives {dtype}, not true/false",
                        smap.span(path),
                        path,
                        hint="a filter keeps the rows where the expression is true, e.g. price > 10",
                    )
                )
        current = _after_step(step, current)
    return diags


def _try(
    pl: Any,
    schema: Mapping[str, Any],
    expr: str,
    where: str,
    path: SpecPath,
    smap: SourceMap,
    diags: list[Diagnostic],
) -> Any:
    try:
        parsed = pl.sql_expr(expr)
        return pl.LazyFrame(schema=dict(schema)).select(parsed.alias("__out")).collect_schema()["__out"]
    except (Exception, pl.exceptions.PanicException) as exc:  # Polars raises many kinds
        syntax = isinstance(exc, pl.exceptions.SQLSyntaxError) or "parse" in str(exc).lower()
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        diags.append(
            Diagnostic(
                "expression-syntax" if syntax else "expression-error",
                f"{where}: {message}",
                smap.span(path),
                path,
                hint="expressions are Polars SQL, e.g. price * qty or CASE WHEN x > 1 THEN 'a' ELSE 'b' END",
            )
        )
        return None


def _after_step(step: ir.Step, current: dict[str, Any]) -> dict[str, Any]:
    match step:
        case ir.Drop(columns=cols):
            return {k: v for k, v in current.items() if k not in cols}
        case ir.Select(columns=cols):
            return {k: current[k] for k in cols if k in current}
        case ir.Rename(mapping=mapping):
            renames = dict(mapping)
            return {renames.get(k, k): v for k, v in current.items()}
        case ir.Unnest(column=column, prefix=prefix):
            out: dict[str, Any] = {}
            for k, v in current.items():
                fields = getattr(v, "fields", None) if k == column else None
                out.update({f"{prefix}{f.name}": f.dtype for f in fields} if fields else {k: v})
            return out
        case ir.Validate(on_fail="flag", flag=flag):
            import polars as pl

            return {**current, flag: pl.Boolean()}
        case ir.Sessionize(session=session, sequence=sequence):
            import polars as pl

            added = {session: pl.String()} | ({sequence: pl.Int64()} if sequence else {})
            return {**current, **added}
    return current


def _record_dtype(source: ir.Source, name: str) -> pl.DataType:
    """The dtype of one field of the row source."""
    import polars as pl

    match source:
        case ir.TimeIndex() | ir.Arrivals():
            if name == source.column:
                return pl.Datetime("us", source.timezone)
            entity = next(e for e in source.entities if e.name == name)
            if entity.values:
                return _values_dtype(entity.values)
            return pl.Int64() if entity.column is None else dtype_of(entity.column)
        case ir.SeedFile():
            from runtime.seeds import parse_dtype

            return parse_dtype(dict(source.columns)[name])
    from runtime.llm.structured import struct_dtype

    dtype = struct_dtype(json.loads(source.schema))
    for field in getattr(dtype, "fields", ()):
        if field.name == name:
            return field.dtype  # type: ignore[no-any-return]
    import polars as pl

    return pl.Null()


def dtype_of(col: ir.Column) -> pl.DataType:
    """The Polars dtype a sampled column has at run time (expressions aside)."""
    import polars as pl

    match col:
        case ir.UUIDColumn() | ir.PersonColumn() | ir.TemplateColumn():
            return pl.String()
        case ir.SequenceColumn(format=fmt):
            return pl.Int64() if fmt is None else pl.String()
        case ir.NumberColumn(dtype=dtype):
            return pl.Int64() if dtype == "int" else pl.Float64()
        case ir.BoolColumn():
            return pl.Boolean()
        case ir.CategoryColumn(choices=choices):
            return _values_dtype([v for c in choices for v in c.values])
        case ir.SeriesColumn():
            return pl.Float64()
        case ir.LookupColumn(dtype=dtype):
            from runtime.seeds import parse_dtype

            return parse_dtype(dtype)
        case ir.TimeColumn(dtype=dtype):
            return pl.Datetime("us", "UTC") if dtype == "datetime" else pl.Date()
        case ir.ExpressionColumn() | ir.RecordField():
            return pl.Null()
        case ir.LLMColumn(output=output):
            if output is None:
                return pl.String()
            from runtime.llm.structured import struct_dtype

            return struct_dtype(json.loads(output))
    raise AssertionError(f"unhandled column {col!r}")


def _values_dtype(values: Sequence[ir.Scalar]) -> pl.DataType:
    """The dtype a column of these values gets (as a category's values)."""
    import polars as pl

    if values and all(isinstance(v, bool) for v in values):
        return pl.Boolean()
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pl.Int64()
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return pl.Float64()
    return pl.String()
