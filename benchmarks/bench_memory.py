"""Peak memory of `synthc run` as the row count grows: it should stay flat.

Runs the 8-column spec (benchmarks/specs/eight_columns.yaml) at 1M, 3M and 10M rows
to Parquet, each as its own process, and reports the child's peak RSS (``ru_maxrss``
from ``os.wait4``, the same figure ``/usr/bin/time -v`` prints) and wall time.

    uv run python benchmarks/bench_memory.py                       # 1M, 3M, 10M rows
    uv run python benchmarks/bench_memory.py --rows 10000 30000    # smoke
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EIGHT_COLUMNS, ENV_NOTE, machine, measure, median, save, synthc_command, table

GIB_KIB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per size; medians are reported (default 1)"
    )
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="synthc-bench-") as tmpdir:
        out = Path(tmpdir) / "out.parquet"
        base = [*synthc_command(), "run", str(EIGHT_COLUMNS), "--quiet", "--out", str(out)]
        measure([*base, "--rows", "1000"])  # warm-up (bytecode caches)
        for rows in args.rows:
            runs = [measure([*base, "--rows", str(rows)]) for _ in range(args.repeat)]
            rss = median([r.max_rss_kib for r in runs])
            wall = median([r.wall_s for r in runs])
            results.append(
                {"rows": rows, "max_rss_mib": rss / 1024, "wall_s": wall, "rows_per_s": rows / wall}
            )

    smallest = results[0]["max_rss_mib"]
    largest = max(r["max_rss_mib"] for r in results)
    md = "\n".join(
        [
            "## Peak RSS of `synthc run` (8 columns to Parquet)",
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
            f"- peak RSS is the child's ru_maxrss (os.wait4); median of {args.repeat} run(s) per size",
            f"- target ≤ 1 GiB at the largest size: {'met' if largest * 1024 <= GIB_KIB else 'NOT met'} "
            f"({largest:.0f} MiB)",
            f"- {ENV_NOTE}",
        ]
    )  # fmt: skip
    path = save("memory", {"results": results, "repeat": args.repeat, "machine": machine()}, md)
    print(md)
    print(f"\nwritten to {path.relative_to(path.parent.parent.parent)} (and .json)")


if __name__ == "__main__":
    main()
