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

import polars as pl
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
    """The requests of one LLM column across a run: keys, and the params each cell sends.

    ``model`` is the resolved model string (after ``--model`` overrides)."""

    col: LLMColumn
    model: str
    params: Mapping[str, Any]
    schema: Mapping[str, Any] | None
    seed: int
    _keys: RequestKeys = field(init=False)
    _seen: dict[int, int] = field(init=False, default_factory=dict)

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
        out: list[tuple[str, int] | None] = []
        seen = self._seen
        for item in messages:
            if item is None:
                out.append(None)
                continue
            encoded = encode_messages(item)
            digest = xxhash.xxh3_64_intdigest(encoded.encode())
            occurrence = seen.get(digest, 0)
            seen[digest] = occurrence + 1
            out.append((self._keys.key_of_encoded(encoded, occurrence), occurrence))
        return out

    def sent_params(self, occurrence: int) -> dict[str, Any]:
        """The params one cell sends: the column's, plus its derived seed."""
        if self._own_seed:
            return dict(self.params)
        return {**self.params, "seed": derived_seed(self.seed, occurrence)}


def empty_series(col: LLMColumn, size: int, dtype: pl.DataType) -> pl.Series:
    return pl.Series(col.name, [None] * size, dtype=dtype)
