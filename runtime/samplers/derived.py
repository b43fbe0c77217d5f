"""``expression`` (Polars SQL) and ``template`` (Jinja) columns over earlier columns."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import polars as pl

from runtime.plan import ExpressionColumn, TemplateColumn
from runtime.samplers.base import Chunk, SampleError

if TYPE_CHECKING:  # Jinja is imported only by specs with template columns
    import jinja2


def sample_expression(col: ExpressionColumn, chunk: Chunk) -> pl.Series:
    """``col.expr`` evaluated vectorized over ``chunk.frame`` (a scalar result is
    broadcast to every row). Deterministic: it reads only the frame."""
    frame = chunk.frame
    if frame.width == 0:  # no inputs: give the expression the chunk's height
        frame = pl.DataFrame({"__row": pl.int_range(chunk.start, chunk.stop, eager=True)})
    try:
        result = frame.select(pl.sql_expr(col.expr).alias(col.name))
    except pl.exceptions.PolarsError as exc:
        # Polars appends the plan it ran ("This error occurred in ..."): keep the reason.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SampleError(col.name, f"expression {col.expr!r} failed: {reason}") from exc
    series = result.to_series()
    if series.len() == 1 and chunk.size != 1:
        series = series.extend_constant(series[0], chunk.size - 1)
    return series


@lru_cache(maxsize=256)
def _compiled(source: str) -> jinja2.Template:
    from runtime.templates import environment

    return environment().from_string(source)


def sample_template(col: TemplateColumn, chunk: Chunk) -> pl.Series:
    """``col.template`` rendered once per row with ``chunk.vars`` and the row's input
    values (plain Python: datetimes as ``datetime``, nulls as None; inputs shadow vars).

    Raises :class:`SampleError` naming the column and the (global) row when rendering
    fails: an undefined name, a type error, a sandbox violation."""
    import jinja2

    try:
        template = _compiled(col.template)
    except jinja2.TemplateSyntaxError as exc:
        raise SampleError(col.name, f"template syntax error at line {exc.lineno}: {exc.message}") from exc
    try:
        inputs = chunk.frame.select(col.inputs)
    except pl.exceptions.ColumnNotFoundError as exc:
        raise SampleError(col.name, f"template input missing: {exc}") from exc
    context: dict[str, Any] = dict(chunk.vars)
    out: list[str] = []
    if not col.inputs:
        rows: Any = ((),) * chunk.size
    else:
        rows = inputs.iter_rows()
    for offset, row in enumerate(rows):
        context.update(zip(col.inputs, row, strict=True))
        try:
            out.append(template.render(context))
        except Exception as exc:  # any failure inside the template is the spec's fault
            raise SampleError(
                col.name, f"template failed: {type(exc).__name__}: {exc}", row=chunk.start + offset
            ) from exc
    return pl.Series(col.name, out, dtype=pl.String)
