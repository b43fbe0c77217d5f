"""The shipped JSON Schema works with the ecosystem's own validator, check-jsonschema
(what users run in CI and pre-commit), offline: valid specs pass, a mistake is named."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schema" / "synthc.schema.json"


def _check_jsonschema(*files: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert exe is not None, "check-jsonschema is a dev dependency"
    return subprocess.run(
        [exe, "--schemafile", str(SCHEMA), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_examples_and_valid_specs_pass_check_jsonschema() -> None:
    files = sorted((ROOT / "examples").glob("*.yaml")) + sorted((ROOT / "specs" / "valid").glob("*.yaml"))
    result = _check_jsonschema(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_jsonschema_names_an_unknown_key() -> None:
    result = _check_jsonschema(ROOT / "specs" / "invalid" / "unknown_key_rond.yaml")
    assert result.returncode == 1
    assert "'rond' was unexpected" in result.stdout
