"""The YAML loader: values, positions, and every load diagnostic."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from synthc import loader
from synthc.diagnostics import Diagnostic, Span
from synthc.errors import SpecError
from synthc.loader import load, load_path, resolve_plain

SPEC = textwrap.dedent(
    """\
    synthc: 1
    name: "orders"
    columns:
      price: {type: float, mu: 3.5}
      body:
        type: template
        template: |
          Hello {{ name }}
            indented
      note:
        type: template
        template: >-
          folded
          text
      tag: 'single'
    steps:
      - sort: price
      - drop: [a, b]
    """
)


def diags(text: str) -> list[Diagnostic]:
    with pytest.raises(SpecError) as info:
        load(text, "s.yaml")
    return info.value.diagnostics


def codes(text: str) -> list[str]:
    return [d.code for d in diags(text)]


def only(text: str, code: str) -> Diagnostic:
    found = diags(text)
    assert [d.code for d in found] == [code], found
    return found[0]


def at(diag: Diagnostic) -> tuple[int, int]:
    assert diag.span is not None
    return (diag.span.line, diag.span.col)


# --------------------------------------------------------------------------- values


def test_values_are_plain_python() -> None:
    data, _ = load(SPEC, "s.yaml")
    assert data["synthc"] == 1
    assert data["columns"]["price"] == {"type": "float", "mu": 3.5}
    assert data["columns"]["body"]["template"] == "Hello {{ name }}\n  indented\n"
    assert data["columns"]["note"]["template"] == "folded text"
    assert data["steps"] == [{"sort": "price"}, {"drop": ["a", "b"]}]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("n", "n"),
        ("Yes", "Yes"),
        ("2024-01-01", "2024-01-01"),
        ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"),
        ("1:30", "1:30"),
        ("1_000", "1_000"),
        ("0b101", "0b101"),
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("FALSE", False),
        ("null", None),
        ("~", None),
        ("", None),
        ("NULL", None),
        ("42", 42),
        ("-7", -7),
        ("+3", 3),
        ("0777", 777),
        ("0o17", 15),
        ("0x1F", 31),
        ("1.5", 1.5),
        ("-.5", -0.5),
        ("1e3", 1000.0),
        ("2.", 2.0),
        ("'42'", "42"),
        ('"true"', "true"),
    ],
)
def test_yaml_12_core_schema(text: str, value: Any) -> None:
    data, _ = load(f"v: {text}\n", "s.yaml")
    assert data["v"] == value
    assert type(data["v"]) is type(value)


def test_special_floats() -> None:
    data, _ = load("a: .inf\nb: -.Inf\nc: .nan\n", "s.yaml")
    assert data["a"] == float("inf") and data["b"] == float("-inf")
    assert data["c"] != data["c"]


# --------------------------------------------------------------------------- positions


def test_spans_of_keys_and_values() -> None:
    _, smap = load(SPEC, "s.yaml")
    assert smap.span(("name",)) == Span("s.yaml", 2, 7, 2, 15)
    assert smap.span(("name",), key=True) == Span("s.yaml", 2, 1, 2, 5)
    assert smap.span(("columns", "price", "mu")) == Span("s.yaml", 4, 28, 4, 31)
    assert smap.span(("columns", "price", "mu"), key=True) == Span("s.yaml", 4, 24, 4, 26)
    assert smap.span(("columns", "price")) == Span("s.yaml", 4, 10, 4, 32)
    assert smap.span(("columns", "price"), key=True) == Span("s.yaml", 4, 3, 4, 8)


def test_spans_of_list_items() -> None:
    _, smap = load(SPEC, "s.yaml")
    assert smap.span(("steps", 0)) == Span("s.yaml", 17, 5, 17, 16)
    assert smap.span(("steps", 0), key=True) == smap.span(("steps", 0))
    assert smap.span(("steps", 1, "drop", 1)) == Span("s.yaml", 18, 15, 18, 16)


def test_block_scalar_span_ends_on_its_last_content_line() -> None:
    _, smap = load(SPEC, "s.yaml")
    assert smap.span(("columns", "body", "template")) == Span("s.yaml", 7, 15, 9, 17)
    assert smap.span(("columns", "body")) == Span("s.yaml", 6, 5, 9, 17)


def test_missing_paths_fall_back_to_the_nearest_ancestor() -> None:
    _, smap = load(SPEC, "s.yaml")
    assert smap.span(("columns", "price", "sigma")) == smap.span(("columns", "price"))
    assert smap.span(("columns", "price", "sigma"), key=True) == Span("s.yaml", 4, 3, 4, 8)
    assert smap.span(("nope", 3)) == smap.span(())
    assert smap.span(()) is not None and smap.span(()).line == 1  # type: ignore[union-attr]


def test_styles() -> None:
    _, smap = load(SPEC, "s.yaml")
    assert smap.style(("synthc",)) is None
    assert smap.style(("name",)) == '"'
    assert smap.style(("columns", "tag")) == "'"
    assert smap.style(("columns", "body", "template")) == "|"
    assert smap.style(("columns", "note", "template")) == ">"
    assert smap.style(("columns",)) is None
    assert smap.style(("missing",)) is None


def test_content_origin() -> None:
    _, smap = load(SPEC, "s.yaml")
    assert smap.content_origin(("name",)) == (2, 8)  # after the quote
    assert smap.content_origin(("columns", "tag")) == (15, 9)
    assert smap.content_origin(("synthc",)) == (1, 9)
    assert smap.content_origin(("columns", "body", "template")) == (8, 7)
    assert smap.content_origin(("columns", "note", "template")) == (13, 7)
    assert smap.content_origin(("columns",)) is None


def test_content_origin_with_leading_blank_line_and_indentation_indicator() -> None:
    text = "t: |\n\n    two\nu: |2\n     x\n"
    data, smap = load(text, "s.yaml")
    assert data["t"] == "\ntwo\n"
    assert smap.content_origin(("t",)) == (2, 5)  # value line 1 is file line 2
    assert data["u"] == "   x\n"
    assert smap.content_origin(("u",)) == (5, 3)


def test_non_ascii_columns_count_characters() -> None:
    _, smap = load("名前: 'ä'\nx: 1\n", "s.yaml")
    assert smap.span(("名前",)) == Span("s.yaml", 1, 5, 1, 8)


def test_windows_line_endings() -> None:
    text = SPEC.replace("\n", "\r\n")
    data, smap = load(text, "s.yaml")
    plain, plain_map = load(SPEC, "s.yaml")
    assert data == plain
    for path in [
        ("name",),
        ("columns", "price", "mu"),
        ("steps", 1, "drop", 1),
        ("columns", "body", "template"),
    ]:
        assert smap.span(path) == plain_map.span(path)
        assert smap.content_origin(path) == plain_map.content_origin(path)


def test_bom_is_ignored() -> None:
    data, smap = load("\ufeffa: 1\n", "s.yaml")
    assert data == {"a": 1}
    assert smap.span(("a",)) == Span("s.yaml", 1, 4, 1, 5)


def test_pure_python_parser_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = load(SPEC, "s.yaml")
    monkeypatch.setattr(loader, "_Loader", yaml.SafeLoader)
    slow = load(SPEC, "s.yaml")
    assert fast[0] == slow[0]
    assert fast[1].entries == slow[1].entries
    assert at(only("a: b: c\n", "yaml-syntax")) == (1, 5)
    assert at(only("a: 1\n\tb: 2\n", "tab-indent")) == (2, 1)
    assert at(only("a: 'abc\nb: 1\n", "yaml-syntax")) == (1, 4)


def test_deep_nesting_is_refused_not_a_crash() -> None:
    diag = only("a: " + "[" * 5000 + "]" * 5000 + "\n", "unsupported-yaml")
    assert "nested" in diag.message


# --------------------------------------------------------------------------- data keys


def test_keys_that_are_data_are_stringified() -> None:
    text = (
        "vars: {1: a, true: b}\ncolumns:\n  c: {type: category, values: {1: 0.5, 2.50: 0.5}}\n"
        "steps:\n  - rename: {3: x}\n"
    )
    data, smap = load(text, "s.yaml")
    assert data["vars"] == {"1": "a", "true": "b"}
    assert data["columns"]["c"]["values"] == {"1": 0.5, "2.50": 0.5}
    assert data["steps"][0]["rename"] == {"3": "x"}
    assert smap.key_value(("columns", "c", "values", "1")) == 1
    assert smap.key_value(("columns", "c", "values", "2.50")) == 2.5
    assert smap.key_value(("vars", "true")) is True
    assert smap.key_value(("columns", "c")) == "c"


def test_non_string_keys_elsewhere_are_refused() -> None:
    diag = only("columns:\n  1: {type: uuid}\n", "unsupported-yaml")
    assert at(diag) == (2, 3)
    assert "number" in diag.message and diag.hint == 'quote it: "1"'
    assert codes("true: 1\n") == ["unsupported-yaml"]
    assert codes("~: 1\n") == ["unsupported-yaml"]


def test_stringified_data_keys_can_still_collide() -> None:
    diag = only("vars: {1: a, '1': b}\n", "duplicate-key")
    assert at(diag) == (1, 14)


# --------------------------------------------------------------------------- diagnostics


def test_duplicate_key_points_at_the_second_occurrence() -> None:
    diag = only("a: 1\nb:\n  c: 1\n  c: 2\n", "duplicate-key")
    assert diag.span == Span("s.yaml", 4, 3, 4, 4)
    assert "line 3" in diag.message and "`c`" in diag.message


def test_tab_in_indentation() -> None:
    diag = only("a: 1\n\tb: 2\n", "tab-indent")
    assert at(diag) == (2, 1)
    diag = only("a:\n  b: 1\n \t c: 2\n", "tab-indent")
    assert at(diag) == (3, 2)


def test_tab_after_a_value_is_fine() -> None:
    data, _ = load("a:\t1\n", "s.yaml")
    assert data == {"a": 1}


@pytest.mark.parametrize(
    ("text", "pos", "words"),
    [
        ("a: b: c\n", (1, 5), "`:`"),
        ("a:\n  b: 1\n c: 2\n", (3, 2), "indented"),
        ("a: 'abc\nb: 1\n", (1, 4), "quoted string is never closed"),
        ('a: "x\\q"\n', (1, 6), "escape"),
        ("a: [1, 2\n", (2, 1), "list is not closed"),
    ],
)
def test_yaml_syntax(text: str, pos: tuple[int, int], words: str) -> None:
    diag = only(text, "yaml-syntax")
    assert at(diag) == pos
    assert words in diag.message


def test_control_characters_are_syntax_errors_with_positions() -> None:
    diag = only("a: 1\nb: x\x07y\n", "yaml-syntax")
    assert at(diag) == (2, 5)
    assert "U+0007" in diag.message


@pytest.mark.parametrize(
    ("text", "pos", "words"),
    [
        ("a: !foo x\n", (1, 4), "`!foo`"),
        ("a: !!python/object:os.system x\n", (1, 4), "`!!python/object:os.system`"),
        ("a: !!str 1\n", (1, 4), "tags"),
        ("a: &x 1\n", (1, 4), "`&x`"),
        ("a: &x {b: 1}\n", (1, 4), "`&x`"),
        ("<<: {a: 1}\n", (1, 1), "merge keys"),
        ("a: 1\n---\nb: 2\n", (2, 1), "second"),
        ("? [a, b]\n: 1\n", (1, 3), "must be a string"),
    ],
)
def test_unsupported_yaml(text: str, pos: tuple[int, int], words: str) -> None:
    diag = only(text, "unsupported-yaml")
    assert at(diag) == pos
    assert words in diag.message


def test_anchor_and_alias_are_both_reported() -> None:
    found = diags("a: &x 1\nb: *x\n")
    assert [(d.code, at(d)) for d in found] == [("unsupported-yaml", (1, 4)), ("unsupported-yaml", (2, 4))]
    assert "`*x`" in found[1].message


def test_all_load_problems_at_once_sorted_by_position() -> None:
    found = diags("a: !t 1\nb: 1\nb: 2\nc: &x 3\n")
    assert [(d.code, at(d)) for d in found] == [
        ("unsupported-yaml", (1, 4)),
        ("duplicate-key", (3, 1)),
        ("unsupported-yaml", (4, 4)),
    ]


def test_problems_before_a_syntax_error_are_kept() -> None:
    assert codes("a: !t 1\nb: c: d\n") == ["unsupported-yaml", "yaml-syntax"]


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n\n# another\n", "---\n"])
def test_empty_spec(text: str) -> None:
    diag = only(text, "empty-spec")
    assert diag.span is not None and diag.span.file == "s.yaml"


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- a\n- b\n", "a list"), ("hello\n", "a string"), ("42\n", "a number"), ("null\n", "null")],
)
def test_not_a_mapping(text: str, kind: str) -> None:
    diag = only(text, "not-a-mapping")
    assert at(diag) == (1, 1)
    assert diag.message.endswith(kind)


# --------------------------------------------------------------------------- files


def test_load_path_returns_text_data_and_map(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"\xef\xbb\xbfa: 1\r\nb: [x]\r\n")
    text, data, smap = load_path(path)
    assert text == "a: 1\r\nb: [x]\r\n"
    assert data == {"a": 1, "b": ["x"]}
    assert smap.span(("b", 0)) == Span(str(path), 2, 5, 2, 6)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_path(tmp_path / "nope.yaml")
    (diag,) = info.value.diagnostics
    assert diag.code == "file-not-found" and diag.span is None
    assert "nope.yaml" in diag.message and "no such file" in diag.message


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_path(tmp_path)
    (diag,) = info.value.diagnostics
    assert diag.code == "file-not-found" and str(tmp_path) in diag.message and "directory" in diag.message


def test_invalid_utf8_points_at_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"a: 1\nb: caf\xe9\n")
    with pytest.raises(SpecError) as info:
        load_path(path)
    (diag,) = info.value.diagnostics
    assert diag.code == "yaml-syntax" and at(diag) == (2, 7)
    assert "UTF-8" in diag.message and "0xe9" in diag.message


def test_utf16_is_named(tmp_path: Path) -> None:
    path = tmp_path / "u16.yaml"
    path.write_bytes("a: 1\n".encode("utf-16"))
    with pytest.raises(SpecError) as info:
        load_path(path)
    assert "UTF-16" in info.value.diagnostics[0].message


# --------------------------------------------------------------------------- properties

_YAMLISH = st.text(
    alphabet=st.sampled_from([*"ab1 :-\n\t#'\"|>[]{},&*!?%@`~\\.\r", "\ufeff", "é", "\x07"]), max_size=60
)


@settings(max_examples=120, deadline=None)
@given(st.one_of(st.text(max_size=80), _YAMLISH))
def test_any_text_loads_or_raises_spec_error(text: str) -> None:
    try:
        data, smap = load(text, "p.yaml")
    except SpecError as exc:
        assert exc.diagnostics
        assert all(isinstance(d, Diagnostic) for d in exc.diagnostics)
        return
    assert isinstance(data, dict)
    assert smap.span(()) is not None


_KEYS = st.text(alphabet="abcxyz_", min_size=1, max_size=6)
_VALUES = st.recursive(
    # PyYAML's dumper writes NEL/LS/PS raw inside quotes, where YAML folds them: leave them out
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    # and strings YAML 1.1 (PyYAML's dumper) writes plain but YAML 1.2 reads as numbers (0E0)
    | st.text(st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=10).filter(
        lambda s: not isinstance(resolve_plain(s), int | float) or not s.strip()
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, min_size=1, max_size=4), st.sampled_from([None, True, False]))
def test_round_trips_what_pyyaml_dumps(data: dict[str, Any], flow: bool | None) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True)
    loaded, smap = load(text, "p.yaml")
    assert loaded == data
    for key in data:
        span = smap.span((key,), key=True)
        assert span is not None
        line = text.splitlines()[span.line - 1]
        assert line[span.col - 1 :].lstrip("'\"").startswith(key)
