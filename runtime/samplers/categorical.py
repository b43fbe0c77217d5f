"""``bool`` and ``category`` columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from runtime.plan import BoolColumn, CategoryColumn, Choice, Scalar
from runtime.samplers.base import F64, I64, Chunk, SampleError, Stream


def sample_bool(col: BoolColumn, chunk: Chunk) -> pl.Series:
    """True where u < p (u from draw 0): p = 0 is never true, p = 1 always."""
    values = (Stream.of(col.name, chunk).uniform(0) < col.p) | (col.p >= 1.0)
    return pl.Series(col.name, values, dtype=pl.Boolean)


def pick(weights: Sequence[float], u: F64) -> I64:
    """Indices into ``weights`` by inversion: the first i with cumsum(w)[i] > u * total.
    Zero weights are never picked; the last cumulative weight is pinned to the total."""
    cumulative = np.cumsum(np.asarray(weights, dtype=np.float64))
    total = cumulative[-1]
    cumulative[-1] = np.inf  # rounding in cumsum can never push u past the last value
    index: I64 = np.searchsorted(cumulative, u * total, side="right").astype(np.int64)
    return index


def sample_category(col: CategoryColumn, chunk: Chunk) -> pl.Series:
    """Values by weight (one uniform per row, draw 0). With ``given``, each row uses the
    Choice whose ``when`` equals the parent column's value in ``chunk.frame``; a parent
    value with no Choice (or a null parent) gives null."""
    u = Stream.of(col.name, chunk).uniform(0)
    table = values_series(col)
    if col.given is None:
        return table.gather(pick(col.choices[0].weights, u)).alias(col.name)
    codes = _choice_codes(col, chunk)
    index: I64 = np.full(chunk.size, -1, dtype=np.int64)
    offset = 0
    for code, choice in enumerate(col.choices):
        rows = codes == code
        if rows.any():
            index[rows] = offset + pick(choice.weights, u[rows])
        offset += len(choice.values)
    picked = pl.Series(index, dtype=pl.Int64)
    picked = picked.set(pl.Series(index < 0, dtype=pl.Boolean), None)
    return table.gather(picked).alias(col.name)


def values_series(col: CategoryColumn) -> pl.Series:
    """All choices' values, concatenated in order, as one typed Series."""
    values = [v for choice in col.choices for v in choice.values]
    return pl.Series(col.name, _typed(values), dtype=_dtype(values))


def _dtype(values: Sequence[Scalar]) -> pl.DataType:
    if all(isinstance(v, bool) for v in values):
        return pl.Boolean()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pl.Int64()
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return pl.Float64()
    return pl.String()


def _typed(values: Sequence[Scalar]) -> list[Any]:
    if _dtype(values) == pl.String and not all(isinstance(v, str) for v in values):
        return [str(v) for v in values]
    return list(values)


def _choice_codes(col: CategoryColumn, chunk: Chunk) -> npt.NDArray[np.int32]:
    """Per row, the index of the Choice matching the parent's value, or -1."""
    assert col.given is not None
    try:
        parent = chunk.frame.get_column(col.given)
    except pl.exceptions.ColumnNotFoundError as exc:
        raise SampleError(col.name, f"parent column {col.given!r} is not computed") from exc
    seen = parent.drop_nulls().unique()
    codes = [_match(value, col.choices) for value in seen.to_list()]
    mapped = parent.replace_strict(seen, codes, default=-1, return_dtype=pl.Int32)
    return mapped.fill_null(-1).to_numpy()


def _match(value: Any, choices: Sequence[Choice]) -> int:
    """The index of the Choice for a parent value. Keys written as strings (YAML mapping
    keys) also match a non-string parent by its text (``"1"`` matches 1)."""
    for i, choice in enumerate(choices):
        when = choice.when
        if type(when) is type(value) and when == value:
            return i
        if _is_number(value) and _is_number(when) and when == value:
            return i
        if isinstance(when, str) and not isinstance(value, str) and when == _text(value):
            return i
    return -1


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
