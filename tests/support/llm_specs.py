"""Specs and helpers for the end-to-end LLM tests: spec YAML → compile → run → LiteLLM →
HTTP to a local `FakeOpenAI` → SQLite cache → output file.

Every spec reads its endpoint from ``${FAKE_BASE}`` and its key from ``FAKE_KEY`` (the
`server` fixture sets both); every run names its cache file explicitly, never the default
``.synthc/`` of the working directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from runtime.cache import Cache, CacheError
from synthc.cli import run
from tests.support.openai_server import FakeOpenAI, expected_json, expected_text

ROOT = Path(__file__).resolve().parents[2]
FAKE_KEY = "sk-synthc-e2e-5d1f0a7c"
MODEL = "openai/gpt-4o-mini"  # priced in LiteLLM's bundled map; takes native json_schema

TRIAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"urgency": {"enum": ["low", "high"]}, "topic": {"type": "string"}},
    "required": ["urgency", "topic"],
}

BODY = 'body: {type: llm, model: writer, prompt: "Write a ticket about a {{ product }} (#{{ n }})"}'
TRIAGE = (
    'triage: {type: llm, model: writer, prompt: "Classify: {{ body }}", output: '
    + json.dumps(TRIAGE_SCHEMA)
    + "}"
)
INPUTS = ("n: {type: sequence}", "product: {type: category, values: [laptop, phone]}")
TICKETS = (*INPUTS, BODY, TRIAGE)  # 2 LLM columns, triage reads body


def spec(
    rows: int,
    columns: Sequence[str] = TICKETS,
    *,
    model: str = MODEL,
    concurrency: int = 8,
    retries: int = 2,
    backoff: float = 0.01,
    timeout: float = 2,
    fallbacks: Sequence[str] = (),
    api_base: str = "${FAKE_BASE}",
) -> str:
    """A spec's YAML with one model alias ``writer`` and the given column lines."""
    lines = [
        "synthc: 1",
        f"rows: {rows}",
        "models:",
        "  writer:",
        f"    model: {model}",
        f"    api_base: {api_base}",
        "    api_key_env: FAKE_KEY",
        f"    concurrency: {concurrency}",
        f"    retries: {retries}",
        f"    backoff: {backoff}",
        f"    timeout: {timeout}",
    ]
    if fallbacks:
        lines.append(f"    fallbacks: [{', '.join(fallbacks)}]")
    lines.append("columns:")
    lines += [f"  {column}" for column in columns]
    return "\n".join(lines) + "\n"


def write_spec(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- fixtures
# Test modules import these (``from tests.support.llm_specs import server_fixture, ...``):
# pytest registers them under their ``name``. One server per module; ``server`` resets it
# before each test.


@pytest.fixture(scope="module", name="shared_server")
def shared_server_fixture() -> Iterator[FakeOpenAI]:
    yield from FakeOpenAI.serve(latency=0.0, max_lifetime=600.0)


@pytest.fixture(name="server")
def server_fixture(shared_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    """The module's server with no faults, no latency and zeroed counters; FAKE_BASE and
    FAKE_KEY point at it."""
    shared_server.clear_faults()
    shared_server.latency = 0.0
    shared_server.require_auth = False
    shared_server.reset()
    monkeypatch.setenv("FAKE_BASE", shared_server.base_url)
    monkeypatch.setenv("FAKE_KEY", FAKE_KEY)
    return shared_server


# --------------------------------------------------------------------------- observing


def requests(server: FakeOpenAI) -> int:
    """Chat-completion requests the server received since its last reset."""
    return server.stats().chat_requests


def entries(cache: Path) -> int:
    """Entries in the cache file (0 when there is none); CacheError when it cannot be read."""
    if not cache.exists():
        return 0
    with Cache.open(cache, readonly=True) as opened:
        return opened.stats().entries


def entries_so_far(cache: Path) -> int:
    """`entries` while another process may still be creating the file (then 0)."""
    try:
        return entries(cache)
    except CacheError:
        return 0


def cache_models(cache: Path) -> tuple[tuple[str, int], ...]:
    with Cache.open(cache, readonly=True) as opened:
        return opened.stats().models


def user_message(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def expected_body(product: str, n: int) -> str:
    """What the fake server answers for ``body`` of the row with these inputs."""
    return expected_text(user_message(f"Write a ticket about a {product} (#{n})"))


def expected_triage(body: str) -> dict[str, Any]:
    """What the fake server answers for ``triage`` given the row's body. The plan keeps
    the output schema as canonical JSON (sorted keys), and that is what is sent; the fake
    generates properties in the order it receives them."""
    sent = json.loads(json.dumps(TRIAGE_SCHEMA, sort_keys=True))
    value: dict[str, Any] = expected_json(user_message(f"Classify: {body}"), sent)
    return value


def errors_file(out: Path) -> Path:
    return out.with_name(out.name + ".errors.jsonl")


def read_errors(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in errors_file(out).read_text(encoding="utf-8").splitlines()]


def leftovers(folder: Path, out: Path) -> list[str]:
    """Files next to ``out`` that a failed write may have left (the output or its temp)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith((out.name, f".{out.name}")))


# --------------------------------------------------------------------------- the command line


def cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """``synthc.cli.run(argv)`` in-process: (exit code, stdout, stderr); never a traceback."""
    code = run([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    return code, out, err


# For a test process that ignores SIGINT (started in the background without job control):
# its children would ignore it too, and Python would not install its handler in them.
_WITH_SIGINT = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('synthc', run_name='__main__', alter_sys=True)"
)


def synthc_process(*argv: str | Path, server: FakeOpenAI) -> subprocess.Popen[str]:
    """``python -m synthc ARGV`` in a subprocess, with FAKE_BASE/FAKE_KEY for ``server``
    (Ctrl-C reaches it as KeyboardInterrupt even when this process ignores SIGINT)."""
    env = {**os.environ, "FAKE_BASE": server.base_url, "FAKE_KEY": FAKE_KEY}
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    entry = ["-c", _WITH_SIGINT] if ignored else ["-m", "synthc"]
    return subprocess.Popen(
        [sys.executable, *entry, *map(str, argv)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Callable[[], bool], *, timeout: float, every: float = 0.02) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()
