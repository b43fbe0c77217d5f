"""Platform-independent elementary functions for the samplers.

NumPy's ``log``/``exp``/``cos`` are accurate but not reproducible across machines and
versions: builds pick SIMD implementations (AVX-512, SVML, Highway) whose last bit
differs from the C library's, and releases change them. A spec must give the same
bytes everywhere, so every transcendental step of a distribution transform goes
through this module instead. Each function is a fixed sequence of IEEE-754 basic
operations (``+ - * /``, ``sqrt``, ``frexp``/``ldexp``, ``rint``), which are correctly
rounded on every conforming platform, with the polynomial kernels of fdlibm (Sun's
freely distributable libm, the reference behind Java's ``StrictMath``).

Accuracy is within a couple of ulps of the true value (tests compare with ``math``);
what matters more is that the result never depends on the machine. Changing anything
here changes data: bump ``runtime.plan.ENGINE_VERSION``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

# fdlibm e_log.c
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_SQRT_HALF = 0.7071067811865476

# fdlibm e_exp.c
_INV_LN2 = 1.44269504088896338700e00
_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08
_EXP_MAX = 7.09782712893383973096e02  # above: overflow to inf
_EXP_MIN = -7.45133219101941108420e02  # below: underflow to 0

# fdlibm k_sin.c / k_cos.c
_S1 = -1.66666666666666324348e-01
_S2 = 8.33333333332248946124e-03
_S3 = -1.98412698298579493134e-04
_S4 = 2.75573137070700676789e-06
_S5 = -2.50507602534068634195e-08
_S6 = 1.58969099521155010221e-10
_C1 = 4.16666666666666019037e-02
_C2 = -1.38888888888741095749e-03
_C3 = 2.48015872894767294178e-05
_C4 = -2.75573143513906633035e-07
_C5 = 2.08757232129817482790e-09
_C6 = -1.13596475577881948265e-11
_PI_OVER_2 = 1.5707963267948966

_HALF_LOG_TWO_PI = 0.91893853320467274178  # log(2 pi) / 2, for Stirling's series
_COS_SIGN = np.array([1.0, 0.0, -1.0, 0.0])
_SIN_SIGN = np.array([0.0, -1.0, 0.0, 1.0])
_BLOCK = 16_384


def _array(x: npt.ArrayLike) -> F64:
    return np.asarray(x, dtype=np.float64)


def _blockwise(kernel: Callable[[F64], F64]) -> Callable[[npt.ArrayLike], F64]:
    """Apply an elementwise kernel in blocks of :data:`_BLOCK` values: its dozens of
    temporaries then stay in cache instead of faulting in fresh memory (5x faster on
    large arrays). Elementwise, so the result is the same for any block size."""

    def apply(x: npt.ArrayLike) -> F64:
        values = _array(x)
        with np.errstate(all="ignore"):  # special values are handled explicitly
            if values.size <= _BLOCK:
                return kernel(values)
            flat = values.reshape(-1)
            out = np.empty_like(flat)
            for start in range(0, flat.size, _BLOCK):
                out[start : start + _BLOCK] = kernel(flat[start : start + _BLOCK])
        return out.reshape(values.shape)

    apply.__doc__ = kernel.__doc__
    apply.__name__ = kernel.__name__
    return apply


@_blockwise
def log(x: F64) -> F64:
    """Natural logarithm; -inf at 0, nan below 0 and for nan."""
    m, e = np.frexp(x)  # x = m * 2**e, m in [0.5, 1): exact
    low = m < _SQRT_HALF
    m = m * (1.0 + low)  # 1 + f in [sqrt(1/2), sqrt(2)): exact doubling
    k = e - low.astype(np.float64)
    f = m - 1.0  # exact (Sterbenz)
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7))) + w * (_LG2 + w * (_LG4 + w * _LG6))
    hfsq = 0.5 * f * f
    out: F64 = k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)
    if not np.all(np.isfinite(x) & (x > 0.0)):  # rare: fix up the special values
        out[x == 0.0] = -np.inf
        out[x == np.inf] = np.inf
        out[(x < 0.0) | np.isnan(x)] = np.nan
    return out


def log1p(x: npt.ArrayLike) -> F64:
    """log(1 + x), accurate for tiny x (Goldberg's correction: log(u) * x / (u - 1))."""
    x = _array(x)
    u = 1.0 + x
    with np.errstate(all="ignore"):
        corrected = log(u) * (x / (u - 1.0))
    result: F64 = np.where(u == 1.0, x, corrected)
    return result


@_blockwise
def exp(x: F64) -> F64:
    """e**x; overflows to inf above ~709.78, underflows to 0 below ~-745.13."""
    clipped = np.clip(x, -746.0, 710.0)  # nan stays nan
    k = np.rint(clipped * _INV_LN2)  # exact ties-to-even
    hi = clipped - k * _LN2_HI  # k * _LN2_HI is exact for |k| < 2**20
    lo = k * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    if not np.all((x >= _EXP_MIN) & (x <= _EXP_MAX)):  # rare: out of range or nan
        k[np.isnan(k)] = 0.0
        y[x > _EXP_MAX] = np.inf
        y[x < _EXP_MIN] = 0.0
    with np.errstate(over="ignore", under="ignore"):
        out: F64 = np.ldexp(y, k.astype(np.int64))
    return out


def power(x: npt.ArrayLike, y: float) -> F64:
    """x**y for x >= 0 as exp(y log x) (0**y is 0 for y > 0, inf for y < 0)."""
    return exp(y * log(x))


def _sin_kernel(x: F64) -> F64:
    z = x * x
    r = _S2 + z * (_S3 + z * (_S4 + z * (_S5 + z * _S6)))
    out: F64 = x + (z * x) * (_S1 + z * r)
    return out


def _cos_kernel(x: F64) -> F64:
    z = x * x
    r = z * (_C1 + z * (_C2 + z * (_C3 + z * (_C4 + z * (_C5 + z * _C6)))))
    out: F64 = 1.0 - (0.5 * z - z * r)
    return out


@_blockwise
def cos_turns(u: F64) -> F64:
    """cos(2 pi u). The reduction happens in turns, where it is exact: 4u splits into
    the nearest quarter turn q and a remainder in [-1/2, 1/2] (exact by Sterbenz),
    so no multi-word pi is needed for the arguments synthc uses."""
    v = 4.0 * u  # exact
    q = np.rint(v)
    theta = (v - q) * _PI_OVER_2  # in [-pi/4, pi/4]
    quadrant = q.astype(np.int64) & 3
    # cos(q pi/2 + t) = cos t, -sin t, -cos t, sin t: one term is multiplied by 0 (exact)
    out: F64 = _cos_kernel(theta) * _COS_SIGN[quadrant] + _sin_kernel(theta) * _SIN_SIGN[quadrant]
    return out


def lgamma_int(m: npt.ArrayLike) -> F64:
    """log((m - 1)!) = lgamma(m) for whole numbers m >= 1: exact factorials up to 20,
    Stirling's series (error < 1e-17 there) above."""
    m = _array(m)
    small = np.minimum(np.maximum(m, 1.0), 21.0).astype(np.int64)
    exact = _LOG_FACTORIALS[small - 1]
    x = np.maximum(m, 21.0)
    inv = 1.0 / x
    inv2 = inv * inv
    series = inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 * (1.0 / 1680.0))))
    stirling = (x - 0.5) * log(x) - x + _HALF_LOG_TWO_PI + series
    result: F64 = np.where(m <= 21.0, exact, stirling)
    return result


# log((m - 1)!) for m = 1..21; the factorials are exact integers, correctly rounded to float
_LOG_FACTORIALS = log(np.array([float(math.factorial(m - 1)) for m in range(1, 22)]))
