"""Row sources other than plain row indices: a time index, an event stream, a seed file.

A plan with ``source`` set to one of them gets its rows (and its first columns, the
source's fields) from here. Each source is a pure function of (plan, seed, row range):
the frame for rows ``start..stop-1`` never depends on the chunking. ``memo`` is the run's
memo (see :class:`runtime.samplers.base.Chunk`); it only saves work.
"""

from __future__ import annotations

from typing import Any, assert_never

import polars as pl

from runtime.plan import Arrivals, LLMSource, SeedFile, Source, TimeIndex


def source_rows(source: Source, seed: int) -> int:
    """How many rows the source makes in full (an LLM source makes as many as asked)."""
    match source:
        case TimeIndex():
            from runtime.shapes.timeindex import index_rows

            return index_rows(source)
        case Arrivals():
            from runtime.shapes.arrivals import arrival_rows

            return arrival_rows(source, seed)
        case SeedFile():
            return source.rows if source.limit is None else min(source.rows, source.limit)
        case LLMSource():
            raise ValueError("an LLM source makes as many rows as the plan asks for")
        case _:
            assert_never(source)


def source_frame(source: Source, seed: int, start: int, stop: int, memo: dict[Any, Any]) -> pl.DataFrame:
    """The source's fields for rows ``start..stop-1`` (not for an LLM source: its records
    come from the LLM run)."""
    match source:
        case TimeIndex():
            from runtime.shapes.timeindex import index_frame

            return index_frame(source, seed, start, stop, memo)
        case Arrivals():
            from runtime.shapes.arrivals import arrivals_frame

            return arrivals_frame(source, seed, start, stop, memo)
        case SeedFile():
            from runtime.seeds import seed_frame

            return seed_frame(source, seed, start, stop, memo)
        case LLMSource():
            raise ValueError("LLM records come from the LLM run")
        case _:
            assert_never(source)
