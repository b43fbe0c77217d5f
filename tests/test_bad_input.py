"""Bad input through the real command line, as a demanding user would give it.

Every case: exit code 1 (errors) or 2 (usage), never a traceback, a message that
names the place (``file:line:col`` where one exists), no partial or temporary file in
the output directory, and an existing output file left byte for byte as it was.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthc import cli

OLD = b"old contents\n"
OK = "synthc: 1\nrows: 20\ncolumns:\n  x: {type: int, min: 1, max: 5}\n"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit code and stdout + stderr of ``synthc ARGV``; never a traceback."""
    code = cli.run(list(argv))
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "Traceback" not in output
    return code, output


def spec_file(tmp_path: Path, text: str | bytes, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


@pytest.fixture
def outdir(tmp_path: Path) -> Path:
    """An output directory holding one existing output file per format."""
    out = tmp_path / "out"
    out.mkdir()
    for ext in ("parquet", "csv", "jsonl", "json"):
        (out / f"data.{ext}").write_bytes(OLD)
    return out


def assert_untouched(outdir: Path) -> None:
    """Only the old files, each as it was: no partial, no temporary file."""
    assert sorted(os.listdir(outdir)) == ["data.csv", "data.json", "data.jsonl", "data.parquet"]
    for path in outdir.iterdir():
        assert path.read_bytes() == OLD, path


# --------------------------------------------------------------------------- the spec file itself


def test_missing_spec_file(capsys: pytest.CaptureFixture[str], tmp_path: Path, outdir: Path) -> None:
    missing = tmp_path / "nope.yaml"
    for argv in (
        ["check", str(missing)],
        ["plan", str(missing)],
        ["run", str(missing), "--out", str(outdir / "data.csv")],
    ):
        code, output = run_cli(capsys, *argv)
        assert code == 1
        assert "error[file-not-found]" in output and "nope.yaml" in output and "no such file" in output
    assert_untouched(outdir)


def test_a_directory_as_the_spec(capsys: pytest.CaptureFixture[str], tmp_path: Path, outdir: Path) -> None:
    code, output = run_cli(capsys, "run", str(tmp_path), "--out", str(outdir / "data.csv"))
    assert code == 1
    assert "error[file-not-found]" in output and "is a directory" in output
    assert_untouched(outdir)
    empty = tmp_path / "empty"
    empty.mkdir()
    code, output = run_cli(capsys, "check", str(empty))  # no *.yaml inside: wrong usage
    assert code == 2 and "no spec files" in output


WHOLE_FILE = {
    "empty": (b"", "empty-spec", "1:1"),
    "whitespace": (b"   \n\n  \n", "empty-spec", "1:1"),
    "comment-only": (b"# nothing here\n", "empty-spec", "1:1"),
    "list": (b"- a\n- b\n", "not-a-mapping", "1:1"),
    "scalar": (b"42\n", "not-a-mapping", "1:1"),
    "string": (b"synthc\n", "not-a-mapping", "1:1"),
    "bad-utf8": (b"synthc: 1\ncolumns:\n  x: {type: category, values: [\xff\xfe]}\n", "yaml-syntax", "3:32"),
    "yaml-syntax": (b"synthc: 1\ncolumns: {x: [\n", "yaml-syntax", None),
    "tabs": (b"synthc: 1\ncolumns:\n\tx: {type: uuid}\n", "tab-indent", "3:1"),
    "deep-flow": (b"synthc: 1\nvars: {v: " + b"[" * 5000 + b"]" * 5000 + b"}\ncolumns: {x: {type: uuid}}\n",
                  "unsupported-yaml", None),
    "deep-block": (b"synthc: 1\nvars:\n" + b"".join(b"  " * i + b"a:\n" for i in range(1, 400))
                   + b"columns: {x: {type: uuid}}\n", "unsupported-yaml", None),
}  # fmt: skip


@pytest.mark.parametrize("name", WHOLE_FILE)
def test_unusable_files(capsys: pytest.CaptureFixture[str], tmp_path: Path, outdir: Path, name: str) -> None:
    text, code_name, where = WHOLE_FILE[name]
    spec = spec_file(tmp_path, text)
    for argv in (["check", str(spec)], ["run", str(spec), "--out", str(outdir / "data.parquet")]):
        code, output = run_cli(capsys, *argv)
        assert code == 1
        assert f"error[{code_name}]" in output
        assert f"{spec}:{where or ''}" in output
    assert_untouched(outdir)


def test_a_huge_line_and_a_5mb_spec_are_fine(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blob = "x" * 5_000_000
    spec = spec_file(tmp_path, f"synthc: 1\nrows: 3\nvars: {{blob: {blob}}}\ncolumns:\n  x: {{type: uuid}}\n")
    assert run_cli(capsys, "check", str(spec)) == (0, "0 errors in 1 file\n")
    long_value = spec_file(
        tmp_path, "synthc: 1\ncolumns:\n  x: {type: category, values: [" + "a" * 1_000_000 + ", b]}\n"
    )
    code, _ = run_cli(
        capsys, "run", str(long_value), "--rows", "2", "--out", str(tmp_path / "o.parquet"), "-q"
    )
    assert code == 0
    # a mistake after a huge line still points at its own line
    bad = spec_file(
        tmp_path, "synthc: 1\nvars: {blob: " + "y" * 1_000_000 + "}\ncolumns:\n  x: {type: uuidd}\n"
    )
    code, output = run_cli(capsys, "check", str(bad))
    assert code == 1 and f"{bad}:4:13: error[unknown-column-type]" in output


# --------------------------------------------------------------------------- mistakes in a spec

H = "synthc: 1\nrows: 20\n"
SPEC_MISTAKES = {
    # wrong types
    "rows-string": (H.replace("20", "abc") + "columns: {x: {type: uuid}}\n", "wrong-type", "2:7"),
    "seed-float": (H + "seed: 1.5\ncolumns: {x: {type: uuid}}\n", "wrong-type", "3:7"),
    "columns-list": (H + "columns: [a, b]\n", "wrong-type", "3:10"),
    "column-scalar": (H + "columns:\n  x: 5\n", "wrong-type", "4:6"),
    "min-string": (H + "columns:\n  x: {type: int, min: a, max: 5}\n", "wrong-type", "4:23"),
    "p-yes": (H + "columns:\n  x: {type: bool, p: yes}\n", "wrong-type", "4:22"),
    "steps-mapping": (H + "columns: {x: {type: uuid}}\nsteps: {drop: [x]}\n", "wrong-type", "4:8"),
    "version": ("synthc: 2\ncolumns: {x: {type: uuid}}\n", "unsupported-version", "1:9"),
    "no-columns": ("synthc: 1\nrows: 3\n", "missing-key", "1:1"),
    # unknown keys
    "top-level-key": (H + "bogus: 1\ncolumns: {x: {type: uuid}}\n", "unknown-key", "3:1"),
    "column-key": (H + "columns:\n  x: {type: float, dist: normal, mean: 1, sd: 2, sdd: 3}\n", "unknown-key", "4:50"),
    "step-key": (H + "columns: {x: {type: uuid}}\nsteps:\n  - filter: 'true'\n    extra: 1\n", "unknown-key", "6:5"),
    "unknown-step": (H + "columns: {x: {type: uuid}}\nsteps:\n  - frob: 1\n", "unknown-step", "5:5"),
    "output-key": (H + "columns: {x: {type: uuid}}\noutput: {path: a.csv, bar: 1}\n", "unknown-key", "4:23"),
    "column-type": (H + "columns:\n  x: {type: txt}\n", "unknown-column-type", "4:13"),
    # distributions and ranges
    "negative-sd": (H + "columns:\n  x: {type: float, dist: normal, mean: 0, sd: -1}\n", "bad-distribution", "4:47"),
    "zero-sd": (H + "columns:\n  x: {type: float, dist: normal, mean: 0, sd: 0}\n", "bad-distribution", "4:47"),
    "binomial-p": (H + "columns:\n  x: {type: int, dist: binomial, n: 5, p: 1.5}\n", "bad-distribution", "4:43"),
    "bool-p": (H + "columns:\n  x: {type: bool, p: 1.5}\n", "out-of-range", "4:22"),
    "missing-param": (H + "columns:\n  x: {type: float, dist: normal, mean: 0}\n", "bad-distribution", "4:26"),
    "uniform-no-max": (H + "columns:\n  x: {type: float, min: 0}\n", "bad-distribution", "4:3"),
    "foreign-param": (H + "columns:\n  x: {type: float, dist: normal, mean: 0, sd: 1, lam: 3}\n",
                      "bad-distribution", "4:50"),
    "unknown-dist": (H + "columns:\n  x: {type: float, dist: cauchy}\n", "bad-value", "4:26"),
    "nan": (H + "columns:\n  x: {type: float, dist: normal, mean: .nan, sd: 1}\n", "bad-value", "4:40"),
    "inf": (H + "columns:\n  x: {type: float, min: 0, max: .inf}\n", "bad-value", "4:33"),
    "negative-weight": (H + "columns:\n  x: {type: category, values: {a: -1, b: 2}}\n", "out-of-range", "4:35"),
    "zero-weights": (H + "columns:\n  x: {type: category, values: {a: 0, b: 0}}\n", "bad-weights", "4:31"),
    "min-over-max": (H + "columns:\n  x: {type: int, min: 5, max: 1}\n", "min-greater-than-max", "4:23"),
    "dates-reversed": (H + "columns:\n  x: {type: date, start: 2024-02-01, end: 2024-01-01}\n",
                       "min-greater-than-max", "4:26"),
    "int-beyond-int64": (H + "columns:\n  x: {type: int, min: -1e300, max: 1e300}\n", "out-of-range", "4:23"),
    "sequence-beyond-int64": (H + "columns:\n  x: {type: sequence, start: 99999999999999999999999}\n",
                              "out-of-range", "4:30"),
    "nulls-over-1": (H + "columns:\n  x: {type: uuid, nulls: 2}\n", "out-of-range", "4:26"),
    "negative-seed": (H + "seed: -1\ncolumns: {x: {type: uuid}}\n", "out-of-range", "3:7"),
    "seed-2-64": (H + "seed: 18446744073709551616\ncolumns: {x: {type: uuid}}\n", "out-of-range", "3:7"),
    "negative-rows": ("synthc: 1\nrows: -1\ncolumns: {x: {type: uuid}}\n", "out-of-range", "2:7"),
    "huge-rows": ("synthc: 1\nrows: 1000000000000\ncolumns: {x: {type: uuid}}\n", "too-many-rows", "2:7"),
    "relative-without-as-of": (H + "columns:\n  x: {type: datetime, start: -9d, end: 0d}\n", "missing-key", "4:30"),
    # references and cycles
    "template-ref": (H + "columns:\n  a: {type: template, template: '{{ nope }}'}\n", "unknown-reference", "4:37"),
    "expression-ref": (H + "columns:\n  b: {type: expression, expr: 'zzz + 1'}\n", "unknown-reference", "4:32"),
    "given-ref": (H + "columns:\n  c: {type: category, given: qq, values: {x: [1]}}\n", "unknown-reference", "4:30"),
    "step-ref": (H + "columns: {x: {type: uuid}}\nsteps:\n  - sort: missing\n", "unknown-reference", "5:11"),
    "self-cycle": (H + "columns:\n  a: {type: expression, expr: 'a + 1'}\n", "cycle", "4:32"),
    "two-cycle": (H + "columns:\n  a: {type: expression, expr: 'b + 1'}\n  b: {type: expression, expr: 'a + 1'}\n",
                  "cycle", "4:3"),
    "three-cycle": (H + "columns:\n  a: {type: template, template: '{{ c }}'}\n  b: {type: expression, expr: 'a'}\n"
                    "  c: {type: template, template: '{{ b }}x'}\n", "cycle", "6:3"),
    "template-syntax": (H + "columns:\n  a: {type: template, template: '{{ x '}\n", "template-syntax", "4:34"),
    "expression-syntax": (H + "columns:\n  a: {type: expression, expr: '1 +'}\n", "expression-syntax", "4:31"),
    "expression-clock": (H + "columns:\n  a: {type: expression, expr: 'now()'}\n", "expression-error", "4:32"),
    "duplicate-key": (H + "columns:\n  x: {type: uuid}\n  x: {type: uuid}\n", "duplicate-key", "5:3"),
    "output-extension": (H + "columns: {x: {type: uuid}}\noutput: {path: ids.xlsx}\n", "unknown-format", "4:16"),
}  # fmt: skip


@pytest.mark.parametrize("name", SPEC_MISTAKES)
def test_spec_mistakes(capsys: pytest.CaptureFixture[str], tmp_path: Path, outdir: Path, name: str) -> None:
    text, code_name, where = SPEC_MISTAKES[name]
    spec = spec_file(tmp_path, text)
    head = f"{spec}:{where}: error[{code_name}]"
    code, output = run_cli(capsys, "check", str(spec))
    assert code == 1 and head in output, output
    code, output = run_cli(capsys, "run", str(spec), "--out", str(outdir / "data.parquet"))
    assert code == 1 and head in output, output
    assert_untouched(outdir)


# --------------------------------------------------------------------------- the command line


USAGE = {
    "rows-huge": (["--rows", str(10**12)], "rows must be between 0 and 2,000,000,000"),
    "rows-negative": (["--rows", "-1"], "--rows"),
    "rows-text": (["--rows", "abc"], "--rows"),
    "seed-negative": (["--seed", "-1"], "--seed"),
    "seed-2-64": (["--seed", str(2**64)], "seed must be between 0 and 9,223,372,036,854,775,807"),
    "seed-huge": (["--seed", str(10**40)], "seed must be between"),
    "seed-text": (["--seed", "abc"], "--seed"),
    "chunk-zero": (["--chunk-rows", "0"], "--chunk-rows"),
    "chunk-negative": (["--chunk-rows", "-5"], "--chunk-rows"),
    "format-unknown": (["--format", "xlsx"], "error[unknown-format]: unknown output format `xlsx`"),
    "unknown-option": (["--frobnicate"], "No such option"),
}


@pytest.mark.parametrize("name", USAGE)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, outdir: Path, name: str
) -> None:
    extra, fragment = USAGE[name]
    spec = spec_file(tmp_path, OK)
    code, output = run_cli(capsys, "run", str(spec), "--out", str(outdir / "data.csv"), *extra)
    assert code == 2 and fragment in output, output
    assert_untouched(outdir)


@pytest.mark.parametrize("fmt", ["parquet", "json"])
def test_out_dash_takes_only_stream_formats(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str
) -> None:
    code, output = run_cli(capsys, "run", str(spec_file(tmp_path, OK)), "--out", "-", "--format", fmt)
    assert code == 2
    assert f"error[unknown-format]: cannot stream `{fmt}` to a pipe" in output
    assert "hint: streaming takes jsonl or csv" in output  # not a hint that lists parquet
    assert "{" not in output  # no rows were written before the refusal


def test_out_dash_with_a_format_that_does_not_exist(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, output = run_cli(capsys, "run", str(spec_file(tmp_path, OK)), "--out", "-", "--format", "xlsx")
    assert code == 2
    assert "error[unknown-format]: unknown output format `xlsx`" in output


def test_a_usage_error_comes_before_spec_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = spec_file(tmp_path, "synthc: 1\ncolumns: {x: {type: txt}}\n")
    for out, fmt in (("-", "parquet"), (str(tmp_path / "o.xlsx"), None)):
        code, output = run_cli(capsys, "run", str(bad), "--out", out, *(["--format", fmt] if fmt else []))
        assert code == 2 and "unknown-format" in output and "unknown-column-type" not in output


# --------------------------------------------------------------------------- where the output goes


def test_unwritable_outputs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = spec_file(tmp_path, OK)
    afile = tmp_path / "afile"
    afile.write_bytes(OLD)
    adir = tmp_path / "adir.csv"
    adir.mkdir()
    cases = {
        str(tmp_path / "missing" / "o.csv"): "directory " + str(tmp_path / "missing") + " does not exist",
        str(adir): "it is a directory",
        str(afile / "o.csv"): f"{afile} is not a directory",
    }
    for out, reason in cases.items():
        code, output = run_cli(capsys, "run", str(spec), "--out", out)
        assert code == 1
        assert f"error[output-error]: cannot write {out}: {reason}" in output
    assert sorted(os.listdir(tmp_path)) == ["adir.csv", "afile", "spec.yaml"]
    assert os.listdir(adir) == [] and afile.read_bytes() == OLD


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only directories")
def test_read_only_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = spec_file(tmp_path, OK)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, output = run_cli(capsys, "run", str(spec), "--out", str(ro / "o.parquet"))
        assert code == 1 and "error[output-error]" in output and "permission denied" in output
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("out", ["data.xlsx", "data", "data.parquet.bak"])
def test_unknown_extension(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, outdir: Path, out: str
) -> None:
    code, output = run_cli(capsys, "run", str(spec_file(tmp_path, OK)), "--out", str(outdir / out))
    assert code == 2 and "error[unknown-format]: cannot tell the output format" in output
    assert_untouched(outdir)


# --------------------------------------------------------------------------- failures while generating

# Each fails on row 249 only, long after the first chunks (of 16 rows) were written.
RUNTIME = {
    "template-zero-division": ("{type: template, template: '{{ 1 // (n - 250) }}'}", "ZeroDivisionError"),
    "template-undefined-attribute": (
        "{type: template, template: \"{{ (n if n != 250 else none).real }}\"}", "UndefinedError"),
    "template-sandbox": ("{type: template, template: \"{{ n if n != 250 else n.__class__ }}\"}", "SecurityError"),
    "expression": ("{type: expression, expr: \"CAST(CASE WHEN n = 250 THEN 'x' ELSE '1' END AS INTEGER)\"}",
                   "conversion from `str` to `i32` failed"),
}  # fmt: skip


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl", "json"])
@pytest.mark.parametrize("name", RUNTIME)
def test_failures_at_run_time_leave_nothing_behind(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, outdir: Path, name: str, fmt: str
) -> None:
    column, reason = RUNTIME[name]
    spec = spec_file(tmp_path, f"synthc: 1\nrows: 400\ncolumns:\n  n: {{type: sequence}}\n  t: {column}\n")
    code, output = run_cli(
        capsys, "run", str(spec), "--out", str(outdir / f"data.{fmt}"), "--chunk-rows", "16"
    )
    assert code == 1
    assert "column `t`" in output and reason in output
    # one diagnostic pointing at the column (not Polars' query plan): head, source line, caret, hint
    assert f"{spec}:5:" in output and "error[runtime-error]" in output
    assert output.count("\n") <= 8, output
    assert_untouched(outdir)


def test_a_failing_step_leaves_nothing_behind(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, outdir: Path
) -> None:
    spec = spec_file(
        tmp_path,
        "synthc: 1\nrows: 400\ncolumns:\n  n: {type: sequence}\n"
        "steps:\n  - filter: \"CAST(CASE WHEN n = 250 THEN 'x' ELSE '1' END AS INTEGER) > 0\"\n",
    )
    code, output = run_cli(capsys, "run", str(spec), "--out", str(outdir / "data.csv"), "--chunk-rows", "16")
    assert code == 1 and "error: step `filter:" in output and "failed" in output
    assert_untouched(outdir)


def test_extreme_parameters_run_without_warnings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = spec_file(
        tmp_path,
        "synthc: 1\nrows: 50\ncolumns:\n"
        "  g: {type: float, dist: gamma, shape: 1e308, scale: 1e308}\n"
        "  l: {type: int, dist: lognormal, mu: 1000, sigma: 100}\n"
        "  top: {type: int, min: 9223372036854775000, max: 9223372036854775807}\n",
    )
    code, output = run_cli(capsys, "run", str(spec), "--out", str(tmp_path / "o.parquet"), "-q")
    assert (code, output) == (0, "")

    import polars as pl

    top = pl.read_parquet(tmp_path / "o.parquet")["top"]
    assert top.min() is not None and top.min() > 0  # never wraps past Int64's top to negative


# --------------------------------------------------------------------------- as a process


def _process(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synthc", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_as_a_process(tmp_path: Path, outdir: Path) -> None:
    bad = spec_file(tmp_path, "synthc: 1\ncolumns:\n  x: {type: int, min: 5, max: 1}\n", "bad.yaml")
    failing = spec_file(
        tmp_path,
        "synthc: 1\nrows: 300\ncolumns:\n  n: {type: sequence}\n  t: {type: template, template: "
        "'{{ 1 // (n - 250) }}'}\n",
        "failing.yaml",
    )
    cases = [
        (["run", "missing.yaml", "--out", str(outdir / "data.csv")], 1, "error[file-not-found]"),
        (
            ["run", "bad.yaml", "--out", str(outdir / "data.parquet")],
            1,
            "bad.yaml:3:23: error[min-greater-than-max]",
        ),
        (
            ["run", "failing.yaml", "--out", str(outdir / "data.jsonl"), "--chunk-rows", "8"],
            1,
            "ZeroDivisionError",
        ),
        (["run", "failing.yaml", "--out", "-", "--format", "parquet"], 2, "cannot stream `parquet`"),
        (["run", "failing.yaml", "--out", str(outdir / "data.csv"), "--rows", "abc"], 2, "--rows"),
    ]
    assert bad.exists() and failing.exists()
    for argv, expected, fragment in cases:
        done = _process(*argv, cwd=tmp_path)
        assert done.returncode == expected, (argv, done.stderr)
        assert fragment in done.stderr, done.stderr
        assert "Traceback" not in done.stderr + done.stdout
    assert_untouched(outdir)


def test_a_reader_that_stops_early_ends_the_run_quietly() -> None:
    """`synthc run SPEC --out - | head -1`: no error message, exit 0."""
    spec = Path(__file__).resolve().parent.parent / "examples" / "ecommerce_orders.yaml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "synthc", "run", str(spec), "--rows", "200000", "--out", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "error" not in err.lower() and "Traceback" not in err


def test_sigterm_leaves_no_temporary_file(tmp_path: Path) -> None:
    spec = Path(__file__).resolve().parent.parent / "benchmarks" / "specs" / "eight_columns.yaml"
    out = tmp_path / "big.csv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "synthc", "run", str(spec), "--rows", "20000000", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not any(tmp_path.iterdir()) and time.monotonic() < deadline:  # the temp file exists
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    assert list(tmp_path.iterdir()) == []
