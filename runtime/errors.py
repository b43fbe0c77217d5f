"""The runtime's exception tree: failures a person running a plan should read.

``runtime`` never imports ``synthc``; the CLI turns these into exit codes and messages.
Messages say what went wrong and where (which path), never carry traceback text.
"""

from __future__ import annotations


class ExecutionError(Exception):
    """A plan could not be executed (e.g. a step failed on the generated rows)."""


class OutputError(ExecutionError):
    """The output could not be written; the message names the path and the reason."""
