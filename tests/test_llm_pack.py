"""Response packs end to end: spec → run (HTTP to the local fake OpenAI server, SQLite
cache) → `collect_entries` + `export_pack` → a replay in a fresh cache folder, offline.

The server's counters prove that a replay calls no model; the packs' own bytes prove
that they hold exactly the plan's entries, are byte-stable and are verified when read."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from runtime.cache import Cache, CachedResponse
from runtime.execute import sample_column
from runtime.llm.outcome import LLMOptions, LLMSummary, OfflineMiss
from runtime.llm.pack import (
    FIELDS,
    PACK_FORMAT,
    Pack,
    PackError,
    PackInfo,
    collect_entries,
    export_pack,
)
from runtime.llm.run import LLMRun
from runtime.plan import plan_hash
from synthc import api
from tests.support.llm_specs import (  # noqa: F401 - the *_fixture names are pytest fixtures
    BODY,
    FAKE_KEY,
    INPUTS,
    ROOT,
    TICKETS,
    TRIAGE_SCHEMA,
    entries,
    leftovers,
    requests,
    server_fixture,
    shared_server_fixture,
    spec,
)
from tests.support.openai_server import FakeOpenAI, server_error

# An LLM source (records), a text column reading its fields, a struct column reading the text.
SOURCED = f"""
synthc: 1
rows: ROWS
seed: 3
models:
  writer: {{model: openai/gpt-4o-mini, api_base: "${{FAKE_BASE}}", api_key_env: FAKE_KEY, retries: 0}}
source:
  type: llm
  model: writer
  prompt: Invent customers of a bike shop.
  per_call: 10
  schema:
    type: object
    properties:
      name: {{type: string}}
      bike: {{enum: [road, gravel, city]}}
    required: [name, bike]
columns:
  n: {{type: sequence}}
  body: {{type: llm, model: writer, prompt: "Write a ticket from {{{{ name }}}} about a {{{{ bike }}}} bike (#{{{{ n }}}})"}}
  triage: {{type: llm, model: writer, prompt: "Classify: {{{{ body }}}}", output: {json.dumps(TRIAGE_SCHEMA)}}}
"""
# The fake server answers a request the same way every time, and every source call sends
# the same messages: its first answer holds 2 distinct records, so 2 rows take one call.
ROWS = 2
CELLS = 1 + 2 * ROWS  # one source call, then body and triage per row


def sourced(rows: int = ROWS) -> str:
    return SOURCED.replace("ROWS", str(rows))


def make_pack(text: str, cache: Path, pack: Path) -> PackInfo:
    """``synthc pack``: the entries the spec's plan uses, from ``cache``, into ``pack``."""
    plan = api.compile(text=text)
    found = collect_entries(plan, LLMOptions(cache=cache))
    return export_pack(found, pack, plan_hash=plan_hash(plan), spec_hash=plan.spec_hash)


def cache_keys(cache: Path) -> set[str]:
    with sqlite3.connect(cache) as db:
        return {row[0] for row in db.execute("SELECT key FROM responses")}


def pack_keys(pack: Path) -> set[str]:
    return set(pl.read_parquet(pack)["key"])


def summary(result: object) -> LLMSummary:
    llm = getattr(result, "llm", None)
    assert isinstance(llm, LLMSummary)
    return llm


# --------------------------------------------------------------------------- replaying


def test_a_replay_in_a_fresh_cache_gives_the_same_bytes_without_any_request(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    first = api.write(sourced(), tmp_path / "a.parquet", cache=tmp_path / "cache.db")
    made = summary(first)
    assert requests(server) == CELLS == made.calls
    assert (made.cache_hits, made.replayed, made.failures) == (0, 0, 0)
    assert made.prompt_tokens > 0 and made.completion_tokens > 0 and made.cost > 0
    assert made.answered_by == {"writer": {"gpt-4o-mini": CELLS}}

    pack = tmp_path / "spec.responses.parquet"
    info = make_pack(sourced(), tmp_path / "cache.db", pack)
    assert info.entries == CELLS and pack_keys(pack) == cache_keys(tmp_path / "cache.db")

    server.reset()
    fresh = tmp_path / "fresh" / "cache.db"
    again = api.write(sourced(), tmp_path / "b.parquet", cache=fresh, replay=[pack], offline=True)
    assert requests(server) == 0
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    replayed = summary(again)
    assert (replayed.calls, replayed.cache_hits, replayed.replayed) == (0, 0, CELLS)
    assert (replayed.prompt_tokens, replayed.completion_tokens, replayed.cost) == (0, 0, 0.0)
    assert replayed.source_tally is not None and replayed.source_tally.replayed == 1
    assert {name: t.replayed for name, t in replayed.tallies.items()} == {"body": ROWS, "triage": ROWS}
    assert replayed.answered_by == made.answered_by
    assert not fresh.exists()  # offline reads the cache only: a missing one is not created

    # Online with a pack: the pack answers first, and its answers are not copied to the cache.
    online = api.write(sourced(), tmp_path / "c.parquet", cache=fresh, replay=[pack])
    assert requests(server) == 0 and summary(online).replayed == CELLS and entries(fresh) == 0
    assert (tmp_path / "c.parquet").read_bytes() == (tmp_path / "a.parquet").read_bytes()


def test_replayed_chunks_of_any_size_concatenate_to_the_same_rows(server: FakeOpenAI, tmp_path: Path) -> None:
    text = spec(10)  # body, and triage reading it
    whole = api.generate(text, cache=tmp_path / "cache.db")
    pack = tmp_path / "p.parquet"
    make_pack(text, tmp_path / "cache.db", pack)
    server.reset()
    for size in (1, 3, 7, 1000):
        chunks = list(api.stream(text, chunk_rows=size, cache=False, replay=[pack], offline=True))
        assert pl.concat(chunks).equals(whole)
    assert requests(server) == 0


def test_an_offline_run_never_imports_litellm(server: FakeOpenAI, tmp_path: Path) -> None:
    api.write(sourced(), tmp_path / "a.parquet", cache=tmp_path / "cache.db")
    pack = tmp_path / "p.parquet"
    make_pack(sourced(), tmp_path / "cache.db", pack)
    (tmp_path / "spec.yaml").write_text(sourced(), encoding="utf-8")
    code = (
        "import sys\n"
        "from synthc import api\n"
        f"frame = api.generate(path={str(tmp_path / 'spec.yaml')!r}, cache=False, replay=[{str(pack)!r}],"
        " offline=True)\n"
        "print(frame.height, sorted(m for m in ('litellm', 'openai', 'httpx') if m in sys.modules))\n"
    )
    env = {**os.environ, "FAKE_BASE": server.base_url, "FAKE_KEY": FAKE_KEY}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{ROWS} []"


# --------------------------------------------------------------------------- what a pack holds


def test_a_pack_holds_exactly_the_plans_entries_and_is_byte_stable(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    own, shared = tmp_path / "own.db", tmp_path / "shared.db"
    api.write(sourced(), tmp_path / "a.parquet", cache=own)
    api.write(sourced(), tmp_path / "a.parquet", cache=shared)
    # The shared cache also holds another spec's answers and entries nobody uses.
    title = 'title: {type: llm, model: writer, prompt: "Name a {{ product }}"}'
    api.write(spec(5, [*INPUTS, title]), tmp_path / "other.parquet", cache=shared)
    with Cache.open(shared) as cache:
        cache.put_many((f"{i:032x}", CachedResponse(f"unused {i}", "m", 1, 1)) for i in range(50))
    assert len(cache_keys(shared)) == CELLS + 5 + 50

    first, second, third = (tmp_path / f"{n}.parquet" for n in ("first", "second", "third"))
    make_pack(sourced(), shared, first)
    make_pack(sourced(), shared, second)
    make_pack(sourced(), own, third)
    assert pack_keys(first) == cache_keys(own)  # the plan's entries, nothing else
    assert first.read_bytes() == second.read_bytes() == third.read_bytes()


def test_the_file_holds_the_fields_and_the_signature_and_nothing_else(tmp_path: Path) -> None:
    pairs = [
        (f"{i:032x}", CachedResponse(f"text {i}", "gpt-x", i, 2 * i, 0.5 if i % 2 else None, "stop"))
        for i in range(3)
    ]
    info = export_pack(reversed(pairs), tmp_path / "p.parquet", plan_hash="p" * 32, spec_hash="s" * 32)
    frame = pl.read_parquet(tmp_path / "p.parquet")
    assert tuple(frame.columns) == FIELDS
    assert frame["key"].to_list() == [k for k, _ in pairs]  # sorted by key
    meta = pl.read_parquet_metadata(tmp_path / "p.parquet")
    assert {k for k in meta if k.startswith("synthc.")} == {
        "synthc.pack", "synthc.plan_hash", "synthc.spec_hash", "synthc.entries", "synthc.digest",
    }  # fmt: skip
    assert set(meta) - {k for k in meta if k.startswith("synthc.")} <= {"ARROW:schema"}
    assert (meta["synthc.pack"], meta["synthc.entries"], meta["synthc.plan_hash"]) == (
        str(PACK_FORMAT),
        "3",
        "p" * 32,
    )
    assert meta["synthc.digest"] == info.digest and len(info.digest) == 32
    opened = Pack.open(tmp_path / "p.parquet", plan_hash="p" * 32)
    assert opened.info == info and len(opened) == 3
    assert opened.get_many([pairs[1][0], "f" * 32]) == {pairs[1][0]: pairs[1][1]}
    with pytest.raises(ValueError, match="not a cache key"):
        export_pack([("sk-secret", pairs[0][1])], tmp_path / "q.parquet", plan_hash="", spec_hash="")


def test_the_key_never_reaches_the_pack(server: FakeOpenAI, tmp_path: Path) -> None:
    api.write(spec(3, [*INPUTS, BODY]), tmp_path / "a.parquet", cache=tmp_path / "cache.db")
    make_pack(spec(3, [*INPUTS, BODY]), tmp_path / "cache.db", tmp_path / "p.parquet")
    data = (tmp_path / "p.parquet").read_bytes()
    assert FAKE_KEY.encode() not in data and server.base_url.encode() not in data


# --------------------------------------------------------------------------- refused packs


def test_a_tampered_pack_is_refused(server: FakeOpenAI, tmp_path: Path) -> None:
    api.write(sourced(), tmp_path / "a.parquet", cache=tmp_path / "cache.db")
    pack = tmp_path / "p.parquet"
    make_pack(sourced(), tmp_path / "cache.db", pack)
    meta = {k: v for k, v in pl.read_parquet_metadata(pack).items() if k.startswith("synthc.")}
    frame = pl.read_parquet(pack)
    changed = frame.with_columns(
        text=pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("forged")).otherwise("text")
    )
    changed.write_parquet(pack, metadata=meta)  # rewritten with its old signature
    message = f"pack {pack} has been modified: its digest does not match its contents"
    with pytest.raises(PackError, match="has been modified") as caught:
        Pack.open(pack)
    assert message in str(caught.value)
    out = tmp_path / "b.parquet"
    with pytest.raises(PackError, match="has been modified"):
        api.write(sourced(), out, cache=False, replay=[pack], offline=True)
    assert leftovers(tmp_path, out) == []


def test_a_pack_for_another_plan_is_refused(server: FakeOpenAI, tmp_path: Path) -> None:
    api.write(sourced(), tmp_path / "a.parquet", cache=tmp_path / "cache.db")
    pack = tmp_path / "p.parquet"
    info = make_pack(sourced(), tmp_path / "cache.db", pack)
    other = api.compile(text=sourced().replace("Classify:", "Sort:"))
    with pytest.raises(PackError) as caught:
        Pack.open(pack, plan_hash=plan_hash(other))
    assert str(caught.value) == (
        f"response pack {pack} was made for plan {info.plan_hash}; this spec's plan is {plan_hash(other)}:"
        " re-make it with `synthc pack`"
    )
    options = LLMOptions(cache=None, replay=(pack,), offline=True, replay_plan=plan_hash(other))
    with pytest.raises(PackError, match="was made for plan"):
        LLMRun(other, options, sample_column)
    same = LLMOptions(cache=None, replay=(pack,), offline=True, replay_plan=info.plan_hash)
    with LLMRun(api.compile(text=sourced()), same, sample_column) as run:
        assert run.layers.packs[0].info == info

    # Without replay_plan, the run's plan decides: another spec's pack is refused ...
    out = tmp_path / "b.parquet"
    with pytest.raises(
        PackError, match=f"made for plan {info.plan_hash}; this spec's plan is {plan_hash(other)}"
    ):
        api.write(sourced().replace("Classify:", "Sort:"), out, cache=False, replay=[pack], offline=True)
    assert leftovers(tmp_path, out) == []
    # ... while the same spec with other rows (its spec hash), or a spec whose text changed
    # but not its plan (its plan hash), may use it.
    assert api.generate(sourced(), rows=1, cache=False, replay=[pack], offline=True).height == 1
    commented = "# the same plan\n" + sourced()
    assert api.generate(commented, cache=False, replay=[pack], offline=True).height == ROWS
    assert requests(server) == CELLS


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "there is no response pack at"),
        (b"not parquet at all", "is not a response pack (not a Parquet file"),
        ("folder", "is a folder, not a file"),
        ("plain", "is a Parquet file but not a synthc response pack"),
        ("newer", "was written by a newer synthc (pack format 2; this one reads format 1): upgrade synthc"),
        ("columns", "is damaged: its columns are not key, text, model"),
    ],
    ids=["missing", "not-parquet", "folder", "plain-parquet", "newer", "columns"],
)
def test_files_that_are_not_usable_packs_are_refused_plainly(
    tmp_path: Path, content: bytes | str | None, message: str
) -> None:
    path = tmp_path / "p.parquet"
    good = {
        "synthc.pack": "1",
        "synthc.plan_hash": "",
        "synthc.spec_hash": "",
        "synthc.entries": "0",
        "synthc.digest": "",
    }
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "folder":
        path.mkdir()
    elif content == "plain":
        pl.DataFrame({"a": [1]}).write_parquet(path)
    elif content == "newer":
        pl.DataFrame({"a": [1]}).write_parquet(
            path, metadata={**good, "synthc.pack": "2", "synthc.digest": "x"}
        )
    elif content == "columns":
        pl.DataFrame({"a": [1]}).write_parquet(path, metadata=good)
    with pytest.raises(PackError) as caught:
        Pack.open(path)
    assert message in str(caught.value) and "Traceback" not in str(caught.value)


# --------------------------------------------------------------------------- offline


def test_offline_with_an_incomplete_pack_names_the_missing_cells_and_writes_nothing(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    tickets = TICKETS  # a text column and a struct column that reads it
    api.write(spec(4, tickets), tmp_path / "a.parquet", cache=tmp_path / "cache.db")
    pack = tmp_path / "p.parquet"
    make_pack(spec(4, tickets), tmp_path / "cache.db", pack)
    server.reset()
    out = tmp_path / "b.parquet"
    with pytest.raises(OfflineMiss) as caught:
        api.write(spec(4, tickets), out, rows=10, cache=tmp_path / "fresh.db", replay=[pack], offline=True)
    miss = caught.value
    assert miss.missing == tuple((col, row) for row in range(4, 10) for col in ("body", "triage"))
    assert miss.per_column == {"body": 6, "triage": 6}
    text = str(miss)
    assert "12 LLM cells are missing: in neither the response packs nor the cache" in text
    assert "body: 6, triage: 6" in text and "first: `body` row 4, `triage` row 4, `body` row 5" in text
    assert "synthc pack" in text
    assert requests(server) == 0 and leftovers(tmp_path, out) == [] and not (tmp_path / "fresh.db").exists()


def test_offline_without_the_source_calls_names_them(server: FakeOpenAI, tmp_path: Path) -> None:
    with pytest.raises(OfflineMiss, match="1 LLM cell is missing: in neither") as caught:
        api.generate(sourced(), cache=tmp_path / "none.db", offline=True)
    assert caught.value.missing == (("source", 0),) and "source call 0" in str(caught.value)
    assert requests(server) == 0


def test_packing_needs_every_cell_in_the_cache(server: FakeOpenAI, tmp_path: Path) -> None:
    api.write(spec(3, [*INPUTS, BODY]), tmp_path / "a.parquet", cache=tmp_path / "cache.db")
    server.reset()
    with pytest.raises(OfflineMiss) as caught:
        collect_entries(api.compile(text=spec(5, [*INPUTS, BODY])), LLMOptions(cache=tmp_path / "cache.db"))
    assert caught.value.missing == (("body", 3), ("body", 4))
    assert requests(server) == 0


# --------------------------------------------------------------------------- who answered


def test_answered_by_counts_the_fallback_that_answered(server: FakeOpenAI, tmp_path: Path) -> None:
    server.set_faults(server_error(500, model="gpt-4o-mini"))
    text = spec(6, [*INPUTS, BODY], retries=0, fallbacks=["openai/fallback-model"])
    cache = tmp_path / "cache.db"
    first = summary(api.write(text, tmp_path / "a.parquet", cache=cache))
    assert first.answered_by == {"writer": {"fallback-model": 6}}
    assert (first.calls, first.failures) == (12, 0)  # the primary once, then the fallback

    server.clear_faults()
    title = 'title: {type: llm, model: writer, prompt: "Name a {{ product }}"}'
    more = spec(6, [*INPUTS, BODY, title], retries=0, fallbacks=["openai/fallback-model"])
    second = summary(api.write(more, tmp_path / "b.parquet", cache=cache))
    assert second.answered_by == {"writer": {"fallback-model": 6, "gpt-4o-mini": 6}}
    assert (second.cache_hits, second.calls) == (6, 6)

    pack = tmp_path / "p.parquet"
    make_pack(more, cache, pack)
    server.reset()
    replayed = summary(api.write(more, tmp_path / "c.parquet", cache=False, replay=[pack], offline=True))
    assert replayed.answered_by == second.answered_by and requests(server) == 0
