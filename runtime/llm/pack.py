"""Response packs: the cached LLM answers one plan uses, in one signed Parquet file.

``synthc pack`` writes the pack (:func:`collect_entries` then :func:`export_pack`);
``synthc run --replay PACK`` reads it (:meth:`Pack.open`) as a read-only layer in front
of the cache (:class:`ResponseLayers`), so anyone can regenerate a spec's LLM columns
without a key and without paying for the calls.

The file: one row per cache entry, columns ``key, text, model, prompt_tokens,
completion_tokens, cost, finish_reason``, sorted by key, and Parquet key-value metadata
``synthc.pack`` (format), ``synthc.plan_hash``, ``synthc.spec_hash``, ``synthc.entries``
and ``synthc.digest`` (xxh3-128 of the canonical JSON lines of the sorted entries).

Guarantees:
- The same entries give the same bytes (sorted rows, fixed compression, sorted metadata),
  with the same Polars version; the digest is the same on any machine and any version.
- Only what a :class:`CachedResponse` holds goes in (no key, no endpoint, no environment).
- Written atomically (temporary file in the same folder, then rename).
- A pack whose rows do not match its digest, from a newer synthc, or made for another plan
  is refused with :class:`PackError`; so is anything that is not a pack. (Keys are content
  hashes, so another plan's pack could only miss, never answer wrongly: the refusal is
  there to say so plainly instead of naming every cell as missing.)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import xxhash

from runtime.cache import Cache, CachedResponse
from runtime.errors import ExecutionError

if TYPE_CHECKING:
    from runtime.llm.outcome import LLMOptions
    from runtime.plan import Plan

# Bump when the columns or the digest change meaning; a newer pack is refused.
PACK_FORMAT = 1
FIELDS = ("key", "text", "model", "prompt_tokens", "completion_tokens", "cost", "finish_reason")
SCHEMA = pl.Schema(
    {
        "key": pl.String, "text": pl.String, "model": pl.String, "prompt_tokens": pl.Int64,
        "completion_tokens": pl.Int64, "cost": pl.Float64, "finish_reason": pl.String,
    }
)  # fmt: skip
META_FORMAT, META_PLAN, META_SPEC = "synthc.pack", "synthc.plan_hash", "synthc.spec_hash"
META_ENTRIES, META_DIGEST = "synthc.entries", "synthc.digest"
_KEY = re.compile(r"[0-9a-f]{32}")
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class PackError(ExecutionError):
    """A response pack cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class PackInfo:
    """What a pack file says about itself (checked against its rows when opened)."""

    path: Path
    entries: int
    digest: str
    plan_hash: str
    spec_hash: str


# --------------------------------------------------------------------------- writing


def export_pack(
    entries: Iterable[tuple[str, CachedResponse]], path: Path, *, plan_hash: str, spec_hash: str
) -> PackInfo:
    """Write ``entries`` (cache key, response) to the pack ``path``, atomically.

    Duplicate keys are written once (a key given twice with different responses is a
    ValueError, as is a key that is not 32 lowercase hex digits). The file holds only the
    :data:`FIELDS` and the five ``synthc.*`` metadata values; the same entries give the
    same bytes. Raises PackError when the file cannot be written."""
    unique: dict[str, CachedResponse] = {}
    for key, response in entries:
        if not (isinstance(key, str) and _KEY.fullmatch(key)):
            raise ValueError(f"{key!r} is not a cache key (32 lowercase hex digits)")
        if unique.setdefault(key, response) != response:
            raise ValueError(f"key {key} is given twice with different responses")
    keys = sorted(unique)
    frame = _frame(keys, [unique[k] for k in keys])
    info = PackInfo(Path(path), frame.height, _digest(frame), plan_hash, spec_hash)
    _write_atomically(frame, info)
    return info


def _frame(keys: list[str], responses: list[CachedResponse]) -> pl.DataFrame:
    columns: dict[str, list[Any]] = {"key": keys}
    for name in FIELDS[1:]:
        columns[name] = [getattr(r, name) for r in responses]
    return pl.DataFrame(columns, schema=SCHEMA)


def _metadata(info: PackInfo) -> dict[str, str]:
    return {
        META_FORMAT: str(PACK_FORMAT),
        META_PLAN: info.plan_hash,
        META_SPEC: info.spec_hash,
        META_ENTRIES: str(info.entries),
        META_DIGEST: info.digest,
    }


def _write_atomically(frame: pl.DataFrame, info: PackInfo) -> None:
    temp = info.path.with_name(f".{info.path.name}.tmp{os.getpid()}")
    try:
        frame.write_parquet(
            temp, compression="zstd", compression_level=3, statistics=True, metadata=_metadata(info)
        )
        os.replace(temp, info.path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise PackError(f"cannot write the response pack {info.path}: {_first_line(exc)}") from None
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()


def _digest(frame: pl.DataFrame) -> str:
    """xxh3-128 of one canonical JSON array per entry, in :data:`FIELDS` order, each
    followed by a newline, over the rows in key order (Python's JSON, not Polars', so the
    digest never depends on the Polars version)."""
    hasher = xxhash.xxh3_128()
    encode = _ENCODER.encode
    for row in frame.select(FIELDS).sort("key").iter_rows():
        hasher.update(encode(row).encode() + b"\n")
    return hasher.hexdigest()


# --------------------------------------------------------------------------- reading


class Pack:
    """An open, verified pack: its :class:`PackInfo` and a read-only key → response map."""

    def __init__(self, info: PackInfo, frame: pl.DataFrame) -> None:
        self.info = info
        self._rows = frame.to_dict(as_series=False)
        self._index = {key: i for i, key in enumerate(self._rows["key"])}

    @classmethod
    def open(cls, path: str | Path, *, plan_hash: str | None = None) -> Pack:
        """Read and verify the pack at ``path``: its format, its digest against its rows,
        and (given ``plan_hash``) that it was made for that plan. PackError otherwise."""
        path = Path(path)
        meta = _read_metadata(path)
        info = _check_metadata(path, meta)
        frame = _read_rows(path)
        if frame.height != info.entries or _digest(frame) != info.digest:
            raise PackError(f"response pack {path} has been modified: its digest does not match its contents")
        if frame["key"].n_unique() != frame.height:
            raise PackError(f"response pack {path} is damaged: a key appears twice")
        if plan_hash is not None and info.plan_hash != plan_hash:
            raise PackError(
                f"response pack {path} was made for plan {info.plan_hash}; this spec's plan is {plan_hash}:"
                " re-make it with `synthc pack`"
            )
        return cls(info, frame)

    def __len__(self) -> int:
        return len(self._index)

    def keys(self) -> frozenset[str]:
        return frozenset(self._index)

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedResponse]:
        """The responses of those ``keys`` that the pack holds."""
        index, rows, found = self._index, self._rows, {}
        for key in keys:
            i = index.get(key)
            if i is not None:
                found[key] = CachedResponse(
                    rows["text"][i], rows["model"][i], rows["prompt_tokens"][i], rows["completion_tokens"][i],
                    rows["cost"][i], rows["finish_reason"][i],
                )  # fmt: skip
        return found


def _read_metadata(path: Path) -> dict[str, str]:
    if path.is_dir():
        raise PackError(f"the response pack {path} is a folder, not a file")
    try:
        return pl.read_parquet_metadata(path)
    except FileNotFoundError:
        raise PackError(f"there is no response pack at {path} (make one with `synthc pack SPEC`)") from None
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise PackError(f"{path} is not a response pack (not a Parquet file: {_first_line(exc)})") from None


def _check_metadata(path: Path, meta: dict[str, str]) -> PackInfo:
    if META_FORMAT not in meta:
        raise PackError(
            f"{path} is a Parquet file but not a synthc response pack (make one with `synthc pack`)"
        )
    try:
        version = int(meta[META_FORMAT])
        entries = int(meta[META_ENTRIES])
        info = PackInfo(path, entries, meta[META_DIGEST], meta[META_PLAN], meta[META_SPEC])
    except (KeyError, ValueError):
        if _is_newer(meta[META_FORMAT]):
            raise _newer(path, meta[META_FORMAT]) from None
        raise PackError(f"response pack {path} is damaged (its synthc metadata is incomplete)") from None
    if version > PACK_FORMAT:
        raise _newer(path, str(version))
    if version < 1:
        raise PackError(f"response pack {path} is damaged (pack format {version})")
    return info


def _is_newer(text: str) -> bool:
    return text.isdigit() and int(text) > PACK_FORMAT


def _newer(path: Path, version: str) -> PackError:
    return PackError(
        f"response pack {path} was written by a newer synthc (pack format {version}; this one reads"
        f" format {PACK_FORMAT}): upgrade synthc, or re-make the pack with this one"
    )


def _read_rows(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise PackError(f"response pack {path} cannot be read: {_first_line(exc)}") from None
    if frame.schema != SCHEMA:
        raise PackError(f"response pack {path} is damaged: its columns are not {', '.join(FIELDS)}")
    required = frame.select(pl.col("key", "text", "model", "prompt_tokens", "completion_tokens").null_count())
    if any(required.row(0)):
        raise PackError(f"response pack {path} is damaged: a key, text, model or token count is missing")
    return frame


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- layers


class ResponseLayers:
    """Where a run looks answers up: the packs in order (read-only), then the cache.

    A key is answered by the first layer that holds it; nothing found in a pack is
    written to the cache (the pack is the record of it, and a replay leaves the
    user's cache as it was)."""

    def __init__(self, packs: Sequence[Pack], cache: Cache | None) -> None:
        self.packs = tuple(packs)
        self.cache = cache

    @classmethod
    def open(
        cls, paths: Sequence[Path], cache: Cache | None, *, plan: Plan, plan_hash: str | None
    ) -> ResponseLayers:
        """The packs at ``paths`` over ``cache``, each verified (see :meth:`Pack.open`) and
        checked against ``plan_hash`` when given, else against ``plan`` (:func:`check_made_for`)."""
        packs = [Pack.open(p, plan_hash=plan_hash) for p in paths]
        if plan_hash is None:
            for pack in packs:
                check_made_for(pack, plan)
        return cls(packs, cache)

    def lookup(self, keys: Iterable[str]) -> tuple[dict[str, CachedResponse], set[str]]:
        """(the responses found for ``keys``, the keys of those that came from a pack)."""
        wanted = set(keys)
        found: dict[str, CachedResponse] = {}
        for pack in self.packs:
            if wanted:
                hits = pack.get_many(wanted)
                found.update(hits)
                wanted.difference_update(hits)
        replayed = set(found)
        if wanted and self.cache is not None:
            found.update(self.cache.get_many(wanted))
        return found, replayed

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedResponse]:
        return self.lookup(keys)[0]


def check_made_for(pack: Pack, plan: Plan) -> None:
    """Refuse ``pack`` (PackError) unless it was made for ``plan``'s spec or for ``plan``.

    ``plan`` is the plan that runs, which may carry --rows/--seed/--model overrides while
    the pack names the spec's plan as compiled: a pack whose spec hash matches is accepted
    (its cells for other rows or seeds simply miss), and so is one whose plan hash matches
    (the spec text changed, e.g. a comment, but not its plan)."""
    from runtime.plan import plan_hash

    info = pack.info
    if info.spec_hash == plan.spec_hash:
        return
    current = plan_hash(plan)
    if info.plan_hash != current:
        raise PackError(
            f"response pack {info.path} was made for plan {info.plan_hash}; this spec's plan is {current}:"
            " re-make it with `synthc pack`"
        )


# --------------------------------------------------------------------------- collecting


def collect_entries(plan: Plan, options: LLMOptions) -> list[tuple[str, CachedResponse]]:
    """The (key, response) pairs ``plan`` uses, sorted by key: every cell of a run of the
    plan (steps and targets included), found in ``options``' packs and cache.

    Runs the plan offline (no model is called, LiteLLM is not imported, the cache is only
    read); raises :class:`runtime.llm.outcome.OfflineMiss` naming the cells that neither
    holds (run the spec first), PackError / CacheError when they cannot be read."""
    from runtime.execute import execute, sample_column
    from runtime.llm.run import LLMRun

    offline = replace(options, offline=True, dry_run=False)
    with LLMRun(plan, offline, sample_column) as run:
        for _ in execute(plan, llm=run):
            pass
        used = run.used_keys()
        found = run.layers.get_many(used)
    missing = used - found.keys()
    if missing:  # cannot happen: the run found every key it used
        raise PackError(f"{len(missing):,} responses the run used vanished from the cache while packing")
    return sorted(found.items())
