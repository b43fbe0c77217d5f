"""The LLM response cache: keys, round trips, durability, concurrency and refusals."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from runtime.cache import (
    APPLICATION_ID,
    CACHE_FORMAT,
    Cache,
    CachedResponse,
    CacheError,
    RequestKeys,
    request_key,
)

REPO = Path(__file__).resolve().parent.parent
MESSAGES = [
    {"role": "system", "content": "You write realistic customer support tickets."},
    {"role": "user", "content": "Write a positive ticket from Zoë about their laptop."},
]
REQUEST: dict[str, Any] = {
    "model": "openai/gpt-4o-mini",
    "messages": MESSAGES,
    "params": {"temperature": 0.9, "max_tokens": 300},
    "output_schema": None,
    "occurrence": 0,
}
ANSWER = CachedResponse("Hello", "openai/gpt-4o-mini", 12, 34, 0.00012, "stop")


def answer(i: int) -> CachedResponse:
    return CachedResponse(f"answer {i}", "m", i, 2 * i, None, "stop")


def key(i: int) -> str:
    return request_key(**{**REQUEST, "occurrence": i})


# --------------------------------------------------------------------------- keys


def test_key_is_stable() -> None:
    # A change here silently invalidates every user's cache: bump CACHE_FORMAT instead.
    assert request_key(**REQUEST) == "eaad252a3719b2f9e3af4f0928ba1d47"
    assert CACHE_FORMAT == 1


@pytest.mark.parametrize(
    "change",
    [
        {"model": "openai/gpt-4o"},
        {"messages": [*MESSAGES[:1], {"role": "user", "content": "Write a negative ticket."}]},
        {"messages": MESSAGES[1:]},
        {"params": {"temperature": 0.8, "max_tokens": 300}},
        {"params": {"temperature": 0.9, "max_tokens": 300, "seed": 1}},
        {"output_schema": {"type": "object"}},
        {"occurrence": 1},
    ],
)
def test_every_field_changes_the_key(change: dict[str, Any]) -> None:
    assert request_key(**{**REQUEST, **change}) != request_key(**REQUEST)


def test_mapping_order_and_type_do_not_change_the_key() -> None:
    reordered = {
        **REQUEST,
        "messages": [dict(reversed(m.items())) for m in MESSAGES],
        "params": MappingProxyType({"max_tokens": 300, "temperature": 0.9}),
    }
    assert request_key(**reordered) == request_key(**REQUEST)


@pytest.mark.parametrize("schema", [None, {"type": "object", "properties": {"a": {"enum": ["x", "é"]}}}])
def test_request_keys_match_request_key(schema: dict[str, Any] | None) -> None:
    keys = RequestKeys(model=REQUEST["model"], params=REQUEST["params"], output_schema=schema)
    for occurrence in (0, 7):
        expected = request_key(**{**REQUEST, "output_schema": schema, "occurrence": occurrence})
        assert keys.key(MESSAGES, occurrence) == expected


@pytest.mark.parametrize("secret", ["api_key", "api_base", "extra_headers"])
def test_credentials_never_enter_a_key(secret: str) -> None:
    with pytest.raises(ValueError, match=secret):
        request_key(**{**REQUEST, "params": {secret: "sk-123"}})


@pytest.mark.parametrize("occurrence", [-1, True, 1.0])
def test_occurrence_is_a_natural_number(occurrence: Any) -> None:
    with pytest.raises(ValueError, match="occurrence"):
        request_key(**{**REQUEST, "occurrence": occurrence})


def test_non_json_values_are_refused() -> None:
    with pytest.raises(ValueError):
        request_key(**{**REQUEST, "params": {"temperature": float("nan")}})
    with pytest.raises(TypeError):
        request_key(**{**REQUEST, "params": {"stop": {1, 2}}})


# --------------------------------------------------------------------------- round trips


def test_round_trip_of_every_field(tmp_path: Path) -> None:
    big = "x" * 10_000_000
    stored = {
        "a": ANSWER,
        "b": CachedResponse("ünïcödé 😀 \n\t\x00 終", "anthropic/claude-3-5-haiku-latest", 0, 0, None, None),
        "c": CachedResponse(big, "m", 1, 2, 0.0, "length"),
    }
    with Cache.open(tmp_path / "cache.db") as cache:
        for k, response in stored.items():
            assert cache.put(k, response) == response
        assert cache.get("a") == ANSWER
        assert cache.get("missing") is None
        assert cache.get_many([*stored, "missing"]) == stored
    with Cache.open(tmp_path / "cache.db", readonly=True) as cache:
        assert cache.get_many(stored) == stored


def test_get_many_beyond_the_sqlite_variable_limit(tmp_path: Path) -> None:
    n = 40_000  # > 32,766, SQLite's default limit of bound variables since 3.32
    with Cache.open(tmp_path / "cache.db") as cache:
        cache._db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # type: ignore[union-attr]  # as before 3.32
        assert cache.put_many((f"k{i}", answer(i)) for i in range(n)) == n
        keys = [f"k{i}" for i in range(n + 100)]
        found = cache.get_many(keys)
        assert len(found) == n and found["k39999"] == answer(39_999)
        assert cache.contains_many(keys) == {f"k{i}" for i in range(n)}
        assert cache.get_many([]) == {} and cache.contains_many(iter(())) == set()


def test_first_answer_wins(tmp_path: Path) -> None:
    with Cache.open(tmp_path / "cache.db") as cache:
        assert cache.put("k", answer(1)) == answer(1)
        assert cache.put("k", answer(2)) == answer(1)
        assert cache.put_many([("k", answer(3)), ("j", answer(4))]) == 1
        assert cache.get_many(["k", "j"]) == {"k": answer(1), "j": answer(4)}


def test_bad_responses_are_refused_before_storing(tmp_path: Path) -> None:
    with Cache.open(tmp_path / "cache.db") as cache:
        with pytest.raises(TypeError):
            cache.put("k", CachedResponse("t", "m", "12", 3))  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="surrogates"):
            cache.put("k", CachedResponse("bad \ud800", "m", 1, 2))
        assert cache.stats().entries == 0


def test_damaged_rows_are_misses_and_put_repairs_them(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    with Cache.open(path) as cache:
        cache.put_many([("good", ANSWER), ("typed", ANSWER), ("utf8", ANSWER)])
    db = sqlite3.connect(path)
    db.execute("UPDATE responses SET prompt_tokens = 'many' WHERE key = 'typed'")
    db.execute("UPDATE responses SET text = CAST(x'ff41' AS TEXT) WHERE key = 'utf8'")
    db.commit()
    db.close()
    with Cache.open(path) as cache:
        assert cache.get_many(["good", "typed", "utf8"]) == {"good": ANSWER}
        assert cache.contains_many(["good", "typed"]) == {"good"}
        assert cache.put("typed", answer(1)) == answer(1)
        assert cache.put("utf8", answer(2)) == answer(2)
        assert cache.get_many(["typed", "utf8"]) == {"typed": answer(1), "utf8": answer(2)}


def test_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "cache.db"
    with Cache.open(path) as cache:
        cache.put("k", ANSWER)
    with Cache.open(path) as cache:
        assert cache.get("k") == ANSWER
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert dict(db.execute("SELECT name, value FROM meta")) == {"application": "synthc", "format": "1"}
    db.close()


def test_stats_and_clear(tmp_path: Path) -> None:
    with Cache.open(tmp_path / "cache.db") as cache:
        cache.put("a", CachedResponse("t", "m2", 10, 5, 0.5, "stop"))
        cache.put("b", CachedResponse("t", "m1", 1, 2, None, None))
        cache.put("c", CachedResponse("t", "m2", 100, 50, 0.25, "stop"))
        stats = cache.stats()
        assert (stats.entries, stats.models) == (3, (("m1", 1), ("m2", 2)))
        assert (stats.prompt_tokens, stats.completion_tokens, stats.tokens) == (111, 57, 168)
        assert stats.cost == pytest.approx(0.75)
        assert stats.size_bytes > 0
        assert cache.clear() == 3
        assert cache.stats().entries == 0 and cache.get("a") is None
        cache.put("d", ANSWER)
    with Cache.open(tmp_path / "cache.db") as cache:
        assert cache.get("d") == ANSWER


def test_closed_and_readonly_caches_refuse_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    cache = Cache.open(path)
    cache.close()
    cache.close()
    with pytest.raises(CacheError, match="closed") as closed:
        cache.get("k")
    assert closed.value.reason == "closed"
    with Cache.open(path, readonly=True) as ro, pytest.raises(CacheError, match="read-only"):
        ro.put("k", ANSWER)


# --------------------------------------------------------------------------- durability and concurrency


_CHILD = """
import os, sys
sys.path.insert(0, {repo!r})
from runtime.cache import Cache, CachedResponse
cache = Cache.open({path!r})
for i in range({n}):
    cache.put(f"k{{i}}", CachedResponse(f"answer {{i}}", "m", i, 2 * i, None, "stop"))
print("done", flush=True)
sys.stdin.read()  # wait to be killed, with the cache still open
"""


def test_each_put_survives_sigkill(tmp_path: Path) -> None:
    path, n = tmp_path / "cache.db", 200
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD.format(repo=str(REPO), path=str(path), n=n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline() == "done\n"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    with Cache.open(path) as cache:
        found = cache.get_many(f"k{i}" for i in range(n))
    assert found == {f"k{i}": answer(i) for i in range(n)}


def _write_range(path: Path, start: int, count: int) -> None:
    with Cache.open(path) as cache:
        for i in range(start, start + count):
            cache.put(f"k{i}", answer(i))


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_range, args=(path, start, 500)) for start in (0, 500)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    with Cache.open(path) as cache:
        assert cache.get_many(f"k{i}" for i in range(1000)) == {f"k{i}": answer(i) for i in range(1000)}


def test_threads_share_one_cache(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    with Cache.open(tmp_path / "cache.db") as cache:

        def work(start: int) -> None:
            try:
                for i in range(start, start + 200):
                    cache.put(f"k{i}", answer(i))
                    assert cache.get(f"k{i}") == answer(i)
                cache.get_many(f"k{i}" for i in range(1000))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(start,)) for start in range(0, 1000, 200)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(cache.get_many(f"k{i}" for i in range(1000))) == 1000


def test_a_lock_held_too_long_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    Cache.open(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with Cache.open(path, timeout=0.1) as cache:
            assert cache.get("k") is None  # WAL: readers are not blocked by a writer
            with pytest.raises(CacheError, match="locked by another process") as locked:
                cache.put("k", ANSWER)
            assert locked.value.reason == "locked" and str(path) in str(locked.value)
    finally:
        other.execute("ROLLBACK")
        other.close()


# --------------------------------------------------------------------------- files that are not ours


def _refused(path: Path, reason: str, **options: Any) -> CacheError:
    with pytest.raises(CacheError) as refused:
        Cache.open(path, **options)
    assert refused.value.reason == reason
    assert str(path) in str(refused.value)
    return refused.value


def test_foreign_sqlite_file_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (name TEXT)")
    db.execute("INSERT INTO users VALUES ('ada')")
    db.commit()
    db.close()
    before = path.read_bytes()
    assert "not a synthc cache" in str(_refused(path, "foreign"))
    _refused(path, "foreign", readonly=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


def test_sqlite_file_with_another_application_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = 42")
    db.commit()
    db.close()
    before = path.read_bytes()
    _refused(path, "foreign")
    assert path.read_bytes() == before


@pytest.mark.parametrize("content", [b"key,value\nhello,world\n", b"SQLite format 3\x00" + b"\xff" * 200])
def test_a_file_that_is_not_a_cache_is_refused_and_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "cache.db"
    path.write_bytes(content)
    _refused(path, "not_sqlite" if content.startswith(b"key") else "damaged")
    assert path.read_bytes() == content


def test_a_newer_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    with Cache.open(path) as cache:
        cache.put("k", ANSWER)
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE name = 'format'", (str(CACHE_FORMAT + 1),))
    db.commit()
    db.close()
    assert "newer synthc" in str(_refused(path, "newer"))


def test_readonly_open_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "cache.db"
    _refused(path, "missing", readonly=True)
    assert not path.parent.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_readonly_location_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        _refused(folder / "cache.db", "readonly")
    finally:
        folder.chmod(0o700)


def test_a_readonly_file_is_refused_for_writing(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    with Cache.open(path) as cache:
        cache.put("k", ANSWER)
    path.chmod(0o400)
    try:
        if os.geteuid() != 0:
            _refused(path, "readonly")
        with Cache.open(path, readonly=True) as cache:
            assert cache.get("k") == ANSWER
    finally:
        path.chmod(0o600)


def test_a_folder_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, "not_sqlite")
