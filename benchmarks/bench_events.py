"""Throughput of an event stream: a diurnal Poisson process to Parquet, end to end.

The event plan (built by hand from the IR, as the compiler would lower it): an
``Arrivals`` source over one day in America/New_York with a diurnal profile and
``--events`` expected events, its fields ``timestamp`` and ``user`` (an entity of 1,000
keys), and four sampler columns (category, lognormal float rounded to 2 places, uuid,
uniform int). The baseline is a plain plan with the same row count: a uniform
``datetime`` column (TimeColumn) and an int column standing in for the entity key,
plus the same four sampler columns. Both go through ``runtime.execute.run_plan`` to
Parquet, each run a separate process; rows/s uses the in-process seconds of
``run_plan`` (the table also shows whole-process wall time).

    uv run python benchmarks/bench_events.py            # 10,000,000 events, 3 repetitions
    uv run python benchmarks/bench_events.py --quick    # 200,000 events, 1 repetition
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ENV_NOTE, machine, measure, median, save, shown, table, write_section

TARGET_EVENTS_PER_S = 2_000_000
DAY_US = 86_400 * 1_000_000
START_US = 1_704_067_200 * 1_000_000  # 2024-01-01T00:00:00Z
SEED = 1


def arrivals(events: int) -> Any:
    from runtime.plan import Arrivals, Entity, Profile
    from runtime.shapes.arrivals import bucket_us_for

    rate = events / 86_400
    end = START_US + DAY_US
    return Arrivals(
        rate=rate,
        start=START_US,
        end=end,
        bucket_us=bucket_us_for(rate, START_US, end),
        profile=Profile(kind="diurnal"),
        timezone="America/New_York",
        entities=(Entity("user", 1000),),
    )


def sampler_columns() -> tuple[Any, ...]:
    """The four sampler columns both plans share."""
    from runtime.plan import CategoryColumn, Choice, Dist, NumberColumn, UUIDColumn

    return (
        CategoryColumn("plan", (Choice(None, ("free", "pro", "enterprise"), (0.6, 0.3, 0.1)),)),
        NumberColumn("amount", "float", Dist("lognormal", (("mu", 3.0), ("sigma", 0.5))), round=2),
        UUIDColumn("event_id"),
        NumberColumn("quantity", "int", Dist("uniform", ()), min=1, max=10),
    )


def event_plan(events: int) -> Any:
    from runtime.plan import Plan, RecordField
    from runtime.shapes.arrivals import arrival_rows

    source = arrivals(events)
    columns = (RecordField("timestamp"), RecordField("user"), *sampler_columns())
    return Plan(
        name="bench-events",
        seed=SEED,
        rows=arrival_rows(source, SEED),
        as_of=START_US + DAY_US,
        columns=columns,
        column_order=tuple(c.name for c in columns),
        source=source,
    )


def baseline_plan(rows: int) -> Any:
    from runtime.plan import Dist, NumberColumn, Plan, TimeColumn

    columns = (
        TimeColumn("timestamp", "datetime", START_US, START_US + DAY_US - 1),
        NumberColumn("user", "int", Dist("uniform", ()), min=1, max=1000),
        *sampler_columns(),
    )
    return Plan(
        name="bench-events-baseline",
        seed=SEED,
        rows=rows,
        as_of=START_US + DAY_US,
        columns=columns,
        column_order=tuple(c.name for c in columns),
    )


def child(kind: str, events: int, out: str) -> dict[str, float]:
    """Build the plan and run it; the seconds of the run (plan building included for the
    event plan, since counting the events is part of its work) and its row count."""
    from runtime.execute import run_plan

    started = time.perf_counter()
    plan = event_plan(events)
    if kind == "baseline":  # the same row count as the event stream
        plan = baseline_plan(plan.rows)
        started = time.perf_counter()
    result = run_plan(plan, out)
    return {"seconds": time.perf_counter() - started, "rows": float(result.rows)}


def measure_events(events: int, repeat: int) -> dict[str, Any]:
    """Interleaved repetitions of the event plan and the baseline; raw runs and medians."""
    runs: dict[str, list[dict[str, float]]] = {"events": [], "baseline": []}
    with tempfile.TemporaryDirectory(prefix="synthc-bench-events-") as tmpdir:
        out = str(Path(tmpdir) / "out.parquet")

        def one(kind: str) -> dict[str, float]:
            m = measure([sys.executable, __file__, "--child", kind, "--events", str(events), "--out", out])
            return {**json.loads(m.stdout), "wall_s": m.wall_s, "max_rss_kib": float(m.max_rss_kib)}

        for kind in runs:  # warm-up: bytecode and page caches
            one(kind)
        for _ in range(repeat):
            for kind, rs in runs.items():
                rs.append(one(kind))
    rows = {kind: rs[0]["rows"] for kind, rs in runs.items()}
    return {
        "events": events,
        "repeat": repeat,
        "rows": rows,
        "median_s": {kind: median([r["seconds"] for r in rs]) for kind, rs in runs.items()},
        "median_wall_s": {kind: median([r["wall_s"] for r in rs]) for kind, rs in runs.items()},
        "runs": runs,
    }


def events_markdown(data: dict[str, Any]) -> str:
    rate = {kind: data["rows"][kind] / s for kind, s in data["median_s"].items()}
    lines = [
        [
            kind,
            f"{data['rows'][kind]:,.0f}",
            f"{data['median_s'][kind]:.2f}",
            f"{rate[kind]:,.0f}",
            f"{data['median_wall_s'][kind]:.2f}",
            f"{max(r['max_rss_kib'] for r in data['runs'][kind]) / 1024:,.0f}",
        ]
        for kind in rate
    ]
    met = "met" if rate["events"] >= TARGET_EVENTS_PER_S else "NOT met"
    return "\n".join(
        [
            f"## Event stream: {data['rows']['events']:,.0f} events (diurnal) + 4 columns to Parquet",
            "",
            table(["plan", "rows", "median run_plan s", "rows/s", "median wall s", "peak RSS MiB"], lines),
            "",
            f"- events / baseline (rows/s): {rate['events'] / rate['baseline']:.2f}×",
            f"- target ≥ {TARGET_EVENTS_PER_S:,} events/s: {met}"
            + (
                ""
                if data["events"] == 10_000_000
                else " (defined at 10,000,000 events; this run used another size)"
            ),
            f"- median of {data['repeat']} interleaved repetitions; rows/s = rows / median seconds of "
            "`run_plan` in the child (the event plan's seconds include counting its events)",
            "- events: Arrivals source (1 day, America/New_York, diurnal, entity `user` of 1,000 keys) "
            "+ category, lognormal float, uuid, uniform int; baseline: the same row count with a "
            "TimeColumn, an int standing in for `user`, and the same four columns",
            f"- {ENV_NOTE}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000, help="expected events (default 10,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians are reported (default 3)")
    parser.add_argument("--quick", action="store_true", help="200,000 events, 1 repetition")
    parser.add_argument("--child", choices=["events", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, help="replace (or append) this section in a markdown file")
    args = parser.parse_args()

    if args.child:  # child mode: run one plan and report the in-process seconds
        print(json.dumps(child(args.child, args.events, args.out)))
        return
    events, repeat = (200_000, 1) if args.quick else (args.events, args.repeat)
    data = measure_events(events, repeat)
    md = events_markdown(data)
    path = save("events", {**data, "machine": machine()}, md)
    print(md)
    print(f"\nwritten to {shown(path)} (and .json)")
    if args.results is not None:
        write_section(args.results, "## Event stream", md)
        print(f"section '## Event stream' written to {args.results}")


if __name__ == "__main__":
    main()
