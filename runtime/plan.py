"""The Plan IR: the closed instruction set the runtime executes.

The compiler (``synthc``) lowers a spec into a :class:`Plan`; the runtime executes it.
Every node is a frozen dataclass; sequences are tuples; mappings are tuples of pairs,
so a plan is hashable, comparable and has exactly one canonical JSON form.

Guarantees:
- ``plan_from_json(plan_to_json(p)) == p`` for every plan.
- ``plan_hash(p)`` is the xxh3-128 of the canonical JSON of everything that decides the
  output rows (engine version, seed, rows, columns, steps, models, source); it ignores the output path,
  the output format, the spec's name/description and how model calls are made
  (`OPERATIONAL_MODEL_FIELDS`), which do not change the rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from os import PathLike
from pathlib import PurePath
from typing import Any, ClassVar, Literal, TypeAlias

import xxhash

from runtime.plan_shapes import (
    Anomalies as Anomalies,
)
from runtime.plan_shapes import (
    Arrivals as Arrivals,
)
from runtime.plan_shapes import (
    Check as Check,
)
from runtime.plan_shapes import (
    Entity as Entity,
)
from runtime.plan_shapes import (
    LookupColumn as LookupColumn,
)
from runtime.plan_shapes import (
    Noise as Noise,
)
from runtime.plan_shapes import (
    Profile as Profile,
)
from runtime.plan_shapes import (
    Sample as Sample,
)
from runtime.plan_shapes import (
    Seasonality as Seasonality,
)
from runtime.plan_shapes import (
    SeedFile as SeedFile,
)
from runtime.plan_shapes import (
    SeedFormat as SeedFormat,
)
from runtime.plan_shapes import (
    SeriesColumn as SeriesColumn,
)
from runtime.plan_shapes import (
    Sessionize as Sessionize,
)
from runtime.plan_shapes import (
    TimeIndex as TimeIndex,
)
from runtime.plan_shapes import (
    Trend as Trend,
)
from runtime.plan_shapes import (
    Unnest as Unnest,
)
from runtime.plan_shapes import (
    Validate as Validate,
)
from runtime.plan_shapes import (
    Walk as Walk,
)

PLAN_FORMAT = 1
# Bump when any sampler algorithm (uniform bits -> value transform) changes output.
ENGINE_VERSION = 1

Scalar: TypeAlias = str | int | float | bool

DistKind = Literal[
    "uniform", "normal", "lognormal", "exponential", "poisson", "binomial", "gamma", "beta", "zipf"
]
PersonField = Literal[
    "name", "first_name", "last_name", "email", "phone", "company", "city", "country", "street_address"
]
OutputFormat = Literal["parquet", "csv", "json", "jsonl"]
# extensions that name a format (compared case-insensitively)
FORMAT_SUFFIXES: dict[str, OutputFormat] = {
    ".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".json": "json",
    ".jsonl": "jsonl", ".ndjson": "jsonl",
}  # fmt: skip


def format_for_path(path: str | PathLike[str]) -> OutputFormat | None:
    """The format a path's extension names (case-insensitive), or None if unknown."""
    return FORMAT_SUFFIXES.get(PurePath(path).suffix.lower())


# --------------------------------------------------------------------------- distributions


@dataclass(frozen=True)
class Dist:
    """A distribution with its parameters, sorted by name (e.g. normal: mean, sd)."""

    KIND: ClassVar[str] = "dist"
    dist: DistKind
    params: tuple[tuple[str, float], ...]

    def param(self, name: str) -> float:
        for key, value in self.params:
            if key == name:
                return value
        raise KeyError(f"{self.dist} has no parameter {name!r}")


# --------------------------------------------------------------------------- columns
# Every column carries ``name`` and ``nulls`` (fraction of rows set to null, drawn from
# the column's own stream so it never disturbs the values of other rows).


@dataclass(frozen=True)
class UUIDColumn:
    KIND: ClassVar[str] = "uuid"
    name: str
    nulls: float = 0.0


@dataclass(frozen=True)
class SequenceColumn:
    """start + step * row_index, optionally formatted with a Python format spec."""

    KIND: ClassVar[str] = "sequence"
    name: str
    start: int = 1
    step: int = 1
    format: str | None = None  # e.g. "ORD-{:06d}"
    nulls: float = 0.0


@dataclass(frozen=True)
class NumberColumn:
    KIND: ClassVar[str] = "number"
    name: str
    dtype: Literal["int", "float"]
    dist: Dist
    min: int | float | None = None  # clip (int columns keep whole bounds exact)
    max: int | float | None = None  # clip
    round: int | None = None  # float only: decimal places
    nulls: float = 0.0


@dataclass(frozen=True)
class BoolColumn:
    KIND: ClassVar[str] = "bool"
    name: str
    p: float = 0.5
    nulls: float = 0.0


@dataclass(frozen=True)
class Choice:
    """Values and their weights (normalized to sum 1); ``when`` is the parent's value
    for a conditional category, None otherwise."""

    KIND: ClassVar[str] = "choice"
    when: Scalar | None
    values: tuple[Scalar, ...]
    weights: tuple[float, ...]


@dataclass(frozen=True)
class CategoryColumn:
    KIND: ClassVar[str] = "category"
    name: str
    choices: tuple[Choice, ...]  # one Choice with when=None, or one per parent value
    given: str | None = None
    nulls: float = 0.0


@dataclass(frozen=True)
class TimeColumn:
    """Uniform instant in [start, end]: microseconds since the Unix epoch (UTC) for
    ``datetime``, days since the epoch for ``date``. Relative bounds are resolved
    against ``as_of`` by the compiler, so the runtime never reads a clock."""

    KIND: ClassVar[str] = "time"
    name: str
    dtype: Literal["datetime", "date"]
    start: int
    end: int
    nulls: float = 0.0


@dataclass(frozen=True)
class PersonColumn:
    """A field of a fake person. Columns sharing ``group`` in one row describe the same
    person (the identity is drawn from the group's stream, not the column's)."""

    KIND: ClassVar[str] = "person"
    name: str
    field: PersonField
    locale: str = "en_US"
    group: str = "person"
    nulls: float = 0.0


@dataclass(frozen=True)
class ExpressionColumn:
    """A Polars SQL expression over earlier columns, evaluated vectorized per chunk."""

    KIND: ClassVar[str] = "expression"
    name: str
    expr: str
    inputs: tuple[str, ...]
    nulls: float = 0.0


@dataclass(frozen=True)
class TemplateColumn:
    """A Jinja template (sandboxed) rendered per row over earlier columns and vars."""

    KIND: ClassVar[str] = "template"
    name: str
    template: str
    inputs: tuple[str, ...]
    nulls: float = 0.0


@dataclass(frozen=True)
class LLMColumn:
    """A cell written by a model: ``prompt`` (and ``system``) are Jinja templates over the
    row's ``inputs`` and vars; ``model`` names a :class:`ModelAlias`. ``params`` is canonical
    JSON of the column's provider parameters (merged over the alias's, column wins).
    ``output`` is canonical JSON of a JSON Schema (an object): the answer is parsed and
    validated into a struct column; None for free text (a string column)."""

    KIND: ClassVar[str] = "llm"
    name: str
    model: str
    prompt: str
    inputs: tuple[str, ...]
    system: str | None = None
    params: str = "{}"
    output: str | None = None
    nulls: float = 0.0


@dataclass(frozen=True)
class RecordField:
    """A column whose values come from the plan's ``source`` (one field of each record)."""

    KIND: ClassVar[str] = "record_field"
    name: str
    nulls: float = 0.0


Column: TypeAlias = (
    UUIDColumn
    | SequenceColumn
    | NumberColumn
    | BoolColumn
    | CategoryColumn
    | TimeColumn
    | PersonColumn
    | ExpressionColumn
    | TemplateColumn
    | LLMColumn
    | RecordField
    | SeriesColumn
    | LookupColumn
)


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelAlias:
    """A named model as the spec's ``models:`` declares it.

    ``model`` and ``fallbacks`` are LiteLLM model strings; ``params`` canonical JSON of the
    provider parameters. ``api_base`` may hold ``${VAR}`` references, resolved from the
    environment at run time (never stored resolved); ``api_key_env`` names the variable
    holding the key (None: LiteLLM's default for the provider). The remaining fields govern
    how calls are made, not what they answer, so :func:`plan_hash` ignores them."""

    KIND: ClassVar[str] = "model"
    name: str
    model: str
    fallbacks: tuple[str, ...] = ()
    params: str = "{}"
    api_base: str | None = None
    api_key_env: str | None = None
    concurrency: int = 16
    rpm: int | None = None
    tpm: int | None = None
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0


# Fields of ModelAlias that never change an answer (excluded from the plan hash).
OPERATIONAL_MODEL_FIELDS = (
    "api_base",
    "api_key_env",
    "concurrency",
    "rpm",
    "tpm",
    "timeout",
    "retries",
    "backoff",
)


@dataclass(frozen=True)
class LLMSource:
    """Rows written by a model: each call asks for ``per_call`` records (JSON objects valid
    against ``schema``, canonical JSON) until ``rows`` distinct records exist. Each
    property of the schema is a :class:`RecordField` column."""

    KIND: ClassVar[str] = "llm_source"
    model: str
    prompt: str
    schema: str
    per_call: int = 20
    system: str | None = None


# --------------------------------------------------------------------------- row sources
# A plan has at most one row source: LLM-written records, a time index, an event stream
# or a seed file. Its fields are RecordField columns; it decides how many rows exist.


Source: TypeAlias = LLMSource | TimeIndex | Arrivals | SeedFile


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Filter:
    KIND: ClassVar[str] = "filter"
    expr: str  # Polars SQL boolean expression


@dataclass(frozen=True)
class Dedupe:
    KIND: ClassVar[str] = "dedupe"
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Drop:
    KIND: ClassVar[str] = "drop"
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Select:
    KIND: ClassVar[str] = "select"
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Rename:
    KIND: ClassVar[str] = "rename"
    mapping: tuple[tuple[str, str], ...]  # (old, new), in spec order


@dataclass(frozen=True)
class Sort:
    KIND: ClassVar[str] = "sort"
    by: tuple[str, ...]
    descending: bool = False


@dataclass(frozen=True)
class Shuffle:
    """Seeded shuffle: rows are ordered by a key drawn from (seed, row index)."""

    KIND: ClassVar[str] = "shuffle"


@dataclass(frozen=True)
class Limit:
    KIND: ClassVar[str] = "limit"
    n: int


Step: TypeAlias = (
    Filter
    | Dedupe
    | Drop
    | Select
    | Rename
    | Sort
    | Shuffle
    | Limit
    | Unnest
    | Validate
    | Sample
    | Sessionize
)


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Target:
    """Generate rows until ``rows`` of them come out of the steps before the first
    blocking step (sort, shuffle, sample n), generating at most ``max_rows``."""

    KIND: ClassVar[str] = "target"
    rows: int
    max_rows: int


@dataclass(frozen=True)
class Output:
    KIND: ClassVar[str] = "output"
    path: str
    format: OutputFormat


@dataclass(frozen=True)
class Plan:
    """A compiled spec.

    ``columns`` are in evaluation order (every column after its inputs);
    ``column_order`` is the order the user declared, which the output keeps.
    ``vars`` is canonical JSON of the spec's constants (visible to templates).
    """

    KIND: ClassVar[str] = "plan"
    name: str
    seed: int
    rows: int
    as_of: int  # microseconds since the Unix epoch, UTC
    columns: tuple[Column, ...]
    column_order: tuple[str, ...]
    steps: tuple[Step, ...] = ()
    vars: str = "{}"
    models: tuple[ModelAlias, ...] = ()
    source: Source | None = None
    target: Target | None = None
    output: Output | None = None
    replay: tuple[str, ...] = ()  # response packs (absolute paths) to answer LLM cells from
    spec_hash: str = ""
    format: int = PLAN_FORMAT
    engine: int = ENGINE_VERSION

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def model(self, alias: str) -> ModelAlias:
        for model in self.models:
            if model.name == alias:
                return model
        raise KeyError(alias)

    @property
    def uses_models(self) -> bool:
        """Whether running this plan may call a model (LLM columns or an LLM source)."""
        return isinstance(self.source, LLMSource) or bool(self.llm_columns())

    @property
    def llm_source(self) -> LLMSource | None:
        """The source when it is records written by a model, else None."""
        return self.source if isinstance(self.source, LLMSource) else None

    def llm_columns(self) -> tuple[LLMColumn, ...]:
        return tuple(col for col in self.columns if isinstance(col, LLMColumn))

    def with_overrides(
        self, *, rows: int | None = None, seed: int | None = None, models: Mapping[str, str] | None = None
    ) -> Plan:
        """A copy with the CLI/API overrides applied (the original is untouched).

        For a time index, arrivals or a seed file, ``rows`` keeps the first ``rows`` rows
        (never more than the source makes); with ``target_rows``, it is the new target.
        ``models`` maps an alias to the LiteLLM model string that replaces its model; the
        alias's fallbacks are dropped (a swapped model is the one to use, nothing else).
        An unknown alias raises KeyError."""
        aliases = self.models
        if models:
            known = {m.name for m in self.models}
            unknown = sorted(set(models) - known)
            if unknown:
                raise KeyError(unknown[0])
            aliases = tuple(
                replace(m, model=models[m.name], fallbacks=()) if m.name in models else m for m in self.models
            )
        seed = self.seed if seed is None else seed
        target = self.target
        if isinstance(self.source, TimeIndex | Arrivals | SeedFile):
            # The source decides the rows (arrivals: for this seed); `rows` takes a prefix.
            from runtime.shapes import source_rows

            full = source_rows(self.source, seed) if seed != self.seed or rows is not None else self.rows
            rows = full if rows is None else min(rows, full)
        elif target is not None and rows is not None:
            # `rows` is the rows wanted out; the cap keeps its ratio to the target.
            target = Target(rows, max(rows, target.max_rows * rows // max(target.rows, 1)))
            rows = target.max_rows
        return replace(
            self,
            rows=self.rows if rows is None else rows,
            seed=seed,
            models=aliases,
            target=target,
        )


_NODES: dict[str, type] = {
    cls.KIND: cls
    for cls in (
        Dist, UUIDColumn, SequenceColumn, NumberColumn, BoolColumn, Choice, CategoryColumn,
        TimeColumn, PersonColumn, ExpressionColumn, TemplateColumn, LLMColumn, RecordField,
        ModelAlias, LLMSource, Filter, Dedupe, Drop,
        Select, Rename, Sort, Shuffle, Limit, Output, Plan,
        Trend, Seasonality, Noise, Walk, Anomalies, SeriesColumn, LookupColumn,
        Entity, TimeIndex, Profile, Arrivals, SeedFile,
        Unnest, Check, Validate, Sample, Sessionize, Target,
    )
}  # fmt: skip


# --------------------------------------------------------------------------- JSON


# "kind" tags a node in JSON, so a field named ``kind`` is written under this key.
_KIND_FIELD = "form"


def to_data(node: Any) -> Any:
    """A node as plain JSON data: dataclasses become {"kind": ..., fields...}."""
    if is_dataclass(node) and not isinstance(node, type):
        out: dict[str, Any] = {"kind": type(node).KIND}  # type: ignore[attr-defined]
        for f in fields(node):
            out[_KIND_FIELD if f.name == "kind" else f.name] = to_data(getattr(node, f.name))
        return out
    if isinstance(node, tuple):
        return [to_data(item) for item in node]
    return node


def from_data(data: Any) -> Any:
    """Inverse of :func:`to_data`: lists become tuples, tagged dicts become nodes."""
    if isinstance(data, list):
        return tuple(from_data(item) for item in data)
    if isinstance(data, dict):
        kind = data.get("kind")
        cls = _NODES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise ValueError(f"not a plan node: kind={kind!r}")
        names = {f.name for f in fields(cls)}
        return cls(
            **{
                ("kind" if k == _KIND_FIELD and "kind" in names else k): from_data(v)
                for k, v in data.items()
                if k != "kind"
            }
        )
    return data


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def plan_to_json(plan: Plan, *, indent: int | None = None) -> str:
    """Canonical JSON (sorted keys); ``indent`` for a diffable golden dump."""
    data = to_data(plan)
    if indent is None:
        return canonical_json(data)
    return json.dumps(data, sort_keys=True, indent=indent, ensure_ascii=False, allow_nan=False)


def plan_from_json(text: str) -> Plan:
    plan = from_data(json.loads(text))
    if not isinstance(plan, Plan):
        raise ValueError("JSON is not a plan")
    if plan.format != PLAN_FORMAT:
        raise ValueError(f"plan format {plan.format} is not supported (expected {PLAN_FORMAT})")
    return plan


def plan_hash(plan: Plan) -> str:
    """xxh3-128 (hex) of what decides the output rows; see the module docstring."""
    data = to_data(plan)
    for key in ("name", "output", "spec_hash", "replay"):
        data.pop(key)
    for model in data["models"]:
        for key in OPERATIONAL_MODEL_FIELDS:
            model.pop(key)
    # Plans without LLM parts hash as they did before those fields existed.
    if not data["models"]:
        del data["models"]
    if data["source"] is None:
        del data["source"]
    if data["target"] is None:
        del data["target"]
    without_seed_paths(data)
    return xxhash.xxh3_128_hexdigest(canonical_json(data).encode())


def without_seed_paths(data: Any) -> Any:
    """``data`` (as :func:`to_data` gives it) without the paths of seed files, in place:
    seed files count by content (their digest), not by where they are."""
    if isinstance(data, dict):
        if data.get("kind") in ("lookup", "seed_file"):
            data.pop("path", None)
        for value in data.values():
            without_seed_paths(value)
    elif isinstance(data, list):
        for item in data:
            without_seed_paths(item)
    return data
