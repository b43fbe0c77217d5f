"""Uniform -> distribution transforms. synthc owns these (no ``np.random``, no SciPy),
and every logarithm, exponential, power and cosine goes through :mod:`runtime.fmath`
(never NumPy's or the C library's, whose last bits vary by machine and release), so
neither a NumPy upgrade nor another CPU can change data; changing one here means
bumping ``runtime.plan.ENGINE_VERSION``.

Each function takes a :class:`Stream` (one column's draws over one chunk) and returns
float64 values, one per row. A row's value depends only on that row's draws at fixed
draw indices, so results are identical for any chunking.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from runtime import fmath
from runtime.samplers.base import F64, I64, Stream

# Marsaglia-Tsang candidates per row, and the draw-index layout of one gamma variate.
GAMMA_CANDIDATES = 8
_GAMMA_DRAWS_PER_CANDIDATE = 3
_BETA_B_BASE = 100  # draw base of the second gamma of a beta
# Discrete tables: windows cover mean +- 15 sd (+ slack); beyond this size, approximate.
_TABLE_SIGMAS = 15.0
_TABLE_MAX = 200_000
_ZIPF_TABLE = 1 << 16
_INT64_LIMIT = float(np.nextafter(2.0**63, 0.0))


def uniform(s: Stream, low: float, high: float) -> F64:
    """``low + (high - low) * u`` with u from draw 0 (u in (0, 1))."""
    out: F64 = low + (high - low) * s.uniform(0)
    return out


def normal(s: Stream, draw: int = 0, rows: I64 | None = None) -> F64:
    """Standard normal by Box-Muller on draws ``draw`` and ``draw + 1``:
    ``sqrt(-2 ln u1) * cos(2 pi u2)`` (the sine partner is not used, so each row stands
    alone). ``rows`` restricts to chunk-relative rows (for rejection loops)."""
    if rows is None:
        u1, u2 = s.uniform(draw), s.uniform(draw + 1)
    else:
        u1, u2 = s.uniform_at(draw, rows), s.uniform_at(draw + 1, rows)
    out: F64 = np.sqrt(-2.0 * fmath.log(u1)) * fmath.cos_turns(u2)
    return out


def lognormal(s: Stream, mu: float, sigma: float) -> F64:
    """``exp(mu + sigma * Z)`` with Z from :func:`normal` (draws 0, 1)."""
    out: F64 = fmath.exp(mu + sigma * normal(s))
    return out


def exponential(s: Stream, scale: float) -> F64:
    """Inverse CDF: ``-scale * ln(u)`` (draw 0)."""
    out: F64 = -scale * fmath.log(s.uniform(0))
    return out


def gamma(s: Stream, shape: float, base: int = 0) -> F64:
    """Gamma(shape, scale 1) by Marsaglia-Tsang (2000).

    For shape >= 1, with d = shape - 1/3 and c = 1/sqrt(9d), candidate k takes a normal x
    from draws ``base + 3k, base + 3k + 1`` and u from draw ``base + 3k + 2``; with
    v = (1 + c x)^3 it is accepted when v > 0 and ln u < x^2/2 + d - d v + d ln v, giving
    d v. A row takes its first accepted candidate among :data:`GAMMA_CANDIDATES` (each is
    accepted with probability > 0.95, so all fail with probability < 1e-10); if none is
    accepted the fallback is candidate 0's proposal d v (the Wilson-Hilferty
    approximation), or d when v <= 0. For shape < 1, Gamma(shape + 1) * u^(1/shape) with u
    from draw ``base + 3 * GAMMA_CANDIDATES`` (Marsaglia-Tsang's boost)."""
    boost = shape < 1.0
    d = (shape + 1.0 if boost else shape) - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = np.full(s.size, np.nan)
    pending: I64 = np.arange(s.size, dtype=np.int64)
    first_proposal: F64 | None = None
    for k in range(GAMMA_CANDIDATES):
        if pending.size == 0:
            break
        draw = base + _GAMMA_DRAWS_PER_CANDIDATE * k
        x = normal(s, draw, pending)
        u = s.uniform_at(draw + 2, pending)
        v = 1.0 + c * x
        v = v * v * v
        positive = v > 0
        log_v = fmath.log(np.where(positive, v, 1.0))
        accepted = positive & (fmath.log(u) < 0.5 * x * x + d - d * v + d * log_v)
        proposal = np.where(positive, d * v, d)
        if first_proposal is None:
            first_proposal = proposal
        out[pending[accepted]] = proposal[accepted]
        pending = pending[~accepted]
    if pending.size and first_proposal is not None:
        out[pending] = first_proposal[pending]
    if boost:
        out *= fmath.power(s.uniform(base + _GAMMA_DRAWS_PER_CANDIDATE * GAMMA_CANDIDATES), 1.0 / shape)
    return out


def beta(s: Stream, a: float, b: float) -> F64:
    """``X / (X + Y)`` with X ~ Gamma(a) (draw base 0) and Y ~ Gamma(b) (draw base 100).
    When both underflow to 0 (tiny a and b) the row takes the limit law,
    Bernoulli(a / (a + b)), decided by draw 200."""
    x, y = gamma(s, a, 0), gamma(s, b, _BETA_B_BASE)
    total = x + y
    degenerate = total <= 0.0
    if degenerate.any():
        coin = (s.uniform(2 * _BETA_B_BASE) < a / (a + b)).astype(np.float64)
        out: F64 = np.where(degenerate, coin, x / np.where(degenerate, 1.0, total))
        return out
    ratio: F64 = x / total
    return ratio


# --------------------------------------------------------------------------- discrete


def _log(x: float) -> float:
    return float(fmath.log(x))


def _lgamma(m: float) -> float:
    return float(fmath.lgamma_int(m))


def _invert(table: tuple[int, F64], u: F64) -> F64:
    """Smallest k in the table's window with CDF(k) >= u (clipped to the window)."""
    low, cdf = table
    index = np.minimum(np.searchsorted(cdf, u, side="left"), cdf.size - 1)
    out: F64 = (low + index).astype(np.float64)
    return out


def _table(low: int, log_pmf: F64) -> tuple[int, F64]:
    return low, np.cumsum(fmath.exp(log_pmf))


@lru_cache(maxsize=64)
def _poisson_table(lam: float) -> tuple[int, F64]:
    spread = _TABLE_SIGMAS * math.sqrt(lam)
    low = max(0, math.floor(lam - spread - 15))
    high = math.ceil(lam + spread + 30)
    k = np.arange(low, high + 1, dtype=np.float64)
    return _table(low, k * _log(lam) - lam - fmath.lgamma_int(k + 1.0))


def poisson(s: Stream, lam: float) -> F64:
    """Poisson(lam) by inversion of the CDF over the window lam +- 15 sqrt(lam) (the mass
    outside is < 1e-30), one uniform per row (draw 0); the table is built in log space,
    so large lam does not underflow. Above a 200,000-entry window (lam > ~4e7) the
    normal approximation with continuity correction is used:
    floor(lam + sqrt(lam) Z + 1/2), clipped at 0, Z from draws 0, 1."""
    if 2 * _TABLE_SIGMAS * math.sqrt(lam) > _TABLE_MAX:
        out: F64 = np.maximum(np.floor(lam + math.sqrt(lam) * normal(s) + 0.5), 0.0)
        return out
    return _invert(_poisson_table(lam), s.uniform(0))


@lru_cache(maxsize=64)
def _binomial_table(n: int, p: float) -> tuple[int, F64]:
    mean, sd = n * p, math.sqrt(n * p * (1.0 - p))
    low = max(0, math.floor(mean - _TABLE_SIGMAS * sd - 15))
    high = min(n, math.ceil(mean + _TABLE_SIGMAS * sd + 15))
    k = np.arange(low, high + 1, dtype=np.float64)
    log_choose = _lgamma(n + 1.0) - fmath.lgamma_int(k + 1.0) - fmath.lgamma_int(n - k + 1.0)
    return _table(low, log_choose + k * _log(p) + (n - k) * float(fmath.log1p(-p)))


def binomial(s: Stream, n: int, p: float) -> F64:
    """Binomial(n, p) by CDF inversion over the window np +- 15 sd (draw 0), like
    :func:`poisson`; p = 0 or 1 and n = 0 are exact constants. Above a 200,000-entry
    window, the normal approximation with continuity correction, clipped to [0, n]."""
    if n <= 0 or p <= 0.0:
        return np.zeros(s.size)
    if p >= 1.0:
        return np.full(s.size, float(n))
    sd = math.sqrt(n * p * (1.0 - p))
    if 2 * _TABLE_SIGMAS * sd > _TABLE_MAX:
        out: F64 = np.clip(np.floor(n * p + sd * normal(s) + 0.5), 0.0, float(n))
        return out
    return _invert(_binomial_table(n, p), s.uniform(0))


@lru_cache(maxsize=64)
def _zipf_table(a: float) -> tuple[F64, float]:
    """(CDF over 1..K, zeta(a)); zeta's tail beyond K by the midpoint integral."""
    k = np.arange(1, _ZIPF_TABLE + 1, dtype=np.float64)
    partial = np.cumsum(fmath.power(k, -a))
    zeta = float(partial[-1]) + float(fmath.power(_ZIPF_TABLE + 0.5, 1.0 - a)) / (a - 1.0)
    return partial / zeta, zeta


def zipf(s: Stream, a: float) -> F64:
    """Zipf(a), P(k) = k^-a / zeta(a) for k >= 1, by inversion (draw 0): exact table for
    k <= 65,536; beyond it the tail sum_{j>k} j^-a is taken as (k + 1/2)^(1-a) / (a - 1)
    and inverted in closed form. Values beyond the int64 range are capped there."""
    cdf, zeta = _zipf_table(a)
    u = s.uniform(0)
    head = np.searchsorted(cdf, u, side="left") + 1.0
    tail_mass = np.maximum((1.0 - u) * zeta * (a - 1.0), np.finfo(np.float64).tiny)
    with np.errstate(over="ignore"):
        tail = np.ceil(fmath.power(tail_mass, -1.0 / (a - 1.0)) - 0.5)
    tail = np.maximum(tail, _ZIPF_TABLE + 1.0)
    out: F64 = np.minimum(np.where(u <= cdf[-1], head, tail), _INT64_LIMIT)
    return out
