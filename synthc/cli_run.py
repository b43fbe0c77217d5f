"""``synthc run``: generate and write, with a progress bar and a summary (the command
itself is declared in :mod:`synthc.cli`; this is its work, split out to keep that module
small)."""

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.defaults import DEFAULT_CHUNK_ROWS
from synthc import console
from synthc.cli import EXIT_ERROR, EXIT_OK, _plural, _usage

if TYPE_CHECKING:
    from runtime.llm.outcome import LLMOptions
    from runtime.llm.run import LLMRun
    from runtime.plan import Plan


@dataclass(frozen=True)
class LLMFlags:
    """``synthc run``'s options for LLM columns."""

    models: Sequence[str] = ()
    cache: Path | None = None
    no_cache: bool = False
    max_cost: float | None = None
    max_failures: str = "0"
    dry_run: bool = False
    replay: Sequence[Path] = ()
    offline: bool = False
    no_lock: bool = False


def prepared(
    spec: Path, rows: int | None, seed: int | None, flags: LLMFlags
) -> tuple["Plan", "Plan", "LLMOptions"]:
    """(the spec's plan, the plan with --rows/--seed/--model applied, the LLM options with
    the packs of --replay and of the spec's ``replay:``)."""
    from synthc import api, llm

    base = api.compile(path=spec)
    compiled = api.with_overrides(base, rows=rows, seed=seed)
    compiled = compiled.with_overrides(models=llm.parse_model_overrides(flags.models, compiled))
    options = llm.options(
        cache=flags.cache, no_cache=flags.no_cache, max_cost=flags.max_cost, max_failures=flags.max_failures,
        dry_run=flags.dry_run, replay=(*flags.replay, *(Path(p) for p in compiled.replay)), offline=flags.offline,
    )  # fmt: skip
    return base, compiled, options


def run_spec(
    spec: Path,
    *,
    out: str | None = None,
    rows: int | None = None,
    seed: int | None = None,
    fmt: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    quiet: bool = False,
    flags: LLMFlags = LLMFlags(),
) -> int:
    """``synthc run``: generate and write (atomically), or stream to stdout with
    ``out="-"``; a progress bar on a terminal and a one-line summary on stderr."""
    from synthc import api, llm
    from synthc.cli_repro import lock_wanted, write_run_lock

    # an unknown format is exit 2 before any work
    if out == "-":
        fmt = api.stream_format(fmt or "jsonl")
    elif out is not None:
        fmt = api.output_format(out, fmt)
    base, compiled, options = prepared(spec, rows, seed, flags)
    packs = options.replay
    if flags.dry_run:
        return _dry_run(spec, compiled, options)
    llm_args: dict[str, Any] = {
        "cache": False if options.cache is None else options.cache,
        "max_cost": options.max_cost, "max_failures": str(options.max_failures),
        "replay": packs, "offline": flags.offline,
    }  # fmt: skip
    locking = lock_wanted(flags.no_lock)
    started = time.perf_counter()
    live = _Live()
    with _located(spec), _progress(compiled, enabled=not quiet, live=live) as advance:
        if out == "-":
            sys.stdout.flush()
            written = api.write_stream(
                compiled, sys.stdout.buffer, format=fmt or "jsonl", chunk_rows=chunk_rows, progress=advance,
                **llm_args,
            )  # fmt: skip
            target, result = "stdout", None
        else:
            target = out or _spec_output(compiled, spec)
            if out is None:  # a spec names where its data goes: make the folder, as git checkouts lack it
                Path(target).parent.mkdir(parents=True, exist_ok=True)
            fmt = fmt or (compiled.output.format if compiled.output else None)
            result = api.write(
                compiled, target, format=fmt, chunk_rows=chunk_rows, progress=advance, on_start=live.attach,
                content=locking, **llm_args,
            )  # fmt: skip
            written = result.rows
    locked = None
    if result is not None and locking:
        locked = write_run_lock(spec, base, compiled, result, target, str(fmt), packs)
    if not quiet:
        seconds = time.perf_counter() - started
        rate = f"{written / seconds:,.0f} rows/s" if seconds > 0 else "- rows/s"
        console.echo(f"wrote {_plural(written, 'row')} to {target} in {seconds:.2f} s ({rate})", err=True)
        if locked is not None:
            console.echo(f"lock: {locked}", err=True)
    if result is not None and result.llm is not None:
        if not quiet or not result.llm.ok:
            console.echo("\n".join(llm.summary_lines(compiled, result.llm)), err=True)
        if not result.llm.ok:
            failed, allowed = len(result.llm.errors), result.llm.allowed_failures
            message = (
                f"error: {_plural(failed, 'LLM cell')} failed, more than --max-failures allows ({allowed:,})"
            )
            console.echo(console.style(message, "bold red", err=True), err=True)
            return EXIT_ERROR
    return EXIT_OK


def _dry_run(spec: Path, compiled: "Plan", options: "LLMOptions") -> int:
    """``synthc run --dry-run``: render every prompt, look it up, report; call nothing."""
    from synthc import llm

    if not compiled.uses_models:
        console.echo("no LLM columns: a run would make no model calls", err=True)
        return EXIT_OK
    with _located(spec):
        estimates, tallies = llm.estimate(compiled, options)
    console.echo("\n".join(llm.dry_run_lines(compiled, estimates, tallies, options.cache)))
    return EXIT_OK


class _Live:
    """The run's LLM side, once it starts (for the progress bar's live counters)."""

    def __init__(self) -> None:
        self.run: LLMRun | None = None

    def attach(self, run: "LLMRun | None") -> None:
        self.run = run

    def text(self) -> str:
        from synthc import llm

        return llm.live_text(self.run) if self.run is not None else ""


def _spec_output(compiled: "Plan", spec: Path) -> str:
    """The spec's ``output.path``, relative to the spec file (like every path in a spec),
    so the same command writes to the same place from any working directory."""
    if compiled.output is None:
        raise _usage(
            "no output path: pass --out PATH (or `--out -` for stdout), or set output.path in the spec"
        )
    return str(spec.parent / Path(compiled.output.path).expanduser())


@contextmanager
def _located(spec: Path) -> Iterator[None]:
    """Turn a column's failure while generating into a ``runtime-error`` diagnostic that
    points at the column's template or expression in the spec."""
    from runtime.errors import ExecutionError, OutputError

    try:
        yield
    except ExecutionError as exc:
        if isinstance(exc, OutputError) or exc.column is None:
            raise
        from synthc.diagnostics import Diagnostic
        from synthc.errors import SpecError
        from synthc.loader import load_path

        column = ("columns", exc.column)
        try:
            _, _, smap = load_path(spec)
        except SpecError:
            raise exc from None
        where = next(((*column, k) for k in ("template", "expr") if (*column, k) in smap), column)
        hint = "the spec is valid, but the values of some row make this fail: guard against them "
        hint += "(e.g. {% if n %}...{% endif %}, CASE WHEN ... END) or change the inputs' range"
        diag = Diagnostic("runtime-error", str(exc), smap.span(where), where, hint)
        raise SpecError([diag]) from exc


@contextmanager
def _progress(
    compiled: "Plan", *, enabled: bool, live: _Live | None = None
) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(rows)``: a rich progress bar on a terminal, else a no-op. With
    LLM columns the bar also shows calls in flight, cache hits, retries, failures,
    tokens, cost and the time left."""
    if not (enabled and console.is_terminal(err=True)):
        yield lambda rows: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class LiveColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(live.text() if live is not None else "", style="dim")

    columns: tuple[ProgressColumn, ...] = (
        TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
    )  # fmt: skip
    if compiled.uses_models:
        columns = (*columns, TimeRemainingColumn(), LiveColumn())
    with Progress(*columns, console=console.console(err=True), transient=True) as bar:
        # progress counts generated rows (before steps drop any), so the total is `rows`
        task = bar.add_task("rows", total=compiled.rows)
        yield lambda rows: bar.advance(task, rows)


# --------------------------------------------------------------------------- the typer app
