"""LLM-written records (`source: {type: llm}`): through the offline fake model (which varies
with the provider seed, like a sampling model) and the local HTTP server (which does not)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from runtime.cache import Cache
from synthc import api
from synthc.cli import run
from tests.support.openai_server import FakeOpenAI

SPEC = """
synthc: 1
rows: 40
seed: 3
models:
  writer: {model: MODEL, api_base: API_BASE, api_key_env: FAKE_KEY, retries: 0}
source:
  type: llm
  model: writer
  prompt: Invent customers of a bike shop.
  per_call: 20
  schema:
    type: object
    properties:
      name: {type: string}
      bike: {enum: [road, gravel, city]}
    required: [name, bike]
columns:
  greeting: {type: template, template: "Hello {{ name }} ({{ bike }})"}
"""


def spec(tmp_path: Path, model: str, api_base: str) -> Path:
    path = tmp_path / "source.yaml"
    path.write_text(SPEC.replace("MODEL", model).replace("API_BASE", api_base), encoding="utf-8")
    return path


def test_records_come_from_the_model_then_from_the_cache(tmp_path: Path) -> None:
    path = spec(tmp_path, "fake/writer", "http://127.0.0.1:9")  # fake/ never connects
    first = api.write(path, tmp_path / "a.parquet", cache=tmp_path / "cache.db")
    assert first.rows == 40 and first.llm is not None and first.llm.source_tally is not None
    calls = first.llm.source_tally.called
    assert calls >= 2 and first.llm.source_tally.cached == 0
    with Cache.open(tmp_path / "cache.db", readonly=True) as cache:
        assert cache.stats().entries == calls
    df = pl.read_parquet(tmp_path / "a.parquet")
    assert df.columns == ["name", "bike", "greeting"]
    assert df.select("name", "bike").n_unique() == 40  # deduplicated records
    assert set(df["bike"]) <= {"road", "gravel", "city"}
    assert (df["greeting"] == "Hello " + df["name"] + " (" + df["bike"] + ")").all()

    again = api.write(path, tmp_path / "b.parquet", cache=tmp_path / "cache.db")
    assert again.llm is not None and again.llm.stats.calls == 0
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_a_model_that_repeats_itself_ends_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KEY", "test")
    with FakeOpenAI() as server:  # answers a request the same way every time: few distinct records
        path = spec(tmp_path, "openai/gpt-4o-mini", server.base_url)
        out = tmp_path / "out.parquet"
        code = run(["run", str(path), "--out", str(out), "--cache", str(tmp_path / "cache.db"), "--quiet"])
        requests = server.stats().chat_requests
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    assert "distinct records in 11 calls, fewer than the 40 rows" in err and "Traceback" not in err
    assert requests == 11  # ceil(40 / 20) * 3 + 5 calls, then it stops
