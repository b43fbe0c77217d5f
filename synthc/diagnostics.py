"""Diagnostics are data first, strings last.

A :class:`Diagnostic` carries a stable code (see :mod:`synthc.errors`), a message, the
source :class:`Span` taken at load time, the spec path of the offending value and a
hint. :func:`render` is the one place that turns one into text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from synthc.errors import CODES

SpecPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Span:
    """A region of a source file; lines and columns are 1-based, ``end_*`` exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None = None
    path: SpecPath = ()
    hint: str | None = None
    severity: Literal["error", "warning"] = "error"

    def __post_init__(self) -> None:
        assert self.code in CODES, f"unregistered diagnostic code {self.code!r}"

    def to_json(self) -> dict[str, Any]:
        span = self.span
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": span.file if span else None,
            "line": span.line if span else None,
            "col": span.col if span else None,
            "end_line": span.end_line if span else None,
            "end_col": span.end_col if span else None,
            "path": list(self.path),
            "hint": self.hint,
        }


def format_path(path: SpecPath) -> str:
    """``("columns", "price", "sd")`` -> ``columns.price.sd``; list items as ``[i]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def render(diag: Diagnostic, source: str | None = None) -> str:
    """``file:line:col: error[code]: message``, then the source line with a caret
    under the span, then ``= hint: ...``. ``source`` is the file's text, if known."""
    span = diag.span
    where = f"{span.file}:{span.line}:{span.col}: " if span else ""
    lines = [f"{where}{diag.severity}[{diag.code}]: {diag.message}"]
    if span and source is not None:
        src_lines = source.splitlines()
        if 1 <= span.line <= len(src_lines):
            text = src_lines[span.line - 1].replace("\t", " ")
            width = (span.end_col - span.col) if span.end_line == span.line else len(text) - span.col + 1
            gutter = str(span.line)
            pad = " " * len(gutter)
            lines.append(f"{pad} |")
            lines.append(f"{gutter} | {text}")
            lines.append(f"{pad} | {' ' * (span.col - 1)}{'^' * max(1, width)}")
    if diag.hint:
        lines.append(f"  = hint: {diag.hint}")
    return "\n".join(lines)


def sort_key(diag: Diagnostic) -> tuple[str, int, int, str]:
    span = diag.span
    if span is None:
        return ("", 0, 0, diag.code)
    return (span.file, span.line, span.col, diag.code)
