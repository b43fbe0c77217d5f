"""LLM-written records: the rows of a plan whose ``source`` is a model.

Call ``k`` (k = 0, 1, 2, ...) asks the model for ``per_call`` records as
``{"records": [...]}`` with every record valid against the source's schema. All calls
send the same messages, so call ``k`` is the k-th occurrence of one request: its cache
key carries ``k`` as the occurrence index, like any LLM cell.

Guarantees: records are taken in call order, then answer order; a record equal (as
canonical JSON) to an earlier one is dropped; the first ``rows`` distinct records are the
rows. So the rows depend only on the answers of calls 0..k, which the cache holds: a
rerun gives the same rows without calling. When the calls made run out of distinct
records, more calls are made, up to ``MAX_CALLS_FACTOR`` times the calls first needed;
past that the run stops with a message saying how many distinct records the model gave.

Shards: a shard that makes rows ``[start, stop)`` needs the first ``stop`` distinct
records, so it collects with ``rows=stop`` (the cap on calls stays the whole run's). It
makes a prefix of the whole run's calls (no more: a call is only added while the prefix
holds fewer distinct records than wanted, and each call adds at most ``per_call``), with
the same keys, so the rows it keeps are the whole run's and its cache entries are a subset
of the whole run's; the last shard makes exactly the whole run's calls.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import polars as pl

from runtime.errors import ExecutionError
from runtime.llm.outcome import CellError, ColumnTally, LLMAborted, OfflineMiss
from runtime.llm.prompts import ColumnRequests, Messages
from runtime.plan import LLMSource, Plan, TemplateColumn

if TYPE_CHECKING:
    from runtime.llm.pack import ResponseLayers
    from runtime.llm.scheduler import CellAnswer, CellFailure, Scheduler

MAX_CALLS_FACTOR = 3
EXTRA_CALLS = 5
SOURCE = "source"  # the "column" failed source calls are recorded under


class SourceExhausted(ExecutionError):
    """The model gave fewer distinct records than the plan's rows within the call cap."""


def batch_schema(source: LLMSource) -> dict[str, Any]:
    """What one call answers: ``{"records": [record, ...]}`` (1..per_call records)."""
    record = json.loads(source.schema)
    return {
        "type": "object",
        "properties": {
            "records": {"type": "array", "items": record, "minItems": 1, "maxItems": source.per_call}
        },
        "required": ["records"],
    }


def source_messages(source: LLMSource, variables: Mapping[str, Any]) -> Messages:
    """The messages every call sends: the prompt (rendered with vars) and a line asking
    for ``per_call`` records."""
    from runtime.samplers.base import Chunk
    from runtime.samplers.derived import sample_template

    def render(text: str) -> str:
        chunk = Chunk(0, 0, 1, pl.DataFrame(), variables)
        value: str = sample_template(TemplateColumn(SOURCE, text, ()), chunk)[0]
        return value

    ask = f"{render(source.prompt).rstrip()}\n\nWrite {source.per_call} different records."
    if source.system is None:
        return ({"role": "user", "content": ask},)
    return ({"role": "system", "content": render(source.system)}, {"role": "user", "content": ask})


class RecordSource:
    """Collects the records of ``plan.source`` through the packs and cache (``layers``)
    and the scheduler. ``models`` maps each answered call to the model that answered it;
    after :meth:`frame`, calls ``0..used_calls-1`` are those the rows were taken from."""

    def __init__(
        self, plan: Plan, layers: ResponseLayers, variables: Mapping[str, Any], *, rows: int | None = None
    ) -> None:
        source = plan.llm_source
        assert source is not None
        self.plan, self.source, self.layers = plan, source, layers
        self.rows = plan.rows if rows is None else rows  # the records wanted (a shard's stop)
        alias = plan.model(self.source.model)
        self.params: dict[str, Any] = json.loads(alias.params)
        self.schema = batch_schema(self.source)
        self.record_schema: dict[str, Any] = json.loads(self.source.schema)
        self.messages = source_messages(self.source, variables)
        self._requests = ColumnRequests(alias.model, self.params, self.schema, plan.seed)
        self.calls_needed = math.ceil(self.rows / self.source.per_call)
        whole = math.ceil(plan.rows / self.source.per_call)
        self.max_calls = whole * MAX_CALLS_FACTOR + EXTRA_CALLS  # the whole run's cap, for any shard
        self.failures: list[tuple[int, CellFailure]] = []
        self.cached = 0  # calls answered from the cache
        self.replayed = 0  # calls answered from a response pack
        self.models: dict[int, str] = {}
        self.used_calls = 0

    def key(self, k: int) -> str:
        return self._requests.key(self.messages, k)

    def cached_answers(self, calls: range) -> dict[int, list[Any]]:
        """The record lists of the calls in ``calls`` that the packs or the cache hold."""
        keys = {self.key(k): k for k in calls}
        found, replayed = self.layers.lookup(keys)
        answers = {}
        for key, response in found.items():
            records = _records(response.text, self.schema)
            if records is not None:
                answers[keys[key]] = records
                self.models[keys[key]] = response.model
                if key in replayed:
                    self.replayed += 1
                else:
                    self.cached += 1
        return answers

    async def ask(self, scheduler: Scheduler, calls: list[int]) -> dict[int, list[Any]]:
        """Answers of ``calls`` from the model (all at once; the scheduler paces them)."""
        from runtime.llm.scheduler import BudgetExceeded, CellAnswer

        results = await asyncio.gather(
            *(scheduler.run(self._request(k)) for k in calls), return_exceptions=True
        )
        for result in results:  # raised once every call in flight has landed
            if isinstance(result, BudgetExceeded):
                raise result
        answers: dict[int, list[Any]] = {}
        for k, result in zip(calls, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            records = _answer_records(result)
            if records is None:
                assert not isinstance(result, CellAnswer)
                self.failures.append((k, result))
            else:
                assert isinstance(result, CellAnswer)
                answers[k] = records
                self.models[k] = result.response.model
        return answers

    def _request(self, k: int) -> Any:
        from runtime.llm.scheduler import CellRequest

        params = self._requests.sent_params(k)
        return CellRequest(
            column=SOURCE, row=k, key=self.key(k), alias=self.source.model, messages=self.messages,
            params=params, output_schema=self.schema,
        )  # fmt: skip

    def frame(self, answers: Mapping[int, list[Any]]) -> pl.DataFrame | None:
        """The first ``rows`` records from the answers of calls 0, 1, ... in order (stopping
        at the first call without an answer), or None when they hold fewer distinct records."""
        from runtime.llm.structured import conform

        seen: set[str] = set()
        rows: list[Any] = []
        k = 0
        while k in answers and len(rows) < self.rows:
            for record in answers[k]:
                text = json.dumps(record, sort_keys=True, ensure_ascii=False)
                if text not in seen:
                    seen.add(text)
                    rows.append(conform(record, self.record_schema))
                    if len(rows) == self.rows:
                        break
            k += 1
        self.used_calls = k
        if len(rows) < self.rows:
            return None
        return self._columns(rows)

    def distinct(self, answers: Mapping[int, list[Any]]) -> int:
        return len({json.dumps(r, sort_keys=True) for records in answers.values() for r in records})

    def _columns(self, rows: list[Any]) -> pl.DataFrame:
        from runtime.llm.structured import struct_dtype

        dtype = struct_dtype(self.record_schema)
        assert isinstance(dtype, pl.Struct)
        return pl.Series("records", rows, dtype=dtype).struct.unnest()


Ask = Callable[[list[int]], dict[int, list[Any]]]


def collect(
    source: RecordSource,
    tally: ColumnTally,
    *,
    ask: Ask | None,
    dry_run: bool,
    errors: list[CellError],
    use: Callable[[str, str, str], None],
) -> pl.DataFrame:
    """The first ``source.rows`` records: from the packs or the cache, else from ``ask``
    (the model; None: offline, so a missing call raises OfflineMiss). A dry run gives nulls
    for the source's rows when calls are missing. Failed calls go to ``errors``; ``use``
    is told (alias, key, answering model) of each call the rows come from; ``tally`` counts."""
    limit = source.calls_needed
    answers = source.cached_answers(range(limit))
    while (frame := source.frame(answers)) is None:
        missing = [k for k in range(limit) if k not in answers]
        if dry_run:
            tally.would_call, tally.rendered = len(missing), len(missing)
            tally.prompt_chars = len(missing) * sum(len(m["content"]) for m in source.messages)
            return _null_records(source)
        if missing and ask is None:
            raise OfflineMiss([(SOURCE, k) for k in missing], where="the source's calls")
        if missing:
            assert ask is not None
            _ask_missing(source, missing, ask, answers, errors)
            continue
        if limit >= source.max_calls:
            raise SourceExhausted(
                f"the model gave {source.distinct(answers):,} distinct records in {limit:,} calls, fewer than "
                f"the {source.plan.rows:,} rows asked for: lower `rows`, raise `per_call`, or vary the prompt"
            )
        short = source.rows - source.distinct(answers)
        new_limit = min(source.max_calls, limit + max(1, math.ceil(short / source.source.per_call)))
        answers.update(source.cached_answers(range(limit, new_limit)))
        limit = new_limit
    tally.cached, tally.replayed = source.cached, source.replayed
    tally.called = len([k for k in answers if answers[k]]) - source.cached - source.replayed
    for k in range(source.used_calls):
        if k in source.models:  # a failed call answered nothing
            use(source.source.model, source.key(k), source.models[k])
    return frame


def _ask_missing(
    source: RecordSource, missing: list[int], ask: Ask, answers: dict[int, list[Any]], errors: list[CellError]
) -> None:
    """Ask the model for ``missing`` calls into ``answers``; a failed call answers no record
    (later calls make up for it) and is recorded; LLMAborted when every one failed."""
    failures = len(source.failures)
    answers.update(ask(missing))
    for k, failure in source.failures[failures:]:
        answers[k] = []
        errors.append(CellError(k, SOURCE, failure.kind, failure.message, failure.model, failure.attempts))
    if len(source.failures) - failures == len(missing):
        raise LLMAborted(f"every call for the source's records failed; last: {errors[-1].message}")


def _null_records(source: RecordSource) -> pl.DataFrame:
    from runtime.llm.structured import struct_dtype

    dtype = struct_dtype(source.record_schema)
    return pl.Series("records", [None] * source.plan.rows, dtype=dtype).struct.unnest()


def _records(text: str, schema: Mapping[str, Any]) -> list[Any] | None:
    from runtime.llm.structured import InvalidAnswer, parse_answer

    try:
        value = json.loads(text)
        if not isinstance(value, dict) or not isinstance(value.get("records"), list):
            raise ValueError
    except ValueError:
        try:
            value = parse_answer(text, schema)
        except InvalidAnswer:
            return None
    records: list[Any] = value["records"]
    return records


def _answer_records(result: CellAnswer | CellFailure) -> list[Any] | None:
    from runtime.llm.scheduler import CellAnswer

    if not isinstance(result, CellAnswer):
        return None
    records: list[Any] = result.value["records"]
    return records
