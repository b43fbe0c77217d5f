"""Peak memory of `synthc run` as the row count grows: it should stay flat.

Runs the 8-column spec (benchmarks/specs/eight_columns.yaml) at 1M, 3M and 10M rows
to Parquet, each as its own process with the plan cache warm, and reports the child's
peak RSS (``ru_maxrss`` from ``os.wait4``, the figure ``/usr/bin/time -v`` prints as
"Maximum resident set size") and wall time, medians over --repeat runs.

    uv run python benchmarks/bench_memory.py                       # 1M, 3M, 10M rows
    uv run python benchmarks/bench_memory.py --rows 10000 30000    # smoke
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EIGHT_COLUMNS, ENV_NOTE, machine, measure, median, save, shown, synthc_command, table

TARGET_MIB = 1024
FLAT = 1.25  # "flat": the largest size's peak RSS within this factor of the smallest's


def measure_memory(sizes: list[int] | None = None, repeat: int = 3) -> dict[str, Any]:
    sizes = sizes or [1_000_000, 3_000_000, 10_000_000]
    results = []
    with tempfile.TemporaryDirectory(prefix="synthc-bench-") as tmpdir:
        tmp = Path(tmpdir)
        cache = tmp / "cache"
        base = [*synthc_command(), "run", str(EIGHT_COLUMNS), "--quiet", "--out", str(tmp / "out.parquet")]
        measure([*base, "--rows", "1000"], cache_dir=cache)  # warm-up: plan cache, bytecode caches
        runs: dict[int, list[Any]] = {rows: [] for rows in sizes}
        for _ in range(repeat):  # interleaved
            for rows in sizes:
                runs[rows].append(measure([*base, "--rows", str(rows)], cache_dir=cache))
        for rows in sizes:
            rss = median([r.max_rss_kib for r in runs[rows]]) / 1024
            wall = median([r.wall_s for r in runs[rows]])
            results.append(
                {
                    "rows": rows,
                    "max_rss_mib": rss,
                    "wall_s": wall,
                    "rows_per_s": rows / wall,
                    "runs": [{"max_rss_mib": r.max_rss_kib / 1024, "wall_s": r.wall_s} for r in runs[rows]],
                }
            )
    return {"results": results, "repeat": repeat}


def memory_markdown(data: dict[str, Any], level: str = "##") -> str:
    results = data["results"]
    smallest = results[0]["max_rss_mib"]
    largest = results[-1]["max_rss_mib"]
    growth = largest / smallest
    rows_growth = results[-1]["rows"] / results[0]["rows"]
    return "\n".join(
        [
            f"{level} Peak RSS of `synthc run` (8 columns to Parquet)",
            "",
            table(
                ["rows", "peak RSS MiB", "vs smallest", "wall s", "rows/s"],
                [
                    [f"{r['rows']:,}", f"{r['max_rss_mib']:.0f}", f"{r['max_rss_mib'] / smallest:.2f}×",
                     f"{r['wall_s']:.2f}", f"{r['rows_per_s']:,.0f}"]
                    for r in results
                ],
            ),
            "",
            f"- peak RSS is the child's own ru_maxrss (os.wait4); median of {data['repeat']} run(s) per size, "
            "plan cache warm",
            f"- target ≤ 1 GiB at {results[-1]['rows']:,} rows: "
            f"{'met' if max(r['max_rss_mib'] for r in results) <= TARGET_MIB else 'NOT met'} ({largest:.0f} MiB)",
            f"- flat: {'yes' if growth <= FLAT else 'NO'} — {rows_growth:.0f}× the rows, {growth:.2f}× the peak RSS "
            f"(flat means ≤ {FLAT}×)",
            f"- {ENV_NOTE}",
        ]
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per size; medians are reported (default 3)"
    )
    args = parser.parse_args()
    data = measure_memory(args.rows, args.repeat)
    md = memory_markdown(data)
    path = save("memory", {**data, "machine": machine()}, md)
    print(md)
    print(f"\nwritten to {shown(path)} (and .json)")


if __name__ == "__main__":
    main()
