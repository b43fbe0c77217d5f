"""Helpers shared by the benchmark scripts: the child environment, timing, tables."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
EIGHT_COLUMNS = ROOT / "benchmarks" / "specs" / "eight_columns.yaml"
ENV_NOTE = (
    "every measured command is its own process, timed from start to exit (interpreter start "
    "and imports included); children run with PYTHONDONTWRITEBYTECODE removed from their "
    "environment (bytecode caching on, the default for Python users), import synthc from "
    "this checkout, and get an explicit SYNTHC_CACHE_DIR; one unmeasured warm-up run first"
)


def child_env(cache_dir: Path | None = None, *, lock: bool = False) -> dict[str, str]:
    """The environment for measured children: ours without PYTHONDONTWRITEBYTECODE, with
    this checkout first on PYTHONPATH and, when given, SYNTHC_CACHE_DIR set. Runs write no
    lock file beside the benchmark specs unless ``lock`` (SYNTHC_NO_LOCK=1)."""
    env = dict(os.environ)
    if lock:
        env.pop("SYNTHC_NO_LOCK", None)
    else:
        env["SYNTHC_NO_LOCK"] = "1"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    if cache_dir is not None:
        env["SYNTHC_CACHE_DIR"] = str(cache_dir)
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


def measure(argv: Sequence[str], cache_dir: Path | None = None, *, lock: bool = False) -> Measured:
    """Run one child; its wall time (process start included) and peak RSS.

    The child is reaped with ``os.wait4`` so the resource usage is its own, not an
    aggregate over every child this process ever had."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), env=child_env(cache_dir, lock=lock), cwd=ROOT, stdout=subprocess.PIPE, stderr=err
        )
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"command failed ({proc.returncode}): {' '.join(argv)}\n{err.read().decode()}")
    return Measured(wall, int(usage.ru_maxrss), stdout.decode())


def fresh_dir(parent: Path, prefix: str) -> Path:
    """A new, empty directory under ``parent`` (a cold plan cache)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _command_output(argv: Sequence[str]) -> str:
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, cwd=ROOT, check=False
        ).stdout.strip()
    except OSError:
        return ""


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, object]:
    """Facts about the machine and the code that was measured."""
    lscpu = _command_output(["lscpu"]).splitlines()[:10]
    return {
        "nproc": _command_output(["nproc"]),
        "lscpu_head": lscpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in ("polars", "numpy", "typer", "faker", "mimesis")},
        "git_commit": _command_output(["git", "rev-parse", "--short", "HEAD"]),
        "git_dirty": _command_output(["git", "status", "--short", "--untracked-files=no"]).splitlines(),
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


def shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def write_section(path: Path, heading: str, section: str) -> None:
    """Replace the section starting with ``heading`` in ``path`` (up to the next ``## ``
    heading), or append it; everything else in the file stays as it is."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    start = text.find(heading)
    if start >= 0:
        end = text.find("\n## ", start + len(heading))
        rest = text[end + 1 :] if end >= 0 else ""
        text = (
            text[:start].rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n" + ("\n" + rest if rest else "")
        )
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "") + section.rstrip("\n") + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
