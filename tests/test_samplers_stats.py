"""Statistical sanity of the samplers: fixed seeds, tolerances far wider than the
sampling error (many standard errors), so these cannot flake; they catch a wrong
transform, not a slightly unlucky draw."""

from __future__ import annotations

import math

import polars as pl
import pytest

from runtime.plan import BoolColumn, CategoryColumn, Choice, Column, Dist, NumberColumn, UUIDColumn
from runtime.samplers import Chunk, sample


def draw(col: Column, n: int) -> pl.Series:
    return sample(col, Chunk(12345, 0, n, pl.DataFrame(), {}))


def number(dtype: str, dist: str, **params: float) -> NumberColumn:
    return NumberColumn("x", dtype, Dist(dist, tuple(sorted(params.items()))))  # type: ignore[arg-type]


def test_normal_mean_and_sd() -> None:
    values = draw(number("float", "normal", mean=3.0, sd=2.0), 200_000)
    assert values.mean() == pytest.approx(3.0, abs=0.03)  # se 0.0045
    assert values.std() == pytest.approx(2.0, abs=0.03)
    assert ((values - 3.0).abs() < 2.0).mean() == pytest.approx(0.6827, abs=0.01)


@pytest.mark.parametrize(
    "dtype, dist, params, mean, var",
    [
        ("float", "uniform", {"min": 2.0, "max": 4.0}, 3.0, 1 / 3),
        ("int", "uniform", {"min": 1.0, "max": 6.0}, 3.5, 35 / 12),
        (
            "float",
            "lognormal",
            {"mu": 0.5, "sigma": 0.5},
            math.exp(0.625),
            (math.exp(0.25) - 1) * math.exp(1.25),
        ),
        ("float", "exponential", {"scale": 2.0}, 2.0, 4.0),
        ("int", "poisson", {"lam": 3.0}, 3.0, 3.0),
        ("int", "poisson", {"lam": 0.05}, 0.05, 0.05),
        ("int", "poisson", {"lam": 10_000.0}, 10_000.0, 10_000.0),
        ("int", "poisson", {"lam": 1e9}, 1e9, 1e9),
        ("int", "binomial", {"n": 30.0, "p": 0.2}, 6.0, 4.8),
        ("int", "binomial", {"n": 10**10, "p": 0.5}, 5e9, 2.5e9),
        ("float", "gamma", {"shape": 2.0, "scale": 3.0}, 6.0, 18.0),
        ("float", "gamma", {"shape": 0.5, "scale": 1.0}, 0.5, 0.5),
        ("float", "beta", {"a": 2.0, "b": 3.0}, 0.4, 0.04),
        ("float", "beta", {"a": 0.5, "b": 0.5}, 0.5, 0.125),
    ],
)
def test_mean_and_variance(dtype: str, dist: str, params: dict[str, float], mean: float, var: float) -> None:
    bounds = {k: params.pop(k) for k in ("min", "max") if k in params}
    col = NumberColumn("x", dtype, Dist(dist, tuple(sorted(params.items()))), **bounds)  # type: ignore[arg-type]
    values = draw(col, 100_000)
    sd = math.sqrt(var)
    assert values.mean() == pytest.approx(mean, abs=8 * sd / math.sqrt(100_000))
    assert values.var() == pytest.approx(var, rel=0.06)


def test_zipf_frequencies() -> None:
    values = draw(number("int", "zipf", a=2.0), 100_000)
    zeta2 = math.pi**2 / 6
    for k in (1, 2, 3):
        assert (values == k).mean() == pytest.approx(k**-2 / zeta2, abs=0.01)
    assert values.min() == 1
    # the tail beyond the exact table: P(X > 65536) ~ 1 / (zeta(2) * 65536.5)
    assert (draw(number("int", "zipf", a=1.05), 100_000) > 65_536).mean() > 0.3


def test_gamma_fallback_is_practically_never_needed() -> None:
    # all eight Marsaglia-Tsang candidates rejected would leave candidate 0's proposal;
    # with acceptance > 0.95 that is < 1e-10 per row, so the law is the exact one
    values = draw(number("float", "gamma", shape=1.0, scale=1.0), 100_000)  # Exp(1)
    assert (values > 1.0).mean() == pytest.approx(math.exp(-1), abs=0.01)


def test_category_frequencies_and_bool_p() -> None:
    col = CategoryColumn("c", (Choice(None, ("a", "b", "c", "z"), (0.6, 0.3, 0.1, 0.0)),))
    counts = draw(col, 100_000).value_counts(normalize=True)
    freq = dict(zip(counts["c"].to_list(), counts["proportion"].to_list(), strict=True))
    assert set(freq) == {"a", "b", "c"}
    assert freq["a"] == pytest.approx(0.6, abs=0.01) and freq["c"] == pytest.approx(0.1, abs=0.01)
    assert draw(BoolColumn("b", 0.2), 100_000).mean() == pytest.approx(0.2, abs=0.01)
    assert draw(BoolColumn("b", 0.0), 1000).sum() == 0
    assert draw(BoolColumn("b", 1.0), 1000).sum() == 1000


def test_nulls_fraction() -> None:
    values = draw(UUIDColumn("u", nulls=0.15), 100_000)
    assert values.null_count() / 100_000 == pytest.approx(0.15, abs=0.01)
    assert draw(UUIDColumn("u", nulls=1.0), 100).null_count() == 100


def test_uuid_bits_are_uniform() -> None:
    values = draw(UUIDColumn("u"), 50_000)
    assert values.n_unique() == 50_000
    assert values.str.slice(14, 1).unique().to_list() == ["4"]
    assert sorted(values.str.slice(19, 1).unique().to_list()) == ["8", "9", "a", "b"]
    # each free hex digit position is close to uniform over 16 symbols
    first = values.str.slice(0, 1).value_counts(normalize=True)["proportion"]
    assert first.len() == 16 and (first - 1 / 16).abs().max() < 0.01
