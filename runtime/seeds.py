"""Seed files: local CSV (with a header), JSON lines or Parquet files rows come from.

The compiler calls :func:`file_digest`, :func:`seed_schema` and :func:`seed_row_count`
to record a file in the plan (its digest, column types and row count); the runtime
calls :func:`seed_frame` (a :class:`~runtime.plan.SeedFile` source) and
:func:`sample_lookup` (a :class:`~runtime.plan.LookupColumn`). Both refuse a file whose
bytes no longer match the recorded digest, and cast its columns to the recorded types,
so a run reads exactly what ``synthc check`` saw.

Guarantees: rows and draws are pure functions of (file bytes, seed, names, row index):
the frame for rows ``start..stop-1`` never depends on the chunking. A file is read at
most once per run (kept in the run's memo under ``("seeds", ...)`` keys).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import xxhash

from runtime import rng
from runtime.errors import ExecutionError
from runtime.plan import LookupColumn, SeedFile, SeedFormat
from runtime.samplers.base import F64, I64, Chunk, Stream, uniform_ints

PathText = str | PathLike[str]
Memo = dict[Any, Any]

# Stream of the seeded shuffle of a `from:` file ("\x01" cannot occur in a column name).
FROM_STREAM = "\x01from"
_BLOCK = 1 << 20


def file_digest(path: PathText) -> str:
    """xxh3-128 (hex) of the file's bytes, read in 1 MiB blocks (memory stays flat)."""
    digest = xxhash.xxh3_128()
    with open(path, "rb") as file:
        while block := file.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def seed_schema(path: PathText, format: SeedFormat) -> list[tuple[str, str]]:
    """(column name, Polars dtype text) per column, in file order, without reading the
    rows into memory (a CSV or JSON lines file is scanned once to infer the types)."""
    schema = _scan(path, format).collect_schema()
    return [(name, str(dtype)) for name, dtype in schema.items()]


def seed_row_count(path: PathText, format: SeedFormat) -> int:
    """The number of data rows (a CSV's header is not a row)."""
    count = _scan(path, format).select(pl.len()).collect().item()
    return int(count)


def parse_dtype(text: str) -> pl.DataType:
    """The Polars dtype whose ``str()`` is ``text`` (e.g. ``"Int64"``, ``"List(String)"``,
    ``"Datetime(time_unit='us', time_zone=None)"``, ``"Struct({'a': Int64})"``).

    The text is parsed as a Python expression but never evaluated: only dtype names of
    the ``polars`` namespace, literals, lists, tuples and dicts are accepted, so a plan
    cannot run code. Raises ValueError for anything else."""
    try:
        value = _dtype_value(ast.parse(text.strip(), mode="eval").body)
    except (SyntaxError, TypeError, ValueError) as exc:
        raise ValueError(f"not a Polars dtype: {text!r}") from exc
    if not isinstance(value, pl.DataType):
        raise ValueError(f"not a Polars dtype: {text!r}")
    return value


def read_seed(
    path: str,
    format: SeedFormat,
    digest: str,
    columns: Sequence[str] | None,
    memo: Memo,
    *,
    dtypes: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """The file's ``columns`` (all when None), with the ones in ``dtypes`` cast to the
    recorded dtype text. The file is read once per (path, digest) and kept in ``memo``.

    Raises ExecutionError when the file is missing, unreadable, lacks a column, cannot be
    cast, or its bytes no longer have ``digest``."""
    key = ("seeds", "file", path, digest)
    frame = memo.get(key)
    if frame is None:
        frame = memo[key] = _read_checked(path, format, digest)
    if columns is not None:
        missing = [name for name in columns if name not in frame.columns]
        if missing:
            raise ExecutionError(f"seed file {path} has no column `{missing[0]}`: run `synthc check` again")
        frame = frame.select(columns)
    if dtypes:
        frame = _cast(frame, path, {name: text for name, text in dtypes.items() if name in frame.columns})
    return frame


def seed_frame(sf: SeedFile, seed: int, start: int, stop: int, memo: Memo) -> pl.DataFrame:
    """Rows ``start..stop-1`` of the seed file after its seeded shuffle (if any) and
    ``limit``: ``sf.columns`` in order, with their recorded dtypes.

    The shuffle orders the rows by 64-bit keys drawn from (seed, ``FROM_STREAM``, row),
    ties by row, so the order is a pure function of the seed and the file."""
    frame = read_seed(
        sf.path, sf.format, sf.digest, [name for name, _ in sf.columns], memo, dtypes=dict(sf.columns)
    )
    if frame.height != sf.rows:
        raise ExecutionError(
            f"seed file {sf.path} has {frame.height} rows, the plan expects {sf.rows}: run `synthc check` again"
        )
    available = sf.rows if sf.limit is None else min(sf.rows, sf.limit)
    if not 0 <= start <= stop <= available:
        raise ExecutionError(
            f"seed file {sf.path} gives {available} rows; rows {start}..{stop - 1} were asked for"
        )
    if not sf.shuffle:
        return frame.slice(start, stop - start)
    return frame.gather(_order(sf, seed, memo)[start:stop])


def sample_lookup(col: LookupColumn, chunk: Chunk) -> pl.Series:
    """Per row, a value of ``col.column`` from a row of the seed file: uniform over its
    rows, or in proportion to the numeric column ``col.weights``. Row ``i`` draws from
    (seed, ``col.name``, draw 0, i); nulls in the file stay null. Dtype: ``col.dtype``."""
    columns = [col.column] if col.weights in (None, col.column) else [col.column, col.weights]
    frame = read_seed(col.path, col.format, col.digest, columns, chunk.memo, dtypes={col.column: col.dtype})
    values = frame.get_column(col.column)
    if values.len() == 0:
        raise ExecutionError(f"column `{col.name}`: seed file {col.path} has no rows", column=col.name)
    stream = Stream.of(col.name, chunk)
    if col.weights is None:
        index = uniform_ints(stream.bits(0), 0, values.len() - 1)
    else:
        total, cumulative = _cumulative(col, frame, chunk.memo)
        index = np.searchsorted(cumulative, stream.uniform(0) * total, side="right").astype(np.int64)
    return values.gather(index).alias(col.name)


# --------------------------------------------------------------------------- reading


def _scan(path: PathText, format: SeedFormat) -> pl.LazyFrame:
    # The compiler and the runtime read with these same options, so the types inferred
    # from the same bytes are the same; a full inference pass keeps a late odd row from
    # failing the run after a clean check. A path is a file, never a glob pattern.
    file = Path(path)
    match format:
        case "csv":
            return pl.scan_csv(file, infer_schema_length=None, try_parse_dates=True, glob=False)
        case "jsonl":
            return pl.scan_ndjson(file, infer_schema_length=None)
        case "parquet":
            return pl.scan_parquet(file, glob=False)


def _read_checked(path: str, format: SeedFormat, digest: str) -> pl.DataFrame:
    if not Path(path).is_file():
        raise ExecutionError(f"seed file {path} is missing")
    try:
        actual = file_digest(path)
    except OSError as exc:
        raise ExecutionError(f"seed file {path} cannot be read: {exc.strerror or exc}") from exc
    if actual != digest:
        raise ExecutionError(
            f"seed file {path} changed since the spec was compiled: run `synthc check` again"
        )
    try:
        return _scan(path, format).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise ExecutionError(f"seed file {path} cannot be read as {format}: {_first_line(exc)}") from exc


def _cast(frame: pl.DataFrame, path: str, dtypes: Mapping[str, str]) -> pl.DataFrame:
    try:
        return frame.cast({name: parse_dtype(text) for name, text in dtypes.items()})
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise ExecutionError(
            f"seed file {path}: columns cannot be read as the types the spec was compiled with "
            f"({_first_line(exc)}): run `synthc check` again"
        ) from exc


def _order(sf: SeedFile, seed: int, memo: Memo) -> I64:
    """The file's row indices after the seeded shuffle, cut to ``limit``."""
    key = ("seeds", "order", sf.digest, seed, sf.rows, sf.limit)
    order: I64 | None = memo.get(key)
    if order is None:
        keys = rng.bits(seed, FROM_STREAM, 0, 0, sf.rows)
        order = np.argsort(keys, kind="stable").astype(np.int64)  # stable: ties by row
        if sf.limit is not None:
            order = order[: sf.limit].copy()
        memo[key] = order
    return order


def _cumulative(col: LookupColumn, frame: pl.DataFrame, memo: Memo) -> tuple[float, F64]:
    """(total weight, cumulative weights) with every cumulative entry from the last
    positive weight on pinned to +inf: rounding in the sum can never send a draw past
    it, nor onto a trailing zero weight. The first i with ``c_i > u * total`` is row i."""
    assert col.weights is not None
    key = ("seeds", "weights", col.path, col.digest, col.weights)
    cached: tuple[float, F64] | None = memo.get(key)
    if cached is not None:
        return cached
    weights = _weights(col, frame.get_column(col.weights))
    cumulative = np.cumsum(weights)
    total = float(cumulative[-1])
    if not total > 0 or not np.isfinite(total):
        raise ExecutionError(
            f"column `{col.name}`: the weights in `{col.weights}` of {col.path} "
            + ("are all zero" if total == 0 else "sum to more than a float can hold"),
            column=col.name,
        )
    cumulative[int(np.flatnonzero(weights > 0)[-1]) :] = np.inf
    memo[key] = (total, cumulative)
    return total, cumulative


def _weights(col: LookupColumn, series: pl.Series) -> F64:
    where = f"column `{col.name}`: weights column `{col.weights}` of {col.path}"
    if not series.dtype.is_numeric():
        raise ExecutionError(f"{where} is {series.dtype}, not a number", column=col.name)
    if series.null_count():
        row = int(series.is_null().arg_true()[0])
        raise ExecutionError(f"{where} has a missing weight (file row {row + 1})", column=col.name)
    weights: F64 = series.cast(pl.Float64).to_numpy()
    bad = np.flatnonzero(~(weights >= 0) | ~np.isfinite(weights))
    if bad.size:
        raise ExecutionError(
            f"{where} has a negative or non-finite weight ({weights[bad[0]]} in file row {bad[0] + 1})",
            column=col.name,
        )
    return weights


# --------------------------------------------------------------------------- dtype text


def _dtype_value(node: ast.expr) -> Any:
    match node:
        case ast.Constant(value=value) if value is None or isinstance(value, str | int | float | bool):
            return value
        case ast.UnaryOp(op=ast.USub(), operand=ast.Constant(value=int() | float() as value)):
            return -value
        case ast.Name(id=name):
            return _dtype_class(name)()
        case ast.Call(func=ast.Name(id=name), args=args, keywords=keywords):
            kwargs = {kw.arg: _dtype_value(kw.value) for kw in keywords if kw.arg is not None}
            if len(kwargs) != len(keywords):
                raise ValueError("** arguments")
            return _dtype_class(name)(*[_dtype_value(arg) for arg in args], **kwargs)
        case ast.List(elts=items):
            return [_dtype_value(item) for item in items]
        case ast.Tuple(elts=items):
            return tuple(_dtype_value(item) for item in items)
        case ast.Dict(keys=keys, values=values) if all(k is not None for k in keys):
            return {
                _dtype_value(k): _dtype_value(v) for k, v in zip(keys, values, strict=True) if k is not None
            }
    raise ValueError(f"unexpected {type(node).__name__}")


def _dtype_class(name: str) -> type[pl.DataType]:
    cls = getattr(pl, name, None)
    if not (isinstance(cls, type) and issubclass(cls, pl.DataType)):
        raise ValueError(f"{name!r} is not a Polars dtype")
    return cls


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
