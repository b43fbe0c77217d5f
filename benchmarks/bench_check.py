"""Wall time of `synthc check` on every example, process start included.

`synthc check` must stay light (no polars/numpy unless a spec has expressions to type,
never litellm): the target is ≤ 0.3 s per example on the 2-core CI machine.

    uv run python benchmarks/bench_check.py               # median of 5 per example
    uv run python benchmarks/bench_check.py --repeat 1    # smoke
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ENV_NOTE, ROOT, machine, measure, median, save, synthc_command, table

TARGET_S = 0.3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per example; medians are reported (default 5)"
    )
    parser.add_argument("specs", nargs="*", type=Path, help="specs to check (default: examples/*.yaml)")
    args = parser.parse_args()
    specs = args.specs or sorted((ROOT / "examples").glob("*.yaml"))

    results = []
    for spec in specs:
        cmd = [*synthc_command(), "check", str(spec)]
        measure(cmd)  # warm-up (bytecode caches)
        walls = [measure(cmd).wall_s for _ in range(args.repeat)]
        results.append({"spec": spec.name, "median_s": median(walls), "runs_s": walls})

    worst = max(r["median_s"] for r in results)
    md = "\n".join(
        [
            "## `synthc check` wall time per example (process start included)",
            "",
            table(
                ["spec", "median s", f"≤ {TARGET_S} s"],
                [
                    [r["spec"], f"{r['median_s']:.3f}", "yes" if r["median_s"] <= TARGET_S else "NO"]
                    for r in results
                ],
            ),
            "",
            f"- median of {args.repeat} runs per spec; slowest median {worst:.3f} s",
            f"- {ENV_NOTE}",
        ]
    )
    path = save("check", {"results": results, "repeat": args.repeat, "machine": machine()}, md)
    print(md)
    print(f"\nwritten to {path.relative_to(path.parent.parent.parent)} (and .json)")


if __name__ == "__main__":
    main()
