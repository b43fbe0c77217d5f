"""The counter-based random generator every sampler draws from.

A draw is a pure function of ``(seed, stream name, draw index, row index)``:

    key    = xxh3_64("{seed}\\x00{stream}\\x00{draw}")
    bits   = splitmix64_mix(key + row * GOLDEN)          (mod 2**64)

which is SplitMix64 seeded with ``key``, evaluated at position ``row``. Nothing depends
on chunk boundaries, worker count or the other columns, so row ``i`` of a column is the
same whether 10 or 10 million rows are generated, in any chunking. The arithmetic is
plain wrapping uint64, identical in NumPy and in the scalar reference below (which the
property tests compare against). Changing anything here changes data: bump
``runtime.plan.ENGINE_VERSION``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import xxhash

GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
MASK64 = (1 << 64) - 1
_TWO_M52 = 1.0 / (1 << 52)

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]


def stream_key(seed: int, stream: str, draw: int = 0) -> int:
    """The 64-bit key of one stream of draws (a column's ``draw``-th draw per row)."""
    return xxhash.xxh3_64_intdigest(f"{seed}\x00{stream}\x00{draw}".encode())


def bits(seed: int, stream: str, draw: int, start: int, stop: int) -> U64:
    """Uniform 64-bit words for rows ``start..stop-1`` of one stream."""
    z = np.arange(start, stop, dtype=np.uint64)
    z *= np.uint64(GOLDEN)
    z += np.uint64(stream_key(seed, stream, draw))
    z ^= z >> np.uint64(30)
    z *= np.uint64(_M1)
    z ^= z >> np.uint64(27)
    z *= np.uint64(_M2)
    z ^= z >> np.uint64(31)
    return z


def uniform(seed: int, stream: str, draw: int, start: int, stop: int) -> F64:
    """Floats in the open interval (0, 1): safe for ``log`` and inverse CDFs.

    The top 52 bits plus one half, scaled: every step is exact in float64, so the
    extremes are 2**-53 and 1 - 2**-53 (with 53 bits, the top word would round to 1.0)."""
    u = (bits(seed, stream, draw, start, stop) >> np.uint64(12)).astype(np.float64)
    u += 0.5
    u *= _TWO_M52
    return u


# --------------------------------------------------------------------------- scalar reference


def bits_scalar(seed: int, stream: str, draw: int, row: int) -> int:
    """Reference implementation of :func:`bits` for one row (pure Python ints)."""
    z = (stream_key(seed, stream, draw) + row * GOLDEN) & MASK64
    z ^= z >> 30
    z = (z * _M1) & MASK64
    z ^= z >> 27
    z = (z * _M2) & MASK64
    z ^= z >> 31
    return z


def uniform_scalar(seed: int, stream: str, draw: int, row: int) -> float:
    return ((bits_scalar(seed, stream, draw, row) >> 12) + 0.5) * _TWO_M52
