"""The row source of a spec, before resolving: which fields it gives, and its seed files.

A spec has at most one row source: ``source`` (LLM-written records), ``index`` (a time
index), ``arrivals`` (an event stream) or ``from`` (a seed file). Its fields are columns
that come first and read nothing. This pass finds them, and reads every seed file the
spec names (``from`` and ``lookup`` columns) once: its digest, columns and row count go
into the plan, so a missing, empty or changed file is a diagnostic here, at the path
that names it. Seed files are found relative to the spec's directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.plan import SeedFormat
from synthc.diagnostics import Diagnostic, SpecPath
from synthc.loader import SourceMap

ROW_SOURCES = ("source", "index", "arrivals", "from")
_SEED_FORMATS: dict[str, SeedFormat] = {
    ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet",
}  # fmt: skip


@dataclass(frozen=True)
class SeedInfo:
    """A seed file as compiled: where it is, what its bytes hash to, its columns
    ((name, Polars dtype text), file order) and its row count."""

    path: str
    digest: str
    format: SeedFormat
    columns: tuple[tuple[str, str], ...]
    rows: int

    def has(self, column: str) -> bool:
        return any(name == column for name, _ in self.columns)

    def dtype(self, column: str) -> str:
        return next(dtype for name, dtype in self.columns if name == column)


@dataclass
class Shape:
    """What the pre-pass found: the source's ``kind`` (one of :data:`ROW_SOURCES`, or
    None), its ``fields`` in order, the seed files by the path text the spec wrote, and
    its diagnostics."""

    kind: str | None = None
    fields: tuple[str, ...] = ()
    base_dir: Path = Path()
    seeds: dict[str, SeedInfo] = field(default_factory=dict)
    diags: list[Diagnostic] = field(default_factory=list)


def inspect_shape(
    data: Mapping[str, Any], smap: SourceMap, base_dir: Path, skip: frozenset[SpecPath] = frozenset()
) -> Shape:
    """The row source and seed files of a schema-valid spec (parts in ``skip`` are left out)."""
    shape = Shape(base_dir=base_dir)
    present = [key for key in ROW_SOURCES if key in data]
    for extra in present[1:]:
        shape.diags.append(
            Diagnostic(
                "conflicting-keys",
                f"`{extra}` and `{present[0]}` both give the rows; a spec has one row source",
                smap.span((extra,), key=True),
                (extra,),
                hint="keep one of source, index, arrivals and from",
            )
        )
    if present:
        shape.kind = present[0]
    match shape.kind:
        case "source":
            shape.fields = llm_record_fields(data)
        case "index" | "arrivals":
            spec = data[shape.kind]
            entities = spec.get("entities") if isinstance(spec, Mapping) else None
            column = spec.get("column", "timestamp") if isinstance(spec, Mapping) else "timestamp"
            shape.fields = (str(column), *map(str, entities if isinstance(entities, Mapping) else {}))
        case "from" if ("from",) not in skip:
            info = _seed(shape, data["from"].get("path"), base_dir, smap, ("from", "path"))
            if info is not None:
                shape.fields = tuple(name for name, _ in info.columns)
                _check_field_names(shape, info, smap)
    for name, spec in (data.get("columns") or {}).items():
        if isinstance(spec, Mapping) and spec.get("type") == "lookup" and ("columns", name) not in skip:
            _seed(shape, spec.get("path"), base_dir, smap, ("columns", name, "path"))
    return shape


def llm_record_fields(data: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields of an LLM ``source``'s records (its schema's properties, in order), or ()."""
    source = data.get("source")
    schema = source.get("schema") if isinstance(source, Mapping) else None
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    return tuple(str(name) for name in properties) if isinstance(properties, Mapping) else ()


def seed_format(path: str) -> SeedFormat | None:
    return _SEED_FORMATS.get(Path(path).suffix.lower())


def _seed(shape: Shape, text: Any, base_dir: Path, smap: SourceMap, path: SpecPath) -> SeedInfo | None:
    if not isinstance(text, str):
        return None
    if text in shape.seeds:
        return shape.seeds[text]
    info, problem, hint = read_seed_info(base_dir / text, text)
    if info is None:
        shape.diags.append(Diagnostic("seed-file", problem, smap.span(path), path, hint))
        return None
    shape.seeds[text] = info
    return info


def read_seed_info(file: Path, shown: str) -> tuple[SeedInfo | None, str, str | None]:
    """(info, "", None) for a readable, non-empty seed file; else (None, what is wrong, a hint)."""
    fmt = seed_format(shown)
    if fmt is None:
        return (None, f"seed file `{shown}`: cannot tell its format from the extension",
                "use a .csv (with a header), .jsonl/.ndjson or .parquet file")  # fmt: skip
    if not file.is_file():
        return (None, f"seed file `{shown}` does not exist (looked for {file})",
                "seed file paths are relative to the spec's directory")  # fmt: skip
    from runtime.seeds import file_digest, seed_row_count, seed_schema

    try:
        columns = tuple(seed_schema(file, fmt))
        rows = seed_row_count(file, fmt)
        digest = file_digest(file)
    except Exception as exc:  # Polars and OS errors alike: the file is not usable
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"seed file `{shown}` cannot be read as {fmt}: {first}", None
    if not columns or rows == 0:
        return None, f"seed file `{shown}` is empty (no {'columns' if not columns else 'rows'})", None
    return SeedInfo(str(file.resolve()), digest, fmt, columns, rows), "", None


def _check_field_names(shape: Shape, info: SeedInfo, smap: SourceMap) -> None:
    for name, _ in info.columns:
        if name.startswith("__") or not name:
            shape.diags.append(
                Diagnostic(
                    "bad-column-name",
                    f"seed file `{Path(info.path).name}`: column `{name}` cannot be a column name "
                    "(names starting with `__` are reserved)",
                    smap.span(("from", "path")),
                    ("from", "path"),
                    hint="rename the column in the file",
                )
            )
