"""`synthc verify` against a fully cached `synthc run` of the same spec (issue 5): 1,000,000
rows with one LLM column of about 100,000 cached cells (benchmarks/specs/verify_mixed.yaml).

Set-up (not measured): the cache is filled through the real LLM run with an in-process
transport that answers every call at once (no network), then `synthc pack` writes the
response pack. Measured, each a fresh process, interleaved: `synthc run` (every cell from
the cache, Parquet written, lock written) and `synthc verify` (offline, from the pack and
the cache read-only; no file written). Target: verify <= 2x the cached run.

    uv run python benchmarks/bench_verify.py --results benchmarks/RESULTS.md
    uv run python benchmarks/bench_verify.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    ENV_NOTE,
    ROOT,
    machine,
    measure,
    median,
    save,
    shown,
    synthc_command,
    table,
    write_section,
)

SPEC = ROOT / "benchmarks" / "specs" / "verify_mixed.yaml"
HEADING = "## Verify"


class InstantTransport:
    """Answers every call at once, in-process: fills a cache without a network."""

    async def complete(self, request: Any) -> Any:
        from runtime.llm.transport import Completion

        await asyncio.sleep(0)
        text = "About " + str(request.messages[-1]["content"])[-12:]
        return Completion(text, request.model, "stop", 10, 5, None)


def fill_cache(spec: Path, cache: Path, rows: int) -> int:
    from runtime.execute import execute, sample_column
    from runtime.llm.outcome import LLMOptions
    from runtime.llm.run import LLMRun
    from synthc import api

    plan = api.with_overrides(api.compile(path=spec), rows=rows)
    with LLMRun(plan, LLMOptions(cache=cache, transport=InstantTransport()), sample_column) as run:
        for _ in execute(plan, llm=run):
            pass
        return sum(t.called + t.cached for t in run.tallies.values())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians are reported (default 3)")
    parser.add_argument("--quick", action="store_true", help="50,000 rows, 1 repetition")
    parser.add_argument("--results", type=Path, help="replace (or append) this section in a markdown file")
    args = parser.parse_args()
    rows, repeat = (50_000, 1) if args.quick else (args.rows, args.repeat)
    work = Path(tempfile.mkdtemp(prefix="synthc-bench-verify-"))
    try:
        spec = work / "mixed.yaml"
        spec.write_text(SPEC.read_text().replace("rows: 1000000", f"rows: {rows}"))
        cache = work / "cache.db"
        cells = fill_cache(spec, cache, rows)
        synthc = synthc_command()
        run_cmd = [
            *synthc,
            "run",
            str(spec),
            "--out",
            str(work / "mixed.parquet"),
            "--cache",
            str(cache),
            "--quiet",
        ]
        measure(run_cmd, work / "plans", lock=True)  # warm-up; writes the lock
        measure([*synthc, "pack", str(spec), "--cache", str(cache)], work / "plans")
        verify_cmd = [*synthc, "verify", str(spec), "--cache", str(cache)]
        runs, verifies = [], []
        for _ in range(repeat):
            runs.append(measure(run_cmd, work / "plans", lock=True))
            verifies.append(measure(verify_cmd, work / "plans"))
        verdict = verifies[-1].stdout.strip()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r, v = median([m.wall_s for m in runs]), median([m.wall_s for m in verifies])
    md = "\n".join([
        f"{HEADING}: {rows:,} rows with {cells:,} cached LLM cells, `synthc verify` vs a fully cached `synthc run`",
        "",
        table(["command", "median wall s", "peak RSS MiB"], [
            ["`synthc run` (all cells cached; Parquet + lock)", f"{r:.2f}", f"{median([m.max_rss_kib for m in runs]) / 1024:.0f}"],
            ["`synthc verify` (offline: pack, then cache read-only)", f"{v:.2f}", f"{median([m.max_rss_kib for m in verifies]) / 1024:.0f}"],
        ]),
        "",
        f"- verify / run: {v / r:.2f}x (target <= 2x: {'met' if v <= 2 * r else 'NOT met'}); verify said: `{verdict}`",
        f"- median of {repeat} interleaved runs; verify streams the rows through the content hash (it "
        "regenerates a second time, keeping the rows, only after a mismatch)",
        f"- {ENV_NOTE}",
    ])  # fmt: skip
    path = save("verify", {"rows": rows, "cells": cells, "run": r, "verify": v, "machine": machine()}, md)
    print(md)
    print(f"\nwritten to {shown(path)} (and .json)")
    if args.results is not None:
        write_section(args.results, HEADING, md)


if __name__ == "__main__":
    main()
