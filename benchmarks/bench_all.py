"""Every figure of issue 2 in one run: throughput (synthc cold and warm, Faker, Mimesis),
peak RSS at three sizes, and `synthc check` latency cold and warm — one after another,
never in parallel — written as one markdown report.

    uv run python benchmarks/bench_all.py --results benchmarks/RESULTS.md   # the full run (minutes)
    uv run python benchmarks/bench_all.py --smoke                            # seconds; small sizes

The report goes to --results (default benchmarks/out/RESULTS.md, git-ignored) and the raw
numbers to benchmarks/out/all.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, machine, shown
from bench_check import TARGET_S, check_markdown, measure_check
from bench_memory import measure_memory, memory_markdown
from bench_sampler import measure_throughput, throughput_markdown


def headline(throughput: dict[str, Any], memory: dict[str, Any], check: dict[str, Any]) -> str:
    rate = throughput["rows_per_s"]
    rows = throughput["rows"]
    lines = [
        f"- `synthc run`, 8 columns, {rows:,} rows to Parquet, process start included: "
        f"**{rate['synthc warm']:,.0f} rows/s warm**, **{rate['synthc cold']:,.0f} rows/s cold** "
        "(spec compiled from scratch)"
    ]
    for name in ("faker", "mimesis"):
        if name in rate:
            lines.append(
                f"- vs {name.title()} ({rate[name]:,.0f} rows/s): "
                f"{rate['synthc warm'] / rate[name]:.1f}× warm, {rate['synthc cold'] / rate[name]:.1f}× cold"
            )
    mem = memory["results"]
    lines.append(
        "- peak RSS: "
        + ", ".join(f"{r['max_rss_mib']:.0f} MiB at {r['rows']:,} rows" for r in mem)
        + f" ({mem[-1]['max_rss_mib'] / mem[0]['max_rss_mib']:.2f}× for {mem[-1]['rows'] / mem[0]['rows']:.0f}× the rows)"
    )
    checks = check["results"]
    lines.append(
        f"- `synthc check` per example (target ≤ {TARGET_S} s): cold "
        f"{min(r['cold_median_s'] for r in checks):.2f}–{max(r['cold_median_s'] for r in checks):.2f} s, warm "
        f"{min(r['warm_median_s'] for r in checks):.2f}–{max(r['warm_median_s'] for r in checks):.2f} s"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the throughput figure")
    parser.add_argument("--repeat", type=int, default=5, help="throughput repetitions (default 5)")
    parser.add_argument(
        "--baseline-rows",
        type=int,
        default=100_000,
        help="rows Faker/Mimesis really generate (default 100,000)",
    )
    parser.add_argument(
        "--memory-rows",
        type=int,
        nargs="+",
        default=[1_000_000, 3_000_000, 10_000_000],
        help="sizes for peak RSS",
    )
    parser.add_argument("--memory-repeat", type=int, default=3, help="runs per memory size (default 3)")
    parser.add_argument(
        "--check-repeat", type=int, default=10, help="runs per example and state (default 10)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and one repetition: a quick test")
    parser.add_argument("--results", type=Path, default=OUT / "RESULTS.md", help="where the markdown goes")
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.repeat, args.baseline_rows = 50_000, 1, 2_000
        args.memory_rows, args.memory_repeat, args.check_repeat = [10_000, 30_000], 1, 1

    started = time.perf_counter()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    facts = machine()
    load_before = os.getloadavg()
    print("throughput ...", file=sys.stderr, flush=True)
    throughput = measure_throughput(args.rows, args.repeat, args.baseline_rows)
    print("memory ...", file=sys.stderr, flush=True)
    memory = measure_memory(args.memory_rows, args.memory_repeat)
    print("check ...", file=sys.stderr, flush=True)
    check = measure_check(None, args.check_repeat)
    elapsed = time.perf_counter() - started

    load_after = os.getloadavg()
    python = Path(sys.executable)
    shown_python = (
        f"{python.parent.parent.name}/bin/{python.name}" if python.parent.name == "bin" else "python"
    )
    command = shlex.join([shown_python, shown(Path(__file__)), *sys.argv[1:]])
    packages = ", ".join(f"{k} {v}" for k, v in facts["packages"].items())  # type: ignore[attr-defined]
    dirty = facts["git_dirty"]
    md = "\n".join(
        [
            "# Benchmark results",
            "",
            f"Measured {when} in one run of `{command}` ({elapsed / 60:.1f} min), from the "
            f"repository root, on commit `{facts['git_commit'] or 'unknown'}`"
            + (
                f" with uncommitted changes to {', '.join(f'`{d.split()[-1]}`' for d in dirty)}."
                if dirty
                else "."
            ),  # type: ignore[union-attr]
            "The three parts ran one after another, never in parallel. Load average (1, 5, 15 min) "
            f"before: {', '.join(f'{x:.2f}' for x in load_before)}; after: "
            f"{', '.join(f'{x:.2f}' for x in load_after)}.",
            "",
            "## Headline",
            "",
            headline(throughput, memory, check),
            "",
            "## Machine",
            "",
            "```console",
            "$ nproc",
            str(facts["nproc"]),
            "$ lscpu | head",
            *facts["lscpu_head"],  # type: ignore[misc]
            "```",
            "",
            f"Python {facts['python']} on {facts['platform']}; {packages}.",
            "",
            "## Commands",
            "",
            "```sh",
            command,
            "# the same figures one at a time (uv run python = .venv/bin/python):",
            f"uv run python benchmarks/bench_sampler.py --rows {args.rows} --repeat {args.repeat} "
            f"--baseline-rows {args.baseline_rows}",
            f"uv run python benchmarks/bench_memory.py --rows {' '.join(map(str, args.memory_rows))} "
            f"--repeat {args.memory_repeat}",
            f"uv run python benchmarks/bench_check.py --repeat {args.check_repeat}",
            "```",
            "",
            throughput_markdown(throughput),
            "",
            memory_markdown(memory),
            "",
            check_markdown(check),
        ]
    )
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(md + "\n", encoding="utf-8")
    OUT.mkdir(parents=True, exist_ok=True)
    raw = {
        "throughput": throughput,
        "memory": memory,
        "check": check,
        "machine": facts,
        "date": when,
        "loadavg": {"before": load_before, "after": load_after},
    }
    (OUT / "all.json").write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    print(md)
    print(f"\nwritten to {shown(args.results)} (raw numbers in {shown(OUT / 'all.json')})")


if __name__ == "__main__":
    main()
