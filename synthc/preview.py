"""``synthc preview``: the first rows of a dataset as a rich table; nothing is written."""

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.defaults import DEFAULT_CHUNK_ROWS
from synthc import console
from synthc.cli import EXIT_OK
from synthc.cli_run import _located

if TYPE_CHECKING:
    import polars as pl

    from runtime.plan import Plan


def preview_spec(spec: Path, *, n: int = 10, seed: int | None = None) -> int:
    """``synthc preview``: the first ``n`` output rows as a rich table; nothing is written.
    Piped, every value is shown whole. On a terminal long values are cut (…) and the
    columns that do not fit the window are left out and named under the table."""
    from rich.markup import escape
    from rich.table import Table

    from synthc import api

    compiled = api.with_overrides(api.compile(path=spec), seed=seed)
    with _located(spec):
        frame = _head(compiled, n)
    cells = [[_cell(value) for value in column] for column in frame.iter_columns()]
    kinds = [str(dtype).split("(")[0].lower() for dtype in frame.dtypes]
    out = console.console()
    shown, cap = len(cells), None
    if console.is_terminal():
        columns = zip(frame.columns, kinds, cells, strict=True)
        widths = [max([len(name), len(kind), *map(len, col)]) for name, kind, col in columns]
        shown, cap = _columns_that_fit([min(w, _MAX_CELL) for w in widths], out.width), _MAX_CELL
    else:
        out.width = 1_000_000  # piped: the table keeps its natural width
    from runtime.plan import Dedupe, Filter, Limit

    # filter, dedupe and limit change how many rows come out; the plan knows only `rows`
    shrinks = any(isinstance(step, Filter | Dedupe | Limit) for step in compiled.steps)
    total = f"at most {compiled.rows:,} rows" if shrinks else f"{compiled.rows:,} rows"
    title = f"{compiled.name or spec.name}: first {frame.height:,} of {total}"
    table = Table(title=escape(title), title_justify="left")
    if shown < len(cells):
        table.caption = escape(f"not shown (too wide for the window): {', '.join(frame.columns[shown:])}")
        table.caption_justify = "left"
    for name, kind in zip(frame.columns[:shown], kinds, strict=False):
        table.add_column(f"{escape(name)}\n[dim]{kind}[/dim]", no_wrap=True, max_width=cap)
    for row in zip(*cells[:shown], strict=True):
        table.add_row(*row)
    out.print(table)
    return EXIT_OK


_MAX_CELL = 32  # characters of a value shown on a terminal


def _columns_that_fit(widths: Sequence[int], limit: int) -> int:
    """How many leading columns of these content widths fit in ``limit`` characters
    (each column adds 3 for padding and its border); at least one."""
    used = 1
    for i, width in enumerate(widths):
        used += width + 3
        if used > limit:
            return max(1, i)
    return len(widths)


def _head(compiled: "Plan", n: int) -> "pl.DataFrame":
    """The first ``n`` output rows. Without steps that drop or reorder rows only ``n``
    rows are generated (row i never depends on the row count); otherwise chunks are
    read until ``n`` rows have come out."""
    import polars as pl

    from runtime.plan import Drop, Rename, Select
    from synthc import api

    chunk_rows = DEFAULT_CHUNK_ROWS
    if all(isinstance(step, Drop | Select | Rename) for step in compiled.steps):
        compiled = compiled.with_overrides(rows=min(n, compiled.rows))
        chunk_rows = max(1, compiled.rows)
    taken: list[pl.DataFrame] = []
    have = 0
    for chunk in api.stream(compiled, chunk_rows=chunk_rows):
        taken.append(chunk.head(n - have))
        have += taken[-1].height
        if have >= n:
            break
    return pl.concat(taken, how="vertical")


def _cell(value: object) -> str:
    from datetime import datetime

    from rich.markup import escape

    if value is None:
        return "[dim]null[/dim]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds" if not value.microsecond else "microseconds")
    return escape(str(value))
