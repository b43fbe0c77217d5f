"""The LLM-column figures of issue 3, against a local OpenAI-compatible server in its own
process (tests/support/openai_server.py, `ServerProcess`, 50 ms latency per answer):

1. Throughput: 5,000 single-prompt cells at concurrency 128 through `synthc run`, through
   plain LiteLLM (``litellm.acompletion`` under ``asyncio.Semaphore(128)``) and through raw
   aiohttp (one ``ClientSession``, connector limit 128, ``asyncio.Semaphore(128)``); each
   client is a fresh process, timed from start to exit, CPU = the child's own user + system
   time (``os.wait4``). The server's counters must show exactly N chat requests per client
   and nothing else. Plus a profile of where synthc's CPU goes per call.
2. A fully cached rerun of 100,000 cells (process start included), cells/s; the server must
   receive 0 requests and LiteLLM must not be imported.
3. 2,000 cached cells end to end (target: under 1 s).
4. Peak RSS of fully cached runs at 20,000 / 100,000 / 200,000 cells (flat in rows?).

    uv run python benchmarks/bench_llm.py --results benchmarks/RESULTS.md   # the full run
    uv run python benchmarks/bench_llm.py --quick                            # smoke, tiny sizes

The spec is benchmarks/specs/llm_items.yaml (``Write about item {{ n }}`` over a sequence
column; its endpoint comes from ``${BENCH_BASE}``, its key from ``BENCH_KEY``). The cache of
the cached figures is filled without any server: the keys are computed with the runtime's
own renderer and key function over the rows the executor generates, and the run's own
lookup then verifies every cell is a hit (see ``prefill``).

--results appends (or replaces) the section "## LLM columns (issue 3)" of that file and
keeps everything else; without it the section goes to benchmarks/out/llm.md. The raw
numbers (every run) go to benchmarks/out/llm.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, ROOT, child_env, machine, median, shown, synthc_command, table, write_section

SPEC = ROOT / "benchmarks" / "specs" / "llm_items.yaml"
SECTION = "## LLM columns (issue 3)"
MODEL = "openai/gpt-4o-mini"
BENCH_KEY = "sk-bench-4f2a9c61d0e8"  # the fake server accepts any key
PROMPT = "Write about item {n}"  # the spec's prompt, rendered for n = 1..N
LATENCY_S = 0.05
CONCURRENCY = 128
TARGET_CACHED_CELLS_PER_S = 50_000
TARGET_SMALL_S = 1.0
FLAT = 1.25  # "flat": the largest size's peak RSS within this factor of the smallest's
CHECK_MODULES = ("litellm", "openai", "httpx", "aiohttp")

# --------------------------------------------------------------------------------------------
# The two baseline clients (run as `python -c CODE BASE N CONCURRENCY SEED`; key in BENCH_KEY).
# Each prints one JSON line (answers, its own import and work timings) and ends with
# os._exit, as synthc's console script does. Same requests as synthc sends: model, one user
# message "Write about item {n}", and synthc's derived provider seed.
# --------------------------------------------------------------------------------------------

LITELLM_CLIENT = """
import os, time
started, cpu0 = time.perf_counter(), time.process_time()
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
import asyncio, json, sys
import litellm
imported, cpu1 = time.perf_counter(), time.process_time()
base, n, concurrency, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
key = os.environ["BENCH_KEY"]

async def main():
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i):
        async with semaphore:
            response = await litellm.acompletion(
                model="openai/gpt-4o-mini", api_base=base, api_key=key, seed=seed,
                messages=[{"role": "user", "content": f"Write about item {i}"}],
            )
            return response.choices[0].message.content

    answers = await asyncio.gather(*(one(i) for i in range(1, n + 1)))
    return sum(1 for a in answers if a)

answered = asyncio.run(main())
print(json.dumps({"answered": answered, "import_s": imported - started, "import_cpu_s": cpu1 - cpu0,
                  "work_s": time.perf_counter() - imported, "work_cpu_s": time.process_time() - cpu1}),
      flush=True)
os._exit(0)
"""

AIOHTTP_CLIENT = """
import time
started, cpu0 = time.perf_counter(), time.process_time()
import asyncio, json, os, sys
import aiohttp
imported, cpu1 = time.perf_counter(), time.process_time()
base, n, concurrency, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
headers = {"Authorization": "Bearer " + os.environ["BENCH_KEY"]}

async def main():
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(i):
            body = {"model": "gpt-4o-mini", "seed": seed,
                    "messages": [{"role": "user", "content": f"Write about item {i}"}]}
            async with semaphore:
                async with session.post(base + "/chat/completions", json=body) as response:
                    response.raise_for_status()
                    data = await response.json()
                    return data["choices"][0]["message"]["content"]

        answers = await asyncio.gather(*(one(i) for i in range(1, n + 1)))
    return sum(1 for a in answers if a)

answered = asyncio.run(main())
print(json.dumps({"answered": answered, "import_s": imported - started, "import_cpu_s": cpu1 - cpu0,
                  "work_s": time.perf_counter() - imported, "work_cpu_s": time.process_time() - cpu1}),
      flush=True)
os._exit(0)
"""

# Each client's heavy import alone, on top of a bare interpreter (`python -c CODE`): LiteLLM
# as synthc loads it (for synthc and for plain LiteLLM: the same library), and aiohttp. Each
# ends with os._exit, as every client does (no interpreter teardown in any figure).
IMPORTS = {
    "python": "import os; os._exit(0)",
    "litellm": "from runtime.llm.transport import load_litellm; load_litellm(); import os; os._exit(0)",
    "aiohttp": "import aiohttp, os; os._exit(0)",
}
IMPORT_OF = {"synthc": "litellm", "litellm": "litellm", "aiohttp": "aiohttp"}

LITELLM_CHECK = """
import json, sys
from synthc.cli import run
code = run(sys.argv[1:])
print(json.dumps({"code": code, "modules": {m: m in sys.modules for m in MODULES}}))
""".replace("MODULES", repr(CHECK_MODULES))


# --------------------------------------------------------------------------------------------
# Children
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float  # the child's own user + system time, all its threads
    max_rss_kib: int
    stdout: str


def run_child(argv: Sequence[str], env: dict[str, str]) -> Run:
    """One child process: wall time from start to exit, its own CPU time and peak RSS
    (``os.wait4``: its usage alone, not an aggregate over every child this process had)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), env=env, cwd=ROOT, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {shlex.join(argv)}\n{stdout}\n{stderr}")
    return Run(wall, usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss), stdout)


def bench_env(cache_dir: Path, base_url: str) -> dict[str, str]:
    env = child_env(cache_dir)
    env["BENCH_BASE"] = base_url
    env["BENCH_KEY"] = BENCH_KEY
    return env


def server_requests(server: Any) -> dict[str, Any]:
    """The server's counters since its last reset (then resets them)."""
    stats = server.stats()
    server.reset()
    return stats


def expect_requests(stats: dict[str, Any], n: int, who: str) -> None:
    """Exactly ``n`` chat completions answered 200, and no other request of any kind."""
    chat_paths = {"/v1/chat/completions", "/chat/completions"}
    other = {p: c for p, c in stats["by_path"].items() if p not in chat_paths}
    ok = (
        stats["total_requests"] == n
        and stats["chat_requests"] == n
        and not other
        and stats["by_status"] == ({"200": n} if n else {})
        and not stats["internal_errors"]
    )
    if not ok:
        sys.exit(f"{who}: expected exactly {n:,} chat requests and nothing else; the server saw {stats}")


def provider_seed(seed: int) -> int:
    """The provider seed synthc sends with every cell here (all prompts differ: occurrence 0)."""
    from runtime.llm.prompts import derived_seed

    return derived_seed(seed, 0)


def text_cells(path: Path) -> tuple[int, int]:
    """(rows, non-null `text` cells) of an output file."""
    import polars as pl

    frame = pl.read_parquet(path, columns=["text"])
    return frame.height, frame.height - frame["text"].null_count()


# --------------------------------------------------------------------------------------------
# 1. Throughput
# --------------------------------------------------------------------------------------------


def import_figures(runs: dict[str, list[Run]]) -> dict[str, Any]:
    """Medians of the import-alone runs, and each import above a bare interpreter's start."""
    wall = {name: median([r.wall_s for r in rs]) for name, rs in runs.items()}
    cpu = {name: median([r.cpu_s for r in rs]) for name, rs in runs.items()}
    return {
        "repeat": len(runs["python"]),
        "median_wall_s": wall,
        "median_cpu_s": cpu,
        "import_wall_s": {n: wall[n] - wall["python"] for n in IMPORTS if n != "python"},
        "import_cpu_s": {n: cpu[n] - cpu["python"] for n in IMPORTS if n != "python"},
        "runs": {n: [{"wall_s": r.wall_s, "cpu_s": r.cpu_s} for r in rs] for n, rs in runs.items()},
    }


def measure_throughput(
    server: Any, n: int, repeat: int, tmp: Path, plan_cache: Path, warm_up: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Interleaved repetitions of the three clients, each followed by the import-alone runs
    (so they see the same machine load); returns (throughput, imports)."""
    env = bench_env(plan_cache, server.base_url)
    seed = provider_seed(1)
    out = tmp / "throughput.parquet"
    clients = {
        "synthc": lambda i, cells: [
            *synthc_command(), "run", str(SPEC), "--rows", str(cells), "--out", str(out),
            "--cache", str(tmp / f"throughput-{i}.db"), "--quiet",
        ],
        "litellm": lambda i, cells: [
            sys.executable, "-c", LITELLM_CLIENT, server.base_url, str(cells), str(CONCURRENCY), str(seed),
        ],
        "aiohttp": lambda i, cells: [
            sys.executable, "-c", AIOHTTP_CLIENT, server.base_url, str(cells), str(CONCURRENCY), str(seed),
        ],
    }  # fmt: skip
    server.reset()
    if warm_up:  # unmeasured: plan cache, bytecode and page caches, for every client alike
        for name, argv in clients.items():
            cells = min(n, 200)
            run_child(argv(f"warm-{name}", cells), env)
            expect_requests(server_requests(server), cells, f"{name} warm-up")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in clients}
    import_runs: dict[str, list[Run]] = {name: [] for name in IMPORTS}
    for i in range(repeat):  # interleaved, so drift in machine load hits all alike
        for name, argv in clients.items():
            r = run_child(argv(i, n), env)
            stats = server_requests(server)
            expect_requests(stats, n, name)
            if name == "synthc":
                rows, answered = text_cells(out)
                if (rows, answered) != (n, n) or out.with_name(out.name + ".errors.jsonl").exists():
                    sys.exit(f"synthc: {answered:,} of {rows:,} cells answered, expected {n:,}")
                inner: dict[str, Any] = {}
            else:
                inner = json.loads(r.stdout)
                if inner["answered"] != n:
                    sys.exit(f"{name}: {inner['answered']:,} answers, expected {n:,}")
            runs[name].append(
                {"wall_s": r.wall_s, "cpu_s": r.cpu_s, "max_rss_kib": r.max_rss_kib,
                 "server_cpu_s": stats.get("cpu_seconds"), "peak_in_flight": stats["peak_in_flight"],
                 "connections": stats["connections"], **inner}
            )  # fmt: skip
        for name, code in IMPORTS.items():
            import_runs[name].append(run_child([sys.executable, "-c", code], env))
    expect_requests(server_requests(server), 0, "import runs")
    throughput = {
        "cells": n,
        "repeat": repeat,
        "warm_up": warm_up,
        "concurrency": CONCURRENCY,
        "latency_s": LATENCY_S,
        "median_wall_s": {k: median([r["wall_s"] for r in rs]) for k, rs in runs.items()},
        "median_cpu_s": {k: median([r["cpu_s"] for r in rs]) for k, rs in runs.items()},
        "runs": runs,
    }
    return throughput, import_figures(import_runs)


def throughput_figures(data: dict[str, Any], imports: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per client: calls/s and CPU ms per call, with imports included and subtracted."""
    n = data["cells"]
    figures = {}
    for name, wall in data["median_wall_s"].items():
        cpu = data["median_cpu_s"][name]
        import_wall = imports["import_wall_s"][IMPORT_OF[name]]
        import_cpu = imports["import_cpu_s"][IMPORT_OF[name]]
        figures[name] = {
            "wall_s": wall,
            "calls_per_s": n / wall,
            "cpu_ms_per_call": cpu / n * 1000,
            "import_wall_s": import_wall,
            "wall_no_import_s": wall - import_wall,
            "calls_per_s_no_import": n / (wall - import_wall),
            "cpu_ms_per_call_no_import": (cpu - import_cpu) / n * 1000,
        }
    return figures


# --------------------------------------------------------------------------------------------
# 1b. Where synthc's CPU goes (a child of this script: --internal profile)
# --------------------------------------------------------------------------------------------

# Functional parts of a cell's CPU, by cumulative time of these functions (file, name).
PARTS = {
    "transport": ("runtime/llm/transport.py", "complete"),
    "acompletion": ("litellm/utils.py", "wrapper_async"),  # litellm.acompletion's decorator
    "cost": ("runtime/llm/transport.py", "cost_usd"),
    "cache_put": ("runtime/cache.py", "put"),
    "cache_get": ("runtime/cache.py", "get"),
    "cache_get_many": ("runtime/cache.py", "get_many"),
    "keys": ("runtime/llm/prompts.py", "keys"),
    "render": ("runtime/llm/prompts.py", "render_messages"),
    "scheduler_run": ("runtime/llm/scheduler.py", "run"),
    "work": ("runtime/llm/run.py", "_work"),
}

# Waiting, not working: left out of a profile's totals.
IDLE = frozenset(
    {
        "<method 'poll' of 'select.epoll' objects>",
        "<method 'acquire' of '_thread.lock' objects>",
        "<method 'get' of '_queue.SimpleQueue' objects>",
        "<built-in method time.sleep>",
    }
)

PACKAGES = (
    ("/litellm/", "LiteLLM"),
    ("/openai/", "OpenAI SDK"),
    ("/httpx/", "httpx/httpcore"),
    ("/httpcore/", "httpx/httpcore"),
    ("/aiohttp/", "aiohttp (LiteLLM's HTTP transport)"),
    ("/yarl/", "aiohttp (LiteLLM's HTTP transport)"),
    ("/multidict/", "aiohttp (LiteLLM's HTTP transport)"),
    ("/pydantic", "pydantic"),
    ("/asyncio/", "asyncio event loop"),
    ("selectors.py", "asyncio event loop"),
    ("concurrent/futures", "thread pool (LiteLLM's run_in_executor)"),
    ("/runtime/", "synthc runtime"),
    ("/synthc/", "synthc compiler/API"),
    ("/polars/", "Polars"),
)


def _package(filename: str, name: str) -> str:
    if filename == "~":  # a C function: by what it is
        if "sqlite3" in name:
            return "SQLite (C)"
        if "select" in name or "epoll" in name or "socket" in name or "send" in name or "recv" in name:
            return "sockets/epoll (C)"
        return "other C builtins"
    for marker, label in PACKAGES:
        if marker in filename:
            return label
    return "other Python stdlib"


def _short(filename: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def _process_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Profiles:
    """cProfile in several threads: profiling is per thread, so each thread gets its own
    profiler, switched on from inside it. ``clock``: "thread" (``time.thread_time``: CPU
    only, but the profiler's own cost inflates it) or "wall" (the default clock; counts
    waiting too — idle waits are left out later, see `IDLE`)."""

    def __init__(self, clock: str) -> None:
        self.clock = clock
        self.loop: list[Any] = []  # the event loop's thread
        self.executor: list[Any] = []  # the loop's default executor (LiteLLM's run_in_executor)

    def make(self) -> Any:
        import cProfile

        return cProfile.Profile(time.thread_time) if self.clock == "thread" else cProfile.Profile()

    def executor_for(self, loop: Any) -> Any:
        """A default executor for ``loop`` whose worker threads profile themselves."""
        from concurrent.futures import ThreadPoolExecutor

        def start() -> None:
            profile = self.make()
            self.executor.append(profile)
            profile.enable()

        executor = ThreadPoolExecutor(thread_name_prefix="profiled", initializer=start)
        loop.set_default_executor(executor)
        return executor


def _in_loop(loop: Any, action: Any) -> None:
    import threading

    done = threading.Event()

    def call() -> None:
        action()
        done.set()

    loop.call_soon_threadsafe(call)
    done.wait(10)


def profile_child(spec: Path, rows: int, warm_rows: int, tmp: Path) -> dict[str, Any]:
    """In this process: ``synthc.api.write`` of ``rows`` cells against $BENCH_BASE, once
    without a profiler (process CPU per call, all threads), then once per clock with
    cProfile in every thread that runs Python: the caller's, the LLM event loop's, and the
    loop's default executor's (LiteLLM runs its synchronous ``completion()`` there through
    ``run_in_executor``). LiteLLM is imported and a small write is made first, so one-time
    set-up is not counted per call."""
    from runtime.llm.transport import load_litellm
    from synthc import api

    load_litellm()
    api.write(spec, tmp / "warm.parquet", rows=warm_rows, cache=tmp / "warm.db")
    cpu0, wall0 = _process_cpu(), time.perf_counter()
    api.write(spec, tmp / "plain.parquet", rows=rows, cache=tmp / "plain.db")
    plain = {"cpu_s": _process_cpu() - cpu0, "wall_s": time.perf_counter() - wall0}
    timed = _timed_write(spec, rows, tmp / "timed.db", tmp)
    profiles = {}
    for clock in ("thread", "wall"):
        cpu0, wall0 = _process_cpu(), time.perf_counter()
        threads = _profiled_write(spec, rows, tmp / f"{clock}.db", tmp, clock)
        profiles[clock] = {
            "cpu_s": _process_cpu() - cpu0,
            "wall_s": time.perf_counter() - wall0,
            **_analyse(threads, PARTS),
        }
    return {
        "rows": rows,
        "warm_rows": warm_rows,
        "unprofiled": plain,
        "timed": timed,
        "isolated": _isolated_cache_ops(tmp / "isolated.db", rows),
        "switch_interval_s": sys.getswitchinterval(),
        "profiles": profiles,
    }


# synthc's synchronous steps around each call, timed directly (module or class, attribute).
TIMED = {
    "cost": ("runtime.llm.transport", "cost_usd"),
    "cache_put": ("runtime.cache", "Cache.put"),
    "cache_get": ("runtime.cache", "Cache.get"),
    "cache_get_many": ("runtime.cache", "Cache.get_many"),
    "keys": ("runtime.llm.prompts", "ColumnRequests.keys"),
    "render": ("runtime.llm.run", "render_messages"),
}


def _timed_write(spec: Path, rows: int, cache: Path, tmp: Path) -> dict[str, Any]:
    """One ``api.write`` with wrappers around `TIMED`: per step, calls and the CPU
    (``time.thread_time`` of the calling thread) and wall time spent inside it (a step
    called from another is counted in the outer one). A wrapper costs about a microsecond,
    next to milliseconds per cell."""
    import importlib
    import threading

    from synthc import api

    totals: dict[str, list[float]] = {}
    restore = []
    inside = threading.local()
    for label, (module_name, attribute) in TIMED.items():
        owner: Any = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, name)
        entry = totals.setdefault(label, [0, 0.0, 0.0])

        def timed(*args: Any, _original: Any = original, _entry: list[float] = entry, **kwargs: Any) -> Any:
            if getattr(inside, "step", False):  # a timed step calling another (get → get_many)
                return _original(*args, **kwargs)
            inside.step = True
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                _entry[0] += 1
                _entry[1] += time.thread_time() - cpu
                _entry[2] += time.perf_counter() - wall
                inside.step = False

        setattr(owner, name, timed)
        restore.append((owner, name, original))
    cpu0, wall0 = _process_cpu(), time.perf_counter()
    try:
        api.write(spec, tmp / "timed.parquet", rows=rows, cache=cache)
    finally:
        for owner, name, original in restore:
            setattr(owner, name, original)
    return {
        "cpu_s": _process_cpu() - cpu0,
        "wall_s": time.perf_counter() - wall0,
        "steps": {k: {"calls": int(v[0]), "cpu_s": v[1], "wall_s": v[2]} for k, v in totals.items()},
    }


def _isolated_cache_ops(path: Path, n: int) -> dict[str, float]:
    """`Cache.put` and `Cache.get` alone, ``n`` of each, in this (now quiet) process: what
    the same SQLite work costs without other threads competing for the GIL."""
    from runtime.cache import Cache, CachedResponse

    answer = CachedResponse(
        text="reply-0123abcd amber basil cedar delta ember fable glade harbor.", model="gpt-4o-mini",
        prompt_tokens=12, completion_tokens=17, cost=1e-5, finish_reason="stop",
    )  # fmt: skip
    out: dict[str, float] = {}
    with Cache.open(path) as cache:
        for op in ("put", "get"):
            cpu, wall = time.thread_time(), time.perf_counter()
            for i in range(n):
                key = f"{i:032x}"
                if op == "put":
                    cache.put(key, answer)
                else:
                    cache.get(key)
            out[f"{op}_cpu_s"] = (time.thread_time() - cpu) / n
            out[f"{op}_wall_s"] = (time.perf_counter() - wall) / n
    return out


def _profiled_write(spec: Path, rows: int, cache: Path, tmp: Path, clock: str) -> dict[str, list[Any]]:
    """The per-thread profiles of one ``api.write``, by role: main, loop, executor."""
    from runtime.llm import loop as llm_loop
    from synthc import api

    profiles = _Profiles(clock)
    executors: list[Any] = []
    original_init, original_close = llm_loop.LoopThread.__init__, llm_loop.LoopThread.close

    def init(self: Any) -> None:
        original_init(self)
        executors.append(profiles.executor_for(self.loop))
        profiles.loop.append(profiles.make())
        _in_loop(self.loop, profiles.loop[-1].enable)

    def close(self: Any, final: Any = None) -> None:
        for profile in profiles.loop:
            _in_loop(self.loop, profile.disable)
        original_close(self, final)
        for executor in executors:
            executor.shutdown(wait=True)

    llm_loop.LoopThread.__init__ = init  # type: ignore[method-assign]
    llm_loop.LoopThread.close = close  # type: ignore[method-assign]
    main_profile = profiles.make()
    try:
        main_profile.enable()
        api.write(spec, tmp / "profiled.parquet", rows=rows, cache=cache)
        main_profile.disable()
    finally:
        llm_loop.LoopThread.__init__ = original_init  # type: ignore[method-assign]
        llm_loop.LoopThread.close = original_close  # type: ignore[method-assign]
    return {"main": [main_profile], "loop": profiles.loop, "executor": profiles.executor}


def plain_profile_child(base: str, rows: int, warm_rows: int, seed: int) -> dict[str, Any]:
    """The plain-LiteLLM client's request phase in this process, measured like
    `profile_child` (unprofiled, then cProfile with the CPU clock in the event loop's
    thread and the executor's), after the import and a warm-up of ``warm_rows`` calls."""
    import asyncio

    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm  # type: ignore[import-untyped]

    key = os.environ["BENCH_KEY"]

    async def calls(first: int, n: int, profiles: _Profiles | None) -> None:
        loop = asyncio.get_running_loop()
        executor = profiles.executor_for(loop) if profiles is not None else None
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> str:
            async with semaphore:
                response = await litellm.acompletion(
                    model=MODEL, api_base=base, api_key=key, seed=seed,
                    messages=[{"role": "user", "content": PROMPT.format(n=i)}],
                )  # fmt: skip
                return str(response.choices[0].message.content)

        main = profiles.make() if profiles is not None else None
        if main is not None:
            profiles.loop.append(main)  # type: ignore[union-attr]
            main.enable()
        answers = await asyncio.gather(*(one(i) for i in range(first, first + n)))
        if main is not None:
            main.disable()
        if executor is not None:
            executor.shutdown(wait=True)
        assert all(answers)

    asyncio.run(calls(1, warm_rows, None))
    cpu0, wall0 = _process_cpu(), time.perf_counter()
    asyncio.run(calls(10_001, rows, None))
    plain = {"cpu_s": _process_cpu() - cpu0, "wall_s": time.perf_counter() - wall0}
    profiles = _Profiles("thread")
    cpu0, wall0 = _process_cpu(), time.perf_counter()
    asyncio.run(calls(20_001, rows, profiles))
    profiled = {
        "cpu_s": _process_cpu() - cpu0,
        "wall_s": time.perf_counter() - wall0,
        **_analyse({"main": [], "loop": profiles.loop, "executor": profiles.executor}, PARTS),
    }
    return {"rows": rows, "warm_rows": warm_rows, "unprofiled": plain, "profiles": {"thread": profiled}}


def _analyse(threads: dict[str, list[Any]], parts: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """Busy time per thread role, the functional parts (cumulative, per role), own time by
    package, and the top functions by own time; idle waits (`IDLE`) left out."""
    import pstats

    def busy(profile: Any) -> dict[Any, Any]:
        return {k: v for k, v in pstats.Stats(profile).stats.items() if k[2] not in IDLE}

    stats = {role: [busy(p) for p in profiles] for role, profiles in threads.items()}
    merged: dict[Any, list[float]] = {}
    for role_stats in stats.values():
        for one in role_stats:
            for k, v in one.items():
                entry = merged.setdefault(k, [0, 0, 0.0, 0.0])
                entry[1] += v[1]
                entry[2] += v[2]

    def cumulative(where: tuple[str, str]) -> float:
        path, name = where
        return sum(
            v[3]
            for role_stats in stats.values()
            for one in role_stats
            for (f, _, fn), v in one.items()
            if fn == name and f.endswith(path)
        )

    by_package: dict[str, float] = {}
    for (filename, _, name), entry in merged.items():
        label = _package(filename, name)
        by_package[label] = by_package.get(label, 0.0) + entry[2]
    top = sorted(merged.items(), key=lambda item: item[1][2], reverse=True)[:12]
    return {
        "thread_s": {
            role: sum(e[2] for one in role_stats for e in one.values()) for role, role_stats in stats.items()
        },
        "executor_threads": len(threads["executor"]),
        "parts_s": {key: cumulative(where) for key, where in parts.items()},
        "by_package_s": dict(sorted(by_package.items(), key=lambda kv: -kv[1])),
        "top_own_s": [
            {"function": f"{_short(f)}:{line}({name})", "own_s": e[2], "calls": e[1]}
            for (f, line, name), e in top
        ],
    }


def measure_profile(server: Any, rows: int, warm_rows: int, tmp: Path, plan_cache: Path) -> dict[str, Any]:
    """synthc's profile (`profile_child`) and plain LiteLLM's (`plain_profile_child`), each
    in a child process of its own, against the same server."""
    env = bench_env(plan_cache, server.base_url)
    server.reset()
    argv = [sys.executable, __file__, "--internal", "profile", str(SPEC), str(rows), str(warm_rows), str(tmp)]
    synthc_data = json.loads(run_child(argv, env).stdout)
    expect_requests(server_requests(server), warm_rows + 4 * rows, "synthc profile")
    argv = [
        sys.executable, __file__, "--internal", "profile-litellm", server.base_url, str(rows),
        str(warm_rows), str(provider_seed(1)),
    ]  # fmt: skip
    plain_data = json.loads(run_child(argv, env).stdout)
    expect_requests(server_requests(server), warm_rows + 2 * rows, "plain LiteLLM profile")
    return {"synthc": synthc_data, "litellm": plain_data}


def profile_parts(profile: dict[str, Any], plain: bool = False) -> list[tuple[str, float | None]]:
    """(part, seconds) of one profile, in report order; the parts add up to its busy
    total. A plain-LiteLLM profile has only the LiteLLM and event-loop parts (None: n/a)."""
    p, threads = profile["parts_s"], profile["thread_s"]
    executor = threads["executor"]
    if plain:
        loop_rest = threads["loop"] - p["acompletion"]
        return [
            ("LiteLLM `acompletion` in the event loop thread (`litellm.utils.wrapper_async`: request "
             "set-up, HTTP, response parsing, logging)", p["acompletion"]),
            ("LiteLLM `completion()` in executor threads (`run_in_executor`: building the request)", executor),
            ("synthc's transport code around the call (`_api_key`, `sent_params`, `_completion`)", None),
            ("cost lookup (`transport.cost_usd` → `litellm.cost_per_token`)", None),
            ("cache put (`Cache.put`: one SQLite INSERT + COMMIT per cell)", None),
            ("cache re-check before each call (`Cache.get` in `Scheduler._cached`)", None),
            ("scheduler and workers (`Scheduler.run`, `LLMRun._work` minus the above)", None),
            ("event loop outside the calls (socket callbacks, LiteLLM's logging tasks, gather/semaphore)",
             loop_rest),
            ("main thread: render, keys, bulk lookup, columns, Parquet", None),
        ]  # fmt: skip
    return [
        ("LiteLLM `acompletion` in the event loop thread (`litellm.utils.wrapper_async`: request "
         "set-up, HTTP, response parsing, logging)", p["acompletion"]),
        ("LiteLLM `completion()` in executor threads (`run_in_executor`: building the request)", executor),
        ("synthc's transport code around the call (`_api_key`, `sent_params`, `_completion`)",
         p["transport"] - p["acompletion"] - p["cost"]),
        ("cost lookup (`transport.cost_usd` → `litellm.cost_per_token`)", p["cost"]),
        ("cache put (`Cache.put`: one SQLite INSERT + COMMIT per cell)", p["cache_put"]),
        ("cache re-check before each call (`Cache.get` in `Scheduler._cached`)", p["cache_get"]),
        ("scheduler and workers (`Scheduler.run`, `LLMRun._work` minus the above)",
         p["work"] - p["transport"] - p["cache_put"] - p["cache_get"]),
        ("event loop outside the calls (socket callbacks, LiteLLM's logging tasks, gather/semaphore)",
         threads["loop"] - p["work"]),
        ("main thread: render, keys, bulk lookup, columns, Parquet", threads["main"]),
    ]  # fmt: skip


def profile_table(data: dict[str, Any]) -> tuple[list[list[str]], float, float]:
    """Rows (part, synthc ≈ CPU ms per call, share, wall share, plain LiteLLM ≈ CPU ms per
    call, share) and both unprofiled CPU ms per call. Each side's CPU-clock shares are
    scaled to its own unprofiled process CPU per call."""
    synthc, plain = data["synthc"], data["litellm"]
    real = synthc["unprofiled"]["cpu_s"] / synthc["rows"] * 1000
    plain_real = plain["unprofiled"]["cpu_s"] / plain["rows"] * 1000
    cpu_parts = profile_parts(synthc["profiles"]["thread"])
    wall_parts = dict(profile_parts(synthc["profiles"]["wall"]))
    plain_parts = dict(profile_parts(plain["profiles"]["thread"], plain=True))
    cpu_total = sum(s or 0.0 for _, s in cpu_parts)
    wall_total = sum(s or 0.0 for s in wall_parts.values())
    plain_total = sum(s or 0.0 for s in plain_parts.values())
    out = []
    for name, s in cpu_parts:
        q = plain_parts[name]
        out.append(
            [name, f"{(s or 0.0) / cpu_total * real:.3f}", f"{(s or 0.0) / cpu_total:.1%}",
             f"{(wall_parts[name] or 0.0) / wall_total:.1%}",
             "—" if q is None else f"{q / plain_total * plain_real:.3f}",
             "—" if q is None else f"{q / plain_total:.1%}"]
        )  # fmt: skip
    out.append(
        ["**total (unprofiled process CPU per call, all threads)**", f"**{real:.3f}**", "100%", "100%",
         f"**{plain_real:.3f}**", "100%"]
    )  # fmt: skip
    return out, real, plain_real


# --------------------------------------------------------------------------------------------
# 2–4. Fully cached reruns (a child of this script fills the cache: --internal prefill)
# --------------------------------------------------------------------------------------------


def prefill_child(spec: Path, cache_path: Path, rows: int) -> dict[str, Any]:
    """Fill ``cache_path`` with an answer for every cell of ``spec`` at ``rows`` rows,
    without calling anything: the runtime's executor generates each chunk's non-LLM
    columns, the runtime renders the prompts (`render_messages`) and computes the keys
    (`ColumnRequests.keys`, the run's own key function) and `Cache.put_many` stores the
    answers the fake server would give. Then the run's real lookup (`LLMRun.fill`) must
    find every cell: a transport that refuses any call proves nothing is missing."""
    from types import MappingProxyType

    import polars as pl

    from runtime.cache import Cache, CachedResponse
    from runtime.execute import generate, sample_column
    from runtime.llm.prompts import ColumnRequests, column_params, output_schema, render_messages
    from runtime.llm.run import LLMOptions, LLMRun
    from runtime.samplers.base import Chunk
    from synthc import api
    from tests.support.openai_server import expected_text, fake_usage

    plan = api.with_overrides(api.compile(path=spec), rows=rows)
    (col,) = plan.llm_columns()
    alias = plan.model(col.model)
    requests = ColumnRequests(alias.model, column_params(alias, col), output_schema(col), plan.seed)
    variables = MappingProxyType(json.loads(plan.vars))

    class Refuse:
        async def complete(self, request: Any) -> Any:
            raise AssertionError(f"prefill missed a cell: {request.messages}")

    started = time.perf_counter()
    options = LLMOptions(cache=cache_path, transport=Refuse())
    with Cache.open(cache_path) as cache, LLMRun(plan, options, sample_column) as run:

        class Prefill:
            """Stands in for the LLMRun in `runtime.execute.generate`: sees each chunk's
            non-LLM columns, stores the chunk's answers, then lets the real run fill it."""

            def records(self) -> Any:
                raise AssertionError("the spec has no LLM source")

            def fill(self, frame: pl.DataFrame, start: int, stop: int) -> pl.DataFrame:
                messages = render_messages(col, Chunk(plan.seed, start, stop, frame, variables))
                items = []
                for message, keyed in zip(messages, requests.keys(messages), strict=True):
                    assert keyed is not None
                    sent = [dict(m) for m in message]
                    text = expected_text(sent)
                    usage = fake_usage(sent, text)
                    answer = CachedResponse(
                        text=text, model="gpt-4o-mini", prompt_tokens=usage["prompt_tokens"],
                        completion_tokens=usage["completion_tokens"], cost=None, finish_reason="stop",
                    )  # fmt: skip
                    items.append((keyed[0], answer))
                cache.put_many(items)
                return run.fill(frame, start, stop)

        for _ in generate(plan, llm=Prefill()):  # type: ignore[arg-type]
            pass
        tally = run.tallies[col.name]
    if (tally.cells, tally.cached, tally.called, tally.failed) != (rows, rows, 0, 0):
        raise AssertionError(f"prefill: {tally}")
    return {"rows": rows, "seconds": time.perf_counter() - started, "cached": tally.cached}


# Parts of a fully cached run, by cumulative time of these functions (file, name).
CACHED_PARTS = {
    "run": ("synthc/cli_run.py", "run_spec"),
    "compile": ("synthc/api.py", "compile"),
    "write_parquet": ("runtime/writers.py", "_write_parquet"),
    "generate": ("runtime/execute.py", "generate"),
    "fill": ("runtime/llm/run.py", "fill"),
    "range": ("runtime/llm/run.py", "_range"),
    "render": ("runtime/llm/run.py", "_render"),
    "keys": ("runtime/llm/prompts.py", "keys"),
    "get_many": ("runtime/cache.py", "get_many"),
    "cached_value": ("runtime/llm/run.py", "_cached_value"),
    "complete": ("runtime/llm/run.py", "_complete"),
}


def cached_profile_child(spec: Path, cache: Path, rows: int, tmp: Path) -> dict[str, Any]:
    """In this process: ``synthc.cli.run`` of a fully cached run of ``rows`` cells, once
    without and once with cProfile (default clock; the cached path runs on one thread).
    A tiny run first imports everything, so the parts below are the run proper."""
    import cProfile
    import pstats
    import resource

    from synthc.cli import run

    def argv(n: int) -> list[str]:
        return ["run", str(spec), "--rows", str(n), "--out", str(tmp / "p.parquet"), "--cache", str(cache), "--quiet"]  # fmt: skip

    def process_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    from runtime.llm import run as llm_run

    seen: dict[str, float] = {}
    original_close = llm_run.LLMRun.close

    def close(self: Any) -> None:  # the occurrence maps at their largest: the end of the run
        for requests in self._requests.values():
            entries = requests._seen  # runtime.llm.prompts.Occurrences: sorted digests + counts
            seen["entries"] = seen.get("entries", 0) + len(entries)
            size = entries._digests.nbytes + entries._counts.nbytes
            seen["bytes"] = seen.get("bytes", 0) + size
        original_close(self)

    assert run(argv(10)) == 0
    cpu0, wall0 = process_cpu(), time.perf_counter()
    assert run(argv(rows)) == 0
    plain = {"cpu_s": process_cpu() - cpu0, "wall_s": time.perf_counter() - wall0}
    llm_run.LLMRun.close = close  # type: ignore[method-assign]
    assert run(argv(rows)) == 0  # unmeasured: the size of the occurrence map
    llm_run.LLMRun.close = original_close  # type: ignore[method-assign]
    profile = cProfile.Profile()
    profile.enable()
    assert run(argv(rows)) == 0
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    parts = {
        key: sum(v[3] for (f, _, fn), v in stats.items() if fn == name and f.endswith(path))
        for key, (path, name) in CACHED_PARTS.items()
    }
    top = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:10]
    return {
        "rows": rows,
        "unprofiled": plain,
        "occurrence_map": seen,
        "parts_s": parts,
        "top_own_s": [
            {"function": f"{_short(f)}:{line}({name})", "own_s": e[2], "calls": e[1]}
            for (f, line, name), e in top
        ],
    }


def cached_parts(data: dict[str, Any]) -> list[tuple[str, float]]:
    """(part, profiled seconds) of a cached run, in report order; they add up to `run_spec`."""
    p = data["parts_s"]
    return [
        ("plan (`api.compile`, from the plan cache)", p["compile"]),
        ("render prompts (`LLMRun._render` → `render_messages`)", p["render"]),
        ("cache keys (`ColumnRequests.keys`: `encode_messages` JSON, xxh3 ×2 per cell)", p["keys"]),
        ("bulk lookup (`Cache.get_many`: SQLite `SELECT … IN (500 keys)`, row decoding)", p["get_many"]),
        ("rest of `LLMRun._range` (`_inputs`, `_skipped`, the per-cell loop, `_cached_value`)",
         p["range"] - p["render"] - p["keys"] - p["get_many"]),
        ("building the column (`LLMRun._complete` → `pl.Series` of strings)", p["complete"]),
        ("rest of `LLMRun.fill`", p["fill"] - p["range"] - p["complete"]),
        ("non-LLM columns and frames (`execute.generate` minus `fill`)", p["generate"] - p["fill"]),
        ("writing Parquet (`writers._write_parquet` minus `generate`)", p["write_parquet"] - p["generate"]),
        ("rest of `run_spec` (options, opening the cache, CLI)",
         p["run"] - p["compile"] - p["write_parquet"]),
    ]  # fmt: skip


def measure_cached(
    server: Any,
    sizes: dict[int, int],
    check_rows: int,
    big: int,
    memory: list[int],
    prefill_rows: int,
    tmp: Path,
    plan_cache: Path,
) -> dict[str, Any]:
    """Fully cached `synthc run`s: wall, CPU and peak RSS per size (``sizes``: rows → repeats),
    interleaved; the server must see no request; and whether LiteLLM & co. were imported."""
    env = bench_env(plan_cache, server.base_url)
    cache = tmp / "cached.db"
    server.reset()
    pre = run_child(
        [sys.executable, __file__, "--internal", "prefill", str(SPEC), str(cache), str(prefill_rows)], env
    )
    expect_requests(server_requests(server), 0, "prefill")
    out = tmp / "cached.parquet"

    def argv(rows: int, target: Path = out) -> list[str]:
        return [
            *synthc_command(), "run", str(SPEC), "--rows", str(rows), "--out", str(target),
            "--cache", str(cache), "--quiet",
        ]  # fmt: skip

    run_child(argv(check_rows), env)  # warm-up: page cache, bytecode caches
    expect_requests(server_requests(server), 0, "cached warm-up")
    runs: dict[int, list[dict[str, float]]] = {rows: [] for rows in sizes}
    for i in range(max(sizes.values())):
        for rows, repeat in sizes.items():
            if i >= repeat:
                continue
            r = run_child(argv(rows), env)
            expect_requests(server_requests(server), 0, f"cached run of {rows:,} cells")
            if text_cells(out) != (rows, rows):
                sys.exit(f"cached run of {rows:,} cells: output has {text_cells(out)}")
            runs[rows].append({"wall_s": r.wall_s, "cpu_s": r.cpu_s, "max_rss_mib": r.max_rss_kib / 1024})
    # the same runs to JSON lines: what the Parquet sink's row-group buffer adds to the peak RSS
    jsonl_runs: dict[int, list[float]] = {rows: [] for rows in memory}
    for _ in range(min(sizes[rows] for rows in memory)):
        for rows in memory:
            r = run_child(argv(rows, tmp / "cached.jsonl"), env)
            expect_requests(server_requests(server), 0, f"cached run of {rows:,} cells to JSON lines")
            jsonl_runs[rows].append(r.max_rss_kib / 1024)
    check_argv = [
        "run",
        str(SPEC),
        "--rows",
        str(check_rows),
        "--out",
        str(out),
        "--cache",
        str(cache),
        "--quiet",
    ]
    r = run_child([sys.executable, "-c", LITELLM_CHECK, *check_argv], env)
    expect_requests(server_requests(server), 0, "import check")
    imported = json.loads(r.stdout)
    if imported["code"] != 0:
        sys.exit(f"import check: synthc exited {imported['code']}")
    profile = json.loads(
        run_child(
            [
                sys.executable,
                __file__,
                "--internal",
                "profile-cached",
                str(SPEC),
                str(cache),
                str(big),
                str(tmp),
            ],
            env,
        ).stdout
    )
    expect_requests(server_requests(server), 0, "cached profile")
    results = [
        {
            "rows": rows,
            "repeat": len(rs),
            "median_wall_s": median([r["wall_s"] for r in rs]),
            "median_cpu_s": median([r["cpu_s"] for r in rs]),
            "median_max_rss_mib": median([r["max_rss_mib"] for r in rs]),
            "cells_per_s": rows / median([r["wall_s"] for r in rs]),
            "runs": rs,
        }
        for rows, rs in runs.items()
    ]
    return {
        "prefill": json.loads(pre.stdout),
        "prefill_wall_s": pre.wall_s,
        "results": results,
        "imported": imported["modules"],
        "import_check_rows": check_rows,
        "profile": profile,
        "jsonl_max_rss_mib": {rows: median(rs) for rows, rs in jsonl_runs.items()},
    }


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------

NAMES = {"synthc": "synthc run", "litellm": "plain LiteLLM", "aiohttp": "raw aiohttp"}


def markdown(
    data: dict[str, Any], facts: dict[str, Any], command: str, when: str, elapsed: float, loads: Any
) -> str:
    tp, imports, prof, cached = data["throughput"], data["imports"], data["profile"], data["cached"]
    n = tp["cells"]
    fig = throughput_figures(tp, imports)
    ratio_all = fig["synthc"]["calls_per_s"] / fig["litellm"]["calls_per_s"]
    ratio_none = fig["synthc"]["calls_per_s_no_import"] / fig["litellm"]["calls_per_s_no_import"]
    by_rows = {r["rows"]: r for r in cached["results"]}
    big, small = data["sizes"]["big"], data["sizes"]["small"]
    mem_rows = data["sizes"]["memory"]
    big_rate = by_rows[big]["cells_per_s"]
    small_wall = by_rows[small]["median_wall_s"]
    mem = [by_rows[r] for r in mem_rows]
    growth = mem[-1]["median_max_rss_mib"] / mem[0]["median_max_rss_mib"]
    imported = [m for m, yes in cached["imported"].items() if yes]
    verdict = "yes" if ratio_all >= 1.0 and ratio_none >= 1.0 else "NO"
    headline = [
        f"- throughput, {n:,} cells at {tp['latency_s'] * 1000:.0f} ms latency, concurrency {tp['concurrency']}: "
        f"synthc **{fig['synthc']['calls_per_s']:,.0f} calls/s** "
        f"({fig['synthc']['cpu_ms_per_call']:.2f} CPU ms/call), plain LiteLLM "
        f"{fig['litellm']['calls_per_s']:,.0f} calls/s ({fig['litellm']['cpu_ms_per_call']:.2f}), raw aiohttp "
        f"{fig['aiohttp']['calls_per_s']:,.0f} calls/s ({fig['aiohttp']['cpu_ms_per_call']:.2f}) — process "
        "start and imports included for all three",
        f"- synthc / plain LiteLLM: **{ratio_all:.2f}×** with imports included, **{ratio_none:.2f}×** with "
        f"each client's heavy import subtracted — no slower than plain LiteLLM (≥ 1.0): **{verdict}**",
        f"- fully cached rerun of {big:,} cells: **{big_rate:,.0f} cells/s** end to end "
        f"({by_rows[big]['median_wall_s']:.2f} s; target ≥ {TARGET_CACHED_CELLS_PER_S:,}: "
        f"{'met' if big_rate >= TARGET_CACHED_CELLS_PER_S else 'NOT met'}); 0 requests to the server; "
        f"LiteLLM imported: {'YES (' + ', '.join(imported) + ')' if imported else 'no'}",
        f"- {small:,} cached cells end to end: **{small_wall:.2f} s** (target < {TARGET_SMALL_S:g} s: "
        f"{'met' if small_wall < TARGET_SMALL_S else 'NOT met'})",
        "- peak RSS of cached runs: "
        + ", ".join(f"{r['median_max_rss_mib']:.0f} MiB at {r['rows']:,}" for r in mem)
        + f" ({growth:.2f}× for {mem[-1]['rows'] / mem[0]['rows']:.0f}× the cells; flat: "
        f"{'yes' if growth <= FLAT else 'NO'})",
    ]
    tp_rows = []
    for name, f in fig.items():
        tp_rows.append(
            [NAMES[name], f"{f['wall_s']:.2f}", f"{f['calls_per_s']:,.0f}", f"{f['cpu_ms_per_call']:.2f}",
             f"{f['import_wall_s']:.2f}", f"{f['wall_no_import_s']:.2f}", f"{f['calls_per_s_no_import']:,.0f}",
             f"{f['cpu_ms_per_call_no_import']:.2f}"]
        )  # fmt: skip
    ratio_rows = [
        ["synthc / plain LiteLLM", f"{ratio_all:.2f}×", f"{ratio_none:.2f}×"],
        ["synthc / raw aiohttp", f"{fig['synthc']['calls_per_s'] / fig['aiohttp']['calls_per_s']:.2f}×",
         f"{fig['synthc']['calls_per_s_no_import'] / fig['aiohttp']['calls_per_s_no_import']:.2f}×"],
        ["plain LiteLLM / raw aiohttp", f"{fig['litellm']['calls_per_s'] / fig['aiohttp']['calls_per_s']:.2f}×",
         f"{fig['litellm']['calls_per_s_no_import'] / fig['aiohttp']['calls_per_s_no_import']:.2f}×"],
        ["CPU per call: synthc / plain LiteLLM",
         f"{fig['synthc']['cpu_ms_per_call'] / fig['litellm']['cpu_ms_per_call']:.2f}×",
         f"{fig['synthc']['cpu_ms_per_call_no_import'] / fig['litellm']['cpu_ms_per_call_no_import']:.2f}×"],
    ]  # fmt: skip
    inner = {
        name: (
            median([r["work_s"] for r in tp["runs"][name]]),
            median([r["work_cpu_s"] for r in tp["runs"][name]]),
        )
        for name in ("litellm", "aiohttp")
    }
    import_rows = [
        [f"`python -c {IMPORTS[k]!r}`".replace("'", '"'),
         f"{imports['median_wall_s'][k]:.2f}", f"{imports['median_cpu_s'][k]:.2f}",
         "—" if k == "python" else f"{imports['import_wall_s'][k]:.2f}",
         "—" if k == "python" else f"{imports['import_cpu_s'][k]:.2f}"]
        for k in IMPORTS
    ]  # fmt: skip
    parts, real_ms, plain_ms = profile_table(prof)
    sprof, pprof = prof["synthc"], prof["litellm"]
    cpu_prof, wall_prof = sprof["profiles"]["thread"], sprof["profiles"]["wall"]
    plain_prof = pprof["profiles"]["thread"]
    threads = cpu_prof["thread_s"]
    profiled = sum(threads.values())
    plain_profiled = sum(plain_prof["thread_s"].values())
    package_names = list(dict.fromkeys([*cpu_prof["by_package_s"], *plain_prof["by_package_s"]]))
    packages = [
        [label,
         f"{cpu_prof['by_package_s'].get(label, 0.0) / profiled * real_ms:.3f}",
         f"{plain_prof['by_package_s'].get(label, 0.0) / plain_profiled * plain_ms:.3f}"]
        for label in package_names
    ]  # fmt: skip
    top = [
        [f"`{t['function']}`", f"{t['own_s'] * 1000:,.0f}", f"{t['calls']:,}"] for t in cpu_prof["top_own_s"]
    ]
    timed, iso = sprof["timed"], sprof["isolated"]
    steps, cells = timed["steps"], sprof["rows"]
    timed_ms = timed["cpu_s"] / cells * 1000
    extras_ms = sum(v["cpu_s"] for v in steps.values()) / cells * 1000
    labels = {
        "cost": "cost lookup (`transport.cost_usd` → `litellm.cost_per_token`; LiteLLM has priced the call already)",
        "cache_put": "cache put (`Cache.put`: INSERT + COMMIT per answer, on the cache writer thread: its wall time no longer holds up the event loop)",
        "cache_get": "cache re-check before each call (`Cache.get` in `Scheduler._cached`, event loop thread)",
        "cache_get_many": "bulk cache lookup (`Cache.get_many`, main thread, per chunk)",
        "keys": "cache keys (`ColumnRequests.keys`, main thread, per chunk)",
        "render": "render prompts (`render_messages`, main thread, per chunk)",
    }
    alone = {
        "cache_put": f"{iso['put_cpu_s'] * 1000:.3f} / {iso['put_wall_s'] * 1000:.3f}",
        "cache_get": f"{iso['get_cpu_s'] * 1000:.3f} / {iso['get_wall_s'] * 1000:.3f}",
    }
    timed_rows = [
        [labels[k], f"{v['calls']:,}", f"{v['cpu_s'] / cells * 1000:.3f}", f"{v['wall_s'] / cells * 1000:.3f}",
         alone.get(k, "—")]
        for k, v in steps.items()
    ]  # fmt: skip
    timed_rows += [
        ["everything else: the LiteLLM call (event loop + executor threads), the scheduler, the event "
         "loop (total minus the above)", "", f"{timed_ms - extras_ms:.3f}", "", ""],
        ["**total (process CPU per cell, all threads)**", "", f"**{timed_ms:.3f}**", "", ""],
    ]  # fmt: skip
    put = steps["cache_put"]
    put_wall = put["wall_s"] / max(1, put["calls"]) * 1000
    litellm_import = (
        median([r["import_s"] for r in tp["runs"]["litellm"]]),
        median([r["import_cpu_s"] for r in tp["runs"]["litellm"]]),
    )
    server_cpu = {
        name: median([r["server_cpu_s"] for r in tp["runs"][name]]) / n * 1000 for name in tp["runs"]
    }
    cached_rows = [
        [f"{r['rows']:,}" if r["rows"] else "0 (fixed cost)", str(r["repeat"]), f"{r['median_wall_s']:.3f}",
         f"{r['cells_per_s']:,.0f}" if r["rows"] else "—", f"{r['median_cpu_s']:.2f}",
         f"{r['median_max_rss_mib']:.0f}"]
        for r in cached["results"]
    ]  # fmt: skip
    zero = by_rows[0]["median_wall_s"]
    per_cell_us = (by_rows[big]["median_wall_s"] - zero) / big * 1e6
    cprof = cached["profile"]
    ctotal = cprof["parts_s"]["run"]
    creal = cprof["unprofiled"]["wall_s"]
    cached_profile_rows = [
        [
            name,
            f"{s / ctotal * creal * 1000:,.0f}",
            f"{s / ctotal * creal / cprof['rows'] * 1e6:.2f}",
            f"{s / ctotal:.1%}",
        ]
        for name, s in cached_parts(cprof)
    ]
    ctop = [
        [f"`{t['function']}`", f"{t['own_s'] * 1000:,.0f}", f"{t['calls']:,}"] for t in cprof["top_own_s"]
    ]
    from runtime.writers import ROW_GROUP_ROWS

    jsonl = cached["jsonl_max_rss_mib"]
    mem_table = [
        [f"{r['rows']:,}", f"{r['median_max_rss_mib']:.0f}",
         f"{r['median_max_rss_mib'] / mem[0]['median_max_rss_mib']:.2f}×", f"{r['median_wall_s']:.2f}",
         f"{jsonl[r['rows']]:.0f}", f"{jsonl[r['rows']] / jsonl[mem[0]['rows']]:.2f}×"]
        for r in mem
    ]  # fmt: skip
    occurrence = cprof["occurrence_map"]
    packages_line = ", ".join(f"{k} {v}" for k, v in facts["packages"].items())
    lines = [
        SECTION,
        "",
        f"Measured {when} in one run of `{command}` ({elapsed / 60:.1f} min), from the repository root, on "
        f"commit `{facts['git_commit'] or 'unknown'}`"
        + (" (with uncommitted changes)" if facts["git_dirty"] else "")
        + ". Load average (1, 5, 15 min) before: "
        + ", ".join(f"{x:.2f}" for x in loads[0])
        + "; after: "
        + ", ".join(f"{x:.2f}" for x in loads[1])
        + ".",
        "",
        f"Machine: {facts['nproc']} cores ({next((x.split(':', 1)[1].strip() for x in facts['lscpu_head'] if x.startswith('Model name')), '?')}), "
        f"Python {facts['python']}; {packages_line}, {data['versions']}. The same 2 cores run the "
        "server process, the client process, and whatever else the machine is doing (the load "
        "average above): figures are noisy, compare ratios from the same run.",
        "",
        "### Headline",
        "",
        *headline,
        "",
        "### Method",
        "",
        "- Commands: `uv run python benchmarks/bench_llm.py --results benchmarks/RESULTS.md` (this "
        "section; the full run) and `uv run python benchmarks/bench_llm.py --quick` (a smoke run of "
        "every step at tiny sizes, about 30 s; report in `benchmarks/out/llm.md`); raw numbers of "
        "every run in `benchmarks/out/llm.json`.",
        f"- Server: `tests/support/openai_server.py` as a `ServerProcess` (its own process, so its "
        f"CPU is not the client's), {tp['latency_s'] * 1000:.0f} ms latency per answer; its counters "
        "(`/_fake/stats`, reset before every client run) must show exactly the client's number of "
        "`POST /v1/chat/completions`, all answered 200, and **no other request** (no probe, no "
        "`/models`) — checked after every run, warm-ups included; cached runs must show 0.",
        f"- Throughput: {n:,} distinct single-prompt cells (`Write about item {{n}}`, n = 1..{n:,}), "
        f"concurrency {tp['concurrency']}, median of {tp['repeat']} interleaved repetitions"
        + (" after one unmeasured warm-up per client (200 cells)" if tp["warm_up"] else " (no warm-up)")
        + ". Each client is a fresh process timed from start "
        "to exit (interpreter start and imports included); CPU is the child's own user + system "
        "time of all its threads (`os.wait4`). All three send the same requests (model, one user "
        "message, synthc's provider `seed`).",
        f"  - synthc: `synthc run benchmarks/specs/llm_items.yaml --rows {n} --out X.parquet --cache "
        "<fresh file> --quiet` (plan cache warm; a new, empty response cache every run); the output "
        f"must hold {n:,} non-null answers.",
        '  - plain LiteLLM: `litellm.acompletion(model="openai/gpt-4o-mini", api_base=..., '
        "api_key=..., seed=..., messages=[...])` under `asyncio.Semaphore(128)`, "
        "`LITELLM_LOCAL_MODEL_COST_MAP=True` set before the import.",
        "  - raw aiohttp: one `aiohttp.ClientSession(connector=TCPConnector(limit=128))`, "
        "`asyncio.Semaphore(128)`, `POST {base}/chat/completions`, JSON decoded.",
        "  - **Imports: the main figures include every client's imports** (all three are fresh "
        'processes). The "imports subtracted" columns take off each client\'s heavy import, measured '
        f"alone as a process (median of {imports['repeat']}, run right after each repetition's clients) "
        "minus a bare `python -c pass`: LiteLLM's (`load_litellm()`) for synthc and for plain LiteLLM "
        "(the same library), aiohttp's for raw aiohttp. synthc's own imports (Polars, typer, the "
        "compiler) stay in its figures.",
        f"- Cached figures: the cache is filled once for {data['sizes']['prefill']:,} rows without any "
        "server (`--internal prefill`: the executor generates each chunk's non-LLM columns, "
        "`runtime.llm.prompts.render_messages` and `ColumnRequests.keys` give the run's exact keys, "
        "`Cache.put_many` stores the answers the server would give; then `LLMRun.fill` with a "
        "transport that refuses every call must find every cell cached). Every size reads that one "
        "file (keys depend on the row, not on `--rows`). Each run: `synthc run "
        "benchmarks/specs/llm_items.yaml --rows N --out X.parquet --cache FILE --quiet` as a fresh "
        "process with `BENCH_BASE` pointing at the running server, interleaved, after one "
        "unmeasured warm-up; the output must hold N non-null answers. LiteLLM: "
        '`python -c "from synthc.cli import run; run([...])"` on the same cache, then '
        f"`'litellm' in sys.modules` (also openai, httpx, aiohttp) — {cached['import_check_rows']:,} cells.",
        "- Peak RSS: the child's own `ru_maxrss` (`os.wait4`), median per size.",
        "",
        f"### Throughput: {n:,} cells, {tp['latency_s'] * 1000:.0f} ms latency, concurrency {tp['concurrency']}",
        "",
        table(
            [
                "client",
                "wall s",
                "calls/s",
                "CPU ms/call",
                "heavy import s",
                "wall s, import subtracted",
                "calls/s, import subtracted",
                "CPU ms/call, import subtracted",
            ],
            tp_rows,
        ),
        "",
        table(["ratio (calls/s)", "imports included", "imports subtracted"], ratio_rows),
        "",
        f"- the ideal at this latency and concurrency is {tp['concurrency'] / tp['latency_s']:,.0f} calls/s "
        f"({n * tp['latency_s'] / tp['concurrency']:.2f} s for {n:,} cells) with zero client CPU",
        "- the baselines' own timing of their request phase (after their imports, until the last "
        "answer): plain LiteLLM "
        f"{inner['litellm'][0]:.2f} s ({n / inner['litellm'][0]:,.0f} calls/s, {inner['litellm'][1] / n * 1000:.2f} CPU ms/call), "
        f"raw aiohttp {inner['aiohttp'][0]:.2f} s ({n / inner['aiohttp'][0]:,.0f} calls/s, "
        f"{inner['aiohttp'][1] / n * 1000:.2f} CPU ms/call)",
        f"- request phase only (no process start, no imports), CPU per call: synthc {real_ms:.2f} ms, "
        f"plain LiteLLM {plain_ms:.2f} ms (both in-process, {sprof['rows']:,} cells after a warm-up: see "
        f"the profile below); plain LiteLLM's self-timed request phase above: "
        f"{inner['litellm'][1] / n * 1000:.2f} ms, raw aiohttp's {inner['aiohttp'][1] / n * 1000:.2f} ms",
        f"- LiteLLM's import as plain LiteLLM's script timed it in-process: {litellm_import[0]:.2f} s, "
        f"{litellm_import[1]:.2f} CPU s (median; compare the import-alone runs below)",
        "- server CPU per request (its serving thread): "
        + ", ".join(f"{NAMES[k]} {v:.2f} ms" for k, v in server_cpu.items()),
        "",
        table(
            ["import alone", "wall s", "CPU s", "import wall s (minus bare python)", "import CPU s"],
            import_rows,
        ),
        "",
        f"### Where synthc's CPU goes per call, next to plain LiteLLM's ({sprof['rows']:,} cells, in-process profiles)",
        "",
        f"Each side in a child process of its own, against the same server: synthc as `synthc.api.write` "
        f"of the same spec, plain LiteLLM as the same `acompletion` loop as above, each at "
        f"{sprof['rows']:,} cells after importing LiteLLM and a warm-up of {sprof['warm_rows']:,} cells "
        "(imports and first-call set-up are not counted). Unprofiled: synthc "
        f"{sprof['unprofiled']['wall_s']:.2f} s and **{real_ms:.2f} CPU ms per call**, plain LiteLLM "
        f"{pprof['unprofiled']['wall_s']:.2f} s and **{plain_ms:.2f} CPU ms per call** (process CPU, all "
        "threads). Then cProfile in every thread that runs Python: the caller's, the event loop's, "
        "and the loop's default executor's (LiteLLM's `acompletion` runs the synchronous "
        "`completion()` there through `run_in_executor`; "
        f"{cpu_prof['executor_threads']} threads for synthc, {plain_prof['executor_threads']} for "
        "plain), with a per-thread CPU clock (`time.thread_time`). The profiler inflates CPU "
        f"({profiled / sprof['unprofiled']['cpu_s']:.1f}× for synthc, "
        f"{plain_profiled / pprof['unprofiled']['cpu_s']:.1f}× for plain), so each ms column is that "
        "side's CPU share times its unprofiled CPU per call. The wall share is a second synthc "
        "profile with the default wall clock (idle waits in epoll, on locks and queues left out; "
        "what remains includes blocking I/O and preemption by other processes on this loaded "
        f"machine: main {wall_prof['thread_s']['main']:.2f} s, loop {wall_prof['thread_s']['loop']:.2f} s, "
        f"executor {wall_prof['thread_s']['executor']:.2f} s).",
        "",
        "Directly timed (a separate, unprofiled write of the same size with wrappers around synthc's "
        "synchronous steps; CPU = `time.thread_time` of the calling thread, wall = time inside the step):",
        "",
        table(
            [
                "step",
                "calls",
                "CPU ms per cell",
                "wall ms per cell",
                "alone in a quiet process: CPU / wall ms per op",
            ],
            timed_rows,
        ),
        "",
        f"- synthc − plain LiteLLM, CPU per call: {timed_ms - plain_ms:+.3f} ms (timed run) / "
        f"{real_ms - plain_ms:+.3f} ms (unprofiled run); synthc's timed steps above: {extras_ms:.3f} ms.",
        f"- `Cache.put` alone takes {iso['put_wall_s'] * 1000:.3f} ms; inside the run it holds the event loop "
        f"thread {put_wall:.3f} ms per answer, {put['cpu_s'] / max(1, put['calls']) * 1000:.3f} ms of it on "
        f"CPU; over the run {put['wall_s']:.2f} s of {timed['wall_s']:.2f} s of wall time, during which the "
        "loop serves no other cell."
        + (
            " Each SQLite call releases the GIL; while LiteLLM's executor threads run Python, the loop "
            f"thread waits to get it back (switch interval {sprof['switch_interval_s'] * 1000:g} ms)."
            if put_wall > 3 * iso["put_wall_s"] * 1000
            else ""
        ),
        "",
        "The profiles (cProfile; its overhead is per Python function call, so Python-heavy code is "
        "inflated more than C-heavy code such as SQLite — trust the direct timings above for those):",
        "",
        table(
            [
                "part",
                "synthc ≈ CPU ms/call",
                "synthc CPU share",
                "synthc wall share",
                "plain LiteLLM ≈ CPU ms/call",
                "plain CPU share",
            ],
            parts,
        ),
        "",
        "CPU ms per call by package (own time, each side's CPU-clock profile scaled the same way):",
        "",
        table(["package", "synthc", "plain LiteLLM"], packages),
        "",
        "synthc's top functions by own time (the CPU-clock profile):",
        "",
        table(["function", "own CPU ms (profiled)", "calls"], top),
        "",
        "### Fully cached reruns (process start included)",
        "",
        table(
            ["cells", "runs", "median wall s", "cells/s", "median CPU s", "median peak RSS MiB"], cached_rows
        ),
        "",
        f"- {big:,} cells: {big_rate:,.0f} cells/s (target ≥ {TARGET_CACHED_CELLS_PER_S:,}: "
        f"{'met' if big_rate >= TARGET_CACHED_CELLS_PER_S else 'NOT met'})",
        f"- {small:,} cells: {small_wall:.3f} s (target < {TARGET_SMALL_S:g} s: "
        f"{'met' if small_wall < TARGET_SMALL_S else 'NOT met'})",
        "- server requests during every cached run: 0 (checked after each run); modules imported by a "
        "fully cached `synthc.cli.run`: "
        + ", ".join(f"{m} {'YES' if yes else 'no'}" for m, yes in cached["imported"].items()),
        f"- fixed cost of a cached run (`--rows 0`: interpreter start, imports, plan from the plan cache, "
        f"opening the cache, an empty Parquet file; median of {by_rows[0]['repeat']}): {zero:.3f} s wall, "
        f"{by_rows[0]['median_cpu_s']:.2f} s CPU; on top of it each cached cell costs "
        f"{per_cell_us:.2f} µs ({big:,}-cell median minus the fixed cost), i.e. "
        f"{1e6 / per_cell_us:,.0f} cells/s once started. {big:,} cells at "
        f"{TARGET_CACHED_CELLS_PER_S:,} cells/s means ≤ {big / TARGET_CACHED_CELLS_PER_S:.2f} s end to end.",
        f"- prefill of {cached['prefill']['rows']:,} cells (not a synthc figure): "
        f"{cached['prefill']['seconds']:.1f} s in-process",
        "",
        f"Where a cached run's time goes ({cprof['rows']:,} cells, `synthc.cli.run` in-process after a "
        f"tiny run imported everything, so no imports here; unprofiled {creal:.2f} s wall, "
        f"{cprof['unprofiled']['cpu_s']:.2f} s CPU; cProfile shares scaled to that wall time):",
        "",
        table(["part", "ms", "µs per cell", "share"], cached_profile_rows),
        "",
        "Top functions by own time (same profile):",
        "",
        table(["function", "own ms (profiled)", "calls"], ctop),
        "",
        "### Peak RSS of fully cached runs",
        "",
        table(
            [
                "cells",
                "peak RSS MiB (Parquet)",
                "vs smallest",
                "wall s",
                "peak RSS MiB (same run to JSON lines)",
                "vs smallest",
            ],
            mem_table,
        ),
        "",
        f"- what grows with the cells: the occurrence map of `runtime.llm.prompts.ColumnRequests` "
        f"(`_seen`: one entry per distinct prompt digest (12 bytes: a sorted uint64 array and uint32 counts), kept for the whole run so each cell's "
        f"occurrence index depends on every earlier row): {occurrence['entries']:,} entries, "
        f"{occurrence['bytes'] / 2**20:.1f} MiB at {cprof['rows']:,} cells "
        f"({occurrence['bytes'] / max(1, occurrence['entries']):.0f} bytes per distinct prompt: "
        "the arrays' `nbytes`); and, for Parquet, the sink's row-group buffer (`runtime.writers` writes "
        f"row groups of `ROW_GROUP_ROWS` = {ROW_GROUP_ROWS:,} rows, so below that the whole output is "
        "buffered). "
        "The JSON-lines column is the same runs without the Parquet sink.",
        f"- flat: {'yes' if growth <= FLAT else 'NO'} — {mem[-1]['rows'] / mem[0]['rows']:.0f}× the cells, "
        f"{growth:.2f}× the peak RSS (flat means ≤ {FLAT}×, as for issue 2)",
    ]
    return "\n".join(lines)


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("litellm", "openai", "httpx", "aiohttp"):
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name} not installed")
    return ", ".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repetition: a smoke run")
    parser.add_argument("--results", type=Path, help="append/replace the section in this markdown file")
    parser.add_argument("--cells", type=int, default=5_000, help="cells per throughput run (default 5,000)")
    parser.add_argument("--repeat", type=int, default=3, help="throughput repetitions (default 3)")
    parser.add_argument("--internal", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.internal:  # this script as its own child
        kind, *rest = args.internal
        if kind == "prefill":
            result = prefill_child(Path(rest[0]), Path(rest[1]), int(rest[2]))
        elif kind == "profile":
            result = profile_child(Path(rest[0]), int(rest[1]), int(rest[2]), Path(rest[3]))
        elif kind == "profile-litellm":
            result = plain_profile_child(rest[0], int(rest[1]), int(rest[2]), int(rest[3]))
        elif kind == "profile-cached":
            result = cached_profile_child(Path(rest[0]), Path(rest[1]), int(rest[2]), Path(rest[3]))
        else:
            sys.exit(f"unknown internal mode {kind}")
        print(json.dumps(result), flush=True)
        return

    from tests.support.openai_server import ServerProcess

    if args.quick:
        cells, repeat = 100, 1
        profile_rows, warm_rows = 50, 10
        big, small, memory = 20_000, 2_000, [2_000, 20_000]
        sizes = {0: 1, small: 1, big: 1}
    else:
        cells, repeat = args.cells, args.repeat
        profile_rows, warm_rows = 1_000, 200
        big, small, memory = 100_000, 2_000, [20_000, 100_000, 200_000]
        sizes = {0: 5, small: 5, 20_000: 3, big: 3, 200_000: 3}
    prefill_rows = max(sizes)

    started = time.perf_counter()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    facts = machine()
    load_before = os.getloadavg()
    data: dict[str, Any] = {
        "sizes": {"big": big, "small": small, "memory": memory, "prefill": prefill_rows},
        "versions": versions(),
    }
    with (
        tempfile.TemporaryDirectory(prefix="synthc-bench-llm-") as tmpdir,
        ServerProcess(latency=LATENCY_S, max_requests=10_000_000, max_lifetime=7200.0) as server,
    ):
        tmp = Path(tmpdir)
        plan_cache = tmp / "plan-cache"
        print("throughput ...", file=sys.stderr, flush=True)
        data["throughput"], data["imports"] = measure_throughput(
            server, cells, repeat, tmp, plan_cache, warm_up=not args.quick
        )
        print("profile ...", file=sys.stderr, flush=True)
        profile_dir = tmp / "profile"
        profile_dir.mkdir()
        data["profile"] = measure_profile(server, profile_rows, warm_rows, profile_dir, plan_cache)
        print("cached ...", file=sys.stderr, flush=True)
        data["cached"] = measure_cached(server, sizes, small, big, memory, prefill_rows, tmp, plan_cache)
    elapsed = time.perf_counter() - started
    loads = (load_before, os.getloadavg())

    python = Path(sys.executable)
    shown_python = (
        f"{python.parent.parent.name}/bin/{python.name}" if python.parent.name == "bin" else "python"
    )
    command = shlex.join([shown_python, shown(Path(__file__)), *sys.argv[1:]])
    md = markdown(data, facts, command, when, elapsed, loads)
    OUT.mkdir(parents=True, exist_ok=True)
    raw = {**data, "machine": facts, "date": when, "loadavg": {"before": loads[0], "after": loads[1]}}
    (OUT / "llm.json").write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    target = args.results or OUT / "llm.md"
    if args.results:
        write_section(target, SECTION, md)
    else:
        target.write_text(md + "\n", encoding="utf-8")
    print(md)
    print(f"\nwritten to {shown(target)} (raw numbers in {shown(OUT / 'llm.json')})")


if __name__ == "__main__":
    main()
