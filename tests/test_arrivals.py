"""Event streams (runtime.shapes.arrivals): bucket widths, profiles, Poisson counts,
chunk invariance, timestamps and entities. Built on the IR directly; statistical checks
use fixed seeds and 6-sigma tolerances."""

from __future__ import annotations

import math
import statistics

import numpy as np
import polars as pl
import pytest

from runtime import rng
from runtime.errors import ExecutionError
from runtime.plan import Arrivals, Entity, Profile
from runtime.shapes import arrivals as A
from runtime.shapes import source_frame, source_rows

S = 1_000_000
HOUR = 3600 * S
DAY = 24 * HOUR
T0 = 1_704_067_200 * S  # 2024-01-01T00:00:00Z, a Monday
CONSTANT = Profile()


def stream(
    rate: float = 50.0,
    span: int = 60 * S,
    profile: Profile = CONSTANT,
    *,
    start: int = T0,
    bucket_us: int | None = None,
    timezone: str = "UTC",
    entities: tuple[Entity, ...] = (),
) -> Arrivals:
    width = A.bucket_us_for(rate, start, start + span) if bucket_us is None else bucket_us
    return Arrivals(
        rate=rate,
        start=start,
        end=start + span,
        bucket_us=width,
        profile=profile,
        timezone=timezone,
        entities=entities,
    )


def within_sigmas(observed: float, expected: float, sd: float, sigmas: float = 6.0) -> bool:
    return abs(observed - expected) <= sigmas * sd


def frame(arr: Arrivals, seed: int = 7, chunk: int | None = None, start: int = 0) -> pl.DataFrame:
    """Rows start..end of the stream in chunks of ``chunk`` rows, one fresh memo."""
    total = A.arrival_rows(arr, seed)
    chunk = chunk or max(total - start, 1)
    memo: dict[object, object] = {}
    parts = [
        A.arrivals_frame(arr, seed, lo, min(lo + chunk, total), memo) for lo in range(start, total, chunk)
    ]
    return pl.concat(parts) if parts else A.arrivals_frame(arr, seed, start, start, memo)


def stamps(df: pl.DataFrame, column: str = "timestamp") -> np.ndarray:
    return df.get_column(column).cast(pl.Int64).to_numpy()


# --------------------------------------------------------------------------- buckets


@pytest.mark.parametrize(
    ("span", "width"),
    [
        (0, 1_000),
        (S, 1_000),
        ((1 << 20) * 1_000, 1_000),
        ((1 << 20) * 1_000 + 1, 10_000),
        (DAY, 100_000),
        (30 * DAY, 10 * S),
        (365 * DAY, 60 * S),
        (3 * 365 * DAY, 300 * S),
        (100 * 365 * DAY, HOUR),
        (200 * 365 * DAY, DAY),
        (4000 * 365 * DAY, 2 * DAY),
    ],
)
def test_bucket_width_is_the_smallest_rung_within_two_to_the_twenty(span: int, width: int) -> None:
    assert A.bucket_us_for(10.0, T0, T0 + span) == width
    assert -(-span // width) <= A.MAX_BUCKETS


def test_bucket_width_depends_on_the_window_only() -> None:
    assert A.bucket_us_for(0.001, 0, DAY) == A.bucket_us_for(1e6, 5 * DAY, 6 * DAY)


def test_expected_rows_is_rate_times_seconds() -> None:
    assert A.expected_rows(stream(rate=2.5, span=DAY)) == 2.5 * 86_400
    assert A.expected_rows(stream(rate=2.5, span=0)) == 0.0


def test_last_bucket_is_the_remainder() -> None:
    starts, lengths = A.bucket_bounds(stream(span=10 * S + S // 2, bucket_us=S))
    assert starts.size == 11 and lengths[-1] == S // 2 and (lengths[:-1] == S).all()
    assert starts[-1] + lengths[-1] == T0 + 10 * S + S // 2


# --------------------------------------------------------------------------- Poisson


def reference_poisson(lam: float, u: float) -> int:
    """Smallest k with CDF(k) >= u, the pmf from math.lgamma in log space."""
    cdf, k = 0.0, 0
    while True:
        cdf += math.exp(k * math.log(lam) - lam - math.lgamma(k + 1))
        if cdf >= u or k > lam + 40 * math.sqrt(lam) + 40:
            return k
        k += 1


@pytest.mark.parametrize("lam", [0.01, 0.7, 4.0, 35.0, 640.0, 999.0])
def test_exact_poisson_inversion_matches_a_scalar_reference(lam: float) -> None:
    u = rng.uniform(3, "ref", 0, 0, 300)
    got = A.poisson_counts(np.full(u.size, lam), u)
    assert got.tolist() == [reference_poisson(lam, float(x)) for x in u]


@pytest.mark.parametrize("lam", [0.01, 0.2, 1.5, 12.0, 150.0, 999.0, 1000.5, 1e4, 1e5])
def test_poisson_counts_have_poisson_mean_and_variance(lam: float) -> None:
    n = 40_000 if lam > 100 else 200_000
    k = A.poisson_counts(np.full(n, lam), rng.uniform(11, "poisson", 0, 0, n)).astype(np.float64)
    assert within_sigmas(k.mean(), lam, math.sqrt(lam / n))
    var_sd = math.sqrt((lam + 2 * lam * lam) / n)  # sd of the sample variance (4th moment)
    assert within_sigmas(k.var(), lam, var_sd)
    if lam < 2:
        p0 = math.exp(-lam)
        assert within_sigmas((k == 0).mean(), p0, math.sqrt(p0 * (1 - p0) / n))


def test_poisson_pmf_matches_exactly_for_moderate_means() -> None:
    n, lam = 200_000, 6.5
    k = A.poisson_counts(np.full(n, lam), rng.uniform(5, "pmf", 0, 0, n))
    for value in range(16):
        p = math.exp(value * math.log(lam) - lam - math.lgamma(value + 1))
        assert within_sigmas(float((k == value).mean()), p, math.sqrt(p * (1 - p) / n)), value


def test_poisson_counts_per_element_means_and_zero() -> None:
    lam = np.array([0.0, 0.0, 3.0, 2000.0, 0.0])
    got = A.poisson_counts(lam, np.full(5, 0.5))
    assert got[[0, 1, 4]].tolist() == [0, 0, 0]
    assert got[2] == reference_poisson(3.0, 0.5) and abs(got[3] - 2000) <= 1
    assert got.dtype == np.int64


def test_normal_quantile_matches_the_standard_library() -> None:
    u = np.array([1e-15, 1e-6, 0.01, 0.02425, 0.2, 0.5, 0.7, 0.97575, 0.999, 1 - 2**-53])
    want = [statistics.NormalDist().inv_cdf(float(x)) for x in u]
    assert np.allclose(A.normal_quantile(u), want, rtol=2e-9, atol=1e-12)


# --------------------------------------------------------------------------- profiles


def hourly(profile: Profile, timezone: str = "UTC", days: int = 7) -> np.ndarray:
    """Multipliers of a week of hourly buckets starting at local midnight (Monday)."""
    return A.profile_multipliers(stream(span=days * DAY, profile=profile, bucket_us=HOUR, timezone=timezone))


@pytest.mark.parametrize(
    "profile",
    [
        Profile(),
        Profile(kind="diurnal"),
        Profile(kind="weekly"),
        Profile(kind="ramp", height=5.0),
        Profile(kind="spike", at_us=T0 + 17 * S, width_us=2 * S, height=20.0),
        Profile(kind="points", points=((0, 1.0), (40 * S, 4.0))),
        Profile(kind="points", points=((0, 1.0), (12 * HOUR, 3.0)), daily=True),
    ],
)
def test_profiles_keep_the_mean_rate(profile: Profile) -> None:
    # a window that is not a multiple of the width: the partial bucket weighs by its length
    arr = stream(span=3 * DAY + 7 * S + 300_000, profile=profile, bucket_us=10 * S, timezone="Asia/Kolkata")
    _, lengths = A.bucket_bounds(arr)
    mult = A.profile_multipliers(arr)
    assert math.fsum(mult * lengths) / math.fsum(lengths) == pytest.approx(1.0, abs=1e-12)
    expected = A.expected_rows(arr)
    assert within_sigmas(A.arrival_rows(arr, 2), expected, math.sqrt(expected))


def test_diurnal_trough_at_four_and_peak_at_fifteen_local() -> None:
    # bucket midpoints are at hh:30: check the shape at the exact hours too
    local = (np.arange(24 * 60, dtype=np.int64) * 60 * S) % DAY
    curve = A.diurnal(local)
    assert int(np.argmin(curve)) == 4 * 60 and int(np.argmax(curve)) == 15 * 60
    assert curve.min() / curve.max() == pytest.approx(1 / 6, rel=1e-12)
    # local wall clock: in New York (UTC-5 in January) the trough is at 09:00 UTC
    mult = hourly(Profile(kind="diurnal"), timezone="America/New_York", days=1)
    assert int(np.argmin(mult)) in (8, 9) and int(np.argmax(mult)) in (19, 20)


def test_diurnal_counts_follow_the_local_day() -> None:
    arr = stream(rate=20.0, span=7 * DAY, profile=Profile(kind="diurnal"), timezone="Europe/Berlin")
    counts, _ = A.bucket_counts(arr, 4, {})
    starts, _ = A.bucket_bounds(arr)
    local_hour = ((starts + HOUR) % DAY) // HOUR  # Berlin is UTC+1 in January
    per_hour = np.bincount(local_hour, weights=counts, minlength=24)
    assert int(np.argmin(per_hour)) in (3, 4) and int(np.argmax(per_hour)) in (14, 15)
    assert per_hour.min() / per_hour.max() == pytest.approx(1 / 6, abs=0.02)
    assert within_sigmas(counts.sum(), 20.0 * 7 * 86_400, math.sqrt(20.0 * 7 * 86_400))


def test_weekly_weekends_are_quieter() -> None:
    mult = hourly(Profile(kind="weekly")).reshape(7, 24)  # Monday first
    daily = mult.sum(axis=1)
    assert np.allclose(daily[:5], daily[0]) and daily[5] == pytest.approx(0.6 * daily[0])
    assert daily[6] == pytest.approx(0.5 * daily[0])
    diurnal = hourly(Profile(kind="diurnal"), days=1)
    assert np.allclose(mult[0] / mult[0].sum(), diurnal / diurnal.sum())


def test_ramp_counts_grow_linearly() -> None:
    arr = stream(rate=100.0, span=1000 * S, profile=Profile(kind="ramp", height=3.0))
    ts = stamps(frame(arr)) - T0
    first, last = (ts < 100 * S).sum(), (ts >= 900 * S).sum()
    # multiplier 1 -> 3, mean 2: the first tenth averages 1.1 / 2, the last 2.9 / 2
    for got, mean in ((first, 100 * 100 * 1.1 / 2), (last, 100 * 100 * 2.9 / 2)):
        assert within_sigmas(got, mean, math.sqrt(mean))


def test_spike_concentrates_events_in_its_window() -> None:
    height, width, span, rate = 10.0, 20 * S, 600 * S, 40.0
    profile = Profile(kind="spike", at_us=T0 + 300 * S, width_us=width, height=height)
    ts = stamps(frame(stream(rate=rate, span=span, profile=profile))) - T0
    mean_mult = (span - width + height * width) / span
    inside = ((ts >= 290 * S) & (ts < 310 * S)).sum()
    expect_in = rate * 20 * height / mean_mult
    expect_out = rate * 580 / mean_mult
    assert within_sigmas(inside, expect_in, math.sqrt(expect_in))
    assert within_sigmas(ts.size - inside, expect_out, math.sqrt(expect_out))


def test_spike_narrower_than_a_bucket_is_kept() -> None:
    arr = stream(
        span=100 * S,
        bucket_us=10 * S,
        profile=Profile(kind="spike", at_us=T0 + 55 * S, width_us=S, height=11.0),
    )
    mult = A.profile_multipliers(arr)
    assert mult[5] / mult[0] == pytest.approx(2.0)  # a tenth of the bucket at x11
    assert np.allclose(np.delete(mult, 5), mult[0])


def test_points_from_the_window_start_hold_beyond_the_ends() -> None:
    profile = Profile(kind="points", points=((10 * S, 1.0), (20 * S, 3.0)))
    mult = A.profile_multipliers(stream(span=40 * S, bucket_us=S, profile=profile))
    base = mult[0]
    assert np.allclose(mult[:10], base) and np.allclose(mult[20:], 3 * base)
    assert mult[15] == pytest.approx(base * (1 + 2 * 5.5 / 10))  # midpoint 15.5 s
    ts = stamps(frame(stream(rate=30.0, span=40 * S, bucket_us=S, profile=profile))) - T0
    late = (ts >= 20 * S).sum()
    expect = 30.0 * 20 * 3 * base
    assert within_sigmas(late, expect, math.sqrt(expect))


def test_daily_points_wrap_around_midnight_on_the_local_clock() -> None:
    profile = Profile(kind="points", points=((18 * HOUR, 3.0), (6 * HOUR, 1.0)), daily=True)
    mult = A.profile_multipliers(
        stream(span=2 * DAY, bucket_us=HOUR // 2, profile=profile, timezone="Asia/Tokyo")
    )
    # bucket i starts at i/2 h UTC = i/2 + 9 h in Tokyo; its midpoint is a quarter hour later
    local = (np.arange(mult.size) * 0.5 + 9.25) % 24
    want = np.where(
        (local >= 6) & (local <= 18),
        1 + 2 * (local - 6) / 12,
        3 - 2 * ((local - 18) % 24) / 12,
    )
    assert np.allclose(mult / mult.mean(), want / want.mean())
    assert want[(np.abs(local - 0.25) < 1e-9)][0] == pytest.approx(2.0 - 0.25 / 6)  # midnight: halfway


# --------------------------------------------------------------------------- frames


ENTITIES = (Entity("region", 2, values=("eu", "us")), Entity("device", 5))


def test_chunks_give_identical_rows_bit_for_bit() -> None:
    arr = stream(
        rate=40.0, span=90 * S, profile=Profile(kind="diurnal"), timezone="Europe/Paris", entities=ENTITIES
    )
    whole = frame(arr)
    assert whole.height == A.arrival_rows(arr, 7) > 3000
    for size in (7, 1000, whole.height):
        assert frame(arr, chunk=size).equals(whole)
    assert frame(arr, chunk=1, start=whole.height - 400).equals(whole.slice(whole.height - 400))
    # a cold memo (and cold count cache) starting mid-stream
    A._counts.cache_clear()
    middle = A.arrivals_frame(arr, 7, 1234, 2345, {})
    assert middle.equals(whole.slice(1234, 2345 - 1234))
    assert np.array_equal(stamps(middle), stamps(whole)[1234:2345])


def test_size_one_chunks_match_over_a_stretch() -> None:
    arr = stream(rate=30.0, span=20 * S, bucket_us=S)
    whole = frame(arr)
    memo: dict[object, object] = {}
    ones = pl.concat([A.arrivals_frame(arr, 7, r, r + 1, memo) for r in range(whole.height)])
    assert ones.equals(whole)


def test_timestamps_sorted_inside_the_window_with_the_time_zone() -> None:
    arr = stream(rate=200.0, span=30 * S + 123_457, bucket_us=S, timezone="America/Sao_Paulo")
    df = frame(arr, chunk=997)
    assert df.schema == pl.Schema({"timestamp": pl.Datetime("us", "America/Sao_Paulo")})
    ts = stamps(df)
    assert (np.diff(ts) >= 0).all() and ts.min() >= arr.start and ts.max() < arr.end
    # the partial last bucket (0.123457 s) gets events in proportion to its length
    assert within_sigmas((ts >= arr.start + 30 * S).sum(), 200 * 0.123457, math.sqrt(200 * 0.123457) + 1)


def test_constant_rate_count_and_uniform_times() -> None:
    arr = stream(rate=25.0, span=400 * S, bucket_us=10 * S)
    ts = stamps(frame(arr, seed=9)) - T0
    assert within_sigmas(ts.size, 10_000, 100)
    # inside buckets the offsets are uniform: each tenth of a bucket gets ~1/10
    tenth = np.bincount((ts % (10 * S)) // S, minlength=10)
    assert all(within_sigmas(c, ts.size / 10, math.sqrt(ts.size * 0.09)) for c in tenth)


def test_entities_are_uniform_and_carry_their_keys() -> None:
    arr = stream(rate=500.0, span=100 * S, entities=ENTITIES)
    df = frame(arr, chunk=20_000)
    assert df.columns == ["timestamp", "region", "device"]
    assert set(df.get_column("region").unique()) == {"eu", "us"}
    assert set(df.get_column("device").unique()) == {1, 2, 3, 4, 5}
    combos = df.group_by("region", "device").len().get_column("len").to_numpy()
    n = df.height
    assert combos.size == 10 and all(within_sigmas(c, n / 10, math.sqrt(n * 0.09)) for c in combos)


def test_entity_keys_come_from_a_column_spec() -> None:
    from runtime.plan import SequenceColumn

    user = Entity("user", 3, column=SequenceColumn("user", start=100, format="U{}"))
    df = frame(stream(rate=100.0, span=5 * S, entities=(user,)))
    assert set(df.get_column("user").unique()) == {"U100", "U101", "U102"}


def test_source_dispatch_and_zero_length_window() -> None:
    arr = stream(rate=10.0, span=3 * S)
    rows = source_rows(arr, 1)
    assert rows == A.arrival_rows(arr, 1)
    assert source_frame(arr, 1, 0, rows, {}).equals(frame(arr, seed=1))
    empty = stream(span=0, entities=ENTITIES)
    assert A.arrival_rows(empty, 1) == 0
    df = A.arrivals_frame(empty, 1, 0, 0, {})
    assert df.height == 0 and df.columns == ["timestamp", "region", "device"]


def test_seeds_differ_and_rows_outside_the_stream_fail() -> None:
    arr = stream(rate=50.0, span=10 * S)
    assert not np.array_equal(stamps(frame(arr, seed=1)), stamps(frame(arr, seed=2)))
    total = A.arrival_rows(arr, 1)
    with pytest.raises(ExecutionError, match="outside"):
        A.arrivals_frame(arr, 1, total - 1, total + 1, {})


def test_profile_that_is_zero_everywhere_fails_cleanly() -> None:
    arr = stream(span=10 * S, profile=Profile(kind="points", points=((0, 0.0),)))
    with pytest.raises(ExecutionError, match="zero"):
        A.profile_multipliers(arr)
