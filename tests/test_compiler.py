"""The compiler pipeline: resolve (graph, cycles, references), lower (meaning of values)."""

from __future__ import annotations

import textwrap

import pytest

from runtime import plan as ir
from synthc.compiler import check_source, compile_source
from synthc.errors import SpecError
from synthc.timeparse import absolute_us


def spec(body: str) -> str:
    return "synthc: 1\n" + textwrap.dedent(body)


def codes(text: str) -> list[tuple[str, int, int]]:
    return [
        (d.code, d.span.line, d.span.col) if d.span else (d.code, 0, 0) for d in check_source(text, "t.yaml")
    ]


def test_evaluation_order_follows_references_and_keeps_declared_output_order() -> None:
    plan = compile_source(
        spec(
            """
            columns:
              total: {type: expression, expr: "price * qty"}
              label: {type: template, template: "{{ total }} for {{ who }}"}
              price: {type: float, min: 1, max: 2}
              qty:   {type: int, min: 1, max: 3}
              who:   {type: person, field: first_name}
            """
        )
    )
    order = [c.name for c in plan.columns]
    assert order.index("total") > order.index("price")
    assert order.index("total") > order.index("qty")
    assert order.index("label") > order.index("total")
    assert plan.column_order == ("total", "label", "price", "qty", "who")
    total = plan.column("total")
    assert isinstance(total, ir.ExpressionColumn) and total.inputs == ("price", "qty")
    label = plan.column("label")
    assert isinstance(label, ir.TemplateColumn) and label.inputs == ("total", "who")


def test_cycle_is_reported_on_every_member_with_the_whole_loop() -> None:
    diags = check_source(
        spec(
            """
            columns:
              a: {type: expression, expr: "b + 1"}
              b: {type: expression, expr: "c + 1"}
              c: {type: expression, expr: "a + 1"}
              d: {type: int, min: 0, max: 1}
            """
        ),
        "t.yaml",
    )
    assert [d.code for d in diags] == ["cycle", "cycle", "cycle"]
    assert [d.span.line for d in diags if d.span] == [4, 5, 6]
    assert "`a` → `b` → `c` → `a`" in diags[0].message


def test_self_reference_is_a_cycle() -> None:
    assert [c for c, _, _ in codes(spec("columns:\n  a: {type: expression, expr: 'a + 1'}\n"))] == ["cycle"]


def test_unknown_reference_in_template_points_inside_the_template_and_suggests() -> None:
    text = spec(
        """
        columns:
          product: {type: category, values: [a, b]}
          subject:
            type: template
            template: |
              Hello
              about {{ prodct }}
        """
    )
    diags = check_source(text, "t.yaml")
    assert len(diags) == 1
    d = diags[0]
    assert d.code == "unknown-reference"
    assert d.span is not None and (d.span.line, d.span.col) == (9, 16)
    assert d.hint == "did you mean `product`?"


def test_unknown_reference_in_expression_points_at_the_name() -> None:
    text = spec('columns:\n  x: {type: int, min: 0, max: 1}\n  y: {type: expression, expr: "x + zz"}\n')
    assert codes(text) == [("unknown-reference", 4, 36)]


def test_template_syntax_error_points_at_the_line_inside_the_template() -> None:
    text = spec(
        """
        columns:
          a:
            type: template
            template: |
              line one
              {% if x %} never closed
        """
    )
    (d,) = check_source(text, "t.yaml")
    assert d.code == "template-syntax"
    assert d.span is not None and d.span.line in (7, 8)


def test_vars_are_visible_to_templates() -> None:
    plan = compile_source(
        spec("vars: {company: Acme}\ncolumns:\n  s: {type: template, template: '{{ company }}'}\n")
    )
    assert plan.vars == '{"company":"Acme"}'


def test_distribution_parameters_are_checked() -> None:
    text = spec(
        """
        columns:
          a: {type: float, dist: normal, mean: 0, sd: -1}
          b: {type: int, dist: poisson, lam: 2, sd: 3}
          c: {type: float, dist: gamma, shape: 2}
          d: {type: int, min: 5, max: 1}
          e: {type: int}
        """
    )
    found = [c for c, _, _ in codes(text)]
    assert found.count("bad-distribution") == 4
    assert "min-greater-than-max" in found


def test_weights_negative_and_all_zero() -> None:
    text = spec(
        "columns:\n  a: {type: category, values: {x: -1, y: 2}}\n  b: {type: category, values: {x: 0, y: 0}}\n"
    )
    assert [c for c, _, _ in codes(text)] == ["out-of-range", "bad-weights"]


def test_weights_are_normalized() -> None:
    plan = compile_source(spec("columns:\n  a: {type: category, values: {x: 3, y: 1}}\n"))
    col = plan.column("a")
    assert isinstance(col, ir.CategoryColumn)
    assert col.choices[0].weights == (0.75, 0.25)


def test_conditional_category_maps_parent_values() -> None:
    plan = compile_source(
        spec(
            """
            columns:
              vip: {type: bool, p: 0.1}
              tier: {type: category, given: vip, values: {"true": [gold], "false": {silver: 1, bronze: 3}}}
            """
        )
    )
    tier = plan.column("tier")
    assert isinstance(tier, ir.CategoryColumn) and tier.given == "vip"
    assert [c.when for c in tier.choices] == [True, False]


def test_conditional_category_must_cover_parent() -> None:
    text = spec(
        """
        columns:
          product: {type: category, values: [laptop, phone]}
          plan: {type: category, given: product, values: {laptop: [pro], tablet: [basic]}}
        """
    )
    assert sorted(c for c, _, _ in codes(text)) == ["given-mismatch", "given-mismatch"]


def test_relative_dates_need_as_of_and_resolve_against_it() -> None:
    # one diagnostic for the one mistake, at the first relative date
    text = spec(
        "columns:\n  t: {type: datetime, start: -1d, end: 0d}\n  u: {type: date, start: -2d, end: 0d}\n"
    )
    assert codes(text) == [("missing-key", 3, 30)]
    plan = compile_source(
        spec("as_of: 2025-01-01T00:00:00Z\ncolumns:\n  t: {type: datetime, start: -1d, end: 0d}\n")
    )
    col = plan.column("t")
    assert isinstance(col, ir.TimeColumn)
    assert col.end == absolute_us("2025-01-01") and col.start == col.end - 86_400_000_000


def test_bad_datetime_and_order() -> None:
    text = spec(
        "columns:\n  t: {type: date, start: 2024-13-01, end: 2024-01-01}\n  u: {type: date, start: 2024-02-01, end: 2024-01-01}\n"
    )
    assert [c for c, _, _ in codes(text)] == ["bad-datetime", "min-greater-than-max"]


def test_sequence_format_must_format_an_integer() -> None:
    assert [c for c, _, _ in codes(spec("columns:\n  n: {type: sequence, format: 'ORD-{:06s}'}\n"))] == [
        "bad-format"
    ]
    assert [c for c, _, _ in codes(spec("columns:\n  n: {type: sequence, format: '{0.__class__}'}\n"))] == [
        "bad-format"
    ]
    compile_source(spec("columns:\n  n: {type: sequence, format: 'ORD-{:06d}'}\n"))


def test_person_identity_must_share_a_locale() -> None:
    text = spec(
        "columns:\n  a: {type: person, field: name, locale: de_DE}\n  b: {type: person, field: email, locale: fr_FR}\n"
    )
    assert [c for c, _, _ in codes(text)] == ["person-group-conflict"]


def test_steps_see_the_columns_of_their_point_in_the_pipeline() -> None:
    text = spec(
        """
        columns:
          a: {type: int, min: 0, max: 9}
          b: {type: int, min: 0, max: 9}
        steps:
          - rename: {a: alpha}
          - filter: "a > 1"
          - drop: [b]
          - sort: b
        """
    )
    found = codes(text)
    assert [c for c, _, _ in found] == ["unknown-reference", "unknown-reference"]
    assert [line for _, line, _ in found] == [8, 10]


def test_nondeterministic_functions_are_refused() -> None:
    text = spec("columns:\n  a: {type: expression, expr: 'now()'}\n")
    assert [c for c, _, _ in codes(text)] == ["expression-error"]


def test_expression_type_errors_come_from_polars() -> None:
    text = spec("columns:\n  a: {type: int, min: 0, max: 1}\n  b: {type: expression, expr: 'a +* 2'}\n")
    assert [c for c, _, _ in codes(text)] == ["expression-syntax"]
    text = spec("columns:\n  a: {type: int, min: 0, max: 1}\nsteps:\n  - filter: 'a + 1'\n")
    assert [c for c, _, _ in codes(text)] == ["expression-error"]


def test_too_many_rows_and_unknown_output_format() -> None:
    text = spec("rows: 3000000000\noutput: {path: out.xlsx}\ncolumns:\n  a: {type: uuid}\n")
    assert sorted(c for c, _, _ in codes(text)) == ["too-many-rows", "unknown-format"]


def test_compile_raises_spec_error_with_all_diagnostics() -> None:
    with pytest.raises(SpecError) as info:
        compile_source(
            spec("columns:\n  a: {type: int, min: 2, max: 1}\n  b: {type: expression, expr: 'zz'}\n")
        )
    assert len(info.value.diagnostics) == 2


def test_plan_hash_ignores_output_and_name_but_not_rows() -> None:
    base = compile_source(spec("name: a\ncolumns:\n  a: {type: uuid}\n"))
    renamed = compile_source(spec("name: b\noutput: {path: x.csv}\ncolumns:\n  a: {type: uuid}\n"))
    more = compile_source(spec("rows: 5\ncolumns:\n  a: {type: uuid}\n"))
    assert ir.plan_hash(base) == ir.plan_hash(renamed)
    assert ir.plan_hash(base) != ir.plan_hash(more)
    assert ir.plan_from_json(ir.plan_to_json(base)) == base


def test_int_bounds_stay_exact_integers() -> None:
    plan = compile_source(
        spec(
            "columns:\n  a: {type: int, min: 9223372036854775000, max: 9223372036854775807}\n  f: {type: float, min: 1, max: 2}\n"
        )
    )
    a, f = plan.column("a"), plan.column("f")
    assert isinstance(a, ir.NumberColumn) and isinstance(f, ir.NumberColumn)
    assert (a.min, a.max) == (9223372036854775000, 2**63 - 1)
    assert isinstance(a.min, int) and isinstance(f.min, float)
    assert ir.plan_from_json(ir.plan_to_json(plan)) == plan


def test_scalar_vars_are_written_into_expressions_and_filters() -> None:
    plan = compile_source(
        spec(
            """
            vars: {vat: 0.19, label: "O'Neil", n: -2, items: [1], net: 5}
            columns:
              net: {type: int, min: 10, max: 20}
              gross: {type: expression, expr: "net * (1 + vat) + n"}
              who: {type: expression, expr: "label"}
            steps:
              - filter: "gross > 12 * (1 + vat)"
            """
        )
    )
    gross, who = plan.column("gross"), plan.column("who")
    assert isinstance(gross, ir.ExpressionColumn) and isinstance(who, ir.ExpressionColumn)
    # `net` is a column and shadows the var of the same name
    assert gross.expr == "net * (1 + CAST(0.19 AS DOUBLE)) + (-2)" and gross.inputs == ("net",)
    assert who.expr == "'O''Neil'"
    assert plan.steps == (ir.Filter("gross > 12 * (1 + CAST(0.19 AS DOUBLE))"),)


def test_a_list_var_is_not_usable_in_an_expression() -> None:
    text = spec("vars: {items: [1, 2]}\ncolumns:\n  a: {type: expression, expr: 'items'}\n")
    assert [c for c, _, _ in codes(text)] == ["unknown-reference"]


def test_positions_inside_folded_block_scalars() -> None:
    text = spec(
        """
        columns:
          n: {type: int, min: 0, max: 20}
          big:
            type: expression
            expr: >-
              CASE WHEN n > 10
              THEN 'big' ELSE nn END
          t:
            type: template
            template: >
              Hello

              {{ n }} and {{ mm }}
        """
    )
    assert codes(text) == [("unknown-reference", 9, 23), ("unknown-reference", 15, 22)]
