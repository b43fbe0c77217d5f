"""Content hash of a dataset's rows: independent of chunking, file format and compression.

A :class:`ContentHasher` is fed the frames synthc generated, in order, *before* any
writer touches them, and gives a :class:`ContentHash`: the row count, the schema, one
xxh3-128 per column and a total. Two runs that produce the same values give the same
hash whatever the chunk sizes or the output format; any changed value, null, dtype or
column changes the hash of exactly that column (and the total).

Encoding (version ``CONTENT_VERSION``). Each column is a tree of nodes following its
dtype; every node feeds a few *streams*, each hashed incrementally with its own
``xxhash.xxh3_128()`` so the bytes of a stream never depend on where chunks end:

- ``valid``: one byte per row of the node, 1 for a value and 0 for null (every node).
- fixed-width values (integers up to 64 bits, floats, booleans, date/time types):
  ``values`` = the little-endian fixed-width value of every row, nulls as zero bits.
  Booleans are one byte (0/1). Temporal types are their integer representation
  (date: i32 days; datetime, duration: i64 in the dtype's unit; time: i64 ns); the unit
  and time zone are in the dtype text. Float bits are kept exactly (-0.0 differs from
  0.0), except that every NaN becomes the one quiet NaN pattern of its width.
- byte strings (String; Categorical and Enum as their string values; Binary; Decimal
  and 128-bit integers as their exact decimal text): ``lengths`` = u64 little-endian
  byte length per row (null: 0), ``bytes`` = the concatenated UTF-8 (or raw) bytes.
- lists and arrays: ``lengths`` = u64 per row (null: 0), then a child node ``item`` fed
  with the flattened elements of the non-null lists.
- structs: a child node per field, in field order, named by the field; rows where the
  struct itself is null are fed to the fields as nulls.

A column's hash is the xxh3-128 of the canonical JSON ``[version, dtype text, rows,
[[stream path, stream digest], ...]]``, streams in the dtype's fixed order: it does not
include the column's name or position, so the same column under the same name can be
compared across datasets. The dtype text is synthc's own (``i64``, ``f64``, ``str``,
``datetime[us,UTC]``, ``list[i64]``, ``struct{"a":i64}``), not Polars' rendering, so a
Polars upgrade does not change it. ``total`` is the xxh3-128 of the canonical JSON of
the version, rows, schema and column hashes; it depends on column order.
Nothing here uses Polars' row/series hashes or raw Arrow buffers, whose values and
layout may change between Polars versions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import polars as pl
import xxhash
from polars.datatypes import DataTypeClass

from runtime.errors import ExecutionError

CONTENT_VERSION = "synthc-content/1"

_INTEGERS = {
    pl.Int8: "i8",
    pl.Int16: "i16",
    pl.Int32: "i32",
    pl.Int64: "i64",
    pl.UInt8: "u8",
    pl.UInt16: "u16",
    pl.UInt32: "u32",
    pl.UInt64: "u64",
}
_FLOATS = {pl.Float16: "f16", pl.Float32: "f32", pl.Float64: "f64"}
# The one NaN pattern per float width (the quiet NaN with an empty payload).
_NAN_BITS = {2: np.uint16(0x7E00), 4: np.uint32(0x7FC00000), 8: np.uint64(0x7FF8000000000000)}
_UINT_OF_WIDTH = {2: np.uint16, 4: np.uint32, 8: np.uint64}
_ONES = np.ones(1 << 16, dtype=np.uint8)


@dataclass(frozen=True)
class ContentHash:
    """The content of a dataset: ``columns`` and ``schema`` are (name, hash) and
    (name, dtype text) pairs in column order; ``total`` covers all of it."""

    rows: int
    columns: tuple[tuple[str, str], ...]
    schema: tuple[tuple[str, str], ...]
    total: str


def dtype_text(dtype: pl.DataType | DataTypeClass) -> str:
    """synthc's stable text for a Polars dtype (stable across Polars versions).

    Raises ExecutionError for dtypes whose values cannot be hashed (Object)."""
    dtype = _instance(dtype)
    base = dtype.base_type()
    if base in _INTEGERS:
        return _INTEGERS[base]
    if base in _FLOATS:
        return _FLOATS[base]
    match dtype:
        case pl.Boolean():
            return "bool"
        case pl.String():
            return "str"
        case pl.Binary():
            return "bin"
        case pl.Enum():
            return "enum" + json.dumps(dtype.categories.to_list(), ensure_ascii=False, separators=(",", ":"))
        case pl.Categorical():
            return "cat"
        case pl.Date():
            return "date"
        case pl.Time():
            return "time"
        case pl.Datetime():
            return f"datetime[{dtype.time_unit},{dtype.time_zone or ''}]"
        case pl.Duration():
            return f"duration[{dtype.time_unit}]"
        case pl.Decimal():
            return f"decimal[{dtype.precision},{dtype.scale}]"
        case pl.Int128():
            return "i128"
        case pl.UInt128():
            return "u128"
        case pl.Null():
            return "null"
        case pl.Array():
            return f"array[{dtype_text(dtype.inner)},{dtype.size}]"
        case pl.List():
            return f"list[{dtype_text(dtype.inner)}]"
        case pl.Struct():
            inner = ",".join(
                f"{json.dumps(f.name, ensure_ascii=False)}:{dtype_text(f.dtype)}" for f in dtype.fields
            )
            return "struct{" + inner + "}"
    raise ExecutionError(f"cannot hash the content of a column of type {dtype}")


class _Node:
    """The streams of one dtype node; built from the dtype alone, so every chunk feeds
    the same streams in the same order."""

    def __init__(self, dtype: pl.DataType | DataTypeClass) -> None:
        dtype = _instance(dtype)
        self.valid = xxhash.xxh3_128()
        self.values: xxhash.xxh3_128 | None = None
        self.lengths: xxhash.xxh3_128 | None = None
        self.data: xxhash.xxh3_128 | None = None
        self.children: tuple[tuple[str, _Node], ...] = ()
        self.kind = _kind(dtype)
        match self.kind:
            case "fixed":
                self.values = xxhash.xxh3_128()
            case "bytes" | "binary" | "text":
                self.lengths, self.data = xxhash.xxh3_128(), xxhash.xxh3_128()
            case "list":
                self.lengths = xxhash.xxh3_128()
                assert isinstance(dtype, pl.List | pl.Array)
                self.children = (("item", _Node(dtype.inner)),)
            case "struct":
                assert isinstance(dtype, pl.Struct)
                self.children = tuple((f.name, _Node(f.dtype)) for f in dtype.fields)

    def update(self, s: pl.Series) -> None:
        """Feed the rows of ``s`` (whose dtype is this node's) to the streams."""
        nulls = s.null_count()
        self.valid.update(_ones(len(s)) if nulls == 0 else s.is_not_null().to_numpy().view(np.uint8).data)
        match self.kind:
            case "fixed":
                assert self.values is not None
                self.values.update(_fixed_bytes(s, nulls))
            case "bytes" | "binary" | "text":
                self._update_bytes(s)
            case "list":
                assert self.lengths is not None
                self.lengths.update(_lengths(s.list.len() if isinstance(s.dtype, pl.List) else s.arr.len()))
                items = s.explode(empty_as_null=False, keep_nulls=False)
                self.children[0][1].update(items)
            case "struct":
                valid = s.is_not_null() if nulls else None
                for name, child in self.children:
                    field = s.struct.field(name)
                    child.update(field if valid is None else _masked(field, valid))

    def _update_bytes(self, s: pl.Series) -> None:
        assert self.lengths is not None and self.data is not None
        if self.kind == "binary":
            self.lengths.update(_lengths(s.bin.size()))
            hex_text = s.bin.encode("hex").str.join("").item()
            self.data.update(bytes.fromhex(hex_text))
            return
        text = s if self.kind == "bytes" else s.cast(pl.String)
        self.lengths.update(_lengths(text.str.len_bytes()))
        self.data.update(text.str.join("").cast(pl.Binary).item())

    def digests(self, path: str) -> list[tuple[str, str]]:
        """(stream path, hex digest) for every stream of this node and its children."""
        out = [(f"{path}valid", self.valid.hexdigest())]
        for name, stream in (("values", self.values), ("lengths", self.lengths), ("bytes", self.data)):
            if stream is not None:
                out.append((f"{path}{name}", stream.hexdigest()))
        for name, child in self.children:
            out.extend(child.digests(f"{path}{json.dumps(name, ensure_ascii=False)}/"))
        return out


def _instance(dtype: pl.DataType | DataTypeClass) -> pl.DataType:
    # Polars accepts bare classes (pl.Int64) where it means instances (pl.Int64()).
    return dtype() if isinstance(dtype, DataTypeClass) else dtype


def _kind(dtype: pl.DataType) -> str:
    if dtype.is_numeric() and not isinstance(dtype, pl.Decimal | pl.Int128 | pl.UInt128):
        return "fixed"
    match dtype:
        case pl.Boolean() | pl.Date() | pl.Datetime() | pl.Duration() | pl.Time():
            return "fixed"
        case pl.String():
            return "bytes"
        case pl.Binary():
            return "binary"
        case pl.Categorical() | pl.Enum() | pl.Decimal() | pl.Int128() | pl.UInt128():
            return "text"
        case pl.List() | pl.Array():
            return "list"
        case pl.Struct():
            return "struct"
        case pl.Null():
            return "null"
    raise ExecutionError(f"cannot hash the content of a column of type {dtype}")


def _ones(n: int) -> memoryview:
    return _ONES.data[:n] if n <= len(_ONES) else np.ones(n, dtype=np.uint8).data


def _fixed_bytes(s: pl.Series, nulls: int) -> memoryview:
    """Little-endian fixed-width values of ``s`` (nulls as zero bits), NaNs canonical."""
    if s.dtype.is_temporal():
        s = s.to_physical()
    if nulls:
        # A literal of the series' own dtype: fill_null(0) would turn booleans into i32.
        s = s.fill_null(pl.lit(0).cast(s.dtype))
    arr = s.to_numpy()
    if arr.dtype == np.bool_:
        return np.ascontiguousarray(arr).view(np.uint8).data
    if arr.dtype.kind == "f":
        nan = np.isnan(arr)
        if nan.any():
            bits = arr.view(_UINT_OF_WIDTH[arr.itemsize]).copy()
            bits[nan] = _NAN_BITS[arr.itemsize]
            arr = bits
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).data


def _lengths(lengths: pl.Series) -> memoryview:
    """Per-row lengths as u64 little-endian, null rows as 0."""
    arr = (lengths.fill_null(0) if lengths.null_count() else lengths).to_numpy()
    # NumPy's widening is cheaper than Polars' cast, and zero-copy to_numpy needs no nulls.
    return np.ascontiguousarray(arr, dtype="<u8").data


def _masked(field: pl.Series, valid: pl.Series) -> pl.Series:
    """``field`` with null wherever the enclosing struct is null."""
    return pl.select(pl.when(valid).then(field)).to_series().alias(field.name)


class ContentHasher:
    """Streaming content hash: call :meth:`update` with each frame in order, then
    :meth:`result`. The result depends only on the concatenated rows and the schema,
    never on how they were chunked."""

    def __init__(self) -> None:
        self._rows = 0
        self._schema: tuple[tuple[str, str], ...] | None = None
        self._nodes: list[_Node] = []

    def update(self, df: pl.DataFrame) -> None:
        """Feed the next frame. Raises ExecutionError if its schema differs from the
        frames' before it (an empty frame only sets the schema while no rows came)."""
        schema = tuple((name, dtype_text(dtype)) for name, dtype in df.schema.items())
        if schema != self._schema:
            if self._rows and df.height:
                raise ExecutionError(
                    f"content hash: a chunk's columns {_render(schema)} differ from the first chunk's "
                    f"{_render(self._schema or ())}"
                )
            if self._rows == 0:
                self._schema = schema
                self._nodes = [_Node(dtype) for dtype in df.schema.values()]
        if df.height == 0:
            return
        for node, column in zip(self._nodes, df.get_columns(), strict=True):
            node.update(column)
        self._rows += df.height

    def result(self) -> ContentHash:
        """The hash of everything fed so far (the hasher can keep going afterwards)."""
        schema = self._schema or ()
        columns = tuple(
            (name, _digest([CONTENT_VERSION, dtype, self._rows, node.digests("")]))
            for (name, dtype), node in zip(schema, self._nodes, strict=True)
        )
        total = _digest(
            {"version": CONTENT_VERSION, "rows": self._rows, "schema": schema, "columns": columns}
        )
        return ContentHash(self._rows, columns, schema, total)


def content_hash(frames: Iterable[pl.DataFrame]) -> ContentHash:
    """The :class:`ContentHash` of all rows of ``frames``, in order."""
    hasher = ContentHasher()
    for df in frames:
        hasher.update(df)
    return hasher.result()


def diff_columns(a: ContentHash, b: ContentHash) -> list[str]:
    """Names of the columns whose hash or dtype differ, or that only one side has: first
    in ``a``'s order, then ``b``'s extra columns. Empty when every column matches."""
    hashes_a, hashes_b = dict(a.columns), dict(b.columns)
    types_a, types_b = dict(a.schema), dict(b.schema)
    names = [name for name, _ in a.columns] + [name for name, _ in b.columns if name not in hashes_a]
    return [
        name
        for name in names
        if hashes_a.get(name) != hashes_b.get(name) or types_a.get(name) != types_b.get(name)
    ]


def _digest(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return xxhash.xxh3_128(text.encode()).hexdigest()


def _render(schema: tuple[tuple[str, str], ...]) -> str:
    return "(" + ", ".join(f"{name}: {dtype}" for name, dtype in schema) + ")"
