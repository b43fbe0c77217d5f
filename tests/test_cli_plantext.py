"""The text dump of a plan (``synthc plan``): exact, deterministic, complete."""

from __future__ import annotations

from runtime.plan import (
    BoolColumn,
    CategoryColumn,
    Choice,
    Dedupe,
    Dist,
    ExpressionColumn,
    Filter,
    Limit,
    NumberColumn,
    Output,
    PersonColumn,
    Plan,
    Rename,
    SequenceColumn,
    Shuffle,
    Sort,
    TemplateColumn,
    TimeColumn,
    UUIDColumn,
    plan_from_json,
    plan_hash,
    plan_to_json,
)
from synthc.plantext import format_day, number, render_plan, scalar
from synthc.timeparse import format_us as format_instant

AS_OF = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z in microseconds


def small_plan() -> Plan:
    return Plan(
        name="orders",
        seed=42,
        rows=1000,
        as_of=AS_OF,
        columns=(
            UUIDColumn("id"),
            SequenceColumn("n", start=1, step=2, format="ORD-{:06d}"),
            NumberColumn("price", "float", Dist("lognormal", (("mu", 3.5), ("sigma", 0.4))), min=1.0, round=2),
            CategoryColumn("product", (Choice(None, ("laptop", "phone"), (0.75, 0.25)),)),
            CategoryColumn(
                "tier",
                (Choice("laptop", ("pro", "basic"), (0.5, 0.5)), Choice("phone", ("basic",), (1.0,))),
                given="product",
            ),
            BoolColumn("express", p=0.2, nulls=0.05),
            TimeColumn("opened_at", "datetime", AS_OF - 86_400_000_000, AS_OF),
            TimeColumn("day", "date", 19_723, 20_088),
            PersonColumn("customer", "name"),
            ExpressionColumn("total", "price * 2", ("price",)),
            TemplateColumn("subject", "{{ product }} #{{ n }}", ("n", "product")),
        ),
        column_order=("id", "n", "product", "tier", "price", "express", "opened_at", "day", "customer",
                      "total", "subject"),
        steps=(Filter("total > 10"), Dedupe(("subject",)), Rename((("n", "number"),)),
               Sort(("opened_at",), descending=True), Shuffle(), Limit(10)),
        vars='{"company":"Acme"}',
        output=Output("orders.parquet", "parquet"),
        spec_hash="abc123",
    )  # fmt: skip


EXPECTED = """\
plan orders
  hash    {hash}
  spec    abc123
  seed    42
  rows    1000
  as_of   2025-01-01T00:00:00Z
  engine  1 (plan format 1)
  vars    {{"company":"Acme"}}
columns (evaluation order)
   1  id         uuid
   2  n          sequence start=1 step=2 format="ORD-{{:06d}}"
   3  price      float  lognormal(mu=3.5, sigma=0.4) min=1 round=2
   4  product    category laptop 0.75, phone 0.25
   5  tier       category given product: laptop -> pro 0.5, basic 0.5; phone -> basic 1  <- product
   6  express    bool p=0.2  nulls=0.05
   7  opened_at  datetime 2024-12-31T00:00:00Z .. 2025-01-01T00:00:00Z
   8  day        date 2024-01-01 .. 2024-12-31
   9  customer   person name locale=en_US group=person
  10  total      expression price * 2  <- price
  11  subject    template "{{{{ product }}}} #{{{{ n }}}}"  <- n, product
steps
  1  filter   total > 10
  2  dedupe   subject
  3  rename   n -> number
  4  sort     opened_at descending
  5  shuffle  (seeded by the plan's seed)
  6  limit    10
output
  orders.parquet (parquet)
  columns  id, n, product, tier, price, express, opened_at, day, customer, total, subject
"""


def test_render_plan_is_the_documented_layout() -> None:
    plan = small_plan()
    assert render_plan(plan) == EXPECTED.format(hash=plan_hash(plan))


def test_render_plan_is_deterministic_and_survives_a_json_round_trip() -> None:
    plan = small_plan()
    assert render_plan(plan) == render_plan(plan_from_json(plan_to_json(plan)))


def test_render_plan_changes_with_the_seed_and_says_when_there_is_no_output() -> None:
    plan = small_plan()
    other = plan.with_overrides(seed=7)
    assert render_plan(plan) != render_plan(other)
    assert "seed    7" in render_plan(other)
    bare = Plan(name="", seed=0, rows=0, as_of=0, columns=(UUIDColumn("id"),), column_order=("id",))
    text = render_plan(bare)
    assert text.startswith("plan (unnamed)\n")
    assert "steps" not in text
    assert "(no path in the spec: pass --out)" in text
    assert "as_of   1970-01-01T00:00:00Z" in text


def test_number_and_scalar_forms() -> None:
    assert number(1.0) == "1"
    assert number(0.25) == "0.25"
    assert number(3) == "3"
    assert number(1e-06) == "1e-06"
    assert scalar("laptop") == "laptop"
    assert scalar("a, b") == '"a, b"'
    assert scalar("") == '""'
    assert scalar(True) == "true"
    assert scalar(2.5) == "2.5"


def test_time_formats() -> None:
    assert format_instant(AS_OF + 500_000) == "2025-01-01T00:00:00.500000Z"
    assert format_instant(-1) == "1969-12-31T23:59:59.999999Z"
    assert format_day(0) == "1970-01-01"
    assert format_day(-1) == "1969-12-31"
