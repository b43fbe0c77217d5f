"""Post-processing steps over a stream of row chunks.

Each step maps an iterator of frames to an iterator of frames and is applied in plan
order. Streaming steps (filter, dedupe, drop, select, rename, limit) hold one chunk at a
time (dedupe also keeps 8 bytes per distinct key). Blocking steps (sort, shuffle) collect
every row that reaches them, reorder, then hand the rows on in chunks.

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
from runtime.errors import ExecutionError
from runtime.plan import Dedupe, Drop, Filter, Limit, Rename, Select, Shuffle, Sort, Step

Frames = Iterator[pl.DataFrame]
FrameFn = Callable[[pl.DataFrame], pl.DataFrame]

# Stream of the shuffle keys: "\x01" cannot occur in a column name, so no column's
# stream can collide with it. The k-th shuffle step of a plan uses draw k.
SHUFFLE_STREAM = "\x01shuffle"
# Hidden columns start with "__", which user column names may not.
_SHUFFLE_KEY = "__shuffle_key_{}"


def shuffle_key_names(steps: Sequence[Step]) -> list[str]:
    """Names of the hidden key columns the shuffle steps of ``steps`` consume, in order."""
    count = sum(isinstance(step, Shuffle) for step in steps)
    return [_SHUFFLE_KEY.format(k) for k in range(count)]


def hidden_columns(seed: int, steps: Sequence[Step], start: int, stop: int) -> list[pl.Series]:
    """The hidden columns the source attaches to rows ``start..stop-1``: one shuffle key per
    shuffle step, a pure function of (seed, step occurrence, original row index)."""
    return [
        pl.Series(name, rng.bits(seed, SHUFFLE_STREAM, k, start, stop), dtype=pl.UInt64)
        for k, name in enumerate(shuffle_key_names(steps))
    ]


def apply_steps(frames: Iterable[pl.DataFrame], steps: Sequence[Step], *, chunk_rows: int) -> Frames:
    """Chain the steps over ``frames`` lazily; nothing is pulled until the result is."""
    out: Frames = iter(frames)
    shuffles = iter(shuffle_key_names(steps))
    for step in steps:
        out = _apply(out, step, shuffles, chunk_rows)
    return out


def _apply(frames: Frames, step: Step, shuffles: Iterator[str], chunk_rows: int) -> Frames:
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
            key = next(shuffles)
            return _blocking(frames, step, chunk_rows, lambda df: _shuffle(df, key))
        case Limit():
            return _limit(frames, step.n)
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


# --------------------------------------------------------------------------- blocking steps


def _blocking(frames: Frames, step: Step, chunk_rows: int, fn: FrameFn) -> Frames:
    collected = list(frames)
    if not collected:
        return
    whole = _guarded(step, fn, pl.concat(collected, how="vertical"))
    del collected
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


def _guarded(step: Step, fn: FrameFn, df: pl.DataFrame) -> pl.DataFrame:
    try:
        return fn(df)
    except pl.exceptions.PolarsError as exc:
        raise _step_error(step, exc) from exc


def _step_error(step: Step, exc: Exception) -> ExecutionError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ExecutionError(f"step `{describe(step)}` failed: {reason}")
