"""Shards: one run split into N independent parts, and the merge that joins them.

Shard K of N generates the rows ``[(K-1) R / N, K R / N)`` of the plan (R = its rows)
and applies the *row-local* steps, those that decide each row on its own (filter, drop,
select, rename, unnest, validate, sample with a fraction). The steps from the first
*global* one on (dedupe, sort, shuffle, sample n, limit, sessionize) need rows of every
shard, so :func:`merge_shards` applies them while joining the shard files in order.
Every value is keyed by its row index, never by the shard, so the merged rows are
exactly those of a single-process run (their content hash is equal).

LLM cells: a cell's cache key counts identical requests of its column in every earlier
row, so a shard first counts the rows before it without calling (see
:mod:`runtime.llm.run`) and its keys are the whole run's: shards can share one cache, or
keep their own and combine them (``synthc cache merge``); the union of their entries is a
whole run's. A column that reads another LLM column needs that column's answers for the
earlier rows: run the shards in order with a shared (or merged) cache. Shards whose LLM
columns read no other LLM column run in any order, each with its own cache. An LLM
source's shard collects the records of rows ``[0, stop)`` (a prefix of the whole run's
calls, with the same keys) and keeps its own.

A shard file is Parquet and carries what the merge needs in its key-value metadata:
the whole plan, the shard's place (K/N) and its row range. It keeps the hidden key
columns (``__shuffle_key_0``, ...) that the global steps consume.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from runtime.errors import ExecutionError
from runtime.plan import (
    Drop,
    Filter,
    Plan,
    Rename,
    Sample,
    Select,
    Step,
    Unnest,
    Validate,
    plan_from_json,
    plan_hash,
    plan_to_json,
)

if TYPE_CHECKING:
    from runtime.llm.outcome import LLMOptions
    from runtime.llm.run import LLMRun

SHARD_FORMAT = 1
_META = "synthc.shard"


class ShardError(ExecutionError):
    """Shards that cannot be made or merged (the message says why)."""


@dataclass(frozen=True)
class Shard:
    """Shard ``k`` of ``n`` (1-based)."""

    k: int
    n: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/4"`` -> Shard(2, 4); ValueError with a plain message otherwise."""
        parts = text.split("/")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"`{text}` is not a shard: write K/N, e.g. 2/4 (the second of four)")
        k, n = int(parts[0]), int(parts[1])
        if n < 1 or not 1 <= k <= n:
            raise ValueError(
                f"`{text}` is not a shard: K/N needs 1 <= K <= N (e.g. 1/{max(n, 2)} .. {max(n, 2)}/{max(n, 2)})"
            )
        return cls(k, n)

    def rows(self, total: int) -> tuple[int, int]:
        """This shard's ``[start, stop)`` of ``total`` rows (sizes differ by at most one)."""
        return (self.k - 1) * total // self.n, self.k * total // self.n

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"


def split_steps(steps: Sequence[Step]) -> tuple[tuple[Step, ...], tuple[Step, ...]]:
    """(the row-local steps a shard applies, the rest, which the merge applies)."""
    for i, step in enumerate(steps):
        local = isinstance(step, Filter | Drop | Select | Rename | Unnest | Validate) or (
            isinstance(step, Sample) and step.fraction is not None
        )
        if not local:
            return tuple(steps[:i]), tuple(steps[i:])
    return tuple(steps), ()


def check_shardable(plan: Plan) -> None:
    """ShardError when the plan cannot be split (the message says what to do instead)."""
    if plan.target is not None:
        raise ShardError(
            "a spec with target_rows cannot be sharded: how many rows to generate is only known at the end"
        )


def shard_frames(
    plan: Plan,
    shard: Shard,
    *,
    chunk_rows: int,
    llm_options: LLMOptions | None = None,
    llm: LLMRun | None = None,
) -> Iterator[pl.DataFrame]:
    """The shard's rows after the row-local steps, hidden keys of the global steps kept.

    A plan with LLM columns or an LLM source runs them through ``llm`` (the caller's run,
    opened with :func:`open_shard_llm` for this shard, so the caller can read its summary
    afterwards) or else through a run opened here with ``llm_options`` (default options when
    None) and closed when the stream ends, raising TooManyFailures after the last row when
    more cells failed than its ``max_failures`` allows. Either way the rows before the shard are
    counted first (no call; see :mod:`runtime.llm.run`); that can raise
    :class:`runtime.llm.outcome.UpstreamMissing` when an LLM column reads another whose
    earlier answers are in no cache or pack. Nothing happens until the stream is pulled."""
    from runtime.steps import apply_steps

    check_shardable(plan)
    local, _ = split_steps(plan.steps)
    chunks = _shard_chunks(plan, shard, chunk_rows, llm_options, llm)
    return apply_steps(chunks, local, chunk_rows=chunk_rows)


def open_shard_llm(plan: Plan, shard: Shard, options: LLMOptions) -> LLMRun:
    """The LLM side of ``plan``'s shard ``shard`` (a context manager, like any LLMRun)."""
    from runtime.execute import sample_column
    from runtime.llm.run import LLMRun

    return LLMRun(plan, options, sample_column, shard=shard)


def _shard_chunks(
    plan: Plan, shard: Shard, chunk_rows: int, options: LLMOptions | None, llm: LLMRun | None
) -> Iterator[pl.DataFrame]:
    from runtime.execute import generate

    start, stop = shard.rows(plan.rows)
    if not plan.uses_models:
        yield from generate(plan, chunk_rows=chunk_rows, rows=(start, stop))
        return
    if llm is None:
        from runtime.llm.outcome import LLMOptions, TooManyFailures

        with open_shard_llm(plan, shard, options or LLMOptions()) as own:
            yield from _shard_chunks(plan, shard, chunk_rows, None, own)
            summary = own.summary(None)
        if not summary.ok:  # after the last row, before the writer renames its file into place
            raise TooManyFailures(summary)
        return
    if llm.shard != shard:
        raise ShardError(f"internal error: shard {shard} was given an LLM run opened for {llm.shard}")
    if start > 0:  # the counting pass: the rows before the shard, model-dependent columns left null
        for _ in generate(plan, chunk_rows=chunk_rows, llm=llm, rows=(0, start)):
            pass
    yield from generate(plan, chunk_rows=chunk_rows, llm=llm, rows=(start, stop))


def shard_metadata(plan: Plan, shard: Shard) -> dict[str, str]:
    start, stop = shard.rows(plan.rows)
    data = {"format": SHARD_FORMAT, "k": shard.k, "n": shard.n, "start": start, "stop": stop,
            "plan_hash": plan_hash(plan)}  # fmt: skip
    return {_META: json.dumps(data, sort_keys=True), "synthc.plan": plan_to_json(plan)}


@dataclass(frozen=True)
class ShardFile:
    path: Path
    shard: Shard
    plan: Plan
    plan_hash: str


def read_shard(path: Path) -> ShardFile:
    """A shard file's place and plan; ShardError for anything else."""
    try:
        meta = pl.read_parquet_metadata(path)
    except FileNotFoundError:
        raise ShardError(f"shard file {path} does not exist") from None
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ShardError(
            f"{path} is not a Parquet file: {str(exc).splitlines()[0] if str(exc) else exc}"
        ) from None
    if _META not in meta or "synthc.plan" not in meta:
        raise ShardError(f"{path} is not a synthc shard (write shards with `synthc run --shard K/N`)")
    try:
        info = json.loads(meta[_META])
        plan = plan_from_json(meta["synthc.plan"])
    except (ValueError, TypeError) as exc:
        raise ShardError(f"shard file {path} has damaged metadata: {exc}") from None
    if info.get("format", 0) > SHARD_FORMAT:
        raise ShardError(f"shard file {path} was written by a newer synthc (shard format {info['format']})")
    return ShardFile(path, Shard(int(info["k"]), int(info["n"])), plan, str(info["plan_hash"]))


def check_complete(shards: Sequence[ShardFile]) -> list[ShardFile]:
    """The shards in K order, if they are every shard of one plan exactly once."""
    if not shards:
        raise ShardError("no shard files to merge")
    first = shards[0]
    for other in shards[1:]:
        if other.plan_hash != first.plan_hash:
            raise ShardError(
                f"{other.path} and {first.path} are shards of different plans "
                f"({other.plan_hash[:12]}… vs {first.plan_hash[:12]}…): merge shards of one spec, seed and row count"
            )
        if other.shard.n != first.shard.n:
            raise ShardError(
                f"{other.path} is shard {other.shard} but {first.path} is shard {first.shard}: different N"
            )
    seen: dict[int, ShardFile] = {}
    for item in shards:
        if item.shard.k in seen:
            raise ShardError(f"shard {item.shard} is given twice: {seen[item.shard.k].path} and {item.path}")
        seen[item.shard.k] = item
    missing = [k for k in range(1, first.shard.n + 1) if k not in seen]
    if missing:
        names = ", ".join(f"{k}/{first.shard.n}" for k in missing)
        raise ShardError(f"shards {names} are missing: a merge needs every shard")
    return [seen[k] for k in range(1, first.shard.n + 1)]


def merge_frames(shards: Sequence[ShardFile], *, chunk_rows: int) -> Iterator[pl.DataFrame]:
    """Every shard's rows in order, through the global steps, hidden keys dropped."""
    from runtime.steps import apply_steps, hidden_key_names

    ordered = check_complete(shards)
    plan = ordered[0].plan
    local, global_steps = split_steps(plan.steps)
    frames = apply_steps(_read_all(ordered, chunk_rows), global_steps, chunk_rows=chunk_rows, before=local)
    hidden = hidden_key_names(plan.steps)
    for df in frames:
        yield df.drop(hidden, strict=False)


def _read_all(shards: Sequence[ShardFile], chunk_rows: int) -> Iterator[pl.DataFrame]:
    """The shards' rows in order, in batches (memory: a batch, not a shard); one empty
    frame with the schema when every shard is empty."""
    any_rows = False
    for item in shards:
        for batch in pl.scan_parquet(item.path).collect_batches(chunk_size=chunk_rows):
            if batch.height:
                any_rows = True
                yield batch
    if not any_rows:
        yield pl.scan_parquet(shards[0].path).head(0).collect()
