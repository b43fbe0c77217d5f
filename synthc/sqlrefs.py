"""Column references in a Polars SQL expression, found without importing Polars.

``synthc check`` must stay light, so the dependency graph is built from a small
tokenizer: identifiers that are not SQL keywords, type names or function names are
column references. Polars itself checks syntax and types afterwards (see
:mod:`synthc.sqlcheck`), only for specs whose references all resolve.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""
      (?P<string>'(?:[^']|'')*'?)
    | "(?P<quoted>(?:[^"]|"")*)"?
    | (?P<cast>::\s*[A-Za-z_][A-Za-z0-9_]*)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)(?P<call>\s*\()?
    | (?P<other>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\s+|.)
    """,
    re.VERBOSE | re.DOTALL,
)

# Words that are never column names in an expression (compared case-insensitively).
KEYWORDS = frozenset(
    """
    and or not is null true false case when then else end in like ilike rlike regexp similar
    between as cast try_cast interval distinct asc desc nulls first last from for both leading
    trailing escape any all some exists over partition by order collate div mod xor
    int integer bigint smallint tinyint int2 int4 int8 int16 int32 int64 uint8 uint16 uint32
    uint64 float float4 float8 float32 float64 double real precision decimal numeric varchar char
    text string bytea binary blob boolean bool json
    unsigned signed zone at with without
    """.split()
)
# Words that are keywords only in context, and column names elsewhere (an index's default
# timestamp column is `timestamp`; a column may well be called `hour`): type names after
# AS or before a string literal (CAST(x AS date), DATE '2024-01-01'), date parts before
# FROM (EXTRACT(hour FROM ts)).
_TYPE_WORDS = frozenset("date time timestamp timestamptz datetime".split())
_DATE_PARTS = frozenset(
    """
    year month week day hour minute second millisecond microsecond nanosecond quarter dow doy
    isodow isoweek isoyear epoch millennium century decade dayofweek dayofyear weekday
    """.split()
)
_BEFORE_FROM = re.compile(r"\s+from\b", re.IGNORECASE)
_BEFORE_STRING = re.compile(r"\s*'")
_AFTER_AS = re.compile(r"\bas\s+$", re.IGNORECASE)


def _contextual_keyword(expr: str, word: str, start: int, end: int) -> bool:
    lowered = word.lower()
    if lowered in _TYPE_WORDS and (_AFTER_AS.search(expr[:start]) or _BEFORE_STRING.match(expr, end)):
        return True
    return lowered in _DATE_PARTS and bool(_BEFORE_FROM.match(expr, end))


@dataclass(frozen=True)
class Ref:
    name: str
    offset: int  # character offset in the expression text


def references(expr: str) -> list[Ref]:
    """Identifiers in ``expr`` that name columns (or unknown names), in order of appearance."""
    refs: list[Ref] = []
    for match in _TOKEN.finditer(expr):
        if match.group("quoted") is not None:
            refs.append(Ref(match.group("quoted").replace('""', '"'), match.start() + 1))
        elif match.group("ident") is not None:
            word = match.group("ident")
            if match.group("call") or word.lower() in KEYWORDS or word.lower() in _BARE_CLOCK:
                continue
            if _contextual_keyword(expr, word, match.start(), match.end()):
                continue
            refs.append(Ref(word, match.start()))
    return refs


# Functions whose result depends on the wall clock or unseeded randomness: a spec must
# regenerate the same data anywhere, so expressions may not call them.
NONDETERMINISTIC = frozenset(
    "now current_date current_time current_timestamp localtime localtimestamp today "
    "random rand randn uuid gen_random_uuid uuid4 shuffle sample".split()
)
# SQL spells some of them without parentheses.
_BARE_CLOCK = frozenset("current_date current_time current_timestamp localtime localtimestamp".split())


def nondeterministic_calls(expr: str) -> list[Ref]:
    """Calls (or bare keywords like CURRENT_DATE) that would make output irreproducible."""
    found: list[Ref] = []
    for match in _TOKEN.finditer(expr):
        word = match.group("ident")
        if word is None:
            continue
        lowered = word.lower()
        if lowered in _BARE_CLOCK or (match.group("call") and lowered in NONDETERMINISTIC):
            found.append(Ref(word, match.start()))
    return found


def sql_literal(value: object) -> str | None:
    """``value`` as a Polars SQL literal, or None when it has no scalar form."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value) if value >= 0 else f"({value})"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        # a bare 0.19 is a DECIMAL literal in Polars SQL; a float var stays a float
        return f"CAST({value!r} AS DOUBLE)"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return None


def substitute_vars(expr: str, variables: Mapping[str, object], columns: frozenset[str]) -> str:
    """``expr`` with each reference to a scalar var (not shadowed by a column) replaced by
    its literal, so ``100 * (1 + vat)`` with ``vars: {vat: 0.19}`` runs as
    ``100 * (1 + 0.19)``: the plan carries the values, and its hash changes with them."""
    out, last = [], 0
    for ref in references(expr):
        if ref.name in columns or ref.name not in variables:
            continue
        literal = sql_literal(variables[ref.name])
        if literal is None:
            continue
        quoted = expr.startswith('"', ref.offset - 1) if ref.offset else False
        start = ref.offset - 1 if quoted else ref.offset
        end = ref.offset + len(ref.name) + (1 if quoted else 0)
        out.append(expr[last:start] + literal)
        last = end
    return "".join(out) + expr[last:]
