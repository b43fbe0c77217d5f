"""What a run's LLM cells came to: options, failure policy, tallies, failed cells, the
errors side file, and the errors that stop a run."""

from __future__ import annotations

import contextlib
import json
import os
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
    and a missing cache file is not created)."""

    cache: Path | None = field(default_factory=default_cache)
    max_cost: float | None = None
    max_failures: FailurePolicy = FailurePolicy()
    dry_run: bool = False
    transport: Transport | None = None
    environ: Mapping[str, str] | None = None


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
    cached: int = 0
    called: int = 0  # answered by a call in this run
    failed: int = 0
    would_call: int = 0  # dry run: not cached (including cells whose inputs are not known yet)
    rendered: int = 0  # dry run: of those, the cells whose prompt could be rendered
    prompt_chars: int = 0  # dry run: rendered characters of the cells that would be called
    samples: list[Messages] = field(default_factory=list)


@dataclass(frozen=True)
class LLMSummary:
    """What a run's LLM cells did: per column tallies, the failed cells (sorted by row),
    how many failures were allowed, the live counters, and the errors file (if written)."""

    tallies: Mapping[str, ColumnTally]
    errors: tuple[CellError, ...]
    allowed_failures: int
    stats: RunStats
    errors_path: Path | None = None
    source_tally: ColumnTally | None = None  # the LLM source's calls, when the plan has one

    @property
    def ok(self) -> bool:
        """Whether the failures are within the allowed number."""
        return len(self.errors) <= self.allowed_failures


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
