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
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import polars as pl

from runtime.errors import ExecutionError
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

    def __init__(self, plan: Plan, layers: ResponseLayers, variables: Mapping[str, Any]) -> None:
        source = plan.llm_source
        assert source is not None
        self.plan, self.source, self.layers = plan, source, layers
        alias = plan.model(self.source.model)
        self.params: dict[str, Any] = json.loads(alias.params)
        self.schema = batch_schema(self.source)
        self.record_schema: dict[str, Any] = json.loads(self.source.schema)
        self.messages = source_messages(self.source, variables)
        self._requests = ColumnRequests(alias.model, self.params, self.schema, plan.seed)
        self.calls_needed = math.ceil(plan.rows / self.source.per_call) if plan.rows else 0
        self.max_calls = self.calls_needed * MAX_CALLS_FACTOR + EXTRA_CALLS
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
        """The rows from the answers of calls 0, 1, ... in order (stopping at the first
        call without an answer), or None when they hold fewer distinct records than rows."""
        from runtime.llm.structured import conform

        seen: set[str] = set()
        rows: list[Any] = []
        k = 0
        while k in answers and len(rows) < self.plan.rows:
            for record in answers[k]:
                text = json.dumps(record, sort_keys=True, ensure_ascii=False)
                if text not in seen:
                    seen.add(text)
                    rows.append(conform(record, self.record_schema))
                    if len(rows) == self.plan.rows:
                        break
            k += 1
        self.used_calls = k
        if len(rows) < self.plan.rows:
            return None
        return self._columns(rows)

    def distinct(self, answers: Mapping[int, list[Any]]) -> int:
        return len({json.dumps(r, sort_keys=True) for records in answers.values() for r in records})

    def _columns(self, rows: list[Any]) -> pl.DataFrame:
        from runtime.llm.structured import struct_dtype

        dtype = struct_dtype(self.record_schema)
        assert isinstance(dtype, pl.Struct)
        return pl.Series("records", rows, dtype=dtype).struct.unnest()


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
