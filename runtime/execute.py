"""Executing a plan: rows in chunks → columns → output order → steps → a writer.

Guarantees: the rows :func:`execute` yields (concatenated) are identical for every
``chunk_rows``; every random draw is keyed by the original row index, never by the
chunk. Memory is bounded by one chunk as long as the plan has no blocking step
(sort, shuffle), which by nature holds every row that reaches it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import polars as pl

from runtime.defaults import DEFAULT_CHUNK_ROWS
from runtime.errors import ExecutionError, OutputError, TargetNotReached
from runtime.plan import (
    Column,
    Limit,
    LLMSource,
    OutputFormat,
    Plan,
    Sample,
    Shuffle,
    Sort,
    Step,
    Target,
    format_for_path,
    plan_hash,
)
from runtime.shapes import source_frame
from runtime.steps import apply_steps, hidden_columns, hidden_key_names
from runtime.writers import WriteResult, write

if TYPE_CHECKING:
    from runtime.llm.run import LLMRun

Progress = Callable[[int], None]
# Chunks of plans with LLM columns are smaller: a chunk's cells are queued at once, and
# its rows are written as soon as its last cell lands (measured: the drain at the end of
# a chunk costs ~1% at concurrency 128).
LLM_CHUNK_ROWS = 4096


def run_plan(
    plan: Plan,
    out: str | Path | None = None,
    fmt: OutputFormat | None = None,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Progress | None = None,
    llm: LLMRun | None = None,
) -> WriteResult:
    """Execute ``plan`` and write its rows atomically to ``out`` (default: the plan's output)."""
    path, fmt = output_target(plan, out, fmt)
    frames = execute(plan, chunk_rows=chunk_rows, progress=progress, llm=llm)
    return write(frames, path, fmt, metadata=plan_metadata(plan))


def execute(
    plan: Plan,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Progress | None = None,
    llm: LLMRun | None = None,
) -> Iterator[pl.DataFrame]:
    """The plan's rows as a lazy stream of frames, in ``plan.column_order``, after the steps.

    Yields at least one frame (possibly empty) so the schema is known even for zero rows.
    ``progress`` is called with the number of rows each generated chunk had (before steps);
    nothing is generated until the stream is pulled, and a ``limit`` stops generation.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    chunks = generate(plan, chunk_rows=chunk_rows, progress=progress, llm=llm)
    if plan.target is None:
        frames = apply_steps(chunks, plan.steps, chunk_rows=chunk_rows)
    else:
        cut = first_blocking(plan.steps)
        kept = apply_steps(chunks, plan.steps[:cut], chunk_rows=chunk_rows)
        frames = apply_steps(
            _until_target(kept, plan.target), plan.steps[cut:], chunk_rows=chunk_rows, before=plan.steps[:cut]
        )
    return _without(frames, hidden_key_names(plan.steps))


def first_blocking(steps: tuple[Step, ...]) -> int:
    """Index of the first step that needs every row before it passes one on (sort,
    shuffle, sample n); ``len(steps)`` when there is none. ``target_rows`` counts the rows
    that come out of the steps before it."""
    for i, step in enumerate(steps):
        if isinstance(step, Sort | Shuffle) or (isinstance(step, Sample) and step.n is not None):
            return i
    return len(steps)


def _until_target(frames: Iterator[pl.DataFrame], target: Target) -> Iterator[pl.DataFrame]:
    """The first ``target.rows`` rows of ``frames`` (a ``limit``: nothing further is
    generated); TargetNotReached if they run out first (the generator stops at
    ``target.max_rows`` generated rows)."""
    kept = 0
    for df in apply_steps(frames, (Limit(target.rows),), chunk_rows=DEFAULT_CHUNK_ROWS):
        kept += df.height
        yield df
    if kept < target.rows:
        raise TargetNotReached(
            f"target_rows: only {kept:,} of {target.rows:,} rows survived the steps after "
            f"generating {target.max_rows:,} rows (the cap, max_rows); loosen the filters and validations, "
            "or raise max_rows"
        )


def generate(
    plan: Plan,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Progress | None = None,
    llm: LLMRun | None = None,
    rows: tuple[int, int] | None = None,
) -> Iterator[pl.DataFrame]:
    """The plan's columns for rows 0..rows-1 in chunks, before any step (plus the hidden
    keys the steps need). A plan of zero rows gives one empty chunk. ``rows`` = (start,
    stop) generates only those rows (a shard): every value is the one a whole run has.

    A plan with LLM columns needs ``llm`` (the run's cache, scheduler and failures); with
    None, one with default options is opened and closed here."""
    if plan.uses_models and llm is None:
        from runtime.llm.outcome import LLMOptions
        from runtime.llm.run import LLMRun

        with LLMRun(plan, LLMOptions(), sample_column) as own:
            yield from generate(plan, chunk_rows=chunk_rows, progress=progress, llm=own, rows=rows)
        return
    later: set[str] = set()
    records = None
    memo: dict[Any, Any] = {}  # the run's memo (see Chunk): lives across this run's chunks
    if llm is not None:
        from runtime.llm.graph import model_dependent

        later = model_dependent(plan)
        chunk_rows = min(chunk_rows, LLM_CHUNK_ROWS)
        records = llm.records() if isinstance(plan.source, LLMSource) else None
    variables = MappingProxyType(json.loads(plan.vars))
    schema: pl.Schema | None = None
    first, last = rows if rows is not None else (0, plan.rows)
    for start, stop in chunk_bounds(last - first, chunk_rows):
        start, stop = start + first, stop + first
        frame = pl.DataFrame()
        if records is not None:
            fields = records.slice(start, stop - start)
            frame = _record_fields(plan, fields, start, stop, variables, memo)
        elif plan.source is not None:
            fields = source_frame(plan.source, plan.seed, start, stop, memo)
            frame = _record_fields(plan, fields, start, stop, variables, memo)
        for col in plan.columns:
            if col.name not in later and col.name not in frame.columns:
                frame = pl.DataFrame(
                    [
                        *frame.get_columns(),
                        sample_column(col, _chunk(plan, start, stop, frame, variables, memo)),
                    ]
                )
        if llm is not None:
            frame = llm.fill(frame, start, stop)
        frame = frame.select(plan.column_order)
        schema = frame.schema if schema is None else schema
        frame = _conform(frame, schema).hstack(hidden_columns(plan.seed, plan.steps, start, stop))
        if progress is not None:
            progress(stop - start)
        yield frame


def _record_fields(
    plan: Plan, records: pl.DataFrame, start: int, stop: int, variables: Any, memo: dict[Any, Any]
) -> pl.DataFrame:
    """The chunk's record-field columns (the row source's fields, with their ``nulls`` applied)."""
    from runtime.plan import RecordField
    from runtime.samplers.base import null_mask, with_nulls

    columns = []
    for col in plan.columns:
        if isinstance(col, RecordField):
            series = records.get_column(col.name)
            if col.nulls > 0:
                series = with_nulls(
                    series,
                    null_mask(col.name, col.nulls, _chunk(plan, start, stop, records, variables, memo)),
                )
            columns.append(series)
    return pl.DataFrame(columns)


def _chunk(
    plan: Plan, start: int, stop: int, frame: pl.DataFrame, variables: Any, memo: dict[Any, Any]
) -> Any:
    from runtime.samplers.base import Chunk

    return Chunk(plan.seed, start, stop, frame, variables, plan.source, memo)


def sample_column(col: Column, chunk: Any) -> pl.Series:
    """One column's values for one chunk, failures as :class:`ExecutionError`."""
    # Samplers pull in templates and person data: import them only when rows are made.
    from runtime.samplers import sample

    return _sample(sample, col, chunk)


def chunk_bounds(rows: int, chunk_rows: int) -> Iterator[tuple[int, int]]:
    """``[start, stop)`` of each chunk; one empty chunk when there are no rows."""
    if rows == 0:
        yield 0, 0
    for start in range(0, rows, chunk_rows):
        yield start, min(start + chunk_rows, rows)


def plan_metadata(plan: Plan) -> dict[str, str]:
    """Key-value metadata stored with the output (Parquet footer): what produced it."""
    meta = {"synthc.plan_hash": plan_hash(plan), "synthc.engine": str(plan.engine)}
    if plan.spec_hash:
        meta["synthc.spec_hash"] = plan.spec_hash
    return meta


def output_target(plan: Plan, out: str | Path | None, fmt: OutputFormat | None) -> tuple[Path, OutputFormat]:
    """Where and how to write: ``out``/``fmt`` override the plan's ``output``."""
    if out is None:
        if plan.output is None:
            raise OutputError("no output path: give one with --out or `output: {path: ...}`")
        out = plan.output.path
        fmt = fmt or plan.output.format
    fmt = fmt or format_for_path(out)
    if fmt is None:
        raise OutputError(
            f"cannot tell the output format of {out}: use a .parquet, .csv, .json or .jsonl "
            "extension, or give the format explicitly"
        )
    return Path(out), fmt


# --------------------------------------------------------------------------- helpers

Sampler = Callable[[Column, Any], pl.Series]


def _sample(sample: Sampler, col: Column, chunk: Any) -> pl.Series:
    from runtime.samplers.base import SampleError

    try:
        series = sample(col, chunk)
    except ExecutionError:
        raise
    except SampleError as exc:  # its message already names the column (and row)
        raise ExecutionError(str(exc), column=col.name, row=exc.row) from exc
    except (pl.exceptions.PolarsError, _template_error()) as exc:
        raise ExecutionError(f"column `{col.name}`: {_first_line(exc)}", column=col.name) from exc
    expected = chunk.stop - chunk.start
    if series.len() != expected or series.name != col.name:
        raise ExecutionError(
            f"column `{col.name}`: sampler returned {series.len()} rows named {series.name!r}, "
            f"expected {expected} named {col.name!r}"
        )
    return series


def _conform(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """Keep every chunk's schema equal to the first one's (writers need one schema).
    An all-null chunk may come out as dtype Null; it is cast to the column's dtype."""
    if frame.schema == schema:
        return frame
    for name, dtype in frame.schema.items():
        if dtype != schema[name] and dtype != pl.Null:
            raise ExecutionError(f"column `{name}` changed type between chunks: {schema[name]} → {dtype}")
    return frame.cast(schema)


def _without(frames: Iterator[pl.DataFrame], hidden: list[str]) -> Iterator[pl.DataFrame]:
    for df in frames:
        yield df.drop(hidden, strict=False) if hidden else df


def _template_error() -> type[Exception]:
    from jinja2 import TemplateError

    return TemplateError


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
