"""The compiler pipeline: load → validate → resolve → lower (→ check expressions).

Each stage is a module of its own; this one only chains them and ranks what they find.
Nothing here mutates its input, and nothing raises anything but :class:`SpecError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.plan import Plan, plan_from_json, plan_to_json
from synthc.diagnostics import Diagnostic, sort_key
from synthc.errors import SpecError

MAX_DIAGNOSTICS = 50


def compile_source(text: str, file: str = "<spec>") -> Plan:
    """A spec's text -> its Plan; raises SpecError with every diagnostic, best first.

    A spec that compiled before with the same compiler comes from the plan cache
    (``.synthc/plans``) without loading YAML, the schema or Polars."""
    cached = _cached_plan(text)
    if cached is not None:
        return cached
    plan, diags = _compile(text, file)
    if plan is None or diags:
        raise SpecError(diags)
    return plan


def compile_path(path: str | Path) -> Plan:
    return compile_source(*_read(path))


def check_source(text: str, file: str = "<spec>") -> list[Diagnostic]:
    """Every diagnostic of a spec (empty when it compiles), sorted and capped."""
    if _cached_plan(text) is not None:
        return []
    return _compile(text, file)[1]


def check_path(path: str | Path) -> list[Diagnostic]:
    try:
        return check_source(*_read(path))
    except SpecError as exc:
        return exc.diagnostics


def _read(path: str | Path) -> tuple[str, str]:
    """The spec's text (UTF-8, BOM removed), read without importing the YAML loader;
    anything unusual (missing file, bad encoding) goes through the loader's diagnostics."""
    try:
        return Path(path).read_bytes().decode("utf-8-sig"), str(path)
    except (OSError, UnicodeDecodeError):
        from synthc.loader import load_path

        text, _, _ = load_path(path)  # raises the right SpecError
        return text, str(path)


def _plan_key(text: str) -> str:
    from synthc.diskcache import compiler_identity, module_identity

    return f"{compiler_identity()};{module_identity('polars')};{text}"


def _cached_plan(text: str) -> Plan | None:
    from synthc.diskcache import JsonCache, cache_root

    data = JsonCache(cache_root() / "plans").get(_plan_key(text))
    if not isinstance(data, str):
        return None
    try:
        return plan_from_json(data)
    except (ValueError, TypeError, KeyError):
        return None  # a corrupt entry is a miss


def _remember(text: str, plan: Plan) -> None:
    from synthc.diskcache import JsonCache, cache_root

    JsonCache(cache_root() / "plans").put(_plan_key(text), plan_to_json(plan))


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
        if not diags:
            _remember(text, plan)
    return plan, _rank(diags)


def _columns_with_errors(diags: list[Diagnostic]) -> frozenset[str] | None:
    """Names of columns that have schema errors, or None when an error lies outside
    a column (then the spec's shape is too uncertain to go on)."""
    names: set[str] = set()
    for diag in diags:
        path: Any = diag.path
        if (
            len(path) >= 2
            and path[0] == "columns"
            and isinstance(path[1], str)
            and diag.code != "bad-column-name"
        ):
            names.add(path[1])
        else:
            return None
    return frozenset(names)


def _rank(diags: list[Diagnostic]) -> list[Diagnostic]:
    unique = list(dict.fromkeys(diags))
    return sorted(unique, key=sort_key)[:MAX_DIAGNOSTICS]
