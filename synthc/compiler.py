"""The compiler pipeline: load → validate → resolve → lower (→ check expressions).

Each stage is a module of its own; this one only chains them and ranks what they find.
Nothing here mutates its input, and nothing raises anything but :class:`SpecError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.plan import LookupColumn, Plan, SeedFile, plan_from_json, plan_to_json
from synthc.diagnostics import Diagnostic, SpecPath, sort_key
from synthc.errors import SpecError

MAX_DIAGNOSTICS = 50


def compile_source(text: str, file: str = "<spec>") -> Plan:
    """A spec's text -> its Plan; raises SpecError with every diagnostic, best first.

    A spec that compiled before with the same compiler comes from the plan cache
    (``.synthc/plans``) without loading YAML, the schema or Polars."""
    cached = _cached_plan(text, file)
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
    if _cached_plan(text, file) is not None:
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


def _plan_key(text: str, file: str) -> str:
    from synthc.diskcache import compiler_identity, module_identity

    # Seed files are found relative to the spec: the same text elsewhere is another plan.
    return f"{compiler_identity()};{module_identity('polars')};{base_dir(file)};{text}"


def base_dir(file: str) -> Path:
    """The directory seed file paths are relative to: the spec's, or the working directory."""
    return Path(file).resolve().parent if file != "<spec>" else Path.cwd().resolve()


def _cached_plan(text: str, file: str) -> Plan | None:
    from synthc.diskcache import JsonCache, cache_root

    data = JsonCache(cache_root() / "plans").get(_plan_key(text, file))
    if not isinstance(data, str):
        return None
    try:
        plan = plan_from_json(data)
    except (ValueError, TypeError, KeyError):
        return None  # a corrupt entry is a miss
    return plan if _seed_files_unchanged(plan) else None


def _seed_files_unchanged(plan: Plan) -> bool:
    """Whether every seed file the plan read still has the bytes it had (a changed or
    missing file sends the spec through the compiler again, which reports it)."""
    files = {(f.path, f.digest) for f in seed_files(plan)}
    if not files:
        return True
    from runtime.seeds import file_digest

    try:
        return all(file_digest(Path(path)) == digest for path, digest in files)
    except OSError:
        return False


def seed_files(plan: Plan) -> list[SeedFile | LookupColumn]:
    """The plan's seed files: its ``from`` source and its lookup columns."""
    found: list[SeedFile | LookupColumn] = [c for c in plan.columns if isinstance(c, LookupColumn)]
    if isinstance(plan.source, SeedFile):
        found.append(plan.source)
    return found


def _remember(text: str, file: str, plan: Plan) -> None:
    from synthc.diskcache import JsonCache, cache_root

    JsonCache(cache_root() / "plans").put(_plan_key(text, file), plan_to_json(plan))


def _compile(text: str, file: str) -> tuple[Plan | None, list[Diagnostic]]:
    from synthc.loader import load
    from synthc.lower import lower
    from synthc.resolve import resolve
    from synthc.schema import validate
    from synthc.shapes import inspect_shape

    try:
        data, smap = load(text, file)
    except SpecError as exc:
        return None, _rank(exc.diagnostics)
    schema_diags = validate(data, smap)
    usable = _usable_part(data, schema_diags)
    if usable is None:
        return None, _rank(schema_diags)
    data, skip = usable
    shape = inspect_shape(data, smap, base_dir(file), skip)
    graph, resolve_diags = resolve(data, smap, skip, shape.fields)
    plan, lower_diags = lower(data, smap, graph, text, skip, shape)
    diags = schema_diags + shape.diags + resolve_diags + lower_diags
    if not diags:
        from synthc.sqlcheck import check_expressions

        diags = check_expressions(plan, smap)
        if not diags:
            _remember(text, file, plan)
    return plan, _rank(diags)


# Top-level keys whose schema errors leave the rest checkable (the key falls back to its
# default); an error anywhere else (columns, synthc, as_of, vars) would only cascade.
_RECOVERABLE = frozenset(
    {"rows", "seed", "output", "name", "description", "steps", "target_rows", "max_rows", "replay"}
)


def _usable_part(data: Any, diags: list[Diagnostic]) -> tuple[dict[str, Any], frozenset[SpecPath]] | None:
    """The part of a spec that later stages can still check despite schema errors, so
    one run reports as many mistakes as possible: ``(data, parts to skip)``. A part is a
    column ``("columns", name)``, a model alias ``("models", alias)`` or the source
    ``("source",)``; parts with errors are skipped (they still count as existing), steps
    are checked up to the first bad one, a bad recoverable key falls back to its default.
    None when the spec's shape is too uncertain to go on."""
    skip: set[SpecPath] = set()
    dropped: set[str] = set()
    first_bad_step: int | None = None
    for diag in diags:
        path: Any = diag.path
        if len(path) >= 2 and path[0] in ("columns", "models") and isinstance(path[1], str):
            skip.add(path[:2])
        elif path[:1] in (("source",), ("index",), ("arrivals",), ("from",)):
            skip.add(path[:1])
        elif len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
            first_bad_step = path[1] if first_bad_step is None else min(first_bad_step, path[1])
        elif path and path[0] in _RECOVERABLE:
            dropped.add(path[0])
        else:
            return None
    usable = {k: v for k, v in data.items() if k not in dropped}
    if first_bad_step is not None and isinstance(usable.get("steps"), list):
        usable["steps"] = usable["steps"][:first_bad_step]
    return usable, frozenset(skip)


def _rank(diags: list[Diagnostic]) -> list[Diagnostic]:
    unique = list(dict.fromkeys(diags))
    return sorted(unique, key=sort_key)[:MAX_DIAGNOSTICS]
