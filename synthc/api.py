"""synthc's Python API; the CLI is a thin layer over these functions.

A *spec* argument is one of:

- a :class:`pathlib.Path` (or any ``os.PathLike``): the path of a spec file;
- a ``str`` that contains a newline, starts with ``synthc:`` or ``{`` (after leading
  whitespace), or is blank: the YAML text of a spec;
- any other ``str``: the path of a spec file;
- for :func:`generate`, :func:`stream`, :func:`write` and :func:`write_stream`, also an
  already compiled :class:`runtime.plan.Plan`.

To say which one you mean, pass ``text=...`` or ``path=...`` instead of ``spec``.

Every function is synchronous and pure with respect to its arguments: the same spec,
``rows`` and ``seed`` give the same rows (and, for :func:`write`, the same bytes) on every
machine and every run, whatever ``chunk_rows`` is. LLM columns add the cache to those
arguments: the same spec, seed and cache give the same rows.

Specs with LLM columns take these keyword arguments as well (:func:`generate`,
:func:`stream`, :func:`write`, :func:`write_stream`, :func:`estimate`):

- ``models``: ``{"writer": "openai/gpt-4o"}`` swaps an alias's model (its fallbacks are
  dropped), like ``--model writer=openai/gpt-4o``;
- ``cache``: the cache file (default ``.synthc/cache.db``), or ``False`` for none;
- ``max_cost``: USD; once spent, no new call starts and ``runtime.llm.outcome.LLMAborted``
  is raised (everything answered so far stays in the cache);
- ``max_failures``: failed cells allowed (``5`` or ``"2%"``, default 0). A failed cell
  is null; :func:`write` reports failures in its result (``result.llm``) and writes them
  to ``<out>.errors.jsonl``; :func:`generate` and :func:`stream` raise
  ``runtime.llm.outcome.TooManyFailures`` after the last row when there are more than allowed.

LLM calls run on an event loop in a thread of synthc's own, so these functions work from
code that already runs a loop (a notebook cell) too; :func:`agenerate` and :func:`awrite`
are awaitable versions that keep that loop free while they work. Errors in the spec raise
:class:`SpecError` (all diagnostics at once); a wrong argument raises
:class:`UsageError`; failures while generating or writing raise
``runtime.errors.ExecutionError`` / ``OutputError``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final, TypeAlias

from runtime.defaults import DEFAULT_CHUNK_ROWS, MAX_ROWS, MAX_SEED
from runtime.plan import Plan
from synthc.diagnostics import Diagnostic
from synthc.errors import UsageError

if TYPE_CHECKING:
    import polars as pl

    from runtime.llm.outcome import LLMOptions
    from runtime.llm.run import LLMRun
    from runtime.plan import OutputFormat
    from runtime.writers import WriteResult
    from synthc.llm import ColumnEstimate

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "agenerate",
    "awrite",
    "check",
    "compile",
    "estimate",
    "generate",
    "output_format",
    "output_metadata",
    "stream",
    "stream_format",
    "with_overrides",
    "write",
    "write_stream",
]

SpecInput: TypeAlias = "str | os.PathLike[str]"
PlanInput: TypeAlias = "str | os.PathLike[str] | Plan"


_FORMATS: Final[dict[str, OutputFormat]] = {
    "parquet": "parquet",
    "csv": "csv",
    "json": "json",
    "jsonl": "jsonl",
}
FORMATS: Final = tuple(_FORMATS)

ProgressCallback: TypeAlias = Callable[[int], None]
CacheArg: TypeAlias = "str | os.PathLike[str] | bool | None"


def _source(
    spec: str | os.PathLike[str] | None, text: str | None, path: str | os.PathLike[str] | None
) -> tuple[str, str | Path]:
    """("text", yaml) or ("path", path) for exactly one given spec argument."""
    given = [name for name, value in (("spec", spec), ("text", text), ("path", path)) if value is not None]
    if len(given) != 1:
        raise UsageError(f"pass exactly one of spec, text= or path= (got {', '.join(given) or 'none'})")
    if text is not None:
        return "text", text
    if path is not None:
        return "path", Path(path)
    if isinstance(spec, str):
        if _looks_like_text(spec):
            return "text", spec
        return "path", Path(spec)
    if isinstance(spec, os.PathLike):
        return "path", Path(spec)
    raise UsageError(f"a spec is a path or YAML text, not {type(spec).__name__}")


def _looks_like_text(spec: str) -> bool:
    """YAML text rather than a path: it has a line break, starts like a spec
    (``synthc:`` or a flow mapping ``{``), or is blank (an empty spec, not the folder ``.``)."""
    head = spec.lstrip()
    return "\n" in spec or not head or head.startswith(("synthc:", "{"))


def check(
    spec: SpecInput | None = None,
    *,
    text: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> list[Diagnostic]:
    """All diagnostics of a spec, best first (an empty list when the spec is valid).

    Never raises for a bad spec, including a missing or unreadable file (that is a
    ``file-not-found`` diagnostic). Light: does not import polars or numpy unless the
    spec has expressions that need checking.
    """
    from synthc.compiler import check_path, check_source
    from synthc.errors import SpecError

    kind, value = _source(spec, text, path)
    try:
        if kind == "text":
            return check_source(str(value))
        return check_path(value)
    except SpecError as exc:  # the compiler should return these; be safe if it raises
        return list(exc.diagnostics)


def compile(
    spec: SpecInput | None = None,
    *,
    text: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Plan:
    """Compile a spec to its :class:`Plan`.

    Raises :class:`SpecError` carrying every diagnostic when the spec has errors.
    Compiling the same spec twice gives equal plans with equal ``plan_hash``.
    """
    from synthc.compiler import compile_path, compile_source

    kind, value = _source(spec, text, path)
    if kind == "text":
        return compile_source(str(value))
    return compile_path(value)


def _plan(spec: PlanInput | None, text: str | None, path: str | os.PathLike[str] | None) -> Plan:
    if isinstance(spec, Plan) and text is None and path is None:
        return spec
    if isinstance(spec, Plan):
        raise UsageError("pass a Plan as spec, or text=/path=, not both")
    return compile(spec, text=text, path=path)


def with_overrides(
    plan: Plan, *, rows: int | None = None, seed: int | None = None, models: Mapping[str, str] | None = None
) -> Plan:
    """``plan`` with ``rows``/``seed`` replaced when given; checks their ranges
    (``0 <= rows <= 2e9``, ``0 <= seed < 2**63``) and raises :class:`UsageError`.
    ``models`` swaps aliases' models (UsageError for an alias the spec lacks)."""
    for name, value, top in (("rows", rows, MAX_ROWS), ("seed", seed, MAX_SEED)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{name} must be an integer, not {type(value).__name__}")
        if not 0 <= value <= top:
            raise UsageError(f"{name} must be between 0 and {top:,}, got {value:,}")
    if models:
        from synthc.llm import parse_model_overrides

        parse_model_overrides([f"{alias}={model}" for alias, model in models.items()], plan)
    return plan.with_overrides(rows=rows, seed=seed, models=models)


def _llm_options(
    cache: CacheArg,
    max_cost: float | None,
    max_failures: int | str,
    replay: Sequence[str | os.PathLike[str]] = (),
    offline: bool = False,
) -> LLMOptions:
    from synthc.llm import options

    if cache is True:
        cache = None
    return options(
        cache=cache or None, no_cache=cache is False, max_cost=max_cost, max_failures=max_failures,
        replay=replay, offline=offline,
    )  # fmt: skip


def _check_chunk_rows(chunk_rows: int) -> int:
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise UsageError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    return chunk_rows


def stream(
    spec: PlanInput | None = None,
    *,
    rows: int | None = None,
    seed: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: ProgressCallback | None = None,
    text: str | None = None,
    path: str | os.PathLike[str] | None = None,
    models: Mapping[str, str] | None = None,
    cache: CacheArg = None,
    max_cost: float | None = None,
    max_failures: int | str = 0,
    replay: Sequence[str | os.PathLike[str]] = (),
    offline: bool = False,
) -> Iterator[pl.DataFrame]:
    """The dataset as DataFrame chunks (at most ``chunk_rows`` rows each), in order.

    The spec is compiled before this returns, so spec errors raise here, not during
    iteration. Concatenating the chunks gives exactly :func:`generate`'s frame for any
    ``chunk_rows``. Memory is bounded by the chunk (unless a step such as ``sort`` or
    ``shuffle`` needs every row). ``progress`` is called with the number of rows of
    each generated chunk (before steps such as ``filter`` drop any). LLM arguments: see
    the module docstring.
    """
    plan = with_overrides(_plan(spec, text, path), rows=rows, seed=seed, models=models)
    options = _llm_options(cache, max_cost, max_failures, replay, offline)
    _check_chunk_rows(chunk_rows)
    if not plan.uses_models:
        from runtime.execute import execute

        return execute(plan, chunk_rows=chunk_rows, progress=progress)
    return _llm_frames(plan, options, chunk_rows, progress)


def _llm_frames(
    plan: Plan, options: LLMOptions, chunk_rows: int, progress: ProgressCallback | None
) -> Iterator[pl.DataFrame]:
    from runtime.execute import execute
    from runtime.llm.outcome import TooManyFailures
    from synthc.llm import opened

    with opened(plan, options) as llm:
        yield from execute(plan, chunk_rows=chunk_rows, progress=progress, llm=llm)
        if llm is not None and llm.failures > llm.allowed_failures:
            raise TooManyFailures(llm.summary(None))


def generate(
    spec: PlanInput | None = None,
    *,
    rows: int | None = None,
    seed: int | None = None,
    text: str | None = None,
    path: str | os.PathLike[str] | None = None,
    models: Mapping[str, str] | None = None,
    cache: CacheArg = None,
    max_cost: float | None = None,
    max_failures: int | str = 0,
    replay: Sequence[str | os.PathLike[str]] = (),
    offline: bool = False,
) -> pl.DataFrame:
    """The whole dataset as one DataFrame (columns in output order, steps applied).

    Deterministic: the same spec, ``rows`` and ``seed`` (and cache, for LLM columns) give
    an equal frame everywhere; ``rows``/``seed`` override the spec's values.
    """
    import polars as pl

    frames = stream(
        spec, rows=rows, seed=seed, text=text, path=path, models=models, cache=cache,
        max_cost=max_cost, max_failures=max_failures, replay=replay, offline=offline,
    )  # fmt: skip
    chunks = list(frames)
    return pl.concat(chunks, how="vertical", rechunk=True) if chunks else pl.DataFrame()


async def agenerate(spec: PlanInput | None = None, **kwargs: Any) -> pl.DataFrame:
    """:func:`generate` for code running an event loop (``await synthc.agenerate(...)`` in
    a notebook): the work runs in a thread, so the caller's loop stays responsive."""
    import asyncio

    return await asyncio.to_thread(generate, spec, **kwargs)


async def awrite(spec: PlanInput | None, out: str | os.PathLike[str], **kwargs: Any) -> WriteResult:
    """:func:`write` for code running an event loop; see :func:`agenerate`."""
    import asyncio

    return await asyncio.to_thread(write, spec, out, **kwargs)


def estimate(
    spec: PlanInput | None = None,
    *,
    rows: int | None = None,
    seed: int | None = None,
    text: str | None = None,
    path: str | os.PathLike[str] | None = None,
    models: Mapping[str, str] | None = None,
    cache: CacheArg = None,
) -> list[ColumnEstimate]:
    """Per LLM column: cells, how many the cache holds, the calls left, and their
    estimated tokens and cost. Renders every prompt; calls nothing; never writes the
    cache (a missing cache file is not created)."""
    from synthc.llm import estimate as estimate_calls

    plan = with_overrides(_plan(spec, text, path), rows=rows, seed=seed, models=models)
    return estimate_calls(plan, _llm_options(cache, None, 0))[0]


def output_format(out: str | os.PathLike[str], format: str | None) -> OutputFormat:
    """The format to write ``out`` in: ``format`` if given, else from the extension.

    Raises :class:`UsageError` with an ``unknown-format`` diagnostic for anything else.
    """
    from runtime.plan import format_for_path

    if format is not None:
        if format.lower() in _FORMATS:  # case-insensitive, like extensions
            return _FORMATS[format.lower()]
        raise _unknown_format(f"unknown output format `{format}`")
    found = format_for_path(Path(out))
    if found is None:
        suffix = Path(out).suffix or "(none)"
        raise _unknown_format(
            f"cannot tell the output format of `{os.fspath(out)}` from its extension {suffix}"
        )
    return found


def stream_format(format: str) -> OutputFormat:
    """The format to stream to a pipe in: ``jsonl`` or ``csv`` (parquet and a JSON array
    need a file). Raises :class:`UsageError` with an ``unknown-format`` diagnostic."""
    if format.lower() in _STREAM_FORMATS:
        return _FORMATS[format.lower()]
    if format.lower() not in _FORMATS:
        raise _unknown_format(f"unknown output format `{format}`")
    hint = "streaming takes jsonl or csv; write parquet or json to a file (--out data.parquet)"
    raise _unknown_format(f"cannot stream `{format}` to a pipe", hint=hint)


_STREAM_FORMATS: Final = ("jsonl", "csv")


def _unknown_format(message: str, *, hint: str | None = None) -> UsageError:
    from synthc.diagnostics import render

    hint = hint or f"use one of {', '.join(FORMATS)} (an extension like .parquet, or --format)"
    return UsageError(render(Diagnostic("unknown-format", message, hint=hint)))


def output_metadata(plan: Plan) -> dict[str, str]:
    """Key-value metadata written into Parquet files: what made the rows."""
    from runtime.execute import plan_metadata
    from synthc import __version__

    return {**plan_metadata(plan), "synthc.version": __version__}


def write(
    spec: PlanInput | None,
    out: str | os.PathLike[str],
    *,
    rows: int | None = None,
    seed: int | None = None,
    format: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: ProgressCallback | None = None,
    text: str | None = None,
    path: str | os.PathLike[str] | None = None,
    models: Mapping[str, str] | None = None,
    cache: CacheArg = None,
    max_cost: float | None = None,
    max_failures: int | str = 0,
    replay: Sequence[str | os.PathLike[str]] = (),
    offline: bool = False,
    content: bool = True,
    on_start: Callable[[LLMRun | None], None] | None = None,
) -> WriteResult:
    """Generate the dataset and write it to ``out`` atomically (temporary file, then rename).

    ``format`` (parquet, csv, json, jsonl) defaults to the one ``out``'s extension names.
    Parquet files carry the spec hash, plan hash, synthc version and engine version as
    key-value metadata. ``progress`` is called with each generated chunk's row count.
    On any failure nothing is left at ``out`` (an existing file is untouched); an
    unwritable ``out`` raises ``runtime.errors.OutputError`` naming the path.

    With LLM columns, failed cells are null and listed in ``<out>.errors.jsonl`` (a stale
    one is removed when none failed); ``result.llm`` says what the cells did and whether
    the failures are within ``max_failures``. ``result.content`` is the content hash of the
    rows (``content=False`` skips computing it). ``on_start`` receives the run's LLM side
    (None without LLM columns) before the first row, e.g. to show live counters.
    """
    from runtime.execute import execute
    from runtime.llm.outcome import errors_path, write_errors
    from runtime.writers import write as write_frames
    from synthc.llm import opened

    fmt = output_format(out, format)
    plan = with_overrides(_plan(spec, text, path), rows=rows, seed=seed, models=models)
    options = _llm_options(cache, max_cost, max_failures, replay, offline)
    _check_chunk_rows(chunk_rows)
    _check_flat(plan, fmt)
    with opened(plan, options) as llm:
        if on_start is not None:
            on_start(llm)
        frames = execute(plan, chunk_rows=chunk_rows, progress=progress, llm=llm)
        result = write_frames(frames, Path(out), fmt, metadata=output_metadata(plan), content=content)
        if llm is None:
            return result
        side = errors_path(Path(out))
        write_errors(llm.errors, side)
        return replace(result, llm=llm.summary(side if llm.errors else None))


def _check_flat(plan: Plan, fmt: OutputFormat) -> None:
    """CSV cannot hold struct columns: say so before any model is called."""
    if fmt != "csv" or not plan.uses_models:
        return
    from runtime.errors import OutputError
    from runtime.llm.graph import struct_outputs

    nested = struct_outputs(plan)
    if nested:
        raise OutputError(
            f"column `{nested[0]}` is a struct (an LLM `output`), which CSV cannot hold: "
            "write parquet, json or jsonl, or drop the column first"
        )


def write_stream(
    spec: PlanInput | None,
    out: BinaryIO,
    *,
    rows: int | None = None,
    seed: int | None = None,
    format: str = "jsonl",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: ProgressCallback | None = None,
    text: str | None = None,
    path: str | os.PathLike[str] | None = None,
    models: Mapping[str, str] | None = None,
    cache: CacheArg = None,
    max_cost: float | None = None,
    max_failures: int | str = 0,
    replay: Sequence[str | os.PathLike[str]] = (),
    offline: bool = False,
) -> int:
    """Generate the dataset and write it to the binary stream ``out`` as JSON lines
    (``format="jsonl"``) or CSV, chunk by chunk; returns the number of rows written.
    More failed LLM cells than ``max_failures`` raise ``TooManyFailures`` at the end."""
    from runtime.writers import write_stream as write_frames

    fmt = stream_format(format)
    plan = with_overrides(_plan(spec, text, path), rows=rows, seed=seed, models=models)
    _check_flat(plan, fmt)
    frames = stream(
        plan, chunk_rows=chunk_rows, progress=progress, cache=cache, max_cost=max_cost,
        max_failures=max_failures, replay=replay, offline=offline,
    )  # fmt: skip
    return write_frames(frames, out, fmt)
