"""Habits the machine enforces: layering, lint, types, packaging, import cost."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def test_runtime_never_imports_synthc() -> None:
    files = sorted((ROOT / "runtime").rglob("*.py"))
    assert files, "runtime/ has no Python files"
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in files
        for line, module in _imported_modules(path)
        if module == "synthc" or module.startswith("synthc.")
    ]
    assert offenders == []


def test_the_import_walker_sees_every_import_form(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import synthc\nfrom synthc.api import check\nimport importlib\n"
        "importlib.import_module('synthc.cli')\nfrom . import sibling\n"
    )
    assert [module for _, module in _imported_modules(probe)] == [
        "synthc",
        "synthc.api",
        "importlib",
        "synthc.cli",
    ]


def _run(*argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_ruff_passes() -> None:
    result = _run(
        "-m", "ruff", "check", "--no-cache", "synthc", "runtime", "tests", "benchmarks", timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_is_ruff_formatted() -> None:
    result = _run(
        "-m",
        "ruff",
        "format",
        "--check",
        "--no-cache",
        "synthc",
        "runtime",
        "tests",
        "benchmarks",
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_strict_passes() -> None:
    # pyproject's [tool.mypy] sets strict and the files (synthc, runtime)
    result = _run("-m", "mypy", "synthc", "runtime", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_synthc_is_cheap() -> None:
    code = (
        "import sys, synthc\n"
        "heavy = ('polars', 'numpy', 'jsonschema', 'yaml', 'jinja2', 'rich', 'typer')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    result = _run("-c", code, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


# Messages uv prints when it cannot get the build backend without a network.
_OFFLINE_SIGNS = ("offline", "network", "failed to fetch", "dns", "connection", "was not found in the cache")


def test_wheel_ships_the_schema_unchanged(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed, so the wheel cannot be built here")
    result = subprocess.run(
        [uv, "build", "--wheel", "--offline", "--out-dir", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
    )  # fmt: skip
    if result.returncode != 0:
        if (
            any(sign in result.stderr.lower() for sign in _OFFLINE_SIGNS)
            and "hatchling.build" not in result.stderr
        ):
            pytest.skip(f"the build backend cannot be installed offline: {result.stderr.strip()[-300:]}")
        pytest.fail(f"uv build failed:\n{result.stderr}")
    wheels = list(tmp_path.glob("synthc-*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = set(wheel.namelist())
        assert "synthc/synthc.schema.json" in names
        assert {"synthc/py.typed", "synthc/cli.py", "runtime/plan.py"} <= names
        shipped = wheel.read("synthc/synthc.schema.json")
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "synthc = synthc.cli:main" in wheel.read(entry_points).decode()
    assert shipped == (ROOT / "schema" / "synthc.schema.json").read_bytes()
