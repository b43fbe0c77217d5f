"""Property: on any generated spec, compiling raises nothing but SpecError, and a plan
that compiles round-trips through JSON with a stable hash."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime import plan as ir
from synthc.compiler import check_source, compile_source
from synthc.errors import SpecError

NAMES = st.sampled_from(["a", "b", "price", "qty", "x_1", "__bad", "9x", "n"])
TYPES = st.sampled_from(
    ["uuid", "sequence", "int", "float", "bool", "category", "datetime", "date", "person",
     "expression", "template", "integer", "llm"]
)  # fmt: skip
KEYS = st.sampled_from(
    ["type", "dist", "min", "max", "mean", "sd", "mu", "sigma", "scale", "lam", "n", "p", "shape",
     "a", "b", "round", "values", "given", "start", "end", "field", "locale", "identity", "expr",
     "template", "format", "step", "nulls", "sigmaa"]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**10),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(
        ["normal", "poisson", "zipf", "uniform", "beta", "a", "b", "price * qty", "{{ a }}", "{% if %}",
         "-90d", "0d", "2024-01-01", "2024-13-40", "name", "email", "en_US", "xx_XX", "ORD-{:06d}", "{",
         "a + ", "now()", "yes"]
    ),
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "x", "1"]), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def columns(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in draw(st.lists(NAMES, max_size=4, unique=True)):
        col: dict[str, Any] = {"type": draw(TYPES)}
        for key in draw(st.lists(KEYS, max_size=4, unique=True)):
            col[key] = draw(VALUES)
        out[name] = col
    return out


STEPS = st.lists(
    st.dictionaries(
        st.sampled_from(
            ["filter", "dedupe", "drop", "select", "rename", "sort", "shuffle", "limit", "explode"]
        ),
        VALUES,
        min_size=1,
        max_size=1,
    ),
    max_size=3,
)


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"synthc": draw(st.sampled_from([1, 1, 1, 2, "1"]))}
    spec["columns"] = draw(columns())
    for key, strategy in (
        ("rows", st.integers(-1, 3 * 10**9)),
        ("seed", st.integers(-1, 2**64)),
        ("as_of", st.sampled_from(["2025-01-01", "2025-01-01T00:00:00Z", "nope"])),
        ("vars", VALUES),
        ("steps", STEPS),
        ("output", st.fixed_dictionaries({"path": st.sampled_from(["o.parquet", "o.xlsx", "o.csv"])})),
    ):
        if draw(st.booleans()):
            spec[key] = draw(strategy)
    return spec


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_compile_raises_only_spec_errors(spec: dict[str, Any]) -> None:
    text = yaml.safe_dump(spec, sort_keys=False)
    diags = check_source(text, "gen.yaml")
    try:
        plan = compile_source(text, "gen.yaml")
    except SpecError as exc:
        assert exc.diagnostics == diags and diags
        return
    assert diags == []
    assert ir.plan_from_json(ir.plan_to_json(plan)) == plan
    assert ir.plan_hash(ir.plan_from_json(ir.plan_to_json(plan))) == ir.plan_hash(plan)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_diagnostics_not_tracebacks(text: str) -> None:
    try:
        compile_source(text, "gen.yaml")
    except SpecError as exc:
        assert exc.diagnostics
