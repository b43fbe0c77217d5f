"""Helpers shared by the benchmark scripts: the child environment, timing, tables."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
EIGHT_COLUMNS = ROOT / "benchmarks" / "specs" / "eight_columns.yaml"
ENV_NOTE = (
    "children run with PYTHONDONTWRITEBYTECODE removed from their environment "
    "(bytecode caching on, the default for Python users); one unmeasured warm-up run first"
)


def child_env() -> dict[str, str]:
    """The environment for measured children: ours without PYTHONDONTWRITEBYTECODE."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def synthc_command() -> list[str]:
    """The installed console script next to this interpreter (as a user would run it)."""
    script = Path(sys.executable).parent / "synthc"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "synthc"]


@dataclass(frozen=True)
class Measured:
    wall_s: float
    max_rss_kib: int  # the child's own peak RSS (Linux reports KiB)
    stdout: str


def measure(argv: Sequence[str]) -> Measured:
    """Run one child; its wall time (process start included) and peak RSS.

    The child is reaped with ``os.wait4`` so the resource usage is its own, not an
    aggregate over every child this process ever had."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), env=child_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"command failed ({proc.returncode}): {' '.join(argv)}\n{err.read().decode()}")
    return Measured(wall, int(usage.ru_maxrss), stdout.decode())


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, str | int | None]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A small markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def save(name: str, data: dict[str, object], markdown: str) -> Path:
    """Write benchmarks/out/NAME.json and NAME.md; returns the markdown path."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    path = OUT / f"{name}.md"
    path.write_text(markdown + "\n", encoding="utf-8")
    return path
