"""Faults through a whole run: the fake server misbehaves (429s, 5xx, hangs, prose, a
rejected key, a Retry-After of an hour) and the run retries, repairs, fails cells or stops,
with exact request counts and the exit codes and messages a person sees."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pytest

from synthc import api
from tests.support.llm_specs import (  # noqa: F401 - the *_fixture names are pytest fixtures
    BODY,
    INPUTS,
    cli,
    entries,
    errors_file,
    expected_body,
    expected_triage,
    leftovers,
    read_errors,
    requests,
    server_fixture,
    shared_server_fixture,
    spec,
    write_spec,
)
from tests.support.openai_server import (
    FakeOpenAI,
    Rule,
    disconnect,
    hang,
    malformed_json,
    missing_key,
    prose,
    rate_limit,
    server_error,
)

N = 6  # rows; the tickets spec makes 2 LLM calls per row
BODY_ONLY = [*INPUTS, BODY]


def check_tickets(frame: pl.DataFrame) -> None:
    for row in frame.iter_rows(named=True):
        assert row["body"] == expected_body(row["product"], row["n"])
        assert row["triage"] == expected_triage(row["body"])


def run_args(spec_path: Path, out: Path, cache: Path, *extra: str) -> list[str | Path]:
    return ["run", spec_path, "--out", out, "--cache", cache, *extra]


# --------------------------------------------------------------------------- retried


def test_429s_with_retry_after_are_waited_for_and_retried(server: FakeOpenAI, tmp_path: Path) -> None:
    k = 3
    server.set_faults(rate_limit(0.3, header="ms", requests=range(1, k + 1)))
    out = tmp_path / "out.parquet"
    started = time.monotonic()
    result = api.write(spec(N), out, cache=tmp_path / "cache.db")
    assert time.monotonic() - started >= 0.3  # the model was paused for the Retry-After
    assert result.llm is not None and result.llm.ok and result.llm.errors == ()
    stats = result.llm.stats
    assert (stats.retries, stats.rate_limited, stats.calls) == (k, k, 2 * N + k)
    assert requests(server) == 2 * N + k
    assert server.stats().faults == {"rate_limit": k}
    check_tickets(pl.read_parquet(out))


@pytest.mark.parametrize(
    "fault",
    [server_error(500, requests={2, 5}), server_error(503, requests={2, 5}), malformed_json(requests={2, 5}),
     disconnect(requests={2, 5})],
    ids=["500", "503", "malformed-json", "disconnect"],
)  # fmt: skip
def test_transient_failures_are_retried(server: FakeOpenAI, tmp_path: Path, fault: Rule) -> None:
    server.set_faults(fault)
    out = tmp_path / "out.parquet"
    result = api.write(spec(N), out, cache=tmp_path / "cache.db")
    assert result.llm is not None and result.llm.errors == ()
    assert (result.llm.stats.retries, result.llm.stats.calls) == (2, 2 * N + 2)
    assert requests(server) == 2 * N + 2
    check_tickets(pl.read_parquet(out))


def test_a_hung_request_times_out_and_is_retried(server: FakeOpenAI, tmp_path: Path) -> None:
    server.set_faults(hang(5.0, requests=1))
    out = tmp_path / "out.parquet"
    started = time.monotonic()
    result = api.write(spec(N, timeout=0.5), out, cache=tmp_path / "cache.db")
    assert time.monotonic() - started < 4
    assert result.llm is not None and result.llm.errors == ()
    assert (result.llm.stats.retries, result.llm.stats.calls) == (1, 2 * N + 1)
    assert requests(server) == 2 * N + 1
    check_tickets(pl.read_parquet(out))


def test_prose_instead_of_json_is_repaired(server: FakeOpenAI, tmp_path: Path) -> None:
    server.set_faults(prose(contains="Classify:", times=1))
    out = tmp_path / "out.parquet"
    result = api.write(spec(N), out, cache=tmp_path / "cache.db")
    assert result.llm is not None and result.llm.errors == ()
    assert (result.llm.stats.repairs, result.llm.stats.calls) == (1, 2 * N + 1)
    assert requests(server) == 2 * N + 1
    frame = pl.read_parquet(out)
    repaired = [row for row in frame.iter_rows(named=True) if row["triage"] != expected_triage(row["body"])]
    assert len(repaired) == 1  # answered by the repair call, so a different (valid) answer
    assert repaired[0]["triage"]["urgency"] in ("low", "high")
    assert isinstance(repaired[0]["triage"]["topic"], str)


# --------------------------------------------------------------------------- failing cells


def test_every_call_failing_fails_every_cell_and_lists_them(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path
) -> None:
    server.set_faults(server_error(500))
    path, out = write_spec(tmp_path, spec(N)), tmp_path / "out.parquet"
    code, _, err = cli(capsys, *run_args(path, out, tmp_path / "cache.db"))
    assert code == 1
    assert requests(server) == 3 * N  # body: 1 call + 2 retries per cell; triage never asked
    assert f"error: {2 * N} LLM cells failed, more than --max-failures allows (0)" in err
    assert f"by kind: server {N}, upstream {N}" in err
    assert str(errors_file(out)) in err
    # fewer than 20 in a row: the run finishes, writes the nulls and lists every failed cell
    frame = pl.read_parquet(out)
    assert frame["body"].null_count() == frame["triage"].null_count() == N
    listed = read_errors(out)
    assert [(e["row"], e["column"], e["kind"]) for e in listed] == [
        (row, column, kind)
        for row in range(N)
        for column, kind in (("body", "server"), ("triage", "upstream"))
    ]
    body = listed[0]
    assert body["attempts"] == 3 and body["model"] == "openai/gpt-4o-mini"
    assert "HTTP 500" in body["message"]
    assert listed[1]["message"] == "input column `body` failed on this row"


@pytest.mark.parametrize(
    ("fault", "words"),
    [(server_error(500), "HTTP 500"), (rate_limit(3600), "3600 s")],
    ids=["500", "retry-after-3600"],
)
def test_the_failure_summary_says_what_went_wrong(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path, fault: Rule, words: str
) -> None:
    server.set_faults(fault)
    path, out = write_spec(tmp_path, spec(N)), tmp_path / "out.parquet"
    code, _, err = cli(capsys, *run_args(path, out, tmp_path / "cache.db"))
    assert code == 1
    assert words in err


def test_a_rejected_key_on_every_call_stops_the_run(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAKE_KEY")
    path, out, cache = (
        write_spec(tmp_path, spec(30, BODY_ONLY)),
        tmp_path / "out.parquet",
        tmp_path / "cache.db",
    )
    code, _, err = cli(capsys, *run_args(path, out, cache))
    assert code == 1
    assert requests(server) == 0  # no key: nothing is sent
    assert "stopped after 20 failed calls in a row" in err
    assert "set the environment variable FAKE_KEY" in err
    assert leftovers(tmp_path, out) == []  # stopped: no output, no errors file
    assert entries(cache) == 0


def test_a_key_the_server_rejects_names_the_variable(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path
) -> None:
    server.set_faults(missing_key())
    path, out = write_spec(tmp_path, spec(30, BODY_ONLY)), tmp_path / "out.parquet"
    code, _, err = cli(capsys, *run_args(path, out, tmp_path / "cache.db"))
    assert code == 1
    assert 20 <= requests(server) <= 20 + 8  # auth is not retried; at most `concurrency` more in flight
    assert "HTTP 401" in err and "FAKE_KEY" in err
    assert leftovers(tmp_path, out) == []


def test_all_failures_allowed_exits_0_with_nulls(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path
) -> None:
    server.set_faults(missing_key())
    path, out = write_spec(tmp_path, spec(N)), tmp_path / "out.parquet"
    code, _, err = cli(capsys, *run_args(path, out, tmp_path / "cache.db", "--max-failures", "100%"))
    assert code == 0, err
    assert requests(server) == N
    frame = pl.read_parquet(out)
    assert frame.height == N
    assert frame["body"].null_count() == frame["triage"].null_count() == N
    assert len(read_errors(out)) == 2 * N


@pytest.mark.parametrize(("failing", "code"), [(2, 0), (3, 1)])
def test_max_failures_counts_failed_cells(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path, failing: int, code: int
) -> None:
    ns = [2, 5, 7][:failing]
    server.set_faults(*(missing_key(contains=f"(#{n})") for n in ns))
    path, out = write_spec(tmp_path, spec(10, BODY_ONLY)), tmp_path / "out.parquet"
    got, _, err = cli(capsys, *run_args(path, out, tmp_path / "cache.db", "--max-failures", "2"))
    assert got == code, err
    assert requests(server) == 10  # a rejected key is not retried
    assert f"{failing} failed cells (allowed: 2)" in err
    frame = pl.read_parquet(out)
    assert frame.filter(pl.col("body").is_null())["n"].to_list() == ns
    listed = read_errors(out)
    assert [(e["row"], e["column"], e["kind"]) for e in listed] == [(n - 1, "body", "auth") for n in ns]
    assert all("HTTP 401" in e["message"] for e in listed)


def test_retry_after_of_an_hour_gives_up_promptly(
    capsys: pytest.CaptureFixture[str], server: FakeOpenAI, tmp_path: Path
) -> None:
    server.set_faults(rate_limit(3600))
    path, out = write_spec(tmp_path, spec(N, concurrency=4)), tmp_path / "out.parquet"
    started = time.monotonic()
    code, _, err = cli(capsys, *run_args(path, out, tmp_path / "cache.db"))
    assert time.monotonic() - started < 30
    assert code == 1
    assert 1 <= requests(server) <= 4  # only the calls already started; the model is given up
    assert f"by kind: rate_limit_wait {N}, upstream {N}" in err
    listed = read_errors(out)
    assert "asks to wait 3600 s" in listed[0]["message"]
    assert listed[0]["kind"] == "rate_limit_wait"
