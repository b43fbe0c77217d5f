"""Which columns of a plan depend on LLM columns, and how (for filling chunks and for
checks made before any call)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import polars as pl

from runtime.plan import CategoryColumn, Column, Plan


def _inputs_of(col: Column) -> tuple[str, ...]:
    if isinstance(col, CategoryColumn):
        return (col.given,) if col.given else ()
    return tuple(getattr(col, "inputs", ()))


def dependencies(plan: Plan) -> tuple[dict[str, set[str]], dict[str, list[Column]]]:
    """For each LLM column: the LLM columns it reads directly or through columns computed
    from them, and those in-between columns in evaluation order."""
    by_name = {col.name: col for col in plan.columns}
    llm = {col.name for col in plan.llm_columns()}
    deps: dict[str, set[str]] = {}
    via: dict[str, list[Column]] = {}
    for col in plan.llm_columns():
        found: set[str] = set()
        between: set[str] = set()
        stack = list(_inputs_of(col))
        while stack:
            name = stack.pop()
            if name in llm:
                found.add(name)
            elif name not in between and name in by_name and _reaches(by_name, llm, name):
                between.add(name)
                stack.extend(_inputs_of(by_name[name]))
        deps[col.name] = found
        via[col.name] = [c for c in plan.columns if c.name in between]
    return deps, via


def _reaches(by_name: Mapping[str, Column], llm: set[str], name: str) -> bool:
    """Whether column ``name`` is computed (directly or not) from an LLM column."""
    stack, seen = [name], set()
    while stack:
        current = stack.pop()
        for dep in _inputs_of(by_name[current]):
            if dep in llm:
                return True
            if dep not in seen and dep in by_name:
                seen.add(dep)
                stack.append(dep)
    return False


def struct_outputs(plan: Plan) -> list[str]:
    """LLM struct columns (and record fields) that reach the output, after drop/select/rename
    steps: CSV cannot hold them, which is worth saying before any model is called."""
    from runtime.plan import Drop, Rename, Select

    names = [c.name for c in plan.llm_columns() if c.output is not None]
    if plan.llm_source is not None:
        from runtime.llm.structured import struct_dtype

        record = struct_dtype(json.loads(plan.llm_source.schema))
        names += [f.name for f in getattr(record, "fields", ()) if isinstance(f.dtype, pl.Struct | pl.List)]
    current = [name for name in plan.column_order if name in names]
    for step in plan.steps:
        if isinstance(step, Drop):
            current = [n for n in current if n not in step.columns]
        elif isinstance(step, Select):
            current = [n for n in current if n in step.columns]
        elif isinstance(step, Rename):
            current = [dict(step.mapping).get(n, n) for n in current]
    return current


def model_dependent(plan: Plan) -> set[str]:
    """Names of the columns that are LLM columns or computed from one."""
    by_name = {col.name: col for col in plan.columns}
    llm = {col.name for col in plan.llm_columns()}
    return llm | {name for name in by_name if name not in llm and _reaches(by_name, llm, name)}
