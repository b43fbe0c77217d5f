"""synthc's command line: a thin layer over :mod:`synthc.api`.

``run(argv) -> int`` does the work and is the one place that turns errors into exit
codes and messages: 0 success, 1 errors in a spec or while generating/writing,
2 wrong usage (bad flags, unknown output format), 130 interrupted. A user error never
shows a traceback; only a bug in synthc does.

Start-up cost matters because editors and pre-commit hooks run ``synthc check`` on
every save. Nothing heavy is imported at module import: polars, rich and the compiler
load in the command that needs them, and the typer app is built on first use.
(typer is pinned below 0.29, which coerces every argument through pydantic: +0.2 s.)
"""

import enum
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from runtime.defaults import DEFAULT_CHUNK_ROWS
from synthc import console

if TYPE_CHECKING:
    import typer

    from synthc.diagnostics import Diagnostic
    from synthc.errors import SpecError, UsageError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CheckFormat(enum.StrEnum):
    text = "text"
    json = "json"


# --------------------------------------------------------------------------- check


def check_specs(specs: Sequence[Path], fmt: str = "text") -> int:
    """``synthc check``: every diagnostic of every spec, sorted by position within each
    file, then a summary line (or a JSON array with ``fmt="json"``). 1 if any error."""
    import json

    from synthc import api
    from synthc.diagnostics import sort_key

    files = _spec_files(specs)
    if not files:
        raise _usage("no spec files found in the given directories")
    results = [(path, sorted(api.check(path=path), key=sort_key)) for path in files]
    errors = sum(d.severity == "error" for _, diags in results for d in diags)
    if fmt == CheckFormat.json:
        console.echo(json.dumps([d.to_json() for _, diags in results for d in diags], indent=2))
        return EXIT_ERROR if errors else EXIT_OK
    for path, diags in results:
        source = _read_text(path) if diags else None
        for diag in diags:
            console.echo(_render(diag, source, err=False) + "\n")
    warnings = sum(len(diags) for _, diags in results) - errors
    summary = _plural(errors, "error") + (f", {_plural(warnings, 'warning')}" if warnings else "")
    summary += f" in {_plural(len(files), 'file')}"
    console.echo(console.style(summary, "bold red" if errors else "green"))
    return EXIT_ERROR if errors else EXIT_OK


def _spec_files(paths: Sequence[Path]) -> list[Path]:
    """Paths as given; a directory stands for the *.yaml / *.yml files under it."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            files.append(path)
    return files


def _read_text(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None


def _render(diag: "Diagnostic", source: str | None, *, err: bool) -> str:
    """The rendered diagnostic, its ``error[code]`` head coloured on a terminal."""
    from synthc.diagnostics import render

    text = render(diag, source)
    head = f"{diag.severity}[{diag.code}]"
    colour = "bold red" if diag.severity == "error" else "bold yellow"
    return text.replace(head, console.style(head, colour, err=err), 1)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


# --------------------------------------------------------------------------- plan, schema


def show_plan(
    spec: Path,
    *,
    as_json: bool = False,
    rows: int | None = None,
    seed: int | None = None,
    models: Sequence[str] = (),
    cache: Path | None = None,
) -> int:
    """``synthc plan``: the compiled plan as readable text, or as the runtime's JSON; for
    LLM columns also the calls, tokens and cost left (the cache is only read)."""
    from runtime.plan import plan_to_json
    from synthc import api, llm
    from synthc.plantext import render_plan

    compiled = api.with_overrides(api.compile(path=spec), rows=rows, seed=seed)
    compiled = compiled.with_overrides(models=llm.parse_model_overrides(models, compiled))
    if as_json:
        sys.stdout.write(plan_to_json(compiled, indent=2) + "\n")
    else:
        text = render_plan(compiled)
        if compiled.uses_models:
            options = llm.options(cache=cache)
            from synthc.cli_run import _located

            with _located(spec):
                estimates, _ = llm.estimate(compiled, options)
            text += "\n".join(llm.estimate_lines(compiled, estimates)) + "\n"
        sys.stdout.write(text)
    sys.stdout.flush()
    return EXIT_OK


def print_schema() -> int:
    """``synthc schema``: the JSON Schema of the spec language, byte for byte."""
    from synthc.schema import schema_path

    sys.stdout.write(schema_path().read_text(encoding="utf-8"))
    sys.stdout.flush()
    return EXIT_OK


# --------------------------------------------------------------------------- run


_SPEC_HELP = "The spec file (YAML)."
_ROWS_HELP = "Rows to generate (overrides the spec's `rows`)."
_SEED_HELP = "Seed (overrides the spec's `seed`)."


@cache
def build_app() -> "typer.Typer":
    """The typer app: every command's options, help and examples (built once)."""
    import typer

    app = typer.Typer(
        name="synthc",
        help=(
            "Compile declarative YAML dataset specs into reproducible datasets.\n\n"
            "The same spec and seed give the same rows on every machine, every run."
        ),
        epilog=(
            "\b\nA first session:\n  synthc check orders.yaml\n  synthc preview orders.yaml -n 5\n"
            "  synthc run orders.yaml --out orders.parquet"
        ),
        add_completion=False,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,  # plain click help: rich formatting costs ~150 ms of start-up
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    spec_arg = typer.Argument(help=_SPEC_HELP, metavar="SPEC", show_default=False)
    rows_opt = typer.Option("--rows", help=_ROWS_HELP, min=0, metavar="N")
    seed_opt = typer.Option("--seed", help=_SEED_HELP, min=0, metavar="N")
    model_opt = typer.Option(
        "--model", "-m", metavar="ALIAS=MODEL", show_default=False,
        help="Use MODEL (a LiteLLM model string) for the spec's model ALIAS, without its fallbacks. Repeatable.",
    )  # fmt: skip
    cache_opt = typer.Option(
        "--cache", metavar="PATH", show_default=False,
        help="The LLM response cache (default: .synthc/cache.db in the working directory).",
    )  # fmt: skip

    def print_version(value: bool) -> None:
        if value:
            from synthc import __version__

            console.echo(f"synthc {__version__}")
            raise typer.Exit(EXIT_OK)

    @app.callback()
    def root(
        version: Annotated[
            bool, typer.Option("--version", help="Print synthc's version and exit.", callback=print_version)
        ] = False,
    ) -> None:
        """Compile declarative YAML dataset specs into reproducible datasets."""

    @app.command(
        short_help="Report every problem in specs, with positions.",
        epilog="\b\nExamples:\n  synthc check examples/*.yaml\n  synthc check specs/ --format json | jq length",
    )
    def check(
        specs: Annotated[
            list[Path],
            typer.Argument(
                help="Spec files, or directories to search for *.yaml.", metavar="SPEC", show_default=False
            ),
        ],
        format: Annotated[
            CheckFormat,
            typer.Option(
                "--format", "-f", help="text: file:line:col and a caret; json: an array.", metavar="text|json"
            ),
        ] = CheckFormat.text,
    ) -> int:
        """Report every problem in the specs, with positions, without generating anything.

        Exit code 0 when all specs are valid, 1 when any has an error, 2 on wrong usage."""
        return check_specs(specs, format.value)

    @app.command(
        short_help="Show what a spec compiles to (text or --json).",
        epilog="\b\nExamples:\n  synthc plan orders.yaml\n  synthc plan orders.yaml --json > orders.plan.json",
    )
    def plan(
        spec: Annotated[Path, spec_arg],
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the plan as JSON (the runtime's IR).")
        ] = False,
        rows: Annotated[int | None, rows_opt] = None,
        seed: Annotated[int | None, seed_opt] = None,
        model: Annotated[list[str] | None, model_opt] = None,
        cache: Annotated[Path | None, cache_opt] = None,
    ) -> int:
        """Show what a spec compiles to: plan hash, seed, rows, the columns in evaluation
        order with their parameters and inputs, the steps and the output. Nothing is generated.

        With LLM columns: per column the calls the cache does not hold yet, their estimated
        tokens and cost (LiteLLM's bundled prices; every prompt is rendered, nothing is called)."""
        return show_plan(spec, as_json=as_json, rows=rows, seed=seed, models=model or (), cache=cache)

    @app.command(
        "run",
        short_help="Generate the dataset and write it.",
        epilog=(
            "\b\nExamples:\n  synthc run orders.yaml --out orders.parquet\n"
            "  synthc run orders.yaml --rows 100 --seed 7 --out - | head\n"
            "  synthc run orders.yaml --out - --format csv > orders.csv"
        ),
    )
    def run_command(
        spec: Annotated[Path, spec_arg],
        out: Annotated[
            str | None,
            typer.Option(
                "--out", "-o", metavar="PATH", show_default=False,
                help="Output file (default: the spec's output.path, relative to the spec file's folder). "
                "`-` streams JSON lines (or CSV with --format csv) to stdout.",
            ),
        ] = None,
        rows: Annotated[int | None, rows_opt] = None,
        seed: Annotated[int | None, seed_opt] = None,
        format: Annotated[
            str | None,
            typer.Option(
                "--format", "-f", metavar="FORMAT", show_default=False,
                help="parquet, csv, json or jsonl (default: from the output path's extension).",
            ),
        ] = None,
        chunk_rows: Annotated[
            int, typer.Option("--chunk-rows", help="Rows generated per chunk (memory, not output).", min=1, metavar="N")
        ] = DEFAULT_CHUNK_ROWS,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")] = False,
        model: Annotated[list[str] | None, model_opt] = None,
        cache: Annotated[Path | None, cache_opt] = None,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the LLM cache: call every cell.")] = False,
        max_cost: Annotated[float | None, typer.Option("--max-cost", metavar="USD", min=0, show_default=False,
            help="Stop calling models once this much is spent (what was answered stays cached).")] = None,
        max_failures: Annotated[str, typer.Option("--max-failures", metavar="N|P%",
            help="Failed LLM cells allowed before the exit code is 1 (a count or a percentage).")] = "0",
        dry_run: Annotated[bool, typer.Option("--dry-run",
            help="Render the prompts, look them up in the cache, report the calls and cost; call nothing.")] = False,
        replay: Annotated[list[Path] | None, typer.Option("--replay", metavar="PACK", show_default=False,
            help="Answer LLM cells from this response pack first (read-only; repeatable).")] = None,
        offline: Annotated[bool, typer.Option("--offline",
            help="Call no model: cells missing from the packs and the cache are an error that names them.")] = False,
        no_lock: Annotated[bool, typer.Option("--no-lock",
            help="Do not write <spec>.lock.json (also: SYNTHC_NO_LOCK=1).")] = False,
        shard: Annotated[str | None, typer.Option("--shard", metavar="K/N", show_default=False,
            help="Write only shard K of N (a Parquet file for `synthc merge`; no lock).")] = None,
        executor: Annotated[str, typer.Option("--executor", metavar="NAME",
            help="local, or ray: run shards as Ray tasks and write a folder of Parquet parts.")] = "local",
        address: Annotated[str | None, typer.Option("--address", metavar="ADDR", show_default=False,
            help="With --executor ray: the cluster to join (default: start a local Ray instance).")] = None,
        shards: Annotated[int | None, typer.Option("--shards", metavar="N", min=1, show_default=False,
            help="With --executor ray: how many shards (default: the cluster's CPUs).")] = None,
    ) -> int:  # fmt: skip
        """Generate the dataset a spec describes and write it, atomically: on failure no
        partial file is left behind. A progress bar shows on a terminal; a one-line
        summary (rows, path, seconds, rows/s) goes to stderr.

        LLM cells are answered from the cache when it holds them, else by the model; each
        answer is committed as it lands, so an interrupted run continues where it stopped.
        Failed cells are null and listed in OUT.errors.jsonl."""
        from synthc.cli_run import LLMFlags, run_spec

        flags = LLMFlags(
            tuple(model or ()),
            cache,
            no_cache,
            max_cost,
            max_failures,
            dry_run,
            tuple(replay or ()),
            offline,
            no_lock,
        )
        if shard is not None or executor != "local":
            from synthc.cli_repro import run_distributed
            from synthc.cli_run import prepared

            _, plan, options = prepared(spec, rows, seed, flags)
            return run_distributed(
                plan, out, format, shard=shard, executor=executor, address=address, shards=shards,
                chunk_rows=chunk_rows, quiet=quiet, llm_options=options,
            )  # fmt: skip
        return run_spec(
            spec, out=out, rows=rows, seed=seed, fmt=format, chunk_rows=chunk_rows, quiet=quiet, flags=flags
        )

    @app.command(
        short_help="Show the first rows as a table; nothing is written.",
        epilog="\b\nExample:\n  synthc preview orders.yaml -n 20 --seed 7",
    )
    def preview(
        spec: Annotated[Path, spec_arg],
        n: Annotated[
            int, typer.Option("-n", "--head", help="How many rows to show.", min=0, metavar="N")
        ] = 10,
        seed: Annotated[int | None, seed_opt] = None,
    ) -> int:
        """Show the first rows of the dataset as a table. Nothing is written.

        The rows are exactly the first rows `synthc run` would write."""
        from synthc.preview import preview_spec

        return preview_spec(spec, n=n, seed=seed)

    cache_app = typer.Typer(
        name="cache", help="Inspect or empty the LLM response cache.", no_args_is_help=True,
        add_completion=False, rich_markup_mode=None,
    )  # fmt: skip
    app.add_typer(cache_app, short_help="Inspect or empty the LLM response cache (stats, clear).")

    @cache_app.command("stats", short_help="Entries, size, models, tokens and cost of the cache.")
    def cache_stats(cache: Annotated[Path | None, cache_opt] = None) -> int:
        """Entries, size, the models that answered, tokens and what the answers cost."""
        from synthc import llm

        console.echo("\n".join(llm.cache_stats_lines(_cache_path(cache))))
        return EXIT_OK

    @cache_app.command("clear", short_help="Remove every cached answer.")
    def cache_clear(cache: Annotated[Path | None, cache_opt] = None) -> int:
        """Remove every cached answer (the next run pays for its calls again)."""
        from synthc import llm

        console.echo(llm.cache_clear(_cache_path(cache)))
        return EXIT_OK

    from synthc.cli_repro import register

    register(app, spec_arg, cache_opt)

    @cache_app.command("merge", short_help="Copy the entries of other caches into one.")
    def cache_merge(
        target: Annotated[
            Path, typer.Argument(metavar="TARGET", help="The cache to merge into (created if missing).")
        ],
        sources: Annotated[
            list[Path], typer.Argument(metavar="SOURCE...", help="Caches to copy from (only read).")
        ],
    ) -> int:
        """Copy the answers of SOURCE caches that TARGET lacks into TARGET (e.g. the caches of
        shards run on different machines). Keys are content addresses: an entry TARGET
        already has is kept, nothing else changes."""
        from synthc import llm

        console.echo(llm.cache_merge(target, sources))
        return EXIT_OK

    @app.command(
        short_help="Print the JSON Schema of the spec language.",
        epilog="\b\nExample:\n  synthc schema > synthc.schema.json",
    )
    def schema() -> int:
        """Print the JSON Schema of the spec language (for editors and check-jsonschema)."""
        return print_schema()

    return app


def _cache_path(cache: Path | None) -> Path:
    from runtime.llm.outcome import default_cache

    return cache if cache is not None else default_cache()


def __getattr__(name: str) -> Any:
    if name == "app":  # `synthc.cli.app`, e.g. for typer's own test runner
        return build_app()
    raise AttributeError(f"module 'synthc.cli' has no attribute {name!r}")


# --------------------------------------------------------------------------- entry points


def _usage(message: str) -> "UsageError":
    from synthc.errors import UsageError

    return UsageError(message)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (without the program name; default ``sys.argv[1:]``)
    and return the exit code. All output goes to ``sys.stdout`` / ``sys.stderr``."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run_typer(args)
    except BaseException as exc:  # the one place errors become exit codes
        return _report(exc)


def _run_typer(args: list[str]) -> int:
    from typer.main import get_command

    command = get_command(build_app())
    with command.make_context("synthc", args) as ctx:
        result = command.invoke(ctx)
    return result if isinstance(result, int) else EXIT_OK


def _report(exc: BaseException) -> int:
    """Print ``exc`` for a person and return its exit code; re-raise anything else (a bug)."""
    from runtime.errors import ExecutionError, OutputError
    from synthc.errors import SpecError, SynthcError, UsageError

    if "typer" in sys.modules:  # only typer's parsing raises these
        from typer import Abort, Exit
        from typer._click.exceptions import ClickException

        if isinstance(exc, Exit):
            return exc.exit_code
        if isinstance(exc, ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, Abort):
            exc = KeyboardInterrupt()
    if isinstance(exc, KeyboardInterrupt):
        console.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    if isinstance(exc, SpecError):
        _report_spec_error(exc)
        return EXIT_ERROR
    if isinstance(exc, SynthcError):
        message = str(exc)
        console.echo(message if message.startswith("error[") else f"error: {message}", err=True)
        return EXIT_USAGE if isinstance(exc, UsageError) else exc.exit_code
    if isinstance(exc, OutputError):
        from synthc.diagnostics import Diagnostic

        console.echo(_render(Diagnostic("output-error", str(exc)), None, err=True), err=True)
        return EXIT_ERROR
    if isinstance(exc, ExecutionError):
        console.echo(f"error: {exc}", err=True)
        return EXIT_ERROR
    if isinstance(exc, BrokenPipeError):  # `synthc run ... --out - | head`: the reader had enough
        _silence_stdout()
        return EXIT_OK
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        console.echo(f"error: {exc.strerror or exc}{where}", err=True)
        return EXIT_ERROR
    raise exc


def _report_spec_error(exc: "SpecError") -> None:
    from synthc.diagnostics import sort_key

    sources: dict[str, str | None] = {}
    diags = sorted(exc.diagnostics, key=sort_key)
    for diag in diags:
        file = diag.span.file if diag.span else None
        if file is not None and file not in sources:
            sources[file] = _read_text(file)
        console.echo(_render(diag, sources.get(file) if file else None, err=True) + "\n", err=True)
    errors = sum(d.severity == "error" for d in diags)
    files = sorted({d.span.file for d in diags if d.span})
    where = f" in {', '.join(files)}" if files else ""
    console.echo(console.style(f"{_plural(errors, 'error')}{where}", "bold red", err=True), err=True)


def _silence_stdout() -> None:
    """After the reader closed the pipe: point stdout at devnull, so the interpreter's
    final flush does not fail again with a traceback."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main() -> int:
    """Console-script entry point (``synthc = synthc.cli:main``).

    Ends the process with ``os._exit`` once every output is written and flushed: the
    interpreter's teardown (freeing each module and the arrays of a large run) costs
    ~0.1 s and does nothing useful here (mypy's command line does the same)."""
    import os
    import signal

    # SIGTERM (timeout, CI, docker stop) unwinds like Ctrl-C: temporary files are removed
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    code = run(sys.argv[1:])
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            _silence_stdout()
    os._exit(code)
