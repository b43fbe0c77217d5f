"""Lower a schema-valid, resolved spec into a :class:`runtime.plan.Plan`.

This is where values get their meaning: distribution parameters, weights, dates,
formats and conditional categories are checked here (the schema only knows shapes).
Every problem becomes a diagnostic; lowering goes on past it so one run reports all.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import xxhash

from runtime import plan as ir
from runtime.defaults import MAX_ROWS
from synthc.diagnostics import Diagnostic, SpecPath
from synthc.loader import SourceMap
from synthc.lower_llm import env_var_diags, llm_column, lower_models, lower_source
from synthc.lower_series import lookup_column, series_column, shaped_step, target
from synthc.lower_shapes import lower_row_source
from synthc.resolve import Graph
from synthc.shapes import Shape
from synthc.sqlrefs import substitute_vars
from synthc.timeparse import US_PER_DAY, TimeParseError, absolute_us, instant_us, is_relative

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Parameters each distribution takes (uniform's bounds are the column's min/max).
DIST_PARAMS: dict[str, tuple[str, ...]] = {
    "uniform": (),
    "normal": ("mean", "sd"),
    "lognormal": ("mu", "sigma"),
    "exponential": ("scale",),
    "poisson": ("lam",),
    "binomial": ("n", "p"),
    "gamma": ("shape", "scale"),
    "beta": ("a", "b"),
    "zipf": ("a",),
}
ALL_PARAMS = frozenset(p for params in DIST_PARAMS.values() for p in params)
# (test, text) per parameter that has a constraint beyond "a number"
_PARAM_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "sd": (lambda v: v > 0, "must be greater than 0"),
    "sigma": (lambda v: v > 0, "must be greater than 0"),
    "scale": (lambda v: v > 0, "must be greater than 0"),
    "lam": (lambda v: v > 0, "must be greater than 0"),
    "shape": (lambda v: v > 0, "must be greater than 0"),
    "b": (lambda v: v > 0, "must be greater than 0"),
    "n": (lambda v: v >= 0 and float(v).is_integer(), "must be a whole number ≥ 0"),
    "p": (lambda v: 0 <= v <= 1, "must be between 0 and 1"),
}


@dataclass
class _Lowering:
    """Shared state of one lowering pass: the spec, its source map and the findings."""

    data: Mapping[str, Any]
    smap: SourceMap
    graph: Graph
    shape: Shape = field(default_factory=Shape)
    diags: list[Diagnostic] = field(default_factory=list)
    as_of: int | None = None
    as_of_reported: bool = False  # a missing or bad `as_of` is reported once

    def error(
        self, code: str, message: str, path: SpecPath, *, key: bool = False, hint: str | None = None
    ) -> None:
        self.diags.append(Diagnostic(code, message, self.smap.span(path, key=key), path, hint))


def lower(
    data: Mapping[str, Any],
    smap: SourceMap,
    graph: Graph,
    source_text: str,
    skip: frozenset[SpecPath] = frozenset(),
    shape: Shape | None = None,
) -> tuple[ir.Plan, list[Diagnostic]]:
    """Parts in ``skip`` (``("columns", name)``, ``("models", alias)``, ``("source",)``:
    they have schema errors) are left out of the plan silently."""
    state = _Lowering(data, smap, graph, shape or Shape())
    state.as_of = _as_of(state)
    columns = data.get("columns") or {}
    fields = frozenset(graph.fields)
    nodes = [node for name in graph.order if (node := _node(state, name, fields, skip)) is not None]
    _check_identities(state, columns)
    state.diags.extend(env_var_diags(data, smap, skip))
    seed = int(data.get("seed", 0))
    source, rows = _row_source(state, seed, skip)
    goal = target(state, data, state.shape)
    rows = rows if rows is not None else goal.max_rows if goal is not None else int(data.get("rows", 1000))
    if rows > MAX_ROWS and "rows" in data:
        state.error(
            "too-many-rows",
            f"rows: {rows:,} is more than synthc generates in one run ({MAX_ROWS:,})",
            ("rows",),
        )
    plan = ir.Plan(
        name=str(data.get("name", "")),
        seed=seed,
        rows=rows,
        as_of=state.as_of or 0,
        columns=tuple(nodes),
        column_order=(
            *graph.fields,
            *(n for n in columns if n not in fields and ("columns", n) not in skip),
        ),
        steps=tuple(_steps(state, data.get("steps") or [], data.get("vars") or {}, _all_names(data, graph))),
        vars=json.dumps(data.get("vars") or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        models=lower_models(state, data, skip),
        source=source,
        target=goal,
        output=_output(state),
        replay=_replay(state),
        spec_hash=xxhash.xxh3_128_hexdigest(source_text.encode()),
    )
    return plan, state.diags


def _as_of(state: _Lowering) -> int | None:
    text = state.data.get("as_of")
    if text is None:
        return None
    try:
        return absolute_us(str(text))
    except TimeParseError as exc:
        state.error("bad-datetime", f"as_of: {exc}", ("as_of",))
        state.as_of_reported = True
        return None


# --------------------------------------------------------------------------- columns


def _node(state: _Lowering, name: str, fields: frozenset[str], skip: frozenset[SpecPath]) -> ir.Column | None:
    if name in fields:
        return ir.RecordField(name)
    if ("columns", name) in skip:
        return None
    return _column(state, name, state.data["columns"][name])


def _column(state: _Lowering, name: str, spec: Mapping[str, Any]) -> ir.Column | None:
    kind = spec["type"]
    nulls = float(spec.get("nulls", 0.0))
    _finite(state, name, spec, ("nulls", "p") if kind == "bool" else ("nulls",))
    path: SpecPath = ("columns", name)
    match kind:
        case "uuid":
            return ir.UUIDColumn(name, nulls)
        case "sequence":
            _in_int64(state, name, spec, ("start", "step"))
            fmt = spec.get("format")
            if fmt is not None and not _valid_int_format(str(fmt)):
                state.error(
                    "bad-format",
                    f"column `{name}`: `{fmt}` is not a format for a whole number",
                    (*path, "format"),
                    hint="use one {} field with an optional spec, e.g. ORD-{:06d} or {:,}",
                )
            return ir.SequenceColumn(name, int(spec.get("start", 1)), int(spec.get("step", 1)), fmt, nulls)
        case "int" | "float":
            return _number(state, name, spec, kind, nulls)
        case "bool":
            return ir.BoolColumn(name, float(spec.get("p", 0.5)), nulls)
        case "category":
            return _category(state, name, spec, nulls)
        case "datetime" | "date":
            return _time(state, name, spec, kind, nulls)
        case "person":
            return ir.PersonColumn(
                name,
                spec.get("field", "name"),
                spec.get("locale", "en_US"),
                str(spec.get("identity", "default")),
                nulls,
            )
        case "expression":
            expr = substitute_vars(
                spec["expr"], state.data.get("vars") or {}, _all_names(state.data, state.graph)
            )
            return ir.ExpressionColumn(name, expr, state.graph.inputs[name], nulls)
        case "template":
            return ir.TemplateColumn(name, spec["template"], state.graph.inputs[name], nulls)
        case "llm":
            return llm_column(state, name, spec, state.graph.inputs[name], nulls)
        case "series":
            return series_column(state, state.data, name, spec, nulls)
        case "lookup":
            return lookup_column(state, state.shape, name, spec, nulls)
    return None


def _row_source(
    state: _Lowering, seed: int, skip: frozenset[SpecPath]
) -> tuple[ir.Source | None, int | None]:
    """The plan's row source and, for an index, arrivals or seed file, the rows it makes."""
    kind = state.shape.kind
    if kind == "source":
        return lower_source(state, state.data, skip), None
    if kind is None or (kind,) in skip:
        return None, None
    if "rows" in state.data:
        state.error(
            "conflicting-keys",
            f"`rows` cannot be used with `{kind}`: the {kind} decides how many rows there are",
            ("rows",),
            key=True,
            hint="remove `rows`; a `limit` step keeps the first N rows",
        )
    return lower_row_source(state, state.data, state.shape, lambda n, spec, _: _column(state, n, spec), seed)


def _valid_int_format(fmt: str) -> bool:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(fmt) if f is not None]
        if len(fields) != 1 or fields[0] not in ("", "0"):
            return False
        fmt.format(12345)
    except (ValueError, IndexError, KeyError, TypeError):
        return False
    return True


def _finite(state: _Lowering, name: str, spec: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        value = spec.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            state.error(
                "bad-value",
                f"column `{name}`: `{key}` must be a finite number, got {value}",
                ("columns", name, key),
            )


def _in_int64(state: _Lowering, name: str, spec: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    """Bounds of Int64 columns must be Int64 values themselves (the runtime draws in int64)."""
    for key in keys:
        value = spec.get(key)
        if isinstance(value, int | float) and math.isfinite(value) and not INT64_MIN <= value <= INT64_MAX:
            state.error(
                "out-of-range",
                f"column `{name}`: `{key}` must be between {INT64_MIN:,} and {INT64_MAX:,} (a 64-bit integer), got {value}",
                ("columns", name, key),
            )


def _number(state: _Lowering, name: str, spec: Mapping[str, Any], kind: str, nulls: float) -> ir.NumberColumn:
    path: SpecPath = ("columns", name)
    _finite(state, name, spec, ("min", "max", *sorted(ALL_PARAMS)))
    if kind == "int":
        _in_int64(state, name, spec, ("min", "max"))
    dist = str(spec.get("dist", "uniform"))
    wanted = DIST_PARAMS[dist]
    lo, hi = spec.get("min"), spec.get("max")
    for key in sorted(ALL_PARAMS.intersection(spec) - set(wanted)):
        takes = ", ".join(wanted) if wanted else "only min and max"
        state.error(
            "bad-distribution",
            f"column `{name}`: `{key}` is not a parameter of the {dist} distribution",
            (*path, key),
            key=True,
            hint=f"{dist} takes {takes}",
        )
    for key in wanted:
        if key not in spec:
            state.error(
                "bad-distribution",
                f"column `{name}`: the {dist} distribution needs `{key}`",
                path + (("dist",) if "dist" in spec else ()),
                key="dist" not in spec,
                hint=f"{dist} takes {', '.join(wanted)}",
            )
        elif key in _PARAM_RULES and math.isfinite(spec[key]) and not _PARAM_RULES[key][0](float(spec[key])):
            state.error(
                "bad-distribution",
                f"column `{name}`: `{key}` {_PARAM_RULES[key][1]}, got {spec[key]}",
                (*path, key),
            )
    if dist == "zipf" and "a" in spec and math.isfinite(spec["a"]) and not float(spec["a"]) > 1:
        state.error(
            "bad-distribution",
            f"column `{name}`: zipf `a` must be greater than 1, got {spec['a']}",
            (*path, "a"),
        )
    if dist == "beta" and "a" in spec and math.isfinite(spec["a"]) and not float(spec["a"]) > 0:
        state.error(
            "bad-distribution", f"column `{name}`: `a` must be greater than 0, got {spec['a']}", (*path, "a")
        )
    if dist == "uniform":
        for key, value in (("min", lo), ("max", hi)):
            if value is None:
                state.error(
                    "bad-distribution",
                    f"column `{name}`: a uniform {kind} needs `min` and `max`",
                    path,
                    key=True,
                    hint="e.g. {type: " + kind + ", min: 1, max: 100}",
                )
                break
            if kind == "int" and math.isfinite(value) and not float(value).is_integer():
                state.error(
                    "bad-distribution",
                    f"column `{name}`: `{key}` of an int column must be a whole number",
                    (*path, key),
                )
    if lo is not None and hi is not None and float(lo) > float(hi):
        state.error(
            "min-greater-than-max", f"column `{name}`: min ({lo}) is greater than max ({hi})", (*path, "min")
        )
    params = tuple(sorted((k, float(spec[k])) for k in wanted if k in spec))
    return ir.NumberColumn(
        name,
        "int" if kind == "int" else "float",
        ir.Dist(dist, params),  # type: ignore[arg-type]  # dist is schema-checked
        _bound(kind, lo),
        _bound(kind, hi),
        None if spec.get("round") is None else int(spec["round"]),
        nulls,
    )


def _bound(kind: str, value: Any) -> int | float | None:
    """A clip bound as the plan stores it: whole numbers of an int column stay exact
    integers (a float cannot hold 2**63 - 1), everything else is a float."""
    if value is None:
        return None
    if kind == "int" and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return float(value)


# --------------------------------------------------------------------------- categories


def _category(state: _Lowering, name: str, spec: Mapping[str, Any], nulls: float) -> ir.CategoryColumn:
    path: SpecPath = ("columns", name, "values")
    values = spec["values"]
    given = spec.get("given")
    if given is None:
        choice = _choice(state, name, values, path, None)
        _check_one_type(state, name, choice.values, path)
        return ir.CategoryColumn(name, (choice,), None, nulls)
    parent_values = _parent_values(state, name, str(given))
    if not isinstance(values, Mapping):
        state.error(
            "given-mismatch",
            f"column `{name}`: with `given: {given}`, `values` must map each value of `{given}` to its choices",
            path,
            hint="e.g. values: {A: [x, y], B: {x: 0.9, y: 0.1}}",
        )
        return ir.CategoryColumn(name, (), str(given), nulls)
    by_key = {_key_text(v): v for v in parent_values} if parent_values is not None else {}
    choices = []
    for key, sub in values.items():
        if parent_values is not None and key not in by_key:
            state.error(
                "given-mismatch",
                f"column `{name}`: `{key}` is not a value of `{given}`",
                (*path, key),
                key=True,
                hint=f"`{given}` takes: {', '.join(by_key)}",
            )
            continue
        choices.append(_choice(state, name, sub, (*path, key), by_key.get(key, key)))
    if parent_values is not None:
        missing = [k for k in by_key if k not in values]
        if missing:
            state.error(
                "given-mismatch",
                f"column `{name}`: no choices for {', '.join(f'`{m}`' for m in missing)} of `{given}`",
                path,
                key=True,
                hint="give every value of the parent column its own list or weights",
            )
    _check_one_type(state, name, tuple(v for c in choices for v in c.values), path)
    return ir.CategoryColumn(name, tuple(choices), str(given), nulls)


def _parent_values(state: _Lowering, name: str, given: str) -> tuple[ir.Scalar, ...] | None:
    if given in state.graph.fields:
        state.error(
            "given-mismatch",
            f"column `{name}`: `given` must name a category or bool column; `{given}` is a field of the source's records",
            ("columns", name, "given"),
        )
        return None
    parent = (state.data.get("columns") or {}).get(given)
    if not isinstance(parent, Mapping) or given == name:
        return None  # unknown parent or itself: reported by the resolver
    if parent.get("type") == "bool":
        return (True, False)
    if parent.get("type") == "category":
        values = parent.get("values")
        if parent.get("given") is not None and isinstance(values, Mapping):
            return tuple(dict.fromkeys(v for sub in values.values() for v in _values_of(sub)))
        return tuple(_values_of(values))
    state.error(
        "given-mismatch",
        f"column `{name}`: `given` must name a category or bool column; `{given}` is a {parent.get('type')}",
        ("columns", name, "given"),
    )
    return None


def _values_of(values: Any) -> list[ir.Scalar]:
    if isinstance(values, Mapping):
        return list(values)
    return list(values) if isinstance(values, list) else []


def _key_text(value: ir.Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _choice(state: _Lowering, name: str, values: Any, path: SpecPath, when: ir.Scalar | None) -> ir.Choice:
    if isinstance(values, Mapping):
        # Mapping keys were stringified by the loader; a weighted category of numbers or
        # booleans gets its typed keys back from the source map.
        items = [(_typed_key(state, (*path, k), k), w) for k, w in values.items()]
        weights = [float(w) for _, w in items]
        bad = next((k for k, w in zip(values, weights, strict=True) if w < 0 or not math.isfinite(w)), None)
        if bad is not None or not any(w > 0 for w in weights):
            state.error(
                "bad-weights",
                f"column `{name}`: "
                + (f"weight of `{bad}` is {values[bad]}" if bad is not None else "the weights are all zero"),
                (*path, bad) if bad is not None else path,
                hint="weights are relative and need not sum to 1, but they must be finite, ≥ 0 and not all 0",
            )
            weights = [1.0] * len(items)
        total = sum(weights)
        return ir.Choice(when, tuple(k for k, _ in items), tuple(w / total for w in weights))
    seq = list(values) if isinstance(values, list) else [values]
    return ir.Choice(when, tuple(seq), tuple(1.0 / len(seq) for _ in seq) if seq else ())


def _typed_key(state: _Lowering, path: SpecPath, key: str) -> ir.Scalar:
    typed = state.smap.key_value(path)
    return typed if isinstance(typed, str | int | float | bool) else key


def _check_one_type(state: _Lowering, name: str, values: tuple[ir.Scalar, ...], path: SpecPath) -> None:
    kinds = {
        "number" if isinstance(v, int | float) and not isinstance(v, bool) else type(v).__name__
        for v in values
    }
    if len(kinds) > 1:
        state.error(
            "bad-value",
            f"column `{name}`: values mix types ({', '.join(sorted(kinds))}); a column has one type",
            path,
            hint='quote numbers to make them strings, e.g. "1"',
        )


# --------------------------------------------------------------------------- time


def _time(state: _Lowering, name: str, spec: Mapping[str, Any], kind: str, nulls: float) -> ir.TimeColumn:
    bounds: list[int | None] = []
    for key in ("start", "end"):
        text = str(spec[key])
        if is_relative(text) and state.as_of is None:
            _need_as_of(state, name, text, key)
            bounds.append(None)
            continue
        try:
            bounds.append(instant_us(text, state.as_of))
        except TimeParseError as exc:
            state.error("bad-datetime", f"column `{name}`: {exc}", ("columns", name, key))
            bounds.append(None)
    start, end = (b if b is not None else 0 for b in bounds)
    if None not in bounds and start > end:
        state.error(
            "min-greater-than-max",
            f"column `{name}`: start ({spec['start']}) is after end ({spec['end']})",
            ("columns", name, "start"),
        )
    if kind == "date":
        return ir.TimeColumn(name, "date", start // US_PER_DAY, end // US_PER_DAY, nulls)
    return ir.TimeColumn(name, "datetime", start, end, nulls)


def _need_as_of(state: _Lowering, name: str, text: str, key: str) -> None:
    """One diagnostic for a missing ``as_of``, at its first use (not one per date)."""
    if state.as_of_reported:
        return
    state.as_of_reported = True
    state.error(
        "missing-key",
        f"column `{name}`: the relative date `{text}` needs `as_of`, the instant relative dates count from",
        ("columns", name, key),
        hint="add e.g. `as_of: 2025-01-01T00:00:00Z` at the top of the spec (synthc never reads the clock)",
    )


# --------------------------------------------------------------------------- person identities


def _check_identities(state: _Lowering, columns: Mapping[str, Any]) -> None:
    locales: dict[str, tuple[str, str]] = {}
    for name, spec in columns.items():
        if not isinstance(spec, Mapping) or spec.get("type") != "person":
            continue
        identity, locale = str(spec.get("identity", "default")), str(spec.get("locale", "en_US"))
        first = locales.setdefault(identity, (name, locale))
        if first[1] != locale:
            state.error(
                "person-group-conflict",
                f"column `{name}`: locale {locale} differs from column `{first[0]}` ({first[1]}), "
                f"but both describe identity `{identity}`",
                ("columns", name, "locale") if "locale" in spec else ("columns", name),
                key="locale" not in spec,
                hint="use the same locale, or give one of them another `identity:`",
            )


# --------------------------------------------------------------------------- steps and output


def _all_names(data: Mapping[str, Any], graph: Graph) -> frozenset[str]:
    """Every name a column has anywhere in the pipeline (declared or given by rename):
    those shadow vars of the same name in expressions and filters."""
    names = set(data.get("columns") or {}) | set(graph.fields)
    for step in data.get("steps") or []:
        if isinstance(step, Mapping) and isinstance(step.get("rename"), Mapping):
            names.update(str(new) for new in step["rename"].values())
    return frozenset(names)


def _steps(
    state: _Lowering, steps: list[Any], variables: Mapping[str, Any], names: frozenset[str]
) -> list[ir.Step]:
    out: list[ir.Step] = []
    for i, step in enumerate(steps):
        ((kind, arg),) = step.items()
        match kind:
            case "filter":
                out.append(ir.Filter(substitute_vars(str(arg), variables, names)))
            case "dedupe":
                out.append(ir.Dedupe(_names(arg)))
            case "drop":
                out.append(ir.Drop(_names(arg)))
            case "select":
                out.append(ir.Select(_names(arg)))
            case "rename":
                out.append(ir.Rename(tuple((str(k), str(v)) for k, v in arg.items())))
            case "sort":
                out.append(_sort(arg))
            case "shuffle":
                if arg:
                    out.append(ir.Shuffle())
            case "limit":
                out.append(ir.Limit(int(arg)))
            case _:
                shaped = shaped_step(state, kind, arg, ("steps", i, kind))
                if shaped is not None:
                    out.append(shaped)
    return out


def _names(arg: Any) -> tuple[str, ...]:
    return (arg,) if isinstance(arg, str) else tuple(arg)


def _sort(arg: Any) -> ir.Sort:
    if isinstance(arg, Mapping):
        by = arg["by"]
        return ir.Sort((by,) if isinstance(by, str) else tuple(by), bool(arg.get("descending", False)))
    return ir.Sort((arg,) if isinstance(arg, str) else tuple(arg))


def _output(state: _Lowering) -> ir.Output | None:
    output = state.data.get("output")
    if not isinstance(output, Mapping) or "path" not in output:
        return None
    path = str(output["path"])
    fmt = output.get("format") or ir.format_for_path(path)
    if fmt is None:
        state.error(
            "unknown-format",
            f"output: cannot tell the format of `{path}` from its extension",
            ("output", "path"),
            hint="use .parquet, .csv, .json or .jsonl, or set output.format",
        )
        return None
    return ir.Output(path, fmt)


def _replay(state: _Lowering) -> tuple[str, ...]:
    """``replay:`` packs as absolute paths (written relative to the spec)."""
    value = state.data.get("replay")
    items = [value] if isinstance(value, str) else list(value or [])
    return tuple(str((state.shape.base_dir / str(item)).resolve()) for item in items)
