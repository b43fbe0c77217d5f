"""Throughput and memory of time-series generation, against a plain float column.

The series plan: a time index at 1 minute with --entities entities (default 50) over a
year (525,600 timestamps, 26.3M points), and one series column (base, a daily sine,
normal noise, spike anomalies), written to Parquet through ``runtime.execute.run_plan``
(timestamp, sensor_id, value). The baseline: a plan of the same row count with one
float column drawn from a normal distribution (no time index), written the same way.

Every run is its own process (a fresh interpreter); the figure is the in-process time of
``run_plan`` (building the plan and writing included, interpreter start excluded),
median over --repeat interleaved runs. Peak RSS (``ru_maxrss`` of the child, from
``os.wait4``) is measured for 1, 3 and 12 months to show memory is flat in the length.

If the executor cannot run series plans yet (the sampler dispatch not wired), both plans
are driven by the same loop in the child instead (source fields + samplers per chunk of
``DEFAULT_CHUNK_ROWS``, ``runtime.writers.write``), and the report says so.

    uv run python benchmarks/bench_series.py            # the figure: a year, 3 runs
    uv run python benchmarks/bench_series.py --quick    # a smoke run (~10 s)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ENV_NOTE, machine, measure, median, save, shown, table, write_section

TARGET_POINTS_PER_S = 2_000_000
MINUTE_US = 60_000_000
START_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
MONTH_MINUTES = 43_800  # 525,600 / 12
SIZES = {"1 month": MONTH_MINUTES, "3 months": 3 * MONTH_MINUTES, "12 months": 12 * MONTH_MINUTES}


# --------------------------------------------------------------------------- child side


def series_plan(entities: int, periods: int) -> Any:
    """The benchmark's series plan, built by hand from the IR."""
    from runtime.plan import (
        Anomalies,
        Entity,
        Noise,
        Plan,
        RecordField,
        Seasonality,
        SeriesColumn,
        TimeIndex,
    )
    from runtime.shapes.timeindex import index_rows

    ix = TimeIndex(
        start=START_US, periods=periods, step_us=MINUTE_US, entities=(Entity("sensor_id", entities),)
    )
    value = SeriesColumn(
        "value",
        base=20.0,
        seasonality=(Seasonality(period_us=1440 * MINUTE_US, amplitude=5.0),),
        noise=Noise(sd=1.0),
        anomalies=(Anomalies("spike", rate=0.001, scale=6.0),),
    )
    columns = (RecordField("timestamp"), RecordField("sensor_id"), value)
    return Plan("bench-series", 1, index_rows(ix), 0, columns, tuple(c.name for c in columns), source=ix)


def baseline_plan(rows: int) -> Any:
    """A plain plan of ``rows`` rows with one normal float column."""
    from runtime.plan import Dist, NumberColumn, Plan

    col = NumberColumn("value", "float", Dist("normal", (("mean", 20.0), ("sd", 1.0))))
    return Plan("bench-baseline", 1, rows, 0, (col,), ("value",))


def own_loop(plan: Any, out: Path) -> None:
    """A plan driven chunk by chunk here (for an executor not wired for series yet):
    the source's fields, then each sampled column, written by ``runtime.writers``."""
    import polars as pl

    from runtime.defaults import DEFAULT_CHUNK_ROWS
    from runtime.plan import SeriesColumn, plan_hash
    from runtime.samplers import sample
    from runtime.samplers.base import Chunk
    from runtime.samplers.series import sample_series
    from runtime.shapes.timeindex import index_frame
    from runtime.writers import write

    def frames() -> Iterator[Any]:
        memo: dict[Any, Any] = {}
        for start in range(0, plan.rows, DEFAULT_CHUNK_ROWS):
            stop = min(start + DEFAULT_CHUNK_ROWS, plan.rows)
            frame = pl.DataFrame()
            if plan.source is not None:
                frame = index_frame(plan.source, plan.seed, start, stop, memo)
            for col in plan.columns:
                if col.name not in frame.columns:
                    chunk = Chunk(plan.seed, start, stop, frame, source=plan.source, memo=memo)
                    values = (
                        sample_series(col, chunk) if isinstance(col, SeriesColumn) else sample(col, chunk)
                    )
                    frame = pl.DataFrame([*frame.get_columns(), values])
            yield frame

    write(frames(), out, "parquet", metadata={"synthc.plan_hash": plan_hash(plan)})


def run_child(kind: str, entities: int, periods: int, out: Path, driver: str) -> dict[str, Any]:
    """Generate one plan to ``out``; seconds from building the plan to the written file."""
    started = time.perf_counter()
    plan = series_plan(entities, periods)
    if kind == "baseline":
        plan = baseline_plan(plan.rows)
    if driver == "own loop":
        own_loop(plan, out)
    else:
        from runtime.execute import run_plan

        run_plan(plan, out, "parquet")
    return {"seconds": time.perf_counter() - started, "rows": plan.rows}


def executor_runs_series() -> bool:
    """Whether ``run_plan`` executes a (tiny) series plan and gives the expected columns."""
    import polars as pl

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "probe.parquet"
        try:
            from runtime.execute import run_plan

            run_plan(series_plan(2, 3), out, "parquet")
        except Exception:  # any failure means "not wired yet"
            return False
        return pl.read_parquet(out).columns == ["timestamp", "sensor_id", "value"]


# --------------------------------------------------------------------------- parent side


def one_run(kind: str, entities: int, periods: int, tmp: Path, driver: str) -> dict[str, Any]:
    out = tmp / f"{kind}.parquet"
    argv = [sys.executable, __file__, "--child", kind, "--entities", str(entities)]
    m = measure([*argv, "--periods", str(periods), "--out", str(out), "--driver", driver])
    child = json.loads(m.stdout)
    return {**child, "wall_s": m.wall_s, "max_rss_mib": m.max_rss_kib / 1024, "bytes": out.stat().st_size}


def measure_series(entities: int, sizes: dict[str, int], repeat: int) -> dict[str, Any]:
    """Interleaved runs: series and baseline at the largest size (``repeat`` each), and
    the series at every size for peak RSS (the largest size reuses the runs above)."""
    driver = "run_plan" if executor_runs_series() else "own loop"
    largest = max(sizes.values())
    runs: dict[str, list[dict[str, Any]]] = {"series": [], "baseline": []}
    memory: dict[str, list[dict[str, Any]]] = {label: [] for label in sizes}
    with tempfile.TemporaryDirectory(prefix="synthc-bench-") as tmpdir:
        tmp = Path(tmpdir)
        one_run("series", entities, 60, tmp, driver)  # warm-up: bytecode and page caches
        for _ in range(repeat):
            for kind in ("series", "baseline"):
                runs[kind].append(one_run(kind, entities, largest, tmp, driver))
            for label, periods in sizes.items():
                if periods != largest:
                    memory[label].append(one_run("series", entities, periods, tmp, driver))
        memory[next(k for k, v in sizes.items() if v == largest)] = runs["series"]
    rows = entities * largest
    rate = {kind: rows / median([r["seconds"] for r in rs]) for kind, rs in runs.items()}
    return {
        "entities": entities,
        "periods": largest,
        "points": rows,
        "repeat": repeat,
        "driver": driver,
        "median_s": {kind: median([r["seconds"] for r in rs]) for kind, rs in runs.items()},
        "median_wall_s": {kind: median([r["wall_s"] for r in rs]) for kind, rs in runs.items()},
        "points_per_s": rate,
        "ratio": rate["series"] / rate["baseline"],
        "memory": {
            label: {
                "periods": sizes[label],
                "points": entities * sizes[label],
                "max_rss_mib": median([r["max_rss_mib"] for r in rs]),
                "seconds": median([r["seconds"] for r in rs]),
            }
            for label, rs in memory.items()
        },
        "runs": runs,
    }


def series_markdown(data: dict[str, Any], level: str = "##") -> str:
    points, rate = data["points"], data["points_per_s"]
    met = "met" if rate["series"] >= TARGET_POINTS_PER_S else "NOT met"
    main = [
        [kind, f"{data['median_s'][kind]:.2f}", f"{data['median_wall_s'][kind]:.2f}", f"{rate[kind]:,.0f}"]
        for kind in ("series", "baseline")
    ]
    mem = [
        [label, f"{m['points']:,}", f"{m['seconds']:.2f}", f"{m['max_rss_mib']:.0f}"]
        for label, m in data["memory"].items()
    ]
    return "\n".join(
        [
            f"{level} Time series: {data['entities']} entities x {data['periods']:,} timestamps "
            f"at 1 min ({points:,} points) to Parquet",
            "",
            table(["plan", "median s (in process)", "median wall s (process)", "points/s"], main),
            "",
            f"- series / baseline (points/s): {data['ratio']:.2f}x; target >= "
            f"{TARGET_POINTS_PER_S:,} points/s: {met}",
            "- series: timestamp, sensor_id and one series column (base, daily sine, normal noise, "
            "spikes at rate 0.001); baseline: one normal float column, same row count, no index",
            f"- driver: {data['driver']}; median of {data['repeat']} interleaved runs, each a fresh process",
            "",
            table(["length", "points", "median s", "peak RSS MiB"], mem),
            "",
            f"- {ENV_NOTE}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entities", type=int, default=50, help="entities (default 50)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians are reported (default 3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 entities, 1 run")
    parser.add_argument("--child", choices=["series", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--periods", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, help="replace (or append) this section in a markdown file")
    parser.add_argument("--driver", default="run_plan", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:  # child mode: generate and report the in-process seconds
        print(json.dumps(run_child(args.child, args.entities, args.periods, Path(args.out), args.driver)))
        return

    entities, repeat = (5, 1) if args.quick else (args.entities, args.repeat)
    data = measure_series(entities, SIZES, repeat)
    md = series_markdown(data)
    path = save("series", {**data, "machine": machine()}, md)
    print(md)
    print(f"\nwritten to {shown(path)} (and .json)")
    if args.results is not None:
        write_section(args.results, "## Time series", md)
        print(f"section '## Time series' written to {args.results}")


if __name__ == "__main__":
    main()
