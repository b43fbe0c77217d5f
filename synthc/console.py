"""The one place synthc writes to the terminal.

Two rich Consoles (stdout for results, stderr for messages and progress) are made on
first use, so commands that print plain text (``synthc check``) never import rich.
Colour appears only when the stream is a terminal and ``NO_COLOR`` is unset
(https://no-color.org); piped output is always plain.

The consoles follow ``sys.stdout``/``sys.stderr`` at write time (they are not bound to
the streams present at import), so in-process callers that swap the streams (pytest's
capsys, ``contextlib.redirect_stdout``) see everything.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console

_ANSI = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34", "cyan": "36"}


def _stream(err: bool) -> TextIO:
    return sys.stderr if err else sys.stdout


def color_enabled(err: bool = False) -> bool:
    """True when ``NO_COLOR`` is unset (or empty) and the stream is a terminal."""
    if os.environ.get("NO_COLOR"):
        return False
    stream = _stream(err)
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or exotic stream
        return False


def is_terminal(err: bool = False) -> bool:
    """True when the stream is an interactive terminal (progress bars only then)."""
    try:
        return _stream(err).isatty()
    except (AttributeError, ValueError):
        return False


def style(text: str, spec: str, *, err: bool = False) -> str:
    """``text`` wrapped in ANSI codes for ``spec`` (e.g. ``"bold red"``) when colour is
    enabled on that stream; ``text`` unchanged otherwise. Cheap: no rich import."""
    if not color_enabled(err):
        return text
    codes = ";".join(_ANSI[word] for word in spec.split() if word in _ANSI)
    return f"\x1b[{codes}m{text}\x1b[0m" if codes else text


def echo(text: str = "", *, err: bool = False) -> None:
    """Write ``text`` and a newline, unformatted (no markup, no wrapping)."""
    stream = _stream(err)
    stream.write(text + "\n")
    stream.flush()


def console(*, err: bool = False) -> Console:
    """A rich Console on stdout (``err=False``) or stderr, made for the stream that is
    current now; colour only on a terminal without ``NO_COLOR``."""
    from rich.console import Console

    color = color_enabled(err)
    return Console(
        stderr=err,
        color_system="auto" if color else None,
        no_color=not color,
        highlight=False,
        soft_wrap=False,
    )
