"""The command line through its real entry point: ``synthc.cli.run(argv)`` in-process
(output captured with capsys) and ``python -m synthc`` in a subprocess."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import synthc
from runtime.plan import plan_from_json
from synthc.cli import run

ROOT = Path(__file__).resolve().parents[1]

OK_SPEC = """\
synthc: 1
name: orders
seed: 42
rows: 40
columns:
  id: {type: uuid}
  n: {type: sequence, start: 1}
  product: {type: category, values: {laptop: 0.5, phone: 0.3, tablet: 0.2}}
  price: {type: float, dist: normal, mean: 50, sd: 10, min: 1, round: 2}
  qty: {type: int, dist: uniform, min: 1, max: 5}
  express: {type: bool, p: 0.2}
"""

# line 4: `sdd` is not a key of a column (a typo of `sd`)
BAD_SPEC = """\
synthc: 1
rows: 10
columns:
  price: {type: float, dist: normal, mean: 1, sdd: 2}
"""


@pytest.fixture
def ok(tmp_path: Path) -> Path:
    path = tmp_path / "ok.yaml"
    path.write_text(OK_SPEC)
    return path


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_SPEC)
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = run([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


# --------------------------------------------------------------------------- check


def test_check_valid_spec_exits_0(capsys: pytest.CaptureFixture[str], ok: Path) -> None:
    code, out, _ = cli(capsys, "check", ok)
    assert code == 0
    assert out.strip() == "0 errors in 1 file"


def test_check_renders_position_source_line_and_caret(capsys: pytest.CaptureFixture[str], bad: Path) -> None:
    code, out, _ = cli(capsys, "check", bad)
    assert code == 1
    col = BAD_SPEC.splitlines()[3].index("sdd") + 1
    assert f"{bad}:4:{col}: error[unknown-key]:" in out
    lines = out.splitlines()
    source_line = next(i for i, line in enumerate(lines) if line.startswith("4 | "))
    assert lines[source_line] == "4 | " + BAD_SPEC.splitlines()[3]
    caret = lines[source_line + 1]
    assert caret.index("^") == len("4 | ") + col - 1
    assert lines[-1].endswith("in 1 file")
    assert lines[-1].split()[0].isdigit() and int(lines[-1].split()[0]) >= 1


def test_check_many_files_reports_each_and_sums_up(
    capsys: pytest.CaptureFixture[str], ok: Path, bad: Path
) -> None:
    code, out, _ = cli(capsys, "check", ok, bad)
    assert code == 1
    assert str(ok) + ":" not in out  # nothing to say about the valid one
    assert str(bad) + ":4:" in out
    assert out.splitlines()[-1].endswith("in 2 files")


def test_check_a_directory_checks_the_yaml_files_in_it(
    capsys: pytest.CaptureFixture[str], ok: Path, bad: Path
) -> None:
    code, out, _ = cli(capsys, "check", ok.parent)
    assert code == 1
    assert out.splitlines()[-1].endswith("in 2 files")


def test_check_json_is_an_array_of_diagnostics(
    capsys: pytest.CaptureFixture[str], ok: Path, bad: Path
) -> None:
    code, out, _ = cli(capsys, "check", "--format", "json", ok, bad)
    assert code == 1
    diags = json.loads(out)
    assert isinstance(diags, list) and diags
    first = diags[0]
    assert {"code", "severity", "message", "file", "line", "col", "path", "hint"} <= set(first)
    assert any(d["code"] == "unknown-key" and d["line"] == 4 and d["file"] == str(bad) for d in diags)
    code, out, _ = cli(capsys, "check", "-f", "json", ok)
    assert code == 0
    assert json.loads(out) == []


def test_check_missing_file_is_a_diagnostic_not_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = cli(capsys, "check", tmp_path / "nope.yaml")
    assert code == 1
    assert "error[file-not-found]" in out
    assert "nope.yaml" in out


def test_check_empty_file_and_non_mapping(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    code, out, _ = cli(capsys, "check", tmp_path / "empty.yaml", tmp_path / "list.yaml")
    assert code == 1
    assert "error[empty-spec]" in out
    assert "error[not-a-mapping]" in out


@pytest.mark.parametrize(
    ("argv", "code", "is_json"),
    [(["check", "{ok}"], 0, False), (["check", "{bad}", "-f", "json"], 1, True),
     (["check", "--format=json", "{ok}", "{bad}"], 1, True), (["check", "{ok}", "--format", "text", "{bad}"], 1, False)],
)  # fmt: skip
def test_check_accepts_the_format_anywhere(
    capsys: pytest.CaptureFixture[str], ok: Path, bad: Path, argv: list[str], code: int, is_json: bool
) -> None:
    args = [arg.format(ok=ok, bad=bad) for arg in argv]
    assert run(args) == code
    out = capsys.readouterr().out
    if is_json:
        assert isinstance(json.loads(out), list)
    else:
        assert "error" in out or out.startswith("0 errors")


@pytest.mark.parametrize(
    "argv",
    [
        ["check"],
        ["check", "--format", "xml", "x.yaml"],
        ["frobnicate"],
        ["run"],
        ["run", "x.yaml", "--rows", "-1"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = cli(capsys, *argv)
    assert code == 2
    assert "Error:" in err or "Usage:" in err


def test_no_arguments_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys)
    assert code == 2
    assert "Commands:" in out + err


# --------------------------------------------------------------------------- help


@pytest.mark.parametrize("command", ["check", "plan", "run", "preview", "schema"])
def test_every_command_has_help_with_an_example(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, _ = cli(capsys, command, "--help")
    assert code == 0
    assert f"Usage: synthc {command}" in out
    assert "Example" in out


def test_top_level_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "-h")
    assert code == 0
    for command in ("check", "plan", "run", "preview", "schema"):
        assert f"  {command} " in out
    code, out, _ = cli(capsys, "--version")
    assert code == 0
    assert out.strip() == f"synthc {synthc.__version__}"


# --------------------------------------------------------------------------- plan


def test_plan_text_is_deterministic_and_names_every_column(
    capsys: pytest.CaptureFixture[str], ok: Path
) -> None:
    code, first, _ = cli(capsys, "plan", ok)
    assert code == 0
    _, second, _ = cli(capsys, "plan", ok)
    assert first == second
    plan = synthc.compile(ok)
    from runtime.plan import plan_hash

    assert first.startswith("plan orders\n")
    assert f"hash    {plan_hash(plan)}" in first
    for name in ("id", "n", "product", "price", "qty", "express"):
        assert f"  {name} " in first


def test_plan_json_round_trips_and_applies_overrides(capsys: pytest.CaptureFixture[str], ok: Path) -> None:
    code, out, _ = cli(capsys, "plan", ok, "--json")
    assert code == 0
    assert plan_from_json(out) == synthc.compile(ok)
    code, out, _ = cli(capsys, "plan", ok, "--json", "--rows", "3", "--seed", "9")
    assert code == 0
    plan = plan_from_json(out)
    assert (plan.rows, plan.seed) == (3, 9)


def test_plan_of_a_bad_spec_shows_the_diagnostic_on_stderr(
    capsys: pytest.CaptureFixture[str], bad: Path
) -> None:
    code, out, err = cli(capsys, "plan", bad)
    assert code == 1
    assert out == ""
    assert f"{bad}:4:" in err and "error[unknown-key]" in err and "^" in err
    assert err.rstrip().endswith(f"in {bad}")


# --------------------------------------------------------------------------- run


def test_run_writes_parquet_with_provenance_metadata(
    capsys: pytest.CaptureFixture[str], ok: Path, tmp_path: Path
) -> None:
    out_path = tmp_path / "out.parquet"
    code, out, err = cli(capsys, "run", ok, "--out", out_path)
    assert code == 0
    assert out == ""
    assert f"wrote 40 rows to {out_path}" in err and "rows/s" in err
    assert_frame_equal(pl.read_parquet(out_path), synthc.generate(ok))
    meta = pl.read_parquet_metadata(out_path)
    from runtime.plan import plan_hash

    plan = synthc.compile(ok)
    assert meta["synthc.plan_hash"] == plan_hash(plan)
    assert meta["synthc.spec_hash"] == plan.spec_hash
    assert meta["synthc.version"] == synthc.__version__
    assert meta["synthc.engine"] == str(plan.engine)


def test_run_rows_and_seed_override_the_spec(
    capsys: pytest.CaptureFixture[str], ok: Path, tmp_path: Path
) -> None:
    out_path = tmp_path / "out.csv"
    code, _, _ = cli(capsys, "run", ok, "--out", out_path, "--rows", "7", "--seed", "3", "--chunk-rows", "2")
    assert code == 0
    written = pl.read_csv(out_path)
    assert written.height == 7
    expected = synthc.generate(ok, rows=7, seed=3)
    assert written["n"].to_list() == expected["n"].to_list()
    assert written["id"].to_list() == expected["id"].to_list()
    assert written["id"].to_list() != synthc.generate(ok, rows=7)["id"].to_list()


def test_run_format_flag_overrides_the_extension(
    capsys: pytest.CaptureFixture[str], ok: Path, tmp_path: Path
) -> None:
    out_path = tmp_path / "data.txt"
    code, _, _ = cli(capsys, "run", ok, "--out", out_path, "--format", "jsonl", "--quiet")
    assert code == 0
    rows = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert len(rows) == 40


def test_run_uses_the_spec_output_path_relative_to_the_spec_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(OK_SPEC + "output: {path: from_spec.jsonl}\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, _, err = cli(capsys, "run", spec)
    assert code == 0
    assert len((tmp_path / "from_spec.jsonl").read_text().splitlines()) == 40
    assert not list(work.iterdir())
    assert "from_spec.jsonl" in err


def test_run_without_any_output_path_is_a_usage_error(capsys: pytest.CaptureFixture[str], ok: Path) -> None:
    code, _, err = cli(capsys, "run", ok)
    assert code == 2
    assert "--out" in err


@pytest.mark.parametrize(
    "argv", [["--out", "{tmp}/out.xlsx"], ["--out", "{tmp}/out.parquet", "--format", "xml"]]
)
def test_run_unknown_format_exits_2_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], ok: Path, tmp_path: Path, argv: list[str]
) -> None:
    before = set(tmp_path.iterdir())
    code, _, err = cli(capsys, "run", ok, *(a.format(tmp=tmp_path) for a in argv))
    assert code == 2
    assert "error[unknown-format]" in err
    assert set(tmp_path.iterdir()) == before


def test_run_into_a_missing_directory_exits_1_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], ok: Path, tmp_path: Path
) -> None:
    target = tmp_path / "no" / "such" / "dir" / "out.parquet"
    code, _, err = cli(capsys, "run", ok, "--out", target)
    assert code == 1
    assert str(target.parent) in err or str(target) in err
    assert not (tmp_path / "no").exists()


def test_run_onto_a_directory_leaves_no_partial_file(
    capsys: pytest.CaptureFixture[str], ok: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    target = out_dir / "taken.parquet"
    target.mkdir(parents=True)  # a directory where the file should go
    code, _, err = cli(capsys, "run", ok, "--out", target)
    assert code == 1
    assert "taken.parquet" in err
    assert [p.name for p in out_dir.iterdir()] == ["taken.parquet"]
    assert target.is_dir() and not any(target.iterdir())


def test_run_out_dash_streams_jsonl_to_stdout(capsys: pytest.CaptureFixture[str], ok: Path) -> None:
    code, out, err = cli(capsys, "run", ok, "--out", "-", "--rows", "12")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 12
    expected = synthc.generate(ok, rows=12)
    assert [row["id"] for row in rows] == expected["id"].to_list()
    assert list(rows[0]) == expected.columns
    assert "wrote 12 rows to stdout" in err


def test_run_out_dash_streams_csv_with_format_csv(capsys: pytest.CaptureFixture[str], ok: Path) -> None:
    code, out, _ = cli(capsys, "run", ok, "--out", "-", "--format", "csv", "--rows", "5", "-q")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 5
    assert list(rows[0]) == ["id", "n", "product", "price", "qty", "express"]


def test_run_out_dash_refuses_parquet(capsys: pytest.CaptureFixture[str], ok: Path) -> None:
    code, out, err = cli(capsys, "run", ok, "--out", "-", "--format", "parquet")
    assert code == 2
    assert out == ""
    assert "error[unknown-format]" in err


def test_run_bad_spec_exits_1_with_diagnostics(
    capsys: pytest.CaptureFixture[str], bad: Path, tmp_path: Path
) -> None:
    code, _, err = cli(capsys, "run", bad, "--out", tmp_path / "x.parquet")
    assert code == 1
    assert "error[unknown-key]" in err
    assert not (tmp_path / "x.parquet").exists()


def test_run_missing_spec_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = cli(capsys, "run", tmp_path / "missing.yaml", "--out", tmp_path / "x.parquet")
    assert code == 1
    assert "error[file-not-found]" in err


def test_ctrl_c_exits_130_without_a_traceback(
    capsys: pytest.CaptureFixture[str], ok: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synthc import api

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "compile", interrupted)
    code, _, err = cli(capsys, "plan", ok)
    assert code == 130
    assert "interrupted" in err


def test_a_bug_is_not_swallowed(ok: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from synthc import api

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(api, "compile", broken)
    with pytest.raises(ZeroDivisionError):
        run(["plan", str(ok)])


# --------------------------------------------------------------------------- preview, schema


def test_preview_prints_a_table_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], ok: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.iterdir())
    code, out, _ = cli(capsys, "preview", ok, "-n", "3")
    assert code == 0
    assert set(tmp_path.iterdir()) == before
    assert "first 3 of 40 rows" in out
    for name in ("id", "product", "price"):
        assert name in out
    first_ids = synthc.generate(ok, rows=3)["id"].to_list()
    assert all(uuid[:8] in out for uuid in first_ids)
    assert synthc.generate(ok, rows=4)["id"][3][:8] not in out


def test_preview_after_a_filter_shows_the_first_output_rows(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = tmp_path / "filtered.yaml"
    spec.write_text(OK_SPEC + "steps:\n  - filter: \"product = 'phone'\"\n")
    code, out, _ = cli(capsys, "preview", spec, "-n", "2")
    assert code == 0
    expected = synthc.generate(spec).head(2)
    assert "first 2 of at most 40 rows" in out  # a filter can keep fewer than `rows`
    assert all(uuid[:8] in out for uuid in expected["id"].to_list())
    assert "laptop" not in out


def test_schema_prints_the_shipped_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "schema")
    assert code == 0
    assert json.loads(out) == json.loads((ROOT / "schema" / "synthc.schema.json").read_text())


# --------------------------------------------------------------------------- as a process


def synthc_process(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "synthc", *map(str, argv)],
        capture_output=True, text=True, timeout=60, cwd=cwd, env=env, check=False,
    )  # fmt: skip


def test_process_check_exit_codes(ok: Path, bad: Path) -> None:
    assert synthc_process("check", ok).returncode == 0
    result = synthc_process("check", bad)
    assert result.returncode == 1
    assert "error[unknown-key]" in result.stdout
    assert "Traceback" not in result.stderr
    assert synthc_process("check").returncode == 2


def test_process_run_to_stdout_is_parseable_jsonl(ok: Path) -> None:
    result = synthc_process("run", ok, "--out", "-", "--rows", "25")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 25
    assert "\x1b[" not in result.stderr  # piped: no colour, no progress bar
    assert result.stderr.startswith("wrote 25 rows to stdout")


def test_process_run_errors_never_show_a_traceback(bad: Path, ok: Path, tmp_path: Path) -> None:
    for argv, code in (
        (["run", bad, "--out", tmp_path / "a.parquet"], 1),
        (["run", tmp_path / "missing.yaml", "--out", tmp_path / "a.parquet"], 1),
        (["run", ok, "--out", tmp_path / "a.xlsx"], 2),
        (["run", ok, "--out", tmp_path / "missing" / "a.parquet"], 1),
    ):
        result = synthc_process(*argv)
        assert result.returncode == code, (argv, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stderr.strip()
    assert list(tmp_path.glob("a.*")) == []


def test_process_closed_pipe_is_quiet(ok: Path) -> None:
    script = (
        "import subprocess, sys\n"
        f"p = subprocess.Popen([sys.executable, '-m', 'synthc', 'run', {str(ok)!r}, '--out', '-', '--rows', '200000',"
        " '--chunk-rows', '1000'], stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
        "p.stdout.readline(); p.stdout.close(); err = p.stderr.read(); p.wait()\n"
        "sys.stdout.write(err.decode())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert "Traceback" not in result.stdout
    assert "Exception ignored" not in result.stdout


def test_check_path_stays_light(ok: Path) -> None:
    """`synthc check` on a spec without expressions imports no polars, numpy, rich or pydantic."""
    code = (
        "import sys\n"
        "from synthc.cli import run\n"
        f"assert run(['check', {str(ok)!r}]) == 0\n"
        "heavy = ('polars', 'numpy', 'rich', 'runtime.execute', 'pydantic')\n"
        "print('loaded:' + ','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "loaded:"


def test_cli_module_import_is_light() -> None:
    code = (
        "import sys, synthc.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('polars', 'numpy', 'rich', 'jsonschema', 'yaml', 'typer')"
        " or m in ('runtime.execute', 'synthc.compiler')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --------------------------------------------------------------------------- terminal behaviour


class _FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    from synthc import console

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert console.style("error", "bold red") == "error"
    monkeypatch.setattr(sys, "stdout", _FakeTTY())
    assert console.style("error", "bold red") == "\x1b[1;31merror\x1b[0m"
    assert console.console().no_color is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert console.style("error", "bold red") == "error"
    assert console.console().no_color is True


def test_check_on_a_terminal_colours_the_code(monkeypatch: pytest.MonkeyPatch, bad: Path) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    fake = _FakeTTY()
    monkeypatch.setattr(sys, "stdout", fake)
    assert run(["check", str(bad)]) == 1
    assert "\x1b[1;31merror[unknown-key]\x1b[0m" in fake.getvalue()


def test_run_with_the_progress_bar_path(
    capsys: pytest.CaptureFixture[str], ok: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synthc import console

    monkeypatch.setattr(console, "is_terminal", lambda err=False: True)
    target = tmp_path / "bar.parquet"
    code, _, err = cli(capsys, "run", ok, "--out", target, "--chunk-rows", "8")
    assert code == 0
    assert pl.read_parquet(target).height == 40
    assert "wrote 40 rows" in err


def test_columns_that_fit_a_terminal() -> None:
    from synthc.preview import _columns_that_fit

    assert _columns_that_fit([10, 10, 10], 100) == 3
    assert _columns_that_fit([10, 10, 10], 27) == 2  # 1 + 13 + 13
    assert _columns_that_fit([10, 10, 10], 26) == 1
    assert _columns_that_fit([200], 80) == 1  # always at least one


def test_run_creates_the_folder_of_the_spec_output_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(OK_SPEC + "output: {path: data/out/rows.csv}\n")
    code, _, _ = cli(capsys, "run", spec)
    assert code == 0
    assert (tmp_path / "data" / "out" / "rows.csv").exists()
