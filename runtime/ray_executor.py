"""Run a plan's shards as Ray tasks and write a partitioned Parquet dataset.

Optional (``pip install synthc[ray]``). The driver splits the plan into N shards
(:mod:`runtime.shards`); each Ray task generates one shard and writes it as
``part-K-of-N.parquet``. When the plan has steps that need every row (dedupe, sort,
shuffle, sample n, limit, sessionize), the tasks write shard files aside and the driver
merges them through those steps into N parts of about equal size. Either way the rows
of the parts, in order, are exactly those of a single-process run.

The dataset is written to a temporary folder beside ``out`` and moved into place only
when every part is written: a failed run leaves nothing at ``out``. Ray's usage
statistics are switched off before Ray starts (nothing leaves the machine).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.errors import ExecutionError
from runtime.plan import Plan, plan_from_json, plan_to_json
from runtime.shards import Shard, check_shardable, read_shard, split_steps


@dataclass(frozen=True)
class RayResult:
    path: Path
    rows: int
    parts: int


def part_name(k: int, n: int) -> str:
    return f"part-{k:05d}-of-{n:05d}.parquet"


def run_on_ray(
    plan: Plan, out: Path, *, shards: int | None = None, address: str | None = None, chunk_rows: int
) -> RayResult:
    """Generate ``plan`` on Ray (a local instance, or the cluster at ``address``) into the
    folder ``out``; ``shards`` defaults to the cluster's CPU count."""
    check_shardable(plan)
    ray = _start(address)
    try:
        n = shards or max(1, int(ray.cluster_resources().get("CPU", 1)))
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            rows = _run(ray, plan, work, n, chunk_rows)
            _replace(work, out)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    finally:
        ray.shutdown()
    return RayResult(out, rows, n)


def _start(address: str | None) -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise ExecutionError("the Ray executor needs Ray: pip install 'synthc[ray]'") from None
    try:
        ray.init(
            address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
            configure_logging=False, ignore_reinit_error=True,
        )  # fmt: skip
    except Exception as exc:  # Ray raises many kinds (connection, resources, version mismatch)
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExecutionError(f"cannot start {where}: {first}") from None
    return ray


def _run(ray: Any, plan: Plan, work: Path, n: int, chunk_rows: int) -> int:
    task = ray.remote(_write_shard)
    _, global_steps = split_steps(plan.steps)
    folder = work / ".shards" if global_steps else work
    folder.mkdir(exist_ok=True)
    text = plan_to_json(plan)
    refs = [task.remote(text, k, n, str(folder / part_name(k, n)), chunk_rows) for k in range(1, n + 1)]
    try:
        rows = sum(ray.get(refs))
    except Exception as exc:
        cause = getattr(exc, "cause", None) or exc
        raise ExecutionError(f"a shard failed on Ray: {str(cause).strip().splitlines()[0]}") from None
    if not global_steps:
        return int(rows)
    return _merge_into_parts(folder, work, n, chunk_rows)


def _write_shard(plan_json: str, k: int, n: int, path: str, chunk_rows: int) -> int:
    """One Ray task: shard k of n to ``path``; returns its row count."""
    from runtime.shards import shard_frames, shard_metadata
    from runtime.writers import write

    plan = plan_from_json(plan_json)
    shard = Shard(k, n)
    result = write(shard_frames(plan, shard, chunk_rows=chunk_rows), Path(path), "parquet",
                   metadata=shard_metadata(plan, shard), content=False)  # fmt: skip
    return result.rows


def _merge_into_parts(folder: Path, work: Path, n: int, chunk_rows: int) -> int:
    """Merge the shard files through the global steps into n parts of about equal size."""
    import polars as pl

    from runtime.shards import merge_frames

    files = [read_shard(p) for p in sorted(folder.glob("part-*.parquet"))]
    merged = pl.concat(list(merge_frames(files, chunk_rows=chunk_rows)), how="vertical")
    for k in range(1, n + 1):
        lo, hi = Shard(k, n).rows(merged.height)
        merged.slice(lo, hi - lo).write_parquet(work / part_name(k, n))
    shutil.rmtree(folder)
    return merged.height


def _replace(work: Path, out: Path) -> None:
    """Move the finished dataset to ``out`` (an existing dataset there is replaced)."""
    if out.exists() and not out.is_dir():
        raise ExecutionError(f"{out} exists and is not a folder: the Ray executor writes a folder of parts")
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        work.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        work.rename(out)
