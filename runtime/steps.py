"""Post-processing steps over a stream of row chunks.

Each step maps an iterator of frames to an iterator of frames and is applied in plan
order. Streaming steps (filter, dedupe, drop, select, rename, limit, unnest, validate,
sample by fraction, sessionize) hold one chunk at a time (dedupe also keeps 8 bytes per
distinct key, sessionize one entry per entity). Blocking steps (sort, shuffle) collect
every row that reaches them, reorder, then hand the rows on in chunks; ``sample: {n}``
keeps at most about ``n + max(n, chunk_rows)`` rows while it reads.

Guarantees: the rows that come out depend only on the rows that go in and their order,
never on how they are split into chunks; ``limit`` stops pulling from upstream as soon
as it has its rows, so nothing further is generated. Every step passes on at least one
frame (possibly empty), so the schema reaches the writer even for zero rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import assert_never

import numpy as np
import numpy.typing as npt
import polars as pl

from runtime import rng
from runtime.checks import describe_validate, validate_frames
from runtime.errors import ExecutionError
from runtime.plan import (
    Dedupe,
    Drop,
    Filter,
    Limit,
    Rename,
    Sample,
    Select,
    Sessionize,
    Shuffle,
    Sort,
    Step,
    Unnest,
    Validate,
)
from runtime.sessions import Sessions

Frames = Iterator[pl.DataFrame]
FrameFn = Callable[[pl.DataFrame], pl.DataFrame]

# Streams of the hidden per-row keys: "\x01" cannot occur in a column name, so no
# column's stream can collide with them. The k-th shuffle (sample) step of a plan uses
# draw k of its stream.
SHUFFLE_STREAM = "\x01shuffle"
SAMPLE_STREAM = "\x01sample"
# Hidden columns start with "__", which user column names may not.
_SHUFFLE_KEY = "__shuffle_key_{}"
_SAMPLE_KEY = "__sample_key_{}"
_SAMPLE_POS = "__sample_pos"


def hidden_key_names(steps: Sequence[Step]) -> list[str]:
    """Names of every hidden key column the steps consume: shuffle keys, then sample keys."""
    return _key_names(steps, Shuffle, _SHUFFLE_KEY) + _key_names(steps, Sample, _SAMPLE_KEY)


# The old name (execute.py imports it); it names every hidden key, not only shuffles'.
shuffle_key_names = hidden_key_names


def hidden_columns(seed: int, steps: Sequence[Step], start: int, stop: int) -> list[pl.Series]:
    """The hidden columns the source attaches to rows ``start..stop-1``: one key per
    shuffle and per sample step, a pure function of (seed, step kind and occurrence,
    original row index)."""
    keys = [
        (SHUFFLE_STREAM, _key_names(steps, Shuffle, _SHUFFLE_KEY)),
        (SAMPLE_STREAM, _key_names(steps, Sample, _SAMPLE_KEY)),
    ]
    return [
        pl.Series(name, rng.bits(seed, stream, k, start, stop), dtype=pl.UInt64)
        for stream, names in keys
        for k, name in enumerate(names)
    ]


def apply_steps(
    frames: Iterable[pl.DataFrame], steps: Sequence[Step], *, chunk_rows: int, before: Sequence[Step] = ()
) -> Frames:
    """Chain the steps over ``frames`` lazily; nothing is pulled until the result is.
    ``before`` are the plan's steps already applied upstream (``steps`` continue them),
    so each step consumes the hidden key column the plan gave it."""
    out: Frames = iter(frames)
    whole = [*before, *steps]
    shuffles = _key_names(whole, Shuffle, _SHUFFLE_KEY)[len(_key_names(before, Shuffle, _SHUFFLE_KEY)) :]
    samples = _key_names(whole, Sample, _SAMPLE_KEY)[len(_key_names(before, Sample, _SAMPLE_KEY)) :]
    keys = _Keys(iter(shuffles), iter(samples))
    for step in steps:
        out = _apply(out, step, keys, chunk_rows)
    return out


class _Keys:
    """The hidden key columns not yet consumed, per kind of step, in plan order."""

    def __init__(self, shuffles: Iterator[str], samples: Iterator[str]) -> None:
        self.shuffles = shuffles
        self.samples = samples


def _key_names(steps: Sequence[Step], kind: type, pattern: str) -> list[str]:
    return [pattern.format(k) for k in range(sum(isinstance(step, kind) for step in steps))]


def _apply(frames: Frames, step: Step, keys: _Keys, chunk_rows: int) -> Frames:
    match step:
        case Filter():
            return _filter(frames, step)
        case Dedupe():
            return _dedupe(frames, step.columns)
        case Drop():
            return _each(frames, step, lambda df: df.drop(step.columns))
        case Select():
            return _each(frames, step, lambda df: df.select(*step.columns, *_hidden(df)))
        case Rename():
            return _each(frames, step, lambda df: df.rename(dict(step.mapping)))
        case Sort():
            return _blocking(frames, step, chunk_rows, lambda df: _sort(df, step))
        case Shuffle():
            key = next(keys.shuffles)
            return _blocking(frames, step, chunk_rows, lambda df: _shuffle(df, key))
        case Limit():
            return _limit(frames, step.n)
        case Unnest():
            return _each(frames, step, lambda df: _unnest(df, step))
        case Validate():
            return validate_frames(frames, step)
        case Sample():
            key = next(keys.samples)
            if step.n is not None:
                return _sample_n(frames, step, key, chunk_rows)
            return _sample_fraction(frames, step, key)
        case Sessionize():
            return _sessionize(frames, step)
        case _:
            assert_never(step)


def describe(step: Step) -> str:
    """A step as the spec writes it, for error messages."""
    match step:
        case Filter():
            return f"filter: {step.expr}"
        case Dedupe() | Drop() | Select():
            return f"{step.KIND}: [{', '.join(step.columns)}]"
        case Rename():
            return "rename: {" + ", ".join(f"{a}: {b}" for a, b in step.mapping) + "}"
        case Sort():
            return f"sort: {{by: [{', '.join(step.by)}], descending: {str(step.descending).lower()}}}"
        case Shuffle():
            return "shuffle: true"
        case Limit():
            return f"limit: {step.n}"
        case Unnest():
            if step.prefix:
                return f"unnest: {{column: {step.column}, prefix: {step.prefix}}}"
            return f"unnest: {step.column}"
        case Validate():
            return describe_validate(step)
        case Sample():
            return (
                f"sample: {{n: {step.n}}}" if step.n is not None else f"sample: {{fraction: {step.fraction}}}"
            )
        case Sessionize():
            extra = f", sequence: {step.sequence}" if step.sequence else ""
            return (
                f"sessionize: {{by: {step.by}, time: {step.time}, gap: {_duration(step.gap_us)}, "
                f"session: {step.session}{extra}}}"
            )
        case _:
            assert_never(step)


# --------------------------------------------------------------------------- streaming steps


def _each(frames: Frames, step: Step, fn: FrameFn) -> Frames:
    for df in frames:
        yield _guarded(step, fn, df)


def _filter(frames: Frames, step: Filter) -> Frames:
    try:
        predicate = pl.sql_expr(step.expr).fill_null(False)
    except pl.exceptions.PolarsError as exc:
        raise _step_error(step, exc) from exc
    for df in frames:
        yield _guarded(step, lambda d: d.filter(predicate), df)


def _dedupe(frames: Frames, columns: tuple[str, ...]) -> Frames:
    seen = SeenHashes()
    step = Dedupe(columns)
    for df in frames:
        hashes = _guarded(step, lambda d: d.select(columns).hash_rows().to_frame(), df).to_series().to_numpy()
        keep = pl.Series(hashes).is_first_distinct().to_numpy() & ~seen.contains(hashes)
        seen.add(hashes[keep])
        yield df.filter(pl.Series(keep))


def _limit(frames: Frames, n: int) -> Frames:
    remaining = n
    for df in frames:
        if df.height >= remaining:
            yield df.head(remaining)
            return  # stop pulling: upstream generates nothing further
        remaining -= df.height
        yield df


class SeenHashes:
    """A set of 64-bit row hashes, kept as a few sorted NumPy runs (8 bytes per key).

    Runs merge when a newer run grows to half an older one, so there are O(log n) runs
    and each key is re-sorted O(log n) times. Two distinct keys share a 64-bit hash with
    probability about n²/2**65 (≈3e-6 for 10 million distinct keys).
    """

    def __init__(self) -> None:
        self._runs: list[npt.NDArray[np.uint64]] = []

    def contains(self, hashes: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
        found = np.zeros(len(hashes), dtype=np.bool_)
        for run in self._runs:
            at = np.minimum(np.searchsorted(run, hashes), len(run) - 1)
            found |= run[at] == hashes
        return found

    def add(self, hashes: npt.NDArray[np.uint64]) -> None:
        """Add hashes that are not in the set yet (and distinct among themselves)."""
        if len(hashes) == 0:
            return
        self._runs.append(np.sort(hashes))
        while len(self._runs) > 1 and 2 * len(self._runs[-1]) >= len(self._runs[-2]):
            newer = self._runs.pop()
            self._runs[-1] = np.sort(np.concatenate([self._runs[-1], newer]), kind="stable")


def _unnest(df: pl.DataFrame, step: Unnest) -> pl.DataFrame:
    """The struct column's fields, named prefix + field, in the column's place."""
    dtype = df.get_column(step.column).dtype  # a missing one raises ColumnNotFoundError (guarded)
    if not isinstance(dtype, pl.Struct):
        raise ExecutionError(
            f"step `{describe(step)}` failed: column `{step.column}` is {dtype}, not a struct"
        )
    fields = [pl.col(step.column).struct.field(f.name).alias(step.prefix + f.name) for f in dtype.fields]
    at = df.columns.index(step.column)
    return df.select(*df.columns[:at], *fields, *df.columns[at + 1 :])


def _sample_fraction(frames: Frames, step: Sample, key: str) -> Frames:
    """Rows whose key is below ``fraction * 2**64`` (exact: a power-of-two scaling)."""
    fraction = step.fraction if step.fraction is not None else 1.0
    for df in frames:
        if fraction >= 1.0:
            yield df.drop(key)
        else:
            yield df.filter(pl.col(key) < pl.lit(int(fraction * 2**64), dtype=pl.UInt64)).drop(key)


def _sample_n(frames: Frames, step: Sample, key: str, chunk_rows: int) -> Frames:
    """The ``n`` rows with the smallest (key, position), in stream order.

    Candidates are kept bounded: incoming rows are buffered until there are
    ``max(n, chunk_rows)`` of them, then merged with the candidates and cut back to n."""
    n = step.n if step.n is not None else 0
    kept: pl.DataFrame | None = None
    pending: list[pl.DataFrame] = []
    buffered = seen = 0
    for df in frames:
        pending.append(
            df.with_columns(pl.int_range(seen, seen + df.height, dtype=pl.Int64).alias(_SAMPLE_POS))
        )
        seen += df.height
        buffered += df.height
        if buffered >= max(n, chunk_rows):
            kept, pending, buffered = _smallest(kept, pending, n, key), [], 0
    if kept is None and not pending:
        return  # nothing came in: nothing to pass on (not even a schema)
    kept = _smallest(kept, pending, n, key).sort(_SAMPLE_POS).drop(key, _SAMPLE_POS)
    yield from _in_chunks(kept, chunk_rows)


def _smallest(kept: pl.DataFrame | None, pending: list[pl.DataFrame], n: int, key: str) -> pl.DataFrame:
    whole = pl.concat(([] if kept is None else [kept]) + pending, how="vertical")
    # (key, position) is unique, so the n smallest are one set whatever the chunking.
    return whole.bottom_k(n, by=[key, _SAMPLE_POS]) if whole.height > n else whole


def _sessionize(frames: Frames, step: Sessionize) -> Frames:
    sessions = Sessions(step, describe(step))
    for df in frames:
        yield _guarded(step, sessions.apply, df)


# --------------------------------------------------------------------------- blocking steps


def _blocking(frames: Frames, step: Step, chunk_rows: int, fn: FrameFn) -> Frames:
    collected = list(frames)
    if not collected:
        return
    whole = _guarded(step, fn, pl.concat(collected, how="vertical"))
    del collected
    yield from _in_chunks(whole, chunk_rows)


def _in_chunks(whole: pl.DataFrame, chunk_rows: int) -> Frames:
    """``whole`` in slices of ``chunk_rows`` rows; one empty frame when it has none."""
    if whole.height == 0:
        yield whole
    for offset in range(0, whole.height, chunk_rows):
        yield whole.slice(offset, chunk_rows)


def _sort(df: pl.DataFrame, step: Sort) -> pl.DataFrame:
    # Stable: ties keep row order. Nulls go last in either direction.
    return df.sort(list(step.by), descending=step.descending, nulls_last=True, maintain_order=True)


def _shuffle(df: pl.DataFrame, key: str) -> pl.DataFrame:
    # Keys are a function of the original row index, so the order does not depend on
    # chunking; ties (64-bit collisions) keep row order.
    return df.sort(key, maintain_order=True).drop(key)


# --------------------------------------------------------------------------- helpers


def _hidden(df: pl.DataFrame) -> list[str]:
    return [name for name in df.columns if name.startswith("__")]


def _duration(us: int) -> str:
    """Microseconds as the spec would write them (e.g. 30m, 1500ms)."""
    for unit, size in (
        ("d", 86_400_000_000),
        ("h", 3_600_000_000),
        ("m", 60_000_000),
        ("s", 1_000_000),
        ("ms", 1000),
    ):
        if us and us % size == 0:
            return f"{us // size}{unit}"
    return f"{us}us"


def _guarded(step: Step, fn: FrameFn, df: pl.DataFrame) -> pl.DataFrame:
    try:
        return fn(df)
    except pl.exceptions.PolarsError as exc:
        raise _step_error(step, exc) from exc


def _step_error(step: Step, exc: Exception) -> ExecutionError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ExecutionError(f"step `{describe(step)}` failed: {reason}")
