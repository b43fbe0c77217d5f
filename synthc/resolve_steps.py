"""Check steps against the columns that exist at their point in the pipeline.

Every column a step names must exist there; steps that add columns (validate's flag,
sessionize's session and sequence, unnest's fields) must not clash with one that does;
a step must leave at least one column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from synthc.diagnostics import Diagnostic, Span, SpecPath
from synthc.loader import SourceMap
from synthc.resolve import _clock_diags, _did_you_mean, span_in_scalar
from synthc.sqlrefs import references


def check_steps(
    data: Mapping[str, Any], names: tuple[str, ...], scalar_vars: frozenset[str], smap: SourceMap
) -> list[Diagnostic]:
    """Diagnostics for the steps of a schema-valid spec whose columns are ``names``."""
    structs = struct_fields(data)
    current = list(names)
    diags: list[Diagnostic] = []
    for i, step in enumerate(data.get("steps") or []):
        if not isinstance(step, Mapping) or len(step) != 1:
            continue
        ((kind, arg),) = step.items()
        path: SpecPath = ("steps", i, kind)
        where = f"step {i + 1} (`{kind}`)"
        if kind == "filter" and isinstance(arg, str):
            diags.extend(_filter_refs(where, arg, current, scalar_vars, path, smap))
        seen: set[str] = set()
        for name, item_path in _step_columns(kind, arg, path):
            span = smap.span(item_path, key=kind in ("rename", "validate"))
            if name not in current:
                diags.append(_unknown_step_ref(where, name, current, span, item_path))
            elif name in seen and kind != "sessionize":
                diags.append(Diagnostic("bad-value", f"{where}: `{name}` is named twice", span, item_path))
            seen.add(name)
        diags.extend(_rename_clashes(where, kind, arg, current, path, smap))
        diags.extend(_unnest_diags(where, kind, arg, current, structs, path, smap))
        after = _apply_step_names(kind, arg, current, structs)
        diags.extend(_added_clashes(where, kind, arg, current, path, smap))
        if current and not after:
            diags.append(
                Diagnostic(
                    "bad-value",
                    f"{where}: no column would be left",
                    smap.span(path, key=True),
                    path,
                    hint="a dataset needs at least one column; keep one, or remove the step",
                )
            )
        current = after
    return diags


def struct_fields(data: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Struct columns (LLM columns with an ``output`` schema) and their fields, in the
    order the column holds them (sorted: the schema is stored as canonical JSON)."""
    out: dict[str, tuple[str, ...]] = {}
    for name, spec in (data.get("columns") or {}).items():
        output = spec.get("output") if isinstance(spec, Mapping) and spec.get("type") == "llm" else None
        properties = output.get("properties") if isinstance(output, Mapping) else None
        if isinstance(properties, Mapping):
            out[str(name)] = tuple(sorted(str(k) for k in properties))
    return out


def unnest_arg(arg: Any) -> tuple[str | None, str]:
    """(column, prefix) of an ``unnest`` step."""
    if isinstance(arg, Mapping):
        column = arg.get("column")
        return (column if isinstance(column, str) else None), str(arg.get("prefix", ""))
    return (arg if isinstance(arg, str) else None), ""


def _filter_refs(
    where: str, arg: str, current: list[str], scalar_vars: frozenset[str], path: SpecPath, smap: SourceMap
) -> list[Diagnostic]:
    diags = list(_clock_diags(where, arg, path, smap))
    for ref in references(arg):
        if ref.name not in current and ref.name not in scalar_vars:
            span = span_in_scalar(smap, path, arg, ref.offset, len(ref.name))
            diags.append(_unknown_step_ref(where, ref.name, current, span, path))
    return diags


def _rename_clashes(
    where: str, kind: str, arg: Any, current: list[str], path: SpecPath, smap: SourceMap
) -> list[Diagnostic]:
    """A new name that another column keeps, or that two columns would both get."""
    if kind != "rename" or not isinstance(arg, Mapping):
        return []
    kept = {c for c in current if c not in arg}
    diags, taken = [], set()
    for old, new in arg.items():
        new = str(new)
        clash = "another column already has that name" if new in kept else "two columns would get it"
        if new in kept or new in taken:
            diags.append(
                Diagnostic(
                    "bad-value",
                    f"{where}: cannot rename `{old}` to `{new}`: {clash}",
                    smap.span((*path, old)),
                    (*path, old),
                    hint="drop or rename the other column first",
                )
            )
        taken.add(new)
    return diags


def _unnest_diags(
    where: str,
    kind: str,
    arg: Any,
    current: list[str],
    structs: Mapping[str, tuple[str, ...]],
    path: SpecPath,
    smap: SourceMap,
) -> list[Diagnostic]:
    if kind != "unnest":
        return []
    column, prefix = unnest_arg(arg)
    if column is None or column not in current:
        return []
    if column not in structs:
        return [
            Diagnostic(
                "bad-value",
                f"{where}: `{column}` is not a struct column",
                smap.span(path),
                path,
                hint="unnest takes an llm column with an `output` schema",
            )
        ]
    kept = set(current) - {column}
    return [
        Diagnostic(
            "bad-value",
            f"{where}: field `{f}` of `{column}` would become column `{prefix}{f}`, which exists already",
            smap.span(path),
            path,
            hint="give the step a prefix: `unnest: {column: " + column + ", prefix: " + column + "_}`",
        )
        for f in structs[column]
        if f"{prefix}{f}" in kept
    ]


def _added(kind: str, arg: Any) -> list[tuple[str, str]]:
    """(key, name) of the columns a step adds besides its inputs."""
    if kind == "validate" and isinstance(arg, Mapping) and arg.get("on_fail") == "flag":
        return [("flag", str(arg.get("flag", "valid")))]
    if kind == "sessionize" and isinstance(arg, Mapping):
        added = [("session", str(arg.get("session", "session_id")))]
        if isinstance(arg.get("sequence"), str):
            added.append(("sequence", arg["sequence"]))
        return added
    return []


def _added_clashes(
    where: str, kind: str, arg: Any, current: list[str], path: SpecPath, smap: SourceMap
) -> list[Diagnostic]:
    diags = []
    names = [name for _, name in _added(kind, arg)]
    for key, name in _added(kind, arg):
        if name in current or names.count(name) > 1:
            sub = (*path, key) if isinstance(arg, Mapping) and key in arg else path
            diags.append(
                Diagnostic(
                    "bad-value",
                    f"{where}: the step adds a column `{name}`, but that name is taken",
                    smap.span(sub),
                    sub,
                    hint=f"name it with `{key}:`" if key in ("flag", "session", "sequence") else None,
                )
            )
    return diags


def _step_columns(kind: str, arg: Any, path: SpecPath) -> Iterable[tuple[str, SpecPath]]:
    if kind in ("dedupe", "drop", "select"):
        items = [arg] if isinstance(arg, str) else arg
        return [(c, (*path, j)) for j, c in enumerate(items) if isinstance(c, str)]
    if kind == "rename" and isinstance(arg, Mapping):
        return [(old, (*path, old)) for old in arg]
    if kind == "sort":
        return _sort_columns(arg, path)
    if kind == "unnest":
        column, _ = unnest_arg(arg)
        return [] if column is None else [(column, (*path, "column") if isinstance(arg, Mapping) else path)]
    if kind == "validate" and isinstance(arg, Mapping) and isinstance(arg.get("checks"), Mapping):
        return [(str(c), (*path, "checks", c)) for c in arg["checks"]]
    if kind == "sessionize" and isinstance(arg, Mapping):
        return [(arg[k], (*path, k)) for k in ("by", "time") if isinstance(arg.get(k), str)]
    return []


def _sort_columns(arg: Any, path: SpecPath) -> list[tuple[str, SpecPath]]:
    if isinstance(arg, Mapping):
        by = arg.get("by")
        sub: SpecPath = (*path, "by")
    else:
        by, sub = arg, path
    if isinstance(by, str):
        return [(by, sub)]
    if isinstance(by, list):
        return [(c, (*sub, j)) for j, c in enumerate(by) if isinstance(c, str)]
    return []


def _apply_step_names(
    kind: str, arg: Any, current: list[str], structs: Mapping[str, tuple[str, ...]]
) -> list[str]:
    if kind == "drop":
        gone = {arg} if isinstance(arg, str) else set(arg)
        return [c for c in current if c not in gone]
    if kind == "select":
        wanted = [arg] if isinstance(arg, str) else list(arg)
        return [c for c in wanted if c in current]
    if kind == "rename" and isinstance(arg, Mapping):
        return [str(arg.get(c, c)) for c in current]
    if kind == "unnest":
        column, prefix = unnest_arg(arg)
        if column in structs:
            out: list[str] = []
            for c in current:
                out.extend(f"{prefix}{f}" for f in structs[c]) if c == column else out.append(c)
            return out
    added = [name for _, name in _added(kind, arg)]
    return current + [name for name in added if name not in current]


def _unknown_step_ref(
    where: str, name: str, current: list[str], span: Span | None, path: SpecPath
) -> Diagnostic:
    return Diagnostic(
        "unknown-reference",
        f"{where}: no column `{name}` at this point of the pipeline",
        span,
        path,
        hint=_did_you_mean(name, current) or f"columns here: {', '.join(current) or '(none)'}",
    )
