"""The reproducibility contract (issue 2, item 8; DESIGN.md "Determinism"), end to end
through the API and the CLI on a spec with every column type:

- the same spec and seed give byte-identical files, in every format;
- the bytes do not depend on ``chunk_rows``;
- row i does not depend on how many rows are asked for;
- adding a column, or reordering the declared columns, leaves every other column alone;
- another seed gives other values;
- the plan hash is stable, changes with what changes the rows and only with that;
- Parquet files carry the spec hash and plan hash of the plan that made them.

(Per-sampler versions of these live in test_samplers.py and test_rng.py.)
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal, assert_series_equal

import synthc
from runtime.plan import plan_from_json, plan_hash
from synthc import cli

# Every column type and distribution; no shuffle or sort.
COLUMNS: dict[str, str] = {
    "id": "{type: uuid}",
    "n": "{type: sequence, start: 100, step: 3}",
    "code": "{type: sequence, format: 'ORD-{:05d}'}",
    "dice": "{type: int, min: 1, max: 6}",
    "height": "{type: float, dist: normal, mean: 170, sd: 9, round: 1}",
    "income": "{type: float, dist: lognormal, mu: 10, sigma: 0.5, round: 0}",
    "wait": "{type: float, dist: exponential, scale: 30}",
    "visits": "{type: int, dist: poisson, lam: 3}",
    "heads": "{type: int, dist: binomial, n: 10, p: 0.5}",
    "service": "{type: float, dist: gamma, shape: 2, scale: 1.5, min: 0.5}",
    "rate": "{type: float, dist: beta, a: 2, b: 8}",
    "rank": "{type: int, dist: zipf, a: 2, max: 1000}",
    "active": "{type: bool, p: 0.3, nulls: 0.1}",
    "tier": "{type: category, values: {free: 70, pro: 25, enterprise: 5}}",
    "country": "{type: category, values: [US, DE, JP]}",
    "currency": "{type: category, given: country, values: {US: [USD], DE: {EUR: 0.9, USD: 0.1}, JP: [JPY]}}",
    "signup": "{type: datetime, start: -90d, end: 0d}",
    "birthday": "{type: date, start: 1950-01-01, end: 2005-12-31, nulls: 0.2}",
    "customer": "{type: person}",
    "email": "{type: person, field: email}",
    "rep": "{type: person, identity: rep, locale: de_DE}",
    "rep_city": "{type: person, field: city, identity: rep, locale: de_DE}",
    "total": "{type: expression, expr: 'dice * visits'}",
    "subject": "{type: template, template: '{{ company }}: {{ tier | title }} for {{ customer }} ({{ height }})'}",
}
NOT_RANDOM = {"n", "code"}  # sequences are the same for every seed

# Columns a user might add: each must leave the existing ones untouched.
NEW_COLUMNS = [
    "{type: uuid}",
    "{type: float, dist: normal, mean: 0, sd: 1}",
    "{type: person, field: phone}",  # joins the default identity of `customer`/`email`
    "{type: person, field: email, identity: other, locale: ja_JP}",
    "{type: category, given: country, values: {US: [a], DE: [b, c], JP: {d: 1}}}",
    "{type: expression, expr: 'height * 2'}",
    "{type: template, template: '{{ email }}/{{ rep }}'}",
    "{type: bool, nulls: 0.5}",
]

FORMATS = ("parquet", "csv", "jsonl", "json")
STEPS = {
    "none": "",
    "streaming": "steps:\n  - filter: 'dice > 2'\n  - dedupe: [tier, country]\n  - drop: [code]\n",
    "limit": "steps:\n  - limit: 7\n  - rename: {dice: die}\n",
    "blocking": "steps:\n  - shuffle: true\n  - sort: {by: [tier, height], descending: true}\n",
}


def spec_text(
    columns: dict[str, str] | None = None,
    *,
    seed: int = 7,
    rows: int = 50,
    head: str = "",
    steps: str = "",
) -> str:
    body = "".join(f"  {name}: {column}\n" for name, column in (columns or COLUMNS).items())
    return (
        f"synthc: 1\n{head}seed: {seed}\nrows: {rows}\nas_of: 2025-01-01T00:00:00Z\n"
        f"vars: {{company: Acme}}\ncolumns:\n{body}{steps}"
    )


def write_bytes(tmp: Path, text: str, fmt: str, **options: int) -> bytes:
    target = tmp / f"out.{fmt}"
    synthc.write(text, target, **options)
    data = target.read_bytes()
    target.unlink()
    return data


def fast(examples: int) -> settings:
    """Few examples, no deadline; ``tmp_path`` is shared by the examples (each cleans up)."""
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )


# --------------------------------------------------------------------------- same spec, same bytes


@fast(15)
@given(seed=st.integers(0, 2**63 - 1), rows=st.integers(0, 40), steps=st.sampled_from(sorted(STEPS)))
def test_same_spec_and_seed_give_identical_bytes(tmp_path: Path, seed: int, rows: int, steps: str) -> None:
    text = spec_text(seed=seed, rows=rows, steps=STEPS[steps])
    for fmt in FORMATS:
        assert write_bytes(tmp_path, text, fmt) == write_bytes(tmp_path, text, fmt), fmt


def test_two_cli_runs_write_identical_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(steps=STEPS["streaming"]))
    for fmt in FORMATS:
        outputs = [tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"]
        for out in outputs:
            assert cli.run(["run", str(spec), "--out", str(out), "--rows", "300", "--seed", "11", "-q"]) == 0
        assert outputs[0].read_bytes() == outputs[1].read_bytes(), fmt
    capsys.readouterr()


# --------------------------------------------------------------------------- any chunk size


@fast(20)
@given(
    rows=st.integers(0, 40),
    chunk_rows=st.one_of(st.integers(1, 4), st.integers(1, 45)),
    steps=st.sampled_from(sorted(STEPS)),
)
def test_bytes_do_not_depend_on_chunk_rows(tmp_path: Path, rows: int, chunk_rows: int, steps: str) -> None:
    text = spec_text(rows=rows, steps=STEPS[steps])
    for fmt in ("parquet", "csv", "jsonl"):
        whole = write_bytes(tmp_path, text, fmt)
        assert write_bytes(tmp_path, text, fmt, chunk_rows=chunk_rows) == whole, fmt


# --------------------------------------------------------------------------- row i, whatever the row count

SEEDS = (0, 7, 2**63 - 1)


@cache
def ten_thousand_rows(seed: int) -> pl.DataFrame:
    return synthc.generate(spec_text(seed=seed, rows=10_000))


@fast(40)
@given(seed=st.sampled_from(SEEDS), rows=st.one_of(st.just(10), st.integers(0, 300), st.integers(0, 10_000)))
def test_row_i_does_not_depend_on_the_row_count(seed: int, rows: int) -> None:
    big = ten_thousand_rows(seed)
    assert_frame_equal(synthc.generate(spec_text(seed=seed, rows=rows)), big.head(rows))


def test_the_first_ten_rows_of_ten_and_of_ten_thousand(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text())
    firsts = []
    for rows in ("10", "10000"):
        assert (
            cli.run(["run", str(spec), "--rows", rows, "--out", str(tmp_path / f"{rows}.jsonl"), "-q"]) == 0
        )
        firsts.append((tmp_path / f"{rows}.jsonl").read_text().splitlines()[:10])
    assert firsts[0] == firsts[1] and len(firsts[0]) == 10
    capsys.readouterr()


# --------------------------------------------------------------------------- other columns come and go


@cache
def base_frame() -> pl.DataFrame:
    return synthc.generate(spec_text())


@fast(40)
@given(
    order=st.permutations(sorted(COLUMNS)),
    new=st.one_of(st.none(), st.sampled_from(NEW_COLUMNS)),
    name=st.sampled_from(["added", "a0", "zz", "Customer", "id2", "_x"]),
    at=st.integers(0, len(COLUMNS)),
)
def test_adding_or_reordering_columns_leaves_the_others_alone(
    order: list[str], new: str | None, name: str, at: int
) -> None:
    declared = [(column, COLUMNS[column]) for column in order]
    if new is not None:
        declared.insert(at, (name, new))
    frame = synthc.generate(spec_text(dict(declared)))
    assert frame.columns == [column for column, _ in declared]  # the declared order
    base = base_frame()
    for column in COLUMNS:
        assert_series_equal(frame[column], base[column])


# --------------------------------------------------------------------------- another seed, other values


@fast(20)
@given(seed=st.integers(0, 2**63 - 1), other=st.integers(0, 2**63 - 1))
def test_another_seed_changes_every_random_column(seed: int, other: int) -> None:
    if seed == other:
        other = (seed + 1) % 2**63
    a = synthc.generate(spec_text(seed=seed))
    b = synthc.generate(spec_text(seed=other))
    for column in COLUMNS:
        same = a[column].equals(b[column])
        assert same if column in NOT_RANDOM else not same, column


# --------------------------------------------------------------------------- the plan hash


def compiled_hash(text: str) -> str:
    return plan_hash(synthc.compile(text))


@fast(25)
@given(
    seed=st.integers(0, 2**63 - 2),
    rows=st.integers(0, 2_000_000_000 - 1),
    name=st.sampled_from(["", "orders", "other name"]),
    description=st.sampled_from(["", "description: Anything at all.\n", "description: ''\n"]),
    output=st.sampled_from(["", "output: {path: a.parquet}\n", "output: {path: data/b.csv}\n"]),
)
def test_plan_hash_changes_with_the_rows_and_only_with_them(
    seed: int, rows: int, name: str, description: str, output: str
) -> None:
    base = spec_text(seed=seed, rows=rows)
    first = synthc.compile(base)
    assert synthc.compile(base) == first and compiled_hash(base) == plan_hash(first)
    # no effect on the rows: name, description, output path
    head = (f"name: {name}\n" if name else "") + description
    cosmetic = spec_text(seed=seed, rows=rows, head=head, steps=output)
    assert compiled_hash(cosmetic) == plan_hash(first)
    # CLI/API overrides hash like the same values written in the spec
    assert plan_hash(synthc.compile(spec_text()).with_overrides(rows=rows, seed=seed)) == plan_hash(first)
    # everything that changes the rows changes the hash
    edited = dict(COLUMNS, dice="{type: int, min: 1, max: 7}")
    reordered = dict(reversed(COLUMNS.items()))
    changes = [
        spec_text(seed=seed + 1, rows=rows),
        spec_text(seed=seed, rows=rows + 1),
        spec_text(edited, seed=seed, rows=rows),
        spec_text(reordered, seed=seed, rows=rows),  # the output's column order changes
        spec_text(dict(COLUMNS, extra="{type: uuid}"), seed=seed, rows=rows),
        spec_text(seed=seed, rows=rows, steps=STEPS["limit"]),
        spec_text(seed=seed, rows=rows).replace("company: Acme", "company: Acme2"),
        spec_text(seed=seed, rows=rows).replace("2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z"),
    ]
    hashes = {plan_hash(first), *(compiled_hash(text) for text in changes)}
    assert len(hashes) == len(changes) + 1


# --------------------------------------------------------------------------- provenance in Parquet


@fast(10)
@given(seed=st.integers(0, 2**63 - 1), rows=st.integers(0, 30))
def test_parquet_metadata_names_the_plan_that_made_it(tmp_path: Path, seed: int, rows: int) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(steps=STEPS["streaming"]))
    out = tmp_path / "out.parquet"
    argv = ["run", str(spec), "--out", str(out), "--rows", str(rows), "--seed", str(seed), "-q"]
    assert cli.run(argv) == 0
    plan = synthc.compile(spec).with_overrides(rows=rows, seed=seed)
    meta = pl.read_parquet_metadata(out)
    assert meta["synthc.plan_hash"] == plan_hash(plan)
    assert meta["synthc.spec_hash"] == plan.spec_hash != ""
    assert meta["synthc.engine"] == str(plan.engine)


def test_plan_json_from_the_cli_hashes_like_the_file_metadata(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text())
    capsys.readouterr()
    assert cli.run(["plan", str(spec), "--json", "--rows", "12", "--seed", "3"]) == 0
    shown = plan_from_json(capsys.readouterr().out)
    assert (
        cli.run(["run", str(spec), "--out", str(tmp_path / "o.parquet"), "--rows", "12", "--seed", "3", "-q"])
        == 0
    )
    meta = pl.read_parquet_metadata(tmp_path / "o.parquet")
    assert meta["synthc.plan_hash"] == plan_hash(shown)
    assert meta["synthc.spec_hash"] == shown.spec_hash
