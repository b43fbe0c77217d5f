"""Resolve references between columns: the dependency graph and its evaluation order.

Templates and LLM prompts are parsed with the runtime's sandboxed Jinja environment;
expressions are scanned with :mod:`synthc.sqlrefs`; ``given`` names a parent column; LLM
columns and the source name a model alias. The fields of a ``source``'s records are
columns too, the first ones. Unknown names get a "did you mean", cycles are reported once
per column on the cycle, and steps are checked against the columns that exist at their
point in the pipeline.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from synthc.diagnostics import Diagnostic, Span, SpecPath
from synthc.loader import SourceMap
from synthc.sqlrefs import nondeterministic_calls, references, sql_literal


@dataclass(frozen=True)
class Graph:
    """``inputs[c]`` are the columns ``c`` reads, in declaration order; ``order`` lists
    every column after its inputs (ties broken by declaration order). ``fields`` are the
    columns the ``source`` writes (its records' fields, in the schema's order): they come
    first and read nothing."""

    inputs: Mapping[str, tuple[str, ...]]
    order: tuple[str, ...]
    fields: tuple[str, ...] = ()


def resolve(
    data: Mapping[str, Any],
    smap: SourceMap,
    skip: frozenset[SpecPath] = frozenset(),
    fields: tuple[str, ...] | None = None,
) -> tuple[Graph, list[Diagnostic]]:
    """Build the column graph of a schema-valid spec. Parts in ``skip`` (``("columns",
    name)``, ``("models", alias)``, ``("source",)``: they already have schema errors)
    still count as existing, but their own references are not read. ``fields`` are the
    row source's fields (default: an LLM source's record fields)."""
    from synthc.resolve_steps import check_steps
    from synthc.shapes import llm_record_fields

    columns: Mapping[str, Any] = data.get("columns") or {}
    fields = llm_record_fields(data) if fields is None else fields
    variables = data.get("vars") or {}
    diags = _duplicate_columns(columns, fields, smap)
    names = (*fields, *(name for name in columns if name not in fields))
    position = {name: i for i, name in enumerate(names)}
    scope = _Scope(
        position,
        frozenset(variables),
        # expressions and filters see scalar vars (their values are written into the SQL)
        frozenset(k for k, v in variables.items() if sql_literal(v) is not None),
        frozenset(data.get("models") or {}),
        smap,
        diags,
    )
    inputs: dict[str, tuple[str, ...]] = dict.fromkeys(fields, ())
    for name in names[len(fields) :]:
        refs = set() if ("columns", name) in skip else _column_refs(scope, name, columns[name])
        # inputs in declared order (a dict lookup per reference: specs may have 100k columns)
        inputs[name] = tuple(sorted(refs & position.keys(), key=position.__getitem__))
    source = data.get("source")
    if isinstance(source, Mapping) and ("source",) not in skip:
        _source_refs(scope, source)
    order, cycle_diags = _order(names, inputs, smap)
    diags.extend(cycle_diags)
    diags.extend(check_steps(data, names, scope.scalar_vars, smap))
    return Graph(inputs, order, fields), diags


def _duplicate_columns(
    columns: Mapping[str, Any], fields: tuple[str, ...], smap: SourceMap
) -> list[Diagnostic]:
    return [
        Diagnostic(
            "duplicate-column",
            f"column `{name}`: the row source already gives a column `{name}`",
            smap.span(("columns", name), key=True),
            ("columns", name),
            hint="the fields of `source.schema`, the index's timestamp and entities, and the columns "
            "of a `from` file are columns: rename this column",
        )
        for name in columns
        if name in fields
    ]


# --------------------------------------------------------------------------- column references


@dataclass(frozen=True)
class _Scope:
    """What a column's references are resolved against, and where findings go."""

    names: Mapping[str, int]  # column -> declared position
    var_names: frozenset[str]  # visible to templates
    scalar_vars: frozenset[str]  # visible to expressions and filters too
    models: frozenset[str]  # declared model aliases
    smap: SourceMap
    diags: list[Diagnostic]


def _column_refs(scope: _Scope, name: str, column: Mapping[str, Any]) -> set[str]:
    kind = column.get("type")
    path: SpecPath = ("columns", name)
    if kind == "template":
        return _template_refs(scope, name, column["template"], (*path, "template"))
    if kind == "expression":
        return _expression_refs(scope, name, column["expr"], (*path, "expr"))
    if kind == "llm":
        return _llm_refs(scope, name, column)
    names, smap, diags = scope.names, scope.smap, scope.diags
    given = column.get("given")
    if isinstance(given, str):
        if given in names and given != name:
            return {given}
        what = (
            "cannot be conditional on itself" if given == name else f"`given` names unknown column `{given}`"
        )
        diags.append(
            Diagnostic(
                "unknown-reference" if given != name else "cycle",
                f"column `{name}`: {what}",
                smap.span((*path, "given")),
                (*path, "given"),
                hint=_did_you_mean(given, (n for n in names if n != name)),
            )
        )
    return set()


# what a Jinja text is called in messages, by its key
_TEMPLATE_WORDS = {"template": "template", "prompt": "prompt", "system": "system prompt"}


def _llm_refs(scope: _Scope, name: str, column: Mapping[str, Any]) -> set[str]:
    """The columns an LLM column's prompt and system prompt read (a struct column's
    field, ``{{ triage.urgency }}``, is a reference to the column ``triage``)."""
    path: SpecPath = ("columns", name)
    _model_ref(scope, f"column `{name}`", column, path)
    refs: set[str] = set()
    for key in ("prompt", "system"):
        if isinstance(column.get(key), str):
            refs |= _template_refs(scope, name, column[key], (*path, key))
    return refs


def _model_ref(scope: _Scope, where: str, spec: Mapping[str, Any], path: SpecPath) -> None:
    alias = spec.get("model")
    if not isinstance(alias, str) or alias in scope.models:
        return
    declared = ", ".join(f"`{m}`" for m in sorted(scope.models)) or "none"
    scope.diags.append(
        Diagnostic(
            "unknown-model",
            f"{where}: unknown model `{alias}`",
            scope.smap.span((*path, "model")),
            (*path, "model"),
            hint=_did_you_mean(alias, scope.models)
            or f"name an alias declared under `models:` (declared: {declared}), "
            "e.g. models: {writer: {model: openai/gpt-4o-mini}}",
        )
    )


def _source_refs(scope: _Scope, source: Mapping[str, Any]) -> None:
    """A source's prompts may use vars only: its records exist before any column."""
    from runtime.templates import environment

    _model_ref(scope, "source", source, ("source",))
    for key in ("prompt", "system"):
        text, path = source.get(key), ("source", key)
        if not isinstance(text, str):
            continue
        found, problems = _template_names("source", text, path, scope.smap)
        scope.diags.extend(problems)
        for ref in sorted(found - scope.var_names - set(environment().globals)):
            if ref in scope.names:
                what, hint = f"column `{ref}`, but records are written before any column", None
            else:
                what, hint = f"`{ref}`, which is not a var", _did_you_mean(ref, scope.var_names)
            scope.diags.append(
                Diagnostic(
                    "unknown-reference",
                    f"source: the {_TEMPLATE_WORDS[key]} uses {what}",
                    span_in_scalar(scope.smap, path, text, _find_word(text, ref), len(ref)),
                    path,
                    hint=hint or "a source's prompts see `vars` only",
                )
            )


def _template_refs(scope: _Scope, name: str, text: str, path: SpecPath) -> set[str]:
    from runtime.templates import environment

    names, var_names, smap, diags = scope.names, scope.var_names, scope.smap, scope.diags
    found, problems = _template_names(f"column `{name}`", text, path, smap)
    diags.extend(problems)
    refs = set()
    for ref in sorted(found):
        if ref in names:
            if ref == name:
                diags.append(_self_reference(name, text, ref, path, smap))
            else:
                refs.add(ref)
        elif ref not in var_names and ref not in environment().globals:
            diags.append(
                Diagnostic(
                    "unknown-reference",
                    f"column `{name}`: {_TEMPLATE_WORDS[str(path[-1])]} uses `{ref}`, which is neither a column nor a var",
                    span_in_scalar(smap, path, text, _find_word(text, ref), len(ref)),
                    path,
                    hint=_did_you_mean(ref, [*names, *var_names]),
                )
            )
    return refs


def _template_names(
    where: str, text: str, path: SpecPath, smap: SourceMap
) -> tuple[set[str], list[Diagnostic]]:
    """The names a template reads, parsed (and compiled) in the runtime's sandbox; or no
    names and the diagnostics of a template Jinja refuses. ``where`` names its owner in
    messages ("column `x`", "source")."""
    import jinja2
    from jinja2 import meta

    from runtime.templates import environment

    def refused(message: str, line: int, word: str | None = None, hint: str | None = None) -> Diagnostic:
        start = _offset_of_line(text, line)
        offset = start if word is None else _find_word(text, word, start)
        span = span_in_scalar(smap, path, text, offset, len(word) if word else 1)
        return Diagnostic("template-syntax", f"{where}: {message}", span, path, hint)

    env = environment()
    try:
        ast = env.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        hint = "templates use Jinja syntax: {{ column }}, {% if ... %}...{% endif %}"
        return set(), [refused(f"template syntax error: {exc.message}", exc.lineno or 1, hint=hint)]
    unknown = [
        refused(f"the template uses unknown {what} `{word}`", line, word, _unknown_hint(env, what, word))
        for what, word, line in _unknown_filters_and_tests(env, ast)
    ]
    if unknown:
        return set(), unknown
    try:
        return set(meta.find_undeclared_variables(ast)), []
    except jinja2.TemplateSyntaxError as exc:  # anything else Jinja's compiler refuses
        return set(), [refused(exc.message or "the template does not compile", exc.lineno or 1)]


def _unknown_hint(env: Any, what: str, word: str) -> str:
    from runtime.templates import REMOVED_FILTERS

    if word in REMOVED_FILTERS:
        return "it is not reproducible, so synthc leaves it out: draw the value in a column (e.g. a category)"
    known = env.filters if what == "filter" else env.tests
    return _did_you_mean(word, known) or f"{what}s: {', '.join(sorted(known))}"


def _unknown_filters_and_tests(env: Any, ast: Any) -> list[tuple[str, str, int]]:
    """(``"filter"`` or ``"test"``, name, template line) for each one the sandbox lacks
    (e.g. a typo, or ``random``, which synthc removes because it is not reproducible)."""
    from jinja2 import nodes

    unknown = [("filter", n.name, n.lineno) for n in ast.find_all(nodes.Filter) if n.name not in env.filters]
    unknown += [("test", n.name, n.lineno) for n in ast.find_all(nodes.Test) if n.name not in env.tests]
    return unknown


def _expression_refs(scope: _Scope, name: str, text: str, path: SpecPath) -> set[str]:
    names, var_names, smap, diags = scope.names, scope.scalar_vars, scope.smap, scope.diags
    refs = set()
    diags.extend(_clock_diags(f"column `{name}`", text, path, smap))
    for ref in references(text):
        if ref.name == name:
            diags.append(_self_reference(name, text, ref.name, path, smap))
        elif ref.name in names:
            refs.add(ref.name)
        elif ref.name in var_names:
            continue  # the compiler writes the var's value into the expression
        else:
            diags.append(
                Diagnostic(
                    "unknown-reference",
                    f"column `{name}`: expression uses unknown column `{ref.name}`",
                    span_in_scalar(smap, path, text, ref.offset, len(ref.name)),
                    path,
                    hint=_did_you_mean(ref.name, [*names, *var_names]),
                )
            )
    return refs


def _clock_diags(where: str, text: str, path: SpecPath, smap: SourceMap) -> list[Diagnostic]:
    return [
        Diagnostic(
            "expression-error",
            f"{where}: `{call.name}` is not deterministic (wall clock or unseeded randomness)",
            span_in_scalar(smap, path, text, call.offset, len(call.name)),
            path,
            hint="a spec must regenerate the same data anywhere: use `as_of` and sampled columns instead",
        )
        for call in nondeterministic_calls(text)
    ]


def _self_reference(name: str, text: str, ref: str, path: SpecPath, smap: SourceMap) -> Diagnostic:
    return Diagnostic(
        "cycle",
        f"column `{name}` refers to itself",
        span_in_scalar(smap, path, text, _find_word(text, ref), len(ref)),
        path,
        hint="a column can only use other columns",
    )


# --------------------------------------------------------------------------- order and cycles


def _order(
    names: tuple[str, ...], inputs: Mapping[str, tuple[str, ...]], smap: SourceMap
) -> tuple[tuple[str, ...], list[Diagnostic]]:
    """Kahn's algorithm, always taking the earliest-declared ready column."""
    position = {n: i for i, n in enumerate(names)}
    waiting = {n: set(inputs[n]) for n in names}
    users: dict[str, list[str]] = {n: [] for n in names}
    for n in names:
        for dep in inputs[n]:
            users[dep].append(n)
    ready = sorted((n for n in names if not waiting[n]), key=position.__getitem__)
    order: list[str] = []
    while ready:
        current = ready.pop(0)
        order.append(current)
        for user in users[current]:
            waiting[user].discard(current)
            if not waiting[user]:
                ready.append(user)
                ready.sort(key=position.__getitem__)
    if len(order) == len(names):
        return tuple(order), []
    done = set(order)
    stuck = [n for n in names if n not in done]
    return tuple(order) + tuple(stuck), _cycle_diags(stuck, inputs, smap)


def _cycle_diags(
    stuck: list[str], inputs: Mapping[str, tuple[str, ...]], smap: SourceMap
) -> list[Diagnostic]:
    diags = []
    reported: set[str] = set()
    for start in stuck:
        cycle = _find_cycle(start, inputs, set(stuck))
        if not cycle or cycle[0] in reported:
            continue
        reported.update(cycle)
        loop = " → ".join(f"`{c}`" for c in [*cycle, cycle[0]])
        for member in cycle:
            diags.append(
                Diagnostic(
                    "cycle",
                    f"column `{member}` is part of a dependency cycle: {loop}",
                    smap.span(("columns", member), key=True),
                    ("columns", member),
                    hint="break the cycle: one of these columns must not use the others",
                )
            )
    return diags


def _find_cycle(start: str, inputs: Mapping[str, tuple[str, ...]], stuck: set[str]) -> list[str]:
    """A cycle through the stuck columns reached from ``start`` (as a list of members)."""
    path: list[str] = []
    seen: dict[str, int] = {}
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        nxt = next((d for d in inputs[node] if d in stuck), None)
        if nxt is None:
            return []
        node = nxt
    cycle = path[seen[node] :]
    pivot = cycle.index(min(cycle, key=lambda c: path.index(c)))
    return cycle[pivot:] + cycle[:pivot]


# --------------------------------------------------------------------------- positions and hints


def _did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def _find_word(text: str, word: str, start: int = 0) -> int:
    import re

    match = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])").search(text, start)
    return match.start() if match else start


def _offset_of_line(text: str, line: int) -> int:
    offset = 0
    for _ in range(line - 1):
        nl = text.find("\n", offset)
        if nl < 0:
            break
        offset = nl + 1
    return offset


def span_in_scalar(smap: SourceMap, path: SpecPath, text: str, offset: int, length: int) -> Span | None:
    """The file position of ``text[offset:offset+length]`` inside the scalar at ``path``.

    Exact for block literals (``|``) and single-line scalars; for folded or multi-line
    flow scalars the line is approximate (YAML has folded the text)."""
    whole = smap.span(path)
    origin = smap.content_origin(path)
    if whole is None or origin is None:
        return whole
    line_in_text = text.count("\n", 0, offset)
    col_in_line = offset - (text.rfind("\n", 0, offset) + 1)
    if smap.style(path) == ">":
        line, col = _in_folded(smap.lines, origin, text, offset)
    elif smap.style(path) == "|":
        line = origin[0] + line_in_text
        col = origin[1] + col_in_line
    elif line_in_text == 0:
        line, col = origin[0], origin[1] + col_in_line
    else:
        line, col = origin[0] + line_in_text, 1
    return Span(whole.file, line, col, line, col + max(1, length))


def _in_folded(lines: tuple[str, ...], origin: tuple[int, int], text: str, offset: int) -> tuple[int, int]:
    """Where ``text[offset]`` of a folded (``>``) block scalar stands in the source: YAML
    joins consecutive lines with a space and turns k blank lines into k line breaks."""
    first, indent = origin[0], origin[1] - 1
    position, blanks = 0, 0
    for number in range(first, len(lines) + 1):
        raw = lines[number - 1]
        content = raw[indent:].rstrip() if len(raw) > indent else raw.strip()
        if not content:
            blanks += 1
            continue
        if raw[:indent].strip():  # dedented: the scalar ended
            break
        if number > first:
            position += blanks if blanks else 1
        blanks = 0
        if offset < position + len(content):
            return number, indent + 1 + offset - position
        position += len(content)
    return first, origin[1]
