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

    A template that only substitutes names (``"{{ first }} {{ last }} #{{ n }}"``) over
    text, integer and boolean columns is evaluated vectorized in Polars instead, giving
    exactly the text Jinja would (``None`` for a null, ``True``/``False``), ~50x faster.

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
    vectorized = _substitution(col, inputs, chunk)
    if vectorized is not None:
        return vectorized
    return render_rows(col, template, inputs, chunk)


def render_rows(
    col: TemplateColumn, template: jinja2.Template, inputs: pl.DataFrame, chunk: Chunk
) -> pl.Series:
    """The general path: Jinja renders each row. Like ``template.render`` but with one
    context dict reused across rows (globals, then vars, then the row), which halves
    the per-row cost."""
    context: dict[str, Any] = {**template.globals, **chunk.vars}
    render, new_context = template.root_render_func, template.new_context
    out: list[str] = []
    if not col.inputs:
        rows: Any = ((),) * chunk.size
    else:
        rows = inputs.iter_rows()
    for offset, row in enumerate(rows):
        context.update(zip(col.inputs, row, strict=True))
        try:
            out.append("".join(render(new_context(context, shared=True))))
        except Exception as exc:  # any failure inside the template is the spec's fault
            raise SampleError(
                col.name, f"template failed: {type(exc).__name__}: {exc}", row=chunk.start + offset
            ) from exc
    return pl.Series(col.name, out, dtype=pl.String)


# --------------------------------------------------------------------------- vectorized substitution

_Part = tuple[bool, str]  # (is a name, literal text or name)


@lru_cache(maxsize=256)
def _parts(source: str) -> tuple[_Part, ...] | None:
    """The template as literal text and bare ``{{ name }}`` outputs, or None when it
    uses anything else (filters, tests, attributes, control flow, comments count fine)."""
    from jinja2 import nodes

    from runtime.templates import environment

    parts: list[_Part] = []
    for node in environment().parse(source).body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                parts.append((False, child.data))
            elif isinstance(child, nodes.Name) and child.ctx == "load":
                parts.append((True, child.name))
            else:
                return None
    return tuple(parts)


def _substitution(col: TemplateColumn, inputs: pl.DataFrame, chunk: Chunk) -> pl.Series | None:
    parts = _parts(col.template)
    if parts is None:
        return None
    exprs: list[pl.Expr] = []
    for is_name, text in parts:
        if not is_name:
            exprs.append(pl.lit(text, dtype=pl.String))
        elif text in col.inputs:
            expr = _as_jinja_text(text, inputs.schema[text])
            if expr is None:
                return None
            exprs.append(expr)
        elif text in chunk.vars:
            exprs.append(pl.lit(str(chunk.vars[text]), dtype=pl.String))
        else:
            return None  # undefined: let Jinja raise its own error
    if not any(is_name and text in col.inputs for is_name, text in parts):  # a constant
        constant = pl.select(pl.concat_str([*exprs, pl.lit("")])).item()
        return pl.repeat(constant, chunk.size, dtype=pl.String, eager=True).alias(col.name)
    return inputs.select(pl.concat_str(exprs).alias(col.name)).to_series()


def _as_jinja_text(name: str, dtype: pl.DataType) -> pl.Expr | None:
    """``str(value)`` as Jinja prints it, for the dtypes where Polars' text is the same."""
    column = pl.col(name)
    if dtype == pl.String:
        text = column
    elif dtype.is_integer():
        text = column.cast(pl.String)
    elif dtype == pl.Boolean:
        text = pl.when(column).then(pl.lit("True")).otherwise(pl.lit("False"))
    else:
        return None  # floats, dates, structs: Python's str() differs from Polars'
    return pl.when(column.is_null()).then(pl.lit("None")).otherwise(text)
