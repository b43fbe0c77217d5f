"""The reproducibility commands: the lock ``synthc run`` writes, ``synthc pack`` and
``synthc verify`` (the command-line side; the work is in :mod:`synthc.lockfile`,
:mod:`synthc.verify` and :mod:`runtime.llm.pack`)."""

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from synthc import console

if TYPE_CHECKING:
    import typer

    from runtime.plan import Plan
    from runtime.writers import WriteResult

# Set to 1 to never write lock files (e.g. in a CI job that only previews data).
NO_LOCK_ENV = "SYNTHC_NO_LOCK"


def lock_wanted(no_lock: bool) -> bool:
    return not no_lock and os.environ.get(NO_LOCK_ENV, "") not in ("1", "true", "yes")


def write_run_lock(
    spec: Path,
    base: "Plan",
    plan: "Plan",
    result: "WriteResult",
    target: str,
    fmt: str,
    packs: tuple[Path, ...],
) -> Path | None:
    """Write ``<spec>.lock.json`` for a finished run; None when the writer kept no hash."""
    from synthc.lockfile import build_lock, lock_path, write_lock

    content = result.content
    if content is None:  # a column the content hash cannot read (see runtime.contenthash)
        return None
    path = lock_path(spec)
    lock = build_lock(
        spec=spec, base=base, plan=plan, content=content, llm=result.llm, output=(target, fmt), packs=packs
    )
    write_lock(path, lock)
    return path


def pack_spec(spec: Path, out: Path | None, cache: Path | None) -> int:
    """``synthc pack``: export the cache entries the spec's (locked) plan uses."""
    from runtime.llm.pack import collect_entries, export_pack
    from runtime.plan import plan_hash
    from synthc import api
    from synthc.llm import options
    from synthc.lockfile import lock_path, pack_path, read_lock
    from synthc.verify import locked_plan

    base = api.compile(path=spec)
    plan = locked_plan(base, read_lock(lock_path(spec))) if lock_path(spec).exists() else base
    if not plan.uses_models:
        console.echo(f"{spec.name} has no LLM columns or source: there is nothing to pack", err=True)
        return 0
    target = out or pack_path(spec)
    entries = collect_entries(plan, options(cache=cache))
    info = export_pack(entries, target, plan_hash=plan_hash(base), spec_hash=base.spec_hash)
    console.echo(f"packed {info.entries:,} responses the plan uses into {target}", err=True)
    return 0


def register(app: "typer.Typer", spec_arg: Any, cache_opt: Any) -> None:
    """Add ``pack`` and ``verify`` to the CLI."""
    import typer

    @app.command(
        short_help="Export the cached LLM responses a spec uses into a response pack.",
        epilog="\b\nExample:\n  synthc pack tickets.yaml   # writes tickets.responses.parquet",
    )
    def pack(
        spec: Annotated[Path, spec_arg],
        out: Annotated[
            Path | None,
            typer.Option("--out", "-o", metavar="PATH", show_default=False,
                         help="The pack file (default: <spec>.responses.parquet beside the spec)."),
        ] = None,
        cache: Annotated[Path | None, cache_opt] = None,
    ) -> int:  # fmt: skip
        """Write exactly the cache entries the spec's plan uses (the rows and seed of its lock
        when there is one) to a Parquet response pack. Commit it beside the spec: anyone can
        then regenerate the LLM columns with `synthc run --replay` or `synthc verify`,
        without a key and without paying for the calls. The cache must hold every cell: run
        the spec first."""
        return pack_spec(spec, out, cache)

    @app.command(
        short_help="Join the shard files of one run into one output.",
        epilog="\b\nExample:\n  synthc merge orders.parquet part-1.parquet part-2.parquet",
    )
    def merge(
        out: Annotated[Path, typer.Argument(metavar="OUT", help="The output file (its extension names the format).")],
        shards: Annotated[list[Path], typer.Argument(metavar="SHARD...", help="Every shard file of the run.")],
        format: Annotated[
            str | None,
            typer.Option("--format", "-f", metavar="FORMAT", show_default=False,
                         help="parquet, csv, json or jsonl (default: from OUT's extension)."),
        ] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary.")] = False,
    ) -> int:  # fmt: skip
        """Join the files of `synthc run --shard K/N` (every K once, all of one plan) in
        order, apply the steps that need every row (dedupe, sort, shuffle, sample n, limit,
        sessionize) and write OUT atomically. The rows equal a single run's."""
        from runtime.defaults import DEFAULT_CHUNK_ROWS

        return merge_shards(out, shards, format, chunk_rows=DEFAULT_CHUNK_ROWS, quiet=quiet)

    @app.command(
        short_help="Regenerate a spec's data from its lock and pack, offline, and compare.",
        epilog="\b\nExamples:\n  synthc verify tickets.yaml\n  synthc verify tickets.yaml --against tickets.parquet",
    )
    def verify(
        specs: Annotated[list[Path], typer.Argument(metavar="SPEC...", help="The spec files (each with its lock).")],
        lock: Annotated[
            Path | None,
            typer.Option("--lock", metavar="PATH", show_default=False,
                         help="The lock file (default: <spec>.lock.json beside the spec)."),
        ] = None,
        replay: Annotated[
            list[Path] | None,
            typer.Option("--replay", metavar="PACK", show_default=False,
                         help="A response pack (default: those the lock names, or <spec>.responses.parquet)."),
        ] = None,
        cache: Annotated[Path | None, cache_opt] = None,
        against: Annotated[
            Path | None,
            typer.Option("--against", metavar="FILE", show_default=False,
                         help="An output file to count differing rows against (default: the lock's output, if present)."),
        ] = None,
    ) -> int:  # fmt: skip
        """Regenerate the data a lock describes, with no model calls (LLM cells come from
        the response pack and, read-only, the cache) and compare its content hash with
        the lock's. Exit 0 when it matches; 1 with the columns (and, given the output
        file, the number of rows) that differ, or with why it cannot be compared: an
        engine that generates different data, or a spec changed since the lock."""
        from synthc.errors import UsageError
        from synthc.verify import verify_spec

        if len(specs) > 1 and (lock is not None or against is not None):
            raise UsageError(
                "--lock and --against name one spec's files: verify one spec at a time with them"
            )
        codes = [
            verify_spec(spec, lock=lock, packs=tuple(replay or ()), cache=cache, against=against)
            for spec in specs
        ]
        return max(codes)


def run_shard(
    plan: "Plan",
    shard_text: str,
    out: str | None,
    fmt: str | None,
    *,
    chunk_rows: int,
    quiet: bool,
    llm_options: Any = None,
) -> int:
    """``synthc run --shard K/N``: write shard K's rows (Parquet, with what the merge needs).
    LLM cells run with ``llm_options`` (cache, packs, offline, failures) like `synthc run`."""
    import time

    from runtime.shards import Shard, ShardError, check_shardable
    from synthc.errors import SynthcError, UsageError

    try:
        shard = Shard.parse(shard_text)
    except ValueError as exc:
        raise UsageError(f"--shard: {exc}") from None
    if out is None or out == "-":
        raise UsageError("--shard needs --out PATH: a shard is a Parquet file for `synthc merge`")
    if (fmt or "parquet") != "parquet" or not out.lower().endswith((".parquet", ".pq")):
        raise UsageError(
            f"--shard writes Parquet (it keeps what the merge needs): use a .parquet path, not {out}"
        )
    try:
        check_shardable(plan)
    except ShardError as exc:
        raise SynthcError(str(exc)) from None
    started = time.perf_counter()
    rows, lines, ok = _write_shard_file(plan, shard, Path(out), chunk_rows, llm_options)
    if not quiet or not ok:
        start, stop = shard.rows(plan.rows)
        seconds = time.perf_counter() - started
        console.echo(
            f"wrote shard {shard} (rows {start:,}..{stop - 1:,} of {plan.rows:,}; {rows:,} after the "
            f"row-local steps) to {out} in {seconds:.2f} s",
            err=True,
        )
        if lines:
            console.echo("\n".join(lines), err=True)
    if not ok:
        console.echo("error: more LLM cells failed than --max-failures allows", err=True)
        return 1
    return 0


def _write_shard_file(
    plan: "Plan", shard: Any, out: Path, chunk_rows: int, options: Any
) -> tuple[int, list[str], bool]:
    """(rows written, LLM summary lines, whether failures are within the allowed number)."""
    from runtime.shards import open_shard_llm, shard_frames, shard_metadata
    from runtime.writers import write

    metadata = shard_metadata(plan, shard)
    if not plan.uses_models:
        result = write(
            shard_frames(plan, shard, chunk_rows=chunk_rows), out, "parquet", metadata=metadata, content=False
        )
        return result.rows, [], True
    from runtime.cache import CacheError
    from runtime.llm.outcome import errors_path, write_errors
    from synthc import llm
    from synthc.errors import SynthcError

    try:
        run = open_shard_llm(plan, shard, options if options is not None else llm.options())
    except CacheError as exc:
        raise SynthcError(str(exc)) from None
    with run:
        frames = shard_frames(plan, shard, chunk_rows=chunk_rows, llm=run)
        result = write(frames, out, "parquet", metadata=metadata, content=False)
        side = errors_path(out)
        write_errors(run.errors, side)
        summary = run.summary(side if run.errors else None)
    return result.rows, llm.summary_lines(plan, summary), bool(summary.ok)


def merge_shards(out: Path, shards: list[Path], fmt: str | None, *, chunk_rows: int, quiet: bool) -> int:
    """``synthc merge``: join shard files in order, apply the global steps, write ``out``."""
    from runtime.shards import merge_frames, read_shard
    from runtime.writers import write
    from synthc import api

    output_format = api.output_format(out, fmt)
    files = [read_shard(p) for p in shards]
    plan = files[0].plan
    result = write(merge_frames(files, chunk_rows=chunk_rows), out, output_format,
                   metadata=api.output_metadata(plan))  # fmt: skip
    if not quiet:
        digest = f", content {result.content.total}" if result.content is not None else ""
        console.echo(f"merged {len(files)} shards: {result.rows:,} rows to {out}{digest}", err=True)
    return 0


def run_distributed(
    plan: "Plan",
    out: str | None,
    fmt: str | None,
    *,
    shard: str | None,
    executor: str,
    address: str | None,
    shards: int | None,
    chunk_rows: int,
    quiet: bool,
    llm_options: Any = None,
) -> int:
    """``synthc run`` with ``--shard`` or ``--executor ray``."""
    from synthc.errors import UsageError

    if executor not in ("local", "ray"):
        raise UsageError(f"--executor: `{executor}` is not an executor (local or ray)")
    if executor == "local":
        if address is not None or shards is not None:
            raise UsageError("--address and --shards go with --executor ray")
        assert shard is not None
        return run_shard(plan, shard, out, fmt, chunk_rows=chunk_rows, quiet=quiet, llm_options=llm_options)
    if shard is not None:
        raise UsageError("--shard runs one shard here; --executor ray runs them all: give one of them")
    return run_ray(plan, out, fmt, address=address, shards=shards, chunk_rows=chunk_rows, quiet=quiet)


def run_ray(
    plan: "Plan", out: str | None, fmt: str | None, *, address: str | None, shards: int | None, chunk_rows: int,
    quiet: bool,
) -> int:  # fmt: skip
    """``synthc run --executor ray``: a folder of Parquet parts, one per shard."""
    import time

    from runtime.ray_executor import run_on_ray
    from runtime.shards import ShardError
    from synthc.errors import SynthcError, UsageError

    if out is None or out == "-":
        raise UsageError("--executor ray needs --out FOLDER: it writes a folder of Parquet parts")
    if fmt not in (None, "parquet"):
        raise UsageError("--executor ray writes Parquet parts")
    started = time.perf_counter()
    try:
        result = run_on_ray(plan, Path(out), shards=shards, address=address, chunk_rows=chunk_rows)
    except ShardError as exc:
        raise SynthcError(str(exc)) from None
    if not quiet:
        seconds = time.perf_counter() - started
        console.echo(
            f"wrote {result.rows:,} rows in {result.parts} parts to {out}/ on Ray in {seconds:.2f} s",
            err=True,
        )
    return 0
