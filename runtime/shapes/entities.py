"""Entity dimensions of a time index or an event stream: their keys and their rows.

An :class:`~runtime.plan.Entity` is one dimension of ``count`` keys. Several dimensions
form combinations numbered in mixed radix, the first dimension varying slowest: with
counts (2, 3), combination 4 is (key 1 of the first, key 1 of the second). Keys are a
pure function of (entity, seed), so a memo only saves work.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from runtime.plan import Entity
from runtime.samplers.base import I64


def entity_count(entities: tuple[Entity, ...]) -> int:
    """The number of entity combinations: the product of the counts (1 for none)."""
    total = 1
    for entity in entities:
        total *= entity.count
    return total


def entity_keys(entity: Entity, seed: int, memo: dict[Any, Any]) -> pl.Series:
    """The keys of one dimension: a Series of length ``count`` named ``entity.name``.

    ``values`` in order when given; else ``entity.column`` sampled over entity rows
    0..count-1 (with the plan's seed, so the keys never depend on the index's rows);
    else the integers 1..count (Int64). Memoized under ("entities", entity, seed)."""
    key = ("entities", entity, seed)
    cached = memo.get(key)
    if cached is not None:
        assert isinstance(cached, pl.Series)
        return cached
    if entity.values:
        keys = pl.Series(entity.name, list(entity.values[: entity.count]))
    elif entity.column is not None:
        from runtime.samplers import sample  # lazy: samplers import this package's users
        from runtime.samplers.base import Chunk

        keys = sample(entity.column, Chunk(seed, 0, entity.count)).alias(entity.name)
    else:
        keys = pl.Series(entity.name, np.arange(1, entity.count + 1, dtype=np.int64))
    memo[key] = keys
    return keys


def entity_digits(entities: tuple[Entity, ...], combo: I64) -> list[I64]:
    """Each dimension's key index for each combination index (mixed radix, first
    dimension slowest)."""
    digits: list[I64] = []
    stride = entity_count(entities)
    for entity in entities:
        stride //= entity.count
        digit: I64 = (combo // stride) % entity.count
        digits.append(digit)
    return digits


def entity_columns(
    entities: tuple[Entity, ...], seed: int, combo: I64, memo: dict[Any, Any]
) -> list[pl.Series]:
    """One Series per dimension with each row's key, for rows whose entity combination
    indices are ``combo`` (each in ``0 .. entity_count - 1``)."""
    columns: list[pl.Series] = []
    for entity, digit in zip(entities, entity_digits(entities, combo), strict=True):
        keys = entity_keys(entity, seed, memo)
        columns.append(keys.gather(digit).alias(entity.name))
    return columns
