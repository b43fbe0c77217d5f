"""runtime.rng: the vectorized generator matches its scalar reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import rng

seeds = st.integers(0, 2**63 - 1)
streams = st.text(min_size=0, max_size=12)
draws = st.integers(0, 2_000_000)
starts = st.integers(0, 2**40)


@settings(max_examples=100, deadline=None)
@given(seeds, streams, draws, starts, st.integers(0, 40))
def test_bits_match_scalar_reference(seed: int, stream: str, draw: int, start: int, n: int) -> None:
    vector = rng.bits(seed, stream, draw, start, start + n)
    assert vector.dtype == np.uint64
    assert [int(v) for v in vector] == [rng.bits_scalar(seed, stream, draw, start + i) for i in range(n)]


@settings(max_examples=100, deadline=None)
@given(seeds, streams, draws, starts, st.integers(1, 40))
def test_uniform_matches_scalar_reference_and_is_open(
    seed: int, stream: str, draw: int, start: int, n: int
) -> None:
    vector = rng.uniform(seed, stream, draw, start, start + n)
    assert list(vector) == [rng.uniform_scalar(seed, stream, draw, start + i) for i in range(n)]
    assert ((vector > 0.0) & (vector < 1.0)).all()


@settings(max_examples=50, deadline=None)
@given(seeds, streams, st.integers(0, 1000), st.integers(1, 500), st.integers(1, 500))
def test_any_split_gives_the_same_words(seed: int, stream: str, start: int, a: int, b: int) -> None:
    whole = rng.bits(seed, stream, 0, start, start + a + b)
    parts = np.concatenate(
        [rng.bits(seed, stream, 0, start, start + a), rng.bits(seed, stream, 0, start + a, start + a + b)]
    )
    assert (whole == parts).all()


def test_streams_draws_and_seeds_are_independent_keys() -> None:
    keys = {rng.stream_key(s, name, d) for s in (0, 1) for name in ("a", "b", "ab") for d in (0, 1, 2)}
    assert len(keys) == 18
    assert (rng.bits(0, "a", 0, 0, 100) != rng.bits(0, "a", 1, 0, 100)).all()


def test_uniform_is_centred_and_inside_the_interval_on_a_sample() -> None:
    u = rng.uniform(7, "x", 0, 0, 100_000)
    assert u.min() > 0.0 and u.max() < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.01


def test_uniform_extreme_words_stay_inside_the_open_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    extremes = np.array([0, 2**64 - 1], dtype=np.uint64)
    monkeypatch.setattr(rng, "bits", lambda *args: extremes.copy())
    u = rng.uniform(0, "x", 0, 0, 2)
    assert u[0] > 0.0
    assert u[1] < 1.0
