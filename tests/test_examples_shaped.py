"""The time-series, event and seed-data examples run through the real CLI and give the
data their comments promise (the whole datasets, not a prefix)."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from synthc.cli import run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def generate(name: str, tmp_path: Path, *args: str) -> pl.DataFrame:
    out = tmp_path / f"{Path(name).stem}.parquet"
    assert run(["run", str(EXAMPLES / name), "--out", str(out), "--quiet", *args]) == 0
    return pl.read_parquet(out)


def test_iot_sensors(tmp_path: Path) -> None:
    df = generate("iot_sensors.yaml", tmp_path)
    assert df.height == 50 * 31 * 1440
    assert df.columns == ["timestamp", "sensor_id", "temperature_c", "humidity_pct", "overheating"]
    assert str(df.schema["timestamp"]) == "Datetime(time_unit='us', time_zone='Europe/Berlin')"
    assert df["timestamp"].is_sorted()
    assert df["sensor_id"].n_unique() == 50 and df["sensor_id"].head(2).to_list() == ["S-001", "S-002"]
    assert df["timestamp"].dt.minute().head(50).n_unique() == 1  # 50 sensors per minute
    # dropouts: about 0.02% of readings are missing; spikes reach far above the daily range
    missing = df["temperature_c"].null_count() / df.height
    assert 0.0001 < missing < 0.0004
    assert df["temperature_c"].max() > 30
    assert df["humidity_pct"].min() >= 0 and df["humidity_pct"].max() <= 100
    # warmest mid-afternoon, local time: the hourly means peak between 13:00 and 17:00
    hourly = df.group_by(df["timestamp"].dt.hour().alias("h")).agg(pl.col("temperature_c").mean()).sort("h")
    assert 13 <= hourly.sort("temperature_c")["h"][-1] <= 17
    # each sensor has its own level
    per_sensor = df.group_by("sensor_id").agg(pl.col("temperature_c").median())["temperature_c"]
    assert per_sensor.std() > 0.5


def test_stock_prices(tmp_path: Path) -> None:
    df = generate("stock_prices.yaml", tmp_path)
    assert df.columns == ["timestamp", "ticker", "open", "high", "low", "close", "volume"]
    assert df["timestamp"].dt.weekday().max() <= 5  # no weekends
    assert df.height == 5 * 260  # the weekdays of 2023
    assert (df["low"] <= df[["open", "close"]].min_horizontal()).all()
    assert (df["high"] >= df[["open", "close"]].max_horizontal()).all()
    assert (df["close"] > 0).all() and (df["volume"] > 0).all()
    # a geometric walk: daily log returns have about the declared sd, per ticker
    returns = df.sort("ticker", "timestamp", maintain_order=True).with_columns(
        pl.col("close").log().diff().over("ticker").alias("r")
    )
    sd = returns.group_by("ticker").agg(pl.col("r").std())["r"]
    assert ((sd > 0.005) & (sd < 0.05)).all()


def test_clickstream(tmp_path: Path) -> None:
    df = generate("clickstream.yaml", tmp_path)
    assert 250_000 < df.height < 350_000  # 0.5/s for a week
    assert df["timestamp"].is_sorted()
    pages = set(pl.read_csv(EXAMPLES / "data" / "pages.csv")["path"])
    assert set(df["page"].unique()) <= pages
    assert df["page"].value_counts(sort=True)["page"][0] == "/"  # the most popular page
    local = df["timestamp"].dt.hour()
    night, afternoon = (local < 5).mean(), ((local >= 13) & (local < 18)).mean()
    assert afternoon > 2 * night  # type: ignore[operator]
    weekend = (df["timestamp"].dt.weekday() >= 6).mean()
    assert weekend < 2 / 7  # type: ignore[operator]
    # sessions: the sequence restarts at 1 exactly where a session starts
    starts = df.filter(pl.col("page_in_session") == 1)
    assert starts["session_id"].n_unique() == df["session_id"].n_unique()
    assert df["session_id"].str.starts_with(df["visitor_id"] + "-").all()
    gaps = df.with_columns(pl.col("timestamp").diff().over("visitor_id").alias("gap"))
    assert (gaps.filter(pl.col("page_in_session") > 1)["gap"].dt.total_minutes() <= 30).all()


def test_payments_fraud(tmp_path: Path) -> None:
    df = generate("payments_fraud.yaml", tmp_path)
    expected = 20 * 60 * 24 * 7
    assert abs(df.height - expected) < 6 * math.sqrt(expected)
    assert "hour" not in df.columns and "draw" not in df.columns
    assert df["card_id"].n_unique() > 4900
    rate = df["is_fraud"].mean()
    assert rate is not None and 0.005 < rate < 0.03  # type: ignore[operator]
    by_risk = df.group_by("risk").agg(pl.col("is_fraud").mean()).sort("risk")
    assert by_risk["is_fraud"].is_sorted()  # more risk signals, more fraud
    merchants = set(pl.read_csv(EXAMPLES / "data" / "merchants.csv")["name"])
    assert set(df["merchant"].unique()) <= merchants


def test_plan_shows_how_many_rows(capsys: object) -> None:
    import pytest

    cap = capsys
    assert isinstance(cap, pytest.CaptureFixture)
    assert run(["plan", str(EXAMPLES / "iot_sensors.yaml")]) == 0
    assert "2,232,000  (44,640 timestamps x 50 entities)" in cap.readouterr().out
    assert run(["plan", str(EXAMPLES / "clickstream.yaml")]) == 0
    out = cap.readouterr().out
    # 0.5/s for 7 days, one of them 23 hours long (DST starts on 10 March in New York)
    assert "(events; 300,600 expected from the rate)" in out


def test_preview_shows_the_first_rows(capsys: object) -> None:
    import pytest

    cap = capsys
    assert isinstance(cap, pytest.CaptureFixture)
    assert run(["preview", str(EXAMPLES / "stock_prices.yaml"), "-n", "5"]) == 0
    out = cap.readouterr().out
    assert "ACME" in out and "HOOLI" in out and "2023-01-02" in out
