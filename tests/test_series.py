"""Series columns: chunk invariance (bit for bit, stateful parts included) and the
statistics each part promises, with fixed seeds and tolerances of about 6 standard
errors."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import polars as pl
import pytest

from runtime.errors import ExecutionError
from runtime.plan import Anomalies, Entity, Noise, Seasonality, SeriesColumn, TimeIndex, Trend, Walk
from runtime.samplers import series as series_module
from runtime.samplers.base import Chunk
from runtime.samplers.series import block_steps, sample_series
from runtime.shapes.timeindex import index_rows

HOUR = 3_600_000_000
DAY = 24 * HOUR
WEEK = 7 * DAY
START = int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp()) * 1_000_000


def hourly(periods: int, *entities: Entity, timezone: str = "UTC") -> TimeIndex:
    return TimeIndex(start=START, periods=periods, step_us=HOUR, timezone=timezone, entities=entities)


def values(
    col: SeriesColumn, ix: TimeIndex, seed: int = 1, start: int = 0, stop: int | None = None
) -> pl.Series:
    stop = index_rows(ix) if stop is None else stop
    return sample_series(col, Chunk(seed, start, stop, source=ix))


def chunked(col: SeriesColumn, ix: TimeIndex, size: int, seed: int = 1) -> pl.Series:
    memo: dict[Any, Any] = {}
    rows = index_rows(ix)
    parts = [
        sample_series(col, Chunk(seed, s, min(s + size, rows), source=ix, memo=memo))
        for s in range(0, rows, size)
    ]
    return pl.concat(parts)


def same_bits(a: pl.Series, b: pl.Series) -> bool:
    """Identical values bit for bit, nulls in the same rows."""
    if not a.is_null().equals(b.is_null()):
        return False
    x, y = a.fill_null(0.0).to_numpy(), b.fill_null(0.0).to_numpy()
    return bool(np.array_equal(x.view(np.uint64), y.view(np.uint64)))


EVERYTHING = SeriesColumn(
    "load",
    base=50.0,
    trend=Trend("linear", 0.5, DAY),
    seasonality=(Seasonality(DAY, 4.0), Seasonality(WEEK, 2.0, shape="square")),
    noise=Noise("student_t", 1.5, df=5.0, ar1=0.7),
    walk=Walk("geometric", 0.01, 0.001),
    anomalies=(
        Anomalies("spike", 0.02, 5.0),
        Anomalies("level_shift", 0.01, 2.0),
        Anomalies("level_shift", 0.005, 4.0),
        Anomalies("dropout", 0.01),
    ),
    vary=(("amplitude", 0.2), ("base", 0.1), ("noise", 0.3), ("trend", 0.1), ("walk", 0.5)),
)


# --------------------------------------------------------------------------- chunk invariance


@pytest.mark.parametrize("size", [1, 7, 333, 4096])
def test_chunks_concatenate_to_the_whole_with_small_blocks(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(series_module, "BLOCK_ROWS", 64)  # many blocks: 6 entities x 8 steps
    ix = hourly(400, Entity("site", 2, values=("a", "b")), Entity("sensor", 3), timezone="Europe/Berlin")
    assert block_steps(6) == 8
    whole = values(EVERYTHING, ix)
    assert whole.dtype == pl.Float64 and whole.name == "load" and whole.len() == 2400
    assert same_bits(chunked(EVERYTHING, ix, size), whole)


@pytest.mark.parametrize("size", [333, 4096, 60_000])
def test_chunks_concatenate_to_the_whole_over_real_blocks(size: int) -> None:
    ix = hourly(2500, Entity("sensor", 50))  # 1024 steps = 51,200 rows per block: 3 blocks
    assert block_steps(50) == 1024
    assert same_bits(chunked(EVERYTHING, ix, size), values(EVERYTHING, ix))


def test_a_cold_memo_mid_series_gives_the_same_values() -> None:
    ix = hourly(2500, Entity("sensor", 50))
    whole = values(EVERYTHING, ix)
    for start, stop in [(120_000, 120_700), (51_199, 51_201), (102_399, 125_000), (77, 78)]:
        assert same_bits(values(EVERYTHING, ix, start=start, stop=stop), whole.slice(start, stop - start))


def test_a_sequential_run_computes_each_block_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(series_module, "BLOCK_ROWS", 64)
    computed: list[int] = []
    original = series_module._compute_block

    def counting(spec: Any, b: int, steps: int, carried: Any) -> Any:
        computed.append(b)
        return original(spec, b, steps, carried)

    monkeypatch.setattr(series_module, "_compute_block", counting)
    chunked(EVERYTHING, hourly(400, Entity("s", 6)), 5)
    assert computed == list(range(50))


def test_the_seed_and_the_name_key_the_draws() -> None:
    ix = hourly(100, Entity("s", 3))
    col = SeriesColumn("x", noise=Noise(sd=1.0))
    assert not values(col, ix, seed=1).equals(values(col, ix, seed=2))
    assert not values(col, ix).equals(values(SeriesColumn("y", noise=Noise(sd=1.0)), ix).alias("x"))


def test_a_source_that_is_not_a_time_index_is_an_execution_error() -> None:
    with pytest.raises(ExecutionError, match="time index"):
        sample_series(SeriesColumn("x"), Chunk(0, 0, 10))


# --------------------------------------------------------------------------- deterministic parts


def test_trend_linear_and_exponential() -> None:
    ix = hourly(49)
    linear = values(SeriesColumn("x", base=1.0, trend=Trend("linear", 2.0, DAY)), ix).to_numpy()
    assert linear[[0, 12, 24, 48]] == pytest.approx([1.0, 2.0, 3.0, 5.0])
    growth = values(SeriesColumn("x", base=100.0, trend=Trend("exponential", 0.1, DAY)), ix).to_numpy()
    assert growth[[0, 24, 48]] == pytest.approx([100.0, 110.0, 121.0], rel=1e-12)


def test_seasonal_shapes() -> None:
    ix = hourly(48)
    sine = values(SeriesColumn("x", base=10.0, seasonality=(Seasonality(DAY, 3.0),)), ix).to_numpy()
    assert sine[[0, 6, 12, 18]] == pytest.approx([10.0, 13.0, 10.0, 7.0], abs=1e-12)
    square = values(SeriesColumn("x", seasonality=(Seasonality(DAY, 2.0, shape="square"),)), ix).to_numpy()
    assert square[:24].tolist() == [2.0] * 12 + [-2.0] * 12
    saw = values(
        SeriesColumn("x", seasonality=(Seasonality(DAY, 1.0, phase_us=6 * HOUR, shape="sawtooth"),)), ix
    )
    assert saw.to_numpy()[[6, 12, 18, 29]] == pytest.approx([-1.0, -0.5, 0.0, -1.0 + 2 * 23 / 24])


def test_seasonality_follows_the_local_wall_clock() -> None:
    # a daily sine peaks at 06:00 local in winter (05:00 UTC) and in summer (04:00 UTC)
    col = SeriesColumn("x", seasonality=(Seasonality(DAY, 1.0),))
    for month, utc_hour in [(1, 5), (7, 4)]:
        start = int(dt.datetime(2024, month, 10, tzinfo=dt.UTC).timestamp()) * 1_000_000
        ix = TimeIndex(start=start, periods=24, step_us=HOUR, timezone="Europe/Berlin")
        assert int(np.argmax(values(col, ix).to_numpy())) == utc_hour


def test_dominant_periods_of_daily_and_weekly_seasonality() -> None:
    weeks = 12
    ix = hourly(weeks * 168)
    col = SeriesColumn(
        "x", base=20.0, seasonality=(Seasonality(DAY, 5.0), Seasonality(WEEK, 3.0)), noise=Noise(sd=1.0)
    )
    x = values(col, ix, seed=5).to_numpy()
    power = np.abs(np.fft.rfft(x - x.mean())) ** 2
    first, second = np.argsort(power)[::-1][:2]
    assert ix.periods / first == 24.0  # the daily term has the larger amplitude
    assert ix.periods / second == 168.0


def test_clip_and_round() -> None:
    col = SeriesColumn("x", noise=Noise(sd=10.0), min=-5.0, max=5.0, round=1)
    x = values(col, hourly(5000)).to_numpy()
    assert x.min() == -5.0 and x.max() == 5.0
    assert np.array_equal(x, np.round(x, 1))
    assert ((x > -5) & (x < 5)).sum() > 1000


# --------------------------------------------------------------------------- noise


def lag1(x: np.ndarray) -> float:
    x = x - x.mean()
    return float(np.dot(x[:-1], x[1:]) / np.dot(x, x))


def test_ar1_lag1_autocorrelation_and_marginal_sd(monkeypatch: pytest.MonkeyPatch) -> None:
    n, phi = 40_000, 0.8
    monkeypatch.setattr(series_module, "BLOCK_ROWS", 1024)  # the carry between blocks counts too
    x = values(SeriesColumn("x", noise=Noise(sd=2.0, ar1=phi)), hourly(n), seed=3).to_numpy()
    assert abs(lag1(x) - phi) < 6 * math.sqrt((1 - phi**2) / n)
    sd_se = 2.0 * math.sqrt((1 + phi**2) / (2 * n * (1 - phi**2)))
    assert abs(x.std() - 2.0) < 6 * sd_se


def test_ar1_starts_in_its_stationary_distribution() -> None:
    n, phi = 4000, 0.9
    ix = hourly(2, Entity("s", n))
    x = values(SeriesColumn("x", noise=Noise(sd=1.0, ar1=phi)), ix, seed=4).to_numpy().reshape(2, n)
    assert abs(x[0].std() - 1.0) < 6 / math.sqrt(2 * n)
    assert abs(np.corrcoef(x[0], x[1])[0, 1] - phi) < 6 * (1 - phi**2) / math.sqrt(n)


def test_ar1_scan_matches_the_plain_recurrence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(series_module, "BLOCK_ROWS", 96)  # 3 entities x 32 steps per block
    phi, ix = -0.6, hourly(300, Entity("s", 3))
    col = SeriesColumn("x", noise=Noise(sd=1.0, ar1=phi))
    got = values(col, ix).to_numpy().reshape(300, 3)
    eps = values(SeriesColumn("x", noise=Noise(sd=1.0)), ix).to_numpy().reshape(300, 3)  # same draws
    expected = np.empty_like(eps)
    expected[0] = eps[0]
    for t in range(1, 300):
        expected[t] = phi * expected[t - 1] + math.sqrt(1 - phi**2) * eps[t]
    assert np.allclose(got, expected, rtol=0, atol=1e-12)


def test_student_t_noise_has_the_declared_sd_and_heavy_tails() -> None:
    n = 100_000
    x = values(SeriesColumn("x", noise=Noise("student_t", 3.0, df=6.0)), hourly(n), seed=6).to_numpy()
    # Var(s^2) = sd^4 (2 + excess kurtosis 3) / n for t(6)
    assert abs(x.std() - 3.0) < 6 * 3.0 * math.sqrt(5 / n) / 2
    kurtosis = float(np.mean((x - x.mean()) ** 4) / x.var() ** 2)
    assert kurtosis > 4.5  # t(6) has 6, a normal 3


# --------------------------------------------------------------------------- walks


def test_arithmetic_walk_increments_have_the_declared_sd_and_drift() -> None:
    n, sd, drift = 50_000, 0.5, 0.02
    x = values(SeriesColumn("x", base=7.0, walk=Walk("arithmetic", sd, drift)), hourly(n)).to_numpy()
    assert x[0] == 7.0  # W_0 = 0
    steps = np.diff(x)
    assert abs(steps.mean() - drift) < 6 * sd / math.sqrt(n)
    assert abs(steps.std() - sd) < 6 * sd / math.sqrt(2 * n)


def test_geometric_walk_log_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(series_module, "BLOCK_ROWS", 4096)
    n, sd, drift = 30_000, 0.01, -0.0005
    x = values(SeriesColumn("x", base=100.0, walk=Walk("geometric", sd, drift)), hourly(n, Entity("s", 2)))
    prices = x.to_numpy().reshape(n, 2)
    assert prices[0].tolist() == [100.0, 100.0]
    returns = np.diff(np.log(prices), axis=0).ravel()
    assert abs(returns.mean() - drift) < 6 * sd / math.sqrt(returns.size)
    assert abs(returns.std() - sd) < 6 * sd / math.sqrt(2 * returns.size)


# --------------------------------------------------------------------------- anomalies


def test_spike_rate_and_size() -> None:
    n, rate = 200_000, 0.01
    col = SeriesColumn("x", base=1.0, anomalies=(Anomalies("spike", rate, 6.0),))
    x = values(col, hourly(n // 4, Entity("s", 4)), seed=8).to_numpy()
    hits = x[x != 1.0]
    assert abs(hits.size - n * rate) < 6 * math.sqrt(n * rate * (1 - rate))
    assert set(hits.tolist()) == {-5.0, 7.0}  # +-6 x 1 (no noise)
    assert abs((hits > 0).mean() - 0.5) < 6 * 0.5 / math.sqrt(hits.size)


def test_spikes_scale_with_the_noise_sd() -> None:
    col = SeriesColumn("x", noise=Noise(sd=2.0), anomalies=(Anomalies("spike", 0.05, 10.0),))
    x = values(col, hourly(20_000), seed=9).to_numpy()
    big = np.abs(x) > 12.0  # a 6-sd noise draw never gets there; a spike of 20 +- noise does
    assert abs(big.mean() - 0.05) < 6 * math.sqrt(0.05 * 0.95 / 20_000)


def test_level_shifts_accumulate_and_dropouts_are_null() -> None:
    n, rate = 50_000, 0.002
    shifts = (Anomalies("level_shift", rate, 3.0),)
    level = values(SeriesColumn("x", anomalies=shifts), hourly(n), seed=10).to_numpy()
    jumps = np.diff(np.concatenate([[0.0], level]))
    jumps = jumps[jumps != 0.0]
    assert set(jumps.tolist()) == {-3.0, 3.0}  # whole multiples of 3: the sums are exact
    assert abs(jumps.size - n * rate) < 6 * math.sqrt(n * rate)
    col = SeriesColumn("x", anomalies=(*shifts, Anomalies("dropout", 0.01)))
    x = values(col, hourly(n), seed=10)
    nulls = x.is_null().to_numpy()
    assert abs(nulls.mean() - 0.01) < 6 * math.sqrt(0.01 * 0.99 / n)
    assert np.array_equal(x.to_numpy()[~nulls], level[~nulls])  # dropouts disturb nothing else


# --------------------------------------------------------------------------- vary


def test_vary_gives_each_entity_its_own_base() -> None:
    n = 2000
    col = SeriesColumn("x", base=100.0, vary=(("base", 0.1),))
    x = values(col, hourly(3, Entity("s", n)), seed=11).to_numpy().reshape(3, n)
    assert np.array_equal(x[0], x[2])  # constant in time, different per entity
    factors = x[0] / 100.0
    assert factors.size == np.unique(factors).size
    assert abs(factors.mean() - 1.0) < 6 * 0.1 / math.sqrt(n)
    assert abs(factors.std() - 0.1) < 6 * 0.1 / math.sqrt(2 * n)


def test_vary_noise_and_amplitude_per_entity() -> None:
    col = SeriesColumn("x", seasonality=(Seasonality(DAY, 1.0, shape="square"),), vary=(("amplitude", 0.5),))
    x = values(col, hourly(24, Entity("s", 5))).to_numpy().reshape(24, 5)
    assert np.array_equal(x[0], -x[12]) and np.unique(x[0]).size == 5
    noisy = SeriesColumn("x", noise=Noise(sd=1.0), vary=(("noise", 0.5),))
    y = values(noisy, hourly(200, Entity("s", 200)), seed=12).to_numpy().reshape(200, 200)
    # per-entity sds spread like |1 + 0.5 Z| (within-entity sampling error ~0.05)
    assert abs(y.std(axis=0).std() - 0.5) < 0.15


def test_an_empty_chunk_and_a_constant_series() -> None:
    col = SeriesColumn(
        "x", noise=Noise(sd=1.0, ar1=0.5), walk=Walk(), anomalies=(Anomalies("level_shift", 0.1, 1.0),)
    )
    assert values(col, hourly(0)).len() == 0
    assert values(col, hourly(10), start=4, stop=4).len() == 0
    daily = TimeIndex(start=START, periods=4, step_days=1, timezone="America/New_York")
    assert values(SeriesColumn("c", base=3.0), daily).to_list() == [3.0] * 4
