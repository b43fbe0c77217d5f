"""Lower the LLM parts of a spec: ``models:``, ``type: llm`` columns and an LLM ``source``.

What the JSON Schema of the language cannot say is checked here: a JSON Schema given as
an ``output`` or a source's ``schema`` must itself be valid (Draft 2020-12) and describe
an object; ``params`` may not set what the transport sets itself; ``${VAR}`` is read only
in a model's ``api_base``. Every problem becomes a diagnostic; nothing here raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from runtime import plan as ir
from runtime.llm.transport import RESERVED_PARAMS
from synthc.diagnostics import Diagnostic, SpecPath, format_path
from synthc.loader import SourceMap
from synthc.resolve import span_in_scalar

__all__ = ["ENV_VAR", "env_var_diags", "llm_column", "lower_models", "lower_source"]

ENV_VAR = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_ENV_HINT = (
    "a spec reads the environment only in a model's `api_base`; API keys come from the "
    "environment by LiteLLM's names (e.g. OPENAI_API_KEY) or the variable a model's `api_key_env` names"
)
# How each optional setting of a model alias is stored in the plan (absent: the IR's default).
_ALIAS_SETTINGS: dict[str, Callable[[Any], Any]] = {
    "api_base": str,
    "api_key_env": str,
    "concurrency": int,
    "rpm": int,
    "tpm": int,
    "timeout": float,
    "retries": int,
    "backoff": float,
}
_SCHEMA_EXAMPLES = {
    "output": "output: {type: object, properties: {urgency: {enum: [low, high]}}}",
    "schema": "schema: {type: object, properties: {name: {type: string}}}",
}


class Reporter(Protocol):
    """Where findings go (the lowering pass's state)."""

    smap: SourceMap
    diags: list[Diagnostic]

    def error(
        self, code: str, message: str, path: SpecPath, *, key: bool = False, hint: str | None = None
    ) -> None: ...


# --------------------------------------------------------------------------- models


def lower_models(
    report: Reporter, data: Mapping[str, Any], skip: frozenset[SpecPath]
) -> tuple[ir.ModelAlias, ...]:
    """Every declared alias is checked; the plan holds the aliases a column or the source
    uses, in declared order (an unused alias cannot change the rows, so not the hash)."""
    used = _used_aliases(data, skip)
    out = []
    for alias, spec in (data.get("models") or {}).items():
        path: SpecPath = ("models", alias)
        if path in skip:
            continue
        finite = _finite(report, spec, path)
        _check_params(report, spec.get("params"), (*path, "params"))
        if alias in used and finite:
            out.append(_model_alias(alias, spec))
    return tuple(out)


def _used_aliases(data: Mapping[str, Any], skip: frozenset[SpecPath]) -> set[str]:
    specs = [
        spec
        for name, spec in (data.get("columns") or {}).items()
        if ("columns", name) not in skip and isinstance(spec, Mapping) and spec.get("type") == "llm"
    ]
    if isinstance(data.get("source"), Mapping) and ("source",) not in skip:
        specs.append(data["source"])
    return {str(spec["model"]) for spec in specs if "model" in spec}


def _model_alias(alias: str, spec: Mapping[str, Any]) -> ir.ModelAlias:
    settings = {key: convert(spec[key]) for key, convert in _ALIAS_SETTINGS.items() if key in spec}
    return ir.ModelAlias(
        alias,
        str(spec["model"]),
        tuple(str(f) for f in spec.get("fallbacks") or ()),
        ir.canonical_json(spec.get("params") or {}),
        **settings,
    )


def _check_params(report: Reporter, params: Any, path: SpecPath) -> None:
    """``params`` go to the provider as they are, except the keys the transport owns."""
    if not isinstance(params, Mapping):
        return
    owner = f"{'model' if path[0] == 'models' else 'column'} `{path[1]}`"
    for key in params:
        if key in RESERVED_PARAMS:
            report.error(
                "reserved-param",
                f"{owner}: `params.{key}` is not allowed: synthc sets `{key}` itself on every call",
                (*path, key),
                key=True,
                hint=_RESERVED_HINTS.get(str(key), "remove it from `params`"),
            )


_RESERVED_HINTS = {
    "model": "the alias's `model:` is the model; columns name the alias",
    "messages": "the messages come from the column's `prompt` and `system`",
    "response_format": "give the column an `output` JSON Schema: synthc asks for structured output itself",
    "api_base": "set `api_base` on the model alias, next to `model:`",
    "base_url": "set `api_base` on the model alias, next to `model:`",
    "api_key": "keys come from the environment: name the variable with the alias's `api_key_env`",
    "timeout": "set `timeout` on the model alias, next to `model:`",
    "num_retries": "set `retries` (and `backoff`) on the model alias",
    "max_retries": "set `retries` (and `backoff`) on the model alias",
    "fallbacks": "set `fallbacks` on the model alias",
}


# --------------------------------------------------------------------------- columns and source


def llm_column(
    report: Reporter, name: str, spec: Mapping[str, Any], inputs: tuple[str, ...], nulls: float
) -> ir.LLMColumn:
    """An ``llm`` column; with ``output`` a struct column of the schema's properties."""
    path: SpecPath = ("columns", name)
    params, output = spec.get("params") or {}, spec.get("output")
    finite = _finite(report, params, (*path, "params"))
    _check_params(report, params, (*path, "params"))
    if output is not None:
        finite = _finite(report, output, (*path, "output")) and finite
        if finite:
            _check_object_schema(report, output, (*path, "output"), f"column `{name}`")
    system = spec.get("system")
    return ir.LLMColumn(
        name,
        str(spec["model"]),
        str(spec["prompt"]),
        inputs,
        None if system is None else str(system),
        ir.canonical_json(params) if finite else "{}",
        None if output is None or not finite else ir.canonical_json(output),
        nulls,
    )


def lower_source(report: Reporter, data: Mapping[str, Any], skip: frozenset[SpecPath]) -> ir.LLMSource | None:
    """The ``source`` (None without one, or when it has schema errors)."""
    source = data.get("source")
    if not isinstance(source, Mapping) or ("source",) in skip:
        return None
    schema = source["schema"]
    finite = _finite(report, schema, ("source", "schema"))
    if finite:
        _check_object_schema(report, schema, ("source", "schema"), "source")
    system = source.get("system")
    return ir.LLMSource(
        str(source["model"]),
        str(source["prompt"]),
        ir.canonical_json(schema) if finite else "{}",
        int(source.get("per_call", ir.LLMSource.per_call)),
        None if system is None else str(system),
    )


def _check_object_schema(report: Reporter, schema: Mapping[str, Any], path: SpecPath, where: str) -> None:
    """A JSON Schema (Draft 2020-12) whose top level is an object with properties."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    key = str(path[-1])
    example = f"e.g. {_SCHEMA_EXAMPLES[key]}"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        at = (*path, *exc.absolute_path)
        inside = format_path(at[len(path) - 1 :])
        message = f"{where}: `{inside}` is not valid JSON Schema: {exc.message}"
        report.error(
            "bad-output-schema", message, at, hint="see https://json-schema.org/understanding-json-schema"
        )
        return
    if schema.get("type") != "object":
        got = f"`type: {schema['type']}`" if "type" in schema else "no `type`"
        at = (*path, "type") if "type" in schema else path
        message = f"{where}: `{key}` must describe an object (`type: object`), but it has {got}"
        report.error("bad-output-schema", message, at, key="type" not in schema, hint=example)
    elif not isinstance(schema.get("properties"), Mapping) or not schema["properties"]:
        at = (*path, "properties") if "properties" in schema else path
        message = f"{where}: `{key}` must list the object's `properties` (its fields)"
        report.error("bad-output-schema", message, at, key=True, hint=example)


# --------------------------------------------------------------------------- values


def _finite(report: Reporter, value: Any, path: SpecPath) -> bool:
    """Report every ``.inf``/``.nan`` inside ``value`` (JSON has no such numbers)."""
    bad = [p for p, v in _scalars(value, path) if isinstance(v, float) and not math.isfinite(v)]
    for at in bad:
        report.error("bad-value", f"`{format_path(at)}` must be a finite number", at)
    return not bad


def env_var_diags(data: Mapping[str, Any], smap: SourceMap, skip: frozenset[SpecPath]) -> list[Diagnostic]:
    """A diagnostic at every ``${VAR}`` outside ``models.<alias>.api_base`` (parts in
    ``skip`` have schema errors and are left alone)."""
    diags = []
    for path, value in _scalars(data, ()):
        if not isinstance(value, str) or "${" not in value or _allows_env(path) or _skipped(path, skip):
            continue
        for match in ENV_VAR.finditer(value):
            diags.append(
                Diagnostic(
                    "env-var-not-allowed",
                    f"`{format_path(path)}` uses `{match.group()}`, but only a model's `api_base` "
                    "reads environment variables",
                    span_in_scalar(smap, path, value, match.start(), len(match.group())),
                    path,
                    hint=_ENV_HINT,
                )
            )
    return diags


def _allows_env(path: SpecPath) -> bool:
    return len(path) == 3 and path[0] == "models" and path[2] == "api_base"


def _skipped(path: SpecPath, skip: frozenset[SpecPath]) -> bool:
    return path[:1] in skip or path[:2] in skip


def _scalars(value: Any, path: SpecPath) -> Iterator[tuple[SpecPath, Any]]:
    """Every scalar inside ``value`` with its spec path, in document order."""
    if isinstance(value, Mapping):
        for key, sub in value.items():
            yield from _scalars(sub, (*path, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            yield from _scalars(sub, (*path, index))
    else:
        yield path, value
