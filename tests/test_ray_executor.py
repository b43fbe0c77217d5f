"""The Ray executor against a real local Ray instance: shards run as Ray tasks and the
parts of the dataset, in order, hold exactly the rows of a single-process run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import polars as pl
import pytest

from runtime.execute import execute
from synthc.cli import run
from synthc.compiler import compile_source

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install synthc[ray])"
    ),
]

ROW_LOCAL = """
synthc: 1
seed: 5
rows: 20000
columns:
  id: {type: uuid}
  x: {type: float, dist: normal, mean: 0, sd: 1}
  k: {type: int, min: 1, max: 9}
steps:
  - filter: "k > 2"
  - sample: {fraction: 0.5}
"""

GLOBAL = ROW_LOCAL + "  - dedupe: [k]\n  - sort: k\n"


def _ray_run(tmp_path: Path, text: str, shards: int) -> tuple[int, Path, str]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    out = tmp_path / "dataset"
    code = run(["run", str(spec), "--executor", "ray", "--shards", str(shards), "--out", str(out), "--quiet"])
    return code, out, ""


def test_ray_parts_equal_a_single_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _ray_run(tmp_path, ROW_LOCAL, 2)
    if code != 0 and "cannot start" in capsys.readouterr().err:
        pytest.skip("Ray cannot start a local instance here")
    assert code == 0
    parts = sorted(out.glob("*.parquet"))
    assert [p.name for p in parts] == ["part-00001-of-00002.parquet", "part-00002-of-00002.parquet"]
    single = pl.concat(list(execute(compile_source(ROW_LOCAL))))
    assert pl.concat([pl.read_parquet(p) for p in parts]).equals(single)
    # with steps that need every row, the driver merges: still the single run's rows
    code, out, _ = _ray_run(tmp_path, GLOBAL, 3)
    assert code == 0
    single = pl.concat(list(execute(compile_source(GLOBAL))))
    assert pl.concat([pl.read_parquet(p) for p in sorted(out.glob("*.parquet"))]).equals(single)
    assert not list(tmp_path.glob(".dataset.tmp-*"))  # no temporary folder left behind


def test_ray_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(ROW_LOCAL)
    assert run(["run", str(spec), "--executor", "spark", "--out", str(tmp_path / "d")]) == 2
    assert run(["run", str(spec), "--executor", "ray", "--shard", "1/2", "--out", str(tmp_path / "d")]) == 2
    assert run(["run", str(spec), "--executor", "ray", "--out", "-"]) == 2
    err = capsys.readouterr().err
    assert "not an executor" in err and "Traceback" not in err
