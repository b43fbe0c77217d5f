"""Series columns: a value per (timestamp, entity) of the plan's time index.

The value of row ``r`` (timestamp ``t = r // E``, entity combination ``e = r % E``) is

    level  = (base_e + rate_e * x) * 1                 (linear trend)
           |  base_e * (1 + rate_e) ** x                (exponential trend)
    value  = (level + amp_e * S(t)) * exp(W)  |  + W    (geometric | arithmetic walk)
           + sd_e * N + anomalies, then min/max clip, then rounding (np.round)

with ``x`` the elapsed time since the index start in units of ``per_us`` (UTC), ``S``
the sum of the seasonal terms at the local wall-clock time (``local_us``), ``W`` the
walk and ``N`` the unit noise. Choices this module makes (the IR leaves them open):

- Seasonal phase: ``u = ((local - phase_us) mod period) / period``; sine is
  ``A sin(2 pi u)``, square ``+A`` for ``u < 1/2`` and ``-A`` after (the sign of the sine,
  zero crossings taking the half they start), sawtooth ``-A + 2 A u``.
- ``vary`` factors are lognormal with mean 1 and sd ``v`` (``exp(s Z_e - s^2/2)``,
  ``s^2 = log(1 + v^2)``; Z from the stream ``{name}\\x01vary\\x01{part}`` at row ``e``): ``base`` scales base, ``trend`` the rate, ``amplitude`` every seasonal
  amplitude, ``noise`` the noise sd (taken in absolute value), ``walk`` the walk's steps
  (sd and drift alike, i.e. the whole walk).
- Noise: normal; student-t as ``Z sqrt((df - 2) / (2 G))``, G ~ Gamma(df / 2), whose sd is
  1 (df > 2). AR(1) with coefficient phi: ``N_0 = eps_0`` (stationary start),
  ``N_t = phi N_{t-1} + sqrt(1 - phi^2) eps_t``, so the marginal sd stays 1 and the
  lag-1 autocorrelation is phi from t = 0.
- Walk: ``W_0 = 0``, ``W_t = W_{t-1} + f_e (drift + sd Z_t)``; geometric multiplies by
  ``exp(W)`` (so the first value is the level), arithmetic adds W.
- Anomalies: entry k of a kind uses the stream ``{name}\\x01{kind}\\x01{k}``, one uniform
  u per row: the point is anomalous when ``u < rate``, negative when ``u < rate / 2``.
  The size is ``scale * sd_e`` (the entity's noise sd, 1 without noise). Spikes add at
  the point, level shifts from the point on (accumulated), dropouts make it null.

Stateful parts (walk, AR(1), level shifts) are computed in fixed blocks of
:func:`block_steps` timesteps aligned to t = 0, a function of the entity count only,
with per-entity state carried from block to block. ``chunk.memo`` keeps the carried
state and the last block, so a sequential run computes each block once; a chunk that
starts elsewhere recomputes the blocks before it with the same arithmetic, so every
value is bit-identical whatever the chunking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from runtime import fmath
from runtime.errors import ExecutionError
from runtime.plan import Anomalies, Noise, SeriesColumn, TimeIndex
from runtime.samplers.base import F64, I64, Chunk, Mask, Stream, with_nulls
from runtime.samplers.distributions import gamma, normal
from runtime.shapes.entities import entity_count
from runtime.shapes.timeindex import local_us, row_positions, timestamps_us

# Rows per block are at most this (unless one timestep alone has more entities).
BLOCK_ROWS = 65_536
_GAMMA_BASE = 2  # draws of the student-t's gamma (the normal takes draws 0 and 1)


def block_steps(entities: int) -> int:
    """Timesteps per block: the largest power of two with ``steps * entities <=
    BLOCK_ROWS`` (at least 1), so a block holds 32k-64k rows for up to 65,536 entities."""
    return 1 << max(0, (BLOCK_ROWS // max(entities, 1)).bit_length() - 1)


def sample_series(col: SeriesColumn, chunk: Chunk) -> pl.Series:
    """Float64 values of ``col`` for rows ``chunk.start .. chunk.stop - 1`` of the time
    index ``chunk.source`` (dropout anomalies null; ``col.nulls`` is not applied here).

    Raises :class:`ExecutionError` when the chunk's source is not a time index."""
    ix = chunk.source
    if not isinstance(ix, TimeIndex):
        raise ExecutionError(f"series column `{col.name}` needs a time index (`index:`)", column=col.name)
    spec = _Spec.of(col, ix, chunk)
    t, combo = row_positions(ix, chunk.start, chunk.stop)
    values = _deterministic(spec, t, combo)
    state = _stateful(spec, chunk)
    if spec.col.walk is not None:
        walk = state["walk"]
        values = values * fmath.exp(walk) if spec.col.walk.kind == "geometric" else values + walk
    if spec.col.noise is not None:
        unit = (
            state["ar1"] if spec.col.noise.ar1 else _unit_noise(spec, spec.col.noise, chunk.start, chunk.stop)
        )
        values = values + spec.noise_sd[combo] * unit
    if "shift" in state:
        values = values + state["shift"]
    values = values + _spikes(spec, chunk.start, chunk.stop, combo)
    series = pl.Series(col.name, _finish(col, values), dtype=pl.Float64)
    return with_nulls(series, _dropouts(spec, chunk.start, chunk.stop))


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class _Spec:
    """What every part of one column needs: the column, its index, the seed, the entity
    count, the per-entity vary factors and the per-entity noise sd (spike size)."""

    col: SeriesColumn
    ix: TimeIndex
    seed: int
    entities: int
    factors: dict[str, F64]
    noise_sd: F64

    @classmethod
    def of(cls, col: SeriesColumn, ix: TimeIndex, chunk: Chunk) -> _Spec:
        key = ("series", col.name, chunk.seed, "spec")
        cached = chunk.memo.get(key)
        if isinstance(cached, _Spec) and cached.col == col and cached.ix == ix:
            return cached
        entities = max(entity_count(ix.entities), 1)
        factors = {part: _vary(col.name, part, v, chunk.seed, entities) for part, v in col.vary}
        sd = abs(col.noise.sd) if col.noise is not None else 1.0
        noise_sd = sd * np.abs(factors["noise"]) if "noise" in factors else np.full(entities, sd)
        spec = cls(col, ix, chunk.seed, entities, factors, noise_sd)
        chunk.memo[key] = spec
        return spec

    def factor(self, part: str) -> F64 | None:
        return self.factors.get(part)

    def stream(self, part: str, start: int, stop: int) -> Stream:
        return Stream(self.seed, f"{self.col.name}\x01{part}", start, stop)


def _vary(name: str, part: str, v: float, seed: int, entities: int) -> F64:
    """Per-entity lognormal factors with mean 1 and sd ``v``: ``exp(s Z - s^2 / 2)`` with
    ``s^2 = log(1 + v^2)`` (Z from the part's own stream, row = entity index). A factor is
    never negative, so varying a price's base never makes it negative."""
    s = math.sqrt(float(fmath.log1p(np.array([v * v]))[0]))
    z = normal(Stream(seed, f"{name}\x01vary\x01{part}", 0, entities))
    out: F64 = fmath.exp(s * z - 0.5 * s * s)
    return out


# --------------------------------------------------------------------------- stateless parts


def _deterministic(spec: _Spec, t: I64, combo: I64) -> F64:
    """Base, trend and seasonality of each row: computed once per distinct timestamp
    and once per entity, then combined per row."""
    col, ix = spec.col, spec.ix
    if t.size == 0:
        return np.empty(0)
    lo = int(t[0])
    stamps = timestamps_us(ix, np.arange(lo, int(t[-1]) + 1, dtype=np.int64))
    at = t - lo
    base = col.base * _per_entity(spec.factor("base"), combo)
    level: F64 | float = base
    if col.trend is not None:
        if col.trend.per_us <= 0:
            raise ExecutionError(
                f"series column `{col.name}`: trend period must be positive", column=col.name
            )
        elapsed = (stamps - ix.start).astype(np.float64) / col.trend.per_us
        rate = col.trend.rate * _per_entity(spec.factor("trend"), combo)
        if col.trend.kind == "linear":
            level = base + rate * elapsed[at]
        elif isinstance(rate, float):  # one growth curve for all entities: once per timestamp
            level = base * fmath.exp(float(fmath.log1p(rate)) * elapsed)[at]
        else:
            level = base * fmath.exp(fmath.log1p(rate) * elapsed[at])
    if col.seasonality:
        season = _seasonal(spec, local_us(ix, stamps))[at]
        amplitude = _per_entity(spec.factor("amplitude"), combo)
        level = level + (season if isinstance(amplitude, float) else amplitude * season)
    return np.broadcast_to(np.asarray(level, dtype=np.float64), t.shape).copy()


def _per_entity(factors: F64 | None, combo: I64) -> F64 | float:
    """Each row's factor, or 1.0 when the part does not vary."""
    return 1.0 if factors is None else factors[combo]


def _seasonal(spec: _Spec, local: I64) -> F64:
    """The sum of the seasonal terms at local wall-clock times ``local`` (µs)."""
    total = np.zeros(local.size)
    for term in spec.col.seasonality:
        if term.period_us <= 0:
            raise ExecutionError(f"series column `{spec.col.name}`: seasonal period must be positive")
        u = np.mod(local - term.phase_us, term.period_us).astype(np.float64) / term.period_us
        if term.shape == "sine":
            wave = fmath.cos_turns(u - 0.25)
        elif term.shape == "square":
            wave = np.where(u < 0.5, 1.0, -1.0)
        else:
            wave = 2.0 * u - 1.0
        total += term.amplitude * wave
    return total


def _unit_noise(spec: _Spec, noise: Noise, start: int, stop: int) -> F64:
    """Noise with sd 1 for rows ``start..stop-1`` (normal or scaled student-t)."""
    s = spec.stream("noise", start, stop)
    z = normal(s)
    if noise.dist == "student_t":
        if noise.df <= 2:
            raise ExecutionError(f"series column `{spec.col.name}`: student-t noise needs df > 2")
        g = gamma(s, noise.df / 2.0, _GAMMA_BASE)
        z = z * np.sqrt((noise.df - 2.0) / (2.0 * g))
    return z


def _anomaly_streams(spec: _Spec, kind: str) -> list[tuple[Anomalies, str]]:
    """The entries of one anomaly kind with their stream part names."""
    entries = [a for a in spec.col.anomalies if a.kind == kind]
    return [(a, f"{kind}\x01{k}") for k, a in enumerate(entries)]


def _signed_hits(spec: _Spec, kind: str, start: int, stop: int, combo: I64) -> F64:
    """Sum over the kind's entries of +-scale x sd_e at anomalous rows, 0 elsewhere."""
    total = np.zeros(stop - start)
    for entry, part in _anomaly_streams(spec, kind):
        u = spec.stream(part, start, stop).uniform(0)
        hit = u < entry.rate
        if hit.any():
            sign = np.where(u[hit] < entry.rate / 2.0, -1.0, 1.0)
            total[hit] += sign * entry.scale * spec.noise_sd[combo[hit]]
    return total


def _spikes(spec: _Spec, start: int, stop: int, combo: I64) -> F64 | float:
    if not any(a.kind == "spike" for a in spec.col.anomalies):
        return 0.0
    return _signed_hits(spec, "spike", start, stop, combo)


def _dropouts(spec: _Spec, start: int, stop: int) -> Mask:
    mask = np.zeros(stop - start, dtype=np.bool_)
    for entry, part in _anomaly_streams(spec, "dropout"):
        mask |= spec.stream(part, start, stop).uniform(0) < entry.rate
    return mask


def _finish(col: SeriesColumn, values: F64) -> F64:
    """Clip to min/max, then round."""
    if col.min is not None or col.max is not None:
        values = np.clip(values, col.min, col.max)
    if col.round is not None:
        values = np.round(values, col.round)
    return values


# --------------------------------------------------------------------------- stateful parts


@dataclass
class _Blocks:
    """A column's block progress in one run: ``state`` holds the carried per-entity
    values at the start of block ``next``; ``values`` the parts of block ``cached``."""

    spec: _Spec
    next: int = 0
    state: dict[str, F64] = field(default_factory=dict)
    cached: int = -1
    values: dict[str, F64] = field(default_factory=dict)


def _stateful(spec: _Spec, chunk: Chunk) -> dict[str, F64]:
    """The chunk's rows of each stateful part present: ``walk`` (W), ``ar1`` (unit AR(1)
    noise) and ``shift`` (accumulated level shifts, already scaled)."""
    parts = _stateful_parts(spec)
    if not parts or chunk.size == 0:
        return {part: np.empty(0) for part in parts}
    steps = block_steps(spec.entities)
    rows = steps * spec.entities
    key = ("series", spec.col.name, spec.seed, "blocks")
    progress = chunk.memo.get(key)
    if not isinstance(progress, _Blocks) or progress.spec is not spec:
        progress = chunk.memo[key] = _Blocks(spec)
    pieces: dict[str, list[F64]] = {part: [] for part in parts}
    for b in range(chunk.start // rows, (chunk.stop - 1) // rows + 1):
        block = _block(spec, progress, b, steps)
        lo, hi = max(chunk.start, b * rows) - b * rows, min(chunk.stop, (b + 1) * rows) - b * rows
        for part in parts:
            pieces[part].append(block[part][lo:hi])
    return {part: np.concatenate(arrays) for part, arrays in pieces.items()}


def _stateful_parts(spec: _Spec) -> list[str]:
    col = spec.col
    parts = ["walk"] if col.walk is not None else []
    if col.noise is not None and col.noise.ar1:
        parts.append("ar1")
    if any(a.kind == "level_shift" for a in col.anomalies):
        parts.append("shift")
    return parts


def _block(spec: _Spec, progress: _Blocks, b: int, steps: int) -> dict[str, F64]:
    """Block ``b``'s stateful parts (flattened rows), from the memo or computed from the
    carried state; going back restarts from block 0 (same arithmetic, same values)."""
    if progress.cached == b:
        return progress.values
    if progress.next > b:
        progress.next, progress.state = 0, {}
    while progress.next <= b:
        values, progress.state = _compute_block(spec, progress.next, steps, progress.state)
        progress.next += 1
    progress.cached, progress.values = b, values
    return values


def _compute_block(
    spec: _Spec, b: int, steps: int, carried: dict[str, F64]
) -> tuple[dict[str, F64], dict[str, F64]]:
    """Block ``b`` (timesteps ``b*steps ..``, cut at the index's end) as (values per part,
    flattened time-major; state carried into block ``b + 1``)."""
    t0 = b * steps
    count = min(steps, spec.ix.periods - t0)
    start, stop = t0 * spec.entities, (t0 + count) * spec.entities
    shape = (count, spec.entities)
    values: dict[str, F64] = {}
    state: dict[str, F64] = {}
    col = spec.col
    if col.walk is not None:
        z = normal(spec.stream("walk", start, stop)).reshape(shape)
        step = col.walk.drift + col.walk.sd * z
        if "walk" in spec.factors:
            step = step * spec.factors["walk"]
        values["walk"], state["walk"] = _accumulate(step, carried.get("walk"), first=b == 0)
    if col.noise is not None and col.noise.ar1:
        eps = _unit_noise(spec, col.noise, start, stop).reshape(shape)
        values["ar1"], state["ar1"] = _ar1(eps, col.noise.ar1, carried.get("ar1"))
    if "shift" in _stateful_parts(spec):
        combo = np.tile(np.arange(spec.entities, dtype=np.int64), count)
        jumps = _signed_hits(spec, "level_shift", start, stop, combo).reshape(shape)
        values["shift"], state["shift"] = _accumulate(jumps, carried.get("shift"), first=False)
    return values, state


def _accumulate(increments: F64, carried: F64 | None, *, first: bool) -> tuple[F64, F64]:
    """Running sums along time (axis 0) starting from ``carried``; with ``first`` the
    block's first increment is dropped (a walk is 0 at t = 0)."""
    increments = increments.copy()
    if first:
        increments[0] = 0.0
    if carried is not None:
        increments[0] += carried
    sums = np.cumsum(increments, axis=0)
    return sums.reshape(-1), sums[-1].copy()


def _ar1(eps: F64, phi: float, carried: F64 | None) -> tuple[F64, F64]:
    """Unit AR(1) over one block: ``y_t = phi y_{t-1} + sqrt(1 - phi^2) eps_t``, with
    ``y_0 = eps_0`` at the very start (no ``carried``). A Hillis-Steele scan: after the
    pass with distance d, y_t holds the recurrence's sum over the last 2d terms."""
    y = eps * math.sqrt(max(0.0, 1.0 - phi * phi))
    if carried is None:
        y[0] = eps[0]
    else:
        y[0] += phi * carried
    power, distance = phi, 1
    while distance < y.shape[0]:
        shifted = power * y[:-distance]
        y[distance:] += shifted
        power, distance = power * power, distance * 2
    return y.reshape(-1), y[-1].copy()
