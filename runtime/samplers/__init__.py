"""Samplers: one column's values for one chunk of rows.

``sample(col, chunk)`` is the only entry point the executor needs. Every value is a pure
function of ``(seed, column name or person group, row index, draw index)`` through
:mod:`runtime.rng`, or of the chunk's earlier columns for derived columns, so a column
is identical for any chunking and unaffected by other columns.
"""

from __future__ import annotations

from typing import assert_never

import polars as pl

from runtime.plan import (
    BoolColumn,
    CategoryColumn,
    Column,
    ExpressionColumn,
    LLMColumn,
    LookupColumn,
    NumberColumn,
    PersonColumn,
    RecordField,
    SequenceColumn,
    SeriesColumn,
    TemplateColumn,
    TimeColumn,
    UUIDColumn,
)
from runtime.samplers.base import NULL_DRAW, Chunk, SampleError, null_mask, with_nulls
from runtime.samplers.categorical import sample_bool, sample_category
from runtime.samplers.derived import sample_expression, sample_template
from runtime.samplers.ids import sample_sequence, sample_uuid
from runtime.samplers.numeric import sample_number
from runtime.samplers.person import sample_person
from runtime.samplers.temporal import sample_time

__all__ = ["NULL_DRAW", "Chunk", "SampleError", "sample"]


def sample(col: Column, chunk: Chunk) -> pl.Series:
    """Values of ``col`` for rows ``chunk.start .. chunk.stop - 1``, named ``col.name``,
    with ``col.nulls`` of them set to null (mask from the column's own stream).

    Raises :class:`SampleError` when a derived column fails (template or expression)."""
    series = _values(col, chunk)
    if col.nulls > 0:
        series = with_nulls(series, null_mask(col.name, col.nulls, chunk))
    return series.alias(col.name)


def _values(col: Column, chunk: Chunk) -> pl.Series:
    match col:
        case UUIDColumn():
            return sample_uuid(col, chunk)
        case SequenceColumn():
            return sample_sequence(col, chunk)
        case NumberColumn():
            return sample_number(col, chunk)
        case BoolColumn():
            return sample_bool(col, chunk)
        case CategoryColumn():
            return sample_category(col, chunk)
        case TimeColumn():
            return sample_time(col, chunk)
        case PersonColumn():
            return sample_person(col, chunk)
        case ExpressionColumn():
            return sample_expression(col, chunk)
        case TemplateColumn():
            return sample_template(col, chunk)
        case SeriesColumn():
            from runtime.samplers.series import sample_series

            return sample_series(col, chunk)
        case LookupColumn():
            from runtime.seeds import sample_lookup

            return sample_lookup(col, chunk)
        case LLMColumn() | RecordField():
            # Filled by the LLM runner (runtime.llm.run) and the record source, not sampled.
            raise SampleError(col.name, f"{col.KIND} columns are not sampled")
        case _:
            assert_never(col)
