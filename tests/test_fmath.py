"""The samplers' own elementary functions: accurate to about an ulp, and made only of
correctly rounded IEEE operations (so their bits cannot depend on the machine)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import fmath

POSITIVE = st.floats(min_value=5e-324, max_value=1.7e308, allow_nan=False, allow_infinity=False)


def ulps(got: float, want: float) -> float:
    return abs(got - want) / math.ulp(want) if want else abs(got)


@settings(max_examples=200, deadline=None)
@given(st.lists(POSITIVE, min_size=1, max_size=50))
def test_log_within_one_ulp(xs: list[float]) -> None:
    got = fmath.log(np.array(xs))
    for x, g in zip(xs, got, strict=True):
        assert ulps(float(g), math.log(x)) <= 1.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=-708.0, max_value=709.0), min_size=1, max_size=50))
def test_exp_within_one_ulp(xs: list[float]) -> None:
    got = fmath.exp(np.array(xs))
    for x, g in zip(xs, got, strict=True):
        assert ulps(float(g), math.exp(x)) <= 1.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0, exclude_max=True), min_size=1, max_size=50))
def test_cos_turns_matches_cos_of_two_pi_u(us: list[float]) -> None:
    got = fmath.cos_turns(np.array(us))
    for u, g in zip(us, got, strict=True):
        assert abs(float(g) - math.cos(2.0 * math.pi * u)) < 2e-15


def test_special_values() -> None:
    assert fmath.log(np.array([0.0]))[0] == -math.inf
    assert math.isnan(fmath.log(np.array([-1.0]))[0])
    assert fmath.log(np.array([math.inf]))[0] == math.inf
    assert fmath.log(np.array([1.0]))[0] == 0.0
    assert fmath.exp(np.array([0.0]))[0] == 1.0
    assert fmath.exp(np.array([1000.0]))[0] == math.inf
    assert fmath.exp(np.array([-1000.0]))[0] == 0.0
    assert math.isnan(fmath.exp(np.array([math.nan]))[0])
    assert list(fmath.cos_turns(np.array([0.0, 0.5]))) == [1.0, -1.0]
    assert abs(fmath.cos_turns(np.array([0.25]))[0]) < 1e-16


def test_log1p_keeps_precision_for_tiny_arguments() -> None:
    for x in (1e-18, 1e-12, -1e-9, 0.25, -0.5):
        assert ulps(float(fmath.log1p(np.array([x]))[0]), math.log1p(x)) <= 2.0


def test_lgamma_of_whole_numbers() -> None:
    m = np.arange(1, 3000, dtype=np.float64)
    got = fmath.lgamma_int(m)
    for value, g in zip(m, got, strict=True):
        assert abs(float(g) - math.lgamma(value)) <= 1e-15 * max(1.0, math.lgamma(value))


def test_golden_bits() -> None:
    """Pinned results: a change here changes data and needs an ENGINE_VERSION bump."""
    logs = fmath.log(np.array([0.1, 0.5, 0.999, 3.0, 1e-10, 12345.678]))
    assert [float(v).hex() for v in logs] == [
        "-0x1.26bb1bbb55515p+1", "-0x1.62e42fefa39efp-1", "-0x1.064670d979b73p-10",
        "0x1.193ea7aad030ap+0", "-0x1.7069e2aa2aa5bp+4", "0x1.2d79559791e31p+3",
    ]  # fmt: skip
    exps = fmath.exp(np.array([-3.5, 0.1, 2.0, 300.25]))
    assert [float(v).hex() for v in exps] == [
        "0x1.eec1018e4ff66p-6", "0x1.1aec7b35a00d4p+0", "0x1.d8e64b8d4ddaep+2", "0x1.1fda3eaeb3d0ep+433",
    ]  # fmt: skip
    cosines = fmath.cos_turns(np.array([0.1, 0.3, 0.62, 0.9]))
    assert [float(v).hex() for v in cosines] == [
        "0x1.9e3779b97f4a8p-1", "-0x1.3c6ef372fe94ep-2", "-0x1.753b603d2b816p-1", "0x1.9e3779b97f4a8p-1",
    ]  # fmt: skip
