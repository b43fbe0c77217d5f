"""Expression checks: Polars' verdict, cached so a repeated `synthc check` skips Polars."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from synthc.compiler import check_source

SPEC = """synthc: 1
columns:
  price: {type: float, min: 1, max: 2}
  qty: {type: int, min: 1, max: 3}
  total: {type: expression, expr: "price * qty"}
steps:
  - filter: "total > 1.5"
"""

PROBE = """
import sys
from synthc.compiler import check_path
diags = check_path(sys.argv[1])
print(len(diags), 'polars' in sys.modules)
"""


def test_second_check_does_not_import_polars(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    env = {"SYNTHC_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    first = subprocess.run(
        [sys.executable, "-c", PROBE, str(spec)], capture_output=True, text=True, env=env, check=True
    )
    second = subprocess.run(
        [sys.executable, "-c", PROBE, str(spec)], capture_output=True, text=True, env=env, check=True
    )
    assert first.stdout.split() == ["0", "True"]
    assert second.stdout.split() == ["0", "False"]


def test_cached_errors_keep_their_positions(tmp_path: Path, monkeypatch: object) -> None:
    text = SPEC.replace("price * qty", "price *+/ qty")
    first = check_source(text, "s.yaml")
    second = check_source(text, "s.yaml")
    assert [d.code for d in first] == ["expression-syntax"]
    assert first == second


def test_corrupt_cache_entry_is_a_miss(tmp_path: Path) -> None:
    from synthc.compiler import compile_source
    from synthc.loader import load
    from synthc.sqlcheck import check_expressions

    plan = compile_source(SPEC, "s.yaml")
    _, smap = load(SPEC, "s.yaml")
    cache = tmp_path / "checks"
    assert check_expressions(plan, smap, cache) == []
    (entry,) = cache.iterdir()
    entry.write_text("{not json")
    assert check_expressions(plan, smap, cache) == []
    assert entry.read_text().startswith("[")


PLAN_PROBE = """
import sys
from synthc.compiler import compile_path
plan = compile_path(sys.argv[1])
print(plan.rows, sorted(m for m in ('yaml', 'jsonschema', 'polars', 'jinja2') if m in sys.modules))
"""


def test_second_compile_comes_from_the_plan_cache(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.replace("columns:", "rows: 7\ncolumns:"))
    env = {"SYNTHC_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    runs = [
        subprocess.run(
            [sys.executable, "-c", PLAN_PROBE, str(spec)], capture_output=True, text=True, env=env, check=True
        )
        for _ in range(2)
    ]
    assert runs[0].stdout.strip() == "7 ['jsonschema', 'polars', 'yaml']"
    assert runs[1].stdout.strip() == "7 []"


def test_plan_cache_misses_on_any_change_and_never_stores_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synthc.compiler import compile_source
    from synthc.errors import SpecError

    monkeypatch.setenv("SYNTHC_CACHE_DIR", str(tmp_path))
    first = compile_source(SPEC)
    assert compile_source(SPEC) == first
    assert compile_source(SPEC.replace("max: 3", "max: 4")).column("qty") != first.column("qty")
    bad = SPEC.replace("max: 3", "max: 0")
    for _ in range(2):
        with pytest.raises(SpecError):
            compile_source(bad)
    for entry in (tmp_path / "plans").iterdir():
        entry.write_text('"not a plan"')
    assert compile_source(SPEC) == first  # a corrupt entry is a miss, then rewritten


def test_cache_folder_ignores_itself_in_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from synthc.compiler import compile_source

    root = tmp_path / ".synthc"
    monkeypatch.setenv("SYNTHC_CACHE_DIR", str(root))
    compile_source(SPEC)
    assert (root / ".gitignore").read_text().splitlines()[-1] == "*"
