"""LLM columns through the command line: ``synthc.cli.run(argv)`` in-process, and
``python -m synthc`` in a subprocess for signals (SIGKILL, Ctrl-C), against the local fake
OpenAI server. Every run names its cache with ``--cache``."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from tests.support.llm_specs import (  # noqa: F401 - the *_fixture names are pytest fixtures
    BODY,
    FAKE_KEY,
    INPUTS,
    ROOT,
    cache_models,
    cli,
    entries,
    entries_so_far,
    expected_body,
    leftovers,
    requests,
    server_fixture,
    shared_server_fixture,
    spec,
    synthc_process,
    wait_for,
    write_spec,
)
from tests.support.openai_server import FakeOpenAI, FakeRequest, missing_key

N = 10  # rows; the tickets spec makes 2 LLM calls per row
SUMMARY = 'summary: {type: llm, model: writer, prompt: "Summarize: {{ body }}"}'  # free text, reads body


def run_args(spec_path: Path, out: Path, cache: Path, *extra: str) -> list[str | Path]:
    return ["run", spec_path, "--out", out, "--cache", cache, *extra]


# --------------------------------------------------------------------------- the cache


def test_rerun_makes_no_request_and_writes_the_same_bytes(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path
) -> None:
    path, cache = write_spec(tmp_path, spec(N)), tmp_path / "cache.db"
    code, _, err = cli(capsys, *run_args(path, tmp_path / "a.parquet", cache))
    assert code == 0, err
    assert requests(server) == 2 * N
    assert f"body (writer → openai/gpt-4o-mini): 0 cached, {N} called" in err

    server.reset()
    code, _, err = cli(capsys, *run_args(path, tmp_path / "b.parquet", cache))
    assert code == 0, err
    assert requests(server) == 0
    assert f"triage (writer → openai/gpt-4o-mini): {N} cached, 0 called" in err
    first = (tmp_path / "a.parquet").read_bytes()
    assert (tmp_path / "b.parquet").read_bytes() == first

    code, out, _ = cli(capsys, "cache", "stats", "--cache", cache)
    assert code == 0
    assert re.search(rf"^entries\s+{2 * N}$", out, re.M), out
    assert re.search(rf"^\s+gpt-4o-mini: {2 * N}$", out, re.M), out

    code, out, _ = cli(capsys, "cache", "clear", "--cache", cache)
    assert code == 0
    assert f"removed {2 * N} entries" in out
    assert entries(cache) == 0

    code, _, err = cli(capsys, *run_args(path, tmp_path / "c.parquet", cache))
    assert code == 0, err
    assert requests(server) == 2 * N
    assert (tmp_path / "c.parquet").read_bytes() == first  # the fake answers deterministically


def test_no_cache_calls_every_time_and_creates_no_file(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where the default .synthc/cache.db would go
    path = write_spec(tmp_path, spec(N))
    for name in ("a.parquet", "b.parquet"):
        server.reset()
        code, _, err = cli(capsys, "run", path, "--out", tmp_path / name, "--no-cache")
        assert code == 0, err
        assert requests(server) == 2 * N
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert not (tmp_path / ".synthc").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet", "b.parquet", "spec.yaml"]


def test_dry_run_and_plan_call_nothing_and_create_no_cache(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path
) -> None:
    path, cache, out = write_spec(tmp_path, spec(N)), tmp_path / "cache.db", tmp_path / "out.parquet"
    code, dry, _ = cli(capsys, *run_args(path, out, cache, "--dry-run"))
    assert code == 0
    assert f"body  writer → openai/gpt-4o-mini: {N} cells, 0 cached, {N} to call" in dry
    assert f"triage  writer → openai/gpt-4o-mini: {N} cells, 0 cached, {N} to call" in dry
    assert f"total  {2 * N} calls" in dry
    assert "prompt body #1" in dry
    assert "prompt triage #1" not in dry  # its prompts need the bodies first
    code, plan, _ = cli(capsys, "plan", path, "--cache", cache)
    assert code == 0
    assert f"{N} cells, 0 cached, {N} to call" in plan
    assert requests(server) == 0
    assert not cache.exists() and not out.exists()

    code, _, err = cli(capsys, *run_args(path, out, cache))
    assert code == 0, err
    assert requests(server) == 2 * N
    frame = pl.read_parquet(out)
    first = frame.row(0, named=True)
    assert f"  [user] Write a ticket about a {first['product']} (#1)\n" in dry  # the rendered prompt
    second = frame.row(1, named=True)
    assert f"  [user] Write a ticket about a {second['product']} (#2)\n" in dry

    server.reset()
    code, plan, _ = cli(capsys, "plan", path, "--cache", cache)
    assert code == 0
    assert plan.count(f"{N} cells, {N} cached, 0 to call") == 2
    code, dry, _ = cli(capsys, *run_args(path, tmp_path / "none.parquet", cache, "--dry-run"))
    assert code == 0
    assert "total  0 calls" in dry and "prompt " not in dry
    assert requests(server) == 0
    assert not (tmp_path / "none.parquet").exists()


# --------------------------------------------------------------------------- models


def test_model_override_changes_the_model_and_every_key(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path
) -> None:
    path, cache = write_spec(tmp_path, spec(N, [*INPUTS, BODY, SUMMARY])), tmp_path / "cache.db"
    code, _, err = cli(capsys, *run_args(path, tmp_path / "a.parquet", cache))
    assert code == 0, err
    assert server.stats().by_model == {"gpt-4o-mini": 2 * N}

    server.reset()
    argv = run_args(path, tmp_path / "b.parquet", cache, "--model", "writer=openai/other-model")
    code, _, err = cli(capsys, *argv)
    assert code == 0, err
    assert server.stats().by_model == {"other-model": 2 * N}  # nothing came from the cache
    assert "body (writer → openai/other-model): 0 cached" in err
    assert dict(cache_models(cache)) == {"gpt-4o-mini": 2 * N, "other-model": 2 * N}

    server.reset()
    code, _, err = cli(capsys, *argv)
    assert code == 0, err
    assert requests(server) == 0


def test_unknown_model_alias_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path
) -> None:
    path, out, cache = write_spec(tmp_path, spec(N)), tmp_path / "out.parquet", tmp_path / "cache.db"
    code, _, err = cli(capsys, *run_args(path, out, cache, "--model", "editor=openai/gpt-4o"))
    assert code == 2
    assert "editor" in err and "declared: writer" in err
    assert requests(server) == 0
    assert not out.exists() and not cache.exists()


def test_streaming_to_stdout_reports_failed_cells_at_the_end(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path
) -> None:
    server.set_faults(missing_key(contains="(#2)"))
    path = write_spec(tmp_path, spec(3, [*INPUTS, BODY]))
    code, out, err = cli(capsys, "run", path, "--out", "-", "--cache", tmp_path / "cache.db")
    assert code == 1
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["n"] for row in rows] == [1, 2, 3]
    assert rows[1]["body"] is None
    assert rows[0]["body"] == expected_body(rows[0]["product"], 1)
    assert "1 LLM cell failed (allowed: 0); first: column `body`, row 1" in err and "HTTP 401" in err


@pytest.mark.parametrize("value", ["many", "-1", "150%"])
def test_a_bad_max_failures_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path, value: str
) -> None:
    path, out, cache = write_spec(tmp_path, spec(3)), tmp_path / "out.parquet", tmp_path / "cache.db"
    code, _, err = cli(capsys, *run_args(path, out, cache, "--max-failures", value))
    assert code == 2
    assert "--max-failures" in err
    assert requests(server) == 0 and not cache.exists()


def test_csv_output_of_a_struct_column_fails_before_any_call(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path
) -> None:
    path, out, cache = write_spec(tmp_path, spec(3)), tmp_path / "out.csv", tmp_path / "cache.db"
    code, _, err = cli(capsys, *run_args(path, out, cache))
    assert code == 1
    assert "CSV" in err and "triage" in err
    assert not out.exists()
    assert requests(server) == 0


# --------------------------------------------------------------------------- budget


def budget_latency(request: FakeRequest) -> float:
    """Request 1 is slow, the rest are quick: the budget runs out while 1 is in flight."""
    return 1.0 if request.number == 1 else 0.005


def test_max_cost_stops_the_run_and_a_rerun_asks_only_the_rest(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path
) -> None:
    server.latency = budget_latency
    path = write_spec(tmp_path, spec(20, concurrency=2))
    out, cache = tmp_path / "out.parquet", tmp_path / "cache.db"
    started = time.monotonic()
    code, _, err = cli(capsys, *run_args(path, out, cache, "--max-cost", "0.0001"))
    assert code == 1
    assert time.monotonic() - started < 10
    assert "--max-cost $0.0001" in err and "no new LLM calls were started" in err
    assert leftovers(tmp_path, out) == []
    kept = entries(cache)
    assert 0 < kept < 40  # what was answered is kept

    server.reset()
    server.latency = 0.0
    code, _, err = cli(capsys, *run_args(path, out, cache))
    assert code == 0, err
    assert requests(server) == 40 - kept
    assert entries(cache) == 40


def test_max_cost_keeps_the_answers_of_calls_in_flight(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path
) -> None:
    server.latency = budget_latency
    path = write_spec(tmp_path, spec(20, concurrency=2))
    out, cache = tmp_path / "out.parquet", tmp_path / "cache.db"
    code, _, _ = cli(capsys, *run_args(path, out, cache, "--max-cost", "0.0001"))
    assert code == 1
    assert wait_for(lambda: server.stats().in_flight == 0, timeout=5)
    assert requests(server) == entries(cache)  # every call that was made is kept


# --------------------------------------------------------------------------- broken set-ups


def foreign_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        db.execute("INSERT INTO notes (text) VALUES ('not a cache')")
    db.close()


def random_bytes(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


def damaged_sqlite(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + b"\xa5" * 8192)


NOT_OURS: list[tuple[Callable[[Path], None], str]] = [
    (random_bytes, "is not a synthc cache (not an SQLite database at all)"),
    (foreign_sqlite, "is an SQLite database but not a synthc cache"),
    (damaged_sqlite, "is damaged"),
]


@pytest.mark.parametrize(("make", "says"), NOT_OURS, ids=[make.__name__ for make, _ in NOT_OURS])
@pytest.mark.parametrize("command", ["run", "dry-run", "plan", "cache stats", "cache clear"])
def test_a_cache_that_is_not_ours_is_a_clear_error_and_left_alone(
    capsys: pytest.CaptureFixture[str],
    server: FakeOpenAI,
    tmp_path: Path,
    make: Callable[[Path], None],
    says: str,
    command: str,
) -> None:
    cache, out = tmp_path / "cache.db", tmp_path / "out.parquet"
    make(cache)
    before = cache.read_bytes()
    path = write_spec(tmp_path, spec(3))
    argv: list[str | Path] = {
        "run": run_args(path, out, cache),
        "dry-run": run_args(path, out, cache, "--dry-run"),
        "plan": ["plan", path, "--cache", cache],
        "cache stats": ["cache", "stats", "--cache", cache],
        "cache clear": ["cache", "clear", "--cache", cache],
    }[command]
    code, _, err = cli(capsys, *argv)
    assert code == 1
    assert err.startswith("error: ") and str(cache) in err and says in err
    assert cache.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.db", "spec.yaml"]
    assert requests(server) == 0


def test_server_down_stops_the_run_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path
) -> None:
    with FakeOpenAI() as gone:
        closed = gone.base_url  # nothing listens there any more
    path = write_spec(tmp_path, spec(30, [*INPUTS, BODY], api_base=closed))
    out, cache = tmp_path / "out.parquet", tmp_path / "cache.db"
    started = time.monotonic()
    code, _, err = cli(capsys, *run_args(path, out, cache))
    assert code == 1
    assert time.monotonic() - started < 20
    assert "stopped after 20 failed calls in a row" in err
    assert f"cannot reach {closed}" in err
    assert leftovers(tmp_path, out) == []
    assert entries(cache) == 0


# --------------------------------------------------------------------------- signals


@pytest.mark.slow
def test_a_killed_run_resumes_from_the_cache(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path
) -> None:
    rows, cells = 100, 200
    server.latency = 0.05
    path = write_spec(tmp_path, spec(rows, concurrency=4))
    out, cache = tmp_path / "out.parquet", tmp_path / "cache.db"
    process = synthc_process(*run_args(path, out, cache, "--quiet"), server=server)
    try:
        assert wait_for(lambda: entries_so_far(cache) >= 20, timeout=60), process.poll()
        process.kill()
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()
    kept = entries(cache)
    assert 20 <= kept < cells

    server.latency = 0.0
    server.reset()
    code, _, err = cli(capsys, *run_args(path, out, cache))
    assert code == 0, err
    assert requests(server) == cells - kept
    assert entries(cache) == cells

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    code, _, err = cli(capsys, *run_args(path, fresh / "out.parquet", fresh / "cache.db"))
    assert code == 0, err
    assert (fresh / "out.parquet").read_bytes() == out.read_bytes()
    for row in pl.read_parquet(out).iter_rows(named=True):
        assert row["body"] == expected_body(row["product"], row["n"])


@pytest.mark.slow
def test_ctrl_c_stops_promptly_and_keeps_the_cache(server: FakeOpenAI, tmp_path: Path) -> None:
    rows = 48  # 12 rounds of 4 calls at 0.5 s: about 6 s if Ctrl-C were ignored
    server.latency = 0.5
    path = write_spec(tmp_path, spec(rows, [*INPUTS, BODY], concurrency=4))
    out, cache = tmp_path / "out.parquet", tmp_path / "cache.db"
    process = synthc_process(*run_args(path, out, cache, "--quiet"), server=server)
    try:
        assert wait_for(lambda: entries_so_far(cache) >= 1, timeout=60), process.poll()
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        seconds = time.monotonic() - interrupted
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert seconds < 3, f"exited {seconds:.1f} s after Ctrl-C"
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists()
    kept = entries(cache)
    assert 1 <= kept < rows  # the cache opens and keeps what was answered


# --------------------------------------------------------------------------- the API's event loop


LEAK = textwrap.dedent(
    """
    import os
    from tests.support.llm_specs import FAKE_KEY, spec
    from tests.support.openai_server import FakeOpenAI
    from synthc import api

    with FakeOpenAI() as server:
        os.environ["FAKE_BASE"] = server.base_url
        os.environ["FAKE_KEY"] = FAKE_KEY
        for rows in (2, 3):
            print(api.generate(spec(rows), cache=False).height)
    """
)


@pytest.mark.slow
def test_a_run_leaves_no_pending_task_behind() -> None:
    """A task left pending on a run's closed loop (LiteLLM's logging worker) is reported at
    exit, and when collected while pytest parses source it crashed the test session."""
    result = subprocess.run(
        [sys.executable, "-c", LEAK],
        cwd=ROOT,
        env={**os.environ, "FAKE_KEY": FAKE_KEY},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["2", "3"]
    assert "Task was destroyed" not in result.stderr, result.stderr[-3000:]
    assert "Event loop is closed" not in result.stderr, result.stderr[-3000:]
