"""The Ray executor against a single process: the 8-column sampler spec, 10,000,000 rows
to Parquet, `synthc run --executor ray --shards 2` on a local Ray instance (2 workers)
against `synthc run` in one process, measured in the same run, each a fresh process.

The point is correctness and scale-out, shown by identical content hashes of the rows;
on a 2-core machine the ratio is expected near 1x (Ray's start-up included).

    uv run python benchmarks/bench_ray.py --results benchmarks/RESULTS.md
    uv run python benchmarks/bench_ray.py --quick
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    EIGHT_COLUMNS,
    ENV_NOTE,
    machine,
    measure,
    median,
    save,
    shown,
    synthc_command,
    table,
    write_section,
)

HEADING = "## Ray executor"


def content_of(paths: list[Path]) -> str:
    import polars as pl

    from runtime.contenthash import content_hash

    return content_hash(pl.read_parquet(p) for p in paths).total


def _ray(*args: str) -> None:
    import os
    import subprocess

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run(
        [str(Path(sys.executable).parent / "ray"), *args], env=env, check=True, capture_output=True
    )


def start_cluster() -> str:
    """A local Ray cluster with 2 CPUs, started outside the measured commands."""
    _ray(
        "start",
        "--head",
        "--num-cpus",
        "2",
        "--port",
        "6399",
        "--include-dashboard",
        "false",
        "--disable-usage-stats",
    )
    return "auto"  # this machine's running cluster


def stop_cluster() -> None:
    _ray("stop", "--force")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows (default 10,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians are reported (default 3)")
    parser.add_argument("--quick", action="store_true", help="200,000 rows, 1 repetition")
    parser.add_argument("--results", type=Path, help="replace (or append) this section in a markdown file")
    args = parser.parse_args()
    rows, repeat = (200_000, 1) if args.quick else (args.rows, args.repeat)
    work = Path(tempfile.mkdtemp(prefix="synthc-bench-ray-"))
    try:
        single_out, ray_out = work / "single.parquet", work / "ray"
        single_cmd = [*synthc_command(), "run", str(EIGHT_COLUMNS), "--rows", str(rows), "--out", str(single_out),
                      "--quiet"]  # fmt: skip
        ray_cmd = [*synthc_command(), "run", str(EIGHT_COLUMNS), "--rows", str(rows), "--executor", "ray",
                   "--shards", "2", "--out", str(ray_out), "--quiet"]  # fmt: skip
        measure(single_cmd, work / "cache")  # warm-up (plan cache, bytecode)
        singles, rays, joined = [], [], []
        for _ in range(repeat):
            singles.append(measure(single_cmd, work / "cache"))
            rays.append(measure(ray_cmd, work / "cache"))
        same = content_of([single_out]) == content_of(sorted(ray_out.glob("*.parquet")))
        # the same on a Ray cluster that is already running (what --address is for)
        address = start_cluster()
        try:
            for _ in range(repeat):
                joined.append(measure([*ray_cmd, "--address", address], work / "cache"))
        finally:
            stop_cluster()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    s, r = median([m.wall_s for m in singles]), median([m.wall_s for m in rays])
    j = median([m.wall_s for m in joined])
    md = "\n".join([
        f"{HEADING}: 8 columns, {rows:,} rows to Parquet, 2 local workers vs one process",
        "",
        table(["run", "median wall s", "rows/s", "peak RSS MiB (driver)"], [
            ["`synthc run` (one process)", f"{s:.2f}", f"{rows / s:,.0f}", f"{median([m.max_rss_kib for m in singles]) / 1024:.0f}"],
            ["`synthc run --executor ray --shards 2`", f"{r:.2f}", f"{rows / r:,.0f}", f"{median([m.max_rss_kib for m in rays]) / 1024:.0f}"],
            ["... `--address` of a running local cluster (2 CPUs)", f"{j:.2f}", f"{rows / j:,.0f}", f"{median([m.max_rss_kib for m in joined]) / 1024:.0f}"],
        ]),
        "",
        f"- ray / single (rows/s): {s / r:.2f}x starting Ray, {s / j:.2f}x joining a running cluster; "
        f"identical content hash of the rows: {'yes' if same else 'NO'}",
        f"- median of {repeat} interleaved runs; Ray's start-up (a local instance, 2 CPUs) is included; "
        "the driver's RSS does not count the Ray workers",
        f"- {ENV_NOTE}",
    ])  # fmt: skip
    path = save(
        "ray", {"rows": rows, "single": s, "ray": r, "joined": j, "same": same, "machine": machine()}, md
    )
    print(md)
    print(f"\nwritten to {shown(path)} (and .json)")
    if args.results is not None:
        write_section(args.results, HEADING, md)
    if not same:
        sys.exit("the Ray run's rows differ from the single run's")


if __name__ == "__main__":
    main()
