"""Filling a chunk's LLM columns: cache first, then the scheduler, cell by cell.

For each chunk the executor has computed every column that does not depend on a model;
:meth:`LLMRun.fill` adds the LLM columns and the columns computed from them.

How a chunk is filled:
1. Every LLM column whose model inputs are complete is rendered for the whole chunk
   (vectorized), keyed, and looked up in the cache in bulk. A fully cached run never
   leaves this step: no event loop, no LiteLLM import.
2. What is missing runs asynchronously on one event loop (its own thread, so the
   caller's loop, e.g. a notebook's, is never touched): per model alias a pool of
   ``concurrency`` workers takes cells from a queue. A column that depends on another
   LLM column takes its rows as soon as the rows before them exist upstream (the
   occurrence index needs every earlier prompt of the column), so dependent cells start
   while their upstream column is still running, and independent columns run at once.
3. Cells that fail are null; their row and error are kept for ``<out>.errors.jsonl``.

Lookups go through :class:`runtime.llm.pack.ResponseLayers`: the ``replay`` packs first
(read-only), then the cache. An ``offline`` run never reaches step 2: it fills what the
packs and the cache hold and raises :class:`OfflineMiss` once a chunk with misses is
complete (naming them), so it needs no event loop, no scheduler and no LiteLLM.
The run records which keys it used (:meth:`LLMRun.used_keys`, what a pack exports) and,
per model alias, which model answered each used cell (``LLMSummary.answered_by``).

Guarantees: the values are the same for any chunk size and any timing (keys depend on
row order only; every answer comes from the cache or from a call that is then cached). Memory is
bounded by the chunk: at most one queued request per cell of the chunk, and one worker
per unit of concurrency.

Shards (``shard=Shard(k, n)``, rows ``[start, stop)``): a key's occurrence index counts
identical requests in *every* earlier row, so before its first row a shard makes a
counting pass: the executor generates rows ``[0, start)`` without their model-dependent
columns (:func:`runtime.shards.shard_frames` runs it) and :meth:`LLMRun.fill` of those
chunks renders each LLM column's prompts and feeds them to its occurrence counter exactly
as a whole run would, with no call and no tally. The rows a whole run would not ask for
(``nulls``, a null LLM input) are skipped the same way; a column that reads another LLM
column needs that column's earlier answers, looked up read-only in the packs and the
cache (:class:`UpstreamMissing` when one is in neither). Then rows ``[start, stop)`` run as
usual, so every key, and so every value, is the whole run's. Cost of the pass: ``start``
rows rendered, no call; memory: a chunk plus the occurrence maps. An LLM source collects
the records of rows ``[0, stop)`` (:mod:`runtime.llm.records`). Caveat: a whole run whose
upstream cell *failed* skips the dependent cell, while the pass, finding no answer,
raises: a shard assumes the earlier shards ended without failed cells.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import polars as pl

from runtime.cache import Cache, CachedResponse
from runtime.errors import ExecutionError
from runtime.llm.graph import dependencies, model_dependent
from runtime.llm.loop import CallsGC, LoopThread
from runtime.llm.outcome import (
    CellError,
    ColumnTally,
    LLMAborted,
    LLMOptions,
    LLMSummary,
    OfflineMiss,
    UpstreamMissing,
)
from runtime.llm.pack import ResponseLayers
from runtime.llm.prompts import ColumnRequests, Messages, column_params, output_schema, render_messages
from runtime.plan import Column, LLMColumn, Plan
from runtime.samplers.base import Chunk, null_mask
from runtime.shards import Shard

if TYPE_CHECKING:
    from runtime.llm.scheduler import CellAnswer, CellFailure, CellRequest, RunStats, Scheduler


# A run stops (instead of failing every remaining cell) after this many failures in a
# row once the failure budget is spent: the provider is down or the key is wrong.
FAILURES_IN_A_ROW = 20
SAMPLE_PROMPTS = 3  # rendered prompts kept per column for --dry-run

PENDING, DONE, NULL, FAILED, UNKNOWN = 0, 1, 2, 3, 4

T = TypeVar("T")
Sampler = Callable[[Column, Chunk], pl.Series]


@dataclass
class _Cells:
    """One LLM column's cells in the current chunk."""

    values: list[Any]
    status: bytearray
    prefix: int = 0  # rows [0, prefix) are no longer pending

    def advance(self) -> bool:
        start, status, n = self.prefix, self.status, len(self.status)
        while self.prefix < n and status[self.prefix] != PENDING:
            self.prefix += 1
        return self.prefix != start


class LLMRun:
    """The LLM side of one run of ``plan``; use as a context manager (closes the cache,
    the event loop and LiteLLM's connections).

    ``shard``: the run makes only that shard's rows ``[start, stop)``; the executor must
    first pass it rows ``[0, start)`` (the counting pass, see the module docstring), then
    the shard's rows. The failure budget is then a fraction of the shard's cells."""

    def __init__(
        self, plan: Plan, options: LLMOptions, sample: Sampler, *, shard: Shard | None = None
    ) -> None:
        self.plan = plan
        self.options = options
        self._sample = sample
        self.shard = shard
        self.first_row, self.stop_row = shard.rows(plan.rows) if shard is not None else (0, plan.rows)
        self._counted = 0  # the counting pass has fed rows [0, _counted) to the occurrence counters
        self.columns = plan.llm_columns()
        self.tallies = {col.name: ColumnTally() for col in self.columns}
        self.errors: list[CellError] = []
        rows = self.stop_row - self.first_row
        calls = rows * len(self.columns) + (rows if plan.llm_source is not None else 0)
        self.allowed_failures = options.max_failures.allowed(calls)
        self._requests = {col.name: self._column_requests(col) for col in self.columns}
        self._schemas = {col.name: output_schema(col) for col in self.columns}
        self._deps, self._via = dependencies(plan)
        self._upstream = set().union(*self._deps.values())  # LLM columns another one reads
        self._later = model_dependent(plan)
        self._records: pl.DataFrame | None = None
        self._cache = _open_cache(options)
        try:
            self.layers = ResponseLayers.open(
                options.replay, self._cache, plan=plan, plan_hash=options.replay_plan
            )
        except BaseException:
            if self._cache is not None:
                self._cache.close()
            raise
        self._used: set[str] = set()
        self._answered: dict[str, dict[str, int]] = {}
        self._missing: list[tuple[str, int]] = []
        self._loop: LoopThread | None = None
        self._scheduler: Scheduler | None = None
        self._stats: RunStats | None = None
        self._in_a_row = 0
        self._vars = MappingProxyType(json.loads(plan.vars))
        self.source_tally: ColumnTally | None = None
        self._abort: LLMAborted | None = None
        self._gc: CallsGC | None = None

    # ----------------------------------------------------------------------- public

    @property
    def stats(self) -> RunStats:
        """Live counters (calls, retries, tokens, cost, ...) for progress displays."""
        if self._stats is None:
            from runtime.llm.scheduler import RunStats

            self._stats = RunStats()
        return self._stats

    @property
    def failures(self) -> int:
        return len(self.errors)

    def used_keys(self) -> frozenset[str]:
        """The cache keys of every answer this run used so far (from a pack, the cache or
        a call): exactly what a response pack of the run must hold."""
        return frozenset(self._used)

    def records(self) -> pl.DataFrame:
        """The rows of the plan's LLM ``source`` (see :mod:`runtime.llm.records`): from the
        packs or the cache, else asked of the model; a dry run gives nulls for what is not
        found, an offline run raises OfflineMiss naming the calls it lacks. A shard's run
        gives rows ``[0, stop)`` (the whole run's first ``stop`` records). Collected once:
        later calls return the same frame."""
        if self._records is None:
            self._records = self._collect_records()
        return self._records

    def _collect_records(self) -> pl.DataFrame:
        from runtime.llm.records import RecordSource, collect

        source = RecordSource(self.plan, self.layers, self._vars, rows=self.stop_row)
        self.source_tally = ColumnTally(cells=source.calls_needed)
        ask = None if self.options.offline else lambda calls: self._ask_source(source, calls)
        return collect(
            source,
            self.source_tally,
            ask=ask,
            dry_run=self.options.dry_run,
            errors=self.errors,
            use=self._use,
        )

    def _ask_source(self, source: Any, calls: list[int]) -> dict[int, list[Any]]:
        from runtime.llm.scheduler import BudgetExceeded

        try:
            answers: dict[int, list[Any]] = self._loop_run(source.ask(self._scheduler_for_run(), calls))
        except BudgetExceeded as exc:
            raise LLMAborted(f"{exc}; every answer so far is in the cache") from exc
        return answers

    def summary(self, errors_file: Path | None) -> LLMSummary:
        errors = tuple(sorted(self.errors, key=lambda e: (e.row, e.column)))
        answered = {alias: dict(sorted(models.items())) for alias, models in sorted(self._answered.items())}
        return LLMSummary(
            dict(self.tallies), errors, self.allowed_failures, self.stats, errors_file, self.source_tally,
            answered_by=answered,
        )  # fmt: skip

    def fill(self, frame: pl.DataFrame, start: int, stop: int) -> pl.DataFrame:
        """``frame`` (rows ``start..stop-1``, every column not computed from a model) with
        the LLM columns and the columns that depend on them added, in evaluation order.

        A shard's run counts the rows before its first instead (:meth:`_count`: those
        columns come back as nulls, to be discarded), and refuses its own rows until every
        earlier row has been counted."""
        if start < self.first_row:
            return self._count(frame, start, stop)
        if self._counted < self.first_row:
            raise ExecutionError(
                f"internal error: shard {self.shard} got rows {start:,}.. before the rows before it were "
                f"counted (rows {self._counted:,}..{self.first_row - 1:,} are not): run it with "
                "runtime.shards.shard_frames"
            )
        cells = {col.name: _Cells([None] * (stop - start), bytearray(stop - start)) for col in self.columns}
        chunk = _ChunkState(frame, start, stop, cells)
        misses: list[CellRequest] = []
        deferred: list[LLMColumn] = []
        for col in self.columns:
            if any(cells[dep].prefix < chunk.size for dep in self._deps[col.name]):
                deferred.append(col)
            else:
                misses += self._range(col, chunk, 0, chunk.size)
        if self._missing:  # offline: nothing was asked for
            raise OfflineMiss(self._missing, where=f"rows {start:,}..{stop - 1:,}")
        if misses or deferred:
            self._loop_run(self._session(chunk, misses, deferred))
        return self._complete(chunk)

    def close(self) -> None:
        try:
            if self._gc is not None:
                self._gc.restore()
                self._gc = None
            if self._scheduler is not None:
                self._scheduler.close()
            if self._loop is not None:
                self._loop.close(self._transport_close())
        finally:
            if self._cache is not None:
                self._cache.close()

    def __enter__(self) -> LLMRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------- set-up

    def _column_requests(self, col: LLMColumn) -> ColumnRequests:
        alias = self.plan.model(col.model)
        return ColumnRequests(alias.model, column_params(alias, col), output_schema(col), self.plan.seed)

    def _scheduler_for_run(self) -> Scheduler:
        if self.options.offline or self.options.dry_run:
            # Unreachable: such runs queue no request (and columns come in evaluation order).
            raise ExecutionError("internal error: an offline or dry run tried to call a model")
        if self._scheduler is None:
            from runtime.llm.scheduler import Route, RouteError, Scheduler
            from runtime.llm.transport import LiteLLMTransport

            environ = self.options.environ if self.options.environ is not None else os.environ
            try:
                routes = {m.name: Route.from_alias(m, environ) for m in self.plan.models}
            except RouteError as exc:
                raise LLMAborted(str(exc)) from exc
            transport = self.options.transport or LiteLLMTransport()
            self._gc = CallsGC()
            self._transport = transport
            self._scheduler = Scheduler(
                routes, transport, self._cache, stats=self.stats, max_cost=self.options.max_cost
            )
        return self._scheduler

    async def _transport_close(self) -> None:
        close = getattr(getattr(self, "_transport", None), "aclose", None)
        if close is not None:
            await close()

    # ----------------------------------------------------------------------- one range of rows

    def _range(self, col: LLMColumn, chunk: _ChunkState, lo: int, hi: int) -> list[CellRequest]:
        """Render, key and look up rows ``lo..hi-1`` (chunk-relative) of ``col``; fill the
        hits, nulls and failed inputs; return the requests still to make (none in a dry run)."""
        if lo >= hi:
            return []
        cells, tally = chunk.cells[col.name], self.tallies[col.name]
        tally.cells += hi - lo
        sub = Chunk(
            self.plan.seed, chunk.start + lo, chunk.start + hi, self._inputs(col, chunk, lo, hi), self._vars
        )
        skip = self._skipped(col, chunk, lo, hi, sub)
        messages = self._render(col, sub, skip)
        keys = self._requests[col.name].keys(messages)
        wanted = [k[0] for k in keys if k is not None]
        found, replayed = self.layers.lookup(wanted) if wanted else ({}, set())
        todo: list[CellRequest] = []
        for offset, (item, keyed) in enumerate(zip(messages, keys, strict=True)):
            r = lo + offset
            if keyed is None:
                continue  # status already set by _skipped
            key, occurrence = keyed
            response = found.get(key)
            value = self._cached_value(col, response) if response is not None else _MISS
            if value is not _MISS:
                assert response is not None
                cells.values[r], cells.status[r] = value, DONE
                if key in replayed:
                    tally.replayed += 1
                else:
                    tally.cached += 1
                self.stats.cache_hits += 1  # the progress display's "cached": not called for
                self._use(col.model, key, response.model)
            elif self.options.dry_run:
                cells.status[r] = UNKNOWN
                _note_dry(tally, item)
            elif self.options.offline:
                cells.status[r] = UNKNOWN
                self._missing.append((col.name, chunk.start + r))
            else:
                assert item is not None
                todo.append(self._request(col, chunk.start + r, key, occurrence, item))
        cells.advance()
        return todo

    def _inputs(self, col: LLMColumn, chunk: _ChunkState, lo: int, hi: int) -> pl.DataFrame:
        """Rows lo..hi-1 of what ``col`` reads: the chunk's columns, its LLM inputs, and the
        columns computed from those that it reads (evaluated for these rows only)."""
        frame = chunk.frame.slice(lo, hi - lo)
        series = [self._series(dep, chunk.cells[dep], lo, hi) for dep in sorted(self._deps[col.name])]
        frame = pl.DataFrame([*frame.get_columns(), *series])
        for via in self._via[col.name]:
            sub = Chunk(self.plan.seed, chunk.start + lo, chunk.start + hi, frame, self._vars)
            frame = pl.DataFrame([*frame.get_columns(), self._sample(via, sub)])
        return frame

    def _skipped(self, col: LLMColumn, chunk: _ChunkState, lo: int, hi: int, sub: Chunk) -> list[bool]:
        """Rows that make no request: nulled by ``nulls``, or an LLM input failed/unknown."""
        cells, tally = chunk.cells[col.name], self.tallies[col.name]
        mask = null_mask(col.name, col.nulls, sub).tolist() if col.nulls > 0 else [False] * (hi - lo)
        skip = [False] * (hi - lo)
        for offset in range(hi - lo):
            r = lo + offset
            if mask[offset]:
                cells.status[r], skip[offset] = NULL, True
                tally.nulls += 1
                continue
            statuses = [chunk.cells[dep].status[r] for dep in self._deps[col.name]]
            if NULL in statuses and not (FAILED in statuses or UNKNOWN in statuses):
                cells.status[r], skip[offset] = NULL, True  # an LLM input is null: so is this cell
                continue
            blocked = [dep for dep in self._deps[col.name] if chunk.cells[dep].status[r] in (FAILED, UNKNOWN)]
            if not blocked:
                continue
            skip[offset] = True
            if any(chunk.cells[dep].status[r] == UNKNOWN for dep in blocked):
                cells.status[r] = UNKNOWN  # dry or offline run: needs a call once its inputs exist
                tally.would_call += 1
                if self.options.offline and not self.options.dry_run:
                    self._missing.append((col.name, chunk.start + r))
            else:
                cells.status[r] = FAILED
                self._failed(
                    col,
                    CellError(
                        chunk.start + r,
                        col.name,
                        "upstream",
                        f"input column `{blocked[0]}` failed on this row",
                    ),
                )
        return skip

    def _render(self, col: LLMColumn, sub: Chunk, skip: list[bool]) -> list[Messages | None]:
        from runtime.samplers.base import SampleError

        try:
            rendered = render_messages(col, sub)
        except SampleError as exc:
            raise ExecutionError(str(exc), column=col.name, row=exc.row) from exc
        return [None if s else m for m, s in zip(rendered, skip, strict=True)]

    def _request(
        self, col: LLMColumn, row: int, key: str, occurrence: int, messages: Messages
    ) -> CellRequest:
        from runtime.llm.scheduler import CellRequest

        requests = self._requests[col.name]
        return CellRequest(
            column=col.name, row=row, key=key, alias=col.model, messages=messages,
            params=requests.sent_params(occurrence), output_schema=self._schemas[col.name],
        )  # fmt: skip

    def _cached_value(self, col: LLMColumn, response: CachedResponse) -> Any:
        schema = self._schemas[col.name]
        if schema is None:
            return response.text
        from runtime.llm import structured

        try:
            value = json.loads(response.text)
        except ValueError:
            try:
                value = structured.parse_answer(response.text, schema)
            except structured.InvalidAnswer:
                return _MISS  # cannot happen for entries this runtime stored; ask again
        return structured.conform(value, schema)

    # ----------------------------------------------------------------------- a shard's counting pass

    def _count(self, frame: pl.DataFrame, start: int, stop: int) -> pl.DataFrame:
        """Feed rows ``start..stop-1`` (before the shard) of each LLM column to its occurrence
        counter as a whole run would (no call, no tally); ``frame`` back with the
        model-dependent columns as nulls. Rows must come in order from row 0."""
        if start != self._counted or stop > self.first_row:
            raise ExecutionError(
                f"internal error: shard {self.shard} counted rows {start:,}..{stop - 1:,}; "
                f"expected rows from {self._counted:,} up to {self.first_row - 1:,}"
            )
        n = stop - start
        chunk = _ChunkState(
            frame, start, stop, {c.name: _Cells([None] * n, bytearray(n)) for c in self.columns}
        )
        for col in self.columns:  # evaluation order: a column after the LLM columns it reads
            self._count_column(col, chunk)
        self._counted = stop
        nulls = [
            pl.Series(name, [None] * n, dtype=pl.Null) for name in sorted(self._later - set(frame.columns))
        ]
        return pl.DataFrame([*frame.get_columns(), *nulls])

    def _count_column(self, col: LLMColumn, chunk: _ChunkState) -> None:
        """Count ``col``'s requests in the chunk; when another LLM column reads it, also take
        its answers from the packs or the cache (a cell found in neither is UNKNOWN)."""
        inputs = self._inputs(col, chunk, 0, chunk.size)
        sub = Chunk(self.plan.seed, chunk.start, chunk.stop, inputs, self._vars)
        keys = self._requests[col.name].keys(self._render(col, sub, self._count_skipped(col, chunk, sub)))
        if col.name not in self._upstream:
            return  # nothing reads its values: counting its requests is all it needs
        cells = chunk.cells[col.name]
        found, _ = self.layers.lookup(k[0] for k in keys if k is not None)
        for r, keyed in enumerate(keys):
            if keyed is None:
                continue  # status set by _count_skipped
            response = found.get(keyed[0])
            value = self._cached_value(col, response) if response is not None else _MISS
            if value is _MISS:
                cells.status[r] = UNKNOWN
            else:
                cells.values[r], cells.status[r] = value, DONE
                self._used.add(keyed[0])  # a pack replaying this shard needs it too

    def _count_skipped(self, col: LLMColumn, chunk: _ChunkState, sub: Chunk) -> list[bool]:
        """The rows a whole run would not ask ``col`` for (:meth:`_skipped`): nulled by
        ``nulls``, or an LLM input is null (then the cell is null or, when another input
        failed, failed: no request either way). An input missing from every layer raises
        :class:`UpstreamMissing`; a dry run marks the cell UNKNOWN, as a whole dry run does."""
        n = chunk.size
        mask = null_mask(col.name, col.nulls, sub) if col.nulls > 0 else np.zeros(n, dtype=bool)
        deps = sorted(self._deps[col.name])
        inputs = [np.frombuffer(chunk.cells[dep].status, dtype=np.uint8) for dep in deps]
        null_input = np.zeros(n, dtype=bool)
        unknown_input = np.zeros(n, dtype=bool)
        for status in inputs:
            null_input |= status == NULL
            unknown_input |= status == UNKNOWN
        nulled = mask | null_input
        unknown = unknown_input & ~nulled
        if unknown.any() and not self.options.dry_run:
            r = int(np.flatnonzero(unknown)[0])
            upstream = next(dep for dep, status in zip(deps, inputs, strict=True) if status[r] == UNKNOWN)
            raise UpstreamMissing(
                shard=str(self.shard), column=col.name, upstream=upstream, row=chunk.start + r,
                first_row=self.first_row,
            )  # fmt: skip
        status = np.where(nulled, NULL, np.where(unknown, UNKNOWN, PENDING)).astype(np.uint8)
        chunk.cells[col.name].status[:] = status.tobytes()
        skip: list[bool] = (nulled | unknown).tolist()
        return skip

    # ----------------------------------------------------------------------- the async part

    async def _session(
        self, chunk: _ChunkState, misses: list[CellRequest], deferred: list[LLMColumn]
    ) -> None:
        scheduler = self._scheduler_for_run()
        changed = asyncio.Condition()
        queues: dict[str, asyncio.Queue[CellRequest | None]] = {}
        for col in self.columns:
            queues.setdefault(col.model, asyncio.Queue())
        for cell in misses:
            queues[cell.alias].put_nowait(cell)
        routes = scheduler.routes

        async def produce() -> None:
            async with asyncio.TaskGroup() as producers:
                for col in deferred:
                    producers.create_task(self._follow(col, chunk, changed, queues[col.model]))
            for alias, queue in queues.items():
                for _ in range(routes[alias].concurrency):
                    queue.put_nowait(None)

        async with asyncio.TaskGroup() as group:
            group.create_task(produce())
            for alias, queue in queues.items():
                for _ in range(routes[alias].concurrency):
                    group.create_task(self._work(scheduler, queue, chunk, changed))
        if self._abort is not None:  # raised only now: calls in flight have landed in the cache
            raise self._abort

    async def _follow(
        self,
        col: LLMColumn,
        chunk: _ChunkState,
        changed: asyncio.Condition,
        queue: asyncio.Queue[CellRequest | None],
    ) -> None:
        """Feed ``col``'s rows to its queue as the rows before them exist upstream."""
        deps = [chunk.cells[dep] for dep in sorted(self._deps[col.name])]
        lo = 0
        while lo < chunk.size:
            async with changed:
                await changed.wait_for(lambda: min(d.prefix for d in deps) > lo)  # noqa: B023
            hi = min(d.prefix for d in deps)
            for cell in self._range(col, chunk, lo, hi):
                queue.put_nowait(cell)
            lo = hi
            async with changed:
                changed.notify_all()

    async def _work(
        self,
        scheduler: Scheduler,
        queue: asyncio.Queue[CellRequest | None],
        chunk: _ChunkState,
        changed: asyncio.Condition,
    ) -> None:
        from runtime.llm.scheduler import BudgetExceeded, CellFailure

        while (cell := await queue.get()) is not None:
            try:
                result: CellAnswer | CellFailure = await scheduler.run(cell)
            except BudgetExceeded as exc:
                self._stop(LLMAborted(f"{exc}; every answer so far is in the cache"))
                result = CellFailure("stopped", str(exc), 0, None)
            self._settle(cell, result, chunk)
            if chunk.cells[cell.column].advance():
                async with changed:
                    changed.notify_all()

    def _settle(self, cell: CellRequest, result: CellAnswer | CellFailure, chunk: _ChunkState) -> None:
        from runtime.llm.scheduler import CellFailure

        cells, r = chunk.cells[cell.column], cell.row - chunk.start
        col = self.plan.column(cell.column)
        assert isinstance(col, LLMColumn)
        if isinstance(result, CellFailure):
            cells.status[r] = FAILED
            if result.kind == "stopped":
                return  # the run is stopping; the cell was never asked
            self._failed(
                col,
                CellError(cell.row, cell.column, result.kind, result.message, result.model, result.attempts),
            )
            return
        schema = self._schemas[cell.column]
        if schema is not None:
            from runtime.llm.structured import conform

            cells.values[r] = conform(result.value, schema)
        else:
            cells.values[r] = result.value
        cells.status[r] = DONE
        self.tallies[cell.column].called += 1
        self._in_a_row = 0
        self._use(cell.alias, cell.key, result.response.model)

    def _use(self, alias: str, key: str, model: str) -> None:
        """Note that the run used the answer under ``key``, given by ``model`` for ``alias``."""
        self._used.add(key)
        by_model = self._answered.setdefault(alias, {})
        by_model[model] = by_model.get(model, 0) + 1

    def _failed(self, col: LLMColumn, error: CellError) -> None:
        self.errors.append(error)
        self.tallies[col.name].failed += 1
        if error.kind == "upstream":
            return
        self._in_a_row += 1
        if self._in_a_row >= FAILURES_IN_A_ROW and len(self.errors) > self.allowed_failures:
            self._stop(
                LLMAborted(
                    f"stopped after {self._in_a_row} failed calls in a row (last: column `{col.name}`, "
                    f"row {error.row}: {error.message}); every answer so far is in the cache"
                )
            )

    def _stop(self, reason: LLMAborted) -> None:
        """Stop the run: no new call starts, calls in flight finish (and are cached), then
        ``reason`` is raised."""
        if self._abort is None:
            self._abort = reason
        if self._scheduler is not None:
            self._scheduler.stop()

    def _loop_run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = LoopThread()
        return self._loop.run(coro, on_interrupt=self._interrupted)

    def _interrupted(self) -> None:
        if self._scheduler is not None:
            self._scheduler.stop()

    # ----------------------------------------------------------------------- finishing a chunk

    def _complete(self, chunk: _ChunkState) -> pl.DataFrame:
        frame = chunk.frame
        for col in self.plan.columns:
            if col.name in chunk.frame.columns:
                continue
            if isinstance(col, LLMColumn):
                series = self._series(col.name, chunk.cells[col.name], 0, chunk.size)
            else:
                series = self._sample(col, Chunk(self.plan.seed, chunk.start, chunk.stop, frame, self._vars))
            frame = pl.DataFrame([*frame.get_columns(), series])
        return frame

    def _series(self, name: str, cells: _Cells, lo: int, hi: int) -> pl.Series:
        schema = self._schemas[name]
        values = [
            v if s == DONE else None for v, s in zip(cells.values[lo:hi], cells.status[lo:hi], strict=True)
        ]
        if schema is None:
            return pl.Series(name, values, dtype=pl.String)
        from runtime.llm.structured import struct_dtype

        return pl.Series(name, values, dtype=struct_dtype(schema))


_MISS = object()


def _open_cache(options: LLMOptions) -> Cache | None:
    if options.cache is None:
        return None
    if options.dry_run or options.offline:  # read only; a missing cache is not created
        return Cache.open(options.cache, readonly=True) if options.cache.exists() else None
    return Cache.open(options.cache)


@dataclass
class _ChunkState:
    frame: pl.DataFrame
    start: int
    stop: int
    cells: dict[str, _Cells]

    @property
    def size(self) -> int:
        return self.stop - self.start


def _note_dry(tally: ColumnTally, messages: Messages | None) -> None:
    tally.would_call += 1
    if messages is None:
        return
    tally.rendered += 1
    tally.prompt_chars += sum(len(str(m.get("content", ""))) for m in messages)
    if len(tally.samples) < SAMPLE_PROMPTS:
        tally.samples.append(messages)
