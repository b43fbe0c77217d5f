"""The compiler pipeline: load → validate → resolve → lower (→ check expressions).

Each stage is a module of its own; this one only chains them and ranks what they find.
Nothing here mutates its input, and nothing raises anything but :class:`SpecError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.plan import Plan
from synthc.diagnostics import Diagnostic, sort_key
from synthc.errors import SpecError

MAX_DIAGNOSTICS = 50


def compile_source(text: str, file: str = "<spec>") -> Plan:
    """A spec's text -> its Plan; raises SpecError with every diagnostic, best first."""
    plan, diags = _compile(text, file)
    if plan is None or diags:
        raise SpecError(diags)
    return plan


def compile_path(path: str | Path) -> Plan:
    return compile_source(*_read(path))


def check_source(text: str, file: str = "<spec>") -> list[Diagnostic]:
    """Every diagnostic of a spec (empty when it compiles), sorted and capped."""
    return _compile(text, file)[1]


def check_path(path: str | Path) -> list[Diagnostic]:
    try:
        return check_source(*_read(path))
    except SpecError as exc:
        return exc.diagnostics


def _read(path: str | Path) -> tuple[str, str]:
    from synthc.loader import load_path

    text, _, _ = load_path(path)
    return text, str(path)


def _compile(text: str, file: str) -> tuple[Plan | None, list[Diagnostic]]:
    from synthc.loader import load
    from synthc.lower import lower
    from synthc.resolve import resolve
    from synthc.schema import validate

    try:
        data, smap = load(text, file)
    except SpecError as exc:
        return None, _rank(exc.diagnostics)
    schema_diags = validate(data, smap)
    skip = _columns_with_errors(schema_diags)
    if skip is None:
        return None, _rank(schema_diags)
    graph, resolve_diags = resolve(data, smap, skip)
    plan, lower_diags = lower(data, smap, graph, text, skip)
    diags = schema_diags + resolve_diags + lower_diags
    if not diags:
        from synthc.sqlcheck import check_expressions

        diags = check_expressions(plan, smap)
    return plan, _rank(diags)


def _columns_with_errors(diags: list[Diagnostic]) -> frozenset[str] | None:
    """Names of columns that have schema errors, or None when an error lies outside
    a column (then the spec's shape is too uncertain to go on)."""
    names: set[str] = set()
    for diag in diags:
        path: Any = diag.path
        if len(path) >= 2 and path[0] == "columns" and isinstance(path[1], str) and diag.code != "bad-column-name":
            names.add(path[1])
        else:
            return None
    return frozenset(names)


def _rank(diags: list[Diagnostic]) -> list[Diagnostic]:
    unique = list(dict.fromkeys(diags))
    return sorted(unique, key=sort_key)[:MAX_DIAGNOSTICS]
