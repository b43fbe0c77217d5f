"""From rows to requests: an LLM column's messages and cache keys for a range of rows.

Guarantees:
- Messages are the column's ``system`` and ``prompt`` templates rendered with the row's
  inputs and the spec's vars, exactly as ``template`` columns render (vectorized when the
  template only substitutes names).
- Keys are :func:`runtime.cache.request_key` of (resolved model, messages, params, output
  schema, occurrence). The occurrence index counts identical requests of the column in
  row order, so it depends only on the rows before, never on chunking or timing; callers
  must feed :meth:`ColumnRequests.keys` the rows of a column in increasing order.
- The provider ``seed`` sent with a cell is derived from the spec's seed and the cell's
  occurrence index (unless the spec sets ``seed`` itself), so identical prompts in
  different rows are different requests; both are part of the key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xxhash

from runtime.cache import RequestKeys, encode_messages
from runtime.plan import LLMColumn, ModelAlias, TemplateColumn
from runtime.samplers.base import Chunk

Messages = tuple[Mapping[str, Any], ...]


def column_params(alias: ModelAlias, col: LLMColumn) -> dict[str, Any]:
    """The alias's params overlaid by the column's (the column wins)."""
    params: dict[str, Any] = {**json.loads(alias.params), **json.loads(col.params)}
    return params


def output_schema(col: LLMColumn) -> dict[str, Any] | None:
    if col.output is None:
        return None
    schema: dict[str, Any] = json.loads(col.output)
    return schema


def render_messages(col: LLMColumn, chunk: Chunk) -> list[Messages]:
    """The chat messages of each row of ``chunk`` (system first when the column has one).

    Raises :class:`runtime.samplers.base.SampleError` naming the column and row when a
    template fails on a row."""
    from runtime.samplers.derived import sample_template

    prompts = sample_template(TemplateColumn(col.name, col.prompt, col.inputs), chunk).to_list()
    if col.system is None:
        return [({"role": "user", "content": text},) for text in prompts]
    systems = sample_template(TemplateColumn(col.name, col.system, col.inputs), chunk).to_list()
    return [
        ({"role": "system", "content": system}, {"role": "user", "content": text})
        for system, text in zip(systems, prompts, strict=True)
    ]


def derived_seed(seed: int, occurrence: int) -> int:
    """The provider seed of a cell: 31 bits (what every provider accepts) of a hash of the
    spec's seed and the cell's occurrence index."""
    return xxhash.xxh3_64_intdigest(f"{seed}/{occurrence}".encode()) & 0x7FFFFFFF


@dataclass
class ColumnRequests:
    """The requests of one LLM column (or of the LLM source) across a run: keys, and the
    params each cell sends.

    ``model`` is the resolved model string (after ``--model`` overrides)."""

    model: str
    params: Mapping[str, Any]
    schema: Mapping[str, Any] | None
    seed: int
    _keys: RequestKeys = field(init=False)
    _seen: Occurrences = field(init=False, default_factory=lambda: Occurrences())

    def __post_init__(self) -> None:
        key_params = dict(self.params)
        self._own_seed = "seed" in key_params
        if not self._own_seed:
            # The sent seed is derived from this and the occurrence, both in the key.
            key_params["seed"] = self.seed
        self._keys = RequestKeys(model=self.model, params=key_params, output_schema=self.schema)

    def keys(self, messages: Sequence[Messages | None]) -> list[tuple[str, int] | None]:
        """``(key, occurrence)`` per row (None where ``messages`` is None: no request).
        Rows must come in increasing row order across calls."""
        encoded = [encode_messages(item) if item is not None else None for item in messages]
        present = [text for text in encoded if text is not None]
        occurrences = iter(self._seen.occurrences([xxhash.xxh3_64_intdigest(t.encode()) for t in present]))
        key_of = self._keys.key_of_encoded
        out: list[tuple[str, int] | None] = []
        for text in encoded:
            if text is None:
                out.append(None)
            else:
                occurrence = next(occurrences)
                out.append((key_of(text, occurrence), occurrence))
        return out

    def key(self, messages: Messages, occurrence: int) -> str:
        """The key of ``messages`` as their ``occurrence``-th request (counted by the caller)."""
        return self._keys.key(messages, occurrence)

    def sent_params(self, occurrence: int) -> dict[str, Any]:
        """The params one cell sends: the column's, plus its derived seed."""
        if self._own_seed:
            return dict(self.params)
        return {**self.params, "seed": derived_seed(self.seed, occurrence)}


class Occurrences:
    """How often each request digest has been seen so far, in 12 bytes per distinct digest
    (a sorted uint64 array and a uint32 array) rather than a dict's ~90: the map lives
    for the whole run and grows with its distinct prompts.

    ``occurrences(digests)`` gives, per digest in order, how many times it came before
    (earlier calls and earlier in this list), and counts them."""

    def __init__(self) -> None:
        self._digests = np.empty(0, dtype=np.uint64)
        self._counts = np.empty(0, dtype=np.uint32)

    def occurrences(self, digests: Sequence[int]) -> list[int]:
        if not digests:
            return []
        batch = np.array(digests, dtype=np.uint64)
        order = np.argsort(batch, kind="stable")
        ordered = batch[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        sizes = np.diff(np.r_[starts, ordered.size])
        # rank of each row among equal digests in this batch (stable: row order)
        within = np.arange(ordered.size) - np.repeat(starts, sizes)
        unique = ordered[starts]
        at = np.searchsorted(self._digests, unique)
        known = at < self._digests.size
        known[known] &= self._digests[at[known]] == unique[known]
        before = np.zeros(unique.size, dtype=np.int64)
        before[known] = self._counts[at[known]]
        result = np.empty(ordered.size, dtype=np.int64)
        result[order] = np.repeat(before, sizes) + within
        self._merge(unique, sizes, at, known)
        out: list[int] = result.tolist()
        return out

    def _merge(self, unique: Any, sizes: Any, at: Any, known: Any) -> None:
        self._counts[at[known]] += sizes[known].astype(np.uint32)
        new = ~known
        if new.any():  # `unique` is sorted, so inserting at `at` keeps the arrays sorted
            self._digests = np.insert(self._digests, at[new], unique[new])
            self._counts = np.insert(self._counts, at[new], sizes[new].astype(np.uint32))

    def __len__(self) -> int:
        return int(self._digests.size)
