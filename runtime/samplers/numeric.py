"""``int`` and ``float`` columns: a distribution, then clip, round and cast."""

from __future__ import annotations

import math
from typing import assert_never

import numpy as np
import polars as pl

from runtime.plan import NumberColumn
from runtime.samplers import distributions as d
from runtime.samplers.base import F64, Chunk, Stream, uniform_ints

_INT64_MIN = -(2.0**63)
_INT64_MAX = float(np.nextafter(2.0**63, 0.0))


def sample_number(col: NumberColumn, chunk: Chunk) -> pl.Series:
    """Int64 or Float64 values of ``col``'s distribution, drawn from the column's stream.

    ``min``/``max`` clip; floats are then rounded to ``round`` places; ints are drawn
    exactly for ``uniform`` (inclusive of max) and otherwise rounded half to even,
    clipped to the integers inside [min, max] and cast to Int64."""
    s = Stream.of(col.name, chunk)
    if col.dtype == "int" and col.dist.dist == "uniform":
        # Whole bounds are exact ints in the plan; a float one may round past Int64's range.
        low = max(int(_bound(col, "min")), -(2**63))
        high = min(int(_bound(col, "max")), 2**63 - 1)
        return pl.Series(col.name, uniform_ints(s.bits(0), low, high), dtype=pl.Int64)
    with np.errstate(over="ignore"):  # extreme parameters overflow to ±inf, then clip
        values = _draw(col, s)
    if col.dtype == "float":
        values = np.clip(values, col.min, col.max) if _clips(col) else values
        if col.round is not None:
            values = np.round(values, col.round)
        return pl.Series(col.name, values, dtype=pl.Float64)
    values = np.rint(values)
    floor = _INT64_MIN if col.min is None else max(_INT64_MIN, float(math.ceil(col.min)))
    ceiling = _INT64_MAX if col.max is None else min(_INT64_MAX, float(math.floor(col.max)))
    return pl.Series(col.name, np.clip(values, floor, ceiling).astype(np.int64), dtype=pl.Int64)


def _clips(col: NumberColumn) -> bool:
    return col.min is not None or col.max is not None


def _bound(col: NumberColumn, which: str) -> int | float:
    value = col.min if which == "min" else col.max
    if value is None:  # the compiler requires both bounds for uniform
        raise ValueError(f"column {col.name!r}: uniform needs {which}")
    return value


def _draw(col: NumberColumn, s: Stream) -> F64:
    dist, p = col.dist, col.dist.param
    match dist.dist:
        case "uniform":
            return d.uniform(s, _bound(col, "min"), _bound(col, "max"))
        case "normal":
            out: F64 = p("mean") + p("sd") * d.normal(s)
            return out
        case "lognormal":
            return d.lognormal(s, p("mu"), p("sigma"))
        case "exponential":
            return d.exponential(s, p("scale"))
        case "poisson":
            return d.poisson(s, p("lam"))
        case "binomial":
            return d.binomial(s, round(p("n")), p("p"))
        case "gamma":
            scaled: F64 = p("scale") * d.gamma(s, p("shape"))
            return scaled
        case "beta":
            return d.beta(s, p("a"), p("b"))
        case "zipf":
            return d.zipf(s, p("a"))
        case _:
            assert_never(dist.dist)
