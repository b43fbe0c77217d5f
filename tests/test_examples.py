"""Every example in examples/ runs through the real CLI entry point and gives the data
its comments promise: row counts, columns, and the invariants that make it realistic."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import polars as pl
import pytest

from synthc.cli import run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCHEMA_LINE = "# yaml-language-server: $schema=../schema/synthc.schema.json"


def generate(name: str, tmp_path: Path, *args: str) -> pl.DataFrame:
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / f"{Path(name).stem}.parquet"
    cache = tmp_path / "cache.db"  # LLM answers: never the repository's .synthc/
    code = run(["run", str(EXAMPLES / name), "--out", str(out), "--quiet", "--cache", str(cache), *args])
    assert code == 0
    return pl.read_parquet(out)


def ascii_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower().replace("ß", "ss"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def email_matches_name(email: str, *names: str) -> bool:
    local = ascii_fold(email.split("@")[0])
    return any(
        part and ascii_fold(part).replace(" ", "")[:3] in local
        for name in names
        for part in re.split(r"[\s\-'.]+", name)
    )


def test_every_example_starts_with_the_schema_line() -> None:
    examples = sorted(EXAMPLES.glob("*.yaml"))
    assert {p.name for p in examples} >= {
        "quickstart.yaml", "ecommerce_orders.yaml", "saas_users.yaml", "payroll.yaml"
    }  # fmt: skip
    for path in examples:
        assert path.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_LINE, path.name


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_example_checks_clean(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["check", str(path)]) == 0
    assert "0 errors" in capsys.readouterr().out


def test_quickstart(tmp_path: Path) -> None:
    df = generate("quickstart.yaml", tmp_path)
    assert df.height == 1000
    assert df.columns == [
        "ticket_id", "customer", "email", "product", "priority", "minutes_to_reply",
        "opened_at", "escalated", "sla_breached", "subject", "summary",
    ]  # fmt: skip
    assert df["summary"].null_count() == 0 and (df["summary"].str.len_chars() > 10).all()
    # the offline fake model answers per request: identical prompts in different rows differ
    assert df["summary"].n_unique() > 9
    assert df["ticket_id"].str.contains(r"^T-\d{5}$").all()
    assert df["ticket_id"].n_unique() == 1000
    assert set(df["product"].unique()) == {"laptop", "phone", "tablet"}
    assert df["opened_at"].is_sorted()
    expected_sla = (df["minutes_to_reply"] > 120) | df["escalated"]
    assert (df["sla_breached"] == expected_sla).all()
    assert all(
        s == f"[Acme] {p.title()} ticket {t}"
        for s, p, t in zip(df["subject"], df["product"], df["ticket_id"], strict=True)
    )
    assert all(email_matches_name(e, n) for e, n in zip(df["email"], df["customer"], strict=True))


def test_quickstart_dates_stay_in_the_window(tmp_path: Path) -> None:
    df = generate("quickstart.yaml", tmp_path, "--rows", "200")
    assert df.height == 200
    lo, hi = df["opened_at"].min(), df["opened_at"].max()
    assert str(lo) >= "2024-12-02" and str(hi) <= "2025-01-01 00:00:00+00:00"


def test_quickstart_is_reproducible_and_seeded(tmp_path: Path) -> None:
    a = generate("quickstart.yaml", tmp_path / "a", "--rows", "300")
    b = generate("quickstart.yaml", tmp_path / "b", "--rows", "300")
    c = generate("quickstart.yaml", tmp_path / "c", "--rows", "300", "--seed", "1")
    assert a.equals(b)
    assert (tmp_path / "a" / "quickstart.parquet").read_bytes() == (
        tmp_path / "b" / "quickstart.parquet"
    ).read_bytes()
    assert not a.equals(c)


def test_ecommerce_orders(tmp_path: Path) -> None:
    df = generate("ecommerce_orders.yaml", tmp_path, "--rows", "5000")
    assert df.height == 5000
    assert df.columns == [
        "order_id", "customer_name", "customer_email", "country", "payment_method", "category",
        "unit_price", "quantity", "total", "ordered_at", "status", "gift_message",
    ]  # fmt: skip
    assert df["order_id"].str.contains(r"^ORD-\d{7}$").all()
    assert df["quantity"].min() >= 1
    assert df["unit_price"].min() >= 0.99
    assert ((df["total"] - df["unit_price"] * df["quantity"]).abs() < 0.0051).all()
    allowed = {
        "US": {"card", "paypal", "gift_card"}, "DE": {"card", "paypal", "invoice"},
        "FR": {"card", "paypal"}, "JP": {"card", "konbini"},
    }  # fmt: skip
    for country, method in df.select("country", "payment_method").iter_rows():
        assert method in allowed[country]
    assert set(df["status"].unique()) <= {"processing", "shipped", "delivered"}
    recent = df.filter(pl.col("status") == "processing")["ordered_at"]
    assert recent.is_empty() or str(recent.min()) >= "2024-12-30"
    assert df["ordered_at"].is_sorted()
    assert 0.8 < df["gift_message"].null_count() / df.height < 0.97
    assert all(
        email_matches_name(e, n) for e, n in zip(df["customer_email"], df["customer_name"], strict=True)
    )
    # lognormal: a long right tail, so the mean is above the median
    assert df["unit_price"].mean() > df["unit_price"].median()  # type: ignore[operator]


def test_saas_users(tmp_path: Path) -> None:
    df = generate("saas_users.yaml", tmp_path, "--rows", "4000")
    assert df.height == 4000
    assert "days_to_churn" not in df.columns
    assert {"user_id", "plan", "seats", "mrr", "churned", "churned_at", "country", "welcome"} <= set(
        df.columns
    )
    assert df["user_id"].n_unique() == 4000
    prices = {"free": 0, "starter": 12, "team": 29, "enterprise": 99}
    seats = {"free": {1}, "starter": {1, 2, 3}, "team": {5, 10, 25}, "enterprise": {50, 100, 250}}
    assert df.schema["seats"] == pl.Int64 and df.schema["mrr"] == pl.Int64
    for plan, n, mrr in df.select("plan", "seats", "mrr").iter_rows():
        assert n in seats[plan]
        assert mrr == prices[plan] * n
    churned = df.filter(pl.col("churned"))
    assert churned["churned_at"].null_count() == 0
    assert (churned["churned_at"] > churned["signed_up_at"]).all()
    assert df.filter(~pl.col("churned"))["churned_at"].null_count() == df.height - churned.height
    assert set(df["country"].unique()) <= {"US", "GB", "DE", "FR", "JP", "IN", "BR"}
    assert df["signed_up_at"].is_sorted()
    assert df["weekly_active_days"].min() >= 0 and df["weekly_active_days"].max() <= 7  # type: ignore[operator]
    for name, plan, text in df.select("name", "plan", "welcome").head(50).iter_rows():
        assert text == f"Welcome to Flowboard, {name}! Your {plan} plan ({prices[plan]}/seat) is ready."


def test_payroll(tmp_path: Path) -> None:
    df = generate("payroll.yaml", tmp_path)
    assert df.height == 2500
    assert df["base_salary"].min() >= 38000 and df["base_salary"].max() <= 210000  # type: ignore[operator]
    assert 70000 < df["base_salary"].mean() < 86000  # type: ignore[operator]
    assert df.schema["base_salary"] == pl.Int64 and df.schema["bonus"] == pl.Int64
    assert (df["bonus"] == (df["base_salary"] * df["bonus_rate"]).round(0).cast(pl.Int64)).all()
    titles = {
        "engineering": {
            "Software Engineer",
            "Senior Software Engineer",
            "Staff Engineer",
            "Engineering Manager",
        },
        "sales": {"Account Executive", "Sales Engineer", "Sales Manager"},
        "support": {"Support Specialist", "Support Lead"},
        "finance": {"Accountant", "Financial Analyst", "Controller"},
        "people": {"Recruiter", "HR Partner"},
    }
    for dept, title in df.select("department", "title").iter_rows():
        assert title in titles[dept]
    assert str(df["hired_on"].min()) >= "2012-01-01" and str(df["hired_on"].max()) <= "2025-03-31"
    for no, first, last, dept, badge in df.select(
        "employee_no", "first_name", "last_name", "department", "badge"
    ).iter_rows():
        assert badge == f"ITC-{no} {last.upper()}, {first} ({dept.title()})"
    assert df.select("department", "employee_no").equals(
        df.select("department", "employee_no").sort("department", "employee_no")
    )
    assert all(
        email_matches_name(e, first, last)
        for e, first, last in zip(df["work_email"], df["first_name"], df["last_name"], strict=True)
    )
    # the manager is another identity: not the employee in (nearly) every row
    same = (df["manager"] == df["first_name"] + " " + df["last_name"]).sum()
    assert same < df.height * 0.01


def test_readme_python_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Python API example is run as written (from a copy of the repo's
    examples), so the documented API cannot drift from the real one."""
    import shutil

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert blocks, "README has a Python example"
    shutil.copytree(root / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "payroll.parquet").exists()
