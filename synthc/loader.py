"""Load a YAML spec into plain Python values plus a :class:`SourceMap` of positions.

The loader works on PyYAML's *event* stream (libyaml's C parser when available, the pure
Python one otherwise) and builds the values itself, so it sees every mark, tag, anchor
and scalar style, and never runs a YAML constructor.

What comes out is JSON-like data: dicts with ``str`` keys, lists, ``str``, ``int``,
``float``, ``bool`` and ``None``. Plain scalars are resolved with the YAML 1.2 core
schema only: ``null``/``~``/empty, ``true``/``false`` (any letter case), ints (decimal,
``0o`` octal, ``0x`` hex) and floats (including ``.inf``/``.nan``). Everything else,
notably ``yes``/``no``/``on``/``off`` and dates, stays a string.

Refused, as diagnostics with positions (all of them, not just the first): syntax errors,
tabs in indentation, duplicate keys, explicit tags, anchors/aliases, merge keys, several
documents in one file, mapping keys that are not strings, a top level that is not a
mapping. Keys are data (not names) under ``vars``, a column's ``values`` and a ``rename``
step; there a non-string scalar key is accepted and stored as the text it was written
with (``values: {1: 0.5}`` gives the key ``"1"``); :meth:`SourceMap.key_value` gives the
YAML value of such a key (``1``) for whoever needs its type.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from synthc.diagnostics import Diagnostic, Span, SpecPath, sort_key
from synthc.errors import SpecError

try:  # libyaml is ~10x faster; the pure Python parser gives the same events
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

__all__ = ["SourceEntry", "SourceMap", "load", "load_path"]

# Line breaks as YAML counts them (the marks' line numbers follow these).
_BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
# Characters YAML allows in a stream (YAML 1.1 §5.1, as PyYAML and libyaml check them).
_NOT_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_INT10 = re.compile(r"[-+]?[0-9]+")
_INT8 = re.compile(r"0o[0-7]+")
_INT16 = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")

_MAX_SYNTAX_LISTED = 20  # a binary file would otherwise give thousands of diagnostics
_MAX_DEPTH = 200  # nesting deeper than any spec needs; keeps paths (and memory) small


def resolve_plain(text: str) -> Any:
    """The YAML 1.2 core-schema value of a plain (unquoted) scalar."""
    low = text.lower()
    if text in ("", "~") or low == "null":
        return None
    if low == "true":
        return True
    if low == "false":
        return False
    if _INT10.fullmatch(text):
        return int(text)
    if _INT8.fullmatch(text):
        return int(text[2:], 8)
    if _INT16.fullmatch(text):
        return int(text[2:], 16)
    if _FLOAT.fullmatch(text) or _INF.fullmatch(text) or _NAN.fullmatch(text):
        return float(
            text.replace(".inf", "inf")
            .replace(".Inf", "inf")
            .replace(".INF", "inf")
            .replace(".nan", "nan")
            .replace(".NaN", "nan")
            .replace(".NAN", "nan")
        )
    return text


class SourceEntry(NamedTuple):
    """Where one value of the spec came from."""

    span: Span
    key_span: Span | None  # the key's span for a mapping value; None for list items and the root
    style: str | None  # scalar style: None plain, "'", '"', "|", ">"; None for collections
    origin: tuple[int, int] | None  # 1-based (line, col) of a scalar's first content character
    key_value: Any  # the key as YAML resolves it (``1`` for a stringified key ``"1"``)


@dataclass(frozen=True, eq=False)
class SourceMap:
    """Positions of every key and value of a loaded spec, addressed by spec path.

    A path is a tuple of ``str`` keys and ``int`` list indices, exactly like jsonschema's
    ``error.absolute_path``; ``()`` is the whole document.
    """

    file: str
    entries: dict[SpecPath, SourceEntry] = field(default_factory=dict, repr=False)
    lines: tuple[str, ...] = field(default=(), repr=False)  # the source, for positions inside folded text

    def span(self, path: SpecPath, *, key: bool = False) -> Span | None:
        """The span of the value at ``path`` (of its key when ``key``; a list item's key is
        the item). Falls back to the nearest ancestor that exists (keeping ``key``), so it is
        ``None`` only for an empty document."""
        path = tuple(path)
        while True:
            entry = self.entries.get(path)
            if entry is not None:
                return (entry.key_span or entry.span) if key else entry.span
            if not path:
                return None
            path = path[:-1]

    def style(self, path: SpecPath) -> str | None:
        """The scalar style at exactly ``path``: None plain, "'", '"', "|" or ">"."""
        entry = self.entries.get(tuple(path))
        return entry.style if entry else None

    def content_origin(self, path: SpecPath) -> tuple[int, int] | None:
        """1-based ``(line, col)`` of the first character of the scalar's content at ``path``.

        Quoted: just after the opening quote. Block (``|``/``>``): the first line after the
        header and the column where content starts (past the block's indentation), so for a
        ``|`` scalar line ``k`` of the value is line ``origin_line + k - 1`` of the file.
        None for collections and paths that do not exist."""
        entry = self.entries.get(tuple(path))
        return entry.origin if entry else None

    def key_value(self, path: SpecPath) -> Any:
        """The YAML value of the key at ``path`` before it was made a string: ``1`` for
        ``values: {1: 0.5}`` (stored as ``"1"``), else the key itself; None if absent."""
        entry = self.entries.get(tuple(path))
        return entry.key_value if entry else None

    def __contains__(self, path: object) -> bool:
        return path in self.entries


# --------------------------------------------------------------------------- public API


def load(text: str, file: str = "<spec>") -> tuple[Any, SourceMap]:
    """Parse ``text`` (the contents of ``file``) into plain values and their source map.

    Raises :class:`SpecError` with every load diagnostic found (sorted by position); never
    lets a PyYAML exception escape. A leading byte-order mark is ignored."""
    if text.startswith("\ufeff"):
        text = text[1:]
    composer = _Composer(text, file)
    diags = _unprintable(text, file)
    if not diags:
        _parse(text, composer)
        diags = composer.diags
        if not diags:
            diags = _check_document(composer, file)
    if diags:
        raise SpecError(sorted(diags, key=sort_key))
    return composer.root, SourceMap(file, composer.entries, tuple(text.splitlines()))


def load_path(path: str | Path) -> tuple[str, Any, SourceMap]:
    """Read and load a spec file: ``(text, data, source_map)``. The text is the decoded
    file (UTF-8, BOM removed) that spans refer to. Raises :class:`SpecError`
    (``file-not-found`` for missing, unreadable or directory paths)."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except IsADirectoryError:
        raise _file_error(name, "is a directory, not a spec file") from None
    except FileNotFoundError:
        raise _file_error(name, "no such file") from None
    except PermissionError:
        raise _file_error(name, "permission denied") from None
    except OSError as exc:
        raise _file_error(name, exc.strerror or str(exc)) from None
    text = _decode(raw, name)
    data, source_map = load(text, name)
    return text, data, source_map


# --------------------------------------------------------------------------- reading bytes


def _file_error(name: str, why: str) -> SpecError:
    return SpecError([Diagnostic("file-not-found", f"cannot read spec `{name}`: {why}")])


def _decode(raw: bytes, name: str) -> str:
    if raw.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        encoding = "UTF-32"
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "UTF-16"
    else:
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            start = 3 if raw.startswith(codecs.BOM_UTF8) else 0
            before = raw[start : exc.start].decode("utf-8", errors="replace")
            lines = _BREAKS.split(before)
            line, col = len(lines), len(lines[-1]) + 1
            span = Span(name, line, col, line, col + 1)
            raise SpecError(
                [
                    Diagnostic(
                        "yaml-syntax",
                        f"the file is not valid UTF-8: byte 0x{raw[exc.start]:02x} cannot start or continue a character",
                        span,
                        hint="save the spec as UTF-8",
                    )
                ]
            ) from None
    raise SpecError(
        [
            Diagnostic(
                "yaml-syntax",
                f"the file is encoded as {encoding}; synthc reads UTF-8 only",
                Span(name, 1, 1, 1, 1),
                hint="save the spec as UTF-8",
            )
        ]
    )


def _unprintable(text: str, file: str) -> list[Diagnostic]:
    """Characters YAML refuses (control characters, lone surrogates), each with its position."""
    diags: list[Diagnostic] = []
    if not _NOT_PRINTABLE.search(text):
        return diags
    for lineno, line in enumerate(_BREAKS.split(text), start=1):
        for match in _NOT_PRINTABLE.finditer(line):
            col = match.start() + 1
            diags.append(
                Diagnostic(
                    "yaml-syntax",
                    f"the character U+{ord(match.group()):04X} is not allowed in YAML",
                    Span(file, lineno, col, lineno, col + 1),
                    hint='remove it, or write it as an escape inside a double-quoted string (e.g. "\\t")',
                )
            )
            if len(diags) >= _MAX_SYNTAX_LISTED:
                return diags
    return diags


# --------------------------------------------------------------------------- parsing


def _parse(text: str, composer: _Composer) -> None:
    """Feed the parser's events to ``composer``; a parse failure becomes one diagnostic."""
    loader = _Loader(text)
    try:
        while loader.check_event():
            if not composer.feed(loader.get_event()):
                break
    except yaml.MarkedYAMLError as exc:
        composer.diags.append(_syntax_diagnostic(exc, composer))
    except yaml.YAMLError as exc:  # ReaderError and friends: no mark to point at
        composer.diags.append(
            Diagnostic("yaml-syntax", f"the file is not valid YAML: {exc}", Span(composer.file, 1, 1, 1, 1))
        )
    except RecursionError:
        composer.diags.append(
            Diagnostic("yaml-syntax", "the YAML is nested too deeply", Span(composer.file, 1, 1, 1, 1))
        )
    finally:
        loader.dispose()


# problem prefix (libyaml's and PyYAML's wording) -> (plain message, hint)
_SYNTAX: tuple[tuple[str, str, str | None], ...] = (
    (
        "mapping values are not allowed",
        "a `:` followed by a space cannot appear here",
        "if the value contains `: `, put it in quotes; otherwise check this line's indentation",
    ),
    (
        "did not find expected key",
        "this line is not indented like the keys around it",
        "keys of one mapping must start in the same column",
    ),
    (
        "expected <block end>",
        "this line is not indented like the keys around it",
        "keys of one mapping must start in the same column",
    ),
    (
        "could not find expected ':'",
        "a key is missing its `:`",
        "write `key: value`; a value that continues on the next line must be quoted or use `|`",
    ),
    ("found unexpected end of stream", "the file ends inside a quoted string", "close the quote"),
    (
        "found unknown escape character",
        "unknown escape sequence in a double-quoted string",
        'inside "..." a backslash starts an escape: use single quotes, or write \\\\ for a backslash',
    ),
    ("did not find expected ',' or ']'", "a `[...]` list is not closed, or an item lacks its comma", None),
    ("expected ',' or ']'", "a `[...]` list is not closed, or an item lacks its comma", None),
    (
        "did not find expected ',' or '}'",
        "a `{...}` mapping is not closed, or an entry lacks its comma",
        None,
    ),
    ("expected ',' or '}'", "a `{...}` mapping is not closed, or an entry lacks its comma", None),
    (
        "block sequence entries are not allowed",
        "a `- ` list item cannot appear here",
        "check this line's indentation",
    ),
    (
        "did not find expected '-' indicator",
        "expected a `- ` list item at this indentation",
        "items of one list must start in the same column",
    ),
    ("did not find expected node content", "a value is missing here", None),
    ("expected the node content", "a value is missing here", None),
    (
        "found character that cannot start any token",
        "this character cannot start a value",
        "values starting with `@`, `` ` `` or `%` must be quoted",
    ),
    (
        "found character '",
        "this character cannot start a value",
        "values starting with `@`, `` ` `` or `%` must be quoted",
    ),
)


def _syntax_diagnostic(exc: yaml.MarkedYAMLError, composer: _Composer) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    file = composer.file
    if mark is None:
        return Diagnostic("yaml-syntax", f"the file is not valid YAML: {exc}", Span(file, 1, 1, 1, 1))
    line = composer.line(mark.line)
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    if "\t" in indent:
        col = indent.index("\t") + 1
        return Diagnostic(
            "tab-indent",
            "a tab is used for indentation",
            Span(file, mark.line + 1, col, mark.line + 1, col + 1),
            hint="YAML indentation must use spaces; replace the tab with spaces",
        )
    problem = exc.problem or "invalid YAML"
    message, hint = problem, None
    for prefix, plain, plain_hint in _SYNTAX:
        if problem.startswith(prefix):
            message, hint = plain, plain_hint
            break
    if "quoted scalar" in (exc.context or "") and problem.startswith("found unexpected end"):
        # Point at the opening quote, not at the end of the file.
        message, hint = "a quoted string is never closed", "close the quote"
        mark = exc.context_mark or mark
    col = mark.column + 1
    return Diagnostic(
        "yaml-syntax", message, Span(file, mark.line + 1, col, mark.line + 1, col + 1), hint=hint
    )


def _check_document(composer: _Composer, file: str) -> list[Diagnostic]:
    if not composer.has_root or (composer.root is None and composer.root_empty):
        return [
            Diagnostic(
                "empty-spec",
                "the spec is empty",
                Span(file, 1, 1, 1, 1),
                hint="a spec starts with `synthc: 1` and a `columns:` mapping",
            )
        ]
    if isinstance(composer.root, dict):
        return []
    kind = _kind(composer.root)
    return [
        Diagnostic(
            "not-a-mapping",
            f"the top level of a spec must be a mapping of keys, got {kind}",
            composer.entries[()].span,
            hint="a spec starts with `synthc: 1` and a `columns:` mapping",
        )
    ]


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string"


# --------------------------------------------------------------------------- composing


_NO_KEY = object()  # the parent mapping waits for a key


@dataclass
class _Frame:
    path: SpecPath | None  # None: a subtree that is thrown away (e.g. a list used as a key)
    start: Any  # the start event's mark
    value: Any  # dict or list under construction
    flow: bool  # written as {...} / [...]
    key: Any = _NO_KEY  # the pending key of a mapping
    key_ok: bool = True  # False: duplicate or refused key; its value is not stored
    key_span: Span | None = None
    key_value: Any = None
    seen: dict[str, int] = field(default_factory=dict)  # key -> line of its first occurrence
    last_end: tuple[int, int] | None = None  # 0-based end of the last child


def _mark(mark: Any) -> Any:
    """Event marks are typed optional in the stubs; the parsers always set them."""
    return mark


def _data_keys(path: SpecPath | None) -> bool:
    """Whether the keys of the mapping at ``path`` are data (any scalar allowed)."""
    if not path:
        return False
    if path[0] == "vars":
        return True
    if len(path) >= 3 and path[0] == "columns" and path[2] == "values":
        return True
    return len(path) >= 3 and path[0] == "steps" and path[2] == "rename"


class _Composer:
    """Builds values and source entries from parser events, collecting diagnostics."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self._lines: list[str] | None = None
        self.stack: list[_Frame] = []
        self.entries: dict[SpecPath, SourceEntry] = {}
        self.diags: list[Diagnostic] = []
        self.root: Any = None
        self.has_root = False
        self.root_empty = False
        self.documents = 0

    def line(self, index: int) -> str:
        if self._lines is None:
            self._lines = _BREAKS.split(self.text)
        return self._lines[index] if 0 <= index < len(self._lines) else ""

    def feed(self, event: Any) -> bool:
        """Consume one event; False means stop reading."""
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                self._refuse(
                    event.start_mark,
                    "a spec is one YAML document; this starts a second one",
                    "remove the `---` line and everything after it, or split the file",
                )
                return False
        elif isinstance(event, yaml.ScalarEvent):
            self._properties(event)
            if self._key_position():
                self._key(event)
            else:
                style = event.style or None
                value = resolve_plain(event.value) if style is None else event.value
                span = self._scalar_span(event, style)
                self._attach(value, span, style, self._origin(event, style))
        elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            self._properties(event)
            if len(self.stack) >= _MAX_DEPTH:
                self._refuse(event.start_mark, f"the YAML is nested more than {_MAX_DEPTH} levels deep", None)
                return False
            path = self._child_path()
            if self._key_position():
                self._refuse(event.start_mark, "a mapping key must be a string, not a list or mapping", None)
            empty: dict[str, Any] | list[Any] = {} if isinstance(event, yaml.MappingStartEvent) else []
            self.stack.append(_Frame(path, event.start_mark, empty, flow=bool(event.flow_style)))
        elif isinstance(event, yaml.CollectionEndEvent):
            frame = self.stack.pop()
            start, end = frame.start, _mark(event.end_mark)
            end_pos = (end.line, end.column)
            if not frame.flow and frame.last_end is not None:
                end_pos = frame.last_end  # a block collection's end mark is the next token
            self._attach(frame.value, self._span((start.line, start.column), end_pos), None, None)
        elif isinstance(event, yaml.AliasEvent):
            self._refuse(
                event.start_mark,
                f"aliases (`*{event.anchor}`) are not supported",
                "write the value out again instead of referring to an anchor",
            )
            self._attach(None, self._mark_span(event.start_mark, event.end_mark), None, None)
        return True

    # -- helpers

    def _key_position(self) -> bool:
        return bool(self.stack) and isinstance(self.stack[-1].value, dict) and self.stack[-1].key is _NO_KEY

    def _child_path(self) -> SpecPath | None:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if top.path is None:
            return None
        if isinstance(top.value, list):
            return (*top.path, len(top.value))
        if top.key is _NO_KEY or not top.key_ok:
            return None
        return (*top.path, top.key)

    def _attach(self, value: Any, span: Span, style: str | None, origin: tuple[int, int] | None) -> None:
        path = self._child_path()
        if not self.stack:
            self.root, self.has_root = value, True
            self.root_empty = (
                style is None and value is None and span.line == span.end_line and span.col == span.end_col
            )
            self.entries[()] = SourceEntry(span, None, style, origin, None)
            return
        top = self.stack[-1]
        top.last_end = (span.end_line - 1, span.end_col - 1)
        if isinstance(top.value, list):
            if path is not None:
                self.entries[path] = SourceEntry(span, None, style, origin, len(top.value))
            top.value.append(value)
            return
        if top.key is _NO_KEY:  # a collection or alias was used as a key
            top.key, top.key_ok, top.key_span = "", False, span
            return
        if path is not None:
            self.entries[path] = SourceEntry(span, top.key_span, style, origin, top.key_value)
        if top.key_ok:
            top.value[top.key] = value
        top.key = _NO_KEY

    def _key(self, event: Any) -> None:
        top = self.stack[-1]
        style = event.style or None
        span = self._scalar_span(event, style)
        text = event.value
        key_value = resolve_plain(text) if style is None else text
        ok = True
        if style is None and text == "<<":
            self._refuse(
                event.start_mark,
                "merge keys (`<<`) are not supported",
                "write the keys out in this mapping instead",
            )
            ok = False
        elif not isinstance(key_value, str) and not _data_keys(top.path):
            what = "null" if key_value is None else f"{_kind(key_value)[2:]} `{text}`"
            self.diags.append(
                Diagnostic(
                    "unsupported-yaml",
                    f"mapping keys must be strings; YAML reads this key as {what}",
                    span,
                    hint=f'quote it: "{text}"',
                )
            )
            ok = False
        elif text in top.seen:
            self.diags.append(
                Diagnostic(
                    "duplicate-key",
                    f"duplicate key `{text}` (first defined on line {top.seen[text]})",
                    span,
                    hint="a key may appear only once in a mapping; remove or rename one of them",
                )
            )
            ok = False
        else:
            top.seen[text] = span.line
        top.key, top.key_ok, top.key_span, top.key_value = text, ok, span, key_value

    def _properties(self, event: Any) -> None:
        if event.anchor is not None:
            self._refuse(
                event.start_mark,
                f"anchors (`&{event.anchor}`) are not supported",
                "write the value out where it is needed instead of using anchors and aliases",
            )
        if event.tag is not None:
            self._refuse(
                event.start_mark,
                f"explicit tags (`{self._token(event.start_mark)}`) are not supported",
                "remove the tag; to make a value a string, put it in quotes",
            )

    def _refuse(self, mark: Any, message: str, hint: str | None) -> None:
        span = Span(
            self.file,
            mark.line + 1,
            mark.column + 1,
            mark.line + 1,
            mark.column + 1 + max(1, len(self._token(mark))),
        )
        self.diags.append(Diagnostic("unsupported-yaml", message, span, hint=hint))

    def _token(self, mark: Any) -> str:
        rest = self.line(mark.line)[mark.column :]
        return rest.split(None, 1)[0] if rest.strip() else ""

    def _span(self, start: tuple[int, int], end: tuple[int, int]) -> Span:
        return Span(self.file, start[0] + 1, start[1] + 1, end[0] + 1, end[1] + 1)

    def _mark_span(self, start: Any, end: Any) -> Span:
        return self._span((start.line, start.column), (end.line, end.column))

    def _scalar_span(self, event: Any, style: str | None) -> Span:
        start, end = event.start_mark, event.end_mark
        if style in ("|", ">") and end.line > start.line and not self.line(end.line)[: end.column].strip():
            # A block scalar's end mark is on the next line; end on its last content line.
            line = end.line - 1
            while line > start.line and not self.line(line).strip():
                line -= 1
            return self._span((start.line, start.column), (line, len(self.line(line).rstrip())))
        return self._mark_span(start, end)

    def _origin(self, event: Any, style: str | None) -> tuple[int, int]:
        mark = event.start_mark
        if style in ("'", '"'):
            return (mark.line + 1, mark.column + 2)
        if style not in ("|", ">"):
            return (mark.line + 1, mark.column + 1)
        first = mark.line + 1  # 0-based: the line after the header
        for k, value_line in enumerate(event.value.split("\n")):
            if value_line.strip():
                file_line = self.line(first + k)
                lead = len(file_line) - len(file_line.lstrip(" "))
                indent = lead - (len(value_line) - len(value_line.lstrip(" ")))
                return (first + 1, max(indent, 0) + 1)
        return (mark.line + 1, mark.column + 1)
