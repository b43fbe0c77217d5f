"""``synthc verify``: regenerate a spec's data from its lock and response pack, offline,
and compare it with what the lock recorded.

The checks run cheapest first, each with its own plain message: a lock this synthc
cannot read (:mod:`synthc.lockfile`), an engine that generates different data, a spec
whose plan changed since the lock (which columns), and only then the regeneration: no
model is called (LLM cells come from the packs and, read-only, the cache), and the
content hash of the rows is compared per column. When the locked output file is at
hand, the rows that differ are counted too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.plan import ENGINE_VERSION, Plan, plan_hash
from synthc import console
from synthc.lockfile import column_fingerprints, lock_path, pack_path, read_lock

if TYPE_CHECKING:
    import polars as pl

    from runtime.contenthash import ContentHash

EXIT_OK, EXIT_MISMATCH = 0, 1


@dataclass(frozen=True)
class Verdict:
    """What verify found: ``ok``, and the lines that explain it."""

    ok: bool
    lines: tuple[str, ...]


def verify_spec(
    spec: Path,
    *,
    lock: Path | None = None,
    packs: tuple[Path, ...] = (),
    cache: Path | None = None,
    against: Path | None = None,
) -> int:
    """The command: print the verdict, return the exit code (0 verified, 1 not)."""
    verdict = verify(spec, lock=lock, packs=packs, cache=cache, against=against)
    if verdict.ok:
        console.echo("\n".join(verdict.lines))
        return EXIT_OK
    first, *rest = verdict.lines
    console.echo("\n".join([console.style(first, "bold red", err=True), *rest]), err=True)
    return EXIT_MISMATCH


def verify(
    spec: Path,
    *,
    lock: Path | None = None,
    packs: tuple[Path, ...] = (),
    cache: Path | None = None,
    against: Path | None = None,
) -> Verdict:
    """Check that ``spec`` regenerates the data its lock describes (see the module doc)."""
    from synthc import api

    lock_file = lock or lock_path(spec)
    data = read_lock(lock_file)
    if data["engine"] != ENGINE_VERSION:
        return Verdict(False, (_engine_message(spec, lock_file, data),))
    base = api.compile(path=spec)
    if plan_hash(base) != data["plan_hash"]:
        return Verdict(False, _changed_lines(spec, lock_file, base, data))
    plan = locked_plan(base, data)
    options = _offline_options(spec, plan, data, packs, cache)
    content, _ = _regenerate(plan, options, keep=False)
    frame = None
    if content.total != data["content"].get("hash") and _reference(spec, data, against) is not None:
        _, frame = _regenerate(plan, options, keep=True)  # again, keeping the rows to count
    return _compare(spec, lock_file, data, content, frame, against)


def _engine_message(spec: Path, lock_file: Path, data: dict[str, Any]) -> str:
    return (
        f"error: {lock_file.name} was made with engine {data['engine']}; this synthc has engine "
        f"{ENGINE_VERSION}, whose samplers generate different data (see CHANGELOG.md), so the locked "
        f"data cannot be regenerated with it: run `synthc run {spec}` to write new data and a new lock, "
        f"or use the synthc version named in the lock ({data.get('synthc', '?')})"
    )


def _changed_lines(spec: Path, lock_file: Path, base: Plan, data: dict[str, Any]) -> tuple[str, ...]:
    locked = {name: c.get("fingerprint") for name, c in (data.get("columns") or {}).items()}
    now = column_fingerprints(base)
    changed = sorted(n for n in now if n in locked and now[n] != locked[n])
    added, removed = sorted(set(now) - set(locked)), sorted(set(locked) - set(now))
    lines = [f"error: {spec.name} changed since {lock_file.name} was written (its plan hash differs)"]
    if changed:
        lines.append(f"  columns defined differently: {', '.join(changed)}")
    if added:
        lines.append(f"  columns added: {', '.join(added)}")
    if removed:
        lines.append(f"  columns removed: {', '.join(removed)}")
    if base.seed != data.get("seed") and "seed" not in (data.get("overrides") or {}):
        lines.append(f"  seed: {data.get('seed')} in the lock, {base.seed} in the spec")
    if len(lines) == 1:
        lines.append("  (rows, steps, models or seed files changed)")
    lines.append(f"  run `synthc run {spec}` to write new data and a new lock")
    return tuple(lines)


def locked_plan(base: Plan, data: dict[str, Any]) -> Plan:
    """The plan a lock's run ran: the spec's plan with the lock's overrides."""
    overrides = data.get("overrides") or {}
    plan = base.with_overrides(rows=overrides.get("rows"), seed=overrides.get("seed"))
    models = overrides.get("models")
    return plan.with_overrides(models=models) if models else plan


def _regenerate(plan: Plan, options: Any, *, keep: bool) -> tuple[ContentHash, pl.DataFrame | None]:
    """The content hash of the regenerated rows, and the rows themselves with ``keep``
    (only done after a mismatch, to count the differing rows: memory stays one chunk)."""
    import polars as pl

    from runtime.contenthash import ContentHasher
    from runtime.execute import execute
    from synthc.llm import opened

    hasher, kept = ContentHasher(), []
    with opened(plan, options) as llm:
        for frame in execute(plan, llm=llm):
            hasher.update(frame)
            if keep:
                kept.append(frame)
    return hasher.result(), (pl.concat(kept, how="vertical") if kept else None)


def _offline_options(
    spec: Path, plan: Plan, data: dict[str, Any], packs: tuple[Path, ...], cache: Path | None
) -> Any:
    from runtime.llm.outcome import LLMOptions, default_cache

    if not plan.uses_models:
        return LLMOptions(cache=None, offline=True)
    found = packs or tuple(spec.parent / p for p in data.get("packs") or ())
    if not found and pack_path(spec).exists():
        found = (pack_path(spec),)
    store = cache if cache is not None else default_cache()
    return LLMOptions(cache=store if store.exists() else None, replay=found, offline=True)


def _reference(spec: Path, data: dict[str, Any], against: Path | None) -> Path | None:
    if against is not None:
        return against
    output = data.get("output")
    if isinstance(output, dict) and isinstance(output.get("path"), str):
        path = spec.parent / output["path"]
        return path if path.exists() else None
    return None


def _compare(
    spec: Path,
    lock_file: Path,
    data: dict[str, Any],
    content: ContentHash,
    frame: pl.DataFrame | None,
    against: Path | None,
) -> Verdict:
    locked = data["content"]
    if content.total == locked.get("hash"):
        return Verdict(
            True,
            (
                f"verified: {spec.name} regenerates the data in {lock_file.name}: "
                f"{content.rows:,} rows, content {content.total}",
            ),
        )
    now = {
        name: (dtype, digest)
        for (name, digest), (_, dtype) in zip(content.columns, content.schema, strict=True)
    }
    then = {name: (c.get("dtype"), c.get("hash")) for name, c in (locked.get("columns") or {}).items()}
    differ = [n for n in now if n in then and now[n] != then[n]]
    lines = [f"error: {spec.name} does not regenerate the data in {lock_file.name}"]
    if differ:
        lines.append(f"  columns that differ: {', '.join(differ)}")
    if set(now) != set(then):
        lines.append(f"  columns: {', '.join(then)} in the lock; {', '.join(now)} regenerated")
    lines.append(f"  rows: {locked.get('rows', '?'):,} in the lock, {content.rows:,} regenerated")
    reference = _reference(spec, data, against)
    if frame is not None and reference is not None:
        lines.extend(_row_lines(frame, reference, differ))
    else:
        lines.append("  (to count the rows that differ, keep the output file or pass --against FILE)")
    return Verdict(False, tuple(lines))


def _row_lines(frame: pl.DataFrame, reference: Path, columns: list[str]) -> list[str]:
    """Per differing column, how many rows differ from the file at ``reference``."""
    import polars as pl

    from runtime.plan import format_for_path

    fmt = format_for_path(reference)
    try:
        match fmt:
            case "parquet":
                old = pl.read_parquet(reference)
            case "csv":
                old = pl.read_csv(reference, schema=frame.schema)
            case "jsonl":
                old = pl.read_ndjson(reference, schema=frame.schema)
            case "json":
                old = pl.read_json(reference, schema=frame.schema)
            case _:
                return [f"  (cannot read {reference.name} to count the rows that differ)"]
    except (OSError, pl.exceptions.PolarsError) as exc:
        return [f"  (cannot read {reference.name} to count the rows that differ: {str(exc).splitlines()[0]})"]
    if old.height != frame.height:
        return [f"  {reference.name} has {old.height:,} rows; the rows cannot be compared one by one"]
    counts = []
    for name in columns:
        if name in old.columns:
            try:
                n = int(frame[name].ne_missing(old[name].cast(frame[name].dtype)).sum())
            except pl.exceptions.PolarsError:
                continue
            counts.append(f"{name} {n:,}")
    return [f"  rows that differ from {reference.name}: {', '.join(counts)}"] if counts else []
