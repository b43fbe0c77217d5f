"""The LLM response cache: content-addressed answers in one embedded SQLite file.

A cell's key is :func:`request_key` (xxh3-128 of the canonical JSON of what decides the
answer); the value is a :class:`CachedResponse`. :class:`Cache` stores them in SQLite.

Guarantees:
- Each ``put`` is committed before it returns (WAL, ``synchronous=NORMAL``): a process
  killed right after (SIGKILL included) keeps it; only an OS crash or power cut can lose
  the last few commits, never corrupt the file.
- Several processes may use one file at once (WAL: readers never block; writers queue
  behind SQLite's lock for up to ``timeout`` seconds). One :class:`Cache` may be shared by
  several threads: it holds one connection behind a lock (operations take microseconds,
  and SQLite serialises writers anyway, so per-thread connections would buy nothing).
- First answer wins: ``put`` never replaces a valid entry, and returns the one stored, so
  concurrent runs that raced for the same cell agree on its answer from then on.
- A damaged entry (wrong types, undecodable text) is a miss, and the next ``put`` of its
  key repairs it. A file that is not ours (not SQLite, another program's database, a newer
  cache format) raises :class:`CacheError` and is never modified, wiped or recreated.
- Only the standard library and xxhash are imported (no LiteLLM): fully cached reruns
  and ``synthc plan`` stay light.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeAlias

import xxhash

# Bump when the key's fields or the stored row change meaning; old entries then miss.
CACHE_FORMAT = 1
APPLICATION_NAME = "synthc"
# PRAGMA application_id marks the file as ours: the bytes "synC" (0x73796E43).
APPLICATION_ID = 0x73796E43
# Seconds a writer waits for another process's lock before giving up.
DEFAULT_TIMEOUT = 30.0
# WITHOUT ROWID rows larger than ~1/4 of a page spill into overflow pages. Measured on
# 100k responses of 100-3000 characters: 16 KiB pages gave a 45% smaller file and 2x
# faster get_many than the 4 KiB default, at the same put rate.
PAGE_SIZE = 16_384
# Keys per `IN (...)` lookup: far below any SQLite variable limit (999 before 3.32);
# measured on 100k keys, 500 is within a few % of the best (larger slices gain nothing).
LOOKUP_BATCH = 500

# Request fields that carry credentials or endpoints, never part of a key (or the cache).
_SECRET_PARAMS = frozenset(
    "api_key api_base base_url headers extra_headers aws_access_key_id aws_secret_access_key"
    " aws_session_token azure_ad_token vertex_credentials".split()
)
_SQLITE_MAGIC = b"SQLite format 3\x00"
_COLUMNS = "key, model, text, prompt_tokens, completion_tokens, cost, finish_reason"
# Rows whose stored types are wrong are treated as absent (damaged entries are misses).
_VALID = (
    "typeof(model) = 'text' AND typeof(text) = 'text'"
    " AND typeof(prompt_tokens) = 'integer' AND typeof(completion_tokens) = 'integer'"
    " AND typeof(cost) IN ('real', 'null') AND typeof(finish_reason) IN ('text', 'null')"
)
_UPSERT = (
    f"INSERT INTO responses ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(key) DO UPDATE SET model = excluded.model, text = excluded.text,"
    " prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,"
    f" cost = excluded.cost, finish_reason = excluded.finish_reason WHERE NOT ({_VALID})"
)
_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, text TEXT NOT NULL,"
    " prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cost REAL,"
    " finish_reason TEXT) WITHOUT ROWID",
)

Row: TypeAlias = tuple[Any, ...]
CacheErrorReason = Literal[
    "missing", "not_sqlite", "foreign", "newer", "older", "damaged", "readonly", "locked", "io", "closed"
]


class CacheError(Exception):
    """The cache file cannot be used; the message names the path and what to do.

    ``reason`` says which failure it is, for front ends and tests."""

    def __init__(self, message: str, *, path: Path, reason: CacheErrorReason) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class CachedResponse:
    """One finished LLM call: the raw text and who answered at what cost.

    ``model`` is the model that actually answered (a fallback, when one was used);
    ``cost`` is in USD when known."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float | None = None
    finish_reason: str | None = None


@dataclass(frozen=True)
class CacheStats:
    path: Path
    entries: int
    size_bytes: int  # the database file plus its write-ahead log
    models: tuple[tuple[str, int], ...]  # (model that answered, entries), sorted by model
    prompt_tokens: int
    completion_tokens: int
    cost: float  # USD, over the entries whose cost is known

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# --------------------------------------------------------------------------- keys


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON data")


_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_plain
)


def request_key(
    *,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    output_schema: Mapping[str, Any] | None,
    occurrence: int,
) -> str:
    """The cache key of one LLM request: xxh3-128 (32 hex digits) of the canonical JSON
    (sorted keys, no whitespace, UTF-8, no NaN) of these fields and :data:`CACHE_FORMAT`.

    ``model`` is the resolved model string (not the alias), ``messages`` the rendered
    chat messages, ``params`` every parameter that can change the answer (temperature,
    max_tokens, seed, ...) exactly as sent, ``output_schema`` the JSON Schema asked for
    (None for free text). ``occurrence`` is the index of this request among identical
    requests in the dataset (0 for the first, in row order), so identical prompts in
    different rows get different answers, and a rerun finds each one again.

    The key never includes credentials: ``params`` naming an API key, ``api_base``,
    ``base_url`` or headers raise ValueError (they decide where a request goes, not what
    it answers). Values that are not JSON data (or NaN/inf) raise TypeError/ValueError.
    The same request always gives the same key, across processes and machines.
    """
    _check_request(params, occurrence)
    data = {
        "format": CACHE_FORMAT,
        "model": model,
        "messages": messages,
        "params": params,
        "output_schema": output_schema,
        "occurrence": occurrence,
    }
    return xxhash.xxh3_128_hexdigest(_ENCODER.encode(data).encode())


class RequestKeys:
    """Keys of many requests that share model, params and output schema (one LLM stage).

    ``RequestKeys(model=m, params=p, output_schema=s).key(messages, occurrence)`` equals
    ``request_key(model=m, messages=messages, params=p, output_schema=s, occurrence=...)``;
    it is about twice as fast, since the shared fields are encoded once."""

    def __init__(
        self, *, model: str, params: Mapping[str, Any], output_schema: Mapping[str, Any] | None
    ) -> None:
        _check_request(params, 0)
        # Sorted keys: format, messages, model, occurrence, output_schema, params.
        self._head = f'{{"format":{CACHE_FORMAT},"messages":'
        self._middle = f',"model":{_ENCODER.encode(model)},"occurrence":'
        schema, encoded_params = _ENCODER.encode(output_schema), _ENCODER.encode(params)
        self._tail = f',"output_schema":{schema},"params":{encoded_params}}}'

    def key(self, messages: Sequence[Mapping[str, Any]], occurrence: int) -> str:
        return self.key_of_encoded(encode_messages(messages), occurrence)

    def key_of_encoded(self, messages: str, occurrence: int) -> str:
        """:meth:`key` for messages already encoded with :func:`encode_messages`."""
        if type(occurrence) is not int or occurrence < 0:
            raise ValueError(f"occurrence must be an int ≥ 0, not {occurrence!r}")
        text = f"{self._head}{messages}{self._middle}{occurrence}{self._tail}"
        return xxhash.xxh3_128_hexdigest(text.encode())


def encode_messages(messages: Sequence[Mapping[str, Any]]) -> str:
    """The canonical JSON of ``messages`` exactly as it enters a key."""
    return _ENCODER.encode(messages)


def _check_request(params: Mapping[str, Any], occurrence: int) -> None:
    secret = sorted(_SECRET_PARAMS.intersection(params))
    if secret:
        raise ValueError(f"{', '.join(secret)} must not be part of a cache key (credentials or endpoints)")
    if type(occurrence) is not int or occurrence < 0:
        raise ValueError(f"occurrence must be an int ≥ 0, not {occurrence!r}")


# --------------------------------------------------------------------------- the cache


class Cache:
    """An open cache file; see the module docstring for the guarantees.

    Every method raises :class:`CacheError` (never a raw ``sqlite3`` exception) when the
    file cannot be read or written; use it as a context manager or call :meth:`close`.
    Open one per process: an SQLite connection must not cross a ``fork``."""

    def __init__(self, path: Path, connection: sqlite3.Connection, *, readonly: bool, timeout: float) -> None:
        self.path = path
        self.readonly = readonly
        self._db: sqlite3.Connection | None = connection
        self._timeout = timeout
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False, timeout: float = DEFAULT_TIMEOUT) -> Cache:
        """Open the cache at ``path``, creating it (and its folders) when missing unless
        ``readonly``. A writer waits up to ``timeout`` seconds for other processes' locks."""
        path = Path(path)
        _check_file(path, readonly=readonly)
        if not readonly:
            _make_folder(path)
        try:
            db = _connect(path, "ro" if readonly else "rwc", timeout)
        except sqlite3.Error as exc:
            if not (readonly and _code(exc) == sqlite3.SQLITE_CANTOPEN):
                raise _translate(exc, path, "open", timeout) from None
            # A WAL database is read through its -shm file; when there is none and none
            # can be made (a read-only disk), no process has the file open for writing,
            # so reading it as immutable is safe.
            try:
                db = _connect(path, "ro&immutable=1", timeout)
            except sqlite3.Error as exc:
                raise _translate(exc, path, "open", timeout) from None
        return cls(path, db, readonly=readonly, timeout=timeout)

    # ----------------------------------------------------------------------- reading

    def get(self, key: str) -> CachedResponse | None:
        """The stored response for ``key``, or None (absent or damaged)."""
        return self.get_many((key,)).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedResponse]:
        """The stored responses of those ``keys`` that are cached (any number of keys;
        looked up in slices of :data:`LOOKUP_BATCH`)."""
        found: dict[str, CachedResponse] = {}
        with self._connection("read") as db:
            for batch in _slices(keys):
                rows = _fetch(db, _lookup_sql(len(batch), _COLUMNS), batch)
                for key, model, text, prompt_tokens, completion_tokens, cost, finish_reason in rows:
                    found[key] = CachedResponse(
                        text, model, prompt_tokens, completion_tokens, cost, finish_reason
                    )
        return found

    def contains_many(self, keys: Iterable[str]) -> set[str]:
        """Those ``keys`` that have a (valid) stored response; cheaper than get_many."""
        found: set[str] = set()
        with self._connection("read") as db:
            for batch in _slices(keys):
                found.update(row[0] for row in db.execute(_lookup_sql(len(batch), "key"), batch))
        return found

    def stats(self) -> CacheStats:
        with self._connection("read") as db:
            models = db.execute(
                "SELECT model, count(*) FROM responses GROUP BY model ORDER BY model"
            ).fetchall()
            sums = db.execute(
                "SELECT count(*), total(prompt_tokens), total(completion_tokens), total(cost) FROM responses"
            ).fetchone()
        size = sum(_size(Path(f"{self.path}{suffix}")) for suffix in ("", "-wal"))
        return CacheStats(
            path=self.path,
            entries=sums[0],
            size_bytes=size,
            models=tuple((str(model), count) for model, count in models),
            prompt_tokens=int(sums[1]),
            completion_tokens=int(sums[2]),
            cost=float(sums[3]),
        )

    # ----------------------------------------------------------------------- writing

    def entries(self, batch: int = 10_000) -> Iterator[list[tuple[str, CachedResponse]]]:
        """Every valid entry, in key order, ``batch`` at a time (a damaged row is skipped)."""
        last = ""
        while True:
            with self._connection("read") as db:
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM responses WHERE key > ? ORDER BY key LIMIT ?", (last, batch)
                ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            decoded = (_decode(row) for row in rows)
            yield [
                (r[0], CachedResponse(r[2], r[1], r[3], r[4], r[5], r[6])) for r in decoded if r is not None
            ]

    def merge_from(self, other: Cache) -> tuple[int, int]:
        """Copy ``other``'s entries that this cache lacks (an entry already here is kept:
        same key, same request). Returns (entries read, entries written)."""
        read = written = 0
        for items in other.entries():
            read += len(items)
            written += self.put_many(items)
        return read, written

    def put(self, key: str, response: CachedResponse) -> CachedResponse:
        """Store ``response`` under ``key``, committed before this returns.

        First answer wins: if a valid entry is already stored (e.g. another process raced
        for the same cell), it is kept and returned; use the returned response."""
        with self._connection("write") as db:
            if db.execute(_UPSERT, _row(key, response)).rowcount == 1:
                return response
            stored = _fetch(db, _lookup_sql(1, _COLUMNS), [key])
            if stored:
                _, model, text, prompt_tokens, completion_tokens, cost, finish_reason = stored[0]
                return CachedResponse(text, model, prompt_tokens, completion_tokens, cost, finish_reason)
            # The stored row has valid types but undecodable text: damaged, replace it.
            db.execute(
                f"REPLACE INTO responses ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", _row(key, response)
            )
            return response

    def put_many(self, items: Iterable[tuple[str, CachedResponse]]) -> int:
        """Store many ``(key, response)`` pairs in one transaction (all or none); valid
        entries already stored are kept. Returns how many entries were written."""
        rows = [_row(key, response) for key, response in items]
        with self._connection("write") as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                written = db.executemany(_UPSERT, rows).rowcount
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
        return written

    def clear(self) -> int:
        """Remove every entry (the file stays a valid, empty cache); returns how many."""
        with self._connection("write") as db:
            removed = db.execute("DELETE FROM responses").rowcount
            try:
                db.execute("VACUUM")  # give the space back to the disk
            except sqlite3.OperationalError as exc:
                if _code(exc) not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise
                # Another process is reading: the entries are gone, the space is reused later.
        return removed

    # ----------------------------------------------------------------------- lifetime

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                try:
                    db.close()
                except sqlite3.Error as exc:
                    raise _translate(exc, self.path, "close", self._timeout) from None

    def __enter__(self) -> Cache:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._db is None else ("read-only" if self.readonly else "open")
        return f"Cache({str(self.path)!r}, {state})"

    @contextlib.contextmanager
    def _connection(self, action: Literal["read", "write"]) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, with sqlite3 errors turned into CacheError."""
        with self._lock:
            if self._db is None:
                raise CacheError(f"the cache {self.path} is closed", path=self.path, reason="closed")
            if action == "write" and self.readonly:
                raise CacheError(
                    f"the cache {self.path} was opened read-only", path=self.path, reason="readonly"
                )
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise _translate(exc, self.path, action, self._timeout) from None


# --------------------------------------------------------------------------- opening


def _check_file(path: Path, *, readonly: bool) -> None:
    """Refuse what is clearly not a cache before SQLite touches it."""
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        if readonly:
            raise CacheError(f"there is no cache at {path}", path=path, reason="missing") from None
        return
    except IsADirectoryError:
        raise CacheError(
            f"the cache path {path} is a folder, not a file", path=path, reason="not_sqlite"
        ) from None
    except OSError as exc:
        raise CacheError(
            f"cannot read the cache {path}: {exc.strerror or exc}", path=path, reason="io"
        ) from None
    if header and header != _SQLITE_MAGIC:
        raise CacheError(
            f"{path} is not a synthc cache (not an SQLite database at all); synthc leaves it alone:"
            " pass another cache path, or move the file away",
            path=path,
            reason="not_sqlite",
        )
    if not readonly and not os.access(path, os.W_OK):
        raise CacheError(
            f"the cache {path} is read-only; make it writable, or open it read-only",
            path=path,
            reason="readonly",
        )


def _make_folder(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        message = f"cannot create the folder for the cache {path}: {exc.strerror or exc}"
        raise CacheError(message, path=path, reason="readonly") from None
    if not path.exists() and not os.access(path.parent, os.W_OK):
        message = f"cannot create the cache {path}: its folder is not writable"
        raise CacheError(message, path=path, reason="readonly")


def _connect(path: Path, mode: str, timeout: float) -> sqlite3.Connection:
    """A connection whose file is checked as ours (or newly made) and set up for WAL;
    sqlite3 errors propagate for the caller to translate."""
    db = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode={mode}",
        uri=True,
        timeout=timeout,
        isolation_level=None,  # autocommit: every put is its own committed transaction
        check_same_thread=False,  # shared across threads behind Cache._lock
    )
    # Setting up a new file (page size, WAL) needs locks that SQLite may refuse at once,
    # without its busy handler, while another process does the same: retry until timeout.
    deadline = time.monotonic() + timeout
    while True:
        try:
            _prepare(db, path, readonly=mode != "rwc")
            return db
        except sqlite3.OperationalError as exc:
            if _code(exc) not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or time.monotonic() > deadline:
                db.close()
                raise
            time.sleep(0.01)
        except BaseException:
            db.close()
            raise


def _prepare(db: sqlite3.Connection, path: Path, *, readonly: bool) -> None:
    """Check that the file is ours (reading only), or make a new one; then set up WAL."""
    if _is_empty(db):
        if readonly:
            raise CacheError(f"{path} is an empty file, not a synthc cache", path=path, reason="foreign")
        db.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # both persistent: properties of the file
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            if _is_empty(db):  # re-checked under the write lock: another process may have won
                for statement in _SCHEMA:
                    db.execute(statement)
                db.executemany(
                    "INSERT INTO meta (name, value) VALUES (?, ?)",
                    [("application", APPLICATION_NAME), ("format", str(CACHE_FORMAT))],
                )
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
    _check_ours(db, path)
    if not readonly:
        db.execute("PRAGMA journal_mode = WAL")  # a no-op unless the file was converted
    db.execute("PRAGMA synchronous = NORMAL")  # in WAL: durable against crashes of the process


def _is_empty(db: sqlite3.Connection) -> bool:
    application_id = db.execute("PRAGMA application_id").fetchone()[0]
    return bool(application_id == 0 and db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0)


def _check_ours(db: sqlite3.Connection, path: Path) -> None:
    foreign = CacheError(
        f"{path} is an SQLite database but not a synthc cache; synthc leaves it alone:"
        " pass another cache path, or move the file away",
        path=path,
        reason="foreign",
    )
    if db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
        raise foreign
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"meta", "responses"} <= tables:
        raise foreign
    meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
    if meta.get("application") != APPLICATION_NAME:
        raise foreign
    try:
        version = int(meta["format"])
    except (KeyError, TypeError, ValueError):
        raise CacheError(
            f"the cache {path} is damaged (no readable format version); move it away or delete it"
            " to start a fresh cache",
            path=path,
            reason="damaged",
        ) from None
    if version > CACHE_FORMAT:
        raise CacheError(
            f"the cache {path} was written by a newer synthc (cache format {version}; this one reads"
            f" format {CACHE_FORMAT}): upgrade synthc, or pass another cache path",
            path=path,
            reason="newer",
        )
    if version < CACHE_FORMAT:
        raise CacheError(
            f"the cache {path} was written by an older synthc (cache format {version}; this one reads"
            f" format {CACHE_FORMAT}); delete it or pass another cache path",
            path=path,
            reason="older",
        )


def _translate(exc: sqlite3.Error, path: Path, action: str, timeout: float) -> CacheError:
    """A person's message for an sqlite3 error, chosen by SQLite's error code."""
    code = _code(exc)
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        message = f"the cache {path} is locked by another process; gave up after waiting {timeout:g} s"
        return CacheError(message, path=path, reason="locked")
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM):
        message = f"cannot {action} the cache {path}: it is read-only (check the file's and its folder's permissions)"
        return CacheError(message, path=path, reason="readonly")
    if code == sqlite3.SQLITE_CANTOPEN:
        message = f"cannot open the cache {path} (does its folder exist, and may synthc write there?)"
        return CacheError(message, path=path, reason="readonly")
    if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        message = f"the cache {path} is damaged ({exc}); move it away or delete it to start a fresh cache"
        return CacheError(message, path=path, reason="damaged")
    if code == sqlite3.SQLITE_FULL:
        return CacheError(f"cannot {action} the cache {path}: the disk is full", path=path, reason="io")
    return CacheError(f"cannot {action} the cache {path}: {exc}", path=path, reason="io")


def _rollback(db: sqlite3.Connection) -> None:
    """Undo the open transaction, if SQLite has not already done so; the error that
    made us roll back is the one to report."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def _code(exc: sqlite3.Error) -> int | None:
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF  # the primary code, without the extended bits


# --------------------------------------------------------------------------- rows


def _slices(keys: Iterable[str]) -> Iterator[list[str]]:
    # Sorted, each slice reads neighbouring pages of the key-ordered table (about 3x
    # faster than random order on 100k keys); duplicates are looked up once.
    ordered = sorted(set(keys))
    for start in range(0, len(ordered), LOOKUP_BATCH):
        yield ordered[start : start + LOOKUP_BATCH]


def _lookup_sql(count: int, columns: str) -> str:
    # Only two distinct lengths per call (full slices and the rest): the statement cache hits.
    return f"SELECT {columns} FROM responses WHERE key IN ({', '.join('?' * count)}) AND {_VALID}"


def _fetch(db: sqlite3.Connection, sql: str, keys: list[str]) -> list[Row]:
    try:
        return db.execute(sql, keys).fetchall()
    except sqlite3.OperationalError as exc:
        if _code(exc) is not None:
            raise
        # Raised by Python, not SQLite: a stored text is not valid UTF-8. Read the slice
        # as bytes and drop the rows that do not decode (a damaged entry is a miss).
        db.text_factory = bytes
        try:
            rows = db.execute(sql, keys).fetchall()
        finally:
            db.text_factory = str
        return [decoded for row in rows if (decoded := _decode(row)) is not None]


def _decode(row: Row) -> Row | None:
    try:
        return tuple(value.decode() if isinstance(value, bytes) else value for value in row)
    except UnicodeDecodeError:
        return None


def _row(key: str, response: CachedResponse) -> Row:
    """The row to store; wrong types raise TypeError here, not as a damaged row later."""
    if not (isinstance(key, str) and isinstance(response.text, str) and isinstance(response.model, str)):
        raise TypeError(f"key, text and model must be strings (key {key!r})")
    if not (_is_int(response.prompt_tokens) and _is_int(response.completion_tokens)):
        raise TypeError(f"token counts must be ints (key {key!r})")
    if response.cost is not None and (
        isinstance(response.cost, bool) or not isinstance(response.cost, int | float)
    ):
        raise TypeError(f"cost must be a number or None (key {key!r})")
    if response.finish_reason is not None and not isinstance(response.finish_reason, str):
        raise TypeError(f"finish_reason must be a string or None (key {key!r})")
    for text in (response.text, response.model, response.finish_reason or ""):
        _check_unicode(text, key)
    return (
        key,
        response.model,
        response.text,
        response.prompt_tokens,
        response.completion_tokens,
        response.cost,
        response.finish_reason,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_unicode(text: str, key: str) -> None:
    # Lone surrogates (e.g. from a JSON "\\ud800" escape) cannot be stored as UTF-8.
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise ValueError(
                f"the response for key {key} is not valid Unicode (lone surrogates); clean it before caching"
            ) from None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
