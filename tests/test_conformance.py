"""The conformance corpus in specs/: every invalid spec produces exactly the diagnostics
its header declares, every valid spec compiles to its golden plan dump.

Invalid specs declare what they must produce in leading comments, one line each:

    # expect: unknown-key 6:5        (code, 1-based line:col of the diagnostic's span)
    # expect: empty-spec             (a diagnostic without a position)

Golden plans: ``specs/valid/NAME.plan.json`` is ``plan_to_json(plan, indent=2) + "\\n"``.
Rewrite them after an intended change with ``SYNTHC_UPDATE_GOLDEN=1 uv run pytest
tests/test_conformance.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.plan import plan_from_json, plan_to_json
from synthc.compiler import check_path, compile_path
from synthc.diagnostics import Diagnostic
from synthc.errors import CODES, SpecError

SPECS = Path(__file__).resolve().parent.parent / "specs"
VALID = sorted((SPECS / "valid").glob("*.yaml"))
INVALID = sorted((SPECS / "invalid").glob("*.yaml"))
UPDATE = os.environ.get("SYNTHC_UPDATE_GOLDEN") == "1"

EXPECT = re.compile(r"^#\s*expect:\s*(?P<code>[a-z-]+)(?:\s+(?P<line>\d+):(?P<col>\d+))?\s*$")
# Codes no spec file can produce: a missing file has no text, and output errors happen
# when writing. Both are exercised by dedicated tests below.
NOT_IN_CORPUS = {"file-not-found", "output-error", "runtime-error"}

Expected = tuple[str, int | None, int | None]


def header_lines(path: Path) -> Iterator[str]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            return
        yield line


def expectations(path: Path) -> list[Expected]:
    out: list[Expected] = []
    for line in header_lines(path):
        m = EXPECT.match(line)
        if m:
            pos = (int(m["line"]), int(m["col"])) if m["line"] else (None, None)
            out.append((m["code"], *pos))
    return sorted(out, key=repr)


def observed(diags: list[Diagnostic]) -> list[Expected]:
    out: list[Expected] = [
        (d.code, d.span.line, d.span.col) if d.span else (d.code, None, None) for d in diags
    ]
    return sorted(out, key=repr)


def test_corpus_is_big_enough() -> None:
    assert len(INVALID) >= 45
    assert len(VALID) >= 14


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_spec(path: Path) -> None:
    expected = expectations(path)
    assert expected, f"{path.name} declares no `# expect:` lines"
    assert all(code in CODES for code, _, _ in expected), "unknown code in the header"

    diags = check_path(path)
    assert observed(diags) == expected, "\n".join(f"{d.code} {d.span} {d.message}" for d in diags)
    for d in diags:
        assert d.message.strip(), "a diagnostic needs a message"
        if d.span is not None:
            assert Path(d.span.file).name == path.name

    with pytest.raises(SpecError) as info:
        compile_path(path)
    assert observed(info.value.diagnostics) == expected


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_spec(path: Path) -> None:
    diags = check_path(path)
    assert diags == [], "\n".join(f"{d.code} {d.span} {d.message}" for d in diags)

    plan = compile_path(path)
    # Seed file paths are absolute in a plan: the golden names them from $SPECS.
    here = json.dumps(str(SPECS.resolve()))[1:-1]
    dump = (plan_to_json(plan, indent=2) + "\n").replace(here, "$SPECS")
    golden = path.with_suffix(".plan.json")
    if UPDATE:
        golden.write_text(dump, encoding="utf-8")
    assert golden.exists(), f"no golden for {path.name}: run with SYNTHC_UPDATE_GOLDEN=1"
    assert dump == golden.read_text(encoding="utf-8")
    assert plan_from_json(golden.read_text(encoding="utf-8").replace("$SPECS", here)) == plan


def test_every_golden_has_a_spec() -> None:
    goldens = {p.name.removesuffix(".plan.json") for p in (SPECS / "valid").glob("*.plan.json")}
    assert goldens == {p.stem for p in VALID}


def test_every_code_is_in_the_corpus() -> None:
    covered = {code for path in INVALID for code, _, _ in expectations(path)}
    assert covered | NOT_IN_CORPUS == set(CODES), sorted(set(CODES) - covered - NOT_IN_CORPUS)


def test_every_code_is_documented() -> None:
    reference = (SPECS / "README.md").read_text(encoding="utf-8")
    missing = [code for code in CODES if f"`{code}`" not in reference]
    assert missing == []


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    diags = check_path(missing)
    assert [d.code for d in diags] == ["file-not-found"]
    assert "nope.yaml" in diags[0].message
    with pytest.raises(SpecError) as info:
        compile_path(missing)
    assert [d.code for d in info.value.diagnostics] == ["file-not-found"]


def test_output_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from synthc.cli import run

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    out = blocker / "data.parquet"
    assert run(["run", str(SPECS / "valid" / "minimal.yaml"), "--out", str(out), "--rows", "5"]) == 1
    err = capsys.readouterr().err
    assert "error[output-error]" in err
    assert str(out) in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_runtime_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from synthc.cli import run

    spec = SPECS / "runtime" / "template_zero_division.yaml"
    assert check_path(spec) == []
    out = tmp_path / "ratios.csv"
    assert run(["run", str(spec), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{spec}:9:15: error[runtime-error]: column `ratio`, row " in err
    assert "ZeroDivisionError" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- the documents

DOCUMENTS = [SPECS / "README.md", SPECS.parent / "README.md"]
CONSOLE_BLOCK = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)


def console_sessions(doc: Path) -> Iterator[tuple[str, str]]:
    """``(command, output)`` for every ``$ synthc ...`` line in the document's console
    blocks whose output is fully determined by the repository (`check`, `plan`, and
    `run` to stdout); not `run` to a file (it reports timings) or `preview`."""
    for block in CONSOLE_BLOCK.findall(doc.read_text(encoding="utf-8")):
        command: str | None = None
        output: list[str] = []
        for line in [*block.splitlines(), "$ "]:
            if line.startswith("$ "):
                if command is not None:
                    args = command.split()
                    if args[1] in ("check", "plan") or (args[1] == "run" and "-" in args):
                        yield command, "\n".join(output)
                command, output = line[2:].strip(), []
            else:
                output.append(line)


SESSIONS = [
    pytest.param(doc, command, output, id=f"{doc.parent.name}/{doc.name}: {command}")
    for doc in DOCUMENTS
    for command, output in console_sessions(doc)
]


def test_the_documents_show_commands() -> None:
    assert len(SESSIONS) >= 30


@pytest.mark.parametrize(("doc", "command", "output"), SESSIONS)
def test_documented_command_prints_what_the_document_shows(
    doc: Path,
    command: str,
    output: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import shlex

    from synthc.cli import run

    monkeypatch.chdir(SPECS.parent)
    monkeypatch.setenv("SYNTHC_CACHE_DIR", str(tmp_path))  # LLM answers: a fresh, empty cache
    args = shlex.split(command)
    assert args[0] == "synthc"
    run(args[1:])
    printed = capsys.readouterr().out
    assert printed.rstrip("\n") == output.rstrip("\n"), f"{doc.name}: `{command}` prints:\n{printed}"


def test_weighted_category_keys_keep_the_types_the_reference_promises() -> None:
    import polars as pl

    import synthc

    spec = """
synthc: 1
rows: 200
columns:
  plan: {type: category, values: {free: 0.5, team: 0.5}}
  stars: {type: category, values: {1: 0.05, 2: 0.05, 3: 0.2, 4: 0.3, 5: 0.4}}
  grade: {type: category, values: {"1": 0.5, "2": 0.5}}
  ratio: {type: category, values: {1.5: 1, 2.5: 1}}
  flag: {type: category, values: {true: 0.9, false: 0.1}}
  seats: {type: category, given: plan, values: {free: {1: 1}, team: {5: 0.5, 10: 0.5}}}
"""
    df = synthc.generate(spec)
    assert df.schema["stars"] == pl.Int64 and set(df["stars"]) <= {1, 2, 3, 4, 5}
    assert df.schema["grade"] == pl.String and set(df["grade"]) <= {"1", "2"}
    assert df.schema["ratio"] == pl.Float64 and df.schema["flag"] == pl.Boolean
    assert df.schema["seats"] == pl.Int64
    for plan, seats in df.select("plan", "seats").iter_rows():
        assert seats in ({1} if plan == "free" else {5, 10})
