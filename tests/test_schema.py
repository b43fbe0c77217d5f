"""The JSON Schema and the diagnostics `validate` derives from it."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from synthc import schema as schema_module
from synthc.diagnostics import Diagnostic
from synthc.loader import load
from synthc.schema import load_schema, schema_path, validate

VALID = textwrap.dedent(
    """\
    # yaml-language-server: $schema=../schema/synthc.schema.json
    synthc: 1
    name: support-tickets
    description: Support tickets.
    seed: 42
    rows: 1000
    as_of: 2025-01-01T00:00:00Z
    vars: {company: Acme, limits: [1, 2], nested: {a: yes}}
    columns:
      ticket_id: {type: uuid}
      n:         {type: sequence, start: 1, step: 2, format: "T-{:06d}"}
      product:   {type: category, values: {laptop: 0.5, phone: 0.3, tablet: 0.2}}
      plan:      {type: category, given: product, values: {laptop: [pro, basic], phone: {basic: 0.9, pro: 0.1}, tablet: [basic]}}
      size:      {type: category, values: [1, 2, 3], description: shoe size}
      price:     {type: float, dist: lognormal, mu: 3.5, sigma: 0.4, min: 1, round: 2}
      qty:       {type: int, dist: poisson, lam: 2, min: 1}
      score:     {type: int, min: 1, max: 10, nulls: 0.1}
      express:   {type: bool, p: 0.2}
      opened_at: {type: datetime, start: -90d, end: 0d}
      born:      {type: date, start: 1950-01-01, end: 2005-12-31}
      customer:  {type: person, field: name, locale: en_US}
      email:     {type: person, field: email, locale: de_DE, identity: buyer}
      total:     {type: expression, expr: "price * qty"}
      subject:   {type: template, template: "{{ product | title }} issue #{{ n }}"}
      sentiment: {type: category, values: [positive, neutral, negative], nulls: 0.05}
    steps:
      - filter: "qty > 1"
      - dedupe: [subject]
      - drop: [n]
      - select: [ticket_id, price, qty, total, subject]
      - rename: {total: amount}
      - sort: price
      - sort: [price, qty]
      - sort: {by: [price], descending: true}
      - shuffle: true
      - limit: 10
    output: {path: tickets.parquet, format: parquet}
    """
)

BASE = "synthc: 1\ncolumns:\n  id: {type: uuid}\n"


def check(text: str) -> list[Diagnostic]:
    data, source_map = load(text, "s.yaml")
    return validate(data, source_map)


def one(text: str, code: str) -> Diagnostic:
    found = check(text)
    assert [d.code for d in found] == [code], [(d.code, d.message) for d in found]
    return found[0]


def at(diag: Diagnostic) -> tuple[int, int]:
    assert diag.span is not None
    return (diag.span.line, diag.span.col)


def pos(text: str, line: int, token: str) -> tuple[int, int]:
    """1-based (line, col) of the first ``token`` on ``line`` of ``text``."""
    return (line, text.splitlines()[line - 1].index(token) + 1)


# --------------------------------------------------------------------------- the schema file


def test_schema_is_valid_2020_12() -> None:
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] and schema["title"] and schema["description"]


def test_schema_path_is_the_repo_file_or_the_packaged_copy() -> None:
    path = schema_path()
    assert path.name == "synthc.schema.json" and path.is_file()
    assert json.loads(path.read_text(encoding="utf-8")) == load_schema()


def test_load_schema_returns_a_copy() -> None:
    first = load_schema()
    first["title"] = "changed"
    assert load_schema()["title"] != "changed"


def _properties(node: Any, where: str = "#") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            found.append((f"{where}/properties/{name}", sub))
        for key, sub in node.items():
            if key != "properties":
                found += _properties(sub, f"{where}/{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            found += _properties(sub, f"{where}/{i}")
    return found


def test_every_property_has_a_description() -> None:
    schema = load_schema()
    missing = [
        where
        for where, sub in _properties(schema)
        if "/if/" not in where
        and "/then/" not in where
        and "/else/" not in where
        and "description" not in sub
        and "$ref" not in sub
    ]
    assert missing == []


def test_column_types_are_dispatched_with_if_then() -> None:
    column = load_schema()["$defs"]["column"]
    assert "oneOf" not in column and "anyOf" not in column
    types = column["properties"]["type"]["enum"]
    assert [rule["if"]["properties"]["type"]["const"] for rule in column["allOf"]] == types
    for name in types:
        definition = load_schema()["$defs"][f"column_{name}"]
        assert definition["additionalProperties"] is False
        assert {"type", "nulls", "description"} <= set(definition["properties"])
    assert "llm" in types


def test_validator_is_compiled_once() -> None:
    assert schema_module._validator() is schema_module._validator()


# --------------------------------------------------------------------------- valid specs


def test_full_valid_spec_passes() -> None:
    assert check(VALID) == []


def test_minimal_spec_passes() -> None:
    assert check(BASE) == []


# --------------------------------------------------------------------------- each code


def test_unknown_key_with_suggestion_points_at_the_key() -> None:
    text = BASE + "  price: {type: float, dist: lognormal, mu: 1, sigmaa: 0.4}\n"
    diag = one(text, "unknown-key")
    assert diag.message == "column `price`: unknown key `sigmaa` — did you mean `sigma`?"
    assert diag.path == ("columns", "price", "sigmaa")
    assert at(diag) == pos(text, 4, "sigmaa") and diag.span is not None
    assert diag.span.end_col - diag.span.col == len("sigmaa")
    assert diag.hint is not None and "sigma" in diag.hint


def test_unknown_key_of_another_column_type() -> None:
    diag = one(BASE + "  qty: {type: int, round: 2}\n", "unknown-key")
    assert diag.hint is not None and "`round` belongs to float, series columns" in diag.hint


def test_unknown_top_level_key() -> None:
    diag = one(BASE + "colums: {}\n", "unknown-key")
    assert diag.message == "unknown top-level key `colums` — did you mean `columns`?"
    assert at(diag) == (4, 1)


def test_missing_key_points_at_the_column_name() -> None:
    diag = one(BASE + "  opened:\n    type: datetime\n    start: -1d\n", "missing-key")
    assert diag.message == "column `opened`: missing key `end`"
    assert diag.hint == "a `datetime` column needs `start` and `end`"
    assert diag.path == ("columns", "opened", "end")
    assert at(diag) == (4, 3)


def test_missing_type() -> None:
    diag = one(BASE + "  x: {nulls: 0.1}\n", "missing-key")
    assert "`type`" in diag.message and diag.hint is not None and "uuid" in diag.hint


def test_missing_top_level_keys() -> None:
    found = check("name: x\n")
    assert [(d.code, d.path) for d in found] == [("missing-key", ("synthc",)), ("missing-key", ("columns",))]


def test_misspelt_required_key_gives_one_diagnostic() -> None:
    diag = one(BASE + "  t: {type: date, strat: -1d, end: 0d}\n", "unknown-key")
    assert "did you mean `start`?" in diag.message


def test_wrong_type() -> None:
    diag = one(BASE + "  qty: {type: int, dist: poisson, lam: two}\n", "wrong-type")
    assert diag.message == 'column `qty`: `lam` must be a number, got the string "two"'
    assert diag.path == ("columns", "qty", "lam") and at(diag) == (4, 40)


def test_wrong_type_mentions_yaml_1_2_booleans() -> None:
    diag = one(BASE + "steps:\n  - shuffle: yes\n", "wrong-type")
    assert diag.message == 'step 1: `shuffle` must be true or false, got the string "yes"'
    assert diag.hint is not None and "YAML 1.2" in diag.hint and "write true or false" in diag.hint


def test_quoted_yes_gets_no_yaml_note() -> None:
    diag = one(BASE + "steps:\n  - shuffle: 'yes'\n", "wrong-type")
    assert diag.hint is None


def test_column_written_as_a_bare_type() -> None:
    diag = one(BASE + "  price: float\n", "wrong-type")
    assert diag.hint == "write `price: {type: float}`"


def test_bad_value_enum_with_suggestion() -> None:
    text = BASE + "  who: {type: person, locale: en_GB}\n"
    diag = one(text, "bad-value")
    assert diag.message == "column `who`: unknown locale `en_GB` — did you mean `en_US`?"
    assert diag.hint == "expected one of en_US, de_DE, fr_FR, ja_JP"
    assert at(diag) == pos(text, 4, "en_GB")


def test_bad_value_distribution() -> None:
    diag = one(BASE + "  x: {type: float, dist: gausian}\n", "bad-value")
    assert "unknown distribution `gausian`" in diag.message


def test_out_of_range() -> None:
    text = BASE + "  id2: {type: uuid, nulls: 1.5}\n"
    diag = one(text, "out-of-range")
    assert diag.message == "column `id2`: `nulls` must be between 0 and 1, got 1.5"
    assert at(diag) == pos(text, 4, "1.5")


def test_negative_weight() -> None:
    diag = one(BASE + "  c: {type: category, values: {a: -1, b: 1}}\n", "out-of-range")
    assert diag.message == "column `c`: the weight of `a` must be at least 0, got -1"


def test_unknown_column_type() -> None:
    text = BASE + "  x: {type: integer, min: 1}\n"
    diag = one(text, "unknown-column-type")
    assert diag.message == "column `x`: unknown type `integer` — did you mean `int`?"
    assert diag.hint is not None and "uuid, sequence, int, float" in diag.hint
    assert diag.path == ("columns", "x", "type") and at(diag) == pos(text, 4, "integer")


def test_unknown_step() -> None:
    diag = one(BASE + "steps:\n  - sortt: id\n", "unknown-step")
    assert diag.message == "step 1: unknown step `sortt` — did you mean `sort`?"
    assert diag.path == ("steps", 0, "sortt") and at(diag) == (5, 5)


def test_unsupported_version() -> None:
    diag = one(BASE.replace("synthc: 1", "synthc: 2"), "unsupported-version")
    assert at(diag) == (1, 9) and "`synthc: 2`" in diag.message


@pytest.mark.parametrize(
    ("name", "words"),
    [("1st", "not a valid column name"), ("__x", "reserved"), ("'my col'", "not a valid column name")],
)
def test_bad_column_name(name: str, words: str) -> None:
    diag = one(BASE + f"  {name}: {{type: uuid}}\n", "bad-column-name")
    assert words in diag.message and at(diag) == (4, 3)


def test_bad_rename_target() -> None:
    text = BASE + "steps:\n  - rename: {id: 'an id'}\n"
    diag = one(text, "bad-column-name")
    assert diag.path == ("steps", 0, "rename", "id") and at(diag) == pos(text, 5, "'an id'")


def test_option_beside_a_step_name() -> None:
    diag = one(BASE + "steps:\n  - sort: id\n    descending: true\n", "unknown-key")
    assert diag.message == "step 1 (`sort`): unknown key `descending`" and at(diag) == (6, 5)


def test_two_steps_in_one_item() -> None:
    diag = one(BASE + "steps:\n  - sort: id\n    limit: 3\n", "bad-value")
    assert "`limit` must be a step of its own" in diag.message


def test_empty_columns() -> None:
    diag = one("synthc: 1\ncolumns: {}\n", "bad-value")
    assert "at least one column" in diag.message and at(diag) == (2, 1)


def test_empty_value_points_at_its_key() -> None:
    diag = one(BASE + "  c:\n    type: category\n    values:\n", "wrong-type")
    assert "got nothing" in diag.message and at(diag) == (6, 5)


# --------------------------------------------------------------------------- one per mistake


@pytest.mark.parametrize(
    "column",
    [
        "{type: intt, min: 1, bogus: 2}",  # unknown type: the other keys are not judged
        "{type: 5}",
        "[1, 2]",
        "{type: category, values: banana}",
        "{type: category, values: {a: x}}",
        "{type: category, given: id, values: [a, b]}",
        "{type: float, round: 99}",
        "{type: sequence, start: 1.5}",
        "{type: person, field: 3}",
    ],
)
def test_one_mistake_gives_one_diagnostic(column: str) -> None:
    assert len(check(BASE + f"  x: {column}\n")) == 1


@pytest.mark.parametrize(
    "step",
    [
        "sort: {by: id, desc: true}",
        "sort: {descending: true}",
        "sort: 5",
        "limit: -1",
        "limit: ten",
        "dedupe: []",
        "filter: ''",
        "shuffle",
        "{}",
        "rename: {}",
        "drop: id",
    ],
)
def test_one_step_mistake_gives_one_diagnostic(step: str) -> None:
    assert len(check(BASE + f"steps:\n  - {step}\n")) == 1


def test_three_mistakes_give_three_diagnostics_in_order() -> None:
    text = "synthc: 1\nrows: -5\ncolumns:\n  a: {type: uuid, nulls: 2}\n  b: {type: sting}\n"
    found = check(text)
    assert [(d.code, at(d)) for d in found] == [
        ("out-of-range", (2, 7)),
        ("out-of-range", (4, 26)),
        ("unknown-column-type", (5, 13)),
    ]


# --------------------------------------------------------------------------- robustness

_JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(-2, 2)
    | st.sampled_from(["", "x", "uuid", "sort"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["type", "a", "by", "p"]), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(
        [
            ("columns", "id"),
            ("columns", "id", "type"),
            ("steps",),
            ("output",),
            ("rows",),
            ("vars",),
            ("columns", "new"),
        ]
    ),
    _JUNK,
)
def test_validate_explains_any_value(path: tuple[str, ...], junk: Any) -> None:
    data, source_map = load(BASE, "s.yaml")
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = junk
    for diag in validate(data, source_map):
        assert isinstance(diag, Diagnostic) and diag.span is not None and diag.message


def test_examples_in_the_schema_are_valid() -> None:
    defs = load_schema()["$defs"]
    validator = Draft202012Validator(load_schema())
    for name in defs["column"]["properties"]["type"]["enum"]:
        for example in defs[f"column_{name}"]["examples"]:
            spec = {"synthc": 1, "columns": {"product": {"type": "uuid"}, "x": example}}
            assert list(validator.iter_errors(spec)) == [], (name, example)
    for example in defs["step"]["examples"]:
        assert (
            list(validator.iter_errors({"synthc": 1, "columns": {"a": {"type": "uuid"}}, "steps": [example]}))
            == []
        )
