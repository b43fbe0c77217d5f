"""synthc's exception tree and its registry of stable diagnostic codes.

Codes are part of the public contract (CI scripts grep for them): never rename one,
only add. Each is documented in ``specs/README.md`` and triggered by at least one
conformance case in ``specs/invalid/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from synthc.diagnostics import Diagnostic

# code -> one-line description (the reference in specs/README.md expands on each)
CODES: dict[str, str] = {
    # loading the file
    "file-not-found": "the spec file cannot be read",
    "empty-spec": "the spec file is empty",
    "yaml-syntax": "the file is not valid YAML",
    "duplicate-key": "a mapping has the same key twice",
    "tab-indent": "a tab character is used for indentation",
    "unsupported-yaml": "a YAML feature synthc refuses (tags, anchors/aliases, non-string keys)",
    "not-a-mapping": "the top level of a spec must be a mapping",
    # the JSON Schema
    "unsupported-version": "`synthc:` names a language version this synthc does not know",
    "missing-key": "a required key is missing",
    "unknown-key": "a key that the language does not have at this place",
    "wrong-type": "a value has the wrong type (e.g. a string where a number is expected)",
    "bad-value": "a value is not one of the allowed ones, or does not match the expected form",
    "out-of-range": "a number is outside its allowed range",
    "unknown-column-type": "a column's `type` is not one synthc has",
    "unknown-step": "a step is not one synthc has",
    # meaning of values
    "bad-distribution": "a distribution's parameters are missing, foreign to it, or invalid",
    "min-greater-than-max": "a lower bound is greater than the upper bound",
    "bad-weights": "category weights are negative, or all zero",
    "bad-datetime": "a date, datetime or duration cannot be parsed",
    "bad-format": "a sequence `format` is not a valid format for an integer",
    "given-mismatch": "a conditional category does not cover its parent's values",
    "person-group-conflict": "person columns of one group disagree on the locale",
    "too-many-rows": "`rows`, an index or an event stream would make more rows than synthc generates in one run",
    "conflicting-keys": "keys that cannot be used together (two row sources, `rows` beside `target_rows` or a row source, `end` beside `periods`)",
    "bad-time-range": "a time window ends before it starts, or is not a whole number of `every` steps",
    "seed-file": "a seed file (`from`, `lookup`) is missing, unreadable, empty, of an unknown format, or lacks the named column",
    "needs-index": "a `series` column in a spec without an `index`",
    # references between columns
    "unknown-reference": "a template, expression, `given` or step names a column that does not exist",
    "cycle": "columns depend on each other in a cycle",
    "template-syntax": "a Jinja template does not parse",
    "expression-syntax": "a Polars SQL expression does not parse",
    "expression-error": "a Polars SQL expression is invalid for the columns it uses",
    "bad-column-name": "a column name that synthc reserves or that cannot be a column",
    "duplicate-column": "a column in `columns:` has the name of a field the row source gives (an LLM source's records, an index's timestamp or entities, a `from` file's columns)",
    # models and LLM columns
    "unknown-model": "a column or the source names a model alias that `models:` does not declare",
    "bad-output-schema": "an `output` or a source's `schema` is not a valid JSON Schema of an object",
    "reserved-param": "`params` sets a key that synthc sets itself on every model call",
    "env-var-not-allowed": "`${VAR}` is used outside a model's `api_base`",
    # output
    "unknown-format": "the output format (from the extension or --format) is not supported",
    "output-error": "the output file cannot be written",
    "runtime-error": "a column's template or expression failed while rows were generated",
}


class SynthcError(Exception):
    """Base of every error synthc raises on purpose. ``exit_code`` is the CLI's."""

    exit_code = 1


class SpecError(SynthcError):
    """The spec has one or more errors; ``diagnostics`` holds all of them, best first."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        first = diagnostics[0].message if diagnostics else "invalid spec"
        more = f" (and {len(diagnostics) - 1} more)" if len(diagnostics) > 1 else ""
        super().__init__(first + more)


class UsageError(SynthcError):
    """The command line or API call is wrong (not the spec)."""

    exit_code = 2
