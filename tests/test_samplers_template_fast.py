"""The vectorized path for substitution-only templates gives exactly Jinja's text."""

from __future__ import annotations

import re
from types import MappingProxyType

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.plan import TemplateColumn
from runtime.samplers import derived
from runtime.samplers.base import Chunk

FRAME = pl.DataFrame(
    {
        "s": ["a", None, "ü ß", "", "x{y}"],
        "i": [1, -2, None, 0, 2**62],
        "b": [True, False, None, True, False],
        "f": [1.5, None, 1e-5, 2.0, -0.0],
    }
)
VARS = MappingProxyType({"company": "Acme", "n": 3, "flag": False, "items": [1, 2]})
LITERAL = st.text(
    alphabet=st.characters(blacklist_characters="{}%#", blacklist_categories=("Cs",)), max_size=8
)
NAME = st.sampled_from(["s", "i", "b", "company", "n", "flag", "items"])


@st.composite
def templates(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(st.one_of(LITERAL, NAME.map(lambda n: "{{ " + n + " }}")), max_size=6))
    return "".join(pieces)


def _both(source: str) -> tuple[pl.Series | None, pl.Series]:
    inputs = tuple(n for n in FRAME.columns if re.search(rf"\b{n}\b", source))
    col = TemplateColumn("t", source, inputs)
    chunk = Chunk(0, 0, FRAME.height, FRAME, VARS)
    frame = FRAME.select(inputs)
    fast = derived._substitution(col, frame, chunk)
    slow = derived.render_rows(col, derived._compiled(source), frame, chunk)
    return fast, slow


@settings(max_examples=150, deadline=None)
@given(templates())
def test_vectorized_substitution_matches_jinja(source: str) -> None:
    fast, slow = _both(source)
    assert fast is not None
    assert fast.to_list() == slow.to_list()


def test_anything_beyond_substitution_takes_the_jinja_path() -> None:
    for source in ("{{ s | upper }}", "{% if b %}y{% endif %}", "{{ s ~ i }}", "{{ f }}", "{{ 'x' }}"):
        fast, slow = _both(source)
        assert fast is None
        assert slow.len() == FRAME.height


def test_empty_template_gives_empty_strings() -> None:
    fast, slow = _both("")
    assert fast is not None and fast.to_list() == slow.to_list() == [""] * FRAME.height
