"""The ``validate`` step: what column values must satisfy, and what happens to rows that don't.

Each :class:`~runtime.plan.Check` is a set of constraints on one column; a row passes a
constraint when its value satisfies it or is null (unless ``not_null``). Constraints are
vectorized in Polars except ``schema`` (JSON Schema, Draft 2020-12), which validates each
row's value: a struct as a JSON object, a string as the JSON it holds (text that is not
JSON fails). ``format`` keywords are annotations only (not asserted), so the outcome never
depends on which optional format checkers are installed.

Guarantees: a row's verdict depends only on its own values, so the output never depends
on the chunking; ``drop`` and ``flag`` keep row order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import polars as pl
from jsonschema import Draft202012Validator

from runtime.errors import ExecutionError
from runtime.plan import Check, Scalar, Validate

Frames = Iterator[pl.DataFrame]
# One constraint: its label as the spec writes it, and per value whether it passes.
Test = Callable[[pl.Series], pl.Series]
Constraint = tuple[str, Test]


def describe_validate(step: Validate) -> str:
    """The step as the spec writes it (a JSON Schema shows as ``{...}``)."""
    checks = ", ".join(f"{check.column}: {{{', '.join(_labels(check))}}}" for check in step.checks)
    flag = f", flag: {step.flag}" if step.on_fail == "flag" else ""
    return f"validate: {{checks: {{{checks}}}, on_fail: {step.on_fail}{flag}}}"


def validate_frames(frames: Frames, step: Validate) -> Frames:
    """Apply ``step`` to each frame: drop failing rows, raise on the first chunk with one
    (naming the check, column, count and first failing value), or append the boolean
    column ``step.flag`` (true = passed every check). JSON Schemas are compiled once."""
    plans = [(check, _constraints(check)) for check in step.checks]
    for df in frames:
        passed = pl.repeat(True, df.height, dtype=pl.Boolean, eager=True)
        for check, constraints in plans:
            values = _column(df, step, check.column)
            for label, test in constraints:
                ok = _run(step, check, label, test, values)
                if step.on_fail == "fail" and not ok.all():
                    raise _failure(step, check.column, label, values.filter(~ok))
                passed &= ok
        match step.on_fail:
            case "drop":
                yield df.filter(passed)
            case "flag":
                yield _with_flag(df, step, passed)
            case "fail":
                yield df


# --------------------------------------------------------------------------- constraints


def _constraints(check: Check) -> list[Constraint]:
    out: list[Constraint] = []
    if check.not_null:
        out.append(("not_null: true", lambda s: s.is_not_null()))
    if check.min is not None:
        low = check.min
        out.append((f"min: {low}", lambda s: _ordered(s) >= low))
    if check.max is not None:
        high = check.max
        out.append((f"max: {high}", lambda s: _ordered(s) <= high))
    if check.regex is not None:
        regex = check.regex
        out.append((f"regex: {regex}", lambda s: _text(s, "regex").str.contains(regex)))
    if check.values is not None:
        allowed = check.values
        out.append((f"values: [{', '.join(map(str, allowed))}]", lambda s: _one_of(s, allowed)))
    if check.min_length is not None:
        shortest = check.min_length
        out.append((f"min_length: {shortest}", lambda s: _text(s, "min_length").str.len_chars() >= shortest))
    if check.max_length is not None:
        longest = check.max_length
        out.append((f"max_length: {longest}", lambda s: _text(s, "max_length").str.len_chars() <= longest))
    if check.schema is not None:
        validator = Draft202012Validator(json.loads(check.schema))
        out.append(("schema: {...}", lambda s: _schema_passes(s, validator)))
    return out


def _labels(check: Check) -> list[str]:
    return [label for label, _ in _constraints(check)]


class _Unsupported(Exception):
    """A constraint does not apply to the column's type (reported with the step)."""


def _ordered(s: pl.Series) -> pl.Series:
    """Numbers as they are; datetimes as microseconds and dates as days since the epoch
    (the units the plan uses for time bounds)."""
    if s.dtype.is_numeric():
        return s
    if isinstance(s.dtype, pl.Datetime):
        return s.dt.epoch("us")
    if s.dtype == pl.Date:
        return s.to_physical()
    raise _Unsupported(f"needs a number, date or datetime column, not {s.dtype}")


def _text(s: pl.Series, what: str) -> pl.Series:
    if s.dtype == pl.String:
        return s
    if isinstance(s.dtype, pl.Categorical | pl.Enum):
        return s.cast(pl.String)
    raise _Unsupported(f"`{what}` needs a string column, not {s.dtype}")


def _one_of(s: pl.Series, allowed: tuple[Scalar, ...]) -> pl.Series:
    """Membership with the spec's values taken in the column's type: strings compare as
    text, numbers numerically, booleans as booleans; a value of another type never matches."""
    if s.dtype == pl.String or isinstance(s.dtype, pl.Categorical | pl.Enum):
        texts = [v if isinstance(v, str) else json.dumps(v) for v in allowed]
        return _text(s, "values").is_in(pl.Series(texts, dtype=pl.String).implode())
    if s.dtype == pl.Boolean:
        return s.is_in(pl.Series([v for v in allowed if isinstance(v, bool)], dtype=pl.Boolean).implode())
    if s.dtype.is_numeric():
        numbers = [v for v in allowed if isinstance(v, int | float) and not isinstance(v, bool)]
        as_float = s.dtype.is_float() or any(isinstance(v, float) for v in numbers)
        dtype = pl.Float64 if as_float else pl.Int64
        return s.cast(dtype).is_in(pl.Series(numbers, dtype=dtype).implode())
    raise _Unsupported(f"`values` needs a string, number or boolean column, not {s.dtype}")


def _schema_passes(s: pl.Series, validator: Draft202012Validator) -> pl.Series:
    # Per row by nature: JSON Schema has no vectorized form. Nulls are decided elsewhere.
    is_text = s.dtype == pl.String
    verdicts = [None if v is None else _valid_json(v, is_text, validator) for v in s.to_list()]
    return pl.Series(verdicts, dtype=pl.Boolean)


def _valid_json(value: Any, is_text: bool, validator: Draft202012Validator) -> bool:
    if is_text:
        try:
            value = json.loads(value)
        except ValueError:
            return False
    return bool(validator.is_valid(value))


# --------------------------------------------------------------------------- helpers


def _column(df: pl.DataFrame, step: Validate, name: str) -> pl.Series:
    if name not in df.columns:
        raise ExecutionError(f"step `{describe_validate(step)}` failed: there is no column `{name}`")
    return df.get_column(name)


def _run(step: Validate, check: Check, label: str, test: Test, values: pl.Series) -> pl.Series:
    """The constraint's verdict per row, nulls passing (``not_null`` sees them itself)."""
    try:
        return test(values).fill_null(True)
    except (_Unsupported, pl.exceptions.PolarsError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExecutionError(
            f"step `{describe_validate(step)}` failed: check `{label}` on column `{check.column}`: {reason}"
        ) from exc


def _failure(step: Validate, column: str, label: str, failed: pl.Series) -> ExecutionError:
    first = _show(failed[0]) if failed.len() else "?"
    rows = "1 row" if failed.len() == 1 else f"{failed.len()} rows"
    return ExecutionError(
        f"step `{describe_validate(step)}` failed: check `{label}` on column `{column}`: "
        f"{rows} failed in this chunk; first value: {first}"
    )


def _show(value: Any) -> str:
    text = "null" if value is None else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _with_flag(df: pl.DataFrame, step: Validate, passed: pl.Series) -> pl.DataFrame:
    if step.flag in df.columns:
        raise ExecutionError(f"step `{describe_validate(step)}` failed: column `{step.flag}` already exists")
    return df.with_columns(passed.alias(step.flag))
