"""The runtime's exception tree: failures a person running a plan should read.

``runtime`` never imports ``synthc``; the CLI turns these into exit codes and messages.
Messages say what went wrong and where (which path), never carry traceback text.
"""

from __future__ import annotations


class ExecutionError(Exception):
    """A plan could not be executed (e.g. a template failed on some row).

    ``column`` names the column at fault, when one is, so a front end can point at it
    in the spec; ``row`` is the global index of the failing row, when known."""

    def __init__(self, message: str, *, column: str | None = None, row: int | None = None) -> None:
        super().__init__(message)
        self.column = column
        self.row = row


class OutputError(ExecutionError):
    """The output could not be written; the message names the path and the reason."""


class TargetNotReached(ExecutionError):
    """``target_rows`` rows did not survive the steps within ``max_rows`` generated rows."""
