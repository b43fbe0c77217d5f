"""Lock files, response packs and `synthc verify` through the real CLI: a committed spec
regenerates the same rows anywhere, offline, and every way it cannot is said plainly."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from synthc.cli import run

SPEC = """\
synthc: 1
seed: 11
rows: 400
columns:
  id: {type: sequence, start: 1}
  price: {type: float, dist: lognormal, mu: 3, sigma: 0.5, round: 2}
  tier: {type: category, values: [gold, silver, bronze]}
steps:
  - filter: "price > 5"
"""

LLM_SPEC = """\
synthc: 1
seed: 2
rows: 30
models:
  writer: {model: fake/writer}
columns:
  topic: {type: category, values: [billing, login, shipping]}
  body: {type: llm, model: writer, prompt: "Write a ticket about {{ topic }}."}
  triage:
    type: llm
    model: writer
    prompt: "Classify: {{ body }}"
    output: {type: object, properties: {urgency: {enum: [low, high]}}, required: [urgency]}
"""


@pytest.fixture(autouse=True)
def locks_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNTHC_NO_LOCK", raising=False)


def make(tmp_path: Path, text: str = SPEC, name: str = "data.yaml") -> Path:
    spec = tmp_path / name
    spec.write_text(text)
    return spec


def cli(*args: str) -> int:
    return run([str(a) for a in args])


def test_run_writes_a_stable_small_lock(tmp_path: Path) -> None:
    spec = make(tmp_path)
    assert cli("run", spec, "--out", tmp_path / "data.parquet", "--quiet") == 0
    lock_file = tmp_path / "data.lock.json"
    text = lock_file.read_text()
    lock = json.loads(text)
    assert list(lock) == sorted(lock)  # stable key order
    assert lock["seed"] == 11 and lock["engine"] == 1 and lock["lock"] == 1
    assert lock["output"] == {"path": "data.parquet", "format": "parquet"}
    assert set(lock["columns"]) == {"id", "price", "tier"}
    assert lock["content"]["rows"] == pl.read_parquet(tmp_path / "data.parquet").height
    assert len(text) < 3000
    # the same run again writes the same lock, byte for byte; another format, the same content
    assert cli("run", spec, "--out", tmp_path / "data.csv", "--quiet") == 0
    again = json.loads(lock_file.read_text())
    assert again["content"] == lock["content"]
    assert again["output"]["format"] == "csv"


def test_no_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = make(tmp_path)
    assert cli("run", spec, "--out", tmp_path / "a.parquet", "--quiet", "--no-lock") == 0
    monkeypatch.setenv("SYNTHC_NO_LOCK", "1")
    assert cli("run", spec, "--out", tmp_path / "a.parquet", "--quiet") == 0
    assert not (tmp_path / "data.lock.json").exists()


def test_verify_passes_on_an_unchanged_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = make(tmp_path)
    assert (
        cli("run", spec, "--out", tmp_path / "data.parquet", "--quiet", "--rows", "300", "--seed", "5") == 0
    )
    assert cli("verify", spec) == 0
    assert "verified: data.yaml regenerates the data in data.lock.json" in capsys.readouterr().out


def test_verify_names_changed_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = make(tmp_path)
    assert cli("run", spec, "--out", tmp_path / "data.parquet", "--quiet") == 0
    spec.write_text(SPEC.replace("sigma: 0.5", "sigma: 0.6"))
    assert cli("verify", spec) == 1
    err = capsys.readouterr().err
    assert "changed since data.lock.json was written" in err and "columns defined differently: price" in err


def test_verify_counts_differing_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = make(tmp_path)
    out = tmp_path / "data.parquet"
    assert cli("run", spec, "--out", out, "--quiet") == 0
    lock_file = tmp_path / "data.lock.json"
    lock = json.loads(lock_file.read_text())
    # the locked data as it would be had 3 prices been different
    df = pl.read_parquet(out)
    changed = df.with_columns(
        pl.when(pl.int_range(pl.len()) < 3).then(0.0).otherwise(pl.col("price")).alias("price")
    )
    changed.write_parquet(out)
    from runtime.contenthash import content_hash

    content = content_hash([changed])
    lock["content"]["hash"] = content.total
    lock["content"]["columns"]["price"]["hash"] = dict(content.columns)["price"]
    lock_file.write_text(json.dumps(lock, indent=2, sort_keys=True))
    assert cli("verify", spec) == 1
    err = capsys.readouterr().err
    assert "columns that differ: price" in err
    assert "rows that differ from data.parquet: price 3" in err


def test_verify_explains_an_engine_change_and_newer_locks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make(tmp_path)
    assert cli("run", spec, "--out", tmp_path / "data.parquet", "--quiet") == 0
    lock_file = tmp_path / "data.lock.json"
    lock = json.loads(lock_file.read_text())
    lock_file.write_text(json.dumps({**lock, "engine": 99}))
    assert cli("verify", spec) == 1
    assert "made with engine 99" in capsys.readouterr().err
    lock_file.write_text(json.dumps({**lock, "synthc": "99.0.0"}))
    assert cli("verify", spec) == 1
    assert "newer than this one" in capsys.readouterr().err
    lock_file.write_text(json.dumps({**lock, "lock": 2}))
    assert cli("verify", spec) == 1
    assert "lock format 2" in capsys.readouterr().err
    lock_file.write_text("{not json")
    assert cli("verify", spec) == 1
    lock_file.unlink()
    assert cli("verify", spec) == 1
    assert "no lock file" in capsys.readouterr().err


def test_llm_spec_regenerates_offline_from_its_pack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make(tmp_path, LLM_SPEC, "tickets.yaml")
    cache = tmp_path / "cache.db"
    out = tmp_path / "tickets.parquet"
    assert cli("run", spec, "--out", out, "--cache", cache, "--quiet") == 0
    lock = json.loads((tmp_path / "tickets.lock.json").read_text())
    assert lock["models"]["writer"]["answered_by"] == {"fake/writer": 60}
    assert cli("pack", spec, "--cache", cache) == 0
    pack = tmp_path / "tickets.responses.parquet"
    assert pl.read_parquet(pack).height == 60
    # another machine: no cache at all, no model
    fresh = tmp_path / "fresh.db"
    again = tmp_path / "again.parquet"
    assert cli("run", spec, "--replay", pack, "--offline", "--cache", fresh, "--out", again, "--quiet") == 0
    assert pl.read_parquet(again).equals(pl.read_parquet(out))
    assert cli("verify", spec, "--cache", fresh) == 0
    capsys.readouterr()
    # more rows than the pack holds: offline names the missing cells and writes nothing
    more = tmp_path / "more.parquet"
    assert (
        cli("run", spec, "--rows", "40", "--replay", pack, "--offline", "--cache", fresh, "--out", more) == 1
    )
    err = capsys.readouterr().err
    assert "body" in err and "missing" in err and "Traceback" not in err
    assert not more.exists()


def test_bad_packs_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = make(tmp_path, LLM_SPEC, "tickets.yaml")
    cache = tmp_path / "cache.db"
    assert cli("run", spec, "--out", tmp_path / "t.parquet", "--cache", cache, "--quiet", "--no-lock") == 0
    assert cli("pack", spec, "--cache", cache) == 0
    pack = tmp_path / "tickets.responses.parquet"
    other = make(tmp_path, LLM_SPEC.replace("seed: 2", "seed: 3"), "other.yaml")
    out = tmp_path / "o.parquet"
    assert cli("run", other, "--replay", pack, "--offline", "--out", out, "--no-lock") == 1
    assert "made for plan" in capsys.readouterr().err and not out.exists()
    table = pl.read_parquet(pack)
    meta = pl.read_parquet_metadata(pack)
    tampered = tmp_path / "tampered.parquet"
    table.with_columns(pl.col("text").str.replace("^.", "X")).write_parquet(tampered, metadata=meta)
    assert cli("run", spec, "--replay", tampered, "--offline", "--out", out, "--no-lock") == 1
    assert "modified" in capsys.readouterr().err and not out.exists()


def test_cache_merge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = make(tmp_path, LLM_SPEC, "tickets.yaml")
    a, b, merged = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "m.db"
    assert (
        cli(
            "run", spec, "--rows", "10", "--cache", a, "--out", tmp_path / "a.parquet", "--quiet", "--no-lock"
        )
        == 0
    )
    assert cli("run", spec, "--cache", b, "--out", tmp_path / "b.parquet", "--quiet", "--no-lock") == 0
    assert cli("cache", "merge", merged, a, b) == 0
    out = capsys.readouterr().out
    assert "merged" in out and "20 entries, 20 new" in out and "60 entries, 40 new" in out
    # the merged cache answers the whole run offline
    again = tmp_path / "c.parquet"
    assert cli("run", spec, "--cache", merged, "--offline", "--out", again, "--quiet", "--no-lock") == 0
    assert pl.read_parquet(again).equals(pl.read_parquet(tmp_path / "b.parquet"))
    assert cli("cache", "merge", merged, merged) == 1
    assert cli("cache", "merge", merged, tmp_path / "nope.db") == 1


def test_the_committed_quickstart_verifies_offline(capsys: pytest.CaptureFixture[str]) -> None:
    """examples/quickstart.lock.json and .responses.parquet are committed: a clean checkout
    regenerates the quickstart's 1,000 rows, LLM column included, with no cache."""
    examples = Path(__file__).resolve().parent.parent / "examples"
    assert cli("verify", examples / "quickstart.yaml") == 0
    assert "verified: quickstart.yaml regenerates the data in quickstart.lock.json" in capsys.readouterr().out
