"""What a run's LLM cells came to: options, failure policy, tallies, failed cells, the
errors side file, and the errors that stop a run."""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.errors import ExecutionError
from runtime.llm.prompts import Messages

if TYPE_CHECKING:
    from runtime.llm.scheduler import RunStats
    from runtime.llm.transport import Transport


def default_cache() -> Path:
    """``$SYNTHC_CACHE_DIR/cache.db`` when that variable is set, else ``.synthc/cache.db``
    in the working directory (next to the plan cache)."""
    return Path(os.environ.get("SYNTHC_CACHE_DIR") or ".synthc") / "cache.db"


class TooManyFailures(ExecutionError):
    """More cells failed than the run allows (raised after the last row by the API's
    ``generate``/``stream``; ``write`` reports it in its result instead)."""

    def __init__(self, summary: LLMSummary) -> None:
        first = summary.errors[0] if summary.errors else None
        detail = f"; first: column `{first.column}`, row {first.row}: {first.message}" if first else ""
        super().__init__(
            f"{len(summary.errors):,} LLM {'cell' if len(summary.errors) == 1 else 'cells'} failed"
            f" (allowed: {summary.allowed_failures:,}){detail}"
        )
        self.summary = summary


class OfflineMiss(ExecutionError):
    """An offline run needs answers that neither the response packs nor the cache hold.

    ``missing`` holds every such cell found, as (column, row) sorted by row then column
    (for the LLM source: ("source", call index)); cells whose LLM input is missing are
    included, since they cannot be asked for either. A run raises it once the chunk in
    which the first misses were found is complete (``where`` names the rows checked), so
    later chunks are not examined and no output is written."""

    def __init__(self, missing: Sequence[tuple[str, int]], *, where: str) -> None:
        self.missing = tuple(sorted(missing, key=lambda cell: (cell[1], cell[0])))
        self.where = where
        counts = Counter(column for column, _ in self.missing)
        per_column = ", ".join(f"{column}: {n:,}" for column, n in sorted(counts.items()))
        first = ", ".join(_cell_name(column, row) for column, row in self.missing[:OFFLINE_NAMED])
        more = ", ..." if len(self.missing) > OFFLINE_NAMED else ""
        count = len(self.missing)
        super().__init__(
            f"offline: {count:,} LLM {'cell is' if count == 1 else 'cells are'} missing: in neither the response"
            f" packs nor the cache ({where}; {per_column}); first: {first}{more}. Run with a cache that holds them"
            " (where the spec was run), or re-make the pack with `synthc pack` after a run of these rows",
            column=self.missing[0][0] if self.missing else None,
            row=self.missing[0][1] if self.missing else None,
        )

    @property
    def per_column(self) -> dict[str, int]:
        return dict(Counter(column for column, _ in self.missing))


OFFLINE_NAMED = 5  # missing cells named in OfflineMiss's message


def _cell_name(column: str, row: int) -> str:
    from runtime.llm.records import SOURCE

    return f"source call {row}" if column == SOURCE else f"`{column}` row {row}"


class UpstreamMissing(ExecutionError):
    """A shard cannot count the requests of the rows before it: ``column`` reads the LLM
    column ``upstream``, whose answer for an earlier ``row`` is in neither the response packs
    nor the cache, so the prompts of ``column`` in the rows before ``first_row`` (the
    shard's first) are unknown. ``shard`` names the shard (``"2/3"``)."""

    def __init__(self, *, shard: str, column: str, upstream: str, row: int, first_row: int) -> None:
        super().__init__(
            f"shard {shard} (rows from {first_row:,}): column `{column}` reads `{upstream}`, whose answer for"
            f" row {row:,} (an earlier shard's) is in neither the response packs nor the cache; a shard needs"
            f" the `{upstream}` answers of every row before it to number its identical prompts as a whole run"
            " does. Run the earlier shards first with a shared cache (or combine their caches with"
            " `synthc cache merge`), or run the spec unsharded",
            column=column,
            row=row,
        )
        self.shard, self.upstream, self.first_row = shard, upstream, first_row


class LLMAborted(ExecutionError):
    """The run stopped before its end (budget spent, provider down, a wait too long).
    Everything answered so far is in the cache; a rerun continues from there."""


@dataclass(frozen=True)
class FailurePolicy:
    """How many failed cells a run may have and still succeed: a count or a fraction."""

    count: int | None = 0
    fraction: float | None = None

    @classmethod
    def parse(cls, text: str | int) -> FailurePolicy:
        """``"5"`` (cells) or ``"2%"`` (of the run's LLM cells); ValueError otherwise."""
        raw = str(text).strip()
        try:
            if raw.endswith("%"):
                fraction = float(raw[:-1]) / 100
                if not 0 <= fraction <= 1:
                    raise ValueError
                return cls(count=None, fraction=fraction)
            count = int(raw)
            if count < 0:
                raise ValueError
            return cls(count=count)
        except ValueError:
            raise ValueError(
                f"expected a number of cells (e.g. 10) or a percentage (e.g. 2%), not {raw!r}"
            ) from None

    def allowed(self, cells: int) -> int:
        if self.fraction is not None:
            return int(self.fraction * cells)
        return self.count or 0

    def __str__(self) -> str:
        return f"{self.fraction * 100:g}%" if self.fraction is not None else str(self.count)


@dataclass(frozen=True)
class LLMOptions:
    """How a run treats its LLM cells. ``cache`` None: no cache at all (every cell is
    called); ``dry_run``: render and look up, never call (the cache is then only read,
    and a missing cache file is not created).

    ``replay``: response packs (see :mod:`runtime.llm.pack`), read-only, looked up before
    the cache, in order; their answers are never copied into the cache. ``replay_plan``:
    when set, each pack must have been made for exactly this plan hash (the spec's plan as
    compiled, before --rows/--seed/--model), else PackError; None: each pack must name the
    run plan's spec hash or plan hash (:func:`runtime.llm.pack.check_made_for`).
    ``offline``: no model is called (no scheduler, no LiteLLM import; the cache is only
    read): cells in neither a pack nor the cache raise :class:`OfflineMiss`."""

    cache: Path | None = field(default_factory=default_cache)
    max_cost: float | None = None
    max_failures: FailurePolicy = FailurePolicy()
    dry_run: bool = False
    transport: Transport | None = None
    environ: Mapping[str, str] | None = None
    replay: tuple[Path, ...] = ()
    offline: bool = False
    replay_plan: str | None = None


@dataclass(frozen=True)
class CellError:
    """One failed cell, as written to ``<out>.errors.jsonl`` (row = generated row index)."""

    row: int
    column: str
    kind: str
    message: str
    model: str | None = None
    attempts: int = 0

    def to_json(self) -> str:
        data = {
            "row": self.row, "column": self.column, "kind": self.kind, "message": self.message,
            "model": self.model, "attempts": self.attempts,
        }  # fmt: skip
        return json.dumps(data, ensure_ascii=False)


@dataclass
class ColumnTally:
    """Per LLM column: what happened to its cells."""

    cells: int = 0  # rows seen
    nulls: int = 0  # nulled by the column's `nulls`
    cached: int = 0  # answered from the cache
    replayed: int = 0  # answered from a response pack
    called: int = 0  # answered by a call in this run
    failed: int = 0
    would_call: int = 0  # dry run: not cached (including cells whose inputs are not known yet)
    rendered: int = 0  # dry run: of those, the cells whose prompt could be rendered
    prompt_chars: int = 0  # dry run: rendered characters of the cells that would be called
    samples: list[Messages] = field(default_factory=list)


@dataclass(frozen=True)
class LLMSummary:
    """What a run's LLM cells did: per column tallies, the failed cells (sorted by row),
    how many failures were allowed, the live counters, and the errors file (if written).

    ``answered_by`` maps each model alias to the models that actually answered the cells
    this run used (cached, replayed or called; a fallback when one answered) and how many
    cells each answered, sorted by alias then model. The properties below count this
    run only (``calls``, tokens and cost: the requests made now, retries included)."""

    tallies: Mapping[str, ColumnTally]
    errors: tuple[CellError, ...]
    allowed_failures: int
    stats: RunStats
    errors_path: Path | None = None
    source_tally: ColumnTally | None = None  # the LLM source's calls, when the plan has one
    answered_by: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the failures are within the allowed number."""
        return len(self.errors) <= self.allowed_failures

    @property
    def all_tallies(self) -> tuple[ColumnTally, ...]:
        """The columns' tallies, then the source's (when the plan has an LLM source)."""
        source = (self.source_tally,) if self.source_tally is not None else ()
        return (*self.tallies.values(), *source)

    @property
    def calls(self) -> int:
        """Requests sent to models in this run (retries, repairs and fallbacks included)."""
        return self.stats.calls

    @property
    def cache_hits(self) -> int:
        """Cells (and source calls) answered from the cache."""
        return sum(t.cached for t in self.all_tallies)

    @property
    def replayed(self) -> int:
        """Cells (and source calls) answered from a response pack."""
        return sum(t.replayed for t in self.all_tallies)

    @property
    def failures(self) -> int:
        return len(self.errors)

    @property
    def prompt_tokens(self) -> int:
        return self.stats.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self.stats.completion_tokens

    @property
    def cost(self) -> float:
        """USD of this run's calls whose model has a price."""
        return self.stats.cost


def write_errors(errors: Sequence[CellError], path: Path) -> None:
    """``errors`` as JSON lines at ``path``, atomically; removes a stale file when empty."""
    if not errors:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    temp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with temp.open("w", encoding="utf-8") as handle:
            for error in sorted(errors, key=lambda e: (e.row, e.column)):
                handle.write(error.to_json() + "\n")
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def errors_path(out: Path) -> Path:
    return out.with_name(out.name + ".errors.jsonl")
