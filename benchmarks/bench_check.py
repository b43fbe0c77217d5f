"""Wall time of `synthc check` on every example, process start included, plan cache
COLD (a fresh, empty SYNTHC_CACHE_DIR for every run: the spec is loaded, validated,
resolved, lowered and its expressions typed by Polars) and WARM (the plan cache holds
the spec: no YAML, no jsonschema, no Polars is imported).

The target is ≤ 0.3 s per example on the 2-core CI machine.

    uv run python benchmarks/bench_check.py               # median of 10 per example and state
    uv run python benchmarks/bench_check.py --repeat 1    # smoke
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    ENV_NOTE,
    ROOT,
    fresh_dir,
    machine,
    measure,
    median,
    remove,
    save,
    shown,
    synthc_command,
    table,
)

TARGET_S = 0.3


def measure_check(specs: list[Path] | None = None, repeat: int = 10) -> dict[str, Any]:
    specs = specs or sorted((ROOT / "examples").glob("*.yaml"))
    results = []
    with tempfile.TemporaryDirectory(prefix="synthc-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for spec in specs:
            cmd = [*synthc_command(), "check", str(spec)]
            warm_cache = tmp / f"warm-{spec.stem}"
            measure(cmd, cache_dir=warm_cache)  # warm-up: bytecode caches, fills the plan cache
            cold, warm = [], []
            for _ in range(repeat):  # interleaved
                cold_cache = fresh_dir(tmp, "cold-")
                cold.append(measure(cmd, cache_dir=cold_cache).wall_s)
                remove(cold_cache)
                warm.append(measure(cmd, cache_dir=warm_cache).wall_s)
            results.append(
                {
                    "spec": shown(spec),
                    "cold_median_s": median(cold),
                    "warm_median_s": median(warm),
                    "cold_runs_s": cold,
                    "warm_runs_s": warm,
                }
            )
    return {"results": results, "repeat": repeat}


def check_markdown(data: dict[str, Any], level: str = "##") -> str:
    results = data["results"]

    def ok(s: float) -> str:
        return "yes" if s <= TARGET_S else "NO"

    worst_cold = max(r["cold_median_s"] for r in results)
    worst_warm = max(r["warm_median_s"] for r in results)
    return "\n".join(
        [
            f"{level} `synthc check` wall time per example (process start included)",
            "",
            table(
                ["spec", "cold median s", f"cold ≤ {TARGET_S} s", "warm median s", f"warm ≤ {TARGET_S} s",
                 "cold / warm"],
                [
                    [r["spec"], f"{r['cold_median_s']:.3f}", ok(r["cold_median_s"]), f"{r['warm_median_s']:.3f}",
                     ok(r["warm_median_s"]), f"{r['cold_median_s'] / r['warm_median_s']:.2f}×"]
                    for r in results
                ],
            ),
            "",
            f"- median of {data['repeat']} runs per spec and state, cold and warm interleaved; "
            f"slowest median: cold {worst_cold:.3f} s, warm {worst_warm:.3f} s",
            "- COLD: a fresh, empty SYNTHC_CACHE_DIR for every run (plan and expression-check caches "
            "empty: full compile, Polars types the expressions); WARM: the plan cache holds the spec (no YAML, jsonschema or Polars import)",
            f"- {ENV_NOTE}",
        ]
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeat", type=int, default=10, help="runs per example and state; medians are reported (default 10)"
    )
    parser.add_argument("specs", nargs="*", type=Path, help="specs to check (default: examples/*.yaml)")
    args = parser.parse_args()
    data = measure_check([p.resolve() for p in args.specs] or None, args.repeat)
    md = check_markdown(data)
    path = save("check", {**data, "machine": machine()}, md)
    print(md)
    print(f"\nwritten to {shown(path)} (and .json)")


if __name__ == "__main__":
    main()
