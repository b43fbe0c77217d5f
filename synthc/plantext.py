"""A readable, deterministic text dump of a :class:`Plan` (``synthc plan``).

The same plan always gives the same text (no clock, no dict or set order, fixed number
formatting), so dumps can be diffed and golden-tested. Layout::

    plan NAME
      hash    <plan hash>
      seed    42
      rows    1000
      as_of   2025-01-01T00:00:00Z
      ...
    columns (evaluation order)
      1  price      float  lognormal(mu=3.5, sigma=0.4) min=1 round=2
      2  total      expression  price * qty  <- price, qty
    steps
      1  filter  total > 10
    output
      orders.parquet (parquet)
      columns  id, price, total
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import assert_never

from runtime.plan import (
    BoolColumn,
    CategoryColumn,
    Choice,
    Column,
    Dedupe,
    Dist,
    Drop,
    ExpressionColumn,
    Filter,
    Limit,
    LLMColumn,
    LookupColumn,
    ModelAlias,
    NumberColumn,
    PersonColumn,
    Plan,
    RecordField,
    Rename,
    Sample,
    Scalar,
    Select,
    SequenceColumn,
    SeriesColumn,
    Sessionize,
    Shuffle,
    Sort,
    Step,
    TemplateColumn,
    TimeColumn,
    Unnest,
    UUIDColumn,
    Validate,
    plan_hash,
)
from synthc.plantext_shapes import lookup_text, rows_text, series_text, shaped_step_text, source_lines
from synthc.timeparse import format_us


def render_plan(plan: Plan) -> str:
    """The text dump of ``plan`` (ends with a newline)."""
    lines = [f"plan {plan.name or '(unnamed)'}"]
    lines += _table(
        [
            ("hash", plan_hash(plan)),
            ("spec", plan.spec_hash or "-"),
            ("seed", str(plan.seed)),
            ("rows", rows_text(plan)),
            ("as_of", format_us(plan.as_of)),
            ("engine", f"{plan.engine} (plan format {plan.format})"),
        ]
        + ([("vars", plan.vars)] if plan.vars != "{}" else [])
    )
    if plan.models:
        lines.append("models")
        lines += _table([(model.name, model_text(model)) for model in plan.models])
    if plan.source is not None:
        lines.append("source")
        lines += _table(source_lines(plan.source))
    lines.append("columns (evaluation order)")
    lines += _table([(col.name, column_text(col)) for col in plan.columns], numbered=True)
    if plan.steps:
        lines.append("steps")
        lines += _table([(step.KIND, step_text(step)) for step in plan.steps], numbered=True)
    lines.append("output")
    if plan.output is not None:
        lines.append(f"  {plan.output.path} ({plan.output.format})")
    else:
        lines.append("  (no path in the spec: pass --out)")
    lines.append(f"  columns  {', '.join(plan.column_order)}")
    return "\n".join(lines) + "\n"


def _table(rows: list[tuple[str, str]], *, numbered: bool = False) -> list[str]:
    width = max((len(key) for key, _ in rows), default=0)
    digits = len(str(len(rows)))
    out = []
    for i, (key, value) in enumerate(rows, 1):
        number = f"{i:>{digits}}  " if numbered else ""
        out.append(f"  {number}{key:<{width}}  {value}".rstrip())
    return out


def column_text(col: Column) -> str:
    """One line: the column's kind, its parameters, inputs (``<- a, b``) and nulls."""
    match col:
        case UUIDColumn():
            text = "uuid"
        case SequenceColumn():
            text = f"sequence start={col.start} step={col.step}"
            if col.format is not None:
                text += f" format={json.dumps(col.format)}"
        case NumberColumn():
            text = f"{col.dtype}  {dist_text(col.dist)}"
            for key, bound in (("min", col.min), ("max", col.max), ("round", col.round)):
                if bound is not None:
                    text += f" {key}={number(bound)}"
        case BoolColumn():
            text = f"bool p={number(col.p)}"
        case CategoryColumn():
            choices = "; ".join(choice_text(choice) for choice in col.choices)
            if col.given is None:
                text = f"category {choices}"
            else:
                text = f"category given {col.given}: {choices}  <- {col.given}"
        case TimeColumn():
            fmt = format_us if col.dtype == "datetime" else format_day
            text = f"{col.dtype} {fmt(col.start)} .. {fmt(col.end)}"
        case PersonColumn():
            text = f"person {col.field} locale={col.locale} group={col.group}"
        case ExpressionColumn():
            text = f"expression {' '.join(col.expr.split())}" + _inputs(col.inputs)
        case TemplateColumn():
            text = f"template {json.dumps(col.template, ensure_ascii=False)}" + _inputs(col.inputs)
        case LLMColumn():
            text = f"llm {col.model}"
            if col.system is not None:
                text += f" system={json.dumps(col.system, ensure_ascii=False)}"
            text += f" prompt={json.dumps(col.prompt, ensure_ascii=False)}"
            if col.params != "{}":
                text += f" params={col.params}"
            if col.output is not None:
                text += f" output={col.output}"
            text += _inputs(col.inputs)
        case RecordField():
            text = "record field (from the source)"
        case SeriesColumn():
            text = series_text(col)
        case LookupColumn():
            text = lookup_text(col)
        case _:
            assert_never(col)
    if col.nulls:
        text += f"  nulls={number(col.nulls)}"
    return text


def model_text(model: ModelAlias) -> str:
    """``openai/gpt-4o-mini fallbacks=... params={...}`` and the non-default settings."""
    text = model.model
    if model.fallbacks:
        text += f" fallbacks={', '.join(model.fallbacks)}"
    if model.params != "{}":
        text += f" params={model.params}"
    defaults = ModelAlias(model.name, model.model)
    for key in ("api_base", "api_key_env", "concurrency", "rpm", "tpm", "timeout", "retries", "backoff"):
        value = getattr(model, key)
        if value != getattr(defaults, key):
            text += f" {key}={number(value) if isinstance(value, float) else value}"
    return text


def _inputs(names: tuple[str, ...]) -> str:
    return f"  <- {', '.join(names)}" if names else ""


def dist_text(dist: Dist) -> str:
    """``normal(mean=0, sd=1)``: parameters in the plan's (sorted) order."""
    return f"{dist.dist}({', '.join(f'{k}={number(v)}' for k, v in dist.params)})"


def choice_text(choice: Choice) -> str:
    """``a 0.5, b 0.5``, prefixed with ``WHEN ->`` for a conditional category."""
    # 6 significant digits: normalizing 0.7/0.2/0.1 gives 0.7000000000000001 and the like
    pairs = ", ".join(f"{scalar(v)} {w:.6g}" for v, w in zip(choice.values, choice.weights, strict=True))
    return pairs if choice.when is None else f"{scalar(choice.when)} -> {pairs}"


def step_text(step: Step) -> str:
    """A step's argument as the user would write it."""
    match step:
        case Filter():
            return " ".join(step.expr.split())
        case Dedupe() | Drop() | Select():
            return ", ".join(step.columns)
        case Rename():
            return ", ".join(f"{old} -> {new}" for old, new in step.mapping)
        case Sort():
            return ", ".join(step.by) + (" descending" if step.descending else "")
        case Shuffle():
            return "(seeded by the plan's seed)"
        case Limit():
            return str(step.n)
        case Unnest() | Validate() | Sample() | Sessionize():
            return shaped_step_text(step)
        case _:
            assert_never(step)


def number(value: float) -> str:
    """Shortest exact form: ``1`` for 1.0, ``0.25``, ``1e-06``; ints unchanged."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def scalar(value: Scalar) -> str:
    """A category value: strings quoted only when they would read ambiguously."""
    if isinstance(value, str):
        plain = (
            bool(value)
            and value.strip() == value
            and not any(c in value for c in ",;:'\"")
            and "->" not in value
        )
        return value if plain else json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return number(value)


def format_day(days: int) -> str:
    """Days since the epoch as ``YYYY-MM-DD``."""
    return (date(1970, 1, 1) + timedelta(days=days)).isoformat()
