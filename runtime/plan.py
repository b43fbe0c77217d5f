"""The Plan IR: the closed instruction set the runtime executes.

The compiler (``synthc``) lowers a spec into a :class:`Plan`; the runtime executes it.
Every node is a frozen dataclass; sequences are tuples; mappings are tuples of pairs,
so a plan is hashable, comparable and has exactly one canonical JSON form.

Guarantees:
- ``plan_from_json(plan_to_json(p)) == p`` for every plan.
- ``plan_hash(p)`` is the xxh3-128 of the canonical JSON of everything that decides the
  output rows (engine version, seed, rows, columns, steps); it ignores the output path,
  the output format and the spec's name/description, which do not change the rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, is_dataclass, replace
from os import PathLike
from pathlib import PurePath
from typing import Any, ClassVar, Literal, TypeAlias

import xxhash

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
)


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


Step: TypeAlias = Filter | Dedupe | Drop | Select | Rename | Sort | Shuffle | Limit


# --------------------------------------------------------------------------- plan


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
    output: Output | None = None
    spec_hash: str = ""
    format: int = PLAN_FORMAT
    engine: int = ENGINE_VERSION

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def with_overrides(self, *, rows: int | None = None, seed: int | None = None) -> Plan:
        """A copy with the CLI/API overrides applied (the original is untouched)."""
        return replace(
            self,
            rows=self.rows if rows is None else rows,
            seed=self.seed if seed is None else seed,
        )


_NODES: dict[str, type] = {
    cls.KIND: cls
    for cls in (
        Dist, UUIDColumn, SequenceColumn, NumberColumn, BoolColumn, Choice, CategoryColumn,
        TimeColumn, PersonColumn, ExpressionColumn, TemplateColumn, Filter, Dedupe, Drop,
        Select, Rename, Sort, Shuffle, Limit, Output, Plan,
    )
}  # fmt: skip


# --------------------------------------------------------------------------- JSON


def to_data(node: Any) -> Any:
    """A node as plain JSON data: dataclasses become {"kind": ..., fields...}."""
    if is_dataclass(node) and not isinstance(node, type):
        out: dict[str, Any] = {"kind": type(node).KIND}  # type: ignore[attr-defined]
        for f in fields(node):
            out[f.name] = to_data(getattr(node, f.name))
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
        return cls(**{k: from_data(v) for k, v in data.items() if k != "kind"})
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
    for key in ("name", "output", "spec_hash"):
        data.pop(key)
    return xxhash.xxh3_128_hexdigest(canonical_json(data).encode())
