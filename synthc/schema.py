"""Validate loaded spec data against the JSON Schema and explain each mistake in words.

``validate`` runs jsonschema's Draft 2020-12 validator (imported lazily, compiled once per
process) and turns its errors into :class:`Diagnostic` objects: one per mistake, placed
through ``error.absolute_path`` and the loader's :class:`SourceMap` (never by parsing
jsonschema's messages), worded the way a person names things ("column `price`: unknown
key `sigmaa` — did you mean `sigma`?").

The schema dispatches column types and steps with ``if``/``then`` rather than ``oneOf``,
so a mistake inside a column yields that column type's errors only; the few places with
alternatives use ``if``/``then``/``else`` on the instance's JSON type for the same reason.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthc.diagnostics import Diagnostic, Span, SpecPath, sort_key

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, ValidationError

    from synthc.loader import SourceMap

__all__ = ["load_schema", "schema_path", "validate"]

_SCHEMA_FILE = "synthc.schema.json"

# Names people reach for that mean one of ours (difflib cannot guess these).
_TYPE_ALIASES = {
    "integer": "int",
    "long": "int",
    "number": "float",
    "double": "float",
    "decimal": "float",
    "boolean": "bool",
    "timestamp": "datetime",
    "time": "datetime",
    "enum": "category",
    "choice": "category",
    "name": "person",
    "faker": "person",
    "id": "uuid",
    "guid": "uuid",
    "sql": "expression",
    "expr": "expression",
    "jinja": "template",
    "text": "template",
    "string": "template",
    "serial": "sequence",
    "counter": "sequence",
    "ai": "llm",
    "gpt": "llm",
    "prompt": "llm",
}
_STEP_ALIASES = {
    "where": "filter",
    "distinct": "dedupe",
    "unique": "dedupe",
    "order_by": "sort",
    "orderby": "sort",
    "order": "sort",
    "head": "limit",
    "take": "limit",
    "sample": "shuffle",
    "remove": "drop",
    "keep": "select",
    "columns": "select",
}
# YAML 1.1 booleans that YAML 1.2 (and so synthc) reads as strings.
_YAML11_BOOLS = {"yes", "no", "on", "off", "y", "n"}
_ENUM_NOUNS = {"dist": "distribution", "locale": "locale", "field": "person field", "format": "output format"}
# A schema bound that fails (including a negative category weight; the compiler reports
# all-zero weights as `bad-weights`).
_RANGE_CODE = "out-of-range"
_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


def schema_path() -> Path:
    """The JSON Schema file: the copy packaged in the wheel if present, else the repo's."""
    packaged = Path(__file__).with_name(_SCHEMA_FILE)
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "schema" / _SCHEMA_FILE


@functools.cache
def _schema() -> dict[str, Any]:
    with schema_path().open(encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema


def load_schema() -> dict[str, Any]:
    """The parsed JSON Schema of the spec language (a fresh copy the caller may change)."""
    copied: dict[str, Any] = json.loads(json.dumps(_schema()))
    return copied


@functools.cache
def _validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator  # ~0.1 s: only when a spec is validated

    return Draft202012Validator(_schema())


def validate(data: Any, source_map: SourceMap) -> list[Diagnostic]:
    """Every schema problem of ``data`` as diagnostics, one per mistake, sorted by position.

    ``source_map`` comes from :func:`synthc.loader.load` for the same data. An empty list
    means the data conforms to the schema."""
    errors = [leaf for error in _validator().iter_errors(data) for leaf in _leaves(error)]
    explainer = _Explainer(data, source_map, _schema()["$defs"])
    diags: list[Diagnostic] = []
    seen: set[tuple[str, SpecPath, str]] = set()
    for error in _collapse(errors):
        for diag in explainer.explain(_Failure.of(error)):
            if (diag.code, diag.path, diag.message) not in seen:
                seen.add((diag.code, diag.path, diag.message))
                diags.append(diag)
    diags = [d for d in diags if (d.code, d.path) not in explainer.implied]
    return sorted(diags, key=sort_key)


@dataclass(frozen=True)
class _Failure:
    """The parts of a jsonschema error that explaining it needs, plainly typed."""

    path: SpecPath  # absolute path of the failing value
    keyword: str  # the failing keyword: "type", "required", ...
    expected: Any  # the keyword's value in the schema
    instance: Any  # the failing value
    schema: dict[str, Any]  # the (sub)schema holding the keyword
    schema_path: tuple[str | int, ...]
    message: str

    @classmethod
    def of(cls, error: ValidationError) -> _Failure:
        schema = error.schema if isinstance(error.schema, dict) else {}
        return cls(
            tuple(error.absolute_path),
            str(error.validator),
            error.validator_value,
            error.instance,
            schema,
            tuple(error.absolute_schema_path),
            error.message,
        )


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    """Replace an ``anyOf``/``oneOf`` failure by the most relevant error of its best branch."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        from jsonschema.exceptions import best_match

        best = best_match(error.context)
        if best is not None:
            yield from _leaves(best)
            return
    yield error


def _collapse(errors: list[ValidationError]) -> list[ValidationError]:
    """At a path whose value has the wrong JSON type, the type error is the only mistake."""
    first_type: dict[tuple[Any, ...], ValidationError] = {}
    for error in errors:
        if error.validator == "type":
            first_type.setdefault(tuple(error.absolute_path), error)
    return [e for e in errors if first_type.get(tuple(e.absolute_path), e) is e]


def _suggest(word: object, candidates: Iterable[str], aliases: dict[str, str] | None = None) -> str | None:
    if not isinstance(word, str):
        return None
    options = list(candidates)
    low = word.lower()
    for option in options:
        if option.lower() == low:
            return option
    if aliases and aliases.get(low) in options:
        return aliases[low]
    lowered = {option.lower(): option for option in options}
    prefixed = [o for o in options if len(low) >= 3 and o.lower().startswith(low)]
    if len(prefixed) == 1:
        return prefixed[0]
    close = difflib.get_close_matches(low, list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def _yaml_note(text: str, expected: list[str]) -> str | None:
    """Explain a plain scalar that YAML 1.1 would have read as a boolean or number."""
    if text.lower() in _YAML11_BOOLS:
        if "boolean" in expected:
            return f'synthc reads YAML 1.2, where `{text}` is the string "{text}", not a boolean: write true or false'
        return f'synthc reads YAML 1.2, where `{text}` is the string "{text}" (YAML 1.1 read it as a boolean)'
    if ("integer" in expected or "number" in expected) and "_" in text:
        digits = text.replace("_", "")
        if digits.lstrip("+-").replace(".", "", 1).isdigit():
            return f"YAML 1.2 reads `{text}` as a string; write the number without underscores: {digits}"
    return None


def _either(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _mean(suggestion: str | None) -> str:
    return f" — did you mean `{suggestion}`?" if suggestion else ""


def _show(value: Any) -> str:
    """A value as a message shows it: the string "two", 1.5, true, null, a list."""
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {json.dumps(text, ensure_ascii=False)}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _num(value)
    return "a list" if isinstance(value, list) else "a mapping"


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def _nth(path: SpecPath) -> int:
    """The 1-based number of the step at ``("steps", i, ...)``."""
    return int(path[1]) + 1


def _dotted(parts: SpecPath) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


class _Explainer:
    """Turns one jsonschema error into diagnostics worded for the spec's author."""

    def __init__(self, data: Any, source_map: SourceMap, defs: dict[str, Any]) -> None:
        self.data = data
        self.map = source_map
        self.defs = defs
        self.types = list(defs["column"]["properties"]["type"]["enum"])
        self.steps = list(defs["step"]["propertyNames"]["enum"])
        # (code, path) of diagnostics another diagnostic already explains
        self.implied: set[tuple[str, SpecPath]] = set()

    # -- naming things

    def _where(self, path: SpecPath) -> tuple[str, str]:
        """(owner, field): ("column `price`", "`sigma`"), ("step 2", "`sort.by`"), ("", "`rows`")."""
        if len(path) >= 2 and path[0] in ("columns", "models"):
            noun = "column" if path[0] == "columns" else "model"
            return f"{noun} `{path[1]}`", f"`{_dotted(path[2:])}`" if path[2:] else ""
        if path and path[0] == "source":
            return "source", f"`{_dotted(path[1:])}`" if path[1:] else ""
        if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
            name = self._step_name(path[1])
            rest = path[2:]
            if rest and rest[0] == name:
                return f"step {_nth(path)}", f"`{_dotted(rest)}`"
            owner = f"step {_nth(path)}" + (f" (`{name}`)" if name else "")
            return owner, f"`{_dotted(rest)}`" if rest else ""
        return "", f"`{_dotted(path)}`" if path else "the spec"

    def _owner(self, path: SpecPath) -> str:
        """Who holds the keys of the mapping at ``path``: "column `x`", "step 2 (`sort`)", "`output`"."""
        owner, field = self._where(path)
        if len(path) == 3 and path[0] == "steps":
            return f"step {_nth(path)} (`{path[2]}`)"
        return owner or field

    def _inside(self, path: SpecPath) -> str:
        """ " in `values`" when the mapping at ``path`` is nested inside its owner."""
        owner, field = self._where(path)
        if not owner or not field or (len(path) == 3 and path[0] == "steps"):
            return ""
        return f" in {field}"

    def _subject(self, path: SpecPath) -> str:
        owner, field = self._where(path)
        if owner and field:
            return f"{owner}: {field}"
        return owner or field

    def _step_name(self, index: int) -> str | None:
        steps = self.data.get("steps") if isinstance(self.data, dict) else None
        if isinstance(steps, list) and index < len(steps) and isinstance(steps[index], dict) and steps[index]:
            return str(next(iter(steps[index])))
        return None

    def _span(self, path: SpecPath, *, key: bool = False) -> Span | None:
        span = self.map.span(path, key=key)
        if span is not None and not key and (span.line, span.col) == (span.end_line, span.end_col):
            return self.map.span(path, key=True)  # an empty value: point at its key
        return span

    def _is_empty(self, path: SpecPath) -> bool:
        span = self.map.span(path) if path in self.map else None
        return span is not None and (span.line, span.col) == (span.end_line, span.end_col)

    def _diag(
        self,
        code: str,
        message: str,
        path: SpecPath,
        *,
        key: bool = False,
        hint: str | None = None,
        at: SpecPath | None = None,
    ) -> Diagnostic:
        return Diagnostic(code, message, self._span(path if at is None else at, key=key), path, hint)

    # -- dispatch

    def explain(self, error: _Failure) -> list[Diagnostic]:
        path = error.path
        kind = error.keyword
        if error.schema == self.defs["columnName"] and kind in ("pattern", "not"):
            return [self._bad_name(error, path)]
        if error.schema == self.defs["modelName"] and kind == "pattern":
            return [self._bad_model_name(error, path)]
        if "propertyNames" in error.schema_path and path[:1] == ("steps",) and len(path) == 2:
            return self._unknown_step(error, path)
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            result: list[Diagnostic] = handler(error, path)
            return result
        return [self._diag("bad-value", f"{self._subject(path)} is not valid here: {error.message}", path)]

    # -- one method per JSON Schema keyword

    def _on_additionalProperties(self, error: _Failure, path: SpecPath) -> list[Diagnostic]:
        allowed = list(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        owner = f"{self._owner(path)}: unknown key" if path else "unknown top-level key"
        out = []
        for key in extra:
            suggestion = _suggest(key, allowed)
            if suggestion is not None and suggestion not in error.instance:
                self.implied.add(("missing-key", (*path, suggestion)))
            hint = f"allowed here: {', '.join(allowed)}"
            owners = self._column_types_with(key)
            if owners and len(path) == 2 and path[0] == "columns":
                hint = f"`{key}` belongs to {', '.join(owners)} columns; {hint}"
            out.append(
                self._diag(
                    "unknown-key",
                    f"{owner} `{key}`{_mean(suggestion)}{self._inside(path)}",
                    (*path, key),
                    key=True,
                    hint=hint,
                )
            )
        return out

    def _column_types_with(self, key: str) -> list[str]:
        return [t for t in self.types if key in self.defs[f"column_{t}"]["properties"] and key != "type"]

    def _on_required(self, error: _Failure, path: SpecPath) -> list[Diagnostic]:
        missing = [k for k in error.expected if k not in error.instance]
        out = []
        for key in missing:
            if not path:
                message = f"missing top-level key `{key}`"
                hint = (
                    "start the spec with `synthc: 1` (the language version)"
                    if key == "synthc"
                    else "`columns:` maps each column name to its `type` and options"
                )
            elif path[0] == "columns" and len(path) == 2 and key == "type":
                message = f"column `{path[1]}`: missing key `type`"
                hint = f"every column needs a `type`: one of {', '.join(self.types)}"
            elif path[0] == "columns" and len(path) == 2:
                needs = [k for k in error.expected if k != "type"]
                kind = error.instance.get("type")
                message = f"column `{path[1]}`: missing key `{key}`"
                article = "an" if kind == "llm" else "a"
                hint = f"{article} `{kind}` column needs {' and '.join(f'`{k}`' for k in needs)}"
            else:
                message, hint = f"{self._owner(path)}: missing key `{key}`{self._inside(path)}", None
            out.append(self._diag("missing-key", message, (*path, key), key=True, hint=hint, at=path))
        return out

    def _on_type(self, error: _Failure, path: SpecPath) -> list[Diagnostic]:
        expected = [
            str(t) for t in (error.expected if isinstance(error.expected, list) else [error.expected])
        ]
        words = _either(
            [_TYPE_WORDS.get(t, t) if len(expected) == 1 or t != "boolean" else "a boolean" for t in expected]
        )
        value = error.instance
        got = "nothing (the value is empty)" if value is None and self._is_empty(path) else _show(value)
        hint = None
        if len(path) == 2 and path[0] == "columns":
            message = f"column `{path[1]}` must be a mapping with a `type`, got {got}"
            if isinstance(value, str) and value in self.types:
                hint = f"write `{path[1]}: {{type: {value}}}`"
        elif len(path) == 2 and path[0] == "steps":
            message = f"step {_nth(path)} must be a mapping with one key (the step's name), got {got}"
            if isinstance(value, str) and value in self.steps:
                hint = f"write `- {value}: true`" if value == "shuffle" else f"write `- {value}: ...`"
        else:
            message = f"{self._subject(path)} must be {words}, got {got}"
            if len(path) == 3 and path[0] == "columns" and path[2] == "values" and "object" in expected:
                hint = "with `given`, `values` maps each value of the `given` column to a list or a weight mapping"
        if isinstance(value, str) and self.map.style(path) is None:
            hint = _yaml_note(value, expected) or hint
        return [self._diag("wrong-type", message, path, hint=hint)]

    def _on_enum(self, error: _Failure, path: SpecPath) -> list[Diagnostic]:
        options = [str(o) for o in error.expected]
        value = error.instance
        if len(path) == 3 and path[0] == "columns" and path[2] == "type":
            suggestion = _suggest(value, options, _TYPE_ALIASES)
            hint = f"column types: {', '.join(options)}"
            return [
                self._diag(
                    "unknown-column-type",
                    f"column `{path[1]}`: unknown type `{value}`{_mean(suggestion)}",
                    path,
                    hint=hint,
                )
            ]
        noun = _ENUM_NOUNS.get(str(path[-1]) if path else "", "value")
        owner, field = self._where(path)
        prefix = f"{owner}: " if owner else ""
        if noun == "value":
            prefix = f"{prefix}{field}: "
        return [
            self._diag(
                "bad-value",
                f"{prefix}unknown {noun} `{value}`{_mean(_suggest(value, options))}",
                path,
                hint=f"expected one of {', '.join(options)}",
            )
        ]

    def _on_const(self, error: _Failure, path: SpecPath) -> list[Diagnostic]:
        if path == ("synthc",):
            shown = json.dumps(error.instance, ensure_ascii=False)
            hint = f"this synthc reads `synthc: {error.expected}` specs"
            if isinstance(error.instance, str):
                hint = f"write `synthc: {error.expected}` (a number, not a string)"
            return [
                self._diag(
                    "unsupported-version",
                    f"`synthc: {shown}` is not a language version this synthc knows",
                    path,
                    hint=hint,
                )
            ]
        return [
            self._diag(
                "bad-value",
                f"{self._subject(path)} must be {json.dumps(error.expected)}, got {_show(error.instance)}",
                path,
            )
        ]

    def _range(self, error: _Failure, path: SpecPath) -> list[Diagnostic]:
        schema, value = error.schema, _num(error.instance)
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            bound = f"between {_num(low)} and {_num(high)}"
        elif "exclusiveMinimum" in schema:
            bound = f"greater than {_num(schema['exclusiveMinimum'])}"
        elif "exclusiveMaximum" in schema:
            bound = f"less than {_num(schema['exclusiveMaximum'])}"
        elif low is not None:
            bound = f"at least {_num(low)}"
        else:
            bound = f"at most {_num(high)}"
        subject, hint = self._subject(path), None
        if schema == self.defs["weight"] and len(path) >= 4:
            subject = f"{self._where(path)[0]}: the weight of `{path[-1]}`"
            hint = "weights are relative: any numbers ≥ 0, not all 0"
        return [self._diag(_RANGE_CODE, f"{subject} must be {bound}, got {value}", path, hint=hint)]

    _on_minimum = _on_maximum = _on_exclusiveMinimum = _on_exclusiveMaximum = _range

    def _empty(self, error: _Failure, path: SpecPath) -> list[Diagnostic]:
        if path == ("columns",):
            return [
                self._diag(
                    "bad-value",
                    "`columns` is empty: a spec needs at least one column",
                    path,
                    key=True,
                    hint="add e.g. `id: {type: uuid}` under `columns:`",
                )
            ]
        return [self._diag("bad-value", f"{self._subject(path)} must not be empty", path)]

    _on_minItems = _on_minProperties = _on_minLength = _empty

    def _on_maxProperties(self, error: _Failure, path: SpecPath) -> list[Diagnostic]:
        if not (len(path) == 2 and path[0] == "steps"):
            return [self._diag("bad-value", f"{self._subject(path)} has too many keys", path)]
        keys = list(error.instance)
        first, out = keys[0], []
        for key in keys[1:]:
            self.implied.add(("unknown-step", (*path, key)))
            if key in self.steps:
                out.append(
                    self._diag(
                        "bad-value",
                        f"step {_nth(path)}: `{key}` must be a step of its own",
                        (*path, key),
                        key=True,
                        hint=f"start a new list item: `- {key}: ...`",
                    )
                )
            else:
                out.append(
                    self._diag(
                        "unknown-key",
                        f"step {_nth(path)} (`{first}`): unknown key `{key}`",
                        (*path, key),
                        key=True,
                        hint="a step is a mapping with one key, its name; options go inside it, "
                        "e.g. `- sort: {by: total, descending: true}`",
                    )
                )
        return out

    def _on_uniqueItems(self, error: _Failure, path: SpecPath) -> list[Diagnostic]:
        return [self._diag("bad-value", f"{self._subject(path)} lists an item twice", path)]

    def _on_pattern(self, error: _Failure, path: SpecPath) -> list[Diagnostic]:
        return [
            self._diag(
                "bad-value",
                f"{self._subject(path)} does not have the expected form, got {_show(error.instance)}",
                path,
            )
        ]

    # -- names

    def _unknown_step(self, error: _Failure, path: SpecPath) -> list[Diagnostic]:
        name = error.instance
        suggestion = _suggest(name, self.steps, _STEP_ALIASES)
        return [
            self._diag(
                "unknown-step",
                f"step {_nth(path)}: unknown step `{name}`{_mean(suggestion)}",
                (*path, name),
                key=True,
                hint=f"steps: {', '.join(self.steps)}",
            )
        ]

    def _bad_model_name(self, error: _Failure, path: SpecPath) -> Diagnostic:
        return self._diag(
            "bad-value",
            f"`{error.instance}` is not a valid model alias",
            (*path, error.instance),
            key=True,
            hint="an alias starts with a letter or `_` and has only letters, digits and `_`; "
            "the LiteLLM model string goes in its `model:`",
        )

    def _bad_name(self, error: _Failure, path: SpecPath) -> Diagnostic:
        name = error.instance
        is_key = "propertyNames" in error.schema_path
        where = (*path, name) if is_key else path
        if error.keyword == "not":
            message = f"column name `{name}` is reserved: names starting with `__` are for synthc's own use"
        else:
            message = f"`{name}` is not a valid column name"
        owner = self._where(path)[0]
        if owner and not (len(path) == 1 and path[0] == "columns"):
            message = f"{owner}: {message}"
        return self._diag(
            "bad-column-name",
            message,
            where,
            key=is_key,
            hint="a column name starts with a letter or `_` and has only letters, digits and `_`",
        )
