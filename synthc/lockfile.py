"""Lock files: what a run of a spec produced, so anyone can check they regenerate it.

``synthc run tickets.yaml`` writes ``tickets.lock.json`` beside the spec: versions, the
spec and plan hashes, seed and row counts, every model alias with the models that
actually answered, a fingerprint per column, what the LLM cells cost, and a content
hash of the output rows that does not depend on the file format or compression. The
JSON has sorted keys and two-space indentation, so a lock diffs well in a review.

``synthc verify`` reads a lock back (:func:`read_lock`) and refuses, with a plain
message, a lock it cannot honour: one written by a newer synthc or in a newer lock
format. An engine change is reported by :mod:`synthc.verify`, not here.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from runtime.plan import PLAN_FORMAT, Plan, canonical_json, plan_hash, to_data, without_seed_paths
from synthc.errors import SynthcError

if TYPE_CHECKING:
    from runtime.contenthash import ContentHash
    from runtime.llm.outcome import LLMSummary

LOCK_FORMAT = 1


class LockError(SynthcError):
    """A lock file is missing, unreadable, or one this synthc cannot honour (exit 1)."""

    exit_code = 1


def lock_path(spec: Path) -> Path:
    """``tickets.yaml`` -> ``tickets.lock.json`` (beside the spec)."""
    return spec.with_name(f"{spec.stem}.lock.json")


def pack_path(spec: Path) -> Path:
    """``tickets.yaml`` -> ``tickets.responses.parquet`` (beside the spec)."""
    return spec.with_name(f"{spec.stem}.responses.parquet")


def column_fingerprints(plan: Plan) -> dict[str, str]:
    """xxh3-128 per column of everything in the plan that decides its values (its plan
    node; seed file paths left out, their digests kept)."""
    return {
        col.name: xxhash.xxh3_128_hexdigest(canonical_json(without_seed_paths(to_data(col))).encode())
        for col in plan.columns
    }


def build_lock(
    *,
    spec: Path,
    base: Plan,
    plan: Plan,
    content: ContentHash,
    llm: LLMSummary | None,
    output: tuple[str, str] | None,
    packs: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """The lock of one run: ``base`` is the spec's plan as compiled, ``plan`` the one that
    ran (with --rows/--seed/--model applied); ``output`` is (path, format) when a file
    was written; paths are stored relative to the spec's folder."""
    from synthc import __version__

    lock: dict[str, Any] = {
        "lock": LOCK_FORMAT,
        "synthc": __version__,
        "engine": plan.engine,
        "plan_format": PLAN_FORMAT,
        "spec": {"path": spec.name, "hash": base.spec_hash},
        "plan_hash": plan_hash(base),
        "seed": plan.seed,
        "overrides": _overrides(base, plan),
        "rows": {"generated": plan.rows if plan.target is None else None, "output": content.rows},
        "columns": {
            name: {"kind": plan.column(name).KIND, "fingerprint": fp}
            for name, fp in column_fingerprints(plan).items()
        },
        "content": {
            "hash": content.total,
            "rows": content.rows,
            "columns": {
                name: {"dtype": dtype, "hash": digest}
                for (name, digest), (_, dtype) in zip(content.columns, content.schema, strict=True)
            },
        },
    }
    if output is not None:
        lock["output"] = {"path": _relative(Path(output[0]), spec.parent), "format": output[1]}
    if plan.models:
        lock["models"] = _models(plan, llm)
    if llm is not None:
        lock["llm"] = _llm_counts(llm)
    if packs:
        lock["packs"] = [_relative(p, spec.parent) for p in packs]
    return lock


def _overrides(base: Plan, plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if plan.seed != base.seed:
        out["seed"] = plan.seed
    if plan.rows != base.rows or plan.target != base.target:
        out["rows"] = plan.target.rows if plan.target is not None else plan.rows
    swapped = {m.name: m.model for m, b in zip(plan.models, base.models, strict=True) if m.model != b.model}
    if swapped:
        out["models"] = swapped
    return out


def _models(plan: Plan, llm: LLMSummary | None) -> dict[str, Any]:
    answered: Mapping[str, Mapping[str, int]] = llm.answered_by if llm is not None else {}
    return {
        m.name: {
            "model": m.model,
            "fallbacks": list(m.fallbacks),
            "answered_by": dict(sorted(answered.get(m.name, {}).items())),
        }
        for m in plan.models
    }


def _llm_counts(llm: LLMSummary) -> dict[str, Any]:
    return {
        "cells": sum(t.cells for t in llm.all_tallies),
        "cache_hits": llm.cache_hits,
        "replayed": llm.replayed,
        "calls": llm.calls,
        "failures": llm.failures,
        "prompt_tokens": llm.prompt_tokens,
        "completion_tokens": llm.completion_tokens,
        "cost_usd": round(llm.cost, 6),
    }


def _relative(path: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return path.resolve().as_posix()


def lock_text(lock: Mapping[str, Any]) -> str:
    """The lock as stored: sorted keys, two-space indentation, a final newline."""
    return json.dumps(lock, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_lock(path: Path, lock: Mapping[str, Any]) -> None:
    """Write atomically (temporary file in the same folder, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(lock_text(lock))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # a normal file, not mkstemp's owner-only mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_lock(path: Path) -> dict[str, Any]:
    """A lock this synthc can verify; LockError says plainly why not."""
    from synthc import __version__

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LockError(f"no lock file {path}: `synthc run` writes one beside the spec") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LockError(f"lock file {path} cannot be read: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("lock"), int):
        raise LockError(f"{path} is not a synthc lock file")
    if data["lock"] > LOCK_FORMAT:
        raise LockError(
            f"{path} is in lock format {data['lock']}, written by synthc {data.get('synthc', '?')}; "
            f"this synthc ({__version__}) reads format {LOCK_FORMAT}: upgrade synthc to verify it"
        )
    written_by = str(data.get("synthc", "0"))
    if _version(written_by) > _version(__version__):
        raise LockError(
            f"{path} was written by synthc {written_by}, newer than this one ({__version__}): "
            "upgrade synthc to verify it"
        )
    for key in ("engine", "plan_hash", "seed", "content"):
        if key not in data:
            raise LockError(
                f"lock file {path} has no `{key}`: it is damaged; run `synthc run` to write it again"
            )
    return data


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)
